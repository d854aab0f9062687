//! Pop, ack and change-invisible-time on the shard that owns the queues,
//! independent of the protocol that asked (remoting here, gRPC too).
//!
//! Files: [`pop`] (planning a pop over the queues and recording it),
//! [`read`] (reading the records a pop hands out, moving the ones consumed
//! too often to the DLQ), [`lease`] (ack, change of invisible time,
//! renewal); this file holds the op-record plumbing they share.

mod lease;
mod pop;
mod read;

pub use lease::{ack, change, renew};
pub use pop::pop;

use crate::protocol::codes::response;
use crate::store::PutStatus;

use super::oplog::Op;
use super::Shard;

/// Most messages one pop returns (RocketMQ's limit).
pub const MAX_POP: usize = 32;

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

/// Messages of queue `q` the group has not received yet (plus those due
/// again).
pub(super) fn backlog(shard: &Shard, req: &PopRequest, q: u32) -> u64 {
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

/// Places an op record in the log (see the module docs of `oplog` for why
/// the caller applies it right after, without suspending).
pub(super) fn append(shard: &Shard, op: &Op) -> Result<crate::store::Appended, Refusal> {
    let rec = op.record(shard.store.config().store_host, super::now_ms());
    shard.store.append(&rec).map_err(|s| put_refusal(&s))
}

pub(super) async fn durable(shard: &Shard, a: &crate::store::Appended) -> Result<(), Refusal> {
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
        PutStatus::FlushSlaveTimeout => (
            response::FLUSH_SLAVE_TIMEOUT,
            "the pop state change was not replicated in time".into(),
        ),
        PutStatus::SlaveNotAvailable => (
            response::SLAVE_NOT_AVAILABLE,
            "no slave is in sync to replicate the pop state change".into(),
        ),
    }
}

/// The group's consume progress in queue `q` = its lowest offset not
/// acknowledged (what admin's consume stats and a later pull start from).
pub(super) fn commit_progress(shard: &Shard, group: &str, topic: &str, q: u32) {
    let low = {
        let st = shard.pops.st.borrow();
        st.find(group, topic, q).and_then(|i| st.queue(i).low())
    };
    if let Some(low) = low {
        shard.offsets.commit(group, topic, q, low);
    }
}
