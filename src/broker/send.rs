//! SEND_MESSAGE (10), SEND_MESSAGE_V2 (310), SEND_BATCH_MESSAGE (320) and
//! batches flagged on 10/310 (codes.md §2.2).
//!
//! Runs on the shard that owns the target queue (the router forwards it
//! there); a send with no queue (`queueId < 0`) runs on the connection's
//! shard, which picks one of its own queues — no hop on the hot path. A
//! send to an unknown topic first auto-creates it ([`ensure_topic_of`],
//! called by the dispatcher) and is then routed like any other send.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;

use crate::protocol::codes::{request, response};
use crate::protocol::header::CommandHeader;
use crate::protocol::properties::keys;
use crate::protocol::{decode_batch, java_string_hash, OffsetMessageId, Properties, RemotingCommand};
use crate::protocol::{SendMessageRequestHeader, SendMessageResponseHeader};
use crate::runtime::router::ClientRef;
use crate::store::{MessageInput, PutStatus};

use super::metadata::{self, perm, TopicInfo};
use super::shard::{error, Shard};

thread_local! {
    static NEXT_QUEUE: Cell<usize> = const { Cell::new(0) };
}

pub async fn handle(shard: &Rc<Shard>, cmd: RemotingCommand, client: &ClientRef) -> Option<RemotingCommand> {
    let h = match SendMessageRequestHeader::from_ext(&cmd.ext_fields) {
        Ok(h) => h,
        Err(e) => return error(&cmd, response::INVALID_PARAMETER, e.to_string()),
    };
    if let Some(reply) = check_topic(&cmd, &h) {
        return reply;
    }
    let info = match ensure_topic(shard, &h, client).await {
        Ok(t) => t,
        Err(reply) => return reply.map(|(code, remark)| RemotingCommand::response_to(&cmd, code, Some(remark))),
    };
    if info.perm & perm::WRITE == 0 {
        return error(
            &cmd,
            response::NO_PERMISSION,
            format!("the topic[{}] sending message is forbidden", h.topic),
        );
    }
    let qid = if h.queue_id < 0 {
        pick_queue(&info, shard.id)
    } else if (h.queue_id as u32) < info.write_queue_nums {
        h.queue_id as u32
    } else {
        return error(
            &cmd,
            response::INVALID_PARAMETER,
            format!(
                "queueId[{}] is illegal, topic {} has {} write queues",
                h.queue_id, h.topic, info.write_queue_nums
            ),
        );
    };
    let owner = info.owner(qid).unwrap_or(shard.id);
    if owner != shard.id {
        let mut fwd = cmd;
        let key = if fwd.ext_fields.contains("e") { "e" } else { "queueId" };
        fwd.ext_fields.insert(key, qid.to_string());
        return shard.run_on(owner, fwd, client).await;
    }
    store_messages(shard, &cmd, &h, qid, client.addr).await
}

/// The topic of a send request, auto-created first when it does not exist
/// and may be created; `Err` holds the reply (an error) to send instead.
/// Used by the dispatcher before it translates the request's queue id, so
/// that the creating send is routed like every later one.
pub async fn ensure_topic_of(
    shard: &Rc<Shard>,
    cmd: &RemotingCommand,
    client: &ClientRef,
) -> Result<Arc<TopicInfo>, Option<RemotingCommand>> {
    let h = match SendMessageRequestHeader::from_ext(&cmd.ext_fields) {
        Ok(h) => h,
        Err(e) => return Err(error(cmd, response::INVALID_PARAMETER, e.to_string())),
    };
    if let Some(reply) = check_topic(cmd, &h) {
        return Err(reply);
    }
    ensure_topic(shard, &h, client)
        .await
        .map_err(|e| e.map(|(code, remark)| RemotingCommand::response_to(cmd, code, Some(remark))))
}

/// Topic name checks of a send: valid name, not a system topic clients
/// may not write.
fn check_topic(cmd: &RemotingCommand, h: &SendMessageRequestHeader) -> Option<Option<RemotingCommand>> {
    if let Err(e) = metadata::validate_topic(&h.topic) {
        return Some(error(cmd, response::INVALID_PARAMETER, e));
    }
    if metadata::is_not_allowed_send(&h.topic) {
        return Some(error(
            cmd,
            response::NO_PERMISSION,
            format!("Sending message to topic[{}] is forbidden.", h.topic),
        ));
    }
    None
}

/// Creates an unknown topic when allowed, on the controller, which
/// publishes the new snapshot before answering:
///
/// * a retry topic (`%RETRY%<group>`) with one queue;
/// * any other topic from the `TBW102` template when `autoCreateTopicEnable`
///   is on, with as many queues on each broker entry as the client derived
///   for it from the TBW102 route ([`metadata::auto_create_assignment`]:
///   `min(defaultTopicQueueNums of the request, TBW102's write queues on
///   the entry)`, per shard entry with shard-aware routes, in total on the
///   main entry). The controller sees the client's view (which entry the
///   send came through) with the forwarded request.
async fn ensure_topic(
    shard: &Rc<Shard>,
    h: &SendMessageRequestHeader,
    client: &ClientRef,
) -> Result<Arc<TopicInfo>, Option<(i32, String)>> {
    if let Some(t) = shard.meta().topic(&h.topic) {
        return Ok(t.clone());
    }
    let retry = h.topic.starts_with(metadata::RETRY_GROUP_TOPIC_PREFIX);
    if !retry && !shard.cfg.auto_create_topic_enable {
        return Err(Some((
            response::TOPIC_NOT_EXIST,
            format!(
                "topic[{}] not exist, apply first please! autoCreateTopicEnable is false",
                h.topic
            ),
        )));
    }
    let mut req = RemotingCommand::new_request(request::UPDATE_AND_CREATE_TOPIC);
    req.ext_fields.insert("topic", h.topic.as_str());
    if retry {
        req.ext_fields.insert("readQueueNums", "1");
        req.ext_fields.insert("writeQueueNums", "1");
        req.ext_fields.insert("perm", (perm::READ | perm::WRITE).to_string());
    } else {
        req.ext_fields.insert(
            super::controller::AUTO_CREATE_QUEUE_NUMS,
            h.default_topic_queue_nums.to_string(),
        );
    }
    req.ext_fields.insert("onlyIfAbsent", "true");
    let reply = shard.run_on(0, req, client).await;
    match reply {
        Some(r) if r.code == response::SUCCESS => {}
        Some(r) => return Err(Some((r.code, r.remark.unwrap_or_default()))),
        None => return Err(Some((response::SYSTEM_ERROR, "the controller did not answer".into()))),
    }
    match shard.meta().topic(&h.topic) {
        Some(t) => Ok(t.clone()),
        None => Err(Some((
            response::SYSTEM_ERROR,
            format!("topic {} was created but is not visible", h.topic),
        ))),
    }
}

/// A writable queue owned by this shard if there is one (no hop), round
/// robin; otherwise any writable queue.
fn pick_queue(info: &TopicInfo, me: u16) -> u32 {
    let mine: Vec<u32> = info.owned_by(me).filter(|q| *q < info.write_queue_nums).collect();
    let n = NEXT_QUEUE.with(|c| {
        let v = c.get();
        c.set(v.wrapping_add(1));
        v
    });
    if mine.is_empty() {
        (n % info.write_queue_nums.max(1) as usize) as u32
    } else {
        mine[n % mine.len()]
    }
}

async fn store_messages(
    shard: &Rc<Shard>,
    cmd: &RemotingCommand,
    h: &SendMessageRequestHeader,
    qid: u32,
    born: SocketAddr,
) -> Option<RemotingCommand> {
    let max = shard.cfg.max_message_size;
    let batch = h.is_batch() || cmd.code == request::SEND_BATCH_MESSAGE;
    let header_props = Properties::parse(h.properties.as_deref().unwrap_or(""));
    let wait = header_props.get(keys::WAIT) != Some("false");
    let mut msgs = Vec::new();
    let mut uniq_keys = Vec::new();
    if batch {
        if h.topic.starts_with(metadata::RETRY_GROUP_TOPIC_PREFIX) {
            return error(
                cmd,
                response::MESSAGE_ILLEGAL,
                "batch request does not support retry group",
            );
        }
        let entries = match decode_batch(&cmd.body) {
            Ok(e) if !e.is_empty() => e,
            Ok(_) => return error(cmd, response::MESSAGE_ILLEGAL, "the batch body holds no message"),
            Err(e) => return error(cmd, response::MESSAGE_ILLEGAL, format!("bad batch body: {e}")),
        };
        for e in entries {
            if e.body.len() > max {
                return error(
                    cmd,
                    response::MESSAGE_ILLEGAL,
                    format!("message body size exceeds the max {max}"),
                );
            }
            let props = Properties::parse_bytes(&e.properties);
            match build(shard, h, qid, born, e.flag, e.body, props) {
                Ok((m, u)) => {
                    msgs.push(m);
                    uniq_keys.push(u);
                }
                Err(why) => return error(cmd, response::MESSAGE_ILLEGAL, why),
            }
        }
    } else {
        if cmd.body.len() > max {
            return error(
                cmd,
                response::MESSAGE_ILLEGAL,
                format!("message body size exceeds the max {max}"),
            );
        }
        match build(shard, h, qid, born, h.flag, cmd.body.clone(), header_props) {
            Ok((m, u)) => {
                msgs.push(m);
                uniq_keys.push(u);
            }
            Err(why) => return error(cmd, response::MESSAGE_ILLEGAL, why),
        }
    }
    let r = shard.store.put_batch(&msgs, wait).await;
    let code = match &r.status {
        PutStatus::Ok => response::SUCCESS,
        PutStatus::FlushDiskTimeout => response::FLUSH_DISK_TIMEOUT,
        PutStatus::MessageIllegal(m) => return error(cmd, response::MESSAGE_ILLEGAL, m.clone()),
        PutStatus::ServiceNotAvailable(m) => {
            return error(
                cmd,
                response::SERVICE_NOT_AVAILABLE,
                format!("service not available now: {m}"),
            )
        }
        PutStatus::Busy => {
            return error(
                cmd,
                response::SYSTEM_BUSY,
                "[PC_SYNCHRONIZED]broker busy, start flow control for a while: unflushed data fills the tail cache",
            )
        }
        PutStatus::FlushFailed(m) => return error(cmd, response::SYSTEM_ERROR, format!("flush failed: {m}")),
    };
    shard.pulls.wake(&h.topic, qid);
    let port = shard.store.config().store_host.port();
    let ids: Vec<String> = r
        .positions
        .iter()
        .map(|p| {
            OffsetMessageId {
                ip: shard.cfg.broker_ip1,
                port,
                commit_log_offset: p.0 as i64,
            }
            .encode()
        })
        .collect();
    let mut rh = SendMessageResponseHeader::new(ids.join(","), qid as i32, r.queue_offset as i64);
    rh.transaction_id = Some(uniq_keys.join(","));
    Some(RemotingCommand::response_to(cmd, code, None).with_ext_fields(rh.to_ext()))
}

/// One message to store: broker-side properties added (UNIQ_KEY if the
/// client set none, CLUSTER), tag hash computed.
fn build(
    shard: &Shard,
    h: &SendMessageRequestHeader,
    qid: u32,
    born: SocketAddr,
    flag: i32,
    body: Bytes,
    mut props: Properties,
) -> Result<(MessageInput, String), String> {
    let uniq = match props.get(keys::UNIQ_KEY) {
        Some(u) => u.to_string(),
        None => {
            let id = shard.uniq.borrow_mut().next_id();
            props.insert(keys::UNIQ_KEY, id.clone()).map_err(|e| e.to_string())?;
            id
        }
    };
    props
        .insert(keys::CLUSTER, shard.cfg.broker_cluster_name.clone())
        .map_err(|e| e.to_string())?;
    let tags_code = props.get(keys::TAGS).map_or(0, |t| java_string_hash(t) as i64);
    let encoded = props.encode();
    if encoded.len() > i16::MAX as usize {
        return Err(format!("the message properties length {} exceeds 32767", encoded.len()));
    }
    Ok((
        MessageInput {
            topic: h.topic.clone(),
            queue_id: qid,
            flag,
            body,
            properties: Bytes::from(encoded),
            sys_flag: h.sys_flag,
            born_timestamp: h.born_timestamp,
            born_host: born,
            reconsume_times: h.reconsume_times.unwrap_or(0),
            prepared_transaction_offset: 0,
            tags_code,
        },
        uniq,
    ))
}
