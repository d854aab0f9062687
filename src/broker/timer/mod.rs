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
pub mod state;

use std::cmp::Reverse;
use std::rc::Rc;
use std::time::Duration;

use crate::protocol::properties::keys;
use crate::store::{LogOffset, PhysicalOffset, SCHEDULE_TOPIC};

use super::shard::Shard;
use state::now_ms;
use state::{Bucket, Due, CHECKPOINT_EVERY, DELIVERY_BATCH, LOOKAHEAD_MS, MINUTE_MS, RETRY_LATER_MS, ROUTE_CHUNK};
pub use state::{Timer, TimerStats};

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
    shard.store.pin_log(crate::store::Pin::Timer, pin);
}
