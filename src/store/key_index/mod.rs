//! The key index of one shard: business keys (`KEYS`, space-separated) and
//! message ids (`UNIQ_KEY`) → records, for QUERY_MESSAGE.
//!
//! RocketMQ keeps a 420 MB IndexFile of hash slots and chained entries
//! that every append updates in place. Under O_DIRECT that is a 4 KiB
//! read-modify-write per key, at random places; here the index is
//! log-structured instead, like the CommitLog it follows:
//!
//! * **Memtable.** Each append adds one [`IndexEntry`] per key (64-bit
//!   FNV-1a of `"<topic>#<key>"`, log offset, store time, size) to an
//!   in-memory vector, in log order — no I/O on the append path.
//! * **Runs.** A background task (every checkpoint interval, apart from
//!   the checkpoint itself) writes the memtable's durable prefix as an
//!   immutable run file sorted by (hash, log offset) covering a log range
//!   `[from, to)` ([`run`] documents the format) once it holds
//!   `flush_entries` entries or is `flush_interval` old. Runs are written
//!   sequentially, O_DIRECT, fdatasynced and renamed into place.
//! * **Merges.** The background task merges the newest contiguous runs of
//!   one size class four at a time (size classes grow ×4), so a shard
//!   holds O(log n) runs; a lookup reads a few 4 KiB blocks per run.
//! * **Recovery.** Nothing in the memtable survives a crash, and the
//!   checkpoint does not wait for the index. At open every part of the
//!   retained log `[min, end)` that no run covers becomes a gap, and the
//!   background task indexes gaps from the CommitLog (reading it in 1 MiB
//!   windows) while the shard already serves; a corrupt run is set aside
//!   (`.corrupt-<secs>`) and its range becomes a gap too. Appends after
//!   open go to the memtable from `end` on.
//! * **Retention.** Runs whose range lies wholly below the log's minimum
//!   offset are deleted; entries below it in other runs are skipped.
//!
//! Entries only nominate candidates: a query reads each record and keeps
//! it only if its topic, keys and store time match, so hash collisions,
//! stale entries (a run that outlived a crash, an expired range) and
//! duplicates never reach a client.
//!
//! Memory: the memtable holds at most `max_mem_entries` (24 bytes each). A
//! memtable that fills up (runs written slower than keys arrive, or not
//! at all) stops taking entries; once it is written out, the records it
//! skipped become a gap that the background task indexes from the log —
//! bounded memory, no key lost, the index only lags. A run's fence costs
//! 8 bytes per 170 entries.
//!
//! Here: entries, keys, the memtable and lookups. `open.rs` opens the
//! directory, `flush.rs` writes runs (memtable, gaps), `upkeep.rs` expires
//! and merges them, `catch_up.rs` indexes gaps from the CommitLog and
//! `glue.rs` wires the index into [`MessageStore`](super::MessageStore).

mod catch_up;
mod flush;
mod glue;
mod open;
pub mod run;
mod upkeep;

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::error::StoreError;
use super::faults::DiskFaults;
use super::record::property_of;
pub use glue::KeyHits;
use run::Run;

/// One key of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub hash: u64,
    /// Log offset of the record (this shard's).
    pub pos: u64,
    /// Store time, seconds since the epoch.
    pub time_s: u32,
    pub size: u32,
}

/// Keys of one message indexed at most (the rest are not findable).
pub const MAX_KEYS_PER_MESSAGE: usize = 32;

#[derive(Debug, Clone)]
pub struct KeyIndexConfig {
    /// `messageIndexEnable`.
    pub enabled: bool,
    /// The memtable is written as a run once it holds this many entries…
    pub flush_entries: usize,
    /// …or its oldest entry is this old.
    pub flush_interval: Duration,
    /// Entries the memtable holds at most (runs failing to be written).
    pub max_mem_entries: usize,
}

impl Default for KeyIndexConfig {
    fn default() -> Self {
        KeyIndexConfig {
            enabled: true,
            flush_entries: 256 * 1024,
            flush_interval: Duration::from_secs(10),
            max_mem_entries: 4 << 20,
        }
    }
}

/// A store time in ms as an entry's seconds (clamped to what 32 bits hold).
pub fn store_secs(ms: i64) -> u32 {
    ms.div_euclid(1000).clamp(0, u32::MAX as i64) as u32
}

/// 64-bit FNV-1a of `"<topic>#<key>"`.
pub fn key_hash(topic: &[u8], key: &[u8]) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in topic.iter().chain(b"#").chain(key) {
        h ^= b as u64;
        h = h.wrapping_mul(PRIME);
    }
    h
}

/// The keys a record is found by: the words of `KEYS` and its `UNIQ_KEY`,
/// each once, at most [`MAX_KEYS_PER_MESSAGE`].
pub fn keys_of(props: &[u8]) -> Vec<&[u8]> {
    let mut keys: Vec<&[u8]> = Vec::new();
    let words = property_of(props, b"KEYS")
        .into_iter()
        .flat_map(|k| k.split(|&b| b == b' '))
        .chain(property_of(props, b"UNIQ_KEY"));
    for w in words {
        if !w.is_empty() && !keys.contains(&w) {
            if keys.len() == MAX_KEYS_PER_MESSAGE {
                break;
            }
            keys.push(w);
        }
    }
    keys
}

/// Whether a record with these properties is found by `key`.
pub fn has_key(props: &[u8], key: &str) -> bool {
    keys_of(props).contains(&key.as_bytes())
}

struct Mem {
    entries: Vec<IndexEntry>,
    /// Log offset the memtable covers from.
    from: u64,
    /// When its oldest entry was added.
    since: Option<Instant>,
    /// The memtable filled up at this log offset: records from there on
    /// are not added until it is written out, and then become a gap
    /// indexed from the log like a crash's.
    full_at: Option<u64>,
    /// Keys left to the log catch-up that way.
    deferred: u64,
}

/// Counters for metrics and `admin stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexStats {
    pub mem_entries: u64,
    pub runs: u64,
    pub run_entries: u64,
    /// Log bytes still to index from the CommitLog (after a crash, or
    /// while the memtable was full).
    pub pending_bytes: u64,
    /// Keys left to the log catch-up because the memtable was full.
    pub deferred: u64,
    pub flush_failures: u64,
}

pub struct KeyIndex {
    cfg: KeyIndexConfig,
    dir: PathBuf,
    faults: Option<Rc<DiskFaults>>,
    mem: RefCell<Mem>,
    /// Sorted by `from`. Flushes append; only the background task
    /// (catch-up, merges, expiry) removes.
    runs: RefCell<Vec<Rc<Run>>>,
    /// Log ranges no run covers, to index from the CommitLog.
    gaps: RefCell<Vec<(u64, u64)>>,
    flush_failures: Cell<u64>,
    last_error_log: Cell<Option<Instant>>,
    /// One upkeep pass (catch-up, merges, expiry) at a time.
    pub(super) upkeep: glommio::sync::Semaphore,
    /// One memtable flush at a time (the periodic one, a forced one).
    flushing: glommio::sync::Semaphore,
}

impl KeyIndex {
    pub fn enabled(&self) -> bool {
        self.cfg.enabled
    }

    /// Indexes one appended record (the append path: no I/O). When the
    /// memtable is full the record is left to the log catch-up instead:
    /// memory stays bounded, no key is lost.
    pub fn add(&self, topic: &str, props: &[u8], pos: u64, size: u32, store_ms: i64) {
        if !self.cfg.enabled {
            return;
        }
        let keys = keys_of(props);
        if keys.is_empty() {
            return;
        }
        let mut mem = self.mem.borrow_mut();
        let fits = mem.entries.len() + keys.len() <= self.cfg.max_mem_entries;
        if mem.full_at.is_some() || !fits {
            mem.full_at.get_or_insert(pos);
            mem.deferred += keys.len() as u64;
            return;
        }
        if mem.entries.is_empty() {
            mem.since = Some(Instant::now());
        }
        let time_s = store_secs(store_ms);
        for k in keys {
            mem.entries.push(IndexEntry {
                hash: key_hash(topic.as_bytes(), k),
                pos,
                time_s,
                size,
            });
        }
    }

    /// Candidates for `hash` stored in `[begin_s, end_s]`, newest first,
    /// each position once. Records still have to be checked.
    pub async fn lookup(
        &self,
        hash: u64,
        begin_s: u32,
        end_s: u32,
        log_min: u64,
    ) -> Result<Vec<IndexEntry>, StoreError> {
        let in_range = |e: &IndexEntry| e.hash == hash && e.pos >= log_min && (begin_s..=end_s).contains(&e.time_s);
        // The memtable in slices, yielding between them: a full one (4 Mi
        // entries) must not hold the shard for tens of ms. A slice starts
        // at a log offset, not an index (a flush may drain the front
        // meanwhile: those entries are in the run it appends, read below);
        // entries seen twice are deduplicated below.
        let mut out: Vec<IndexEntry> = Vec::new();
        let mut from_pos = 0u64;
        loop {
            let done = {
                let mem = self.mem.borrow();
                let start = mem.entries.partition_point(|e| e.pos < from_pos);
                let slice = &mem.entries[start..(start + SCAN_SLICE).min(mem.entries.len())];
                out.extend(slice.iter().filter(|e| in_range(e)).copied());
                match slice.last() {
                    Some(last) if slice.len() == SCAN_SLICE => {
                        from_pos = last.pos;
                        false
                    }
                    _ => true,
                }
            };
            if done {
                break;
            }
            glommio::yield_if_needed().await;
        }
        let runs: Vec<Rc<Run>> = self
            .runs
            .borrow()
            .iter()
            .filter(|r| r.entries > 0 && r.to > log_min && r.max_s >= begin_s && r.min_s <= end_s)
            .cloned()
            .collect();
        // One read per run, all in flight at once.
        let found = futures::future::join_all(runs.iter().map(|r| r.lookup(hash))).await;
        for entries in found {
            out.extend(entries?.into_iter().filter(|e| in_range(e)));
        }
        out.sort_unstable_by_key(|e| std::cmp::Reverse(e.pos));
        out.dedup_by_key(|e| e.pos);
        Ok(out)
    }

    /// The log offset and time of the newest indexed entry (QUERY_MESSAGE's
    /// `indexLastUpdatePhyoffset` / `indexLastUpdateTimestamp`).
    pub fn last_update(&self) -> (u64, i64) {
        let mem = self.mem.borrow();
        match mem.entries.last() {
            Some(e) => (e.pos, e.time_s as i64 * 1000),
            None => (mem.from, 0),
        }
    }

    pub fn stats(&self) -> IndexStats {
        let mem = self.mem.borrow();
        let runs = self.runs.borrow();
        IndexStats {
            mem_entries: mem.entries.len() as u64,
            runs: runs.len() as u64,
            run_entries: runs.iter().map(|r| r.entries).sum(),
            pending_bytes: self.gaps.borrow().iter().map(|(a, b)| b - a).sum(),
            deferred: mem.deferred,
            flush_failures: self.flush_failures.get(),
        }
    }

    pub fn memory(&self) -> usize {
        let fences: usize = self.runs.borrow().iter().map(|r| r.blocks() * 8).sum();
        self.mem.borrow().entries.capacity() * std::mem::size_of::<IndexEntry>() + fences
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Memtable entries a lookup scans between yields.
const SCAN_SLICE: usize = 64 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_the_words_of_keys_and_the_uniq_key_once_each() {
        let props = b"KEYS\x01a b  a c\x02UNIQ_KEY\x01U1\x02TAGS\x01t\x02";
        assert_eq!(keys_of(props), vec![&b"a"[..], b"b", b"c", b"U1"]);
        assert!(has_key(props, "U1") && has_key(props, "c") && !has_key(props, "t"));
        assert!(keys_of(b"TAGS\x01t\x02").is_empty());
        let many: String = (0..100).map(|i| format!("k{i} ")).collect();
        let props = format!("KEYS\x01{many}\x02");
        assert_eq!(keys_of(props.as_bytes()).len(), MAX_KEYS_PER_MESSAGE);
    }

    #[test]
    fn the_hash_covers_topic_and_key() {
        assert_ne!(key_hash(b"T", b"k"), key_hash(b"U", b"k"));
        assert_ne!(key_hash(b"Tk", b""), key_hash(b"T", b"k"));
        // FNV-1a 64 of "a#b", fixed forever: it is on disk.
        assert_eq!(key_hash(b"a", b"b"), 0xe649_cb19_048b_e20d);
    }

    #[test]
    fn run_names_round_trip_and_reject_others() {
        let n = run::file_name(4096, 8192);
        assert_eq!(run::parse_name(&n), Some((4096, 8192)));
        assert_eq!(run::parse_name("00000000000000000001-00000000000000000000.run"), None);
        assert_eq!(run::parse_name("x.run"), None);
        assert_eq!(run::parse_name(&format!("{n}.tmp")), None);
    }
}
