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
//! queue's owner shard; the shard that receives the request asks every
//! shard with the internal codes below ([`Shard::run_on`], as
//! [`super::stats`] does) and merges. Group data lives on the controller.

use std::collections::BTreeSet;
use std::rc::Rc;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::protocol::bodies::{
    ConsumeStats, ConsumerConnection, JsonBody, KvTable, MessageQueue, OffsetWrapper, ResetOffsetBody,
    SubscriptionData, TopicOffset, TopicStatsTable,
};
use crate::protocol::codes::{request, response};
use crate::protocol::RemotingCommand;
use crate::runtime::router::{ClientRef, View};
use crate::store::Boundary;

use super::controller::Controller;
use super::metadata;
use super::shard::{error, not_supported, Shard};

/// Internal: one shard's rows for some topics ([`QueueRow`] list).
pub const SHARD_QUEUE_STATS: i32 = 19004;
/// Internal: one shard rewrites a group's offsets of a topic by time.
pub const SHARD_RESET_OFFSET: i32 = 19005;
/// Internal, controller: what it knows of a group ([`GroupInfo`]).
pub const GROUP_INFO: i32 = 19006;
/// Internal, controller: push RESET_CONSUMER_CLIENT_OFFSET to a group.
pub const PUSH_RESET: i32 = 19007;

const SUB_GROUP_FILE: &str = "subscriptionGroup.json";

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
            | GROUP_INFO
            | PUSH_RESET
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
            | SHARD_QUEUE_STATS
            | SHARD_RESET_OFFSET
    )
}

/// One queue as its owner shard sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct QueueRow {
    topic: String,
    queue_id: u32,
    min: u64,
    max: u64,
    /// Store time of the newest message (0 if empty).
    last_update: i64,
    /// The group's committed offset, if any.
    consumer_offset: Option<u64>,
    /// Store time of the message at `consumer_offset - 1` (0 if unknown).
    last_timestamp: i64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct GroupInfo {
    known: bool,
    online: bool,
    topics: Vec<String>,
}

pub async fn handle(shard: &Rc<Shard>, cmd: RemotingCommand, client: &ClientRef) -> Option<RemotingCommand> {
    match cmd.code {
        SHARD_QUEUE_STATS => shard_queue_stats(shard, cmd).await,
        SHARD_RESET_OFFSET => shard_reset_offset(shard, cmd).await,
        request::GET_TOPIC_STATS_INFO => topic_stats(shard, cmd, client).await,
        request::GET_CONSUME_STATS => consume_stats(shard, cmd, client).await,
        request::INVOKE_BROKER_TO_RESET_OFFSET => reset_offset(shard, cmd, client).await,
        request::GET_BROKER_RUNTIME_INFO => runtime_info(shard, cmd, client).await,
        _ => not_supported(&cmd),
    }
}

fn ok_body(cmd: &RemotingCommand, body: Vec<u8>) -> Option<RemotingCommand> {
    Some(RemotingCommand::response_to(cmd, response::SUCCESS, None).with_body(body))
}

fn topic_not_exist(cmd: &RemotingCommand, topic: &str) -> Option<RemotingCommand> {
    error(
        cmd,
        response::TOPIC_NOT_EXIST,
        format!("topic[{topic}] not exist, apply first please!"),
    )
}

async fn shard_queue_stats(shard: &Rc<Shard>, cmd: RemotingCommand) -> Option<RemotingCommand> {
    let group = cmd.ext_str("consumerGroup").filter(|g| !g.is_empty()).map(String::from);
    let mut topics: BTreeSet<String> = cmd
        .ext_str("topics")
        .unwrap_or("")
        .split(';')
        .filter(|t| !t.is_empty())
        .map(String::from)
        .collect();
    if let (Some(g), Some("true")) = (&group, cmd.ext_str("groupTopics")) {
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
            let consumer_offset = group.as_deref().and_then(|g| shard.offsets.get(g, &topic, qid));
            let last_timestamp = match consumer_offset {
                Some(c) if c > min && c <= max => time_at(c - 1).await.ok().flatten().unwrap_or(0),
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
            });
        }
    }
    ok_body(&cmd, serde_json::to_vec(&rows).unwrap_or_default())
}

/// Asks every shard for its rows of `topics` (and, with `group_topics`,
/// of every topic the group committed offsets for).
async fn fan_out(
    shard: &Rc<Shard>,
    client: &ClientRef,
    topics: &[String],
    group: Option<&str>,
    group_topics: bool,
) -> Result<Vec<QueueRow>, String> {
    let mut rows = Vec::new();
    for k in 0..shard.shard_count() {
        let mut req = RemotingCommand::new_request(SHARD_QUEUE_STATS);
        req.ext_fields.insert("topics", topics.join(";"));
        if let Some(g) = group {
            req.ext_fields.insert("consumerGroup", g);
        }
        if group_topics {
            req.ext_fields.insert("groupTopics", "true");
        }
        let r = shard
            .run_on(k, req, client)
            .await
            .ok_or_else(|| format!("shard {k} did not answer"))?;
        let part: Vec<QueueRow> =
            serde_json::from_slice(&r.body).map_err(|e| format!("shard {k} answered an invalid body: {e}"))?;
        rows.extend(part);
    }
    rows.sort_by(|a, b| (&a.topic, a.queue_id).cmp(&(&b.topic, b.queue_id)));
    Ok(rows)
}

async fn topic_stats(shard: &Rc<Shard>, cmd: RemotingCommand, client: &ClientRef) -> Option<RemotingCommand> {
    let topic = match cmd.required_str("topic") {
        Ok(t) => t.to_string(),
        Err(e) => return error(&cmd, response::INVALID_PARAMETER, e.to_string()),
    };
    if shard.meta().topic(&topic).is_none() {
        return topic_not_exist(&cmd, &topic);
    }
    let rows = match fan_out(shard, client, std::slice::from_ref(&topic), None, false).await {
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

async fn group_info(shard: &Rc<Shard>, client: &ClientRef, group: &str) -> GroupInfo {
    let mut req = RemotingCommand::new_request(GROUP_INFO);
    req.ext_fields.insert("consumerGroup", group);
    match shard.run_on(0, req, client).await {
        Some(r) => serde_json::from_slice(&r.body).unwrap_or_default(),
        None => GroupInfo::default(),
    }
}

fn group_not_exist(cmd: &RemotingCommand, group: &str) -> Option<RemotingCommand> {
    error(
        cmd,
        response::SUBSCRIPTION_GROUP_NOT_EXIST,
        format!("the consumer group[{group}] not exist on this broker: no subscription group config, no online consumer and no committed offset"),
    )
}

async fn consume_stats(shard: &Rc<Shard>, cmd: RemotingCommand, client: &ClientRef) -> Option<RemotingCommand> {
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
    let info = group_info(shard, client, &group).await;
    let (topics, group_topics) = if explicit.is_empty() {
        (info.topics.clone(), true)
    } else {
        (explicit, false)
    };
    let rows = match fan_out(shard, client, &topics, Some(&group), group_topics).await {
        Ok(r) => r,
        Err(e) => return error(&cmd, response::SYSTEM_ERROR, e),
    };
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

async fn shard_reset_offset(shard: &Rc<Shard>, cmd: RemotingCommand) -> Option<RemotingCommand> {
    let (Some(group), Some(topic)) = (cmd.ext_str("group"), cmd.ext_str("topic")) else {
        return error(&cmd, response::INVALID_PARAMETER, "group and topic are required");
    };
    let ts = cmd.ext_i64("timestamp").ok().flatten().unwrap_or(-1);
    let only = cmd.ext_i32("queueId").ok().flatten().unwrap_or(-1);
    let force = cmd.ext_bool("isForce").ok().flatten().unwrap_or(true);
    let Some(info) = shard.meta().topic(topic).cloned() else {
        return topic_not_exist(&cmd, topic);
    };
    let mut out: Vec<(u32, u64)> = Vec::new();
    for qid in info.owned_by(shard.id) {
        if only >= 0 && qid != only as u32 {
            continue;
        }
        let target = if ts < 0 {
            shard.store.max_offset(topic, qid)
        } else {
            match shard.store.search_offset_by_time(topic, qid, ts, Boundary::Lower).await {
                Ok(o) => o,
                Err(e) => return error(&cmd, response::SYSTEM_ERROR, format!("queue {qid}: {e}")),
            }
        };
        let offset = match shard.offsets.get(group, topic, qid) {
            Some(c) if !force && target >= c => c,
            _ => target,
        };
        shard.offsets.commit(group, topic, qid, offset);
        out.push((qid, offset));
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
    ok_body(&cmd, serde_json::to_vec(&out).unwrap_or_default())
}

async fn reset_offset(shard: &Rc<Shard>, cmd: RemotingCommand, client: &ClientRef) -> Option<RemotingCommand> {
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
    let info = group_info(shard, client, &group).await;
    if !info.known {
        let rows = match fan_out(shard, client, std::slice::from_ref(&topic), Some(&group), false).await {
            Ok(r) => r,
            Err(e) => return error(&cmd, response::SYSTEM_ERROR, e),
        };
        if rows.iter().all(|r| r.consumer_offset.is_none()) {
            return group_not_exist(&cmd, &group);
        }
    }
    let mut offsets: Vec<(u32, u64)> = Vec::new();
    for k in 0..shard.shard_count() {
        let mut req = RemotingCommand::new_request(SHARD_RESET_OFFSET);
        req.ext_fields = cmd.ext_fields.clone();
        let Some(r) = shard.run_on(k, req, client).await else {
            return error(&cmd, response::SYSTEM_ERROR, format!("shard {k} did not answer"));
        };
        if r.code != response::SUCCESS {
            return Some(RemotingCommand::response_to(&cmd, r.code, r.remark));
        }
        match serde_json::from_slice::<Vec<(u32, u64)>>(&r.body) {
            Ok(part) => offsets.extend(part),
            Err(e) => return error(&cmd, response::SYSTEM_ERROR, format!("shard {k}: {e}")),
        }
    }
    offsets.sort();
    if info.online {
        let mut push = RemotingCommand::new_request(PUSH_RESET);
        push.ext_fields.insert("group", group.as_str());
        push.ext_fields.insert("topic", topic.as_str());
        push.ext_fields.insert("timestamp", ts.to_string());
        push = push.with_body(serde_json::to_vec(&offsets).unwrap_or_default());
        let _ = shard.run_on(0, push, client).await;
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
    let mut stats = super::stats::collect(shard, client).await;
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
    put("shardCount", shard.router.shard_count().to_string());
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

/// Used fraction of the file system holding `dir`. Blocking (statvfs):
/// shards call it through [`crate::runtime::blocking::run`].
fn disk_ratio(dir: &std::path::Path) -> Option<f64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs on a NUL-terminated path into a zeroed struct we own.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 || s.f_blocks == 0 {
        return None;
    }
    Some(1.0 - s.f_bavail as f64 / s.f_blocks as f64)
}

/// SubscriptionGroupConfig defaults (json.md §9).
fn default_group_config(name: &str) -> Value {
    json!({
        "attributes": {}, "brokerId": 0, "consumeBroadcastEnable": true, "consumeEnable": true,
        "consumeFromMinEnable": true, "consumeMessageOrderly": false, "consumeTimeoutMinute": 15,
        "groupName": name, "groupRetryPolicy": {"type": "CUSTOMIZED"}, "groupSysFlag": 0,
        "notifyConsumerIdsChangedEnable": true, "retryMaxTimes": 16, "retryQueueNums": 1,
        "whichBrokerWhenConsumeSlowly": 1
    })
}

/// A Java enum from its name (`None` for an empty or unknown name).
fn enum_of<T: serde::de::DeserializeOwned>(name: &str) -> Option<T> {
    serde_json::from_value(Value::String(name.to_string())).ok()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Controller {
    /// Loads `config/subscriptionGroup.json` (absent = no groups).
    pub fn load_subscription_groups(&self) -> Result<(), String> {
        let path = self.root.join("config").join(SUB_GROUP_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let v = crate::protocol::bodies::fastjson_reader::parse_lenient(&bytes)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let mut groups = self.sub_groups.borrow_mut();
        if let Some(t) = v.get("subscriptionGroupTable").and_then(Value::as_object) {
            for (name, cfg) in t {
                if cfg.is_object() {
                    groups.insert(name.clone(), cfg.clone());
                }
            }
        }
        let counter = v.pointer("/dataVersion/counter").and_then(Value::as_u64).unwrap_or(0);
        self.sub_groups_version.set(counter);
        Ok(())
    }

    /// Writes `config/subscriptionGroup.json` as the groups are now, on
    /// the blocking thread (encoded here: no borrow across the write).
    async fn store_subscription_groups(&self) -> Result<(), String> {
        self.sub_groups_version.set(self.sub_groups_version.get() + 1);
        let bytes = {
            let body = json!({
                "dataVersion": {"counter": self.sub_groups_version.get(), "stateVersion": 0, "timestamp": now_ms()},
                "forbiddenTable": {},
                "subscriptionGroupTable": &*self.sub_groups.borrow(),
            });
            serde_json::to_vec_pretty(&body).map_err(|e| e.to_string())?
        };
        metadata::save(self.root.join("config"), SUB_GROUP_FILE, bytes).await
    }

    /// Heartbeats of unknown groups create their config (Java's
    /// `autoCreateSubscriptionGroup`).
    pub(super) async fn auto_create_groups(&self, names: &[String]) {
        let mut added = false;
        {
            let mut groups = self.sub_groups.borrow_mut();
            for n in names {
                if !groups.contains_key(n) && groups.len() < 100_000 {
                    groups.insert(n.clone(), default_group_config(n));
                    added = true;
                }
            }
        }
        if added {
            if let Err(e) = self.store_subscription_groups().await {
                log::error!("cannot persist subscription groups: {e}");
            }
        }
    }

    pub(super) async fn handle_admin(
        &self,
        shard: &Rc<Shard>,
        cmd: RemotingCommand,
        client: &ClientRef,
    ) -> Option<RemotingCommand> {
        let _ = client;
        match cmd.code {
            request::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP => self.update_group(cmd).await,
            request::GET_ALL_SUBSCRIPTIONGROUP_CONFIG => {
                let body = json!({
                    "dataVersion": {"counter": self.sub_groups_version.get(), "stateVersion": 0, "timestamp": now_ms()},
                    "forbiddenTable": {},
                    "subscriptionGroupTable": &*self.sub_groups.borrow(),
                });
                ok_body(&cmd, body.to_string().into_bytes())
            }
            request::GET_CONSUMER_CONNECTION_LIST => self.consumer_connections(cmd),
            GROUP_INFO => {
                let group = cmd.ext_str("consumerGroup").unwrap_or("");
                let groups = self.groups.borrow();
                let live = groups.get(group);
                let mut topics: BTreeSet<String> = live
                    .map(|g| g.subs.values().flat_map(|s| s.keys().cloned()).collect())
                    .unwrap_or_default();
                topics.extend(
                    self.subscriptions
                        .borrow()
                        .keys()
                        .filter(|(g, _)| g == group)
                        .map(|(_, t)| t.clone()),
                );
                let online = live.is_some_and(|g| !g.channels.is_empty());
                let info = GroupInfo {
                    known: online || self.sub_groups.borrow().contains_key(group),
                    online,
                    topics: topics.into_iter().collect(),
                };
                ok_body(&cmd, serde_json::to_vec(&info).unwrap_or_default())
            }
            PUSH_RESET => {
                self.push_reset(shard, &cmd).await;
                Some(RemotingCommand::response_to(&cmd, response::SUCCESS, None))
            }
            _ => not_supported(&cmd),
        }
    }

    async fn update_group(&self, cmd: RemotingCommand) -> Option<RemotingCommand> {
        let body = match crate::protocol::bodies::fastjson_reader::parse_lenient(&cmd.body) {
            Ok(Value::Object(m)) => m,
            Ok(_) => {
                return error(
                    &cmd,
                    response::INVALID_PARAMETER,
                    "SubscriptionGroupConfig must be an object",
                )
            }
            Err(e) => {
                return error(
                    &cmd,
                    response::INVALID_PARAMETER,
                    format!("invalid SubscriptionGroupConfig: {e}"),
                )
            }
        };
        let Some(name) = body.get("groupName").and_then(Value::as_str).map(String::from) else {
            return error(
                &cmd,
                response::INVALID_PARAMETER,
                "SubscriptionGroupConfig without groupName",
            );
        };
        if let Err(e) = metadata::validate_group(&name) {
            return error(&cmd, response::INVALID_PARAMETER, e);
        }
        let mut cfg = default_group_config(&name);
        if let Some(obj) = cfg.as_object_mut() {
            obj.extend(body);
        }
        let previous = self.sub_groups.borrow_mut().insert(name.clone(), cfg.clone());
        if let Err(e) = self.store_subscription_groups().await {
            // Undo ours unless another update replaced it during the write.
            let mut groups = self.sub_groups.borrow_mut();
            if groups.get(&name) == Some(&cfg) {
                match previous {
                    Some(p) => groups.insert(name, p),
                    None => groups.remove(&name),
                };
            }
            return error(
                &cmd,
                response::SYSTEM_ERROR,
                format!("cannot persist subscription group config: {e}"),
            );
        }
        log::info!("subscription group {name} created/updated");
        Some(RemotingCommand::response_to(&cmd, response::SUCCESS, None))
    }

    fn consumer_connections(&self, cmd: RemotingCommand) -> Option<RemotingCommand> {
        let group = match cmd.required_str("consumerGroup") {
            Ok(g) => g.to_string(),
            Err(e) => return error(&cmd, response::INVALID_PARAMETER, e.to_string()),
        };
        let groups = self.groups.borrow();
        let Some(g) = groups.get(&group).filter(|g| !g.channels.is_empty()) else {
            return error(
                &cmd,
                response::CONSUMER_NOT_ONLINE,
                format!("the consumer group[{group}] not online"),
            );
        };
        let mut conns: Vec<_> = g
            .channels
            .values()
            .map(|c| crate::protocol::bodies::Connection {
                client_addr: c.addr.to_string(),
                client_id: c.client_id.clone(),
                language: c.language.to_string(),
                version: c.version,
            })
            .collect();
        conns.sort_by(|a, b| (&a.client_id, &a.client_addr).cmp(&(&b.client_id, &b.client_addr)));
        let subs = self.subscriptions.borrow();
        let mut table = std::collections::BTreeMap::new();
        for s in g.subs.values() {
            for (topic, expr) in s {
                let registered = subs.get(&(group.clone(), topic.clone()));
                let tags: Vec<String> = if expr.trim() == "*" || expr.is_empty() {
                    Vec::new()
                } else {
                    expr.split("||")
                        .map(|t| t.trim().to_string())
                        .filter(|t| !t.is_empty())
                        .collect()
                };
                table.entry(topic.clone()).or_insert_with(|| SubscriptionData {
                    code_set: registered.map(|r| r.codes.clone()).unwrap_or_default(),
                    sub_string: expr.clone(),
                    sub_version: registered.map_or(0, |r| r.sub_version),
                    tags_set: tags,
                    topic: topic.clone(),
                    ..SubscriptionData::default()
                });
            }
        }
        let body = ConsumerConnection {
            connection_set: conns,
            consume_from_where: enum_of(&g.consume_from_where),
            consume_type: enum_of(&g.consume_type),
            message_model: enum_of(&g.message_model),
            subscription_table: table,
        };
        ok_body(&cmd, body.encode())
    }

    /// RESET_CONSUMER_CLIENT_OFFSET to every channel of the group, naming
    /// each queue both ways (main view and the owner shard's entry) since a
    /// client may know the broker by either; clients ignore queues they do
    /// not consume.
    async fn push_reset(&self, shard: &Rc<Shard>, cmd: &RemotingCommand) {
        let (Some(group), Some(topic)) = (cmd.ext_str("group"), cmd.ext_str("topic")) else {
            return;
        };
        let Ok(offsets) = serde_json::from_slice::<Vec<(u32, u64)>>(&cmd.body) else {
            return;
        };
        let meta = shard.meta();
        let broker = &shard.cfg.broker_name;
        let mut body = ResetOffsetBody::default();
        for (q, o) in offsets {
            body.offset_table
                .0
                .insert(MessageQueue::new(topic, broker.as_str(), q as i32), o as i64);
            if let Some((k, local)) = meta
                .topic(topic)
                .and_then(|t| t.owner(q).and_then(|k| t.global_to_local(k, q).map(|l| (k, l))))
            {
                body.offset_table.0.insert(
                    MessageQueue::new(topic, format!("{broker}-s{k}"), local as i32),
                    o as i64,
                );
            }
        }
        let mut push = RemotingCommand::new_request(request::RESET_CONSUMER_CLIENT_OFFSET).with_oneway();
        push.ext_fields.insert("topic", topic);
        push.ext_fields.insert("group", group);
        push.ext_fields
            .insert("timestamp", cmd.ext_str("timestamp").unwrap_or("-1"));
        push.ext_fields.insert("isForce", "true");
        let push = push.with_body(body.encode());
        self.push_to_group(shard, group, &push).await;
    }
}
