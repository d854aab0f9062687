//! A pop over the queues of one (group, topic) on their owner: which queues
//! to take from and how, then one op record for what was handed out.

use std::rc::Rc;

use crate::protocol::codes::response;

use crate::broker::pop::oplog::Op;
use crate::broker::pop::state::Outcome;
use crate::broker::shard::Shard;

use super::read::{read_queue, repeat_batch};
use super::{append, backlog, commit_progress, durable, ready, PopBatch, PopRequest, Refusal};

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
    let now = crate::broker::pop::now_ms();
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
                    crate::broker::pop::state::MAX_QUEUES
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
            let due: Vec<(u64, crate::broker::pop::state::Lease)> = pq
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

/// What a pop does with one queue.
enum Plan {
    /// Another pop is reading it, or (orderly) it is blocked.
    Skip,
    /// Orderly: the batch in flight under the repeated attempt id.
    Repeat(Vec<(u64, crate::broker::pop::state::Lease)>),
    /// Read: (queue index, leases due again, frontier).
    Read(u32, Vec<(u64, crate::broker::pop::state::Lease)>, Option<u64>),
}
