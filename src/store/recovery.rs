//! Crash recovery of one shard's CommitLog.
//!
//! Starting at the checkpoint's `log_pos` (a record boundary below which all
//! consume-queue entries are durable), every record is validated — magic,
//! size, PHYSICALOFFSET equal to its position, body CRC, and a queue offset
//! that continues its queue — and re-dispatched to its consume queue. The
//! scan stops at the first record that fails; that position becomes the end
//! of the log:
//!
//! * zeros after it: the clean end of the log;
//! * other bytes after it: a torn tail (a write in flight at the crash) —
//!   logged as a warning with file and position;
//! * a valid record found after it: corruption in the middle of the log —
//!   logged as an error with file and position. Recovery still ends at the
//!   last valid record: what follows cannot be trusted to be complete.
//!
//! In both bad cases the bytes after the end are cleared (the partial block
//! rewritten, the rest of the segment hole-punched and re-allocated) so a
//! later crash can never resurrect them, and later segments holding data
//! are renamed `<name>.corrupt-<unix secs>` for inspection, never deleted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::error::StoreError;
use super::position::{parse_segment_file_name, LogOffset, PhysicalOffset};
use super::record::{check_record, RecordCheck, RecordView};
use super::segment::{align_down, align_up, Segment, ALIGN, MAX_IO};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopKind {
    /// Zeros: the log simply ends here.
    CleanEnd,
    /// Non-zero bytes that do not form a valid record follow the end.
    TornTail,
    /// A valid record follows the bad one: data in the middle was damaged.
    MidLogCorruption,
}

#[derive(Debug, Clone)]
pub struct StopInfo {
    pub file: PathBuf,
    pub file_pos: u64,
    pub why: String,
    pub kind: StopKind,
}

#[derive(Debug, Clone, Default)]
pub struct RecoveryReport {
    pub scan_start: u64,
    pub end: u64,
    pub records: u64,
    pub stop: Option<StopInfo>,
    pub quarantined: Vec<PathBuf>,
    pub problems: Vec<String>,
}

pub struct RecoveredLog {
    pub segments: BTreeMap<u64, Rc<Segment>>,
    pub end: u64,
    /// Bytes `[align_down(end), end)`: the valid prefix of the last block,
    /// which the first flush after start rewrites.
    pub tail_block: Vec<u8>,
    pub report: RecoveryReport,
}

/// Lists segment files, oldest first. Files that are not segments are
/// ignored (and reported).
pub fn list_segments(dir: &Path, report: &mut RecoveryReport) -> Result<Vec<u64>, StoreError> {
    let mut bases = Vec::new();
    let rd = std::fs::read_dir(dir).map_err(|e| StoreError::io(dir, e))?;
    for ent in rd {
        let ent = ent.map_err(|e| StoreError::io(dir, e))?;
        let name = ent.file_name();
        match name.to_str().and_then(parse_segment_file_name) {
            Some(b) => bases.push(b),
            None => {
                let n = name.to_string_lossy();
                if !n.contains(".corrupt-") {
                    report
                        .problems
                        .push(format!("ignoring unexpected file {}", ent.path().display()));
                }
            }
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

/// Scans from `start`, calling `dispatch` for each valid record (it may
/// refuse a record, which then ends the log like a failed check).
pub async fn recover<F>(
    dir: &Path,
    shard: u16,
    segment_size: u64,
    start: u64,
    mut dispatch: F,
) -> Result<RecoveredLog, StoreError>
where
    F: FnMut(&RecordView<'_>, u64) -> Result<(), &'static str>,
{
    let mut report = RecoveryReport {
        scan_start: start,
        ..Default::default()
    };
    let bases = list_segments(dir, &mut report)?;
    let mut segments = BTreeMap::new();
    for &b in &bases {
        if b % segment_size != 0 {
            report.problems.push(format!(
                "segment {b} is not aligned to the segment size {segment_size}; ignored"
            ));
            continue;
        }
        segments.insert(b, Rc::new(Segment::open(dir, b, segment_size).await?));
    }
    let Some(&first) = segments.keys().next() else {
        let end = start - start % segment_size;
        if start > 0 {
            report.problems.push(format!(
                "checkpoint points at log offset {start} but no CommitLog segment exists; starting a new log at {end}"
            ));
        }
        report.end = end;
        return Ok(RecoveredLog {
            segments,
            end,
            tail_block: Vec::new(),
            report,
        });
    };
    let mut pos = start.max(first);
    if start < first {
        report
            .problems
            .push(format!("checkpoint {start} is below the oldest segment {first}"));
    }
    let mut stop: Option<(u64, &'static str)> = None;
    'segments: loop {
        let Some(seg) = segments.get(&(pos - pos % segment_size)).cloned() else {
            break; // past the last segment: the log ends at a segment boundary
        };
        let mut win = Window::new(seg.clone());
        while pos < seg.end() {
            let phys = PhysicalOffset::new(shard, LogOffset(pos)).0;
            let buf = win.at(pos, 8).await?;
            let check = match check_record(buf, Some(phys), true) {
                RecordCheck::NeedMore(n) => {
                    let n = n.min((seg.end() - pos) as usize);
                    check_record(win.at(pos, n).await?, Some(phys), true)
                }
                other => other,
            };
            match check {
                RecordCheck::Record(v) => {
                    if let Err(why) = dispatch(&v, pos) {
                        stop = Some((pos, why));
                        break 'segments;
                    }
                    report.records += 1;
                    pos += v.total_size as u64;
                }
                RecordCheck::Blank => {
                    pos = seg.end();
                    continue 'segments;
                }
                RecordCheck::NeedMore(_) => {
                    stop = Some((pos, "record runs past the segment end"));
                    break 'segments;
                }
                RecordCheck::Invalid(why) => {
                    stop = Some((pos, why));
                    break 'segments;
                }
            }
        }
        // A segment filled exactly to its end (no room even for BLANK is
        // impossible by construction): continue in the next one.
    }
    let end = pos;
    report.end = end;
    if let Some((at, why)) = stop {
        clean_tail(dir, &segments, shard, segment_size, at, why, &mut report).await?;
    }
    quarantine_later_segments(&mut segments, end, segment_size, &mut report).await?;
    let tail_block = read_tail_block(&segments, end, segment_size).await?;
    Ok(RecoveredLog {
        segments,
        end,
        tail_block,
        report,
    })
}

/// Reads forward from the stop position, classifies what follows, and
/// clears it when it is not zeros.
async fn clean_tail(
    dir: &Path,
    segments: &BTreeMap<u64, Rc<Segment>>,
    shard: u16,
    segment_size: u64,
    at: u64,
    why: &'static str,
    report: &mut RecoveryReport,
) -> Result<(), StoreError> {
    let Some(seg) = segments.get(&(at - at % segment_size)).cloned() else {
        return Ok(());
    };
    let look = ((seg.end() - at) as usize).min(16 << 20);
    let data = seg.read(at, look).await?;
    let garbage = data.iter().any(|&b| b != 0);
    let mut kind = StopKind::CleanEnd;
    if garbage {
        kind = StopKind::TornTail;
        for i in 1..data.len().saturating_sub(8) {
            let p = at + i as u64;
            let phys = PhysicalOffset::new(shard, LogOffset(p)).0;
            if data[i + 4..i + 8] == super::record::MAGIC_V1.to_be_bytes()
                && matches!(check_record(&data[i..], Some(phys), true), RecordCheck::Record(_))
            {
                kind = StopKind::MidLogCorruption;
                break;
            }
        }
    }
    let info = StopInfo {
        file: seg.path.clone(),
        file_pos: at - seg.base,
        why: why.to_string(),
        kind: kind.clone(),
    };
    match kind {
        StopKind::CleanEnd => log::info!("CommitLog {} ends at file position {}", dir.display(), info.file_pos),
        StopKind::TornTail => log::warn!(
            "CommitLog torn tail: {} at file position {} ({}); truncating to the last valid record",
            info.file.display(),
            info.file_pos,
            why
        ),
        StopKind::MidLogCorruption => log::error!(
            "CommitLog CORRUPTION in the middle of {} at file position {} ({}): valid records follow it; \
             recovering to the last valid record before it, later data is discarded",
            info.file.display(),
            info.file_pos,
            why
        ),
    }
    if garbage {
        // Rewrite the partial block with its valid prefix, then punch out
        // the rest of the segment and allocate it again.
        let block = align_down(at);
        let prefix = seg.read(block, (at - block) as usize).await?;
        let mut buf = seg.file.alloc_dma_buffer(ALIGN as usize);
        buf.as_bytes_mut().fill(0);
        buf.as_bytes_mut()[..prefix.len()].copy_from_slice(&prefix);
        seg.write(block, buf).await?;
        let hole = align_up(at + 1).min(seg.end());
        let glommio_err = |e: glommio::GlommioError<()>| StoreError::Glommio(format!("{}: {e}", seg.path.display()));
        if hole < seg.end() {
            seg.file
                .deallocate(hole - seg.base, seg.end() - hole)
                .await
                .map_err(glommio_err)?;
            seg.file.pre_allocate(segment_size, false).await.map_err(glommio_err)?;
        }
        seg.sync().await?;
    } else {
        // A short segment: make it full size again.
        let glommio_err = |e: glommio::GlommioError<()>| StoreError::Glommio(format!("{}: {e}", seg.path.display()));
        seg.file.pre_allocate(segment_size, false).await.map_err(glommio_err)?;
    }
    report.stop = Some(info);
    Ok(())
}

/// Segments after the one holding `end`: keep empty (prepared) ones, move
/// the ones holding data aside.
async fn quarantine_later_segments(
    segments: &mut BTreeMap<u64, Rc<Segment>>,
    end: u64,
    segment_size: u64,
    report: &mut RecoveryReport,
) -> Result<(), StoreError> {
    let active = end - end % segment_size;
    let later: Vec<u64> = segments.range(active + 1..).map(|(b, _)| *b).collect();
    for b in later {
        let Some(seg) = segments.get(&b).cloned() else { continue };
        let head = seg.read(b, ALIGN as usize).await?;
        if head.iter().all(|&x| x == 0) {
            continue;
        }
        segments.remove(&b);
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let to = PathBuf::from(format!("{}.corrupt-{secs}", seg.path.display()));
        std::fs::rename(&seg.path, &to).map_err(|e| StoreError::io(&seg.path, e))?;
        log::error!(
            "CommitLog segment {} lies past the recovered end {end} and holds data: moved to {}",
            seg.path.display(),
            to.display()
        );
        report.quarantined.push(to);
    }
    if !report.quarantined.is_empty() {
        if let Some(parent) = report.quarantined[0].parent() {
            super::segment::sync_dir(parent).await?;
        }
    }
    Ok(())
}

async fn read_tail_block(
    segments: &BTreeMap<u64, Rc<Segment>>,
    end: u64,
    segment_size: u64,
) -> Result<Vec<u8>, StoreError> {
    let block = align_down(end);
    if block == end {
        return Ok(Vec::new());
    }
    let Some(seg) = segments.get(&(end - end % segment_size)) else {
        return Ok(Vec::new());
    };
    Ok(seg.read(block, (end - block) as usize).await?.to_vec())
}

/// A sliding read window over one segment, refilled with large aligned
/// reads so the scan costs one I/O per few MiB.
struct Window {
    seg: Rc<Segment>,
    start: u64,
    data: Vec<u8>,
}

impl Window {
    fn new(seg: Rc<Segment>) -> Window {
        Window {
            seg,
            start: 0,
            data: Vec::new(),
        }
    }

    /// At least `len` bytes at `pos` (fewer only at the segment end).
    async fn at(&mut self, pos: u64, len: usize) -> Result<&[u8], StoreError> {
        let have = pos >= self.start && pos + len as u64 <= self.start + self.data.len() as u64;
        if !have {
            let from = align_down(pos);
            let want = ((pos - from) as usize + len).max(MAX_IO);
            let want = align_up(want as u64).min(self.seg.end() - from) as usize;
            let r = self.seg.read(from, want).await?;
            self.data.clear();
            self.data.extend_from_slice(&r);
            self.start = from;
        }
        let off = (pos - self.start) as usize;
        let avail = self.data.len().saturating_sub(off);
        Ok(&self.data[off..off + len.min(avail)])
    }
}
