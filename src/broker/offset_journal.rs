//! The on-disk form of a shard's consumer offsets: a snapshot plus
//! append-only journals of the entries changed since.
//!
//! Files in the shard directory:
//!
//! * `consumerOffset.json` — the snapshot, RocketMQ's
//!   `{"offsetTable":{"topic@group":{"qid":offset}}}` shape (so tools that
//!   read RocketMQ's file read ours) plus `"journalGeneration": g`: the
//!   snapshot holds everything written to journals of generation `< g`.
//!   Absent means generation 0 and an empty table.
//! * `consumerOffset.<g>.journal` (g zero-padded to 20 digits) — records
//!   appended after the snapshot. Replay applies every journal with
//!   generation `>= g` in generation order, each record an absolute
//!   `(group, topic, queue) = offset`; a later record wins. Journals
//!   older than the snapshot are stale and deleted at load.
//!
//! Replaying a whole journal on top of a snapshot that already holds a
//! prefix of it gives the same table (records are absolute values, in
//! commit order), which is what makes compaction crash-safe without a
//! commit marker.
//!
//! Journal layout (little-endian):
//!
//! ```text
//! header  | magic "SMQOFFJ1" (8) | generation u64 (8) |            = 16 bytes
//! record  | crc32 u32 | body_len u32 | body (body_len bytes) |
//! body    | queue u32 | offset u64 | topic_len u16 | group_len u16 |
//!         | topic (topic_len) | group (group_len) |                 = 16 + names
//! ```
//!
//! The CRC (crc32fast, IEEE) covers `body_len` and the body. Replay stops
//! at the first record that is short, too long or fails its CRC — a torn
//! tail from a crash mid-append — logs what it ignored, and at load the
//! live journal is truncated there so that new records follow valid ones.
//!
//! Compaction ([`compact_files`], run on the blocking thread) with the
//! table captured at generation `g+1`:
//! 1. create `consumerOffset.<g+1>.journal` with its header, fsync, fsync
//!    the directory;
//! 2. write the snapshot with `journalGeneration = g+1` to a temp file,
//!    fsync, rename over `consumerOffset.json`, fsync the directory;
//! 3. delete journals older than `g+1`.
//!
//! A crash before 2's rename leaves the old snapshot and journals `g`,
//! `g+1` (replayed in order); after it, journal `g` is stale and ignored.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const SNAPSHOT: &str = "consumerOffset.json";
const MAGIC: &[u8; 8] = b"SMQOFFJ1";
pub const HEADER_LEN: usize = 16;
/// crc + body_len.
const RECORD_PREFIX: usize = 8;
/// queue + offset + topic_len + group_len.
const BODY_FIXED: usize = 16;
/// Longest name a record may carry; topics are at most 255 bytes and
/// groups 120 (see `metadata::validate_*`), so this is never reached by a
/// valid request.
pub const MAX_NAME: usize = 1024;
const MAX_BODY: usize = BODY_FIXED + 2 * MAX_NAME;
const _: () = assert!(HEADER_LEN == MAGIC.len() + 8);
const _: () = assert!(BODY_FIXED == 4 + 8 + 2 + 2);

/// One journal record: `(group, topic, queue) = offset`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub group: Arc<str>,
    pub topic: Arc<str>,
    pub queue: u32,
    pub offset: u64,
}

/// Bytes [`encode_record`] appends for these names.
pub fn record_len(group: &str, topic: &str) -> usize {
    RECORD_PREFIX + BODY_FIXED + topic.len() + group.len()
}

pub fn journal_name(generation: u64) -> String {
    format!("consumerOffset.{generation:020}.journal")
}

fn journal_generation(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("consumerOffset.")?.strip_suffix(".journal")?;
    if digits.len() != 20 {
        return None;
    }
    digits.parse().ok()
}

pub fn encode_header(generation: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(MAGIC);
    h[8..].copy_from_slice(&generation.to_le_bytes());
    h
}

/// Appends one record to `out`. Names longer than [`MAX_NAME`] are a bug
/// of the caller (the table refuses them).
pub fn encode_record(out: &mut Vec<u8>, group: &str, topic: &str, queue: u32, offset: u64) {
    assert!(
        group.len() <= MAX_NAME && topic.len() <= MAX_NAME,
        "name too long for a journal record"
    );
    let body_len = BODY_FIXED + topic.len() + group.len();
    let start = out.len();
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&(body_len as u32).to_le_bytes());
    out.extend_from_slice(&queue.to_le_bytes());
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend_from_slice(&(topic.len() as u16).to_le_bytes());
    out.extend_from_slice(&(group.len() as u16).to_le_bytes());
    out.extend_from_slice(topic.as_bytes());
    out.extend_from_slice(group.as_bytes());
    let crc = crc32fast::hash(&out[start + 4..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
    debug_assert_eq!(out.len() - start, record_len(group, topic));
}

/// What [`decode_journal`] found.
#[derive(Debug, Default)]
pub struct Decoded {
    pub generation: u64,
    pub records: Vec<Record>,
    /// Length of the valid prefix (header + whole records).
    pub valid_len: usize,
    /// Why decoding stopped before the end, if it did.
    pub torn: Option<String>,
}

/// Decodes a journal file's bytes; a bad header is an error, a bad record
/// ends the journal there (torn tail).
pub fn decode_journal(bytes: &[u8]) -> Result<Decoded, String> {
    if bytes.len() < HEADER_LEN || &bytes[..8] != MAGIC {
        return Err("not an offsets journal (bad or short header)".into());
    }
    let generation = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    let mut d = Decoded {
        generation,
        valid_len: HEADER_LEN,
        ..Decoded::default()
    };
    let mut pos = HEADER_LEN;
    while pos < bytes.len() {
        match decode_record(&bytes[pos..]) {
            Ok((r, len)) => {
                d.records.push(r);
                pos += len;
                d.valid_len = pos;
            }
            Err(why) => {
                d.torn = Some(format!("{why} at byte {pos}; {} bytes ignored", bytes.len() - pos));
                break;
            }
        }
    }
    Ok(d)
}

fn decode_record(b: &[u8]) -> Result<(Record, usize), &'static str> {
    if b.len() < RECORD_PREFIX {
        return Err("short record prefix");
    }
    let crc = u32::from_le_bytes(b[0..4].try_into().expect("4 bytes"));
    let body_len = u32::from_le_bytes(b[4..8].try_into().expect("4 bytes")) as usize;
    if !(BODY_FIXED..=MAX_BODY).contains(&body_len) {
        return Err("bad record length");
    }
    let end = RECORD_PREFIX + body_len;
    if b.len() < end {
        return Err("short record");
    }
    if crc32fast::hash(&b[4..end]) != crc {
        return Err("record CRC mismatch");
    }
    let body = &b[RECORD_PREFIX..end];
    let queue = u32::from_le_bytes(body[0..4].try_into().expect("4 bytes"));
    let offset = u64::from_le_bytes(body[4..12].try_into().expect("8 bytes"));
    let topic_len = u16::from_le_bytes(body[12..14].try_into().expect("2 bytes")) as usize;
    let group_len = u16::from_le_bytes(body[14..16].try_into().expect("2 bytes")) as usize;
    if BODY_FIXED + topic_len + group_len != body_len {
        return Err("record name lengths disagree with its length");
    }
    let topic = std::str::from_utf8(&body[BODY_FIXED..BODY_FIXED + topic_len]).map_err(|_| "topic not UTF-8")?;
    let group = std::str::from_utf8(&body[BODY_FIXED + topic_len..]).map_err(|_| "group not UTF-8")?;
    Ok((
        Record {
            group: group.into(),
            topic: topic.into(),
            queue,
            offset,
        },
        end,
    ))
}

/// Offsets as `(group, topic, queue) -> offset` while loading.
pub type Loaded = BTreeMap<(Arc<str>, Arc<str>, u32), u64>;

/// What [`load_dir`] recovered, and where appends continue.
#[derive(Debug, Default)]
pub struct LoadedDir {
    pub table: Loaded,
    /// The journal new records go to (the newest one, torn tail cut off,
    /// or a new one).
    pub generation: u64,
    /// Valid length of that journal: where the next record goes; 0 when
    /// it does not exist yet (the first persist creates it).
    pub append_at: u64,
    /// Bytes of live journals other than the current one (replayed, not
    /// yet compacted away).
    pub older_bytes: u64,
}

/// Reads the snapshot and replays the journals; cuts a torn tail off the
/// newest journal. Creates nothing (a full disk must not stop a restart).
/// Start-up only
/// (std::fs, before the shard serves requests).
pub fn load_dir(dir: &Path) -> Result<LoadedDir, String> {
    let mut out = LoadedDir::default();
    let snap_gen = read_snapshot(dir, &mut out.table);
    let mut journals: Vec<(u64, PathBuf)> = Vec::new();
    match std::fs::read_dir(dir) {
        Ok(rd) => {
            for e in rd.flatten() {
                if let Some(g) = e.file_name().to_str().and_then(journal_generation) {
                    journals.push((g, e.path()));
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    }
    journals.sort();
    let mut live: Vec<(u64, PathBuf, u64)> = Vec::new();
    for (g, path) in journals {
        if g < snap_gen {
            // Compaction stopped after the snapshot's rename: already in it.
            if let Err(e) = std::fs::remove_file(&path) {
                log::warn!("{}: cannot remove stale offsets journal: {e}", path.display());
            }
            continue;
        }
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let d = match decode_journal(&bytes) {
            Ok(d) if d.generation == g => d,
            Ok(d) => {
                log::error!(
                    "{}: header says generation {}, name says {g}; ignoring it",
                    path.display(),
                    d.generation
                );
                continue;
            }
            Err(e) => {
                log::error!("{}: {e}; ignoring it", path.display());
                continue;
            }
        };
        if let Some(why) = &d.torn {
            log::warn!("{}: torn tail ignored: {why}", path.display());
        }
        for r in d.records {
            out.table.insert((r.group, r.topic, r.queue), r.offset);
        }
        live.push((g, path, d.valid_len as u64));
    }
    match live.pop() {
        Some((g, path, valid)) => match cut_torn_tail(&path, valid) {
            Ok(()) => {
                out.generation = g;
                out.append_at = valid;
            }
            Err(e) => {
                // Records after garbage would never be replayed: continue
                // in a new journal instead.
                log::error!("{e}; continuing in a new journal");
                live.push((g, path, valid));
                out.generation = g + 1;
            }
        },
        None => out.generation = snap_gen.max(1),
    }
    out.older_bytes = live.iter().map(|(_, _, len)| len).sum();
    Ok(out)
}

/// Truncates a journal to its valid prefix if it is longer.
fn cut_torn_tail(path: &Path, valid: u64) -> Result<(), String> {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let len = f.metadata().map_err(|e| format!("{}: {e}", path.display()))?.len();
    if len != valid {
        f.set_len(valid)
            .and_then(|()| f.sync_all())
            .map_err(|e| format!("{}: cutting the torn tail: {e}", path.display()))?;
    }
    Ok(())
}

/// Fills `table` from the snapshot; returns its journal generation
/// (0 when absent or unreadable — then every journal is replayed).
fn read_snapshot(dir: &Path, table: &mut Loaded) -> u64 {
    let path = dir.join(SNAPSHOT);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return 0,
        Err(e) => {
            log::error!("{}: {e}; starting without the snapshot", path.display());
            return 0;
        }
    };
    let v = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(v) => v,
        Err(e) => {
            log::error!(
                "{}: unreadable consumer offsets ({e}); starting without the snapshot",
                path.display()
            );
            return 0;
        }
    };
    if let Some(t) = v.get("offsetTable").and_then(|t| t.as_object()) {
        for (key, queues) in t {
            let Some((topic, group)) = key.split_once('@') else {
                continue;
            };
            let Some(queues) = queues.as_object() else { continue };
            let (topic, group): (Arc<str>, Arc<str>) = (topic.into(), group.into());
            for (q, off) in queues {
                if let (Ok(q), Some(off)) = (q.parse::<u32>(), off.as_u64()) {
                    table.insert((group.clone(), topic.clone(), q), off);
                }
            }
        }
    }
    v.get("journalGeneration").and_then(|g| g.as_u64()).unwrap_or(0)
}

/// The snapshot's JSON for these entries.
pub fn encode_snapshot(entries: &[Record], generation: u64) -> Vec<u8> {
    let mut out: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for r in entries {
        out.entry(format!("{}@{}", r.topic, r.group))
            .or_default()
            .insert(r.queue.to_string(), r.offset);
    }
    serde_json::json!({ "offsetTable": out, "journalGeneration": generation })
        .to_string()
        .into_bytes()
}

/// Creates journal `generation` holding only its header, durably.
fn create_journal(dir: &Path, generation: u64) -> Result<(), String> {
    let path = dir.join(journal_name(generation));
    let mut f = std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(&encode_header(generation))
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), String> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("{}: {e}", dir.display()))
}

/// How far [`compact_files`] got. From [`Step::SnapshotRenamed`] on, the
/// new journal is the live one whatever failed after.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    Nothing,
    JournalCreated,
    SnapshotRenamed,
    OldJournalsRemoved,
}

/// Compaction's file steps (see the module docs), blocking. `entries` is
/// the whole table as of the switch to `generation`. `stop_after` is for
/// crash tests: return as if the process died after that step.
pub fn compact_files(
    dir: &Path,
    generation: u64,
    entries: &[Record],
    stop_after: Option<Step>,
) -> (Step, Result<(), String>) {
    let stop = |s: Step| stop_after.is_some_and(|x| x <= s);
    if let Err(e) = create_journal(dir, generation) {
        return (Step::Nothing, Err(e));
    }
    if stop(Step::JournalCreated) {
        return (Step::JournalCreated, Ok(()));
    }
    let json = encode_snapshot(entries, generation);
    if let Err(e) = super::metadata::write_atomically(dir, SNAPSHOT, &json) {
        // write_atomically fails before its rename or in the final
        // directory fsync; only a successful rename may retire the old
        // journals, so look at what the snapshot says now.
        let renamed = snapshot_generation(dir) == Some(generation);
        let step = if renamed {
            Step::SnapshotRenamed
        } else {
            Step::JournalCreated
        };
        return (step, Err(e));
    }
    if stop(Step::SnapshotRenamed) {
        return (Step::SnapshotRenamed, Ok(()));
    }
    let mut result = Ok(());
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_name()
                .to_str()
                .and_then(journal_generation)
                .is_some_and(|g| g < generation)
            {
                if let Err(err) = std::fs::remove_file(e.path()) {
                    result = Err(format!("{}: {err}", e.path().display()));
                }
            }
        }
    }
    (Step::OldJournalsRemoved, result)
}

fn snapshot_generation(dir: &Path) -> Option<u64> {
    let b = std::fs::read(dir.join(SNAPSHOT)).ok()?;
    serde_json::from_slice::<serde_json::Value>(&b)
        .ok()?
        .get("journalGeneration")?
        .as_u64()
}
