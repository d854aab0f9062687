//! Admin requests (mqadmin, the dashboard, `shardmq admin`):
//!
//! | code | request | where |
//! |---|---|---|
//! | 202 | GET_TOPIC_STATS_INFO | fans out to every shard |
//! | 208 | GET_CONSUME_STATS | controller (group's topics), then every shard |
//! | 222 | INVOKE_BROKER_TO_RESET_OFFSET | every shard rewrites its queues' offsets; controller pushes RESET_CONSUMER_CLIENT_OFFSET |
//! | 28 | GET_BROKER_RUNTIME_INFO | every shard's stats |
//! | 200 / 201 | UPDATE_AND_CREATE_SUBSCRIPTIONGROUP / GET_ALL_SUBSCRIPTIONGROUP_CONFIG | controller |
//! | 203 | GET_CONSUMER_CONNECTION_LIST | controller |
//!
//! # Queue naming
//!
//! Admin bodies keyed by `MessageQueue` use the broker's **main view**:
//! `brokerName` is the configured `brokerName` (never a shard entry
//! `<brokerName>-s<k>`) and `queueId` is the global queue id — the id
//! message records, consumer offsets and the store use, and the id a client
//! sees on the main port. One broker thus answers like one Java broker
//! whatever its shard count.
//!
//! Queue-wide data (offsets, store times, committed offsets) lives on the
//! queue's owner shard; the shard that receives the request computes its
//! own part and asks every other shard for theirs with typed mesh requests
//! ([`Request::QueueRows`], [`Request::ResetOffsets`]), as [`super::stats`]
//! does, and merges. Group data lives on the controller.
//!
//! Files: [`reset`] (INVOKE_BROKER_TO_RESET_OFFSET and the reset on every
//! shard REST uses too), [`runtime`] (GET_BROKER_RUNTIME_INFO); this file
//! holds the dispatch, the statistics requests and what they share.

mod reset;
mod runtime;

pub use reset::{reset_all, reset_here};

use std::collections::BTreeSet;
use std::rc::Rc;
use std::sync::OnceLock;
use std::time::SystemTime;

use crate::protocol::bodies::{ConsumeStats, JsonBody, MessageQueue, OffsetWrapper, TopicOffset, TopicStatsTable};
use crate::protocol::codes::{request, response};
use crate::protocol::RemotingCommand;
use crate::runtime::mesh::ClientRef;

use super::mesh::{unexpected, GroupInfo, QueueRow, Reply, Request};
use super::reply::{error, not_supported};
use super::shard::Shard;

static BOOT: OnceLock<SystemTime> = OnceLock::new();

/// Records the start-up time reported by GET_BROKER_RUNTIME_INFO.
pub fn mark_boot() {
    let _ = BOOT.set(SystemTime::now());
}

/// Requests the controller (shard 0) runs.
pub fn is_controller_code(code: i32) -> bool {
    matches!(
        code,
        request::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP
            | request::GET_ALL_SUBSCRIPTIONGROUP_CONFIG
            | request::GET_CONSUMER_CONNECTION_LIST
    )
}

/// Requests run on the shard they arrive on (they fan out themselves).
pub fn is_local_code(code: i32) -> bool {
    matches!(
        code,
        request::GET_TOPIC_STATS_INFO
            | request::GET_CONSUME_STATS
            | request::GET_BROKER_RUNTIME_INFO
            | request::INVOKE_BROKER_TO_RESET_OFFSET
    )
}

pub async fn handle(shard: &Rc<Shard>, cmd: RemotingCommand, client: &ClientRef) -> Option<RemotingCommand> {
    match cmd.code {
        request::GET_TOPIC_STATS_INFO => topic_stats(shard, cmd).await,
        request::GET_CONSUME_STATS => consume_stats(shard, cmd).await,
        request::INVOKE_BROKER_TO_RESET_OFFSET => reset::reset_offset(shard, cmd).await,
        request::GET_BROKER_RUNTIME_INFO => runtime::runtime_info(shard, cmd, client).await,
        _ => not_supported(&cmd),
    }
}

fn ok_body(cmd: &RemotingCommand, body: Vec<u8>) -> Option<RemotingCommand> {
    Some(RemotingCommand::response_to(cmd, response::SUCCESS, None).with_body(body))
}

fn topic_not_exist(cmd: &RemotingCommand, topic: &str) -> Option<RemotingCommand> {
    let (code, remark) = super::reply::topic_not_exist(topic);
    error(cmd, code, remark)
}

/// This shard's rows for its queues of `topics` and, with `group_topics`,
/// of every topic `group` committed offsets for here.
pub async fn queue_rows(shard: &Shard, topics: Vec<String>, group: Option<&str>, group_topics: bool) -> Vec<QueueRow> {
    let mut topics: BTreeSet<String> = topics.into_iter().collect();
    if let (Some(g), true) = (group, group_topics) {
        topics.extend(
            shard
                .offsets
                .snapshot()
                .into_iter()
                .filter(|(og, ..)| og == g)
                .map(|(_, t, ..)| t),
        );
    }
    let meta = shard.meta();
    let store = &shard.store;
    let mut rows = Vec::new();
    for topic in topics {
        let Some(info) = meta.topic(&topic) else { continue };
        for qid in info.owned_by(shard.id) {
            let (min, max) = store.offsets(&topic, qid).unwrap_or((0, 0));
            let time_at = |o: u64| store.store_time_at(&topic, qid, o);
            let last_update = if max > min {
                time_at(max - 1).await.ok().flatten().unwrap_or(0)
            } else {
                0
            };
            let consumer_offset = group.and_then(|g| shard.offsets.get(g, &topic, qid));
            let last_timestamp = match consumer_offset {
                Some(c) if c > min && c <= max => time_at(c - 1).await.ok().flatten().unwrap_or(0),
                _ => 0,
            };
            let next_timestamp = match consumer_offset {
                Some(c) if c >= min && c < max => time_at(c).await.ok().flatten().unwrap_or(0),
                _ => 0,
            };
            rows.push(QueueRow {
                topic: topic.clone(),
                queue_id: qid,
                min,
                max,
                last_update,
                consumer_offset,
                last_timestamp,
                next_timestamp,
            });
        }
    }
    rows
}

/// Asks every shard for its rows of `topics` (and, with `group_topics`,
/// of every topic the group committed offsets for).
pub(super) async fn fan_out(
    shard: &Rc<Shard>,
    topics: &[String],
    group: Option<&str>,
    group_topics: bool,
) -> Result<Vec<QueueRow>, String> {
    let mut rows = Vec::new();
    for k in 0..shard.shard_count() {
        if k == shard.id {
            rows.extend(queue_rows(shard, topics.to_vec(), group, group_topics).await);
            continue;
        }
        let req = Request::QueueRows {
            topics: topics.to_vec(),
            group: group.map(String::from),
            group_topics,
        };
        match shard.ask(k, req).await {
            Some(Reply::QueueRows(part)) => rows.extend(part),
            Some(_) => return Err(unexpected("QueueRows")),
            None => return Err(format!("shard {k} did not answer")),
        }
    }
    rows.sort_by(|a, b| (&a.topic, a.queue_id).cmp(&(&b.topic, b.queue_id)));
    Ok(rows)
}

async fn topic_stats(shard: &Rc<Shard>, cmd: RemotingCommand) -> Option<RemotingCommand> {
    let topic = match cmd.required_str("topic") {
        Ok(t) => t.to_string(),
        Err(e) => return error(&cmd, response::INVALID_PARAMETER, e.to_string()),
    };
    if shard.meta().topic(&topic).is_none() {
        return topic_not_exist(&cmd, &topic);
    }
    let rows = match fan_out(shard, std::slice::from_ref(&topic), None, false).await {
        Ok(r) => r,
        Err(e) => return error(&cmd, response::SYSTEM_ERROR, e),
    };
    let broker = &shard.cfg.broker_name;
    let table = TopicStatsTable {
        offset_table: rows
            .into_iter()
            .map(|r| {
                (
                    MessageQueue::new(r.topic, broker.as_str(), r.queue_id as i32),
                    TopicOffset {
                        last_update_timestamp: r.last_update,
                        max_offset: r.max as i64,
                        min_offset: r.min as i64,
                    },
                )
            })
            .collect(),
        topic_put_tps: 0.0,
    };
    ok_body(&cmd, table.encode())
}

pub async fn group_info(shard: &Rc<Shard>, group: &str) -> GroupInfo {
    if let Some(c) = &shard.controller {
        return c.group_info(group);
    }
    match shard
        .ask(
            0,
            Request::GroupInfo {
                group: group.to_string(),
            },
        )
        .await
    {
        Some(Reply::GroupInfo(info)) => info,
        _ => GroupInfo::default(),
    }
}

fn group_not_exist(cmd: &RemotingCommand, group: &str) -> Option<RemotingCommand> {
    error(
        cmd,
        response::SUBSCRIPTION_GROUP_NOT_EXIST,
        format!("the consumer group[{group}] not exist on this broker: no subscription group config, no online consumer and no committed offset"),
    )
}

async fn consume_stats(shard: &Rc<Shard>, cmd: RemotingCommand) -> Option<RemotingCommand> {
    let group = match cmd.required_str("consumerGroup") {
        Ok(g) => g.to_string(),
        Err(e) => return error(&cmd, response::INVALID_PARAMETER, e.to_string()),
    };
    let mut explicit: Vec<String> = cmd
        .ext_str("topic")
        .into_iter()
        .chain(cmd.ext_str("topicList").unwrap_or("").split(';'))
        .filter(|t| !t.is_empty())
        .map(String::from)
        .collect();
    explicit.dedup();
    let meta = shard.meta();
    if let Some(t) = explicit.iter().find(|t| meta.topic(t).is_none()) {
        return topic_not_exist(&cmd, t);
    }
    let info = group_info(shard, &group).await;
    let (topics, group_topics) = if explicit.is_empty() {
        (info.topics.clone(), true)
    } else {
        (explicit, false)
    };
    let mut rows = match fan_out(shard, &topics, Some(&group), group_topics).await {
        Ok(r) => r,
        Err(e) => return error(&cmd, response::SYSTEM_ERROR, e),
    };
    if group_topics {
        // Each shard adds the topics *it* holds offsets of; a shard where the
        // group has committed nothing yet did not list its queues of those
        // topics. Ask again for every topic found, so that each topic counts
        // all its queues (an untouched queue's backlog is all of it).
        let found: BTreeSet<String> = rows.iter().map(|r| r.topic.clone()).chain(topics).collect();
        rows = match fan_out(shard, &found.into_iter().collect::<Vec<_>>(), Some(&group), false).await {
            Ok(r) => r,
            Err(e) => return error(&cmd, response::SYSTEM_ERROR, e),
        };
    }
    if !info.known && rows.iter().all(|r| r.consumer_offset.is_none()) {
        return group_not_exist(&cmd, &group);
    }
    let broker = &shard.cfg.broker_name;
    let stats = ConsumeStats {
        consume_tps: 0.0,
        offset_table: rows
            .into_iter()
            .map(|r| {
                let c = r.consumer_offset.unwrap_or(0) as i64;
                (
                    MessageQueue::new(r.topic, broker.as_str(), r.queue_id as i32),
                    OffsetWrapper {
                        broker_offset: r.max as i64,
                        consumer_offset: c,
                        last_timestamp: r.last_timestamp,
                        pull_offset: c,
                    },
                )
            })
            .collect(),
    };
    ok_body(&cmd, stats.encode())
}
