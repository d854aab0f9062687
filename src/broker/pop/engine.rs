//! Pop, ack and change-invisible-time on the shard that owns the queues,
//! independent of the protocol that asked (remoting here, gRPC too).

use std::rc::Rc;

use crate::protocol::codes::response;
use crate::store::record::{check_record, patch_delivery, RecordCheck};
use crate::store::{GetStatus, PutStatus};

use super::oplog::Op;
use super::state::Outcome;
use super::Shard;
use crate::broker::metadata::DLQ_GROUP_TOPIC_PREFIX;

/// Most messages one pop returns (RocketMQ's limit).
pub const MAX_POP: usize = 32;
/// Bytes of messages one pop reads from a queue at most.
const MAX_POP_BYTES: usize = 4 << 20;

pub use super::types::{PopBatch, PopRequest, Popped, Refusal};

/// Waits until the shard's POP state is recovered.
pub async fn ready(shard: &Shard) -> Result<(), Refusal> {
    let p = &shard.pops;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !p.loaded.get() {
        let seen = p.loaded_signal.generation();
        let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) else {
            return Err((
                response::SYSTEM_BUSY,
                format!("shard {}: pop state is still being recovered", shard.id),
            ));
        };
        futures_lite::future::or(p.loaded_signal.changed_since(seen), glommio::timer::sleep(left)).await;
    }
    Ok(())
}

pub async fn pop(shard: &Rc<Shard>, req: &PopRequest) -> Result<PopBatch, Refusal> {
    ready(shard).await?;
    let queues: Vec<u32> = match req.queue {
        Some(q) => vec![q],
        None => {
            let mut v: Vec<u32> = shard
                .with_topic(&req.topic, |t| t.owned_by(shard.id).collect())
                .unwrap_or_default();
            if !v.is_empty() {
                let k = shard.pops.rr.get();
                shard.pops.rr.set(k.wrapping_add(1));
                let n = v.len();
                v.rotate_left(k % n);
            }
            v
        }
    };
    let pop_time = shard.pops.next_pop_time();
    let visible_at = pop_time + req.invisible_ms;
    let mut batch = PopBatch {
        pop_time,
        invisible_ms: req.invisible_ms,
        msgs: Vec::new(),
        rest: 0,
    };
    let mut last = None;
    for q in queues {
        if batch.msgs.len() >= req.max {
            batch.rest += backlog(shard, req, q);
            continue;
        }
        let (appended, repeat) = pop_queue(shard, req, q, pop_time, visible_at, &mut batch).await?;
        if let Some(a) = appended {
            last = Some(a);
        }
        if let Some(r) = repeat {
            // An orderly repeat answers with the batch it names, alone.
            return Ok(r);
        }
        batch.rest += backlog(shard, req, q);
    }
    if let Some(a) = last {
        durable(shard, &a).await?;
        shard.pops.wake.notify_all();
    }
    for q in batch
        .msgs
        .iter()
        .map(|m| m.queue)
        .collect::<std::collections::BTreeSet<_>>()
    {
        commit_progress(shard, &req.group, &req.topic, q);
    }
    Ok(batch)
}

/// Messages of queue `q` the group has not received yet (plus those due
/// again).
fn backlog(shard: &Shard, req: &PopRequest, q: u32) -> u64 {
    let max = shard.store.max_offset(&req.topic, q);
    let st = shard.pops.st.borrow();
    match st.find(&req.group, &req.topic, q) {
        Some(i) => {
            let pq = st.queue(i);
            max.saturating_sub(pq.next.unwrap_or(0)) + pq.ready.len() as u64
        }
        None => max.saturating_sub(shard.offsets.get(&req.group, &req.topic, q).unwrap_or(0)),
    }
}

/// Pops from one queue into `batch`. Returns the op record appended (if
/// any) and, for an orderly repeat of an attempt still in flight, that
/// batch.
async fn pop_queue(
    shard: &Rc<Shard>,
    req: &PopRequest,
    q: u32,
    pop_time: i64,
    visible_at: i64,
    batch: &mut PopBatch,
) -> Result<(Option<crate::store::Appended>, Option<PopBatch>), Refusal> {
    let now = super::now_ms();
    // What to deliver again, where new messages start; the queue is marked
    // busy while its records are read (no other pop takes them meanwhile).
    let plan = {
        let mut st = shard.pops.st.borrow_mut();
        let Some(i) = st.index(&req.group, &req.topic, q) else {
            return Err((
                response::SYSTEM_BUSY,
                format!(
                    "shard {} keeps POP positions of {} queues already",
                    shard.id,
                    super::state::MAX_QUEUES
                ),
            ));
        };
        let pq = &st.queues[i as usize];
        if pq.busy {
            Plan::Skip
        } else if req.order && pq.blocked(now) {
            match &pq.attempt {
                Some((id, offs)) if !req.attempt_id.is_empty() && *id == req.attempt_id => {
                    Plan::Repeat(offs.iter().filter_map(|o| pq.leases.get(o).map(|l| (*o, *l))).collect())
                }
                _ => Plan::Skip,
            }
        } else {
            let room = req.max - batch.msgs.len();
            let due: Vec<(u64, super::state::Lease)> = pq
                .ready
                .iter()
                .take(room)
                .filter_map(|o| pq.leases.get(o).map(|l| (*o, *l)))
                .collect();
            let start = pq.next;
            st.queues[i as usize].busy = true;
            Plan::Read(i, due, start)
        }
    };
    let (idx, due, start) = match plan {
        Plan::Skip => return Ok((None, None)),
        Plan::Repeat(leases) if leases.is_empty() => return Ok((None, None)),
        Plan::Repeat(leases) => return Ok((None, Some(repeat_batch(shard, req, q, &leases).await?))),
        Plan::Read(i, due, start) => (i, due, start),
    };
    let r = read_queue(shard, req, q, due, start, batch.msgs.len()).await;
    let mut st = shard.pops.st.borrow_mut();
    st.queues[idx as usize].busy = false;
    let (offsets, mut msgs, next, gone) = r?;
    // Pops that found this queue busy went to wait: wake them when it
    // still has messages for the group.
    if shard.store.max_offset(&req.topic, q) > next {
        shard.pops.polls.wake(&req.topic, q);
    }
    let mut appended = None;
    if !gone.is_empty() {
        let op = Op::Ack {
            group: req.group.clone(),
            topic: req.topic.clone(),
            queue: q,
            items: gone,
        };
        appended = Some(append(shard, &op)?);
        st.apply(&op);
    }
    let nothing = offsets.is_empty();
    let op = Op::Pop {
        group: req.group.clone(),
        topic: req.topic.clone(),
        queue: q,
        pop_time,
        visible_at,
        next,
        attempt_id: if req.order {
            req.attempt_id.clone()
        } else {
            String::new()
        },
        offsets,
    };
    if nothing {
        // Only the frontier moves (over filtered-out messages): not logged;
        // after a restart they are examined again and filtered again.
        st.apply(&op);
        return Ok((appended, None));
    }
    let a = append(shard, &op)?;
    let outcomes = st.apply(&op);
    drop(st);
    // A message acknowledged while it was read is not handed out again.
    let mut k = 0;
    msgs.retain(|_| {
        k += 1;
        outcomes[k - 1] == Outcome::Done
    });
    batch.msgs.extend(msgs);
    Ok((Some(a), None))
}

type Read = (Vec<(u64, i64)>, Vec<Popped>, u64, Vec<(u64, i64)>);

/// What a pop does with one queue.
enum Plan {
    /// Another pop is reading it, or (orderly) it is blocked.
    Skip,
    /// Orderly: the batch in flight under the repeated attempt id.
    Repeat(Vec<(u64, super::state::Lease)>),
    /// Read: (queue index, leases due again, frontier).
    Read(u32, Vec<(u64, super::state::Lease)>, Option<u64>),
}

/// Reads the records to hand out from queue `q`: first the leases due
/// again (`due`), then new messages from the frontier. Returns the pop's
/// (offset, previous pop time) list and messages in the same order, the
/// new frontier, and leases whose records are gone.
async fn read_queue(
    shard: &Rc<Shard>,
    req: &PopRequest,
    q: u32,
    due: Vec<(u64, super::state::Lease)>,
    start: Option<u64>,
    have: usize,
) -> Result<Read, Refusal> {
    let mut offsets = Vec::new();
    let mut msgs = Vec::new();
    let mut gone = Vec::new();
    let mut max_reconsume = None;
    for (off, lease) in due {
        let Some(mut rec) = record_at(shard, &req.topic, q, off).await? else {
            log::warn!(
                "shard {}: {}@{} queue {q} offset {off} was deleted by retention while in flight; dropped",
                shard.id,
                req.topic,
                req.group
            );
            gone.push((off, lease.pop_time));
            continue;
        };
        let base = match check_record(&rec, None, false) {
            RecordCheck::Record(v) => v.reconsume_times,
            _ => 0,
        };
        let reconsume = base.saturating_add(lease.attempts as i32);
        let max = match max_reconsume {
            Some(m) => m,
            None => {
                let m = crate::broker::admin::group_info(shard, &req.group)
                    .await
                    .retry_max_times;
                max_reconsume = Some(m);
                m
            }
        };
        if reconsume > max {
            dead_letter(shard, &req.group, &rec, reconsume).await?;
            gone.push((off, lease.pop_time));
            continue;
        }
        patch_delivery(&mut rec, None, Some(reconsume));
        offsets.push((off, lease.pop_time));
        msgs.push(Popped {
            queue: q,
            offset: off,
            record: rec,
            reconsume_times: reconsume,
        });
    }
    let want = req.max.saturating_sub(have + msgs.len());
    let in_flight = shard.pops.in_flight();
    let room = shard.pops.max_in_flight.saturating_sub(in_flight);
    let mut start = match start {
        Some(s) => s,
        None => match shard.offsets.get(&req.group, &req.topic, q) {
            Some(o) => o,
            None if req.init_max => shard.store.max_offset(&req.topic, q),
            None => shard.store.min_offset(&req.topic, q),
        },
    };
    let mut next = start;
    if want > 0 && room > 0 {
        let r = shard
            .store
            .get_messages(&req.topic, q, start, want.min(room), MAX_POP_BYTES, &req.filter)
            .await
            .map_err(|e| (response::SYSTEM_ERROR, format!("read failed: {e}")))?;
        match r.status {
            GetStatus::Found | GetStatus::NoMatchedMessage => next = r.next_offset,
            GetStatus::OffsetTooSmall => {
                start = r.min_offset;
                next = start;
            }
            GetStatus::OffsetOverflowBadly => next = r.max_offset,
            _ => {}
        }
        let mut at = 0usize;
        for &off in &r.offsets {
            let Some(size) = r
                .body
                .get(at..at + 4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
            else {
                break;
            };
            let Some(rec) = r.body.get(at..at + size) else { break };
            let reconsume = match check_record(rec, None, false) {
                RecordCheck::Record(v) => v.reconsume_times,
                _ => 0,
            };
            offsets.push((off, 0));
            msgs.push(Popped {
                queue: q,
                offset: off,
                record: rec.to_vec(),
                reconsume_times: reconsume,
            });
            at += size;
        }
    } else if want > 0 && room == 0 && msgs.is_empty() {
        return Err((
            response::SYSTEM_BUSY,
            format!(
                "shard {} has {in_flight} messages in flight (popMaxInFlight {}); ack some first",
                shard.id, shard.pops.max_in_flight
            ),
        ));
    }
    Ok((offsets, msgs, next, gone))
}

/// An orderly pop repeating the attempt id of the batch in flight: the same
/// messages under the same handles, nothing logged.
async fn repeat_batch(
    shard: &Rc<Shard>,
    req: &PopRequest,
    q: u32,
    leases: &[(u64, super::state::Lease)],
) -> Result<PopBatch, Refusal> {
    let mut msgs = Vec::new();
    let first = leases[0].1;
    for (off, l) in leases {
        if l.pop_time != first.pop_time {
            continue; // its time was changed: it has another handle now
        }
        if let Some(mut rec) = record_at(shard, &req.topic, q, *off).await? {
            let base = match check_record(&rec, None, false) {
                RecordCheck::Record(v) => v.reconsume_times,
                _ => 0,
            };
            let reconsume = base.saturating_add(l.attempts as i32 - 1);
            patch_delivery(&mut rec, None, Some(reconsume));
            msgs.push(Popped {
                queue: q,
                offset: *off,
                record: rec,
                reconsume_times: reconsume,
            });
        }
    }
    Ok(PopBatch {
        pop_time: first.pop_time,
        invisible_ms: first.visible_at - first.pop_time,
        msgs,
        rest: backlog(shard, req, q),
    })
}

/// The record at queue offset `off`, `None` when retention deleted it.
async fn record_at(shard: &Shard, topic: &str, q: u32, off: u64) -> Result<Option<Vec<u8>>, Refusal> {
    let failed = |e: crate::store::StoreError| (response::SYSTEM_ERROR, format!("read failed: {e}"));
    let entries = shard.store.queue_entries(topic, q, off, 1).await.map_err(failed)?;
    let Some(e) = entries.first() else { return Ok(None) };
    shard
        .store
        .read_record_sized(
            crate::store::PhysicalOffset::new(shard.id, crate::store::LogOffset(e.pos)),
            e.size,
        )
        .await
        .map_err(failed)
}

/// Stores a copy of a message consumed too often in `%DLQ%<group>`.
async fn dead_letter(shard: &Rc<Shard>, group: &str, rec: &[u8], reconsume: i32) -> Result<(), Refusal> {
    let RecordCheck::Record(v) = check_record(rec, None, false) else {
        return Err((response::SYSTEM_ERROR, "a stored record does not decode".into()));
    };
    let (mut m, props) = crate::broker::retry::consumed_copy(shard, &v, None)?;
    let dlq = format!("{DLQ_GROUP_TOPIC_PREFIX}{group}");
    let info = crate::broker::retry::group_topic(shard, &dlq).await?;
    m.topic = dlq;
    m.queue_id = 0;
    m.reconsume_times = reconsume;
    m.properties = bytes::Bytes::from(props.encode());
    let owner = info.owner(0).unwrap_or(shard.id);
    crate::broker::retry::store_on(shard, owner, m, None).await?;
    Ok(())
}

/// Acknowledges messages of one queue by (offset, pop time of the handle).
pub async fn ack(
    shard: &Shard,
    group: &str,
    topic: &str,
    q: u32,
    items: &[(u64, i64)],
) -> Result<Vec<Outcome>, Refusal> {
    ready(shard).await?;
    let op = Op::Ack {
        group: group.to_string(),
        topic: topic.to_string(),
        queue: q,
        items: items.to_vec(),
    };
    let (outcomes, appended, was_blocked) = {
        let mut st = shard.pops.st.borrow_mut();
        // Nothing would change (every handle stale or done): answer
        // without logging.
        let current: Vec<Outcome> = match st.find(group, topic, q) {
            Some(i) => items
                .iter()
                .map(|(o, t)| match st.queue(i).leases.get(o) {
                    Some(l) if l.pop_time == *t => Outcome::Done,
                    Some(l) => Outcome::Stale { current: l.pop_time },
                    None => Outcome::NotInFlight,
                })
                .collect(),
            None => vec![Outcome::NotInFlight; items.len()],
        };
        if !current.contains(&Outcome::Done) {
            return Ok(current);
        }
        let was_blocked = st
            .find(group, topic, q)
            .is_some_and(|i| st.queue(i).blocked(super::now_ms()));
        let a = append(shard, &op)?;
        (st.apply(&op), a, was_blocked)
    };
    durable(shard, &appended).await?;
    commit_progress(shard, group, topic, q);
    if was_blocked {
        wake_if_unblocked(shard, group, topic, q);
    }
    Ok(outcomes)
}

/// An orderly pop skips a queue while a lease of it is still invisible and
/// then waits on it; when acks leave no such lease and the group has
/// messages there, the pops waiting on the queue are woken (as Apache's
/// ackOrderly notifies them), else they would wait out their long poll.
fn wake_if_unblocked(shard: &Shard, group: &str, topic: &str, q: u32) {
    let go = {
        let st = shard.pops.st.borrow();
        st.find(group, topic, q).is_some_and(|i| {
            let pq = st.queue(i);
            !pq.blocked(super::now_ms())
                && (!pq.ready.is_empty() || pq.next.is_some_and(|n| shard.store.max_offset(topic, q) > n))
        })
    };
    if go {
        shard.pops.polls.wake(topic, q);
    }
}

/// Changes the invisible time of one message: visible again `invisible_ms`
/// from now, under a new handle (its pop time, returned).
pub async fn change(
    shard: &Shard,
    group: &str,
    topic: &str,
    q: u32,
    offset: u64,
    pop_time: i64,
    invisible_ms: i64,
) -> Result<(Outcome, i64), Refusal> {
    ready(shard).await?;
    let new_pop_time = shard.pops.next_pop_time();
    let visible_at = new_pop_time + invisible_ms;
    change_lease(shard, group, topic, q, offset, pop_time, new_pop_time, visible_at).await
}

/// Renews a lease a client still holds (gRPC `auto_renew`): visible again
/// `invisible_ms` from now under the **same** handle, so the client's ack
/// still names it. Only a lease still invisible is renewed (one already
/// visible is due for re-delivery: `NotInFlight`). The op is the same
/// Change record, with the pop time kept.
pub async fn renew(
    shard: &Shard,
    group: &str,
    topic: &str,
    q: u32,
    offset: u64,
    pop_time: i64,
    invisible_ms: i64,
) -> Result<Outcome, Refusal> {
    ready(shard).await?;
    let now = super::now_ms();
    {
        let st = shard.pops.st.borrow();
        let lease = st
            .find(group, topic, q)
            .and_then(|i| st.queue(i).leases.get(&offset).map(|l| (l.pop_time, l.visible_at)));
        match lease {
            Some((p, v)) if p == pop_time && v <= now => return Ok(Outcome::NotInFlight),
            _ => {}
        }
    }
    let r = change_lease(shard, group, topic, q, offset, pop_time, pop_time, now + invisible_ms).await?;
    Ok(r.0)
}

#[allow(clippy::too_many_arguments)]
async fn change_lease(
    shard: &Shard,
    group: &str,
    topic: &str,
    q: u32,
    offset: u64,
    pop_time: i64,
    new_pop_time: i64,
    visible_at: i64,
) -> Result<(Outcome, i64), Refusal> {
    let op = Op::Change {
        group: group.to_string(),
        topic: topic.to_string(),
        queue: q,
        offset,
        pop_time,
        new_pop_time,
        visible_at,
    };
    let appended = {
        let mut st = shard.pops.st.borrow_mut();
        let current = st
            .find(group, topic, q)
            .and_then(|i| st.queue(i).leases.get(&offset).map(|l| l.pop_time));
        match current {
            None => return Ok((Outcome::NotInFlight, 0)),
            Some(c) if c != pop_time => return Ok((Outcome::Stale { current: c }, 0)),
            Some(_) => {}
        }
        let a = append(shard, &op)?;
        st.apply(&op);
        a
    };
    shard.pops.wake.notify_all();
    durable(shard, &appended).await?;
    Ok((Outcome::Done, new_pop_time))
}

/// Places an op record in the log (see the module docs of `oplog` for why
/// the caller applies it right after, without suspending).
fn append(shard: &Shard, op: &Op) -> Result<crate::store::Appended, Refusal> {
    let rec = op.record(shard.store.config().store_host, super::now_ms());
    shard.store.append(&rec).map_err(|s| put_refusal(&s))
}

async fn durable(shard: &Shard, a: &crate::store::Appended) -> Result<(), Refusal> {
    match shard.store.durable(a).await {
        PutStatus::Ok => Ok(()),
        s => Err(put_refusal(&s)),
    }
}

fn put_refusal(s: &PutStatus) -> Refusal {
    match s {
        PutStatus::Ok => (response::SUCCESS, String::new()),
        PutStatus::FlushDiskTimeout => (
            response::FLUSH_DISK_TIMEOUT,
            "the pop state change was not flushed in time".into(),
        ),
        PutStatus::MessageIllegal(m) => (response::SYSTEM_ERROR, format!("pop state record refused: {m}")),
        PutStatus::ServiceNotAvailable(m) => (
            response::SERVICE_NOT_AVAILABLE,
            format!("service not available now: {m}"),
        ),
        PutStatus::Busy => (response::SYSTEM_BUSY, "broker busy, the tail cache is full".into()),
        PutStatus::FlushFailed(m) => (response::SYSTEM_ERROR, format!("flush failed: {m}")),
    }
}

/// The group's consume progress in queue `q` = its lowest offset not
/// acknowledged (what admin's consume stats and a later pull start from).
fn commit_progress(shard: &Shard, group: &str, topic: &str, q: u32) {
    let low = {
        let st = shard.pops.st.borrow();
        st.find(group, topic, q).and_then(|i| st.queue(i).low())
    };
    if let Some(low) = low {
        shard.offsets.commit(group, topic, q, low);
    }
}
