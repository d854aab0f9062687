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

pub mod due;
pub mod files;

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::protocol::java_string_hash;
use crate::protocol::properties::{keys, Properties};
use crate::store::notify::Notify;
use crate::store::{
    LogOffset, Mark, MessageInput, PhysicalOffset, PutStatus, DUE_PROPERTY, MARK_PROPERTY, MARK_QUEUE_TIMER,
    MARK_TOPIC, SCHEDULE_TOPIC,
};

use super::shard::Shard;
use files::Entry;

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
    if let Err(e) = start(&shard).await {
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
        if let Err(e) = route(&shard).await {
            log::error!("shard {}: timer routing failed: {e}", shard.id);
        }
        if let Err(e) = load(&shard).await {
            log::error!("shard {}: timer bucket load failed: {e}", shard.id);
        }
        let delivered = deliver_due(&shard).await;
        if last_ckpt.elapsed() >= CHECKPOINT_EVERY {
            last_ckpt = std::time::Instant::now();
            if let Err(e) = checkpoint(&shard).await {
                log::error!("shard {}: timer checkpoint failed: {e}", shard.id);
            }
        }
        if shard.store.is_stopping() {
            let _ = checkpoint(&shard).await;
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

async fn start(shard: &Rc<Shard>) -> Result<(), String> {
    let t = &shard.timer;
    let (ck, buckets) = files::open(t.dir.clone()).await?;
    // The done set: every mark from `marks_from` on.
    let mut done = Vec::new();
    let mut uncounted = Vec::new();
    let mut at = ck.marks_from;
    loop {
        let e = shard
            .store
            .queue_entries(MARK_TOPIC, MARK_QUEUE_TIMER, at, ROUTE_CHUNK)
            .await
            .map_err(|e| e.to_string())?;
        if e.is_empty() {
            break;
        }
        for (i, m) in e.iter().enumerate() {
            // Delivered after the checkpoint counted, of an entry it had
            // counted as scheduled: not counted as delivered yet.
            if at + i as u64 >= ck.marks_counted && (m.tags_code as u64) < ck.routed {
                uncounted.push(m.pos);
            }
        }
        at += e.len() as u64;
        done.extend(e.iter().map(|e| e.tags_code as u64));
    }
    let mut delivered_topics = Vec::with_capacity(uncounted.len());
    for pos in uncounted {
        if let Some(t) = record_topic(shard, pos, false).await {
            delivered_topics.push(t);
        }
    }
    if at < ck.marks_from {
        at = ck.marks_from;
    }
    let mut firsts = Vec::new();
    for (minute, len) in &buckets {
        let (first, _) = files::read_bucket(t.dir.clone(), *minute, 0, 1).await?;
        firsts.push((*minute, *len, first.first().map(|e| e.pos)));
    }
    let x_max = shard.store.max_offset(SCHEDULE_TOPIC, 0);
    {
        let mut st = t.st.borrow_mut();
        st.routed = ck.routed;
        st.clock = now_ms();
        st.topics = ck.topics.iter().cloned().collect();
        for t in delivered_topics {
            st.count(&t, -1);
        }
        for (minute, len, first_pos) in firsts {
            let b = Bucket {
                file_slots: len / files::ENTRY_SIZE as u64,
                first_mark: Some(ck.marks_from),
                min_pos: first_pos.unwrap_or(u64::MAX),
                ..Bucket::default()
            };
            st.buckets.insert(minute, b);
            st.start_buckets.insert(minute);
        }
        st.done_by_bucket.insert(i64::MIN, done.clone());
        st.done.extend(done);
        st.start_routed_until = x_max;
        log::info!(
            "shard {}: timer open: {} bucket(s), routing from schedule entry {} of {}, {} delivered entr(y/ies) \
         remembered from marks {}..{}",
            shard.id,
            st.buckets.len(),
            ck.routed,
            x_max,
            st.done.len(),
            ck.marks_from,
            at
        );
    }
    update_pin(shard).await;
    Ok(())
}

/// Routes new schedule-queue entries into their buckets (and into memory
/// when their bucket is loaded). Pauses while memory is full: the entries
/// wait in the schedule queue.
async fn route(shard: &Rc<Shard>) -> Result<(), String> {
    let t = &shard.timer;
    loop {
        let (from, room) = {
            let st = t.st.borrow();
            (st.routed, t.max_in_memory.saturating_sub(st.heap.len()))
        };
        if room == 0 {
            return Ok(());
        }
        let entries = shard
            .store
            .queue_entries(SCHEDULE_TOPIC, 0, from, ROUTE_CHUNK.min(room))
            .await
            .map_err(|e| e.to_string())?;
        if entries.is_empty() {
            return Ok(());
        }
        // The target topic of each entry, for the per-topic counts.
        let mut topics = Vec::with_capacity(entries.len());
        for e in &entries {
            topics.push(record_topic(shard, e.pos, true).await);
        }
        let now = t.now();
        let current = now.div_euclid(MINUTE_MS);
        let mut st = t.st.borrow_mut();
        if st.routed != from {
            continue; // cannot happen (one task routes), but never route twice
        }
        for (i, e) in entries.iter().enumerate() {
            let xoff = from + i as u64;
            if st.done.contains(&xoff) {
                continue;
            }
            if let Some(topic) = &topics[i] {
                st.count(topic, 1);
            }
            // Overdue entries go to the current minute: a bucket whose
            // minute is over never gets new entries.
            let minute = e.tags_code.div_euclid(MINUTE_MS).max(current);
            let entry = Entry {
                xoff,
                due: e.tags_code,
                pos: e.pos,
                size: e.size,
            };
            let b = st.buckets.entry(minute).or_default();
            let take = b.open && b.fully_loaded();
            entry.encode(&mut b.pending);
            b.min_pos = b.min_pos.min(e.pos);
            if take {
                b.loaded += 1;
                b.live += 1;
                st.heap.push(Reverse(Due {
                    due: entry.due,
                    xoff,
                    pos: entry.pos,
                    size: entry.size,
                    minute,
                }));
            }
        }
        st.routed = from + entries.len() as u64;
        st.dirty = true;
    }
}

/// Opens the buckets of the load horizon and takes their entries into
/// memory, as far as `timerMaxInMemory` allows.
async fn load(shard: &Rc<Shard>) -> Result<(), String> {
    let t = &shard.timer;
    let horizon = (t.now() + LOOKAHEAD_MS).div_euclid(MINUTE_MS);
    loop {
        // The earliest bucket in the horizon with something left to load.
        let job = {
            let mut st = t.st.borrow_mut();
            let room = t.max_in_memory.saturating_sub(st.heap.len());
            if room == 0 {
                return Ok(());
            }
            let Some((&minute, b)) = st
                .buckets
                .range_mut(..=horizon)
                .find(|(_, b)| !b.open || !b.fully_loaded())
            else {
                return Ok(());
            };
            b.open = true;
            if b.fully_loaded() {
                continue;
            }
            (minute, b.loaded, b.file_slots, room)
        };
        let (minute, loaded, file_slots, room) = job;
        let (entries, slots) = if loaded < file_slots {
            let want = ((file_slots - loaded) as usize).min(room);
            let (e, read) = files::read_bucket(t.dir.clone(), minute, loaded, want).await?;
            // A file shorter than recorded (cannot happen; be safe): skip to
            // the pending part rather than loop.
            (e, if read == 0 { file_slots - loaded } else { read })
        } else {
            let st = t.st.borrow();
            let b = &st.buckets[&minute];
            let skip = (loaded - file_slots) as usize * files::ENTRY_SIZE;
            let e: Vec<Entry> = b.pending[skip..]
                .chunks_exact(files::ENTRY_SIZE)
                .take(room)
                .filter_map(Entry::decode)
                .collect();
            let n = e.len() as u64;
            (e, n)
        };
        let mut st = t.st.borrow_mut();
        let mut pushed = 0;
        for e in entries {
            if st.done.contains(&e.xoff) {
                continue;
            }
            st.heap.push(Reverse(Due {
                due: e.due,
                xoff: e.xoff,
                pos: e.pos,
                size: e.size,
                minute,
            }));
            pushed += 1;
        }
        let Some(b) = st.buckets.get_mut(&minute) else {
            return Ok(());
        };
        if b.loaded != loaded {
            return Err(format!("bucket {minute} changed while it was loading"));
        }
        b.loaded += slots;
        b.live += pushed;
    }
}

/// Delivers every due entry, a batch per write. True when it delivered
/// anything (the caller looks again at once).
async fn deliver_due(shard: &Rc<Shard>) -> bool {
    let t = &shard.timer;
    let now = t.now();
    let batch = {
        let mut st = t.st.borrow_mut();
        let mark_floor = shard.store.offsets(MARK_TOPIC, MARK_QUEUE_TIMER).map_or(0, |o| o.1);
        let mut batch = Vec::new();
        while batch.len() < DELIVERY_BATCH {
            match st.heap.peek() {
                Some(Reverse(d)) if d.due <= now => {}
                _ => break,
            }
            let Some(Reverse(d)) = st.heap.pop() else { break };
            if !st.done.insert(d.xoff) {
                if let Some(b) = st.buckets.get_mut(&d.minute) {
                    b.live -= 1;
                }
                continue;
            }
            st.done_by_bucket.entry(d.minute).or_default().push(d.xoff);
            if let Some(b) = st.buckets.get_mut(&d.minute) {
                b.first_mark.get_or_insert(mark_floor);
            }
            batch.push(d);
        }
        batch
    };
    if batch.is_empty() {
        return false;
    }
    let reads = batch.iter().map(|d| {
        let pos = PhysicalOffset::new(shard.id, LogOffset(d.pos));
        shard.store.read_record_sized(pos, d.size)
    });
    let records = futures::future::join_all(reads).await;
    let mut msgs = Vec::with_capacity(batch.len());
    let mut sent = Vec::with_capacity(batch.len());
    for (d, rec) in batch.iter().zip(records) {
        match rec.map_err(|e| e.to_string()).and_then(|r| {
            r.ok_or_else(|| "the scheduled record is not in the CommitLog".to_string())
                .and_then(|r| due_message(&r, d.xoff))
        }) {
            Ok(m) => {
                msgs.push(m);
                sent.push(*d);
            }
            Err(why) => {
                // Never retried: it cannot become readable again. Counted as
                // delivered so that its bucket can go.
                log::error!(
                    "shard {}: scheduled entry {} (log offset {}) cannot be delivered: {why}; dropped",
                    shard.id,
                    d.xoff,
                    d.pos
                );
                finish(t, d, 0);
            }
        }
    }
    if msgs.is_empty() {
        return true;
    }
    let r = shard.store.put_batch(&msgs, true).await;
    let end = shard.store.write_log_offset();
    match r.status {
        PutStatus::Ok | PutStatus::FlushDiskTimeout => {
            for (d, m) in sent.iter().zip(&msgs) {
                finish(t, d, end);
                t.st.borrow_mut().count(&m.topic, -1);
                shard.pulls.wake(&m.topic, m.queue_id);
            }
            t.st.borrow_mut().delivered += sent.len() as u64;
        }
        PutStatus::FlushFailed(why) => {
            // Possibly stored: whether is for recovery to say (their marks
            // decide after a restart). Not retried here.
            log::error!(
                "shard {}: flush failed under {} scheduled deliveries ({why}); they are settled at the next start",
                shard.id,
                sent.len()
            );
            for d in &sent {
                finish(t, d, u64::MAX);
            }
        }
        PutStatus::MessageIllegal(why) => {
            log::error!(
                "shard {}: {} scheduled deliveries refused as illegal ({why}); dropped",
                shard.id,
                sent.len()
            );
            for d in &sent {
                finish(t, d, 0);
            }
        }
        PutStatus::Busy | PutStatus::ServiceNotAvailable(_) => {
            let mut st = t.st.borrow_mut();
            for d in &sent {
                st.done.remove(&d.xoff);
                if let Some(v) = st.done_by_bucket.get_mut(&d.minute) {
                    if let Some(i) = v.iter().rposition(|x| *x == d.xoff) {
                        v.swap_remove(i);
                    }
                }
                st.heap.push(Reverse(Due {
                    due: now + RETRY_LATER_MS,
                    ..*d
                }));
            }
            drop(st);
            log::warn!(
                "shard {}: {} scheduled deliveries refused for now ({:?}); retried in {RETRY_LATER_MS} ms",
                shard.id,
                sent.len(),
                r.status
            );
            return false;
        }
    }
    true
}

fn finish(t: &Timer, d: &Due, end: u64) {
    let mut st = t.st.borrow_mut();
    st.dirty = true;
    if let Some(b) = st.buckets.get_mut(&d.minute) {
        b.live -= 1;
        b.last_end = b.last_end.max(end);
    }
}

/// The message a scheduled record delivers: its real topic and queue, the
/// schedule properties removed, the timer's mark added.
fn due_message(rec: &[u8], xoff: u64) -> Result<MessageInput, String> {
    let crate::store::record::RecordCheck::Record(v) = crate::store::record::check_record(rec, None, false) else {
        return Err("the scheduled record does not decode".into());
    };
    let mut m = v.to_input().ok_or("the scheduled record's topic is not UTF-8")?;
    let mut props = Properties::parse_bytes(v.properties);
    let topic = props
        .get(keys::REAL_TOPIC)
        .ok_or("the scheduled record has no REAL_TOPIC")?
        .to_owned();
    let qid: u32 = props
        .get(keys::REAL_QUEUE_ID)
        .and_then(|q| q.parse().ok())
        .ok_or("the scheduled record has no valid REAL_QID")?;
    for k in [
        keys::DELAY,
        keys::TIMER_DELIVER_MS,
        keys::TIMER_DELAY_SEC,
        keys::TIMER_DELAY_MS,
        due::START_DELIVER_TIME,
        DUE_PROPERTY,
        MARK_PROPERTY,
    ] {
        props.remove(k);
    }
    let mark = Mark {
        queue: MARK_QUEUE_TIMER,
        value: xoff as i64,
    };
    props
        .insert(MARK_PROPERTY, mark.property())
        .map_err(|e| e.to_string())?;
    m.tags_code = props.get(keys::TAGS).map_or(0, |t| java_string_hash(t) as i64);
    m.properties = bytes::Bytes::from(props.encode());
    m.topic = topic;
    m.queue_id = qid;
    m.mark = Some(mark);
    Ok(m)
}

/// Commits routed entries to their bucket files, deletes finished
/// buckets, stores the checkpoint (one blocking round trip, see the module
/// docs for the order), then forgets what the deleted buckets needed.
async fn checkpoint(shard: &Rc<Shard>) -> Result<(), String> {
    let t = &shard.timer;
    let now = t.now();
    let current = now.div_euclid(MINUTE_MS);
    let flushed = shard.store.flushed_log_offset();
    let mark_end = shard.store.offsets(MARK_TOPIC, MARK_QUEUE_TIMER).map_or(0, |o| o.1);
    let (appends, ck, delete) = {
        let mut st = t.st.borrow_mut();
        let finished: Vec<i64> = st
            .buckets
            .iter()
            .filter(|(m, b)| **m < current && b.open && b.fully_loaded() && b.live == 0 && b.last_end <= flushed)
            .map(|(m, _)| *m)
            .collect();
        if !st.dirty && finished.is_empty() {
            return Ok(());
        }
        let mut appends = Vec::new();
        for (m, b) in st.buckets.iter_mut() {
            if !b.pending.is_empty() && !finished.contains(m) {
                appends.push((*m, b.pending.clone()));
            }
        }
        let marks_from = st
            .buckets
            .iter()
            .filter(|(m, _)| !finished.contains(m))
            .filter_map(|(_, b)| b.first_mark)
            .min()
            .unwrap_or(mark_end)
            .min(mark_end);
        let mut topics: Vec<(String, u64)> = st.topics.iter().map(|(t, n)| (t.clone(), *n)).collect();
        topics.sort();
        let ck = files::Checkpoint {
            routed: st.routed,
            marks_from,
            marks_counted: mark_end,
            topics,
        };
        st.dirty = false;
        (appends, ck, finished)
    };
    let appended: Vec<(i64, usize)> = appends.iter().map(|(m, b)| (*m, b.len())).collect();
    if let Err(e) = files::commit(t.dir.clone(), appends, ck, delete.clone()).await {
        t.st.borrow_mut().dirty = true;
        return Err(e);
    }
    {
        let mut st = t.st.borrow_mut();
        for (m, n) in appended {
            if let Some(b) = st.buckets.get_mut(&m) {
                // Entries routed while the commit ran stay pending.
                b.pending.drain(..n);
                b.file_slots += (n / files::ENTRY_SIZE) as u64;
            }
        }
        for m in &delete {
            st.buckets.remove(m);
            st.start_buckets.remove(m);
            if let Some(xs) = st.done_by_bucket.remove(m) {
                for x in xs {
                    st.done.remove(&x);
                }
            }
        }
        if st.start_buckets.is_empty() && st.routed >= st.start_routed_until {
            if let Some(xs) = st.done_by_bucket.remove(&i64::MIN) {
                for x in xs {
                    st.done.remove(&x);
                }
            }
        }
    }
    update_pin(shard).await;
    Ok(())
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
