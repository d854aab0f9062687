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

use std::collections::BTreeSet;
use std::rc::Rc;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::protocol::bodies::{
    ConsumeStats, JsonBody, KvTable, MessageQueue, OffsetWrapper, ResetOffsetBody, TopicOffset, TopicStatsTable,
};
use crate::protocol::codes::{request, response};
use crate::protocol::RemotingCommand;
use crate::runtime::mesh::{ClientRef, View};
use crate::store::Boundary;

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
        request::INVOKE_BROKER_TO_RESET_OFFSET => reset_offset(shard, cmd).await,
        request::GET_BROKER_RUNTIME_INFO => runtime_info(shard, cmd, client).await,
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

/// Moves `group`'s offsets of this shard's queues of `topic` (all, or
/// `only`) to the first message stored at or after `ts` (`-1`: the end);
/// without `force` an offset only moves back. Answers the new offsets.
pub async fn reset_here(
    shard: &Shard,
    group: &str,
    topic: &str,
    ts: i64,
    only: Option<u32>,
    force: bool,
) -> Result<Vec<(u32, u64)>, (i32, String)> {
    let Some(info) = shard.topic(topic) else {
        return Err(super::reply::topic_not_exist(topic));
    };
    let mut out: Vec<(u32, u64)> = Vec::new();
    let mut pop_resets = Vec::new();
    for qid in info.owned_by(shard.id) {
        if only.is_some_and(|q| q != qid) {
            continue;
        }
        let target = if ts < 0 {
            shard.store.max_offset(topic, qid)
        } else {
            match shard.store.search_offset_by_time(topic, qid, ts, Boundary::Lower).await {
                Ok(o) => o,
                Err(e) => return Err((response::SYSTEM_ERROR, format!("queue {qid}: {e}"))),
            }
        };
        let offset = match shard.offsets.get(group, topic, qid) {
            Some(c) if !force && target >= c => c,
            _ => target,
        };
        shard.offsets.commit(group, topic, qid, offset);
        // A group consuming by POP moves there too (its leases dropped).
        match shard.pops.reset(&shard.store, group, topic, qid, offset) {
            Some(Ok(a)) => pop_resets.push(a),
            Some(Err(e)) => {
                return Err((
                    response::SYSTEM_ERROR,
                    format!("queue {qid}: pop position not reset: {e:?}"),
                ))
            }
            None => {}
        }
        out.push((qid, offset));
    }
    if let Some(a) = pop_resets.last() {
        let s = shard.store.durable(a).await;
        if s != crate::store::PutStatus::Ok {
            return Err((response::SYSTEM_ERROR, format!("pop position reset not durable: {s:?}")));
        }
    }
    if let Err(e) = shard.offsets.persist().await {
        log::error!("shard {}: cannot persist consumer offsets: {e}", shard.id);
    }
    if !out.is_empty() {
        log::info!(
            "shard {}: offsets of group {group} on topic {topic} reset to time {ts}: {out:?}",
            shard.id
        );
    }
    Ok(out)
}

/// [`reset_here`] on every shard (here, and the others through the mesh):
/// every queue's new offset, sorted by queue.
pub async fn reset_all(
    shard: &Rc<Shard>,
    group: &str,
    topic: &str,
    ts: i64,
    only: Option<u32>,
    force: bool,
) -> Result<Vec<(u32, u64)>, (i32, String)> {
    let mut offsets: Vec<(u32, u64)> = Vec::new();
    for k in 0..shard.shard_count() {
        let part = if k == shard.id {
            reset_here(shard, group, topic, ts, only, force).await
        } else {
            let req = Request::ResetOffsets {
                group: group.to_string(),
                topic: topic.to_string(),
                timestamp: ts,
                queue: only,
                force,
            };
            match shard.ask(k, req).await {
                Some(Reply::Reset(r)) => r,
                Some(_) => Err((response::SYSTEM_ERROR, unexpected("ResetOffsets"))),
                None => Err((response::SYSTEM_ERROR, format!("shard {k} did not answer"))),
            }
        };
        offsets.extend(part?);
    }
    offsets.sort();
    Ok(offsets)
}

async fn reset_offset(shard: &Rc<Shard>, cmd: RemotingCommand) -> Option<RemotingCommand> {
    let (group, topic, ts) = match (
        cmd.required_str("group"),
        cmd.required_str("topic"),
        cmd.required_i64("timestamp"),
    ) {
        (Ok(g), Ok(t), Ok(ts)) => (g.to_string(), t.to_string(), ts),
        (Err(e), ..) | (_, Err(e), _) | (.., Err(e)) => return error(&cmd, response::INVALID_PARAMETER, e.to_string()),
    };
    if shard.meta().topic(&topic).is_none() {
        return topic_not_exist(&cmd, &topic);
    }
    let info = group_info(shard, &group).await;
    if !info.known {
        let rows = match fan_out(shard, std::slice::from_ref(&topic), Some(&group), false).await {
            Ok(r) => r,
            Err(e) => return error(&cmd, response::SYSTEM_ERROR, e),
        };
        if rows.iter().all(|r| r.consumer_offset.is_none()) {
            return group_not_exist(&cmd, &group);
        }
    }
    let only = cmd
        .ext_i32("queueId")
        .ok()
        .flatten()
        .and_then(|q| u32::try_from(q).ok());
    let force = cmd.ext_bool("isForce").ok().flatten().unwrap_or(true);
    let offsets = match reset_all(shard, &group, &topic, ts, only, force).await {
        Ok(o) => o,
        Err((code, remark)) => return error(&cmd, code, remark),
    };
    if info.online {
        match &shard.controller {
            Some(c) => c.push_reset(&**shard, &group, &topic, ts, &offsets).await,
            None => {
                let req = Request::PushReset {
                    group: group.clone(),
                    topic: topic.clone(),
                    timestamp: ts,
                    offsets: offsets.clone(),
                };
                let _ = shard.ask(0, req).await;
            }
        }
    }
    let broker = &shard.cfg.broker_name;
    let body = ResetOffsetBody {
        offset_table: offsets
            .into_iter()
            .map(|(q, o)| (MessageQueue::new(topic.as_str(), broker.as_str(), q as i32), o as i64))
            .collect(),
    };
    ok_body(&cmd, body.encode())
}

/// GET_BROKER_RUNTIME_INFO. On a shard port (the broker entry
/// `<brokerName>-s<k>` clients and `cluster list` see) the figures are that
/// shard's alone, so that the entries of one broker add up to its total; on
/// the main port they are the whole broker's.
async fn runtime_info(shard: &Rc<Shard>, cmd: RemotingCommand, client: &ClientRef) -> Option<RemotingCommand> {
    let mut stats = super::stats::collect(shard).await;
    let scope = match client.view {
        View::Shard(k) => {
            stats.shards.retain(|s| s.shard == k);
            let meta = shard.meta();
            stats
                .lag
                .retain(|l| meta.topic(&l.topic).and_then(|t| t.owner(l.queue_id)) == Some(k));
            k.to_string()
        }
        View::Main => "all".to_string(),
    };
    let sum_codes = |codes: &[i32]| -> u64 {
        stats
            .shards
            .iter()
            .flat_map(|s| codes.iter().filter_map(|c| s.counters.requests_by_code.get(c)))
            .sum()
    };
    let puts = sum_codes(&[
        request::SEND_MESSAGE,
        request::SEND_MESSAGE_V2,
        request::SEND_BATCH_MESSAGE,
    ]);
    let gets = sum_codes(&[request::PULL_MESSAGE, request::LITE_PULL_MESSAGE]);
    let boot = BOOT.get().copied().unwrap_or_else(SystemTime::now);
    let boot_ms = boot.duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    let up = SystemTime::now().duration_since(boot).map(|d| d.as_secs()).unwrap_or(0);
    let mut t = std::collections::BTreeMap::new();
    let mut put = |k: &str, v: String| {
        t.insert(k.to_string(), v);
    };
    put("brokerVersionDesc", "V5_3_3".into());
    put("brokerVersion", crate::protocol::version::CURRENT.to_string());
    put("brokerImplementation", format!("shardmq {}", env!("CARGO_PKG_VERSION")));
    put("brokerActive", "true".into());
    put("bootTimestamp", boot_ms.to_string());
    put(
        "runtime",
        format!(
            "[ {} days, {} hours, {} minutes, {} seconds ]",
            up / 86400,
            up / 3600 % 24,
            up / 60 % 60,
            up % 60
        ),
    );
    put("shardCount", shard.shard_count().to_string());
    put("shardScope", scope);
    // Since start-up, one per send request (a batch counts once).
    put("msgPutTotalTodayNow", puts.to_string());
    put("msgGetTotalTodayNow", gets.to_string());
    put(
        "commitLogMaxOffset",
        stats
            .shards
            .iter()
            .map(|s| s.gauges.log_write_offset)
            .sum::<u64>()
            .to_string(),
    );
    put(
        "queueCount",
        stats.shards.iter().map(|s| s.gauges.queues).sum::<u64>().to_string(),
    );
    put(
        "connectionsOpen",
        stats
            .shards
            .iter()
            .map(|s| s.counters.connections_open)
            .sum::<u64>()
            .to_string(),
    );
    put(
        "consumerLagTotal",
        stats.lag.iter().map(|l| l.lag()).sum::<u64>().to_string(),
    );
    let root = shard.cfg.store_path_root_dir.clone();
    if let Some(r) = crate::runtime::blocking::run(move || disk_ratio(&root)).await {
        put("commitLogDiskRatio", format!("{r:.4}"));
    }
    ok_body(&cmd, KvTable { table: t }.encode())
}

/// Used fraction of the file system holding `dir`, counted as df(1)
/// counts it ([`crate::store::retention::FsSpace`]). Blocking (statvfs):
/// shards call it through [`crate::runtime::blocking::run`].
fn disk_ratio(dir: &std::path::Path) -> Option<f64> {
    crate::store::retention::FsSpace::of(dir).ok().map(|s| s.used_ratio())
}
