//! Looking without taking: PEEK_MESSAGE (the group's next messages, state
//! unchanged), POLLING_INFO (how many pops wait) and NOTIFICATION (whether
//! there is something to pop, long-polling like a pop).

use std::rc::Rc;
use std::time::Duration;

use crate::protocol::codes::response;
use crate::protocol::RemotingCommand;
use crate::runtime::mesh::ClientRef;
use crate::store::record::patch_delivery;
use crate::store::TagFilter;

use crate::broker::long_poll::{Parked, ANY_QUEUE};
use crate::broker::mesh::ConnOp;
use crate::broker::pop::engine::{self, Refusal, MAX_POP};
use crate::broker::reply::error;
use crate::broker::shard::Shard;

use super::{bad, local_queue, Pass, MAX_HOLD_MS};

/// PEEK_MESSAGE: the group's next messages of one queue, state unchanged.
pub async fn peek(shard: &Rc<Shard>, cmd: RemotingCommand, client: &ClientRef) -> Option<RemotingCommand> {
    let r: Result<RemotingCommand, Refusal> = async {
        let group = cmd.required_str("consumerGroup").map_err(bad)?;
        let topic = cmd.required_str("topic").map_err(bad)?;
        let q = cmd.required_i32("queueId").map_err(bad)?;
        let max = cmd.required_i32("maxMsgNums").map_err(bad)?.clamp(1, MAX_POP as i32) as usize;
        let q = u32::try_from(q).map_err(|_| (response::INVALID_PARAMETER, format!("queueId {q} is illegal")))?;
        engine::ready(shard).await?;
        let from = {
            let st = shard.pops.st.borrow();
            st.find(group, topic, q).and_then(|i| st.queue(i).next)
        }
        .or_else(|| shard.offsets.get(group, topic, q))
        .unwrap_or_else(|| shard.store.min_offset(topic, q));
        let got = shard
            .store
            .get_messages(topic, q, from, max, 4 << 20, &TagFilter::All)
            .await
            .map_err(|e| (response::SYSTEM_ERROR, format!("read failed: {e}")))?;
        if got.count == 0 {
            return Ok(RemotingCommand::response_to(
                &cmd,
                response::PULL_NOT_FOUND,
                Some("no new message".into()),
            ));
        }
        let mut body = got.body;
        let info = shard.topic(topic);
        let lq = local_queue(info.as_deref(), client.view, q);
        if lq != q {
            let mut at = 0;
            while let Some(size) = body
                .get(at..at + 4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
            {
                if size == 0 || at + size > body.len() {
                    break;
                }
                patch_delivery(&mut body[at..at + size], Some(lq), None);
                at += size;
            }
        }
        Ok(RemotingCommand::response_to(&cmd, response::SUCCESS, None).with_body(body))
    }
    .await;
    match r {
        Ok(reply) => Some(reply),
        Err((code, remark)) => error(&cmd, code, remark),
    }
}

/// POLLING_INFO: how many pops wait on the queue (header `pollingNum`).
pub fn polling_info(shard: &Shard, cmd: RemotingCommand) -> Option<RemotingCommand> {
    let (topic, q) = match (cmd.required_str("topic"), cmd.required_i32("queueId")) {
        (Ok(t), Ok(q)) => (t.to_string(), q),
        (Err(e), _) | (_, Err(e)) => return error(&cmd, response::INVALID_PARAMETER, e.to_string()),
    };
    if shard.topic(&topic).is_none() {
        let (code, remark) = crate::broker::reply::topic_not_exist(&topic);
        return error(&cmd, code, remark);
    }
    let n = shard.pops.polls.held_on(&topic, u32::try_from(q).unwrap_or(ANY_QUEUE));
    let mut out = RemotingCommand::response_to(&cmd, response::SUCCESS, None);
    out.ext_fields.insert_display("pollingNum", n);
    Some(out)
}

pub async fn notification(shard: &Rc<Shard>, cmd: RemotingCommand, client: &ClientRef) -> Option<RemotingCommand> {
    run_notification(shard, cmd, client, Pass::First).await
}

/// NOTIFICATION: whether the group has messages to pop (header `hasMsg`),
/// long-polling like a pop.
pub(super) async fn run_notification(
    shard: &Rc<Shard>,
    cmd: RemotingCommand,
    client: &ClientRef,
    pass: Pass,
) -> Option<RemotingCommand> {
    let r: Result<bool, Refusal> = async {
        let group = cmd.required_str("consumerGroup").map_err(bad)?;
        let topic = cmd.required_str("topic").map_err(bad)?;
        let q = cmd.required_i32("queueId").map_err(bad)?;
        engine::ready(shard).await?;
        let queues: Vec<u32> = if q >= 0 {
            vec![q as u32]
        } else {
            shard
                .with_topic(topic, |t| t.owned_by(shard.id).collect())
                .unwrap_or_default()
        };
        let now = crate::broker::pop::now_ms();
        let has = queues.iter().any(|&q| {
            let max = shard.store.max_offset(topic, q);
            let st = shard.pops.st.borrow();
            match st.find(group, topic, q) {
                Some(i) => {
                    let pq = st.queue(i);
                    !pq.ready.is_empty() || st.expired_in(i, now) || pq.next.unwrap_or(0) < max
                }
                None => shard.offsets.get(group, topic, q).unwrap_or(0) < max,
            }
        });
        Ok(has)
    }
    .await;
    let has = match r {
        Ok(h) => h,
        Err((code, remark)) => return error(&cmd, code, remark),
    };
    let poll_ms = cmd
        .ext_i64("pollTime")
        .ok()
        .flatten()
        .unwrap_or(0)
        .clamp(0, MAX_HOLD_MS);
    if !has && pass == Pass::First && poll_ms > 0 && shard.pops.polls.has_room(client) {
        let topic = cmd.ext_str("topic").unwrap_or("").to_string();
        let q = cmd.ext_i32("queueId").ok().flatten().unwrap_or(-1);
        let queue = u32::try_from(q).unwrap_or(ANY_QUEUE);
        shard.pops.polls.park(
            Parked::new(cmd, client.clone(), topic, queue),
            Duration::from_millis(poll_ms as u64),
        );
        shard.to_conn(client.shard, client.conn, ConnOp::Defer).await;
        return None;
    }
    let mut out = RemotingCommand::response_to(&cmd, response::SUCCESS, None);
    out.ext_fields.insert_display("hasMsg", has);
    out.ext_fields.insert_display("pollingFull", false);
    Some(out)
}
