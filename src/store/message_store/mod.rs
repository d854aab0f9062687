//! The store of one shard: its CommitLog, its consume queues and the
//! background tasks that keep them (flusher, segment preparer, write-behind
//! and checkpoint, retention). Everything here runs on the shard's own
//! executor; `MessageStore` is `!Send` by design.
//!
//! Readers only see records that can no longer be lost: in SYNC_FLUSH mode
//! an entry becomes visible once its record is durable, so a consumer never
//! reads a message that a crash could take back (in ASYNC_FLUSH mode
//! entries are visible at once, as in RocketMQ).
//!
//! * [`open`](MessageStore::open) (`open.rs`) recovers the log and rebuilds
//!   or reloads the consume queues; `dispatch.rs` re-dispatches each
//!   recovered record.
//! * `put.rs` — the append path (validate, place, encode, index, wait).
//! * `read.rs` — queue offsets, consume-queue entries and record reads.
//! * `tasks.rs` — the background tasks, checkpoints and shutdown.
//! * `truncate.rs` — cutting the log back (a demoted master's tail).

mod dispatch;
mod open;
mod put;
mod read;
mod replica;
mod start_at;
mod tasks;
mod truncate;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;

use glommio::task::JoinHandle;

use super::commit_log::{CommitLog, SharedDiskUsage};
use super::config::StoreConfig;
use super::consume_queue::ConsumeQueue;
use super::cq_files::CqFiles;
use super::notify::Notify;
use super::position::PhysicalOffset;
use super::replication::ReplicaGate;
use super::retention::DiskUsage;

pub use replica::Replicate;
pub use tasks::FINAL_FLUSH_TIMEOUT;
pub use truncate::Truncated;

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
    /// SYNC_MASTER: stored (and flushed per the flush mode), but no slave
    /// acknowledged a durable copy within `syncFlushTimeout`.
    FlushSlaveTimeout,
    /// SYNC_MASTER: stored, but no slave was in sync to copy it.
    SlaveNotAvailable,
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
    /// A master's replication state; with `wait_for_replica`
    /// (SYNC_MASTER) appends wait for a slave's durable copy too.
    pub(super) replica_gate: RefCell<Option<Rc<ReplicaGate>>>,
    pub(super) wait_for_replica: Cell<bool>,
    /// A slave's store takes records only from its master's stream
    /// ([`MessageStore::replicate`]); puts are refused with this reason.
    pub(super) slave_of: RefCell<Option<String>>,
    /// Controller mode: writes need this lease to be valid.
    pub(super) write_lease: RefCell<Option<std::sync::Arc<crate::store::replication::WriteLease>>>,
}

#[derive(Clone)]
pub struct MessageStore {
    pub(super) inner: Rc<Inner>,
}

impl MessageStore {
    pub fn config(&self) -> &StoreConfig {
        &self.inner.cfg
    }

    pub fn shard(&self) -> u16 {
        self.inner.cfg.shard_id
    }

    pub(super) fn log(&self) -> &Rc<CommitLog> {
        &self.inner.log
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

    pub fn dir(&self) -> PathBuf {
        self.inner.cfg.dir.clone()
    }
}

fn is_prepared_or_rollback(sys_flag: i32) -> bool {
    matches!(sys_flag & 0xC, 0x4 | 0xC)
}
