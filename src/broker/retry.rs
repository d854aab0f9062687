//! Retries and dead letters (store.md §6, codes.md §2.4).
//!
//! * CONSUMER_SEND_MSG_BACK (36) runs on the shard that stores the failed
//!   message (its physical offset names the shard). The copy goes to
//!   `%RETRY%<group>`, scheduled through the timer of the retry queue's
//!   owner for delay level `3 + reconsumeTimes` (or the level the client
//!   asked for), with `reconsumeTimes + 1`, `RETRY_TOPIC` and
//!   `ORIGIN_MESSAGE_ID`; or to `%DLQ%<group>` at once when the message was
//!   already consumed `maxReconsumeTimes` times (the request's value from
//!   clients ≥ 3.4.9, else the group's `retryMaxTimes`) or the client asked
//!   for it (delay level < 0).
//! * A direct send to `%RETRY%<group>` (what clients do when send-back
//!   fails, and orderly consumers after their local retries) goes to the
//!   DLQ when its `reconsumeTimes` exceeds the maximum or the group holds
//!   orderly locks ([`redirect_to_dlq`]).
//! * Retry and DLQ topics have one queue and are created on first use by
//!   the controller, which registers them with the name servers.
//!
//! A message is stored on the owner of its target queue ([`store_on`]): a
//! typed mesh request when that is another shard.

use std::rc::Rc;
use std::sync::Arc;

use crate::protocol::codes::response;
use crate::protocol::properties::{keys, Properties};
use crate::protocol::{java_string_hash, OffsetMessageId, RemotingCommand};
use crate::runtime::mesh::{ClientRef, View};
use crate::store::record::{check_record, RecordCheck, RecordView};
use crate::store::{MessageInput, PhysicalOffset, PutStatus, MARK_PROPERTY, SCHEDULE_TOPIC};

use super::mesh::{unexpected, GroupInfo, Reply, Request, Stored};
use super::metadata::{self, TopicInfo, DLQ_GROUP_TOPIC_PREFIX, RETRY_GROUP_TOPIC_PREFIX};
use super::query::Lookup;
use super::reply::error;
use super::shard::Shard;

/// `MQVersion.Version.V3_4_9`: from this client version on the request's
/// `maxReconsumeTimes` is honoured.
const VERSION_WITH_MAX_RECONSUME_TIMES: i32 = 121;
/// Transaction type bits of a sysFlag (prepared 0x4, commit 0x8): a copy is
/// an ordinary message.
const TRANSACTION_BITS: i32 = 0xC;

/// CONSUMER_SEND_MSG_BACK.
pub async fn send_back(shard: &Rc<Shard>, cmd: RemotingCommand, client: &ClientRef) -> Option<RemotingCommand> {
    match send_back_inner(shard, &cmd, client).await {
        Ok(()) => Some(RemotingCommand::response_to(&cmd, response::SUCCESS, None)),
        Err((code, remark)) => error(&cmd, code, remark),
    }
}

async fn send_back_inner(shard: &Rc<Shard>, cmd: &RemotingCommand, client: &ClientRef) -> Result<(), (i32, String)> {
    let bad = |e: crate::protocol::HeaderError| (response::INVALID_PARAMETER, e.to_string());
    let offset = cmd.required_i64("offset").map_err(bad)?;
    let group = cmd.required_str("group").map_err(bad)?;
    let delay_level = cmd.required_i32("delayLevel").map_err(bad)?;
    let origin_msg_id = cmd.ext_str("originMsgId").filter(|s| !s.is_empty());
    let max_from_request = cmd.ext_i32("maxReconsumeTimes").map_err(bad)?;
    metadata::validate_group(group).map_err(|e| (response::INVALID_PARAMETER, e))?;
    let info = super::admin::group_info(shard, group).await;
    if !info.known && !shard.cfg.auto_create_subscription_group {
        return Err((
            response::SUBSCRIPTION_GROUP_NOT_EXIST,
            format!("subscription group not exist, {group}"),
        ));
    }
    let not_found = || {
        (
            response::SYSTEM_ERROR,
            format!("look message by offset failed, {offset}: no message is stored there"),
        )
    };
    let rec = super::query::record_at(shard, offset).await.map_err(|e| match e {
        Lookup::NotFound => not_found(),
        Lookup::Failed(e) => (
            response::SYSTEM_ERROR,
            format!("look message by offset failed, {offset}: {e}"),
        ),
    })?;
    let RecordCheck::Record(v) = check_record(&rec, None, false) else {
        return Err(not_found());
    };
    let topic = String::from_utf8_lossy(v.topic).into_owned();
    check_belongs(&topic, group, offset)?;
    // The group was checked on arrival; the message must be one the client
    // may consume.
    super::access::may(&shard.access, cmd, client, &topic, crate::acl::Need::Sub)?;
    let max = match max_from_request {
        Some(m) if cmd.version >= VERSION_WITH_MAX_RECONSUME_TIMES => m,
        _ => info.retry_max_times,
    };
    let (mut m, mut props) = consumed_copy(shard, &v, origin_msg_id)?;
    m.reconsume_times = v.reconsume_times.saturating_add(1);
    let dead = v.reconsume_times >= max || delay_level < 0;
    let (target, due) = if dead {
        props.remove(keys::DELAY);
        (format!("{DLQ_GROUP_TOPIC_PREFIX}{group}"), None)
    } else {
        let level = if delay_level == 0 {
            3 + v.reconsume_times.max(0)
        } else {
            delay_level
        };
        props.insert(keys::DELAY, level.to_string()).map_err(illegal)?;
        let due = super::timer::due::delivery_time(&shard.cfg, &props.encode())
            .map_err(|e| (response::MESSAGE_ILLEGAL, e))?;
        (format!("{RETRY_GROUP_TOPIC_PREFIX}{group}"), due)
    };
    m.properties = bytes::Bytes::from(props.encode());
    let info = group_topic(shard, &target).await?;
    m.queue_id = pick_queue(&info, v.queue_offset);
    m.topic = target;
    let owner = info.owner(m.queue_id).unwrap_or(shard.id);
    if shard.trace.enabled() {
        let id = crate::store::record::property_of(v.properties, keys::UNIQ_KEY.as_bytes())
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        shard
            .trace
            .sent_back(&shard.cfg.broker_name, group, &topic, &id, &m.topic, m.reconsume_times);
    }
    if dead {
        log::info!(
            "send-back: message {offset} of {topic} to {} after {} consumption(s) by {group} (max {max})",
            m.topic,
            v.reconsume_times + 1
        );
    }
    store_on(shard, owner, m, due).await.map(|_| ())
}

/// A stored message as its retry or dead-letter copy starts: internal
/// properties stripped, `RETRY_TOPIC` (its topic) and `ORIGIN_MESSAGE_ID`
/// (`origin_msg_id`, else its offset id) kept or set, the transaction bits
/// cleared, the tags code recomputed. The caller sets topic, queue,
/// reconsume count, and stores `props` into the message.
pub(super) fn consumed_copy(
    shard: &Shard,
    v: &RecordView<'_>,
    origin_msg_id: Option<&str>,
) -> Result<(MessageInput, Properties), (i32, String)> {
    let topic = String::from_utf8_lossy(v.topic).into_owned();
    let mut m = v.to_input().ok_or_else(|| {
        (
            response::SYSTEM_ERROR,
            format!("message at {} has a topic that is not UTF-8", v.physical_offset),
        )
    })?;
    let mut props = Properties::parse_bytes(v.properties);
    strip_internal(&mut props);
    if props.get(keys::RETRY_TOPIC).is_none() {
        props.insert(keys::RETRY_TOPIC, topic).map_err(illegal)?;
    }
    if props.get(keys::ORIGIN_MESSAGE_ID).is_none() {
        let id = match origin_msg_id {
            Some(id) => id.to_owned(),
            None => OffsetMessageId {
                ip: shard.cfg.broker_ip1,
                port: shard.store.config().store_host.port(),
                commit_log_offset: v.physical_offset as i64,
            }
            .encode(),
        };
        props.insert(keys::ORIGIN_MESSAGE_ID, id).map_err(illegal)?;
    }
    m.sys_flag &= !TRANSACTION_BITS;
    m.tags_code = props.get(keys::TAGS).map_or(0, |t| java_string_hash(t) as i64);
    Ok((m, props))
}

fn illegal(e: crate::protocol::ProtocolError) -> (i32, String) {
    (response::MESSAGE_ILLEGAL, e.to_string())
}

/// A send-back must name a message the group may have consumed: not one of
/// another group's retry or dead-letter topics, not an internal record.
fn check_belongs(topic: &str, group: &str, offset: i64) -> Result<(), (i32, String)> {
    let other = |kind: &str| {
        Err((
            response::NO_PERMISSION,
            format!("the message at offset {offset} is in {topic}, {kind} of another group than {group}"),
        ))
    };
    if let Some(g) = topic.strip_prefix(RETRY_GROUP_TOPIC_PREFIX) {
        if g != group {
            return other("the retry topic");
        }
    }
    if topic == SCHEDULE_TOPIC || topic.starts_with("rmq_sys_") {
        return Err((
            response::NO_PERMISSION,
            format!("the record at offset {offset} is internal ({topic}), not a consumed message"),
        ));
    }
    Ok(())
}

/// Removes what only the store and the timer may set on a record.
pub fn strip_internal(props: &mut Properties) {
    props.remove(MARK_PROPERTY);
    props.remove(crate::store::DUE_PROPERTY);
}

/// A retry queue: the topic has one by default (`retryQueueNums`); with
/// more, spread by the message's offset.
fn pick_queue(info: &TopicInfo, spread: u64) -> u32 {
    (spread % info.write_queue_nums.max(1) as u64) as u32
}

/// The retry or DLQ topic, created (with one queue) if it does not exist.
pub async fn group_topic(shard: &Rc<Shard>, topic: &str) -> Result<Arc<TopicInfo>, (i32, String)> {
    if let Some(t) = shard.topic(topic) {
        return Ok(t);
    }
    shard.auto_create_topic(topic, 1, View::Main).await
}

/// A message the broker writes itself (alerts, its trace records): born
/// now on the broker, its tags code from its `TAGS`.
pub fn broker_message(shard: &Shard, topic: &str, queue_id: u32, body: String, properties: String) -> MessageInput {
    let tags_code = crate::store::record::property_of(properties.as_bytes(), keys::TAGS.as_bytes()).map_or(0, |t| {
        crate::protocol::java_string_hash(&String::from_utf8_lossy(t)) as i64
    });
    MessageInput {
        topic: topic.into(),
        queue_id,
        flag: 0,
        body: bytes::Bytes::from(body),
        properties: bytes::Bytes::from(properties),
        sys_flag: 0,
        born_timestamp: crate::runtime::epoch_ms(),
        born_host: shard.store.config().store_host,
        reconsume_times: 0,
        prepared_transaction_offset: 0,
        tags_code,
        mark: None,
    }
}

/// Stores `msg` on shard `owner` (the owner of its queue), scheduled for
/// `due` when given.
pub async fn store_on(
    shard: &Rc<Shard>,
    owner: u16,
    msg: MessageInput,
    due: Option<i64>,
) -> Result<Stored, (i32, String)> {
    if owner == shard.id {
        return store_here(shard, msg, due).await;
    }
    match shard.ask(owner, Request::Store { msg, due }).await {
        Some(Reply::Stored(r)) => r,
        Some(_) => Err((response::SYSTEM_ERROR, unexpected("Store"))),
        None => Err((response::SYSTEM_ERROR, format!("shard {owner} did not answer"))),
    }
}

/// Stores a message the broker made on this shard (see [`store_on`]).
pub async fn store_here(shard: &Rc<Shard>, mut msg: MessageInput, due: Option<i64>) -> Result<Stored, (i32, String)> {
    let (topic, qid) = (msg.topic.clone(), msg.queue_id);
    msg.mark = None;
    if let Some(due) = due {
        msg = super::timer::due::scheduled(msg, due)
            .map_err(|e| (response::MESSAGE_ILLEGAL, e))?
            .0;
    }
    let r = shard.store.put(msg).await;
    match r.status {
        // Stored here; only its copies fell short.
        PutStatus::Ok | PutStatus::FlushDiskTimeout | PutStatus::FlushSlaveTimeout | PutStatus::SlaveNotAvailable => {}
        PutStatus::MessageIllegal(m) => return Err((response::MESSAGE_ILLEGAL, m)),
        PutStatus::ServiceNotAvailable(m) => {
            return Err((
                response::SERVICE_NOT_AVAILABLE,
                format!("service not available now: {m}"),
            ))
        }
        PutStatus::Busy => return Err((response::SYSTEM_BUSY, "broker busy, the tail cache is full".into())),
        PutStatus::FlushFailed(m) => return Err((response::SYSTEM_ERROR, format!("flush failed: {m}"))),
    }
    if due.is_some() {
        shard.timer.wake.notify_all();
    } else {
        shard.message_arrived(&topic, qid);
    }
    Ok(Stored {
        queue_offset: r.queue_offset,
        position: r.positions.first().copied().unwrap_or(PhysicalOffset(0)),
    })
}

/// For a direct send to `%RETRY%<group>`: the DLQ topic to store it in
/// instead when it was consumed more often than allowed (`reconsumeTimes >
/// max`, the request's `maxReconsumeTimes` or the group's `retryMaxTimes`),
/// or when the group consumes orderly (holds queue locks): an orderly
/// consumer sends to its retry topic only after its own local retries.
pub async fn redirect_to_dlq(
    shard: &Rc<Shard>,
    group: &str,
    reconsume_times: i32,
    max_from_request: Option<i32>,
) -> Option<String> {
    let info: GroupInfo = super::admin::group_info(shard, group).await;
    let max = max_from_request.unwrap_or(info.retry_max_times);
    (reconsume_times > max || info.holds_locks).then(|| format!("{DLQ_GROUP_TOPIC_PREFIX}{group}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_send_back_names_a_message_of_its_group() {
        assert!(check_belongs("T", "G", 1).is_ok());
        assert!(check_belongs("%RETRY%G", "G", 1).is_ok());
        assert!(check_belongs("%DLQ%H", "G", 1).is_ok(), "a DLQ consumed by G");
        let e = check_belongs("%RETRY%H", "G", 7).unwrap_err();
        assert_eq!(e.0, response::NO_PERMISSION);
        assert!(e.1.contains("%RETRY%H") && e.1.contains("offset 7"), "{}", e.1);
        assert!(check_belongs(SCHEDULE_TOPIC, "G", 1).is_err());
        assert!(check_belongs("rmq_sys_SHARDMQ_MARK", "G", 1).is_err());
    }
}
