//! The per-shard timer: delayed and scheduled messages become visible in
//! their queue at their time (store.md §5), exactly once, across kill -9.
//!
//! # How a scheduled message travels
//! 1. The send path ([`super::send`]) stores it **once**, on the shard that
//!    owns its target queue, in the internal schedule queue
//!    ([`SCHEDULE_TOPIC`]/0 of that shard's store) with `REAL_TOPIC`,
//!    `REAL_QID` and its due time (`TIMER_OUT_MS`, also the entry's tags
//!    code). That record is the durable truth: it is acknowledged like any
//!    send (after fsync with SYNC_FLUSH) and recovered like any record.
//! 2. The timer *routes* schedule-queue entries, in order, into minute
//!    *buckets* on disk ([`files`]): 32 bytes per entry. Only the buckets of
//!    the current and the next minute are loaded into memory, into a heap
//!    ordered by due time, at most `timerMaxInMemory` entries (plus what
//!    one bucket holds): 10 M scheduled messages cost disk, not memory.
//! 3. When an entry is due, the timer reads the scheduled record and stores
//!    it in its real queue — many per write and per fsync — with a
//!    [`Mark`] naming the schedule-queue entry. The delivered record and its
//!    mark are one record: after a crash, an entry is delivered iff its
//!    mark is in the mark queue, so nothing is delivered twice or lost.
//!
//! # What survives a crash
//! The checkpoint (`timer/checkpoint`) stores `routed` (entries below it are
//! fsynced in their buckets) and `marks_from` (every mark below it belongs
//! to a bucket already deleted). At start the timer reads the marks from
//! `marks_from` on (the *done* set), routes again every entry from `routed`
//! on, and skips done entries wherever they turn up (a bucket may hold an
//! entry twice). A bucket is deleted only when its minute is over, all its
//! entries were delivered and their marks are durable; deletion happens
//! before the checkpoint that stops counting its marks, in one blocking
//! round trip (append + fsync buckets, unlink, write checkpoint).
//!
//! Never early: an entry is delivered when the wall clock has passed its
//! exact due time (ms). Late by at most the timer's wake-up plus one
//! delivery batch in normal operation.
//!
//! Retention: the CommitLog keeps every segment from the oldest scheduled
//! record not yet delivered (the timer *pins* it), so a 30-day delay
//! outlives a 72-hour `fileReservedTime`.

mod deliver;
pub mod due;
pub mod files;
mod persist;
mod route;

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::protocol::properties::keys;
use crate::store::notify::Notify;
use crate::store::{LogOffset, PhysicalOffset, SCHEDULE_TOPIC};

use super::shard::Shard;

const MINUTE_MS: i64 = 60_000;
/// Buckets are loaded this long before their minute starts.
const LOOKAHEAD_MS: i64 = MINUTE_MS;
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);
/// Entries delivered per write (and per fsync).
const DELIVERY_BATCH: usize = 256;
const ROUTE_CHUNK: usize = 4096;
/// A delivery refused for a passing reason (busy, disk full) is retried
/// this much later.
const RETRY_LATER_MS: i64 = 1000;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[derive(Debug)]
struct Bucket {
    /// Entry slots in its file (torn and duplicate ones included).
    file_slots: u64,
    /// Entries routed here since the last commit (encoded).
    pending: Vec<u8>,
    /// Its minute is in the load horizon: entries go to memory.
    open: bool,
    /// Slots of (file ++ pending) already taken into memory, a prefix.
    loaded: u64,
    /// Its entries in the heap or being delivered.
    live: u64,
    /// Lower bound of the mark-queue offsets of its deliveries.
    first_mark: Option<u64>,
    /// Log end after its latest delivery (deleted only once flushed).
    last_end: u64,
    /// Lowest log offset of its scheduled records (retention pin).
    min_pos: u64,
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
    fn slots(&self) -> u64 {
        self.file_slots + (self.pending.len() / files::ENTRY_SIZE) as u64
    }

    fn fully_loaded(&self) -> bool {
        self.loaded == self.slots()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Due {
    due: i64,
    xoff: u64,
    pos: u64,
    size: u32,
    minute: i64,
}

#[derive(Default)]
struct State {
    /// Schedule-queue entries below this are routed.
    routed: u64,
    buckets: BTreeMap<i64, Bucket>,
    heap: BinaryHeap<Reverse<Due>>,
    /// Entries delivered (or being delivered) whose marks may still be
    /// needed: per bucket, plus the marks read at start (key `i64::MIN`).
    done: HashSet<u64>,
    done_by_bucket: HashMap<i64, Vec<u64>>,
    /// Schedule-queue end at start: the marks read at start are needed
    /// until routing passed it and the buckets of that time are gone.
    start_routed_until: u64,
    start_buckets: HashSet<i64>,
    /// Highest wall clock seen (a clock stepping back does not reopen the
    /// past).
    clock: i64,
    dirty: bool,
    delivered: u64,
    /// Scheduled messages per target topic (routed, not delivered).
    topics: HashMap<String, u64>,
}

impl State {
    fn count(&mut self, topic: &str, delta: i64) {
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
    dir: PathBuf,
    st: RefCell<State>,
    /// Signalled when a scheduled message was stored.
    pub wake: Notify,
    max_in_memory: usize,
    /// Lowest log offset any undelivered scheduled record needs.
    pin: Cell<u64>,
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

    pub fn stats(&self, shard: &Shard) -> TimerStats {
        let st = self.st.borrow();
        let x_max = shard.store.max_offset(SCHEDULE_TOPIC, 0);
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

    fn now(&self) -> i64 {
        let mut st = self.st.borrow_mut();
        st.clock = st.clock.max(now_ms());
        st.clock
    }
}

/// Drives the shard's timer until the store stops: start-up recovery, then
/// route, load, deliver and checkpoint.
pub async fn run(shard: Rc<Shard>) {
    if let Err(e) = persist::start(&shard).await {
        log::error!(
            "shard {}: timer cannot start: {e}; scheduled messages wait until it can",
            shard.id
        );
        return;
    }
    let t = &shard.timer;
    let mut last_ckpt = std::time::Instant::now();
    loop {
        let seen = t.wake.generation();
        if let Err(e) = route::route(&shard).await {
            log::error!("shard {}: timer routing failed: {e}", shard.id);
        }
        if let Err(e) = route::load(&shard).await {
            log::error!("shard {}: timer bucket load failed: {e}", shard.id);
        }
        let delivered = deliver::deliver_due(&shard).await;
        if last_ckpt.elapsed() >= CHECKPOINT_EVERY {
            last_ckpt = std::time::Instant::now();
            if let Err(e) = persist::checkpoint(&shard).await {
                log::error!("shard {}: timer checkpoint failed: {e}", shard.id);
            }
        }
        if shard.store.is_stopping() {
            let _ = persist::checkpoint(&shard).await;
            return;
        }
        if delivered {
            continue;
        }
        let wait = next_wait(t);
        let woke = t.wake.changed_since(seen);
        futures_lite::future::or(woke, glommio::timer::sleep(wait)).await;
    }
}

/// Until the earliest due entry, a checkpoint, or a bucket to load.
fn next_wait(t: &Timer) -> Duration {
    let now = t.now();
    let st = t.st.borrow();
    let mut until = now + CHECKPOINT_EVERY.as_millis() as i64;
    if let Some(Reverse(d)) = st.heap.peek() {
        until = until.min(d.due);
    }
    if let Some((m, _)) = st.buckets.iter().find(|(_, b)| !b.open || !b.fully_loaded()) {
        until = until.min(m * MINUTE_MS - LOOKAHEAD_MS);
    }
    Duration::from_millis(until.saturating_sub(now).clamp(1, 1000) as u64)
}

/// The target topic of the record at log offset `pos`: `REAL_TOPIC` of a
/// scheduled record (`scheduled`), the topic of a delivered one.
async fn record_topic(shard: &Rc<Shard>, pos: u64, scheduled: bool) -> Option<String> {
    let rec = shard
        .store
        .read_record(PhysicalOffset::new(shard.id, LogOffset(pos)))
        .await
        .ok()??;
    let crate::store::record::RecordCheck::Record(v) = crate::store::record::check_record(&rec, None, false) else {
        return None;
    };
    if scheduled {
        crate::store::record::property_of(v.properties, keys::REAL_TOPIC.as_bytes())
            .and_then(|t| std::str::from_utf8(t).ok())
            .map(str::to_owned)
    } else {
        std::str::from_utf8(v.topic).ok().map(str::to_owned)
    }
}

/// Tells the store the lowest log offset still needed by a scheduled
/// record: the oldest unrouted entry or the lowest of any bucket.
async fn update_pin(shard: &Rc<Shard>) {
    let t = &shard.timer;
    let routed = t.st.borrow().routed;
    let unrouted = match shard.store.queue_entries(SCHEDULE_TOPIC, 0, routed, 1).await {
        Ok(e) => e.first().map_or(u64::MAX, |e| e.pos),
        Err(_) => 0,
    };
    let buckets =
        t.st.borrow()
            .buckets
            .values()
            .map(|b| b.min_pos)
            .min()
            .unwrap_or(u64::MAX);
    let pin = unrouted.min(buckets);
    t.pin.set(pin);
    shard.store.pin_log(pin);
}
