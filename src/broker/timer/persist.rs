//! The timer's durable state: start-up (checkpoint, buckets, the marks
//! read back) and checkpoints (see the module docs of [`super`] for the
//! order that keeps delivery exactly once).

use std::rc::Rc;

use crate::store::{MARK_QUEUE_TIMER, MARK_TOPIC, SCHEDULE_TOPIC};

use super::{files, now_ms, record_topic, update_pin, Bucket, Shard, MINUTE_MS, ROUTE_CHUNK};

pub(super) async fn start(shard: &Rc<Shard>) -> Result<(), String> {
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

/// Commits routed entries to their bucket files, deletes finished
/// buckets, stores the checkpoint (one blocking round trip, see the module
/// docs for the order), then forgets what the deleted buckets needed.
pub(super) async fn checkpoint(shard: &Rc<Shard>) -> Result<(), String> {
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
