//! Invisible-time consumption (POP), RocketMQ 5's model: a popped message
//! becomes invisible to its group for the invisible time; an ack removes
//! it for that group only; without an ack it becomes visible again and is
//! delivered once more with `reconsumeTimes + 1`; after the group's
//! `retryMaxTimes` it goes to `%DLQ%<group>` instead.
//!
//! **Model.** One engine per shard over the queues it owns
//! ([`state::Tables`]): per (group, topic, queue) a *frontier* (offsets
//! below it were handed out at least once) and the *leases* of messages in
//! flight, each named by its pop time (strictly increasing per shard, so a
//! handle from before a re-delivery or an invisible-time change is
//! recognisably stale). A re-delivery reads the original record again —
//! no copy into a retry topic as the Java broker makes — with the reconsume
//! count written into the delivered bytes. The group's consume progress
//! (what admin tools show, and where a later pull would start) is its
//! lowest offset not acknowledged.
//!
//! **Durability.** Every pop, ack and change is an op record in the shard's
//! CommitLog ([`oplog`]), appended and applied with no suspension in
//! between and acknowledged to the client only once durable (with
//! SYNC_FLUSH), on the same group commit as messages. Recovery loads the
//! last checkpoint ([`persist`]) and replays the op records after it
//! through the same apply function. So after kill -9: an ack the client saw
//! is never undone (the acked message is not delivered to that group
//! again); a pop the client saw keeps its lease (the message comes back
//! after its invisible time, not before and not never). A DLQ move stores
//! the copy first and then acks: a crash in between can leave a second
//! copy in the DLQ, never none.
//!
//! **Orderly pops** (`order=true`): a queue with a lease still invisible is
//! skipped; a pop repeating the attempt id of the batch in flight gets that
//! batch again under the same handles.
//!
//! **Bounds.** Messages in flight per shard: `popMaxInFlight` (a pop over it
//! gets only re-deliveries, or SYSTEM_BUSY); (group, topic, queue) entries:
//! [`state::MAX_QUEUES`]; long-polling pops: the shard's long-poll bounds
//! ([`crate::broker::long_poll`]).
//!
//! Files: [`engine`] (pop/ack/change on the owner), [`remoting`] (the
//! POP request codes), [`persist`], [`oplog`], [`state`]; QUERY_ASSIGNMENT
//! and the request-mode table are the controller's
//! (`controller/assign.rs`).

use std::rc::Rc;
use std::time::Duration;

pub mod engine;
pub mod oplog;
mod persist;
pub mod remoting;
pub mod state;
pub mod types;

pub use state::Pops;

use super::shard::Shard;

/// How often the state is checkpointed when it changed.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(10);

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Drives the shard's POP engine until the store stops: recovery, then
/// expiries (leases whose time is up become deliverable again and wake the
/// pops waiting on their queue) and checkpoints.
pub async fn run(shard: Rc<Shard>) {
    let p = &shard.pops;
    if let Err(e) = persist::recover(&shard).await {
        log::error!(
            "shard {}: pop state cannot be recovered: {e}; pops are refused until it can",
            shard.id
        );
        return;
    }
    p.loaded.set(true);
    p.loaded_signal.notify_all();
    let mut last_ckpt = std::time::Instant::now();
    loop {
        let seen = p.wake.generation();
        let now = now_ms();
        let touched = p.st.borrow_mut().expire(now);
        for i in touched {
            let (topic, queue) = {
                let st = p.st.borrow();
                let q = st.queue(i);
                (q.topic.clone(), q.queue)
            };
            p.polls.wake(&topic, queue);
        }
        if last_ckpt.elapsed() >= CHECKPOINT_EVERY || shard.store.is_stopping() {
            last_ckpt = std::time::Instant::now();
            if let Err(e) = persist::checkpoint(&shard).await {
                log::error!("shard {}: pop checkpoint failed: {e}", shard.id);
            }
        }
        if shard.store.is_stopping() {
            return;
        }
        let until_expiry =
            p.st.borrow()
                .next_expiry()
                .map(|t| Duration::from_millis(t.saturating_sub(now_ms()).max(0) as u64));
        let wait = until_expiry.map_or(CHECKPOINT_EVERY, |d| d.min(CHECKPOINT_EVERY));
        futures_lite::future::or(p.wake.changed_since(seen), glommio::timer::sleep(wait)).await;
    }
}

/// Answers long-polling pops when they are due (their queue got a message
/// or a lease expired, or their poll time is up), each in a task of its
/// own, delivering the reply to the client's connection.
pub async fn answer_parked(shard: Rc<Shard>) {
    loop {
        for mut p in shard.pops.polls.next_due().await {
            if let Some(tx) = p.notify.take() {
                let _ = tx.send(()); // the waiter may be gone: nothing to do
                continue;
            }
            let shard = shard.clone();
            glommio::spawn_local(async move {
                let client = p.client.clone();
                if let Some(reply) = remoting::rerun_parked(&shard, p.cmd, &client).await {
                    shard
                        .to_conn(client.shard, client.conn, super::mesh::ConnOp::Deliver(reply))
                        .await;
                }
            })
            .detach();
        }
    }
}
