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

mod catch_up;
mod glue;
pub mod run;

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::commit_log::CommitLog;
use super::error::StoreError;
use super::faults::DiskFaults;
use super::record::property_of;
pub use glue::KeyHits;
use run::{Run, RunWriter};

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
    /// Opens `<shard>/index`: removes leftovers of interrupted writes, sets
    /// aside corrupt runs, drops runs another covers (a merge interrupted
    /// before it deleted its inputs) and expired ones, and lists the gaps
    /// of `[log_min, log_end)` for the background task.
    pub async fn open(
        dir: PathBuf,
        cfg: KeyIndexConfig,
        faults: Option<Rc<DiskFaults>>,
        log_min: u64,
        log_end: u64,
    ) -> Result<KeyIndex, StoreError> {
        let mut index = KeyIndex {
            mem: RefCell::new(Mem {
                entries: Vec::new(),
                from: log_end,
                since: None,
                full_at: None,
                deferred: 0,
            }),
            runs: RefCell::new(Vec::new()),
            gaps: RefCell::new(Vec::new()),
            cfg,
            dir,
            faults,
            flush_failures: Cell::new(0),
            last_error_log: Cell::new(None),
            upkeep: glommio::sync::Semaphore::new(1),
            flushing: glommio::sync::Semaphore::new(1),
        };
        if !index.cfg.enabled {
            return Ok(index);
        }
        let dir = index.dir.clone();
        std::fs::create_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
        let mut names = Vec::new();
        for ent in std::fs::read_dir(&dir).map_err(|e| StoreError::io(&dir, e))? {
            let ent = ent.map_err(|e| StoreError::io(&dir, e))?;
            let name = ent.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                std::fs::remove_file(ent.path()).map_err(|e| StoreError::io(ent.path(), e))?;
            } else if let Some(r) = run::parse_name(&name) {
                names.push((r, ent.path()));
            }
        }
        // Widest first among equal starts, so covered runs come after.
        names.sort_by_key(|((from, to), _)| (*from, std::cmp::Reverse(*to)));
        let mut runs: Vec<Rc<Run>> = Vec::new();
        for ((from, to), path) in names {
            let covered = runs.iter().any(|r| r.from <= from && to <= r.to);
            if covered || to <= log_min {
                std::fs::remove_file(&path).map_err(|e| StoreError::io(&path, e))?;
                continue;
            }
            match Run::open(&path).await {
                Ok(r) => runs.push(Rc::new(r)),
                Err(e) => {
                    let secs = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs());
                    let aside = path.with_extension(format!("run.corrupt-{secs}"));
                    log::error!(
                        "key index: {e}; set aside as {} and its range is indexed again from the CommitLog",
                        aside.display()
                    );
                    std::fs::rename(&path, &aside).map_err(|e| StoreError::io(&path, e))?;
                }
            }
        }
        // A run may reach past the recovered end (records lost in a
        // crash): its entries there are stale and verified away.
        let mut gaps = Vec::new();
        let mut at = log_min;
        for r in &runs {
            if r.from > at && at < log_end {
                gaps.push((at, r.from.min(log_end)));
            }
            at = at.max(r.to);
        }
        if at < log_end {
            gaps.push((at, log_end));
        }
        if !gaps.is_empty() {
            let bytes: u64 = gaps.iter().map(|(a, b)| b - a).sum();
            log::info!(
                "key index {}: {} runs; {bytes} log bytes in {} ranges to index from the CommitLog",
                dir.display(),
                runs.len(),
                gaps.len()
            );
        }
        index.runs = RefCell::new(runs);
        index.gaps = RefCell::new(gaps);
        Ok(index)
    }

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

    /// Writes the memtable's entries of durable records as a run when it
    /// is due (size or age, or full) or `force`d (shutdown). A failure
    /// keeps them for the next call. The sort runs on the executor's
    /// blocking thread: a few million entries would hold the shard for a
    /// while.
    pub async fn flush(&self, log: &CommitLog, force: bool) -> Result<(), StoreError> {
        let _turn = self
            .flushing
            .acquire_permit(1)
            .await
            .map_err(|e| StoreError::Glommio(format!("key index flush: {e}")))?;
        let durable = log.flushed();
        let (from, to, batch) = {
            let mem = self.mem.borrow();
            let to = mem.full_at.map_or(durable, |p| p.min(durable));
            let n = mem.entries.partition_point(|e| e.pos < to);
            let due = force
                || mem.full_at.is_some()
                || n >= self.cfg.flush_entries
                || mem.since.is_some_and(|t| t.elapsed() >= self.cfg.flush_interval);
            if !due || n == 0 || to <= mem.from {
                return Ok(());
            }
            (mem.from, to, mem.entries[..n].to_vec())
        };
        let n = batch.len();
        let batch = crate::runtime::blocking::run(move || {
            let mut b = batch;
            b.sort_unstable_by_key(|e| (e.hash, e.pos));
            b
        })
        .await;
        match self.write_run(from, to, &batch).await {
            Ok(run) => {
                let mut mem = self.mem.borrow_mut();
                mem.entries.drain(..n);
                // A burst's capacity is given back once written out.
                let keep = (mem.entries.len() * 2).max(self.cfg.flush_entries);
                if mem.entries.capacity() > 2 * keep {
                    mem.entries.shrink_to(keep);
                }
                mem.from = to;
                mem.since = (!mem.entries.is_empty()).then(Instant::now);
                if mem.full_at == Some(to) && mem.entries.is_empty() {
                    // Written out since it filled up: every record since
                    // then is a gap; the memtable goes on from the end.
                    let end = log.write_pos();
                    mem.full_at = None;
                    mem.from = end;
                    self.gaps.borrow_mut().push((to, end));
                }
                self.runs.borrow_mut().push(Rc::new(run));
                Ok(())
            }
            Err(e) => {
                self.flush_failures.set(self.flush_failures.get() + 1);
                let quiet = self
                    .last_error_log
                    .get()
                    .is_some_and(|t| t.elapsed() < Duration::from_secs(60));
                if !quiet {
                    self.last_error_log.set(Some(Instant::now()));
                    log::error!(
                        "key index: cannot write the run of log [{from}, {to}) ({n} entries kept in memory, retried): {e}"
                    );
                }
                Err(e)
            }
        }
    }

    async fn write_run(&self, from: u64, to: u64, sorted: &[IndexEntry]) -> Result<Run, StoreError> {
        let mut w = RunWriter::create(&self.dir, from, to, self.faults.clone()).await?;
        for e in sorted {
            if let Err(err) = w.push(*e).await {
                w.abandon().await;
                return Err(err);
            }
        }
        w.finish(from, to).await
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

    /// The next gap to index from the CommitLog, if any.
    pub fn next_gap(&self) -> Option<(u64, u64)> {
        self.gaps.borrow().first().copied()
    }

    /// Indexes `[from, to)` of a gap with `sorted` entries: writes the run
    /// and shrinks the gap.
    pub async fn fill_gap(&self, from: u64, to: u64, mut entries: Vec<IndexEntry>) -> Result<(), StoreError> {
        entries.sort_unstable_by_key(|e| (e.hash, e.pos));
        let run = self.write_run(from, to, &entries).await?;
        let mut runs = self.runs.borrow_mut();
        let at = runs.partition_point(|r| r.from < from);
        runs.insert(at, Rc::new(run));
        let mut gaps = self.gaps.borrow_mut();
        if let Some(g) = gaps.iter_mut().find(|g| g.0 == from) {
            g.0 = to;
        }
        gaps.retain(|g| g.0 < g.1);
        Ok(())
    }

    /// Deletes runs wholly below `log_min` and forgets gaps there.
    pub async fn expire(&self, log_min: u64) -> Result<usize, StoreError> {
        let dead: Vec<Rc<Run>> = {
            let mut runs = self.runs.borrow_mut();
            let n = runs.partition_point(|r| r.to <= log_min);
            runs.drain(..n).collect()
        };
        {
            let mut gaps = self.gaps.borrow_mut();
            for g in gaps.iter_mut() {
                g.0 = g.0.max(log_min);
            }
            gaps.retain(|g| g.0 < g.1);
        }
        for r in &dead {
            glommio::io::remove(&r.path)
                .await
                .map_err(|e| StoreError::glommio(format_args!("remove {}", r.path.display()), e))?;
        }
        Ok(dead.len())
    }

    /// Merges [`FAN_IN`] or more contiguous runs of one size class (the
    /// newest such group; catch-up runs sit anywhere); returns whether it
    /// merged (call again: merges cascade).
    pub async fn merge_once(&self) -> Result<bool, StoreError> {
        let inputs: Vec<Rc<Run>> = {
            let runs = self.runs.borrow();
            match mergeable(&runs) {
                Some(range) => runs[range].to_vec(),
                None => return Ok(false),
            }
        };
        let (from, to) = (inputs[0].from, inputs[inputs.len() - 1].to);
        let mut w = RunWriter::create(&self.dir, from, to, self.faults.clone()).await?;
        let mut cursors: Vec<run::Cursor> = inputs.iter().map(|r| r.cursor()).collect();
        let merged: Result<(), StoreError> = async {
            loop {
                let mut best: Option<(usize, IndexEntry)> = None;
                for (i, c) in cursors.iter_mut().enumerate() {
                    if let Some(e) = c.peek().await? {
                        if best.is_none_or(|(_, b)| (e.hash, e.pos) < (b.hash, b.pos)) {
                            best = Some((i, e));
                        }
                    }
                }
                let Some((i, e)) = best else { return Ok(()) };
                cursors[i].advance();
                w.push(e).await?;
            }
        }
        .await;
        if let Err(e) = merged {
            w.abandon().await;
            return Err(e);
        }
        let out = Rc::new(w.finish(from, to).await?);
        {
            let mut runs = self.runs.borrow_mut();
            let Some(at) = runs.iter().position(|r| Rc::ptr_eq(r, &inputs[0])) else {
                return Err(StoreError::Glommio("key index: merged runs vanished".into()));
            };
            runs.splice(at..at + inputs.len(), [out]);
        }
        for r in &inputs {
            glommio::io::remove(&r.path)
                .await
                .map_err(|e| StoreError::glommio(format_args!("remove {}", r.path.display()), e))?;
        }
        Ok(true)
    }
}

/// Memtable entries a lookup scans between yields.
const SCAN_SLICE: usize = 64 * 1024;

/// Runs merged at once, at least and at most.
const FAN_IN: usize = 4;
const MAX_FAN_IN: usize = 8;

/// The newest group of at least [`FAN_IN`] (at most [`MAX_FAN_IN`])
/// adjacent runs (each ends where the next begins) of one size class.
fn mergeable(runs: &[Rc<Run>]) -> Option<std::ops::Range<usize>> {
    let mut end = runs.len();
    while end >= FAN_IN {
        let class = size_class(runs[end - 1].entries);
        let mut start = end - 1;
        while start > 0
            && end - start < MAX_FAN_IN
            && runs[start - 1].to == runs[start].from
            && size_class(runs[start - 1].entries) == class
        {
            start -= 1;
        }
        if end - start >= FAN_IN {
            return Some(start..end);
        }
        // Too few: try the group before this one.
        end = start;
    }
    None
}

/// Size classes: up to 16 Ki entries, then ×4 each.
fn size_class(entries: u64) -> u32 {
    let mut c = 0;
    let mut limit = 16 * 1024;
    while entries > limit {
        c += 1;
        limit *= 4;
    }
    c
}

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
    fn size_classes_grow_by_four() {
        assert_eq!(size_class(0), 0);
        assert_eq!(size_class(16 * 1024), 0);
        assert_eq!(size_class(16 * 1024 + 1), 1);
        assert_eq!(size_class(64 * 1024), 1);
        assert_eq!(size_class(64 * 1024 + 1), 2);
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
