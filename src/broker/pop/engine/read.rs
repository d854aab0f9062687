//! Reading what a pop hands out: leases due again, then new messages from
//! the frontier, with the reconsume count patched in; a message consumed
//! too often goes to `%DLQ%<group>` instead.

use std::rc::Rc;

use crate::protocol::codes::response;
use crate::store::record::{check_record, patch_delivery, RecordCheck};
use crate::store::GetStatus;

use crate::broker::metadata::DLQ_GROUP_TOPIC_PREFIX;
use crate::broker::shard::Shard;

use super::{backlog, PopBatch, PopRequest, Popped, Refusal};

/// Bytes of messages one pop reads from a queue at most.
const MAX_POP_BYTES: usize = 4 << 20;

type Read = (Vec<(u64, i64)>, Vec<Popped>, u64, Vec<(u64, i64)>);

/// Reads the records to hand out from queue `q`: first the leases due
/// again (`due`), then new messages from the frontier. Returns the pop's
/// (offset, previous pop time) list and messages in the same order, the
/// new frontier, and leases whose records are gone.
pub(super) async fn read_queue(
    shard: &Rc<Shard>,
    req: &PopRequest,
    q: u32,
    due: Vec<(u64, crate::broker::pop::state::Lease)>,
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
pub(super) async fn repeat_batch(
    shard: &Rc<Shard>,
    req: &PopRequest,
    q: u32,
    leases: &[(u64, crate::broker::pop::state::Lease)],
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
