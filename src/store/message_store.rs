//! The store of one shard: its CommitLog, its consume queues and the
//! background tasks that keep them (flusher, segment preparer, write-behind
//! and checkpoint, retention). Everything here runs on the shard's own
//! executor; `MessageStore` is `!Send` by design.
//!
//! Readers only see records that can no longer be lost: in SYNC_FLUSH mode
//! an entry becomes visible once its record is durable, so a consumer never
//! reads a message that a crash could take back (in ASYNC_FLUSH mode
//! entries are visible at once, as in RocketMQ).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use glommio::task::JoinHandle;

use super::checkpoint::{Checkpoint, QueueMark};
use super::commit_log::{CommitLog, Durability, ReserveError, SharedDiskUsage};
use super::config::{FlushMode, StoreConfig};
use super::consume_queue::{ConsumeQueue, CqEntry};
use super::cq_files::CqFiles;
use super::error::StoreError;
use super::notify::Notify;
use super::position::{LogOffset, PhysicalOffset};
use super::reader::{self, GetResult, TagFilter};
use super::record::{
    encode_record, encode_sealed, property_of, Mark, MessageInput, RecordView, StoreStamp, DUE_PROPERTY, MARK_TOPIC,
    SCHEDULE_TOPIC,
};
use super::recovery::{self, RecoveryReport, Refusal};
use super::retention::{self, DiskUsage};

/// Outcome of a put (RocketMQ's `PutMessageStatus`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutStatus {
    Ok,
    /// Stored, but not durable within `syncFlushTimeout`.
    FlushDiskTimeout,
    /// Refused: record larger than a segment / the limit, or malformed.
    MessageIllegal(String),
    /// Refused: disk above `diskMaxUsedSpaceRatio`, or shutting down.
    ServiceNotAvailable(String),
    /// Refused: the tail cache is full of unflushed data (back-pressure).
    Busy,
    /// Stored in memory, but the flush failed: nothing is promised.
    FlushFailed(String),
}

/// Who holds a retention pin ([`MessageStore::pin_log`]): each owner's
/// pin is the lowest log offset it still needs; expiry keeps the segment
/// holding the lowest of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pin {
    /// Scheduled records not yet delivered.
    Timer = 0,
    /// POP op records not yet covered by a checkpoint.
    Pop = 1,
}
const PIN_OWNERS: usize = 2;

/// A record placed by [`MessageStore::append`].
#[derive(Debug)]
pub struct Appended {
    /// Log offset just past the record.
    pub end: u64,
    pub result: PutResult,
}

#[derive(Debug, Clone)]
pub struct PutResult {
    pub status: PutStatus,
    /// Queue offset of the first message (and consecutive for a batch).
    pub queue_offset: u64,
    /// Physical offset of each stored record.
    pub positions: Vec<PhysicalOffset>,
    pub store_timestamp: i64,
}

impl PutResult {
    fn refused(status: PutStatus) -> PutResult {
        PutResult {
            status,
            queue_offset: 0,
            positions: Vec::new(),
            store_timestamp: 0,
        }
    }
}

/// `LOWER`: first offset stored at or after the time; `UPPER`: last offset
/// stored at or before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boundary {
    Lower,
    Upper,
}

#[derive(Default)]
pub(super) struct QueueTable {
    index: HashMap<Rc<str>, HashMap<u32, usize>>,
    pub(super) queues: Vec<ConsumeQueue>,
}

impl QueueTable {
    pub(super) fn find(&self, topic: &str, queue_id: u32) -> Option<usize> {
        self.index.get(topic)?.get(&queue_id).copied()
    }

    pub(super) fn get_or_create(&mut self, topic: &str, queue_id: u32, first_offset: u64) -> usize {
        if let Some(i) = self.find(topic, queue_id) {
            return i;
        }
        let name: Rc<str> = match self.index.get_key_value(topic) {
            Some((k, _)) => k.clone(),
            None => Rc::from(topic),
        };
        let i = self.queues.len();
        self.queues
            .push(ConsumeQueue::new(name.clone(), queue_id, first_offset, first_offset));
        self.index.entry(name).or_default().insert(queue_id, i);
        i
    }
}

pub(super) struct Inner {
    pub(super) cfg: StoreConfig,
    pub(super) log: Rc<CommitLog>,
    pub(super) queues: RefCell<QueueTable>,
    pub(super) cq_files: CqFiles,
    pub(super) disk_full: Cell<bool>,
    pub(super) disk: SharedDiskUsage,
    /// Unexpired segments deleted under `diskFullPolicy=deleteOldest`.
    pub(super) forced_deletions: Cell<u64>,
    scratch: RefCell<Vec<u8>>,
    stopping: Cell<bool>,
    /// Wakes the periodic tasks (checkpointer, retention) at shutdown.
    stop_signal: Notify,
    tasks: RefCell<Vec<JoinHandle<()>>>,
    /// The checkpointer and retention: awaited (not cancelled) at shutdown.
    periodic: RefCell<Vec<JoinHandle<()>>>,
    last_checkpoint: RefCell<Option<(u64, u64, usize)>>,
    /// Checkpoints run one at a time (see [`MessageStore::checkpoint`]).
    checkpoint_busy: Cell<bool>,
    checkpoint_done: Notify,
    /// Set when syncing consume-queue files failed: checkpoints stop until
    /// a restart (see [`MessageStore::checkpoint`]).
    checkpoints_stopped: RefCell<Option<String>>,
    /// Lowest log offset a user of the store still needs (the broker's
    /// timer: its undelivered scheduled records); expiry keeps segments
    /// from there on. `u64::MAX`: nothing pinned.
    pub(super) pins: [Cell<u64>; PIN_OWNERS],
    pub(super) index: super::key_index::KeyIndex,
}

#[derive(Clone)]
pub struct MessageStore {
    pub(super) inner: Rc<Inner>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl MessageStore {
    /// Opens (creating if needed) the store in `cfg.dir`, recovers it, and
    /// starts its background tasks on the current executor.
    ///
    /// A checkpoint that fails validation, points below the oldest segment,
    /// or disagrees with a record of the log is discarded (logged as an
    /// error, listed in the report's problems, `report.rebuilt` set) and
    /// every consume queue is rebuilt from the oldest segment; queues the
    /// retained log no longer mentions keep the discarded checkpoint's max
    /// offset. When segments were deleted after the stored checkpoint, the
    /// queue minimums are advanced before the store opens.
    pub async fn open(cfg: StoreConfig) -> Result<(MessageStore, RecoveryReport), StoreError> {
        cfg.validate()?;
        let log_dir = cfg.dir.join("commitlog");
        let cq_dir = cfg.dir.join("consumequeue");
        for d in [&cfg.dir, &log_dir, &cq_dir] {
            std::fs::create_dir_all(d).map_err(|e| StoreError::io(d, e))?;
        }
        super::crypt::check_and_record(&cfg.dir, cfg.encryption.as_deref()).map_err(StoreError::Config)?;
        crate::runtime::prime_dma_probe(&cfg.dir)
            .await
            .map_err(|e| StoreError::io(&cfg.dir, e))?;
        let mut problems = Vec::new();
        let mut ckpt = match Checkpoint::load(&cfg.dir) {
            Ok(c) => c,
            Err(e) => {
                log::error!("{e}; rebuilding every consume queue from the CommitLog");
                problems.push(e.to_string());
                None
            }
        };
        if let Some(c) = &ckpt {
            if let Err(why) = validate_checkpoint(c, cfg.segment_size) {
                log::error!(
                    "shard {}: checkpoint unusable ({why}); rebuilding every consume queue from the oldest CommitLog segment",
                    cfg.shard_id
                );
                problems.push(format!("checkpoint unusable: {why}"));
                ckpt = None;
            }
        }
        let shard = cfg.shard_id;
        // The checkpoint that was discarded, if any: its queues keep their
        // offsets when the retained log no longer holds any of their records.
        let mut discarded: Option<Checkpoint> = None;
        let (recovered, table, used_ckpt) = loop {
            let mut table = QueueTable::default();
            if let Some(c) = &ckpt {
                for m in &c.queues {
                    let i = table.get_or_create(&m.topic, m.queue_id, m.max_offset);
                    table.queues[i].min_offset = m.min_offset.min(m.max_offset);
                }
            }
            let rebuilding = ckpt.is_none();
            let params = recovery::ScanParams {
                shard,
                segment_size: cfg.segment_size,
                max_record_size: cfg.max_record_size,
                checkpoint: ckpt.as_ref().map(|c| c.log_pos),
                faults: cfg.faults.clone(),
            };
            let mut skipped = Vec::new();
            let ring = cfg.encryption.clone();
            let mut opened = Vec::new();
            let outcome = recovery::recover(&log_dir, params, |v, pos| {
                let props = super::record::properties_of(ring.as_deref(), shard, v, &mut opened)
                    .map_err(recovery::Refusal::Fatal)?;
                dispatch_recovered(&mut table, v, props, pos, rebuilding, &mut skipped)
            })
            .await?;
            problems.extend(skipped);
            match outcome {
                recovery::Recovery::Recovered(r) => break (r, table, ckpt),
                recovery::Recovery::CheckpointRejected { at, why } => {
                    log::error!(
                        "shard {shard}: the checkpoint disagrees with the CommitLog at log offset {at} ({why}); \
                         discarding it and REBUILDING every consume queue from the oldest segment \
                         (no record is truncated for this)"
                    );
                    problems.push(format!("checkpoint rejected at log offset {at}: {why}"));
                    discarded = ckpt.take();
                }
            }
        };
        let mut table = table;
        if let Some(old) = &discarded {
            // Queues the retained log no longer mentions keep their offsets
            // (empty, min = max), so that new messages do not reuse them.
            for m in &old.queues {
                if table.find(&m.topic, m.queue_id).is_none() {
                    let i = table.get_or_create(&m.topic, m.queue_id, m.max_offset);
                    table.queues[i].min_offset = m.max_offset;
                }
            }
        }
        let mut report = recovered.report;
        report.rebuilt = discarded.is_some();
        report.problems.extend(problems);
        let end = recovered.end;
        let log = CommitLog::new(&cfg, log_dir, recovered.segments, end);
        log.seed_tail(end, &recovered.tail_block);
        log.prepare_active().await?;
        // Retention may delete a segment only once a stored checkpoint lies
        // past it; without one, recovery would scan from the oldest segment.
        log.set_checkpointed(used_ckpt.as_ref().map_or(0, |c| c.log_pos));
        let stale_minimums = used_ckpt.as_ref().is_some_and(|c| log.min_offset() > c.log_min);
        let cq_files = CqFiles::new(cq_dir, cfg.cq_entries_per_file, shard, cfg.faults.clone());
        let disk: SharedDiskUsage = Rc::new(RefCell::new(Box::new(retention::StatVfs::new(cfg.dir.clone()))));
        log.set_space_check(disk.clone(), cfg.disk_max_used_ratio);
        let index = super::key_index::KeyIndex::open(
            cfg.dir.join("index"),
            cfg.key_index.clone(),
            cfg.faults.clone(),
            log.min_offset(),
            end,
        )
        .await?;
        let inner = Rc::new(Inner {
            log: Rc::new(log),
            queues: RefCell::new(table),
            cq_files,
            disk_full: Cell::new(false),
            disk: disk.clone(),
            forced_deletions: Cell::new(0),
            scratch: RefCell::new(Vec::with_capacity(64 * 1024)),
            stopping: Cell::new(false),
            stop_signal: Notify::default(),
            tasks: RefCell::new(Vec::new()),
            periodic: RefCell::new(Vec::new()),
            last_checkpoint: RefCell::new(None),
            checkpoint_busy: Cell::new(false),
            checkpoint_done: Notify::default(),
            checkpoints_stopped: RefCell::new(None),
            pins: [Cell::new(u64::MAX), Cell::new(u64::MAX)],
            index,
            cfg,
        });
        let store = MessageStore { inner };
        if stale_minimums {
            // Segments were deleted after the checkpoint was stored: its
            // queue minimums point into them.
            retention::advance_queue_minimums(&store).await;
        }
        // A new store writes its first checkpoint before it is open, so that
        // a data directory that cannot take one fails the start instead of
        // every second afterwards. An existing store opens regardless (on
        // a full disk it still serves what it holds).
        if let Err(e) = store.checkpoint().await {
            if used_ckpt.is_none() && end == 0 {
                return Err(e);
            }
            log::error!("shard {shard}: cannot write a checkpoint at open: {e}");
        }
        store.start_tasks();
        log::info!(
            "shard {} store open at {}: log [{}, {}), {} queues, {} records re-dispatched",
            shard,
            store.inner.cfg.dir.display(),
            store.inner.log.min_offset(),
            end,
            store.queue_count(),
            report.records
        );
        Ok((store, report))
    }

    fn start_tasks(&self) {
        use glommio::{Latency, Shares};
        let bg = glommio::executor().create_task_queue(Shares::Static(100), Latency::NotImportant, "store-background");
        let log = self.inner.log.clone();
        let mut tasks = self.inner.tasks.borrow_mut();
        tasks.push(glommio::spawn_local(log.clone().run_flusher()).detach());
        tasks.push(glommio::spawn_local(log.clone().run_syncer()).detach());
        tasks.push(glommio::spawn_local(log.clone().run_timeout_ticker(Duration::from_millis(50))).detach());
        let spawn_bg = |f: std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>| {
            glommio::spawn_local_into(f, bg)
                .map(|t| t.detach())
                .unwrap_or_else(|_| glommio::spawn_local(async {}).detach())
        };
        tasks.push(spawn_bg(Box::pin(log.run_preparer())));
        let mut periodic = self.inner.periodic.borrow_mut();
        let me = self.clone();
        periodic.push(spawn_bg(Box::pin(async move { me.run_checkpointer().await })));
        let me = self.clone();
        periodic.push(spawn_bg(Box::pin(async move { retention::run(me).await })));
        periodic.push(spawn_bg(Box::pin(self.clone().watch_write_state())));
        if self.inner.index.enabled() {
            periodic.push(spawn_bg(Box::pin(self.clone().run_key_index())));
            periodic.push(spawn_bg(Box::pin(self.clone().run_key_index_flusher())));
        }
    }

    pub fn config(&self) -> &StoreConfig {
        &self.inner.cfg
    }

    pub fn shard(&self) -> u16 {
        self.inner.cfg.shard_id
    }

    pub(super) fn log(&self) -> &Rc<CommitLog> {
        &self.inner.log
    }

    /// Sleeps for `d`, or less if the store begins to shut down.
    pub(super) async fn sleep_unless_stopping(&self, d: Duration) {
        let seen = self.inner.stop_signal.generation();
        if self.inner.stopping.get() {
            return;
        }
        futures_lite::future::or(glommio::timer::sleep(d), self.inner.stop_signal.changed_since(seen)).await;
    }

    /// Replaces the disk-usage probe (tests inject a full disk).
    pub fn set_disk_usage_probe(&self, probe: Box<dyn DiskUsage>) {
        *self.inner.disk.borrow_mut() = probe;
    }

    /// Unexpired CommitLog segments deleted under
    /// `diskFullPolicy=deleteOldest` since open.
    pub fn forced_deletions(&self) -> u64 {
        self.inner.forced_deletions.get()
    }

    /// Keeps every segment holding log offsets from `pos` on out of
    /// expiry (`fileReservedTime`); see the module docs of `retention`.
    pub fn pin_log(&self, owner: Pin, pos: u64) {
        self.inner.pins[owner as usize].set(pos);
    }

    /// The lowest log offset a pin holds (`u64::MAX`: none).
    pub(super) fn pinned_from(&self) -> u64 {
        self.inner.pins.iter().map(Cell::get).min().unwrap_or(u64::MAX)
    }

    /// Shutting down: puts are refused from now on.
    pub fn is_stopping(&self) -> bool {
        self.inner.stopping.get()
    }

    pub fn is_disk_full(&self) -> bool {
        self.inner.disk_full.get()
    }

    /// Appends one message.
    pub async fn put(&self, msg: MessageInput) -> PutResult {
        self.put_batch(std::slice::from_ref(&msg), true).await
    }

    /// Appends messages of one queue contiguously (a batch) with
    /// consecutive queue offsets. With `wait` false (property WAIT=false)
    /// the reply does not wait for the flush even in SYNC mode.
    pub async fn put_batch(&self, msgs: &[MessageInput], wait: bool) -> PutResult {
        let (end, result) = match self.place(msgs) {
            Ok(v) => v,
            Err(refused) => return PutResult::refused(refused),
        };
        if self.inner.cfg.flush_mode == FlushMode::Async || !wait {
            return result;
        }
        let deadline = Instant::now() + self.inner.cfg.sync_flush_timeout;
        let status = match self.inner.log.wait_durable(end, deadline).await {
            Durability::Durable => PutStatus::Ok,
            Durability::TimedOut => PutStatus::FlushDiskTimeout,
            Durability::Failed(e) => PutStatus::FlushFailed(e),
        };
        PutResult { status, ..result }
    }

    /// The synchronous half of [`Self::put`]: the record is placed in the
    /// log (and its queue) when this returns `Ok`, before any other task
    /// runs — callers that must log in the order they change their own
    /// state apply the change right after, with no suspension in between,
    /// and then wait with [`Self::durable`].
    pub fn append(&self, msg: &MessageInput) -> Result<Appended, PutStatus> {
        self.place(std::slice::from_ref(msg))
            .map(|(end, result)| Appended { end, result })
    }

    /// The status of an [`Appended`] record once it is durable per the
    /// flush mode (at once with ASYNC_FLUSH).
    pub async fn durable(&self, a: &Appended) -> PutStatus {
        if self.inner.cfg.flush_mode == FlushMode::Async {
            return PutStatus::Ok;
        }
        let deadline = Instant::now() + self.inner.cfg.sync_flush_timeout;
        match self.inner.log.wait_durable(a.end, deadline).await {
            Durability::Durable => PutStatus::Ok,
            Durability::TimedOut => PutStatus::FlushDiskTimeout,
            Durability::Failed(e) => PutStatus::FlushFailed(e),
        }
    }

    /// The synchronous part of a put: validate, place, encode, index.
    fn place(&self, msgs: &[MessageInput]) -> Result<(u64, PutResult), PutStatus> {
        let inner = &*self.inner;
        if inner.stopping.get() {
            return Err(PutStatus::ServiceNotAvailable("store is shutting down".into()));
        }
        if inner.disk_full.get() {
            return Err(PutStatus::ServiceNotAvailable(format!(
                "disk usage above diskMaxUsedSpaceRatio {}%; writes resume when space is freed",
                inner.cfg.disk_max_used_ratio
            )));
        }
        let host = inner.cfg.store_host;
        let ring = inner.cfg.encryption.as_deref();
        let overhead = if ring.is_some() { super::crypt::OVERHEAD } else { 0 };
        let mut total = 0usize;
        for m in msgs {
            m.validate().map_err(|e| PutStatus::MessageIllegal(e.to_string()))?;
            if ring.is_some() && m.properties.len() + super::crypt::TAG_LEN > super::record::MAX_PROPERTIES_LEN {
                return Err(PutStatus::MessageIllegal(format!(
                    "properties longer than {} bytes (encryption at rest adds {})",
                    super::record::MAX_PROPERTIES_LEN - super::crypt::TAG_LEN,
                    super::crypt::TAG_LEN
                )));
            }
            let size = m.record_size(&host) + overhead;
            if size > inner.cfg.max_record_size {
                return Err(PutStatus::MessageIllegal(format!(
                    "record of {size} bytes exceeds the limit of {}",
                    inner.cfg.max_record_size
                )));
            }
            total += size;
        }
        if msgs.is_empty() {
            return Err(PutStatus::MessageIllegal("empty batch".into()));
        }
        if total > inner.cfg.tail_cache_bytes / 2 {
            // The tail cache could never make room for it: refusing it as
            // busy would make the client retry forever.
            return Err(PutStatus::MessageIllegal(format!(
                "batch of {total} bytes exceeds half the tail cache ({} bytes)",
                inner.cfg.tail_cache_bytes
            )));
        }
        let pos = inner.log.reserve(total).map_err(|e| match e {
            ReserveError::TooLarge => {
                PutStatus::MessageIllegal(format!("batch of {total} bytes does not fit a segment"))
            }
            ReserveError::Busy => PutStatus::Busy,
            ReserveError::Failed(f) => PutStatus::FlushFailed(f),
            ReserveError::Unavailable(why) => PutStatus::ServiceNotAvailable(why),
        })?;
        let now = now_ms();
        let shard = inner.cfg.shard_id;
        let mut scratch = inner.scratch.borrow_mut();
        scratch.clear();
        let mut queues = inner.queues.borrow_mut();
        let mut positions = Vec::with_capacity(msgs.len());
        let mut first_offset = None;
        for m in msgs {
            let rec_pos = pos + scratch.len() as u64;
            let size = (m.record_size(&host) + overhead) as u32;
            let indexed = !is_prepared_or_rollback(m.sys_flag);
            let queue_offset = if indexed {
                let qi = queues.get_or_create(&m.topic, m.queue_id, 0);
                queues.queues[qi].push(CqEntry {
                    pos: rec_pos,
                    size,
                    tags_code: m.tags_code,
                })
            } else {
                0
            };
            if let Some(mark) = m.mark {
                let qi = queues.get_or_create(MARK_TOPIC, mark.queue, 0);
                queues.queues[qi].push(CqEntry {
                    pos: rec_pos,
                    size,
                    tags_code: mark.value,
                });
            }
            first_offset.get_or_insert(queue_offset);
            let phys = PhysicalOffset::new(shard, LogOffset(rec_pos));
            let stamp = StoreStamp {
                queue_offset,
                physical_offset: phys,
                store_timestamp: now,
            };
            match ring {
                Some(ring) => encode_sealed(m, &stamp, &host, ring, shard, &mut scratch),
                None => encode_record(m, &stamp, &host, &mut scratch),
            }
            inner.index.add(&m.topic, &m.properties, rec_pos, size, now);
            positions.push(phys);
        }
        drop(queues);
        inner.log.write(pos, &scratch);
        let end = pos + scratch.len() as u64;
        if scratch.capacity() > 1 << 20 {
            *scratch = Vec::with_capacity(64 * 1024);
        }
        let result = PutResult {
            status: PutStatus::Ok,
            queue_offset: first_offset.unwrap_or(0),
            positions,
            store_timestamp: now,
        };
        Ok((end, result))
    }

    /// Offsets visible to readers: `(min, max)`; `None` for an unknown queue.
    pub fn offsets(&self, topic: &str, queue_id: u32) -> Option<(u64, u64)> {
        let queues = self.inner.queues.borrow();
        let q = &queues.queues[queues.find(topic, queue_id)?];
        let max = self.visible_max(q);
        Some((q.min_offset.min(max), max))
    }

    pub(super) fn visible_max(&self, q: &ConsumeQueue) -> u64 {
        match self.inner.cfg.flush_mode {
            FlushMode::Sync => q.visible_max(self.inner.log.flushed()),
            FlushMode::Async => q.max_offset,
        }
    }

    pub fn max_offset(&self, topic: &str, queue_id: u32) -> u64 {
        self.offsets(topic, queue_id).map_or(0, |o| o.1)
    }

    pub fn min_offset(&self, topic: &str, queue_id: u32) -> u64 {
        self.offsets(topic, queue_id).map_or(0, |o| o.0)
    }

    pub fn queue_count(&self) -> usize {
        self.inner.queues.borrow().queues.len()
    }

    /// Reads up to `max_msgs` records from `offset` (RocketMQ's getMessage).
    pub async fn get_messages(
        &self,
        topic: &str,
        queue_id: u32,
        offset: u64,
        max_msgs: usize,
        max_bytes: usize,
        filter: &TagFilter,
    ) -> Result<GetResult, StoreError> {
        reader::get_messages(self, topic, queue_id, offset, max_msgs, max_bytes, filter).await
    }

    /// The consume-queue entry at `offset` (memory or file).
    pub(super) async fn entry(&self, topic: &str, queue_id: u32, offset: u64) -> Result<Option<CqEntry>, StoreError> {
        Ok(self.entries(topic, queue_id, offset, 1).await?.into_iter().next())
    }

    /// Up to `count` consecutive entries from `offset`, stopping at the
    /// visible max. The result is always contiguous from `offset`: a
    /// checkpoint that runs while a file read is awaited may move entries
    /// out of memory, so the rest is looked up again (memory first, then the
    /// files) until the range is complete — an offset is never skipped.
    pub(super) async fn entries(
        &self,
        topic: &str,
        queue_id: u32,
        offset: u64,
        count: usize,
    ) -> Result<Vec<CqEntry>, StoreError> {
        let upto = {
            let queues = self.inner.queues.borrow();
            let Some(i) = queues.find(topic, queue_id) else {
                return Ok(Vec::new());
            };
            let q = &queues.queues[i];
            let visible = self.visible_max(q);
            if offset >= visible || offset < q.min_offset {
                return Ok(Vec::new());
            }
            offset + (count as u64).min(visible - offset)
        };
        let mut out = Vec::with_capacity((upto - offset) as usize);
        let mut next = offset;
        loop {
            let mem_base = {
                let queues = self.inner.queues.borrow();
                let Some(i) = queues.find(topic, queue_id) else {
                    return Ok(out);
                };
                let q = &queues.queues[i];
                while next < upto {
                    match q.get(next) {
                        Some(e) => out.push(e),
                        None => break,
                    }
                    next += 1;
                }
                if next == upto {
                    return Ok(out);
                }
                if next >= q.mem_base {
                    return Err(StoreError::Corrupt {
                        path: self.inner.cq_files.queue_dir(topic, queue_id),
                        what: format!("consume-queue entry {next} is missing from memory"),
                    });
                }
                q.mem_base
            };
            let want = (mem_base.min(upto) - next) as usize;
            let v = self.inner.cq_files.read(topic, queue_id, next, want).await?;
            if v.is_empty() {
                if !out.is_empty() {
                    return Ok(out); // contiguous so far; the caller continues later
                }
                return Err(StoreError::Corrupt {
                    path: self.inner.cq_files.queue_dir(topic, queue_id),
                    what: format!("consume-queue entry {next} is not in its file"),
                });
            }
            next += v.len() as u64;
            out.extend(v);
        }
    }

    /// Up to `count` consume-queue entries of a queue from `offset`, only
    /// visible ones (durable, in SYNC_FLUSH mode); fewer at the end.
    pub async fn queue_entries(
        &self,
        topic: &str,
        queue_id: u32,
        offset: u64,
        count: usize,
    ) -> Result<Vec<CqEntry>, StoreError> {
        self.entries(topic, queue_id, offset, count).await
    }

    /// The whole record stored at a physical offset (view by message id).
    pub async fn read_record(&self, phys: PhysicalOffset) -> Result<Option<Vec<u8>>, StoreError> {
        reader::read_record_at(self, phys).await
    }

    /// [`Self::read_record`] when the size is known (a consume-queue entry's):
    /// one read. `None` also when the record there has another size.
    pub async fn read_record_sized(&self, phys: PhysicalOffset, size: u32) -> Result<Option<Vec<u8>>, StoreError> {
        reader::read_record_sized(self, phys, Some(size)).await
    }

    pub async fn search_offset_by_time(
        &self,
        topic: &str,
        queue_id: u32,
        ts: i64,
        b: Boundary,
    ) -> Result<u64, StoreError> {
        reader::search_offset_by_time(self, topic, queue_id, ts, b).await
    }

    /// Store time of the message at `offset` of the queue (`None` when the
    /// offset holds no visible message).
    pub async fn store_time_at(&self, topic: &str, queue_id: u32, offset: u64) -> Result<Option<i64>, StoreError> {
        reader::store_time_at(self, topic, queue_id, offset).await
    }

    /// Store time of the oldest retained message of the queue.
    pub async fn earliest_store_time(&self, topic: &str, queue_id: u32) -> Result<Option<i64>, StoreError> {
        let (min, _) = match self.offsets(topic, queue_id) {
            Some(o) if o.0 < o.1 => o,
            _ => return Ok(None),
        };
        reader::store_time_at(self, topic, queue_id, min).await
    }

    /// Next log offset to write (everything appended so far).
    pub fn write_log_offset(&self) -> u64 {
        self.inner.log.write_pos()
    }

    /// fdatasync latencies (µs) recorded since the last call.
    pub fn take_sync_samples(&self) -> Vec<u32> {
        std::mem::take(&mut self.inner.log.probe.borrow_mut().sync_micros)
    }

    /// Everything durable so far (log offset); for tests and probes.
    pub fn flushed_log_offset(&self) -> u64 {
        self.inner.log.flushed()
    }

    /// A copy of the flusher's probe: flushes (one fdatasync round each),
    /// bytes written, fdatasync latencies (the first 65 536). For benchmarks.
    pub fn flush_stats(&self) -> super::commit_log::FlushProbe {
        self.inner.log.probe.borrow().clone()
    }

    pub fn log_min_offset(&self) -> u64 {
        self.inner.log.min_offset()
    }

    /// Bytes of memory held: tail cache plus consume-queue tails.
    pub fn memory_used(&self) -> usize {
        let q: usize = self.inner.queues.borrow().queues.iter().map(|q| q.memory()).sum();
        self.inner.log.cache_memory() + q + self.inner.index.memory()
    }

    /// Writes consume-queue entries behind the CommitLog and records a
    /// checkpoint once they are durable.
    ///
    /// Checkpoints are serialised: a second call (the periodic one, the one
    /// at shutdown, one taken by retention) waits for the running one, so a
    /// stored checkpoint always pairs `log_pos` with the queue marks of the
    /// same moment and `written` only moves forward. Files and directories
    /// written stay on the dirty list until a checkpoint that synced them
    /// has been stored, so a checkpoint that fails midway loses nothing.
    ///
    /// A failed write (a full disk) is retried by the next checkpoint; a
    /// failed fdatasync of consume-queue files stops checkpoints until a
    /// restart: the kernel may have dropped the entries it could not write
    /// back and would let the next fdatasync succeed without them
    /// (fsyncgate), so no later checkpoint could vouch for those files.
    /// The stored checkpoint stays the last good one; a restart rebuilds
    /// the queues from it, and retention waits for it.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        let _turn = self.checkpoint_turn().await;
        if let Some(why) = self.inner.checkpoints_stopped.borrow().as_ref() {
            return Err(StoreError::Glommio(format!(
                "checkpoints stopped until a restart: syncing consume-queue files failed: {why}"
            )));
        }
        let durable = self.inner.log.flushed();
        let keep = self.inner.cfg.cq_mem_entries;
        let n = self.inner.queues.borrow().queues.len();
        for i in 0..n {
            let (topic, qid, from, entries) = {
                let queues = self.inner.queues.borrow();
                let q = &queues.queues[i];
                if q.written == q.max_offset {
                    continue;
                }
                let (from, v) = q.unwritten_below(durable);
                (q.topic.clone(), q.queue_id, from, v)
            };
            if entries.is_empty() {
                continue;
            }
            self.inner.cq_files.write(&topic, qid, from, &entries).await?;
            let mut queues = self.inner.queues.borrow_mut();
            queues.queues[i].mark_written(from + entries.len() as u64, keep);
        }
        let log_min = self.inner.log.min_offset();
        let sig = (durable, log_min, n);
        let dirty = self.inner.cq_files.dirty();
        if dirty.is_empty() && *self.inner.last_checkpoint.borrow() == Some(sig) {
            return Ok(());
        }
        if let Err(e) = self.inner.cq_files.sync_dirty(&dirty).await {
            log::error!(
                "shard {}: consume-queue fdatasync failed, no further checkpoint until a restart \
                 (the last stored one stays; restart the broker to rebuild the queues from it): {e}",
                self.shard()
            );
            *self.inner.checkpoints_stopped.borrow_mut() = Some(e.to_string());
            return Err(e);
        }
        let ckpt = {
            let queues = self.inner.queues.borrow();
            Checkpoint {
                log_pos: durable,
                log_min,
                queues: queues
                    .queues
                    .iter()
                    .map(|q| QueueMark {
                        topic: q.topic.to_string(),
                        queue_id: q.queue_id,
                        min_offset: q.min_offset.min(q.written),
                        max_offset: q.written,
                    })
                    .collect(),
            }
        };
        ckpt.store(&self.inner.cfg.dir, &self.inner.cfg.faults).await?;
        self.inner.cq_files.clear_dirty(&dirty);
        self.inner.log.set_checkpointed(durable);
        *self.inner.last_checkpoint.borrow_mut() = Some(sig);
        Ok(())
    }

    /// Waits until no other checkpoint runs and takes the turn; the turn
    /// is released when the guard drops (also on error or cancellation).
    async fn checkpoint_turn(&self) -> CheckpointTurn<'_> {
        loop {
            let seen = self.inner.checkpoint_done.generation();
            if !self.inner.checkpoint_busy.get() {
                self.inner.checkpoint_busy.set(true);
                return CheckpointTurn(&self.inner);
            }
            self.inner.checkpoint_done.changed_since(seen).await;
        }
    }

    async fn run_checkpointer(&self) {
        while !self.inner.stopping.get() {
            self.sleep_unless_stopping(self.inner.cfg.checkpoint_interval).await;
            if self.inner.stopping.get() {
                break;
            }
            if let Err(e) = self.checkpoint().await {
                log::error!("shard {} checkpoint failed: {e}", self.shard());
            }
        }
    }

    /// Stops the checkpointer and retention (awaiting the pass in
    /// progress), flushes everything, writes a final checkpoint and stops
    /// the remaining tasks.
    pub async fn shutdown(&self) -> Result<(), StoreError> {
        self.inner.stopping.set(true);
        self.inner.stop_signal.notify_all();
        let periodic = std::mem::take(&mut *self.inner.periodic.borrow_mut());
        for t in periodic {
            t.await;
        }
        self.inner.log.begin_shutdown();
        let end = self.inner.log.write_pos();
        // Bounded: a log that cannot be written (no segment, a hung device)
        // must not hold the process forever; the caller reports what is left.
        let deadline = Instant::now() + FINAL_FLUSH_TIMEOUT;
        let flushed = self.inner.log.wait_durable(end, deadline).await;
        let res = self.checkpoint().await;
        // The key index's last entries (an error is logged; the next open
        // indexes them from the log).
        let _ = self.inner.index.flush(&self.inner.log, true).await;
        self.inner.log.stop_preparer();
        let tasks = std::mem::take(&mut *self.inner.tasks.borrow_mut());
        for t in tasks {
            t.cancel();
        }
        match flushed {
            Durability::Durable => res,
            Durability::TimedOut => Err(StoreError::Glommio(format!(
                "final flush timed out after {FINAL_FLUSH_TIMEOUT:?}: {} bytes not durable{}",
                end.saturating_sub(self.inner.log.flushed()),
                self.inner
                    .log
                    .prepare_error()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            ))),
            Durability::Failed(e) => Err(StoreError::Glommio(format!("final flush failed: {e}"))),
        }
    }

    pub fn dir(&self) -> PathBuf {
        self.inner.cfg.dir.clone()
    }
}

/// How long shutdown waits for the last flush.
pub const FINAL_FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

fn is_prepared_or_rollback(sys_flag: i32) -> bool {
    matches!(sys_flag & 0xC, 0x4 | 0xC)
}

/// The turn of the running checkpoint; dropping it lets the next one run.
struct CheckpointTurn<'a>(&'a Inner);

impl Drop for CheckpointTurn<'_> {
    fn drop(&mut self) {
        self.0.checkpoint_busy.set(false);
        self.0.checkpoint_done.notify_all();
    }
}

/// Sanity checks of a loaded checkpoint that need no disk access.
fn validate_checkpoint(c: &Checkpoint, segment_size: u64) -> Result<(), String> {
    if c.log_min % segment_size != 0 {
        return Err(format!(
            "log_min {} is not a segment boundary (segment size {segment_size})",
            c.log_min
        ));
    }
    if c.log_min > c.log_pos {
        return Err(format!("log_min {} lies above log_pos {}", c.log_min, c.log_pos));
    }
    if let Some(m) = c.queues.iter().find(|m| m.min_offset > m.max_offset) {
        return Err(format!(
            "queue {}/{} has min offset {} above its max {}",
            m.topic, m.queue_id, m.min_offset, m.max_offset
        ));
    }
    Ok(())
}

/// Re-dispatch of a recovered record.
///
/// With a checkpoint, its queue offset must continue its queue exactly;
/// anything else means the log and the checkpoint disagree, and the
/// checkpoint (not the log) is refused: the caller rebuilds.
///
/// When rebuilding (no usable checkpoint) a queue starts at the first
/// record seen of it. A record that still does not continue its queue means
/// the log itself is inconsistent; it is kept in the log, reported, and
/// never a reason to truncate: a duplicate or backwards offset is not
/// indexed, a forward gap restarts the queue at the record's offset.
fn dispatch_recovered(
    table: &mut QueueTable,
    v: &RecordView<'_>,
    properties: &[u8],
    pos: u64,
    rebuilding: bool,
    problems: &mut Vec<String>,
) -> Result<(), Refusal> {
    // The mark first: a record's mark is dispatched whatever its own queue
    // does with it (a half message is not indexed, its mark still is).
    if let Some(mark) = Mark::of_properties(properties) {
        let qi = table.get_or_create(MARK_TOPIC, mark.queue, 0);
        table.queues[qi].push(CqEntry {
            pos,
            size: v.total_size,
            tags_code: mark.value,
        });
    }
    if is_prepared_or_rollback(v.sys_flag) {
        return Ok(());
    }
    let Ok(topic) = std::str::from_utf8(v.topic) else {
        return Err(Refusal::Record("topic is not UTF-8"));
    };
    let qi = match table.find(topic, v.queue_id) {
        Some(i) => i,
        None if rebuilding || v.queue_offset == 0 => table.get_or_create(topic, v.queue_id, v.queue_offset),
        None => {
            return Err(Refusal::Checkpoint(
                "record of a queue the checkpoint does not know, past offset 0",
            ))
        }
    };
    let q = &mut table.queues[qi];
    if v.queue_offset != q.max_offset {
        if !rebuilding {
            return Err(Refusal::Checkpoint("queue offset does not continue its queue"));
        }
        let what = format!(
            "record at log offset {pos} of {topic}/{} has queue offset {} but the queue is at {}",
            v.queue_id, v.queue_offset, q.max_offset
        );
        if v.queue_offset < q.max_offset {
            log::error!("CommitLog inconsistent: {what}; not indexed");
            problems.push(format!("{what}; not indexed"));
            return Ok(());
        }
        log::error!("CommitLog inconsistent: {what}; the queue restarts at the record's offset");
        problems.push(format!("{what}; queue restarted"));
        *q = ConsumeQueue::new(q.topic.clone(), v.queue_id, v.queue_offset, v.queue_offset);
    }
    let tags_code = if topic == SCHEDULE_TOPIC {
        due_of(properties)
    } else {
        tags_code_of(properties)
    };
    q.push(CqEntry {
        pos,
        size: v.total_size,
        tags_code,
    });
    Ok(())
}

/// `javaStringHashCode(TAGS)` read back from stored properties.
fn tags_code_of(props: &[u8]) -> i64 {
    property_of(props, b"TAGS")
        .and_then(|t| std::str::from_utf8(t).ok())
        .map_or(0, |tag| crate::protocol::java_string_hash(tag) as i64)
}

/// The due time of a scheduled record (its schedule-queue `tags_code`).
fn due_of(props: &[u8]) -> i64 {
    property_of(props, DUE_PROPERTY.as_bytes())
        .and_then(|t| std::str::from_utf8(t).ok())
        .and_then(|t| t.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_code_is_read_back_from_stored_properties() {
        assert_eq!(tags_code_of(b"KEYS\x01k\x02TAGS\x01TagA\x02"), 2598919);
        assert_eq!(tags_code_of(b"KEYS\x01k\x02"), 0);
    }
}
