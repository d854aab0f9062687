//! SEND_MESSAGE (10), SEND_MESSAGE_V2 (310), SEND_BATCH_MESSAGE (320) and
//! batches flagged on 10/310 (codes.md §2.2).
//!
//! Runs on the shard that owns the target queue ([`super::dispatch`] forwards it
//! there); a send with no queue (`queueId < 0`) runs on the connection's
//! shard, which picks one of its own queues — no hop on the hot path. A
//! send to an unknown topic first auto-creates it ([`ensure_topic_of`],
//! called by the dispatcher) and is then routed like any other send.
//!
//! # The hot path allocates little
//! The header is read in place ([`SendHeaderView`]); the stored property
//! string is the client's, with `UNIQ_KEY` (when absent) and `CLUSTER`
//! appended in one buffer ([`props::stored_properties`]); the reply's header is
//! written straight into its `extFields`. A single message is stored
//! without a `Vec` around it.
//!
//! Files: [`topic`] (the send's topic: checks and auto-creation),
//! [`props`] (the property string stored); this file holds the send
//! itself.

mod props;
mod topic;

pub use topic::ensure_topic_of;

use std::cell::Cell;
use std::net::SocketAddr;
use std::ops::Range;
use std::rc::Rc;

use bytes::Bytes;

use crate::protocol::codes::{request, response};
use crate::protocol::header::DEFAULT_REGION;
use crate::protocol::properties::{self, keys};
use crate::protocol::SendHeaderView;
use crate::protocol::{decode_batch, java_string_hash, ExtFields, OffsetMessageId, Properties, RemotingCommand};
use crate::runtime::mesh::ClientRef;
use crate::store::{MessageInput, PhysicalOffset, PutResult, PutStatus, SCHEDULE_TOPIC};

use super::metadata::{self, perm, TopicInfo};
use super::reply::error;
use super::shard::Shard;
use super::timer::due;

use props::{stored_properties, text_at, uniq_range};
use topic::{check_topic, ensure_topic};

thread_local! {
    static NEXT_QUEUE: Cell<usize> = const { Cell::new(0) };
}

pub async fn handle(shard: &Rc<Shard>, mut cmd: RemotingCommand, client: &ClientRef) -> Option<RemotingCommand> {
    let h = match SendHeaderView::from_ext(&cmd.ext_fields) {
        Ok(h) => h,
        Err(e) => return error(&cmd, response::INVALID_PARAMETER, e.to_string()),
    };
    if let Some(group) = h.topic.strip_prefix(metadata::RETRY_GROUP_TOPIC_PREFIX) {
        if !h.is_batch() && cmd.code != request::SEND_BATCH_MESSAGE {
            let (group, times, max, v2) = (
                group.to_owned(),
                h.reconsume_times.unwrap_or(0),
                h.max_reconsume_times,
                h.v2,
            );
            if let Some(dlq) = super::retry::redirect_to_dlq(shard, &group, times, max).await {
                to_dlq(&mut cmd, v2, &dlq);
                return Box::pin(handle(shard, cmd, client)).await;
            }
        }
    }
    if let Some(reply) = check_topic(&cmd, h.topic) {
        return reply;
    }
    let routed = match shard.with_topic(h.topic, |info| place(info, &h, shard.id)) {
        Some(r) => r,
        None => match ensure_topic(shard, h.topic, h.default_topic_queue_nums, client).await {
            Ok(info) => place(&info, &h, shard.id),
            Err(reply) => return reply.map(|(code, remark)| RemotingCommand::response_to(&cmd, code, Some(remark))),
        },
    };
    let (qid, owner) = match routed {
        Ok(v) => v,
        Err((code, remark)) => return error(&cmd, code, remark),
    };
    if owner == shard.id {
        return store_messages(shard, &cmd, &h, qid, client.addr).await;
    }
    let key = h.queue_key();
    cmd.ext_fields.insert_display(key, qid);
    super::dispatch::run_on(shard, owner, cmd, client).await
}

/// Rewrites a send to a retry topic into one to the group's DLQ (queue 0,
/// no delay), as the Java broker does for a message consumed too often.
fn to_dlq(cmd: &mut RemotingCommand, v2: bool, dlq: &str) {
    let (topic_key, queue_key, props_key) = if v2 {
        ("b", "e", "i")
    } else {
        ("topic", "queueId", "properties")
    };
    let mut p = Properties::parse(cmd.ext_str(props_key).unwrap_or(""));
    p.remove(keys::DELAY);
    let props = p.encode();
    cmd.ext_fields.insert(topic_key, dlq);
    cmd.ext_fields.insert(queue_key, "0");
    cmd.ext_fields.insert(props_key, &props);
}

/// The queue a send goes to and its owner shard, or the error to answer.
fn place(info: &TopicInfo, h: &SendHeaderView<'_>, me: u16) -> Result<(u32, u16), (i32, String)> {
    if info.perm & perm::WRITE == 0 {
        return Err((
            response::NO_PERMISSION,
            format!("the topic[{}] sending message is forbidden", h.topic),
        ));
    }
    let qid = if h.queue_id < 0 {
        pick_queue(info, me)
    } else if (h.queue_id as u32) < info.write_queue_nums {
        h.queue_id as u32
    } else {
        return Err((
            response::INVALID_PARAMETER,
            format!(
                "queueId[{}] is illegal, topic {} has {} write queues",
                h.queue_id, h.topic, info.write_queue_nums
            ),
        ));
    };
    Ok((qid, info.owner(qid).unwrap_or(me)))
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
    h: &SendHeaderView<'_>,
    qid: u32,
    born: SocketAddr,
) -> Option<RemotingCommand> {
    let max = shard.cfg.max_message_size;
    let batch = h.is_batch() || cmd.code == request::SEND_BATCH_MESSAGE;
    let header_props = h.properties.unwrap_or("");
    let wait = properties::find(header_props, keys::WAIT) != Some("false");
    let stored;
    let mut uniq = String::new();
    let mut single = None;
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
        let mut msgs = Vec::with_capacity(entries.len());
        for e in entries {
            let entry_props = String::from_utf8_lossy(&e.properties);
            if super::transaction::is_half(&entry_props, h.sys_flag, 0) {
                return error(
                    cmd,
                    response::MESSAGE_ILLEGAL,
                    "a batch cannot carry transactional messages",
                );
            }
            if due::might_be_delayed(&entry_props) {
                return error(
                    cmd,
                    response::MESSAGE_ILLEGAL,
                    "a batch cannot carry delayed or scheduled messages (DELAY, TIMER_*, __STARTDELIVERTIME): send them one by one",
                );
            }
            if e.body.len() > max {
                return error(
                    cmd,
                    response::MESSAGE_ILLEGAL,
                    format!("message body size exceeds the max {max}"),
                );
            }
            // Java reads the bytes as UTF-8, replacing invalid sequences.
            let props = String::from_utf8_lossy(&e.properties);
            match build(shard, h, qid, born, e.flag, e.body, &props) {
                Ok((m, u)) => {
                    if !uniq.is_empty() {
                        uniq.push(',');
                    }
                    uniq.push_str(text_at(&m.properties, u));
                    msgs.push(m);
                }
                Err(why) => return error(cmd, response::MESSAGE_ILLEGAL, why),
            }
        }
        stored = shard.store.put_batch(&msgs, wait).await;
    } else {
        if cmd.body.len() > max {
            return error(
                cmd,
                response::MESSAGE_ILLEGAL,
                format!("message body size exceeds the max {max}"),
            );
        }
        let (mut m, mut u) = match build(shard, h, qid, born, h.flag, cmd.body.clone(), header_props) {
            Ok(v) => v,
            Err(why) => return error(cmd, response::MESSAGE_ILLEGAL, why),
        };
        let half = super::transaction::is_half(header_props, h.sys_flag, h.reconsume_times.unwrap_or(0));
        let due = match due::delivery_time(&shard.cfg, header_props) {
            // A transaction's delay applies when it commits.
            Ok(_) if half => None,
            Ok(d) => d,
            Err(why) => return error(cmd, response::MESSAGE_ILLEGAL, why),
        };
        if half {
            match super::transaction::half(shard, m, h.producer_group) {
                Ok(hm) => {
                    m = hm;
                    u = uniq_range(&m.properties);
                }
                Err((code, why)) => return error(cmd, code, why),
            }
        } else if let Some(due) = due {
            match due::scheduled(m, due) {
                Ok((s, range)) => (m, u) = (s, range),
                Err(why) => return error(cmd, response::MESSAGE_ILLEGAL, why),
            }
        }
        stored = shard.store.put_batch(std::slice::from_ref(&m), wait).await;
        if stored.status == PutStatus::Ok {
            if half {
                shard.tx.wake.notify_all();
            } else if due.is_some() {
                shard.timer.wake.notify_all();
            }
        }
        single = Some((m, u));
    }
    let uniq = match &single {
        Some((m, u)) => text_at(&m.properties, u.clone()),
        None => uniq.as_str(),
    };
    let code = match &stored.status {
        PutStatus::Ok => response::SUCCESS,
        PutStatus::FlushDiskTimeout => response::FLUSH_DISK_TIMEOUT,
        PutStatus::FlushSlaveTimeout => response::FLUSH_SLAVE_TIMEOUT,
        PutStatus::SlaveNotAvailable => response::SLAVE_NOT_AVAILABLE,
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
    if shard.trace.enabled() {
        let client_addr = born.to_string();
        for (i, id) in uniq.split(',').enumerate() {
            shard.trace.stored(
                &shard.cfg.broker_name,
                h.producer_group,
                h.topic,
                id,
                qid,
                stored.queue_offset + i as u64,
                &client_addr,
            );
        }
    }
    if single
        .as_ref()
        .is_none_or(|(m, _)| m.topic != SCHEDULE_TOPIC && m.topic != super::transaction::HALF_TOPIC)
    {
        shard.message_arrived(h.topic, qid);
    }
    let reply = RemotingCommand::response_to(cmd, code, None);
    Some(reply.with_ext_fields(reply_header(shard, &stored, qid, uniq)))
}

/// `SendMessageResponseHeader`, written in place: msgId (offset message
/// ids, comma-joined for a batch), queueId, queueOffset, transactionId
/// (the UNIQ_KEYs), and the MSG_REGION / TRACE_ON extras Java clients read.
fn reply_header(shard: &Shard, stored: &PutResult, qid: u32, uniq: &str) -> ExtFields {
    let port = shard.store.config().store_host.port();
    let mut ext = ExtFields::with_capacity(6, 96 + 57 * stored.positions.len() + uniq.len());
    ext.insert_with("msgId", |t| {
        for (i, p) in stored.positions.iter().enumerate() {
            if i > 0 {
                t.push(',');
            }
            msg_id(shard, port, *p).encode_into(t);
        }
    });
    ext.insert_display("queueId", qid);
    ext.insert_display("queueOffset", stored.queue_offset);
    ext.insert("transactionId", uniq);
    ext.insert("MSG_REGION", DEFAULT_REGION);
    ext.insert("TRACE_ON", "true");
    ext
}

fn msg_id(shard: &Shard, port: u16, p: PhysicalOffset) -> OffsetMessageId {
    OffsetMessageId {
        ip: shard.cfg.broker_ip1,
        port,
        commit_log_offset: p.0 as i64,
    }
}

/// One message to store, and where its UNIQ_KEY sits in its properties.
fn build(
    shard: &Shard,
    h: &SendHeaderView<'_>,
    qid: u32,
    born: SocketAddr,
    flag: i32,
    body: Bytes,
    props: &str,
) -> Result<(MessageInput, Range<usize>), String> {
    let (encoded, uniq) = stored_properties(shard, props)?;
    if encoded.len() > i16::MAX as usize {
        return Err(format!("the message properties length {} exceeds 32767", encoded.len()));
    }
    let tags_code = properties::find(&encoded, keys::TAGS).map_or(0, |t| java_string_hash(t) as i64);
    Ok((
        MessageInput {
            topic: h.topic.to_owned(),
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
            mark: None,
        },
        uniq,
    ))
}
