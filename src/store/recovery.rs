//! Crash recovery of one shard's CommitLog.
//!
//! Starting at the checkpoint's `log_pos` (a record boundary below which all
//! consume-queue entries are durable) — or at the oldest segment when there
//! is no usable checkpoint — every record is validated — magic, size (at
//! most `max_record_size`, so a damaged TOTALSIZE never makes the scan read
//! a whole segment), PHYSICALOFFSET equal to its position, body CRC — and
//! re-dispatched to its consume queue.
//!
//! A record that is valid but disagrees with the checkpoint (its queue
//! offset does not continue its queue, or its queue is unknown), or a
//! checkpoint that points below the oldest segment or into a missing one,
//! means the *checkpoint* is unusable, not the log: [`recover`] returns
//! [`Recovery::CheckpointRejected`] before touching anything on disk and the
//! caller rebuilds every consume queue from the oldest segment. Valid
//! records are never truncated because of checkpoint disagreement.
//!
//! The scan stops at the first record that fails a check; that position
//! becomes the end of the log:
//!
//! * zeros after it, to the end of its segment: the clean end of the log;
//! * other bytes anywhere after it in the segment: a torn tail (a write in
//!   flight at the crash) — logged as a warning with file and position;
//! * a valid record found after it: corruption in the middle of the log —
//!   logged as an error with file and position. Recovery still ends at the
//!   last valid record: what follows cannot be trusted to be complete.
//!
//! In both bad cases `[end, segment end)` is cleared — the partial block
//! rewritten with its valid prefix, the rest hole-punched and re-allocated —
//! however far past the end the stale bytes lie, so a later crash can never
//! resurrect them. Later segments are checked whole (holes skipped with
//! `SEEK_DATA`): all-zero ones are kept as prepared segments, ones holding
//! any data are renamed `<name>.corrupt-<unix secs>` for inspection, never
//! deleted.
//!
//! Bytes found on disk may not have been durable (the crash may have been a
//! process kill with the data still in the page cache), so every segment
//! the scan covered, and the directory, is fdatasynced before the log is
//! opened and acknowledges appends on top of them.

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
    /// Segments fdatasynced because the scan covered them.
    pub synced_segments: usize,
    /// The checkpoint was unusable and every consume queue was rebuilt
    /// from the oldest segment.
    pub rebuilt: bool,
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

/// Why re-dispatch refused a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The record is valid but disagrees with the checkpoint (its queue
    /// offset does not continue its queue, or its queue is unknown): the
    /// checkpoint is unusable, the log is fine.
    Checkpoint(&'static str),
    /// The record itself is unusable (e.g. its topic is not UTF-8): the
    /// log ends before it like at a failed check.
    Record(&'static str),
    /// The record cannot be read with this configuration (a sealed record
    /// whose key is missing, or that does not authenticate): the start is
    /// refused before anything on disk is touched — never truncated.
    Fatal(String),
}

/// Outcome of [`recover`].
pub enum Recovery {
    Recovered(RecoveredLog),
    /// The checkpoint cannot be used (it disagrees with the log, or it
    /// points below the oldest segment / into a missing one). Nothing was
    /// changed on disk; the caller must rebuild from the oldest segment.
    CheckpointRejected {
        at: u64,
        why: String,
    },
}

/// Where the scan starts and what bounds it.
#[derive(Debug, Clone)]
pub struct ScanParams {
    pub shard: u16,
    pub segment_size: u64,
    /// Records larger than this are treated as corruption (a damaged
    /// TOTALSIZE must not make recovery read up to a whole segment).
    pub max_record_size: usize,
    /// `Some(log_pos)` of a checkpoint, or `None` to rebuild from the
    /// oldest segment.
    pub checkpoint: Option<u64>,
    /// Handed to every segment opened (tests only).
    pub faults: Option<std::rc::Rc<super::faults::DiskFaults>>,
}

/// Scans from the checkpoint (or the oldest segment), calling `dispatch`
/// for each valid record. A [`Refusal::Checkpoint`] aborts the scan
/// *before anything on disk is touched* and returns
/// [`Recovery::CheckpointRejected`]; valid records are never truncated
/// because the checkpoint disagrees with them.
pub async fn recover<F>(dir: &Path, p: ScanParams, mut dispatch: F) -> Result<Recovery, StoreError>
where
    F: FnMut(&RecordView<'_>, u64) -> Result<(), Refusal>,
{
    let ScanParams {
        shard,
        segment_size,
        max_record_size,
        checkpoint,
        faults,
    } = p;
    let start = checkpoint.unwrap_or(0);
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
        segments.insert(b, Rc::new(Segment::open(dir, b, segment_size, faults.clone()).await?));
    }
    let Some(&first) = segments.keys().next() else {
        let end = start - start % segment_size;
        if start > 0 {
            report.problems.push(format!(
                "checkpoint points at log offset {start} but no CommitLog segment exists; starting a new log at {end}"
            ));
        }
        report.end = end;
        return Ok(Recovery::Recovered(RecoveredLog {
            segments,
            end,
            tail_block: Vec::new(),
            report,
        }));
    };
    let last_end = segments.keys().next_back().map_or(0, |b| b + segment_size);
    if checkpoint.is_some() {
        let start_base = start - start % segment_size;
        if start < first {
            return Ok(Recovery::CheckpointRejected {
                at: start,
                why: format!("checkpoint log position {start} is below the oldest segment {first}"),
            });
        }
        if start < last_end && !segments.contains_key(&start_base) {
            return Ok(Recovery::CheckpointRejected {
                at: start,
                why: format!("the segment {start_base} holding checkpoint log position {start} is missing"),
            });
        }
    }
    let mut pos = start.max(first);
    report.scan_start = pos;
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
                RecordCheck::NeedMore(n) if n > max_record_size => {
                    RecordCheck::Invalid("record size above the maximum record size")
                }
                RecordCheck::NeedMore(n) => {
                    let n = n.min((seg.end() - pos) as usize);
                    check_record(win.at(pos, n).await?, Some(phys), true)
                }
                other => other,
            };
            match check {
                RecordCheck::Record(v) if v.total_size as usize > max_record_size => {
                    stop = Some((pos, "record size above the maximum record size"));
                    break 'segments;
                }
                RecordCheck::Record(v) => {
                    match dispatch(&v, pos) {
                        Ok(()) => {}
                        Err(Refusal::Checkpoint(why)) => {
                            return Ok(Recovery::CheckpointRejected {
                                at: pos,
                                why: why.to_string(),
                            });
                        }
                        Err(Refusal::Fatal(what)) => {
                            return Err(StoreError::Corrupt {
                                path: dir.to_path_buf(),
                                what,
                            });
                        }
                        Err(Refusal::Record(why)) => {
                            stop = Some((pos, why));
                            break 'segments;
                        }
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
    sync_scanned(dir, &segments, report.scan_start, end, segment_size, &mut report).await?;
    let tail_block = read_tail_block(&segments, end, segment_size).await?;
    Ok(Recovery::Recovered(RecoveredLog {
        segments,
        end,
        tail_block,
        report,
    }))
}

/// Bytes found on disk were not necessarily durable (the crash may have
/// left them in the page cache of a host that has not written them yet):
/// fdatasync every segment the scan covered, and the directory, before the
/// log treats `[scan_start, end)` as durable and acknowledges on top of it.
async fn sync_scanned(
    dir: &Path,
    segments: &BTreeMap<u64, Rc<Segment>>,
    scan_start: u64,
    end: u64,
    segment_size: u64,
    report: &mut RecoveryReport,
) -> Result<(), StoreError> {
    let from = scan_start - scan_start % segment_size;
    for (_, seg) in segments.range(from..=end) {
        if seg.base > end || (seg.base == end && end > scan_start) {
            continue;
        }
        seg.sync().await?;
        report.synced_segments += 1;
    }
    super::segment::sync_dir(dir).await
}

/// Log offset of the first non-zero byte of `seg` at or after `from`, or
/// `None` if the rest of the segment reads as zeros. Skips holes and
/// unwritten extents with `SEEK_DATA`/`SEEK_HOLE` where the filesystem
/// reports them, so a fallocated segment costs no reads.
pub async fn first_nonzero(seg: &Segment, from: u64) -> Result<Option<u64>, StoreError> {
    use std::os::unix::io::AsRawFd;
    let fd = seg.file.as_raw_fd();
    let mut off = from - seg.base;
    while off < seg.size {
        // SAFETY: plain lseek on a file descriptor we own; reads and writes
        // use pread/pwrite, so moving the file offset affects nothing.
        let data = unsafe { libc::lseek(fd, off as libc::off_t, libc::SEEK_DATA) };
        if data < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENXIO) {
                return Ok(None); // no data up to EOF
            }
            return Err(StoreError::io(&seg.path, e));
        }
        let data = data as u64;
        if data >= seg.size {
            return Ok(None);
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, data as libc::off_t, libc::SEEK_HOLE) };
        let hole = if hole < 0 {
            seg.size
        } else {
            (hole as u64).min(seg.size)
        };
        let mut p = data.max(off);
        while p < hole {
            let n = ((hole - p) as usize).min(MAX_IO);
            let r = seg.read(seg.base + p, n).await?;
            if let Some(i) = r.iter().position(|&b| b != 0) {
                return Ok(Some(seg.base + p + i as u64));
            }
            if r.is_empty() {
                return Ok(None);
            }
            p += r.len() as u64;
        }
        off = hole;
    }
    Ok(None)
}

/// Reads what follows the stop position in its segment, classifies it,
/// and — whenever anything but zeros follows, however far into the
/// segment — clears `[end, segment end)`: the partial block is rewritten
/// with its valid prefix, the rest hole-punched and re-allocated.
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
    let first_data = first_nonzero(&seg, at).await?;
    let garbage = first_data.is_some();
    let mut kind = StopKind::CleanEnd;
    if let Some(d) = first_data {
        kind = StopKind::TornTail;
        let look = ((seg.end() - d) as usize).min(16 << 20);
        let data = seg.read(d, look).await?;
        for i in 0..data.len().saturating_sub(8) {
            let p = d + i as u64;
            if p == at {
                continue;
            }
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
            "CommitLog torn tail: {} at file position {} ({}); non-zero bytes from file position {} on; \
             truncating to the last valid record",
            info.file.display(),
            info.file_pos,
            why,
            first_data.map_or(0, |d| d - seg.base)
        ),
        StopKind::MidLogCorruption => log::error!(
            "CommitLog CORRUPTION in the middle of {} at file position {} ({}): valid records follow it; \
             recovering to the last valid record before it, later data is discarded",
            info.file.display(),
            info.file_pos,
            why
        ),
    }
    let glommio_err = |e: glommio::GlommioError<()>| StoreError::glommio(format_args!("{}", seg.path.display()), e);
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
        if hole < seg.end() {
            seg.file
                .deallocate(hole - seg.base, seg.end() - hole)
                .await
                .map_err(glommio_err)?;
        }
    }
    // A short segment (or a punched one): make it full size again.
    seg.file.pre_allocate(segment_size, false).await.map_err(glommio_err)?;
    seg.sync().await?;
    report.stop = Some(info);
    Ok(())
}

/// Segments after the one holding `end`: keep the ones that read as zeros
/// from start to end (prepared, never written), move every one holding any
/// data — anywhere, not just in its first block — aside.
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
        if first_nonzero(&seg, b).await?.is_none() {
            let glommio_err =
                |e: glommio::GlommioError<()>| StoreError::glommio(format_args!("{}", seg.path.display()), e);
            seg.file.pre_allocate(segment_size, false).await.map_err(glommio_err)?;
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
