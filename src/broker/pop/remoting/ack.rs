//! ACK_MESSAGE, BATCH_ACK_MESSAGE and CHANGE_MESSAGE_INVISIBLETIME on
//! remoting handles, and the acks and invisible-time changes on a queue's
//! owner (here or through the mesh) that gRPC and REST use too.

use std::rc::Rc;

use crate::protocol::codes::response;
use crate::protocol::RemotingCommand;
use crate::runtime::mesh::{ClientRef, View};

use crate::broker::mesh::{Reply, Request};
use crate::broker::metadata;
use crate::broker::pop::engine::{self, Refusal};
use crate::broker::pop::state::Outcome;
use crate::broker::reply::error;
use crate::broker::shard::Shard;

use super::{bad, check_invisible};

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
