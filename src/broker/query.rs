//! Finding messages.
//!
//! * VIEW_MESSAGE_BY_ID (33): the record at a physical offset, decoded from
//!   an offset message id (store host + position). The position carries
//!   the owning shard, so the id resolves on any port: the request runs on
//!   that shard wherever it arrives.
//! * QUERY_MESSAGE (12): records of a topic by key — a word of `KEYS`, or
//!   with `_UNIQUE_KEY_QUERY=true` the message id (`UNIQ_KEY`) — stored
//!   within a time range, from the key index ([`crate::store::key_index`]),
//!   newest first. On the main port every shard answers; on a shard port
//!   only that shard: a client with shard-aware routes sees one broker
//!   entry per shard and asks each of them (as a Java client asks every
//!   broker of the route), so each record is answered once — its queue id
//!   in the entry's numbering.

use std::rc::Rc;

use crate::acl::Need;
use crate::protocol::bodies::{GroupList, JsonBody};
use crate::protocol::codes::response;
use crate::protocol::properties::{keys, Properties};
use crate::protocol::RemotingCommand;
use crate::runtime::mesh::ClientRef;
use crate::runtime::mesh::View;
use crate::store::record::{check_record, patch_delivery, store_timestamp_of, RecordCheck};
use crate::store::{LogOffset, PhysicalOffset, SCHEDULE_TOPIC};

use super::mesh::{unexpected, Reply, Request};
use super::reply::error;
use super::shard::Shard;

/// Records a QUERY_MESSAGE answers at most (RocketMQ's `maxMsgsNumBatch`);
/// a query by message id at most `defaultQueryMaxNum`.
pub const QUERY_MAX_NUM: usize = 64;
pub const UNIQUE_QUERY_MAX_NUM: usize = 32;
/// Body bytes a QUERY_MESSAGE answers at most (at least one record).
pub const QUERY_MAX_BYTES: usize = 8 << 20;

/// QUERY_MESSAGE: every shard's records of `topic` found by `key`.
pub async fn query_message(shard: &Rc<Shard>, cmd: RemotingCommand, client: &ClientRef) -> Option<RemotingCommand> {
    let parsed = (|| -> Result<_, crate::protocol::HeaderError> {
        Ok((
            cmd.required_str("topic")?.to_owned(),
            cmd.required_str("key")?.to_owned(),
            cmd.required_i64("maxNum")?,
            cmd.ext_i64("beginTimestamp")?.unwrap_or(0),
            cmd.ext_i64("endTimestamp")?.unwrap_or(i64::MAX),
        ))
    })();
    let (topic, key, max_num, begin_ms, end_ms) = match parsed {
        Ok(v) => v,
        Err(e) => return error(&cmd, response::INVALID_PARAMETER, e.to_string()),
    };
    let unique = cmd.ext_str("_UNIQUE_KEY_QUERY") == Some("true");
    let cap = if unique { UNIQUE_QUERY_MAX_NUM } else { QUERY_MAX_NUM };
    let max = usize::try_from(max_num).unwrap_or(0).min(cap);
    if max == 0 || key.is_empty() {
        return error(
            &cmd,
            response::INVALID_PARAMETER,
            format!("maxNum must be positive (at most {cap}) and key non-empty"),
        );
    }
    let shards: Vec<u16> = match client.view {
        View::Main => (0..shard.shard_count()).collect(),
        View::Shard(k) => vec![k],
    };
    match find_by_key(shard, &shards, &topic, &key, begin_ms, end_ms, max).await {
        Ok((mut records, (last_pos, last_ms))) => {
            if let View::Shard(k) = client.view {
                let info = shard.topic(&topic);
                for r in &mut records {
                    let global = match check_record(r, None, false) {
                        RecordCheck::Record(v) => v.queue_id,
                        _ => continue,
                    };
                    if let Some(local) = info.as_ref().and_then(|i| i.global_to_local(k, global)) {
                        patch_delivery(r, Some(local), None);
                    }
                }
            }
            if records.is_empty() {
                return error(
                    &cmd,
                    response::QUERY_NOT_FOUND,
                    format!("can not find message of topic {topic} by key {key}, maybe time range not correct"),
                );
            }
            let mut body = Vec::new();
            for r in records {
                if !body.is_empty() && body.len() + r.len() > QUERY_MAX_BYTES {
                    break;
                }
                body.extend_from_slice(&r);
            }
            let mut reply = RemotingCommand::response_to(&cmd, response::SUCCESS, None).with_body(body);
            reply.ext_fields.insert_display("indexLastUpdateTimestamp", last_ms);
            reply.ext_fields.insert_display("indexLastUpdatePhyoffset", last_pos);
            Some(reply)
        }
        Err(e) => error(&cmd, response::SYSTEM_ERROR, format!("query by key failed: {e}")),
    }
}

/// Records of `topic` found by `key` on `shards`, newest (by store time)
/// first, at most `max`; and the newest indexed entry (physical offset,
/// store time ms) of those shards.
pub async fn find_by_key(
    shard: &Rc<Shard>,
    shards: &[u16],
    topic: &str,
    key: &str,
    begin_ms: i64,
    end_ms: i64,
    max: usize,
) -> Result<(Vec<Vec<u8>>, (i64, i64)), String> {
    let mut all: Vec<(i64, Vec<u8>)> = Vec::new();
    let mut last = (0i64, 0i64);
    for &k in shards {
        let hits = if k == shard.id {
            shard
                .store
                .query_key(topic, key, begin_ms, end_ms, max)
                .await
                .map_err(|e| e.to_string())?
        } else {
            let req = Request::QueryKey {
                topic: topic.to_owned(),
                key: key.to_owned(),
                begin_ms,
                end_ms,
                max,
            };
            match shard.ask(k, req).await {
                Some(Reply::Keys(r)) => r?,
                Some(_) => return Err(unexpected("QueryKey")),
                None => return Err(format!("shard {k} did not answer")),
            }
        };
        let (pos, ms) = hits.last_update;
        if ms >= last.1 {
            last = (PhysicalOffset::new(k, LogOffset(pos)).0 as i64, ms);
        }
        for r in hits.records {
            all.push((store_timestamp_of(&r).unwrap_or(0), r));
        }
    }
    all.sort_by_key(|(t, _)| std::cmp::Reverse(*t));
    all.truncate(max);
    Ok((all.into_iter().map(|(_, r)| r).collect(), last))
}

/// QUERY_TOPIC_CONSUME_BY_WHO (300): groups that committed offsets of the
/// topic on any shard, or whose consumers subscribe to it.
pub async fn consumed_by(shard: &Rc<Shard>, cmd: RemotingCommand) -> Option<RemotingCommand> {
    let topic = match cmd.required_str("topic") {
        Ok(t) => t.to_owned(),
        Err(e) => return error(&cmd, response::INVALID_PARAMETER, e.to_string()),
    };
    let mut groups: std::collections::BTreeSet<String> = topic_groups_here(shard, &topic).into_iter().collect();
    for k in (0..shard.shard_count()).filter(|k| *k != shard.id) {
        match shard.ask(k, Request::TopicGroups { topic: topic.clone() }).await {
            Some(Reply::Groups(g)) => groups.extend(g),
            Some(_) => return error(&cmd, response::SYSTEM_ERROR, unexpected("TopicGroups")),
            None => return error(&cmd, response::SYSTEM_ERROR, format!("shard {k} did not answer")),
        }
    }
    let body = GroupList {
        group_list: groups.into_iter().collect(),
    };
    Some(RemotingCommand::response_to(&cmd, response::SUCCESS, None).with_body(body.encode()))
}

/// This shard's part of [`consumed_by`].
pub fn topic_groups_here(shard: &Shard, topic: &str) -> Vec<String> {
    let mut groups: Vec<String> = shard
        .offsets
        .snapshot()
        .into_iter()
        .filter(|(_, t, _, _)| t == topic)
        .map(|(g, _, _, _)| g)
        .collect();
    if let Some(c) = &shard.controller {
        groups.extend(c.groups_subscribing(topic));
    }
    groups.sort();
    groups.dedup();
    groups
}

/// The shard that stores `offset` (VIEW_MESSAGE_BY_ID, CONSUMER_SEND_MSG_BACK),
/// if the value is a valid position.
pub fn owner_of(cmd: &RemotingCommand) -> Option<u16> {
    let raw = cmd.ext_i64("offset").ok().flatten()?;
    PhysicalOffset::decode(raw).map(|p| p.shard())
}

/// VIEW_MESSAGE_BY_ID: the record at an offset, to a client that may
/// subscribe to its topic.
pub async fn view_message(shard: &Rc<Shard>, cmd: RemotingCommand, client: &ClientRef) -> Option<RemotingCommand> {
    let raw = match cmd.required_i64("offset") {
        Ok(o) => o,
        Err(e) => return error(&cmd, response::INVALID_PARAMETER, e.to_string()),
    };
    match record_at(shard, raw).await {
        Ok(rec) => {
            if shard.access.enabled() {
                if let Err((code, remark)) = super::access::may(&shard.access, &cmd, client, &topic_of(&rec), Need::Sub)
                {
                    return error(&cmd, code, remark);
                }
            }
            Some(RemotingCommand::response_to(&cmd, response::SUCCESS, None).with_body(rec))
        }
        Err(Lookup::NotFound) => error(
            &cmd,
            response::SYSTEM_ERROR,
            format!("can not find message by the offset {raw}"),
        ),
        Err(Lookup::Failed(e)) => error(
            &cmd,
            response::SYSTEM_ERROR,
            format!("read of offset {raw} failed: {e}"),
        ),
    }
}

/// The topic a client sees the record `rec` in: its own, or for a message
/// parked in a system topic (delayed, half) the `REAL_TOPIC` it goes to.
pub fn topic_of(rec: &[u8]) -> String {
    let RecordCheck::Record(v) = check_record(rec, None, false) else {
        return String::new();
    };
    let props = Properties::parse_bytes(v.properties);
    match props.get(keys::REAL_TOPIC) {
        Some(real) if v.topic == SCHEDULE_TOPIC.as_bytes() || v.topic.starts_with(b"RMQ_SYS_") => real.to_owned(),
        _ => String::from_utf8_lossy(v.topic).into_owned(),
    }
}

/// Why [`record_at`] has no record.
pub enum Lookup {
    /// Not a position of this shard's log, or no whole record there.
    NotFound,
    /// The read failed (I/O).
    Failed(String),
}

/// The whole, valid record stored at a physical offset a client named (a
/// message id's, a send-back's, an END_TRANSACTION's), on this shard.
pub async fn record_at(shard: &Shard, raw: i64) -> Result<Vec<u8>, Lookup> {
    let pos = PhysicalOffset::decode(raw).ok_or(Lookup::NotFound)?;
    match shard.store.read_record(pos).await {
        Ok(Some(rec)) => Ok(rec),
        Ok(None) => Err(Lookup::NotFound),
        Err(e) => Err(Lookup::Failed(e.to_string())),
    }
}
