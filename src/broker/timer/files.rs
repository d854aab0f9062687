//! The timer's files, in `<shard dir>/timer/` (formats below). All I/O
//! runs on the executor's blocking thread ([`crate::runtime::blocking`]),
//! one round trip per batch of work.
//!
//! ```text
//! timer/
//!   checkpoint        "shardmq-timer 1 <routed> <marks_from> <marks_counted>\n"
//!                     then "<count> <topic>\n" per topic with scheduled
//!                     messages; written to checkpoint.tmp, fsynced,
//!                     renamed, dir fsynced
//!   b-<minute>        one bucket: the scheduled entries due in that minute
//!                     (ms since the epoch / 60 000), append-only
//! ```
//!
//! A bucket entry is 32 bytes, big-endian:
//!
//! ```text
//!  0  8  schedule-queue offset of the entry (its identity)
//!  8  8  due time, ms since the epoch
//! 16  8  log offset of the scheduled record
//! 24  4  record size
//! 28  4  crc32 of bytes 0..28
//! ```
//!
//! An entry whose CRC fails (a torn append, a zeroed block after a crash)
//! is skipped, and so is a partial entry at the end of a file: only the
//! checkpoint's `routed` vouches that entries below it are in their files
//! (they were fsynced before it was written), and everything from `routed`
//! on is routed again from the schedule queue after a restart. The same
//! entry may therefore be in a bucket twice; the timer delivers an entry
//! once per identity (see the module docs of [`super`]).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::runtime::blocking;

pub const ENTRY_SIZE: usize = 32;
const CHECKPOINT: &str = "checkpoint";
const MAGIC: &str = "shardmq-timer 1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Offset in the schedule queue: the entry's identity.
    pub xoff: u64,
    pub due: i64,
    pub pos: u64,
    pub size: u32,
}

impl Entry {
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&self.xoff.to_be_bytes());
        out.extend_from_slice(&self.due.to_be_bytes());
        out.extend_from_slice(&self.pos.to_be_bytes());
        out.extend_from_slice(&self.size.to_be_bytes());
        let crc = crc32fast::hash(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }

    /// `None` for a torn or zeroed entry.
    pub fn decode(b: &[u8]) -> Option<Entry> {
        let b: &[u8; ENTRY_SIZE] = b.try_into().ok()?;
        let crc = u32::from_be_bytes(b[28..32].try_into().ok()?);
        if crc32fast::hash(&b[..28]) != crc {
            return None;
        }
        Some(Entry {
            xoff: u64::from_be_bytes(b[0..8].try_into().ok()?),
            due: i64::from_be_bytes(b[8..16].try_into().ok()?),
            pos: u64::from_be_bytes(b[16..24].try_into().ok()?),
            size: u32::from_be_bytes(b[24..28].try_into().ok()?),
        })
    }
}

/// What the checkpoint vouches for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// Schedule-queue entries below this are in their bucket files.
    pub routed: u64,
    /// Marks below this belong to buckets already deleted.
    pub marks_from: u64,
    /// `topics` counts the deliveries whose marks are below this.
    pub marks_counted: u64,
    /// Scheduled messages per target topic: routed (below `routed`) and not
    /// delivered (marks below `marks_counted`).
    pub topics: Vec<(String, u64)>,
}

pub fn bucket_path(dir: &Path, minute: i64) -> PathBuf {
    dir.join(format!("b-{minute}"))
}

/// Creates the directory and reads the checkpoint (absent: zeros) and the
/// list of buckets with their sizes in bytes.
pub async fn open(dir: PathBuf) -> Result<(Checkpoint, Vec<(i64, u64)>), String> {
    blocking::run(move || {
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let ck = match std::fs::read_to_string(dir.join(CHECKPOINT)) {
            Ok(text) => parse_checkpoint(&text)
                .ok_or_else(|| format!("{}: not a timer checkpoint: {text:?}", dir.join(CHECKPOINT).display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Checkpoint::default(),
            Err(e) => return Err(format!("cannot read {}: {e}", dir.join(CHECKPOINT).display())),
        };
        let mut buckets = Vec::new();
        let rd = std::fs::read_dir(&dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        for ent in rd.flatten() {
            let name = ent.file_name();
            let Some(minute) = name
                .to_str()
                .and_then(|n| n.strip_prefix("b-"))
                .and_then(|m| m.parse().ok())
            else {
                continue;
            };
            let len = ent.metadata().map(|m| m.len()).unwrap_or(0);
            buckets.push((minute, len));
        }
        let _ = std::fs::remove_file(dir.join("checkpoint.tmp"));
        Ok((ck, buckets))
    })
    .await
}

fn parse_checkpoint(text: &str) -> Option<Checkpoint> {
    let mut lines = text.lines();
    let rest = lines.next()?.strip_prefix(MAGIC)?;
    let mut it = rest.split_whitespace();
    let mut ck = Checkpoint {
        routed: it.next()?.parse().ok()?,
        marks_from: it.next()?.parse().ok()?,
        marks_counted: it.next()?.parse().ok()?,
        topics: Vec::new(),
    };
    if it.next().is_some() {
        return None;
    }
    for l in lines {
        let (n, topic) = l.split_once(' ')?;
        ck.topics.push((topic.to_string(), n.parse().ok()?));
    }
    Some(ck)
}

fn encode_checkpoint(ck: &Checkpoint) -> String {
    let mut text = format!("{MAGIC} {} {} {}\n", ck.routed, ck.marks_from, ck.marks_counted);
    for (t, n) in &ck.topics {
        text.push_str(&format!("{n} {t}\n"));
    }
    text
}

/// Appends the given entries to their buckets and fsyncs every file
/// touched, then stores `ck` (temp file, fsync, rename, directory fsync);
/// then deletes the listed buckets. One blocking round trip.
pub async fn commit(
    dir: PathBuf,
    appends: Vec<(i64, Vec<u8>)>,
    ck: Checkpoint,
    delete: Vec<i64>,
) -> Result<(), String> {
    blocking::run(move || {
        for (minute, bytes) in &appends {
            let path = bucket_path(&dir, *minute);
            let mut f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            f.write_all(bytes)
                .and_then(|_| f.sync_data())
                .map_err(|e| format!("cannot append to {}: {e}", path.display()))?;
        }
        let tmp = dir.join("checkpoint.tmp");
        let text = encode_checkpoint(&ck);
        let mut f = File::create(&tmp).map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
        f.write_all(text.as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, dir.join(CHECKPOINT)).map_err(|e| format!("cannot rename {}: {e}", tmp.display()))?;
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| format!("cannot sync {}: {e}", dir.display()))?;
        for minute in delete {
            let path = bucket_path(&dir, minute);
            if let Err(e) = std::fs::remove_file(&path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    log::warn!("cannot delete timer bucket {}: {e}", path.display());
                }
            }
        }
        Ok(())
    })
    .await
}

/// Reads up to `max` whole entries of a bucket starting at entry `from`;
/// also returns how many entry slots were read (torn ones included), so
/// the caller can continue after them.
pub async fn read_bucket(dir: PathBuf, minute: i64, from: u64, max: usize) -> Result<(Vec<Entry>, u64), String> {
    blocking::run(move || {
        let path = bucket_path(&dir, minute);
        let mut f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
            Err(e) => return Err(format!("cannot open {}: {e}", path.display())),
        };
        f.seek(SeekFrom::Start(from * ENTRY_SIZE as u64))
            .map_err(|e| format!("cannot seek {}: {e}", path.display()))?;
        let mut buf = Vec::with_capacity(max * ENTRY_SIZE);
        f.take((max * ENTRY_SIZE) as u64)
            .read_to_end(&mut buf)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let slots = buf.len() / ENTRY_SIZE;
        let mut out = Vec::with_capacity(slots);
        let mut torn = 0;
        for chunk in buf.chunks_exact(ENTRY_SIZE) {
            match Entry::decode(chunk) {
                Some(e) => out.push(e),
                None => torn += 1,
            }
        }
        if torn > 0 {
            log::warn!(
                "timer bucket {}: {torn} torn entr(y/ies) skipped (routed again from the schedule queue)",
                path.display()
            );
        }
        Ok((out, slots as u64))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_torn_ones_are_refused() {
        let e = Entry {
            xoff: 7,
            due: 1_700_000_000_123,
            pos: 1 << 40,
            size: 1234,
        };
        let mut b = Vec::new();
        e.encode(&mut b);
        assert_eq!(b.len(), ENTRY_SIZE);
        assert_eq!(Entry::decode(&b), Some(e));
        assert_eq!(
            Entry::decode(&[0u8; ENTRY_SIZE]),
            None,
            "a zeroed block is not an entry"
        );
        for i in 0..ENTRY_SIZE {
            let mut c = b.clone();
            c[i] ^= 0x10;
            assert_eq!(Entry::decode(&c), None, "flipped byte {i}");
        }
        assert_eq!(Entry::decode(&b[..31]), None);
    }

    #[test]
    fn checkpoint_text_round_trips_and_is_strict() {
        let ck = Checkpoint {
            routed: 12,
            marks_from: 34,
            marks_counted: 40,
            topics: vec![("T1".into(), 5), ("%RETRY%g".into(), 2)],
        };
        assert_eq!(parse_checkpoint(&encode_checkpoint(&ck)), Some(ck));
        assert_eq!(parse_checkpoint("shardmq-timer 1 12 34\n"), None);
        assert_eq!(parse_checkpoint("shardmq-timer 1 12 34 5 6\n"), None);
        assert_eq!(parse_checkpoint("shardmq-timer 1 12 34 5\nx T\n"), None);
        assert_eq!(parse_checkpoint("something else"), None);
    }
}
