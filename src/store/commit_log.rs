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
use std::time::{Duration, Instant};

use futures_lite::future;

use super::config::{FlushMode, StoreConfig};
use super::durable_wait::Waiters;
use super::error::StoreError;
use super::faults::DiskFaults;
use super::notify::Notify;
use super::record::{encode_blank, BLANK_SIZE};
use super::retention::DiskUsage;
use super::segment::{self, align_down, align_up, Segment, MAX_IO};
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
            stop_preparer: Cell::new(false),
            dirty: Notify::default(),
            wrote: Notify::default(),
            sync_progress: Notify::default(),
            waiters: Waiters::default(),
            rolled: Notify::default(),
            prepared: Notify::default(),
            probe: RefCell::new(FlushProbe::default()),
            space: RefCell::new(None),
            faults: cfg.faults.clone(),
        }
    }

    /// Makes the preparer check disk use before allocating a segment.
    pub fn set_space_check(&self, disk: SharedDiskUsage, max_used_percent: u8) {
        *self.space.borrow_mut() = Some((disk, max_used_percent));
    }

    /// Why the next segment must not be allocated now, if it must not,
    /// and whether that is for lack of space (true) or a failed measure.
    fn space_refusal(&self) -> Option<(bool, String)> {
        let (disk, max) = self.space.borrow().clone()?;
        let after = disk.borrow().used_percent_after(self.segment_size);
        match after {
            Ok(after) if after > max => Some((
                true,
                format!(
                    "the disk would be {after}% used with another {} MiB segment, above diskMaxUsedSpaceRatio {max}%",
                    self.segment_size >> 20
                ),
            )),
            Ok(_) => None,
            Err(e) => Some((false, format!("cannot measure disk use: {e}"))),
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
        if let Some(f) = self.failed.borrow().as_ref() {
            return Err(ReserveError::Failed(f.clone()));
        }
        if let Some(why) = self.write_stall.borrow().as_ref() {
            return Err(ReserveError::Unavailable(format!(
                "CommitLog writes fail, retrying until space returns: {why}"
            )));
        }
        let len64 = len as u64;
        if len64 + BLANK_SIZE as u64 > self.segment_size {
            return Err(ReserveError::TooLarge);
        }
        let mut st = self.state.borrow_mut();
        let flushed = self.flushed.get();
        let active_end = st.active_base + self.segment_size;
        let roll = st.write_pos + len64 + BLANK_SIZE as u64 > active_end;
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

    /// Waits until everything below `end` is durable, the deadline passes,
    /// or the flusher fails. The waiter is queued by `end` and woken once,
    /// when a sync covers it (see [`super::durable_wait`]).
    pub fn wait_durable(&self, end: u64, deadline: Instant) -> WaitDurable<'_> {
        WaitDurable {
            log: self,
            end,
            deadline,
            slot: None,
        }
    }

    /// Durability waiters queued now (tests and probes).
    pub fn durability_waiters(&self) -> usize {
        self.waiters.len()
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

    /// Removes the oldest segment (retention). Refuses the active segment,
    /// anything not yet flushed, and any segment ending above the `log_pos`
    /// of the last stored checkpoint (recovery would need it).
    ///
    /// The file is closed before it is unlinked (after waiting, briefly,
    /// for readers still holding it), so that its space is free when this
    /// returns and a disk-full loop that measures again sees it.
    pub async fn delete_oldest(&self) -> Result<Option<u64>, StoreError> {
        let Some(base) = self.segments.borrow().keys().next().copied() else {
            return Ok(None);
        };
        let end = base + self.segment_size;
        if end > self.flushed.get() || base >= self.active_base() || end > self.checkpointed.get() {
            return Ok(None);
        }
        let Some(mut seg) = self.segments.borrow_mut().remove(&base) else {
            return Ok(None);
        };
        self.min_offset.set(end);
        let path = seg.path.clone();
        let deadline = Instant::now() + Duration::from_secs(2);
        let file = loop {
            match Rc::try_unwrap(seg) {
                Ok(s) => break Rc::try_unwrap(s.file).ok(),
                Err(s) if Instant::now() >= deadline => {
                    log::warn!(
                        "CommitLog segment {} still in use after 2 s; unlinking it open (its space is freed later)",
                        path.display()
                    );
                    drop(s);
                    break None;
                }
                Err(s) => {
                    seg = s;
                    glommio::timer::sleep(Duration::from_millis(1)).await;
                }
            }
        };
        if let Some(f) = file {
            if let Err(e) = f.close().await {
                log::warn!("closing {} before deleting it: {e}", path.display());
            }
        }
        crate::runtime::blocking::remove_file(&path)
            .await
            .map_err(|e| StoreError::io(&path, e))?;
        segment::sync_dir(&self.dir).await?;
        Ok(Some(base))
    }

    /// Stops the flusher after it has flushed everything written so far.
    pub fn begin_shutdown(&self) {
        self.shutting_down.set(true);
        self.dirty.notify_all();
    }

    /// Stops the preparer; call after the flusher has finished.
    pub fn stop_preparer(&self) {
        self.stop_preparer.set(true);
        self.rolled.notify_all();
    }

    /// Prepares the active segment if it does not exist yet (a new store, or
    /// one that crashed right after a roll). Called before the store says
    /// it is open: a store that cannot create its first file must fail to
    /// start rather than accept appends it can never write.
    pub async fn prepare_active(&self) -> Result<(), StoreError> {
        let base = self.active_base();
        if self.segments.borrow().contains_key(&base) {
            return Ok(());
        }
        let seg = segment::prepare(&self.dir, base, self.segment_size, self.pre_zero, self.faults.clone()).await?;
        self.segments.borrow_mut().insert(base, Rc::new(seg));
        Ok(())
    }

    /// Keeps the segment after the active one prepared. Runs until shutdown.
    pub async fn run_preparer(self: Rc<Self>) {
        let mut backoff = Duration::from_millis(10);
        while !self.stop_preparer.get() {
            let seen = self.rolled.generation();
            // Every segment from the flushed position to one past the active
            // one: appends may have rolled over several small segments
            // before this task got to run.
            let active = self.active_base();
            let first = align_down_to(self.flushed.get(), self.segment_size);
            let mut wanted = (first..=active + self.segment_size).step_by(self.segment_size as usize);
            let missing = wanted.find(|b| !self.segments.borrow().contains_key(b));
            let Some(base) = missing else {
                self.rolled.changed_since(seen).await;
                continue;
            };
            let prepared = match self.space_refusal() {
                Some(refusal) => Err(refusal),
                None => segment::prepare(&self.dir, base, self.segment_size, self.pre_zero, self.faults.clone())
                    .await
                    .map_err(|e| (false, e.to_string())),
            };
            match prepared {
                Ok(seg) => {
                    self.segments.borrow_mut().insert(base, Rc::new(seg));
                    *self.prepare_error.borrow_mut() = None;
                    self.refusing.set(false);
                    backoff = Duration::from_millis(10);
                    self.prepared.notify_all();
                }
                Err((for_space, e)) => {
                    log::error!("cannot prepare CommitLog segment {base}: {e}; retrying in {backoff:?}");
                    self.prepare_refused_for_space.set(for_space);
                    *self.prepare_error.borrow_mut() = Some(e);
                    glommio::timer::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    /// Wakes the durability waiters whose deadline has passed, every
    /// `tick` — also while a flush hangs, and during the final flush at
    /// shutdown, which is why this runs until it is cancelled.
    pub async fn run_timeout_ticker(self: Rc<Self>, tick: Duration) {
        loop {
            glommio::timer::sleep(tick).await;
            self.waiters.wake_expired(Instant::now());
        }
    }

    /// The writer half of group commit: writes what is appended (SYNC:
    /// at once; ASYNC: on the size or time trigger) and hands it to the
    /// syncer ([`run_syncer`](Self::run_syncer)). Group N+1 is written
    /// while group N syncs, but never more than one group ahead: each
    /// sync then covers everything that arrived during the previous one.
    /// Runs until shutdown, then writes what is left.
    ///
    /// A write that fails for lack of space (ENOSPC, a short write) stalls
    /// the log: appends are refused, and the write is retried with backoff
    /// (from the last completed write, so whatever part landed is
    /// overwritten) until it succeeds. Any other failure — every failed
    /// fdatasync above all — is final: after a failed fdatasync nobody
    /// knows what reached the disk, and a retry that succeeds would prove
    /// nothing (fsyncgate), so nothing is acknowledged any more until a
    /// restart recovers from what the disk really holds.
    pub async fn run_flusher(self: Rc<Self>) {
        let mut last_write = Instant::now();
        let mut backoff = STALL_BACKOFF_MIN;
        loop {
            if self.failed.borrow().is_some() {
                break;
            }
            let seen = self.dirty.generation();
            let seen_sync = self.sync_progress.generation();
            let target = self.write_pos();
            let pending = target - self.written.get();
            let stopping = self.shutting_down.get();
            let due = match self.mode {
                FlushMode::Sync => pending > 0,
                FlushMode::Async => {
                    pending >= self.async_flush_bytes
                        || (pending > 0 && last_write.elapsed() >= self.async_flush_interval)
                }
            };
            if due || (stopping && pending > 0) {
                if self.written.get() > self.sync_taken.get() {
                    // A written group waits for the running sync: write
                    // the next one when the syncer takes that one.
                    self.sync_progress.changed_since(seen_sync).await;
                    continue;
                }
                match self.write_to(target).await {
                    Ok(()) => {
                        if let Some(why) = self.write_stall.borrow_mut().take() {
                            log::warn!("CommitLog writes resumed after: {why}");
                        }
                        backoff = STALL_BACKOFF_MIN;
                        last_write = Instant::now();
                    }
                    Err(e) if e.is_no_space() => {
                        log::error!("CommitLog write failed, refusing appends and retrying in {backoff:?}: {e}");
                        *self.write_stall.borrow_mut() = Some(e.to_string());
                        glommio::timer::sleep(backoff).await;
                        backoff = (backoff * 2).min(STALL_BACKOFF_MAX);
                    }
                    Err(e) => {
                        self.fail(format!("{e}"));
                        break;
                    }
                }
                continue;
            }
            if stopping {
                break;
            }
            match self.mode {
                FlushMode::Sync => self.dirty.changed_since(seen).await,
                FlushMode::Async => {
                    let wait = self.async_flush_interval.saturating_sub(last_write.elapsed());
                    let wait = if pending == 0 { self.async_flush_interval } else { wait };
                    future::or(self.dirty.changed_since(seen), glommio::timer::sleep(wait)).await;
                }
            }
        }
        self.writer_done.set(true);
        self.wrote.notify_all();
    }

    /// The sync half of group commit: fdatasyncs the segments written since
    /// the last sync, then publishes `flushed` and wakes exactly the
    /// waiters it covers. One sync runs at a time; the writer fills the
    /// next group meanwhile. Ends when the writer has ended and everything
    /// it wrote is synced (or at the first failure).
    pub async fn run_syncer(self: Rc<Self>) {
        loop {
            if self.failed.borrow().is_some() {
                return;
            }
            let seen = self.wrote.generation();
            let upto = self.written.get();
            if upto > self.flushed.get() {
                let segments = std::mem::take(&mut *self.unsynced.borrow_mut());
                self.sync_taken.set(upto);
                self.sync_progress.notify_all();
                let t = Instant::now();
                let syncs = futures::future::join_all(segments.iter().map(|s| s.sync())).await;
                if let Some(Err(e)) = syncs.into_iter().find(Result::is_err) {
                    self.fail(format!("{e}"));
                    return;
                }
                {
                    let mut probe = self.probe.borrow_mut();
                    probe.flushes += 1;
                    if probe.sync_micros.len() < 1 << 16 {
                        probe
                            .sync_micros
                            .push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    }
                }
                debug_assert!(upto >= self.flushed.get());
                self.flushed.set(upto);
                self.waiters.wake_covered(upto);
                continue;
            }
            if self.writer_done.get() {
                return;
            }
            self.wrote.changed_since(seen).await;
        }
    }

    /// Makes a write or sync failure final: nothing is acknowledged any
    /// more, every waiter learns it, and both flusher halves stop.
    fn fail(&self, why: String) {
        log::error!("CommitLog flush failed, refusing further appends until a restart: {why}");
        *self.failed.borrow_mut() = Some(why);
        self.waiters.wake_all();
        self.sync_progress.notify_all();
        self.wrote.notify_all();
        self.dirty.notify_all();
    }

    /// Writes `[written, target)` (from the block holding `written`, whose
    /// partial tail is rewritten), publishing progress as it goes: the
    /// segments that exist are written at once and handed to the syncer
    /// before the writer waits for the next segment to be prepared — a
    /// sealed segment's records never wait for the preparer.
    async fn write_to(&self, target: u64) -> Result<(), StoreError> {
        while self.written.get() < target {
            let from = self.written.get();
            let mut pos = align_down(from);
            let mut writes = Vec::new();
            let mut touched: Vec<Rc<Segment>> = Vec::new();
            let mut written = 0u64;
            let mut reached = from;
            while pos < target {
                let seg = match self.segment_at(pos) {
                    Some(s) => s,
                    None if touched.is_empty() => self.wait_segment(pos).await?,
                    None => break, // write what is ready first
                };
                let data_end = if target <= seg.end() {
                    target
                } else {
                    self.state
                        .borrow()
                        .cache
                        .data_end_below(seg.end())
                        .unwrap_or(seg.base)
                        .max(pos)
                };
                let end = align_up(data_end).min(seg.end());
                let st = self.state.borrow();
                let mut p = pos;
                while p < end {
                    let n = ((end - p) as usize).min(MAX_IO);
                    let mut buf = seg.file.alloc_dma_buffer(n);
                    st.cache.copy_for_flush(p, buf.as_bytes_mut());
                    writes.push((seg.clone(), p, buf));
                    written += n as u64;
                    p += n as u64;
                }
                drop(st);
                touched.push(seg.clone());
                pos = if target > seg.end() { seg.end() } else { target };
                reached = pos;
            }
            let results =
                futures::future::join_all(writes.into_iter().map(|(s, p, b)| async move { s.write(p, b).await })).await;
            // A retry can fix a full disk only: any other failed write
            // makes the failure final.
            let mut failure: Option<StoreError> = None;
            for r in results {
                if let Err(e) = r {
                    if failure.as_ref().is_none_or(|f| f.is_no_space()) {
                        failure = Some(e);
                    }
                }
            }
            if let Some(e) = failure {
                return Err(e);
            }
            self.probe.borrow_mut().bytes_written += written;
            debug_assert!(reached >= self.written.get());
            {
                let mut unsynced = self.unsynced.borrow_mut();
                for seg in touched {
                    if !unsynced.iter().any(|s| Rc::ptr_eq(s, &seg)) {
                        unsynced.push(seg);
                    }
                }
            }
            self.written.set(reached);
            self.wrote.notify_all();
        }
        Ok(())
    }

    async fn wait_segment(&self, pos: u64) -> Result<Rc<Segment>, StoreError> {
        loop {
            let seen = self.prepared.generation();
            if let Some(s) = self.segment_at(pos) {
                return Ok(s);
            }
            if self.stop_preparer.get() {
                let why = self
                    .prepare_error
                    .borrow()
                    .clone()
                    .unwrap_or_else(|| "store stopped".into());
                return Err(StoreError::Glommio(format!("no segment for log offset {pos}: {why}")));
            }
            self.rolled.notify_all();
            self.prepared.changed_since(seen).await;
        }
    }
}

/// Backoff of a flusher stalled on a full disk.
const STALL_BACKOFF_MIN: Duration = Duration::from_millis(10);
const STALL_BACKOFF_MAX: Duration = Duration::from_secs(1);

fn align_down_to(v: u64, size: u64) -> u64 {
    v - v % size
}

/// The future of [`CommitLog::wait_durable`].
pub struct WaitDurable<'a> {
    log: &'a CommitLog,
    end: u64,
    deadline: Instant,
    /// The waiter's id in the queue once registered.
    slot: Option<u64>,
}

impl std::future::Future for WaitDurable<'_> {
    type Output = Durability;
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Durability> {
        let log = self.log;
        let outcome = if log.flushed.get() >= self.end {
            Some(Durability::Durable)
        } else if let Some(f) = log.failed.borrow().as_ref() {
            Some(Durability::Failed(f.clone()))
        } else if Instant::now() >= self.deadline {
            Some(Durability::TimedOut)
        } else {
            None
        };
        if let Some(d) = outcome {
            log.waiters.forget(self.slot.take(), self.end);
            return std::task::Poll::Ready(d);
        }
        let (end, deadline) = (self.end, self.deadline);
        log.waiters.register(&mut self.slot, end, deadline, cx.waker());
        std::task::Poll::Pending
    }
}

impl Drop for WaitDurable<'_> {
    fn drop(&mut self) {
        self.log.waiters.forget(self.slot.take(), self.end);
    }
}
