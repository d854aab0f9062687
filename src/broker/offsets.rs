//! Consumer offsets of the queues a shard owns, and the offset requests:
//! QUERY_CONSUMER_OFFSET (14), UPDATE_CONSUMER_OFFSET (15), GET_MAX_OFFSET
//! (30), GET_MIN_OFFSET (31), SEARCH_OFFSET_BY_TIMESTAMP (29),
//! GET_EARLIEST_MSG_STORETIME (32).
//!
//! Offsets live with the queue's owner shard, keyed by the global queue id
//! ([`ConsumerOffsets`]), and are persisted every few seconds and at
//! shutdown as a journal of changes on top of a RocketMQ-shaped
//! `consumerOffset.json` snapshot (see [`super::offset_journal`]).

use std::rc::Rc;

use crate::protocol::codes::{request, response};
use crate::protocol::RemotingCommand;
use crate::store::Boundary;

use super::reply::error;
use super::shard::Shard;

pub use super::consumer_offsets::ConsumerOffsets;

pub async fn handle(shard: &Rc<Shard>, cmd: RemotingCommand) -> Option<RemotingCommand> {
    let topic = match cmd.required_str("topic") {
        Ok(t) => t.to_string(),
        Err(e) => return error(&cmd, response::INVALID_PARAMETER, e.to_string()),
    };
    if let Err(e) = super::metadata::validate_topic(&topic) {
        return error(&cmd, response::INVALID_PARAMETER, e);
    }
    let qid = match cmd.required_i32("queueId") {
        Ok(q) if q >= 0 => q as u32,
        Ok(q) => return error(&cmd, response::INVALID_PARAMETER, format!("queueId {q} is negative")),
        Err(e) => return error(&cmd, response::INVALID_PARAMETER, e.to_string()),
    };
    let ok = |key: &str, value: i64| {
        let mut r = RemotingCommand::response_to(&cmd, response::SUCCESS, None);
        r.ext_fields.insert(key, value.to_string());
        Some(r)
    };
    let store = &shard.store;
    match cmd.code {
        request::QUERY_CONSUMER_OFFSET => {
            let group = match cmd.required_str("consumerGroup") {
                Ok(g) => g,
                Err(e) => return error(&cmd, response::INVALID_PARAMETER, e.to_string()),
            };
            if let Err(e) = super::metadata::validate_group(group) {
                return error(&cmd, response::INVALID_PARAMETER, e);
            }
            if let Some(o) = shard.offsets.get(group, &topic, qid) {
                return ok("offset", o as i64);
            }
            // RocketMQ: a new group on a queue that still holds its first
            // message starts from 0 rather than from the end.
            let zero_if_not_found = cmd.ext_bool("setZeroIfNotFound").ok().flatten().unwrap_or(true);
            if zero_if_not_found && store.min_offset(&topic, qid) == 0 {
                return ok("offset", 0);
            }
            error(
                &cmd,
                response::QUERY_NOT_FOUND,
                "Not found, V3_0_6_SNAPSHOT maybe this group consumer boot first",
            )
        }
        request::UPDATE_CONSUMER_OFFSET => {
            let (group, offset) = match (cmd.required_str("consumerGroup"), cmd.required_i64("commitOffset")) {
                (Ok(g), Ok(o)) if o >= 0 => (g.to_string(), o as u64),
                (Ok(_), Ok(o)) => return error(&cmd, response::INVALID_PARAMETER, format!("commitOffset {o} < 0")),
                (Err(e), _) | (_, Err(e)) => return error(&cmd, response::INVALID_PARAMETER, e.to_string()),
            };
            if let Err(e) = super::metadata::validate_group(&group) {
                return error(&cmd, response::INVALID_PARAMETER, e);
            }
            if shard.with_topic(&topic, |_| ()).is_none() {
                return error(&cmd, response::TOPIC_NOT_EXIST, format!("topic[{topic}] not exist"));
            }
            if !shard.offsets.commit(&group, &topic, qid, offset) {
                return error(
                    &cmd,
                    response::SYSTEM_ERROR,
                    format!(
                        "the consumer offset table of this shard is full ({} entries); offset not kept",
                        super::consumer_offsets::MAX_ENTRIES
                    ),
                );
            }
            Some(RemotingCommand::response_to(&cmd, response::SUCCESS, None))
        }
        request::GET_MAX_OFFSET => ok("offset", store.max_offset(&topic, qid) as i64),
        request::GET_MIN_OFFSET => ok("offset", store.min_offset(&topic, qid) as i64),
        request::SEARCH_OFFSET_BY_TIMESTAMP => {
            let ts = match cmd.required_i64("timestamp") {
                Ok(t) => t,
                Err(e) => return error(&cmd, response::INVALID_PARAMETER, e.to_string()),
            };
            let b = match cmd.ext_str("boundaryType") {
                Some(s) if s.eq_ignore_ascii_case("upper") => Boundary::Upper,
                _ => Boundary::Lower,
            };
            match store.search_offset_by_time(&topic, qid, ts, b).await {
                Ok(o) => ok("offset", o as i64),
                Err(e) => error(&cmd, response::SYSTEM_ERROR, e.to_string()),
            }
        }
        request::GET_EARLIEST_MSG_STORETIME => match store.earliest_store_time(&topic, qid).await {
            Ok(t) => ok("timestamp", t.unwrap_or(-1)),
            Err(e) => error(&cmd, response::SYSTEM_ERROR, e.to_string()),
        },
        _ => super::reply::not_supported(&cmd),
    }
}
