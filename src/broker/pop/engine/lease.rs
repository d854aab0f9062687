//! What happens to a lease after the pop: ack, change of invisible time,
//! renewal under the same handle.

use crate::broker::pop::oplog::Op;
use crate::broker::pop::state::Outcome;
use crate::broker::shard::Shard;

use super::{append, commit_progress, durable, ready, Refusal};

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
            .is_some_and(|i| st.queue(i).blocked(crate::broker::pop::now_ms()));
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
            !pq.blocked(crate::broker::pop::now_ms())
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
    let now = crate::broker::pop::now_ms();
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
