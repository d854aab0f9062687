//! POP_MESSAGE: a pop on this shard's queues, long-polling when nothing is
//! ready, answered with the reply headers and records the Java client
//! builds its handles from.

use std::rc::Rc;
use std::time::Duration;

use crate::protocol::codes::response;
use crate::protocol::RemotingCommand;
use crate::runtime::mesh::ClientRef;
use crate::store::record::patch_delivery;
use crate::store::TagFilter;

use crate::broker::long_poll::{Parked, ANY_QUEUE};
use crate::broker::mesh::ConnOp;
use crate::broker::metadata::{self, perm};
use crate::broker::pop::engine::{self, PopBatch, PopRequest, Refusal, MAX_POP};
use crate::broker::shard::Shard;

use super::{bad, check_invisible, local_queue, Pass, MAX_HOLD_MS};

/// `KeyBuilder.POP_ORDER_REVIVE_QUEUE`: the revive queue id of orderly pops
/// (the client tells orderly handles by it).
const ORDER_REVIVE_QID: i32 = 999;

/// A pop reply: the four fields the client decodes on every code.
fn pop_reply(
    cmd: &RemotingCommand,
    code: i32,
    remark: Option<String>,
    pop_time: i64,
    invisible: i64,
    order: bool,
    rest: u64,
) -> RemotingCommand {
    let mut r = RemotingCommand::response_to(cmd, code, remark);
    r.ext_fields.insert_display("popTime", pop_time);
    r.ext_fields.insert_display("invisibleTime", invisible);
    r.ext_fields
        .insert_display("reviveQid", if order { ORDER_REVIVE_QID } else { 0 });
    r.ext_fields.insert_display("restNum", rest);
    r
}

fn pop_error(cmd: &RemotingCommand, (code, remark): Refusal) -> Option<RemotingCommand> {
    Some(pop_reply(cmd, code, Some(remark), 0, 0, false, 0))
}

pub async fn pop(shard: &Rc<Shard>, cmd: RemotingCommand, client: &ClientRef) -> Option<RemotingCommand> {
    run_pop(shard, cmd, client, Pass::First).await
}

pub(super) async fn run_pop(
    shard: &Rc<Shard>,
    cmd: RemotingCommand,
    client: &ClientRef,
    pass: Pass,
) -> Option<RemotingCommand> {
    let req = match parse_pop(shard, &cmd) {
        Ok(r) => r,
        Err(e) => return pop_error(&cmd, e),
    };
    let poll_ms = cmd.ext_i64("pollTime").ok().flatten().unwrap_or(0).max(0);
    let born = cmd.ext_i64("bornTime").ok().flatten().unwrap_or(0);
    let batch = match engine::pop(shard, &req).await {
        Ok(b) => b,
        Err(e) => return pop_error(&cmd, e),
    };
    if batch.msgs.is_empty() {
        if pass == Pass::First && poll_ms > 0 {
            // The client's clock: trust it only when plausible.
            let now = crate::broker::pop::now_ms();
            let left = born + poll_ms - now;
            let hold = if born > 0 && (0..=poll_ms).contains(&left) {
                left
            } else {
                poll_ms
            };
            let hold = hold.clamp(0, MAX_HOLD_MS);
            if hold > 0 && shard.pops.polls.has_room(client) {
                let queue = req.queue.unwrap_or(ANY_QUEUE);
                shard.pops.polls.park(
                    Parked::new(cmd, client.clone(), req.topic.clone(), queue),
                    Duration::from_millis(hold as u64),
                );
                shard.to_conn(client.shard, client.conn, ConnOp::Defer).await;
                return None;
            }
            if hold > 0 {
                return Some(pop_reply(
                    &cmd,
                    response::POLLING_FULL,
                    Some("too many long-polling pops on this shard or connection".into()),
                    batch.pop_time,
                    batch.invisible_ms,
                    req.order,
                    batch.rest,
                ));
            }
        }
        let code = if poll_ms > 0 {
            response::POLLING_TIMEOUT
        } else {
            response::PULL_NOT_FOUND
        };
        return Some(pop_reply(
            &cmd,
            code,
            Some("no new message".into()),
            batch.pop_time,
            batch.invisible_ms,
            req.order,
            batch.rest,
        ));
    }
    let info = shard.topic(&req.topic);
    Some(found(&cmd, batch, req.order, |g| {
        local_queue(info.as_deref(), client.view, g)
    }))
}

/// A SUCCESS reply: the records (queue ids in the client's numbering) and
/// the offset bookkeeping the client builds its handles from.
fn found(cmd: &RemotingCommand, batch: PopBatch, order: bool, local: impl Fn(u32) -> u32) -> RemotingCommand {
    let mut body = Vec::with_capacity(batch.msgs.iter().map(|m| m.record.len()).sum());
    // Per queue, in body order: (client queue id, offsets).
    let mut per_queue: Vec<(u32, Vec<u64>)> = Vec::new();
    let mut order_counts = String::new();
    for mut m in batch.msgs {
        let q = local(m.queue);
        if q != m.queue {
            patch_delivery(&mut m.record, Some(q), None);
        }
        body.extend_from_slice(&m.record);
        match per_queue.iter_mut().find(|(id, _)| *id == q) {
            Some((_, offs)) => offs.push(m.offset),
            None => per_queue.push((q, vec![m.offset])),
        }
        if order {
            if !order_counts.is_empty() {
                order_counts.push(';');
            }
            order_counts.push_str(&format!("0 qo{q}%{} {}", m.offset, m.reconsume_times));
        }
    }
    let start: Vec<String> = per_queue.iter().map(|(q, o)| format!("0 {q} {}", o[0])).collect();
    let offsets: Vec<String> = per_queue
        .iter()
        .map(|(q, o)| {
            let list: Vec<String> = o.iter().map(u64::to_string).collect();
            format!("0 {q} {}", list.join(","))
        })
        .collect();
    let mut r = pop_reply(
        cmd,
        response::SUCCESS,
        Some("FOUND".into()),
        batch.pop_time,
        batch.invisible_ms,
        order,
        batch.rest,
    );
    r.ext_fields.insert("startOffsetInfo", start.join(";"));
    r.ext_fields.insert("msgOffsetInfo", offsets.join(";"));
    if order {
        r.ext_fields.insert("orderCountInfo", order_counts);
    }
    r.with_body(body)
}

fn parse_pop(shard: &Shard, cmd: &RemotingCommand) -> Result<PopRequest, Refusal> {
    let group = cmd.required_str("consumerGroup").map_err(bad)?.to_string();
    let topic = cmd.required_str("topic").map_err(bad)?.to_string();
    let queue_id = cmd.required_i32("queueId").map_err(bad)?;
    let max = cmd.required_i32("maxMsgNums").map_err(bad)?;
    let invisible = cmd.required_i64("invisibleTime").map_err(bad)?;
    metadata::validate_group(&group).map_err(|e| (response::INVALID_PARAMETER, e))?;
    if !(1..=MAX_POP as i32).contains(&max) {
        return Err((
            response::INVALID_PARAMETER,
            format!("maxMsgNums {max} is out of range: 1 to {MAX_POP}"),
        ));
    }
    check_invisible(shard, invisible)?;
    let init_max = cmd.ext_i32("initMode").map_err(bad)? == Some(1);
    let order = cmd.ext_bool("order").map_err(bad)?.unwrap_or(false);
    let attempt_id = cmd.ext_str("attemptId").unwrap_or("").to_string();
    let filter = shard.with_meta(|meta| {
        let Some(info) = meta.topic(&topic) else {
            return Err(crate::broker::reply::topic_not_exist(&topic));
        };
        if info.perm & perm::READ == 0 {
            return Err((
                response::NO_PERMISSION,
                format!("the topic[{topic}] peeking message is forbidden"),
            ));
        }
        if queue_id >= info.read_queue_nums as i32 || queue_id < -1 {
            return Err((
                response::INVALID_PARAMETER,
                format!(
                    "queueId[{queue_id}] is illegal, topic:[{topic}] topicConfig.readQueueNums:[{}]",
                    info.read_queue_nums
                ),
            ));
        }
        filter_of(meta, cmd, &group, &topic)
    })?;
    Ok(PopRequest {
        group,
        topic,
        queue: (queue_id >= 0).then_some(queue_id as u32),
        max: max as usize,
        invisible_ms: invisible,
        filter,
        init_max,
        order,
        attempt_id,
    })
}

/// The request's expression, else the group's subscription, else all.
fn filter_of(meta: &metadata::Metadata, cmd: &RemotingCommand, group: &str, topic: &str) -> Result<TagFilter, Refusal> {
    if let Some(exp) = cmd.ext_str("exp") {
        let ty = cmd.ext_str("expType").unwrap_or("TAG");
        if !ty.eq_ignore_ascii_case("TAG") {
            return Err((
                response::SYSTEM_ERROR,
                "The broker does not support consumer to filter message by SQL92".into(),
            ));
        }
        return Ok(metadata::tag_filter(exp));
    }
    Ok(meta
        .subscriptions
        .get(&(group.to_string(), topic.to_string()))
        .map_or(TagFilter::All, |s| metadata::tag_filter(&s.expression)))
}
