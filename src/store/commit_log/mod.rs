//! One shard's CommitLog: an append-only sequence of fixed-size segments
//! holding stored records back to back, written with O_DIRECT.
//!
//! # Write path and group commit
//!
//! [`CommitLog::reserve`] and [`CommitLog::write`] run synchronously on the
//! shard (no await between them, so no other task interleaves): the record
//! is placed at the write position and copied into the [`TailCache`] (the
//! only copy of its bytes in memory until the flush).
//!
//! Group commit is a two-stage pipeline of two tasks:
//! * the **writer** ([`run_flusher`](CommitLog::run_flusher)) takes
//!   everything appended since its last write — one record or ten
//!   thousand — copies it once into DMA buffers (from glommio's registered
//!   pool; only the holes past a sealed segment's last record are zeroed)
//!   and writes the aligned blocks that cover it with O_DIRECT, the last,
//!   partial block padded and rewritten by the next write;
//! * the **syncer** ([`run_syncer`](CommitLog::run_syncer)) fdatasyncs the
//!   segments written, then advances `flushed` and wakes exactly the
//!   appenders whose record ends at or below it
//!   ([`durable_wait`](super::durable_wait): a queue ordered by offset).
//!
//! Group N+1 is written while group N's fdatasync runs, and the writer
//! stays at most one group ahead, so each sync covers everything that
//! arrived during the previous one: a round costs max(write, sync), not
//! write + sync. In ASYNC mode the writer waits for a size or time trigger
//! instead and appenders do not wait at all.
//!
//! `flushed <= written <= write_pos`: bytes below `written` are on the
//! device, below `flushed` durable. Only `flushed` is ever published to
//! readers, acknowledgements and retention.
//!
//! Rewriting a partial block never endangers acknowledged bytes: the
//! rewrite carries the same bytes for the acknowledged prefix, and a torn
//! block write leaves each 512-byte sector old or new — identical there.
//!
//! # Invariants
//! `min_offset <= cache.start <= flushed <= write_pos`; a record never spans
//! two segments (a BLANK marker fills the rest of a segment that cannot
//! hold the next record); segments are prepared before the flusher needs
//! them, never on the append path.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use super::config::{FlushMode, StoreConfig};
use super::durable_wait::Waiters;
use super::error::StoreError;
use super::faults::DiskFaults;
use super::notify::Notify;
use super::record::{encode_blank, BLANK_SIZE};
use super::retention::DiskUsage;
use super::segment::{align_down, Segment};
use super::tail_cache::TailCache;

/// How a durability wait ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Durability {
    Durable,
    TimedOut,
    Failed(String),
}

/// Why an append was refused before it was placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReserveError {
    /// The record cannot fit in any segment.
    TooLarge,
    /// Unflushed data fills the tail cache: back off.
    Busy,
    /// The flusher failed; nothing more can be made durable.
    Failed(String),
    /// The segment the record would go to cannot be prepared (the data
    /// directory is unwritable or full), or the flusher's writes fail for
    /// lack of space: refused rather than held in memory with nowhere to
    /// go. Clears when the preparer (or the flusher's retry) succeeds.
    Unavailable(String),
}

struct LogState {
    write_pos: u64,
    active_base: u64,
    cache: TailCache,
}

pub struct CommitLog {
    dir: PathBuf,
    segment_size: u64,
    pre_zero: bool,
    mode: FlushMode,
    async_flush_interval: Duration,
    async_flush_bytes: u64,
    state: RefCell<LogState>,
    segments: RefCell<BTreeMap<u64, Rc<Segment>>>,
    /// Everything below is durable.
    flushed: Cell<u64>,
    /// Everything below has been written to its segment (durable once a
    /// sync that started after the write completes): `flushed <= written`.
    written: Cell<u64>,
    /// The `written` position the running (or last) sync covers: the
    /// writer writes at most one group past it.
    sync_taken: Cell<u64>,
    /// Segments written to since the last sync was taken.
    unsynced: RefCell<Vec<Rc<Segment>>>,
    /// The writer stopped (shutdown or failure): the syncer ends once it
    /// has synced what was written.
    writer_done: Cell<bool>,
    /// First retained log offset (base of the oldest segment).
    min_offset: Cell<u64>,
    /// `log_pos` of the last checkpoint stored on disk: recovery after a
    /// crash scans from there, so no segment ending above it may go.
    checkpointed: Cell<u64>,
    failed: RefCell<Option<String>>,
    /// Why the last flush could not write (the disk is full): appends are
    /// refused while it is set; the flusher retries and clears it.
    write_stall: RefCell<Option<String>>,
    prepare_error: RefCell<Option<String>>,
    /// The last preparation failed because the segment would take disk
    /// use above `diskMaxUsedSpaceRatio` (not for an I/O error).
    prepare_refused_for_space: Cell<bool>,
    /// An append needing a new segment was refused since the last one was
    /// prepared: the log takes nothing until one is.
    refusing: Cell<bool>,
    shutting_down: Cell<bool>,
    /// `MessageStore::truncate_log` (or `start_log_at`) runs: nothing is
    /// reserved meanwhile, and the preparer creates no segment.
    truncating: Cell<bool>,
    /// The preparer is creating a segment file (not yet in the map).
    preparing: Cell<bool>,
    stop_preparer: Cell<bool>,
    /// Appends wake the writer.
    dirty: Notify,
    /// The writer wakes the syncer: more is written.
    wrote: Notify,
    /// The syncer wakes the writer: it took a group (or failed).
    sync_progress: Notify,
    /// Durability waiters, woken by the syncer exactly when covered and by
    /// the timeout ticker when their deadline passes.
    waiters: Waiters,
    /// Fires when `flushed` moves (replication streams durable bytes).
    pub durable_progress: Notify,
    /// A roll wakes the preparer; a prepared segment wakes the flusher.
    rolled: Notify,
    prepared: Notify,
    /// Probe: flushes, synced bytes, fdatasync latencies.
    pub probe: RefCell<FlushProbe>,
    /// Disk-use probe and `diskMaxUsedSpaceRatio`: the preparer refuses a
    /// segment that would take use above the ratio.
    space: RefCell<Option<(SharedDiskUsage, u8)>>,
    /// Handed to every segment (tests only).
    faults: Option<Rc<DiskFaults>>,
}

/// The store's disk-use probe, shared with the CommitLog's preparer.
pub type SharedDiskUsage = Rc<RefCell<Box<dyn DiskUsage>>>;

#[derive(Default, Clone)]
pub struct FlushProbe {
    pub flushes: u64,
    pub bytes_written: u64,
    pub sync_micros: Vec<u32>,
}

impl CommitLog {
    /// Builds the log over recovered segments; `end` is the recovered write
    /// position (everything below it durable and valid).
    pub fn new(cfg: &StoreConfig, dir: PathBuf, segments: BTreeMap<u64, Rc<Segment>>, end: u64) -> CommitLog {
        let size = cfg.segment_size;
        let min = segments.keys().next().copied().unwrap_or(align_down_to(end, size));
        // Chunks: a sixteenth of the cache, 64 KiB..=1 MiB, dividing segments.
        let chunk = ((cfg.tail_cache_bytes as u64 / 16).clamp(64 << 10, 1 << 20) & !4095).min(size) as usize;
        CommitLog {
            dir,
            segment_size: size,
            pre_zero: cfg.segment_pre_zero,
            mode: cfg.flush_mode,
            async_flush_interval: cfg.async_flush_interval,
            async_flush_bytes: cfg.async_flush_bytes as u64,
            state: RefCell::new(LogState {
                write_pos: end,
                active_base: align_down_to(end, size),
                cache: TailCache::new(cfg.tail_cache_bytes, chunk),
            }),
            segments: RefCell::new(segments),
            flushed: Cell::new(end),
            written: Cell::new(end),
            sync_taken: Cell::new(end),
            unsynced: RefCell::new(Vec::new()),
            writer_done: Cell::new(false),
            min_offset: Cell::new(min),
            checkpointed: Cell::new(0),
            failed: RefCell::new(None),
            write_stall: RefCell::new(None),
            prepare_error: RefCell::new(None),
            prepare_refused_for_space: Cell::new(false),
            refusing: Cell::new(false),
            shutting_down: Cell::new(false),
            truncating: Cell::new(false),
            preparing: Cell::new(false),
            stop_preparer: Cell::new(false),
            dirty: Notify::default(),
            wrote: Notify::default(),
            sync_progress: Notify::default(),
            waiters: Waiters::default(),
            durable_progress: Notify::default(),
            rolled: Notify::default(),
            prepared: Notify::default(),
            probe: RefCell::new(FlushProbe::default()),
            space: RefCell::new(None),
            faults: cfg.faults.clone(),
        }
    }

    /// Puts the valid prefix of the last block (from recovery) into the tail
    /// cache so that the first flush rewrites that block intact.
    pub fn seed_tail(&self, end: u64, tail_block: &[u8]) {
        if tail_block.is_empty() {
            return;
        }
        let block = align_down(end);
        debug_assert_eq!(block + tail_block.len() as u64, end);
        self.state.borrow_mut().cache.append(block, tail_block, true);
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn write_pos(&self) -> u64 {
        self.state.borrow().write_pos
    }

    pub fn flushed(&self) -> u64 {
        self.flushed.get()
    }

    pub fn min_offset(&self) -> u64 {
        self.min_offset.get()
    }

    /// Records the `log_pos` of a checkpoint that is now stored on disk.
    pub fn set_checkpointed(&self, log_pos: u64) {
        if log_pos > self.checkpointed.get() {
            self.checkpointed.set(log_pos);
        }
    }

    pub fn checkpointed(&self) -> u64 {
        self.checkpointed.get()
    }

    pub fn segment_size(&self) -> u64 {
        self.segment_size
    }

    /// Whether the oldest segment could go but for the stored checkpoint
    /// (a checkpoint taken now would free it).
    pub fn oldest_waits_for_checkpoint(&self) -> bool {
        let Some(base) = self.segments.borrow().keys().next().copied() else {
            return false;
        };
        let end = base + self.segment_size;
        end <= self.flushed.get() && base < self.active_base() && end > self.checkpointed.get()
    }

    pub fn failure(&self) -> Option<String> {
        self.failed.borrow().clone()
    }

    /// Why the flusher cannot write (a full disk), while it keeps failing.
    pub fn write_stall(&self) -> Option<String> {
        self.write_stall.borrow().clone()
    }

    /// Why the last segment preparation failed, while it keeps failing.
    pub fn prepare_error(&self) -> Option<String> {
        self.prepare_error.borrow().clone()
    }

    /// While appends are refused for want of a segment: whether for disk
    /// space (true), and why. None while the log takes appends, even if
    /// the next segment cannot be prepared yet (the active one has room).
    pub fn segment_refusal(&self) -> Option<(bool, String)> {
        if !self.refusing.get() {
            return None;
        }
        let why = self.prepare_error.borrow().clone()?;
        Some((self.prepare_refused_for_space.get(), why))
    }

    pub fn cache_memory(&self) -> usize {
        self.state.borrow().cache.memory()
    }

    /// Places `len` bytes: rolls to the next segment when needed and makes
    /// room in the tail cache. Returns the log offset to write at. Must be
    /// followed by [`write`](Self::write) before any await.
    pub fn reserve(&self, len: usize) -> Result<u64, ReserveError> {
        self.reserve_with(len, false)
    }

    /// [`Self::reserve`] in the next segment even when `len` would fit
    /// in this one: a slave replaying its master's log rolls where the
    /// master did (the master rolled for a whole batch; the slave places
    /// the batch's records one by one).
    pub fn reserve_in_next_segment(&self, len: usize) -> Result<u64, ReserveError> {
        self.reserve_with(len, true)
    }

    fn reserve_with(&self, len: usize, force_roll: bool) -> Result<u64, ReserveError> {
        if let Some(f) = self.failed.borrow().as_ref() {
            return Err(ReserveError::Failed(f.clone()));
        }
        if let Some(why) = self.write_stall.borrow().as_ref() {
            return Err(ReserveError::Unavailable(format!(
                "CommitLog writes fail, retrying until space returns: {why}"
            )));
        }
        if self.truncating.get() {
            return Err(ReserveError::Unavailable("the CommitLog is being truncated".into()));
        }
        let len64 = len as u64;
        if len64 + BLANK_SIZE as u64 > self.segment_size {
            return Err(ReserveError::TooLarge);
        }
        let mut st = self.state.borrow_mut();
        let flushed = self.flushed.get();
        let active_end = st.active_base + self.segment_size;
        let roll = force_roll || st.write_pos + len64 + BLANK_SIZE as u64 > active_end;
        let lands_in = if roll { active_end } else { st.active_base };
        // Nothing is accepted for a segment file that does not exist yet:
        // an acknowledged record always has a file to go to. Normally the
        // preparer is a segment ahead and this never triggers; when it lags
        // the producer backs off (Busy), and when it fails the append is
        // refused with the reason.
        if !self.segments.borrow().contains_key(&lands_in) {
            drop(st);
            self.rolled.notify_all();
            return Err(match self.prepare_error.borrow().as_ref() {
                Some(why) => {
                    self.refusing.set(true);
                    ReserveError::Unavailable(format!("CommitLog segment {lands_in} cannot be prepared: {why}"))
                }
                None => ReserveError::Busy,
            });
        }
        // The BLANK marker (on a roll) lands in the current chunk.
        if !st.cache.make_room(BLANK_SIZE, flushed, false) || !st.cache.make_room(len, flushed, roll) {
            drop(st);
            self.dirty.notify_all(); // flush now: that is what frees room
            return Err(ReserveError::Busy);
        }
        if roll {
            let remaining = (active_end - st.write_pos) as u32;
            let pos = st.write_pos;
            st.cache.append(pos, &encode_blank(remaining), false);
            st.active_base = active_end;
            st.write_pos = active_end;
            drop(st);
            self.rolled.notify_all();
            return Ok(active_end);
        }
        Ok(st.write_pos)
    }

    /// Copies encoded records into the tail at `pos` (from `reserve`).
    pub fn write(&self, pos: u64, bytes: &[u8]) {
        let mut st = self.state.borrow_mut();
        debug_assert!(pos == st.write_pos, "write must follow reserve");
        let new_segment = pos == st.active_base;
        st.cache.append(pos, bytes, new_segment);
        st.write_pos = pos + bytes.len() as u64;
        let dirty = st.write_pos - self.flushed.get();
        drop(st);
        if self.mode == FlushMode::Sync || dirty >= self.async_flush_bytes {
            self.dirty.notify_all();
        }
    }

    /// Reads `len` bytes at `pos` from the tail cache or the segment file.
    pub async fn read(&self, pos: u64, len: usize) -> Result<Vec<u8>, StoreError> {
        let mut out = vec![0u8; len];
        if self.state.borrow().cache.read(pos, &mut out) {
            return Ok(out);
        }
        let seg = self.segment_at(pos).ok_or_else(|| StoreError::Corrupt {
            path: self.dir.clone(),
            what: format!("no segment holds log offset {pos}"),
        })?;
        let r = seg.read(pos, len).await?;
        if r.len() < len {
            return Err(StoreError::Corrupt {
                path: seg.path.clone(),
                what: format!("short read at {pos}"),
            });
        }
        out.copy_from_slice(&r[..len]);
        Ok(out)
    }

    /// Copies from the tail cache only; false if not cached.
    pub fn read_cached(&self, pos: u64, out: &mut [u8]) -> bool {
        self.state.borrow().cache.read(pos, out)
    }

    pub fn segment_at(&self, pos: u64) -> Option<Rc<Segment>> {
        let segs = self.segments.borrow();
        let (_, s) = segs.range(..=pos).next_back()?;
        (pos < s.end()).then(|| s.clone())
    }

    /// Bases of all segments, oldest first.
    pub fn segment_bases(&self) -> Vec<u64> {
        self.segments.borrow().keys().copied().collect()
    }

    pub fn active_base(&self) -> u64 {
        self.state.borrow().active_base
    }

    /// While set, [`Self::reserve`] refuses (`MessageStore::truncate_log`).
    /// The preparer also holds off meanwhile (see [`Self::preparer_quiet`]).
    pub(in crate::store) fn set_truncating(&self, on: bool) {
        self.truncating.set(on);
        if !on {
            self.rolled.notify_all();
        }
    }

    /// Cuts the log back to `to` in memory (`MessageStore::truncate_log`;
    /// everything must be durable and nothing reserved): write, written,
    /// sync and durable positions become `to`, the tail cache drops what
    /// lies at or after it and keeps (or is seeded with) `tail_block`, the
    /// bytes `[align_down(to), to)` the next flush rewrites. Returns the
    /// segments after the one holding `to`: they stay in the log (so that
    /// the preparer does not prepare their files again) until
    /// [`Self::forget_segments_after`], once they are deleted.
    pub(in crate::store) fn cut_back(&self, to: u64, tail_block: &[u8]) -> Vec<Rc<Segment>> {
        debug_assert!(to <= self.flushed.get() && self.flushed.get() == self.write_pos());
        let active = align_down_to(to, self.segment_size);
        {
            let mut st = self.state.borrow_mut();
            st.write_pos = to;
            st.active_base = active;
            st.cache.cut(to);
            let block = align_down(to);
            let mut check = vec![0u8; (to - block) as usize];
            if !check.is_empty() && !st.cache.read(block, &mut check) {
                st.cache.clear();
                st.cache.append(block, tail_block, true);
            }
        }
        self.flushed.set(to);
        self.written.set(to);
        self.sync_taken.set(to);
        self.unsynced.borrow_mut().clear();
        self.checkpointed.set(self.checkpointed.get().min(to));
        let segments = self.segments.borrow();
        segments.range(active + 1..).map(|(_, s)| s.clone()).collect()
    }

    /// Takes the segments after the one holding `to` out of the log (their
    /// files are deleted) and wakes the preparer.
    pub(in crate::store) fn forget_segments_after(&self, to: u64) {
        let active = align_down_to(to, self.segment_size);
        drop(self.segments.borrow_mut().split_off(&(active + 1)));
        self.rolled.notify_all();
    }

    /// Moves an empty log (no record, no queue) to start at segment base
    /// `to` in memory (`MessageStore::start_log_at`): every position and
    /// the oldest retained offset become `to`. The segment files must be
    /// unlinked already; they leave the map here and are returned (the
    /// last holders close them). The preparer is woken for segment `to`.
    pub(in crate::store) fn restart_empty_at(&self, to: u64) -> Vec<Rc<Segment>> {
        debug_assert!(
            self.write_pos() == self.min_offset()
                && self.flushed.get() == self.write_pos()
                && to % self.segment_size == 0
        );
        {
            let mut st = self.state.borrow_mut();
            st.write_pos = to;
            st.active_base = to;
            st.cache.clear();
        }
        self.flushed.set(to);
        self.written.set(to);
        self.sync_taken.set(to);
        self.unsynced.borrow_mut().clear();
        self.min_offset.set(to);
        self.checkpointed.set(to);
        let old = std::mem::take(&mut *self.segments.borrow_mut());
        self.rolled.notify_all();
        old.into_values().collect()
    }

    /// A truncation failed after it changed the disk: nothing more is
    /// appended until a restart recovers from what the disk holds.
    pub(in crate::store) fn fail_truncation(&self, why: String) {
        self.fail(why);
    }

    /// Stops the flusher after it has flushed everything written so far.
    pub fn begin_shutdown(&self) {
        self.shutting_down.set(true);
        self.dirty.notify_all();
    }
}

mod group_commit;
mod segments;

pub use group_commit::WaitDurable;
use segments::align_down_to;
