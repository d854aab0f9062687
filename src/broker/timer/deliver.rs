//! Delivering due entries: a batch of scheduled records read, stored in
//! their real queues with the timer's mark, in one write (see the module
//! docs of [`super`]).

use std::cmp::Reverse;
use std::rc::Rc;

use crate::protocol::java_string_hash;
use crate::protocol::properties::{keys, Properties};
use crate::store::{
    LogOffset, Mark, MessageInput, PhysicalOffset, PutStatus, DUE_PROPERTY, MARK_PROPERTY, MARK_QUEUE_TIMER, MARK_TOPIC,
};

use super::{due, Due, Shard, Timer, DELIVERY_BATCH, RETRY_LATER_MS};

/// Delivers every due entry, a batch per write. True when it delivered
/// anything (the caller looks again at once).
pub(super) async fn deliver_due(shard: &Rc<Shard>) -> bool {
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
        PutStatus::Ok | PutStatus::FlushDiskTimeout | PutStatus::FlushSlaveTimeout | PutStatus::SlaveNotAvailable => {
            for (d, m) in sent.iter().zip(&msgs) {
                finish(t, d, end);
                t.st.borrow_mut().count(&m.topic, -1);
                shard.message_arrived(&m.topic, m.queue_id);
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

pub(super) fn finish(t: &Timer, d: &Due, end: u64) {
    let mut st = t.st.borrow_mut();
    st.dirty = true;
    if let Some(b) = st.buckets.get_mut(&d.minute) {
        b.live -= 1;
        b.last_end = b.last_end.max(end);
    }
}

/// The message a scheduled record delivers: its real topic and queue, the
/// schedule properties removed, the timer's mark added.
pub(super) fn due_message(rec: &[u8], xoff: u64) -> Result<MessageInput, String> {
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
