//! The remoting POP codes (codes.md §3): POP_MESSAGE, ACK_MESSAGE,
//! BATCH_ACK_MESSAGE, CHANGE_MESSAGE_INVISIBLETIME, PEEK_MESSAGE and
//! NOTIFICATION, answered as the Java broker does. Queue ids arrive global
//! ([`crate::broker::dispatch`] translates a shard entry's numbering) and
//! leave in the client's numbering: in the reply headers and in the queue
//! id of every returned record, which the Java client keys its handles by.
//!
//! Handles (`POP_CK` / `extraInfo`, built by the client from the reply
//! header): `<startOffset> <popTime> <invisibleTime> <reviveQid> 0
//! <brokerName> <queueId> <offset>`. The pop time names the lease; the
//! queue and offset come from the request header.

use std::rc::Rc;
use std::time::Duration;

use crate::protocol::codes::{request, response};
use crate::protocol::RemotingCommand;
use crate::runtime::mesh::{ClientRef, View};
use crate::store::record::patch_delivery;
use crate::store::TagFilter;

use super::engine::{self, PopBatch, PopRequest, Refusal, MAX_POP};
use super::state::Outcome;
use super::Shard;
use crate::broker::long_poll::{Parked, ANY_QUEUE};
use crate::broker::mesh::{ConnOp, Reply, Request};
use crate::broker::metadata::{self, perm, TopicInfo};
use crate::broker::reply::error;

/// `KeyBuilder.POP_ORDER_REVIVE_QUEUE`: the revive queue id of orderly pops
/// (the client tells orderly handles by it).
const ORDER_REVIVE_QID: i32 = 999;
/// Longest hold of a long-polling pop (the client's own timeout is longer).
const MAX_HOLD_MS: i64 = 30_000;
/// Longest invisible time (12 h, the proxy's limit).
pub const MAX_INVISIBLE_MS: i64 = 12 * 3600 * 1000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Pass {
    First,
    Parked,
}

pub async fn pop(shard: &Rc<Shard>, cmd: RemotingCommand, client: &ClientRef) -> Option<RemotingCommand> {
    run_pop(shard, cmd, client, Pass::First).await
}

/// A parked POP_MESSAGE or NOTIFICATION that is due: runs once more,
/// without parking.
pub async fn rerun_parked(shard: &Rc<Shard>, cmd: RemotingCommand, client: &ClientRef) -> Option<RemotingCommand> {
    if cmd.code == request::NOTIFICATION {
        return run_notification(shard, cmd, client, Pass::Parked).await;
    }
    run_pop(shard, cmd, client, Pass::Parked).await
}

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

async fn run_pop(shard: &Rc<Shard>, cmd: RemotingCommand, client: &ClientRef, pass: Pass) -> Option<RemotingCommand> {
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
            let now = super::now_ms();
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

/// The client's number for global queue `g`.
fn local_queue(info: Option<&TopicInfo>, view: View, g: u32) -> u32 {
    match (view, info) {
        (View::Shard(k), Some(t)) => t.global_to_local(k, g).unwrap_or(g),
        _ => g,
    }
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

fn bad(e: crate::protocol::HeaderError) -> Refusal {
    (response::INVALID_PARAMETER, e.to_string())
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

fn check_invisible(shard: &Shard, invisible: i64) -> Result<(), Refusal> {
    let min = shard.cfg.pop_min_invisible_ms;
    if invisible < min || invisible > MAX_INVISIBLE_MS {
        return Err((
            response::INVALID_PARAMETER,
            format!("invisibleTime {invisible} ms is out of range: {min} ms (popMinInvisibleTime) to 12 h"),
        ));
    }
    Ok(())
}

/// The pop time a handle (`extraInfo`) carries.
fn handle_pop_time(extra: &str) -> Result<i64, Refusal> {
    extra
        .split(' ')
        .nth(1)
        .and_then(|t| t.parse::<i64>().ok())
        .ok_or_else(|| {
            (
                response::INVALID_PARAMETER,
                format!("extraInfo {extra:?} is not a receipt handle of this broker"),
            )
        })
}

fn stale_remark(pop_time: i64, current: i64) -> String {
    format!(
        "the receipt handle is stale: the message was received again or its invisible time changed since \
         (handle popTime {pop_time}, current {current})"
    )
}

/// Offsets outside the queue are NO_MESSAGE (as the Java broker answers).
fn check_in_queue(shard: &Shard, topic: &str, q: u32, offset: i64) -> Result<(), Refusal> {
    let Some((min, max)) = shard.store.offsets(topic, q) else {
        return Err(crate::broker::reply::topic_not_exist(topic));
    };
    if offset < min as i64 || offset >= max as i64 {
        return Err((
            response::NO_MESSAGE,
            format!("offset {offset} is not in queue {q} of {topic}: [{min}, {max})"),
        ));
    }
    Ok(())
}

pub async fn ack(shard: &Rc<Shard>, cmd: RemotingCommand) -> Option<RemotingCommand> {
    let r = async {
        let group = cmd.required_str("consumerGroup").map_err(bad)?;
        let topic = cmd.required_str("topic").map_err(bad)?;
        let q = cmd.required_i32("queueId").map_err(bad)?;
        let offset = cmd.required_i64("offset").map_err(bad)?;
        let pop_time = handle_pop_time(cmd.required_str("extraInfo").map_err(bad)?)?;
        let q = u32::try_from(q).map_err(|_| (response::INVALID_PARAMETER, format!("queueId {q} is illegal")))?;
        check_in_queue(shard, topic, q, offset)?;
        let out = engine::ack(shard, group, topic, q, &[(offset as u64, pop_time)]).await?;
        match out.first() {
            Some(Outcome::Stale { current }) => Err((response::NO_MESSAGE, stale_remark(pop_time, *current))),
            _ => Ok(()),
        }
    }
    .await;
    match r {
        Ok(()) => Some(RemotingCommand::response_to(&cmd, response::SUCCESS, None)),
        Err((code, remark)) => error(&cmd, code, remark),
    }
}

pub async fn change_invisible(shard: &Rc<Shard>, cmd: RemotingCommand) -> Option<RemotingCommand> {
    let r = async {
        let group = cmd.required_str("consumerGroup").map_err(bad)?;
        let topic = cmd.required_str("topic").map_err(bad)?;
        let q = cmd.required_i32("queueId").map_err(bad)?;
        let offset = cmd.required_i64("offset").map_err(bad)?;
        let invisible = cmd.required_i64("invisibleTime").map_err(bad)?;
        let pop_time = handle_pop_time(cmd.required_str("extraInfo").map_err(bad)?)?;
        let q = u32::try_from(q).map_err(|_| (response::INVALID_PARAMETER, format!("queueId {q} is illegal")))?;
        check_invisible(shard, invisible)?;
        check_in_queue(shard, topic, q, offset)?;
        match engine::change(shard, group, topic, q, offset as u64, pop_time, invisible).await? {
            (Outcome::Done, new_pop_time) => Ok((new_pop_time, invisible)),
            (Outcome::Stale { current }, _) => Err((response::NO_MESSAGE, stale_remark(pop_time, current))),
            (Outcome::NotInFlight, _) => Err((
                response::NO_MESSAGE,
                format!("offset {offset} of queue {q} is not in flight for {group}: acknowledged already"),
            )),
        }
    }
    .await;
    // The client decodes the three fields on every code.
    let (code, remark, pop_time, invisible) = match r {
        Ok((t, i)) => (response::SUCCESS, None, t, i),
        Err((code, remark)) => (code, Some(remark), 0, 0),
    };
    let mut out = RemotingCommand::response_to(&cmd, code, remark);
    out.ext_fields.insert_display("popTime", pop_time);
    out.ext_fields.insert_display("invisibleTime", invisible);
    out.ext_fields.insert_display("reviveQid", 0);
    Some(out)
}

/// One entry of a BATCH_ACK_MESSAGE body (`BatchAck`).
#[derive(serde::Deserialize)]
struct BatchAckItem {
    c: String,
    t: String,
    #[serde(default)]
    r: String,
    so: i64,
    q: i32,
    pt: i64,
    b: String,
}

#[derive(serde::Deserialize)]
struct BatchAckBody {
    #[serde(default)]
    acks: Vec<BatchAckItem>,
}

/// The offsets a `java.util.BitSet.toByteArray` names from `start`.
fn bitset_offsets(start: i64, b64: &str) -> Result<Vec<u64>, String> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| format!("bit set is not base64: {e}"))?;
    if bytes.len() > 1024 {
        return Err(format!("bit set of {} bytes is too long", bytes.len()));
    }
    let mut out = Vec::new();
    for (i, byte) in bytes.iter().enumerate() {
        for bit in 0..8 {
            if byte & (1 << bit) != 0 {
                let off = start + (i * 8 + bit) as i64;
                out.push(u64::try_from(off).map_err(|_| format!("offset {off} is negative"))?);
            }
        }
    }
    Ok(out)
}

/// BATCH_ACK_MESSAGE: runs where it arrives; each queue's acks on the
/// queue's owner.
pub async fn batch_ack(shard: &Rc<Shard>, cmd: RemotingCommand, client: &ClientRef) -> Option<RemotingCommand> {
    let r: Result<(), Refusal> = async {
        let body = &cmd.body[..];
        let parsed: BatchAckBody = serde_json::from_slice(body)
            .map_err(|e| (response::INVALID_PARAMETER, format!("BatchAckMessageRequestBody: {e}")))?;
        if parsed.acks.len() > 1024 {
            return Err((response::INVALID_PARAMETER, "more than 1024 acks in one batch".into()));
        }
        let mut stale = None;
        for a in parsed.acks {
            if !a.r.is_empty() && a.r != "0" {
                return Err((
                    response::INVALID_PARAMETER,
                    format!("retry flag {:?}: this broker hands out no retry-topic handles", a.r),
                ));
            }
            metadata::validate_group(&a.c).map_err(|e| (response::INVALID_PARAMETER, e))?;
            let info = shard
                .topic(&a.t)
                .ok_or_else(|| crate::broker::reply::topic_not_exist(&a.t))?;
            let q =
                u32::try_from(a.q).map_err(|_| (response::INVALID_PARAMETER, format!("queueId {} is illegal", a.q)))?;
            let global = match client.view {
                View::Main => Some(q),
                View::Shard(k) => info.local_to_global(k, q),
            }
            .ok_or_else(|| {
                (
                    response::INVALID_PARAMETER,
                    format!("queueId {q} is not a queue of {} here", a.t),
                )
            })?;
            let offsets = bitset_offsets(a.so, &a.b).map_err(|e| (response::INVALID_PARAMETER, e))?;
            let items: Vec<(u64, i64)> = offsets.into_iter().map(|o| (o, a.pt)).collect();
            let owner = info.owner(global).unwrap_or(shard.id);
            let out = ack_on(shard, owner, a.c, a.t, global, items).await?;
            if let Some(Outcome::Stale { current }) = out.iter().find(|o| matches!(o, Outcome::Stale { .. })) {
                stale = Some(stale_remark(a.pt, *current));
            }
        }
        match stale {
            Some(remark) => Err((response::NO_MESSAGE, remark)),
            None => Ok(()),
        }
    }
    .await;
    match r {
        Ok(()) => Some(RemotingCommand::response_to(&cmd, response::SUCCESS, None)),
        Err((code, remark)) => error(&cmd, code, remark),
    }
}

/// Acks on the owner of the queue (here or through the mesh).
pub async fn ack_on(
    shard: &Rc<Shard>,
    owner: u16,
    group: String,
    topic: String,
    queue: u32,
    items: Vec<(u64, i64)>,
) -> Result<Vec<Outcome>, Refusal> {
    if owner == shard.id {
        return engine::ack(shard, &group, &topic, queue, &items).await;
    }
    match shard
        .ask(
            owner,
            Request::PopAck {
                group,
                topic,
                queue,
                items,
            },
        )
        .await
    {
        Some(Reply::PopAcked(r)) => r,
        Some(_) => Err((response::SYSTEM_ERROR, crate::broker::mesh::unexpected("PopAck"))),
        None => Err((response::SYSTEM_ERROR, format!("shard {owner} did not answer"))),
    }
}

/// Changes the invisible time of a popped message on the owner of its
/// queue (here or through the mesh): the outcome and the new pop time.
#[allow(clippy::too_many_arguments)]
pub async fn change_on(
    shard: &Rc<Shard>,
    owner: u16,
    group: String,
    topic: String,
    queue: u32,
    offset: u64,
    pop_time: i64,
    invisible_ms: i64,
) -> Result<(Outcome, i64), Refusal> {
    if owner == shard.id {
        return engine::change(shard, &group, &topic, queue, offset, pop_time, invisible_ms).await;
    }
    let req = Request::PopChange {
        group,
        topic,
        queue,
        offset,
        pop_time,
        invisible_ms,
    };
    match shard.ask(owner, req).await {
        Some(Reply::PopChanged(r)) => r,
        Some(_) => Err((response::SYSTEM_ERROR, crate::broker::mesh::unexpected("PopChange"))),
        None => Err((response::SYSTEM_ERROR, format!("shard {owner} did not answer"))),
    }
}

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
async fn run_notification(
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
        let now = super::now_ms();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_bitsets_name_offsets_from_the_start() {
        use base64::Engine;
        // BitSet {0, 2, 9}.toByteArray() = [0b0000_0101, 0b0000_0010]
        let b = base64::engine::general_purpose::STANDARD.encode([0b0000_0101u8, 0b0000_0010]);
        assert_eq!(bitset_offsets(100, &b).expect("decodes"), vec![100, 102, 109]);
        assert!(bitset_offsets(0, "!!").is_err());
    }

    #[test]
    fn handles_carry_their_pop_time() {
        assert_eq!(
            handle_pop_time("5 1700000000123 60000 0 0 broker-a-s0 1 7").ok(),
            Some(1_700_000_000_123)
        );
        assert!(handle_pop_time("garbage").is_err());
    }
}
