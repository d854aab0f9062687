//! INVOKE_BROKER_TO_RESET_OFFSET: a group's offsets of a topic moved to a
//! time on every shard (each rewrites its own queues), the clients told by
//! the controller; [`reset_all`] is the same reset for REST.

use std::rc::Rc;

use crate::protocol::bodies::{JsonBody, MessageQueue, ResetOffsetBody};
use crate::protocol::codes::response;
use crate::protocol::RemotingCommand;
use crate::store::Boundary;

use crate::broker::mesh::{unexpected, Reply, Request};
use crate::broker::reply::error;
use crate::broker::shard::Shard;

use super::{fan_out, group_info, group_not_exist, ok_body, topic_not_exist};

/// Moves `group`'s offsets of this shard's queues of `topic` (all, or
/// `only`) to the first message stored at or after `ts` (`-1`: the end);
/// without `force` an offset only moves back. Answers the new offsets.
pub async fn reset_here(
    shard: &Shard,
    group: &str,
    topic: &str,
    ts: i64,
    only: Option<u32>,
    force: bool,
) -> Result<Vec<(u32, u64)>, (i32, String)> {
    let Some(info) = shard.topic(topic) else {
        return Err(crate::broker::reply::topic_not_exist(topic));
    };
    let mut out: Vec<(u32, u64)> = Vec::new();
    let mut pop_resets = Vec::new();
    for qid in info.owned_by(shard.id) {
        if only.is_some_and(|q| q != qid) {
            continue;
        }
        let target = if ts < 0 {
            shard.store.max_offset(topic, qid)
        } else {
            match shard.store.search_offset_by_time(topic, qid, ts, Boundary::Lower).await {
                Ok(o) => o,
                Err(e) => return Err((response::SYSTEM_ERROR, format!("queue {qid}: {e}"))),
            }
        };
        let offset = match shard.offsets.get(group, topic, qid) {
            Some(c) if !force && target >= c => c,
            _ => target,
        };
        shard.offsets.commit(group, topic, qid, offset);
        // A group consuming by POP moves there too (its leases dropped).
        match shard.pops.reset(&shard.store, group, topic, qid, offset) {
            Some(Ok(a)) => pop_resets.push(a),
            Some(Err(e)) => {
                return Err((
                    response::SYSTEM_ERROR,
                    format!("queue {qid}: pop position not reset: {e:?}"),
                ))
            }
            None => {}
        }
        out.push((qid, offset));
    }
    if let Some(a) = pop_resets.last() {
        let s = shard.store.durable(a).await;
        if s != crate::store::PutStatus::Ok {
            return Err((response::SYSTEM_ERROR, format!("pop position reset not durable: {s:?}")));
        }
    }
    if let Err(e) = shard.offsets.persist().await {
        log::error!("shard {}: cannot persist consumer offsets: {e}", shard.id);
    }
    if !out.is_empty() {
        log::info!(
            "shard {}: offsets of group {group} on topic {topic} reset to time {ts}: {out:?}",
            shard.id
        );
    }
    Ok(out)
}

/// [`reset_here`] on every shard (here, and the others through the mesh):
/// every queue's new offset, sorted by queue.
pub async fn reset_all(
    shard: &Rc<Shard>,
    group: &str,
    topic: &str,
    ts: i64,
    only: Option<u32>,
    force: bool,
) -> Result<Vec<(u32, u64)>, (i32, String)> {
    let mut offsets: Vec<(u32, u64)> = Vec::new();
    for k in 0..shard.shard_count() {
        let part = if k == shard.id {
            reset_here(shard, group, topic, ts, only, force).await
        } else {
            let req = Request::ResetOffsets {
                group: group.to_string(),
                topic: topic.to_string(),
                timestamp: ts,
                queue: only,
                force,
            };
            match shard.ask(k, req).await {
                Some(Reply::Reset(r)) => r,
                Some(_) => Err((response::SYSTEM_ERROR, unexpected("ResetOffsets"))),
                None => Err((response::SYSTEM_ERROR, format!("shard {k} did not answer"))),
            }
        };
        offsets.extend(part?);
    }
    offsets.sort();
    Ok(offsets)
}

pub(super) async fn reset_offset(shard: &Rc<Shard>, cmd: RemotingCommand) -> Option<RemotingCommand> {
    let (group, topic, ts) = match (
        cmd.required_str("group"),
        cmd.required_str("topic"),
        cmd.required_i64("timestamp"),
    ) {
        (Ok(g), Ok(t), Ok(ts)) => (g.to_string(), t.to_string(), ts),
        (Err(e), ..) | (_, Err(e), _) | (.., Err(e)) => return error(&cmd, response::INVALID_PARAMETER, e.to_string()),
    };
    if shard.meta().topic(&topic).is_none() {
        return topic_not_exist(&cmd, &topic);
    }
    let info = group_info(shard, &group).await;
    if !info.known {
        let rows = match fan_out(shard, std::slice::from_ref(&topic), Some(&group), false).await {
            Ok(r) => r,
            Err(e) => return error(&cmd, response::SYSTEM_ERROR, e),
        };
        if rows.iter().all(|r| r.consumer_offset.is_none()) {
            return group_not_exist(&cmd, &group);
        }
    }
    let only = cmd
        .ext_i32("queueId")
        .ok()
        .flatten()
        .and_then(|q| u32::try_from(q).ok());
    let force = cmd.ext_bool("isForce").ok().flatten().unwrap_or(true);
    let offsets = match reset_all(shard, &group, &topic, ts, only, force).await {
        Ok(o) => o,
        Err((code, remark)) => return error(&cmd, code, remark),
    };
    if info.online {
        match &shard.controller {
            Some(c) => c.push_reset(&**shard, &group, &topic, ts, &offsets).await,
            None => {
                let req = Request::PushReset {
                    group: group.clone(),
                    topic: topic.clone(),
                    timestamp: ts,
                    offsets: offsets.clone(),
                };
                let _ = shard.ask(0, req).await;
            }
        }
    }
    let broker = &shard.cfg.broker_name;
    let body = ResetOffsetBody {
        offset_table: offsets
            .into_iter()
            .map(|(q, o)| (MessageQueue::new(topic.as_str(), broker.as_str(), q as i32), o as i64))
            .collect(),
    };
    ok_body(&cmd, body.encode())
}
