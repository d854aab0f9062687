//! The timer's in-memory state, owned by the shard (`Shard::timer`); the
//! work on it is in the sibling modules (see [`super`]). Imports nothing of
//! the shard, so that the shard can hold it without an import cycle.

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::store::notify::Notify;

use super::files;

pub(super) const MINUTE_MS: i64 = 60_000;
/// Buckets are loaded this long before their minute starts.
pub(super) const LOOKAHEAD_MS: i64 = MINUTE_MS;
pub(super) const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);
/// Entries delivered per write (and per fsync).
pub(super) const DELIVERY_BATCH: usize = 256;
pub(super) const ROUTE_CHUNK: usize = 4096;
/// A delivery refused for a passing reason (busy, disk full) is retried
/// this much later.
pub(super) const RETRY_LATER_MS: i64 = 1000;

pub(super) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[derive(Debug)]
pub(super) struct Bucket {
    /// Entry slots in its file (torn and duplicate ones included).
    pub(super) file_slots: u64,
    /// Entries routed here since the last commit (encoded).
    pub(super) pending: Vec<u8>,
    /// Its minute is in the load horizon: entries go to memory.
    pub(super) open: bool,
    /// Slots of (file ++ pending) already taken into memory, a prefix.
    pub(super) loaded: u64,
    /// Its entries in the heap or being delivered.
    pub(super) live: u64,
    /// Lower bound of the mark-queue offsets of its deliveries.
    pub(super) first_mark: Option<u64>,
    /// Log end after its latest delivery (deleted only once flushed).
    pub(super) last_end: u64,
    /// Lowest log offset of its scheduled records (retention pin).
    pub(super) min_pos: u64,
}

impl Default for Bucket {
    fn default() -> Bucket {
        Bucket {
            file_slots: 0,
            pending: Vec::new(),
            open: false,
            loaded: 0,
            live: 0,
            first_mark: None,
            last_end: 0,
            min_pos: u64::MAX,
        }
    }
}

impl Bucket {
    pub(super) fn slots(&self) -> u64 {
        self.file_slots + (self.pending.len() / files::ENTRY_SIZE) as u64
    }

    pub(super) fn fully_loaded(&self) -> bool {
        self.loaded == self.slots()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Due {
    pub(super) due: i64,
    pub(super) xoff: u64,
    pub(super) pos: u64,
    pub(super) size: u32,
    pub(super) minute: i64,
}

#[derive(Default)]
pub(super) struct State {
    /// Schedule-queue entries below this are routed.
    pub(super) routed: u64,
    pub(super) buckets: BTreeMap<i64, Bucket>,
    pub(super) heap: BinaryHeap<Reverse<Due>>,
    /// Entries delivered (or being delivered) whose marks may still be
    /// needed: per bucket, plus the marks read at start (key `i64::MIN`).
    pub(super) done: HashSet<u64>,
    pub(super) done_by_bucket: HashMap<i64, Vec<u64>>,
    /// Schedule-queue end at start: the marks read at start are needed
    /// until routing passed it and the buckets of that time are gone.
    pub(super) start_routed_until: u64,
    pub(super) start_buckets: HashSet<i64>,
    /// Highest wall clock seen (a clock stepping back does not reopen the
    /// past).
    pub(super) clock: i64,
    pub(super) dirty: bool,
    pub(super) delivered: u64,
    /// Scheduled messages per target topic (routed, not delivered).
    pub(super) topics: HashMap<String, u64>,
}

impl State {
    pub(super) fn count(&mut self, topic: &str, delta: i64) {
        if delta > 0 {
            *self.topics.entry(topic.to_owned()).or_default() += delta as u64;
        } else if let Some(n) = self.topics.get_mut(topic) {
            *n = n.saturating_sub(delta.unsigned_abs());
            if *n == 0 {
                self.topics.remove(topic);
            }
        }
    }
}

/// The timer of one shard ([`run`] drives it).
pub struct Timer {
    pub(super) dir: PathBuf,
    pub(super) st: RefCell<State>,
    /// Signalled when a scheduled message was stored.
    pub wake: Notify,
    pub(super) max_in_memory: usize,
    /// Lowest log offset any undelivered scheduled record needs.
    pub(super) pin: Cell<u64>,
}

/// What `shardmq admin` shows of a shard's timer.
#[derive(Debug, Clone, Default)]
pub struct TimerStats {
    /// Entries in buckets not yet delivered (an entry routed twice after a
    /// crash counts twice until it is delivered) plus entries not routed yet.
    pub scheduled: u64,
    /// Earliest due time in memory or minute of the earliest bucket (ms).
    pub next_due: Option<i64>,
    pub delivered: u64,
    pub in_memory: usize,
    pub buckets: usize,
    /// Scheduled messages per target topic (see [`files::Checkpoint`]).
    pub topics: Vec<(String, u64)>,
}

impl Timer {
    pub fn new(store_dir: &std::path::Path, max_in_memory: usize) -> Timer {
        Timer {
            dir: store_dir.join("timer"),
            st: RefCell::new(State::default()),
            wake: Notify::default(),
            max_in_memory: max_in_memory.max(DELIVERY_BATCH),
            pin: Cell::new(u64::MAX),
        }
    }

    /// `x_max`: the end of the shard's schedule queue.
    pub fn stats(&self, x_max: u64) -> TimerStats {
        let st = self.st.borrow();
        let in_buckets: u64 = st.buckets.values().map(|b| b.slots() - b.loaded + b.live).sum();
        TimerStats {
            scheduled: in_buckets + x_max.saturating_sub(st.routed),
            next_due: st
                .heap
                .peek()
                .map(|d| d.0.due)
                .or_else(|| st.buckets.keys().next().map(|m| m * MINUTE_MS)),
            delivered: st.delivered,
            in_memory: st.heap.len(),
            buckets: st.buckets.len(),
            topics: {
                let mut v: Vec<(String, u64)> = st.topics.iter().map(|(t, n)| (t.clone(), *n)).collect();
                v.sort();
                v
            },
        }
    }

    pub(super) fn now(&self) -> i64 {
        let mut st = self.st.borrow_mut();
        st.clock = st.clock.max(now_ms());
        st.clock
    }
}
