//! The controller: single writer of the broker's metadata, on shard 0.
//!
//! It owns topics (persisted in `config/topics.json`), subscription group
//! configs (`config/subscriptionGroup.json`, handled in [`super::admin`]), the producer and
//! consumer tables built from heartbeats, the subscriptions consumers
//! registered, and orderly-consumer queue locks. After every change that
//! the data shards need (topics, subscriptions) it publishes a new
//! read-only [`Metadata`] snapshot to all shards *before* answering, so the
//! client's next request finds it wherever it lands.
//!
//! Subscription consistency: members of one consumer group must subscribe
//! to the same topics with the same expressions. The controller compares
//! each member's subscription set with the others' on every heartbeat; a
//! difference is logged with the group, the clients and the difference, and
//! kept in [`Controller::inconsistencies`] for admin tools and metrics.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::protocol::codes::{request, response};
use crate::protocol::RemotingCommand;
use crate::runtime::router::{ClientRef, ShardMsg};
use crate::store::notify::Notify;

use super::metadata::{self, perm, Metadata, Subscription, TopicInfo};
use super::shard::{error, Shard};

/// A channel is forgotten after this long without a heartbeat.
pub const CHANNEL_EXPIRY: Duration = Duration::from_secs(120);
/// A queue lock expires this long after its last renewal.
pub const LOCK_EXPIRY: Duration = Duration::from_secs(60);
/// Upper bounds on client state (connections are bounded by the OS; this
/// bounds what a misbehaving client can make us remember).
const MAX_GROUPS: usize = 100_000;
const MAX_SUBSCRIPTIONS_PER_CLIENT: usize = 10_000;

/// Header key of the UPDATE_AND_CREATE_TOPIC a send forwards to the
/// controller to auto-create its topic from `TBW102`: the send's
/// `defaultTopicQueueNums`. The queue layout then follows
/// [`metadata::auto_create_assignment`] for the entry the send came
/// through (the forwarded request's client view).
pub const AUTO_CREATE_QUEUE_NUMS: &str = "autoCreateDefaultTopicQueueNums";

pub(super) type ChannelKey = (u16, u64);
/// (group, topic, global queue id) → (owner client id, last renewal).
type LockTable = HashMap<(String, String, u32), (String, Instant)>;

#[derive(Debug, Clone)]
pub(super) struct Channel {
    pub(super) client_id: String,
    pub(super) last_seen: Instant,
    /// Remote address, language and protocol version of the connection
    /// (GET_CONSUMER_CONNECTION_LIST).
    pub(super) addr: std::net::SocketAddr,
    pub(super) language: &'static str,
    pub(super) version: i32,
}

#[derive(Debug, Default)]
pub(super) struct ConsumerGroup {
    pub(super) channels: HashMap<ChannelKey, Channel>,
    /// clientId → its subscriptions (topic → expression).
    pub(super) subs: HashMap<String, BTreeMap<String, String>>,
    pub(super) message_model: String,
    pub(super) consume_type: String,
    pub(super) consume_from_where: String,
}

impl Channel {
    fn new(client_id: &str, now: Instant, client: &ClientRef, cmd: &RemotingCommand) -> Channel {
        Channel {
            client_id: client_id.to_string(),
            last_seen: now,
            addr: client.addr,
            language: cmd.language.name(),
            version: cmd.version,
        }
    }
}

impl ConsumerGroup {
    pub(super) fn client_ids(&self) -> BTreeSet<String> {
        self.channels.values().map(|c| c.client_id.clone()).collect()
    }
}

/// A detected subscription difference inside a consumer group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inconsistency {
    pub group: String,
    pub client: String,
    pub other: String,
    pub difference: String,
}

pub struct Controller {
    topics: RefCell<HashMap<String, Arc<TopicInfo>>>,
    pub(super) subscriptions: RefCell<HashMap<(String, String), Subscription>>,
    pub(super) groups: RefCell<HashMap<String, ConsumerGroup>>,
    /// Subscription group configs (`config/subscriptionGroup.json`), kept
    /// as the JSON objects clients sent so that unknown fields survive.
    pub(super) sub_groups: RefCell<BTreeMap<String, Value>>,
    pub(super) sub_groups_version: Cell<u64>,
    producers: RefCell<HashMap<String, HashMap<ChannelKey, Channel>>>,
    locks: RefCell<LockTable>,
    inconsistent: RefCell<Vec<Inconsistency>>,
    version: Cell<u64>,
    shard_count: u16,
    pub(super) root: std::path::PathBuf,
    /// Topics changed: the registration task re-registers at once.
    pub topics_changed: Notify,
}

impl Controller {
    pub fn new(root: std::path::PathBuf, shard_count: u16, topics: Vec<TopicInfo>) -> Controller {
        Controller {
            topics: RefCell::new(
                topics
                    .into_iter()
                    .map(|t| (t.topic_name.clone(), Arc::new(t)))
                    .collect(),
            ),
            subscriptions: RefCell::new(HashMap::new()),
            groups: RefCell::new(HashMap::new()),
            sub_groups: RefCell::new(BTreeMap::new()),
            sub_groups_version: Cell::new(0),
            producers: RefCell::new(HashMap::new()),
            locks: RefCell::new(HashMap::new()),
            inconsistent: RefCell::new(Vec::new()),
            version: Cell::new(1),
            shard_count,
            root,
            topics_changed: Notify::default(),
        }
    }

    /// Adds the system topics a broker always has (TBW102 when
    /// auto-creation is on, with `defaultTopicQueueNums` queues spread
    /// evenly over the shards: each shard entry advertises its share, the
    /// main entry all of them; see [`metadata::auto_create_assignment`]).
    pub fn ensure_system_topics(&self, auto_create: bool, default_queues: u32) -> Result<(), String> {
        let mut changed = false;
        {
            let mut topics = self.topics.borrow_mut();
            let mut add = |name: &str, q: u32, p: i32| {
                if !topics.contains_key(name) {
                    topics.insert(
                        name.to_string(),
                        Arc::new(metadata::new_topic(name, q, q, p, self.shard_count)),
                    );
                    changed = true;
                }
            };
            if auto_create {
                add(
                    metadata::AUTO_CREATE_TOPIC_KEY,
                    default_queues,
                    perm::READ | perm::WRITE | perm::INHERIT,
                );
            }
            add("SELF_TEST_TOPIC", 1, perm::READ | perm::WRITE);
            add("OFFSET_MOVED_EVENT", 1, perm::READ | perm::WRITE);
        }
        if changed {
            metadata::store_topics(&self.root, self.shard_count, &self.topics.borrow())?;
        }
        Ok(())
    }

    pub fn snapshot(&self) -> Arc<Metadata> {
        Arc::new(Metadata {
            version: self.version.get(),
            topics: self.topics.borrow().clone(),
            subscriptions: self.subscriptions.borrow().clone(),
            shard_count: self.shard_count,
        })
    }

    pub fn topics(&self) -> HashMap<String, Arc<TopicInfo>> {
        self.topics.borrow().clone()
    }

    pub fn inconsistencies(&self) -> Vec<Inconsistency> {
        self.inconsistent.borrow().clone()
    }

    async fn republish(&self, shard: &Rc<Shard>) {
        self.version.set(self.version.get() + 1);
        shard.publish(self.snapshot()).await;
    }

    pub async fn handle(&self, shard: &Rc<Shard>, cmd: RemotingCommand, client: &ClientRef) -> Option<RemotingCommand> {
        match cmd.code {
            request::HEART_BEAT => self.heartbeat(shard, cmd, client).await,
            request::UNREGISTER_CLIENT => self.unregister(shard, cmd, client).await,
            request::GET_CONSUMER_LIST_BY_GROUP => self.consumer_list(cmd),
            request::LOCK_BATCH_MQ => self.lock(shard, cmd, true),
            request::UNLOCK_BATCH_MQ => self.lock(shard, cmd, false),
            request::UPDATE_AND_CREATE_TOPIC if cmd.ext_fields.contains(AUTO_CREATE_QUEUE_NUMS) => {
                self.auto_create_topic(shard, cmd, client).await
            }
            request::UPDATE_AND_CREATE_TOPIC => self.create_topic(shard, cmd).await,
            request::DELETE_TOPIC_IN_BROKER => self.delete_topic(shard, cmd).await,
            request::GET_ALL_TOPIC_CONFIG => self.all_topics(cmd),
            code if super::admin::is_controller_code(code) => self.handle_admin(shard, cmd, client).await,
            super::stats::GET_INCONSISTENT => {
                let mut groups: Vec<String> = self.inconsistent.borrow().iter().map(|i| i.group.clone()).collect();
                groups.dedup();
                let body = serde_json::to_vec(&groups).unwrap_or_default();
                Some(RemotingCommand::response_to(&cmd, response::SUCCESS, None).with_body(body))
            }
            _ => super::shard::not_supported(&cmd),
        }
    }

    async fn create_topic(&self, shard: &Rc<Shard>, cmd: RemotingCommand) -> Option<RemotingCommand> {
        let topic = match cmd.required_str("topic") {
            Ok(t) => t.to_string(),
            Err(e) => return error(&cmd, response::INVALID_PARAMETER, e.to_string()),
        };
        if let Err(e) = metadata::validate_topic(&topic) {
            return error(&cmd, response::INVALID_PARAMETER, e);
        }
        let num = |k: &str, d: i64| cmd.ext_i64(k).ok().flatten().unwrap_or(d);
        let (read, write) = (num("readQueueNums", 8), num("writeQueueNums", 8));
        let p = num("perm", (perm::READ | perm::WRITE) as i64) as i32;
        if !(1..=1024).contains(&read) || !(1..=1024).contains(&write) {
            return error(
                &cmd,
                response::INVALID_PARAMETER,
                "queue numbers must be within 1..=1024",
            );
        }
        let only_if_absent = cmd.ext_bool("onlyIfAbsent").ok().flatten().unwrap_or(false);
        {
            let mut topics = self.topics.borrow_mut();
            match topics.get(&topic) {
                Some(_) if only_if_absent => return Some(RemotingCommand::response_to(&cmd, response::SUCCESS, None)),
                Some(old) => {
                    // Growing keeps existing queues where they are.
                    let mut t = (**old).clone();
                    let n = read.max(write) as u32;
                    let extra = metadata::assign_queues(&topic, n, self.shard_count);
                    while (t.queue_shards.len() as u32) < n {
                        t.queue_shards.push(extra[t.queue_shards.len()]);
                    }
                    t.read_queue_nums = read as u32;
                    t.write_queue_nums = write as u32;
                    t.perm = p;
                    topics.insert(topic.clone(), Arc::new(t));
                }
                None => {
                    let t = metadata::new_topic(&topic, read as u32, write as u32, p, self.shard_count);
                    topics.insert(topic.clone(), Arc::new(t));
                }
            }
        }
        log::info!("topic {topic} created/updated: read {read} write {write} perm {p}");
        self.topics_saved(shard, &cmd).await
    }

    /// Writes `config/topics.json` as the topics are now, off the shard
    /// thread (encoded here, so no borrow is held across the write).
    async fn save_topics(&self) -> Result<(), String> {
        let json = metadata::encode_topics(self.shard_count, &self.topics.borrow())?;
        metadata::save(self.root.join("config"), metadata::TOPICS_FILE, json).await
    }

    /// Persists the topics, publishes the snapshot to every shard and
    /// triggers a registration; then answers `cmd`.
    async fn topics_saved(&self, shard: &Rc<Shard>, cmd: &RemotingCommand) -> Option<RemotingCommand> {
        if let Err(e) = self.save_topics().await {
            log::error!("cannot persist topics: {e}");
            return error(cmd, response::SYSTEM_ERROR, format!("cannot persist topic config: {e}"));
        }
        self.republish(shard).await;
        self.topics_changed.notify_all();
        Some(RemotingCommand::response_to(cmd, response::SUCCESS, None))
    }

    /// Auto-creation of a send's unknown topic from the `TBW102` template
    /// (Java `TopicConfigManager.createTopicInSendMessageMethod`): the
    /// template must exist with the INHERIT permission; the new topic gets
    /// its permission without INHERIT and, on each broker entry, the queue
    /// count the client derived from the template's route for that entry
    /// ([`metadata::auto_create_assignment`]). A topic that exists by now
    /// (another shard created it first) is left as it is.
    async fn auto_create_topic(
        &self,
        shard: &Rc<Shard>,
        cmd: RemotingCommand,
        client: &ClientRef,
    ) -> Option<RemotingCommand> {
        let topic = match cmd.required_str("topic") {
            Ok(t) => t.to_string(),
            Err(e) => return error(&cmd, response::INVALID_PARAMETER, e.to_string()),
        };
        if let Err(e) = metadata::validate_topic(&topic) {
            return error(&cmd, response::INVALID_PARAMETER, e);
        }
        let d = match cmd.ext_i32(AUTO_CREATE_QUEUE_NUMS) {
            Ok(Some(d)) => d,
            Ok(None) | Err(_) => {
                return error(
                    &cmd,
                    response::INVALID_PARAMETER,
                    format!("bad {AUTO_CREATE_QUEUE_NUMS}"),
                )
            }
        };
        let info = {
            let topics = self.topics.borrow();
            if topics.contains_key(&topic) {
                return Some(RemotingCommand::response_to(&cmd, response::SUCCESS, None));
            }
            let not_exist = |why: String| {
                error(
                    &cmd,
                    response::TOPIC_NOT_EXIST,
                    format!("topic[{topic}] not exist, apply first please! {why}"),
                )
            };
            let Some(tbw) = topics.get(metadata::AUTO_CREATE_TOPIC_KEY) else {
                return not_exist(format!(
                    "the default topic {} does not exist",
                    metadata::AUTO_CREATE_TOPIC_KEY
                ));
            };
            if tbw.perm & perm::INHERIT == 0 {
                return not_exist(format!(
                    "the default topic {} has no INHERIT permission (perm {})",
                    metadata::AUTO_CREATE_TOPIC_KEY,
                    tbw.perm
                ));
            }
            let shards = metadata::auto_create_assignment(&topic, tbw, d, client.view, self.shard_count);
            if shards.is_empty() {
                return not_exist(format!(
                    "the default topic {} has no write queue on this broker entry",
                    metadata::AUTO_CREATE_TOPIC_KEY
                ));
            }
            let n = shards.len() as u32;
            TopicInfo {
                queue_shards: shards,
                ..metadata::new_topic(&topic, n, n, tbw.perm & !perm::INHERIT, self.shard_count)
            }
        };
        log::info!(
            "topic {topic} auto-created from {} by a send via {:?} (defaultTopicQueueNums {d}): {} queues, shards {:?}",
            metadata::AUTO_CREATE_TOPIC_KEY,
            client.view,
            info.queue_shards.len(),
            info.queue_shards
        );
        self.topics.borrow_mut().insert(topic, Arc::new(info));
        self.topics_saved(shard, &cmd).await
    }

    async fn delete_topic(&self, shard: &Rc<Shard>, cmd: RemotingCommand) -> Option<RemotingCommand> {
        let topic = match cmd.required_str("topic") {
            Ok(t) => t.to_string(),
            Err(e) => return error(&cmd, response::INVALID_PARAMETER, e.to_string()),
        };
        if self.topics.borrow_mut().remove(&topic).is_none() {
            return error(&cmd, response::TOPIC_NOT_EXIST, format!("topic {topic} does not exist"));
        }
        if let Err(e) = self.save_topics().await {
            return error(
                &cmd,
                response::SYSTEM_ERROR,
                format!("cannot persist topic config: {e}"),
            );
        }
        self.republish(shard).await;
        self.topics_changed.notify_all();
        Some(RemotingCommand::response_to(&cmd, response::SUCCESS, None))
    }

    fn all_topics(&self, cmd: RemotingCommand) -> Option<RemotingCommand> {
        let mut table = serde_json::Map::new();
        for (name, t) in self.topics.borrow().iter() {
            table.insert(
                name.clone(),
                serde_json::json!({
                    "topicName": name, "readQueueNums": t.read_queue_nums, "writeQueueNums": t.write_queue_nums,
                    "perm": t.perm, "topicFilterType": "SINGLE_TAG", "topicSysFlag": t.topic_sys_flag, "order": t.order
                }),
            );
        }
        let body = serde_json::json!({ "topicConfigTable": table, "dataVersion": { "counter": self.version.get(), "timestamp": 0 } });
        Some(RemotingCommand::response_to(&cmd, response::SUCCESS, None).with_body(body.to_string().into_bytes()))
    }

    async fn heartbeat(&self, shard: &Rc<Shard>, cmd: RemotingCommand, client: &ClientRef) -> Option<RemotingCommand> {
        let body: Value = match serde_json::from_slice(&cmd.body) {
            Ok(v) => v,
            Err(e) => return error(&cmd, response::SYSTEM_ERROR, format!("invalid heartbeat body: {e}")),
        };
        let Some(client_id) = body.get("clientID").and_then(Value::as_str).map(String::from) else {
            return error(&cmd, response::SYSTEM_ERROR, "heartbeat without clientID");
        };
        let key = (client.shard, client.conn);
        let now = Instant::now();
        for p in body
            .get("producerDataSet")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(g) = p.get("groupName").and_then(Value::as_str) {
                let mut producers = self.producers.borrow_mut();
                if producers.len() < MAX_GROUPS || producers.contains_key(g) {
                    producers
                        .entry(g.to_string())
                        .or_default()
                        .insert(key, Channel::new(&client_id, now, client, &cmd));
                }
            }
        }
        let mut notify = Vec::new();
        let mut subs_changed = false;
        let mut retry_topics = Vec::new();
        let mut seen_groups = Vec::new();
        for c in body
            .get("consumerDataSet")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(g) = c.get("groupName").and_then(Value::as_str) else {
                continue;
            };
            if metadata::validate_group(g).is_err() {
                continue;
            }
            let mut subs = BTreeMap::new();
            for s in c
                .get("subscriptionDataSet")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .take(MAX_SUBSCRIPTIONS_PER_CLIENT)
            {
                let Some(topic) = s.get("topic").and_then(Value::as_str) else {
                    continue;
                };
                let expr = s.get("subString").and_then(Value::as_str).unwrap_or("*").to_string();
                let ver = s.get("subVersion").and_then(json_i64).unwrap_or(0);
                subs.insert(topic.to_string(), expr.clone());
                let mut table = self.subscriptions.borrow_mut();
                let k = (g.to_string(), topic.to_string());
                let changed = table
                    .get(&k)
                    .is_none_or(|old| old.expression != expr || old.sub_version < ver);
                if changed {
                    let codes = match super::pull::tag_filter(&expr) {
                        crate::store::TagFilter::All => Vec::new(),
                        crate::store::TagFilter::Codes(c) => c,
                    };
                    table.insert(
                        k,
                        Subscription {
                            expression: expr,
                            codes,
                            sub_version: ver,
                        },
                    );
                    subs_changed = true;
                }
            }
            retry_topics.push(format!("{}{g}", metadata::RETRY_GROUP_TOPIC_PREFIX));
            seen_groups.push(g.to_string());
            let mut groups = self.groups.borrow_mut();
            if groups.len() >= MAX_GROUPS && !groups.contains_key(g) {
                continue;
            }
            let group = groups.entry(g.to_string()).or_default();
            group.message_model = enum_name(c.get("messageModel"), &["BROADCASTING", "CLUSTERING"]);
            group.consume_type = enum_name(
                c.get("consumeType"),
                &["CONSUME_ACTIVELY", "CONSUME_PASSIVELY", "CONSUME_POP"],
            );
            group.consume_from_where = enum_name(c.get("consumeFromWhere"), &[]);
            let before = group.client_ids();
            group.channels.insert(key, Channel::new(&client_id, now, client, &cmd));
            group.subs.insert(client_id.clone(), subs);
            if group.client_ids() != before {
                notify.push(g.to_string());
            }
            self.check_consistency(g, group);
        }
        // Every consumer group gets its retry topic, so that it is in the
        // routes before the first retry.
        let mut created = false;
        for t in retry_topics {
            if !self.topics.borrow().contains_key(&t) {
                let info = metadata::new_topic(&t, 1, 1, perm::READ | perm::WRITE, self.shard_count);
                self.topics.borrow_mut().insert(t, Arc::new(info));
                created = true;
            }
        }
        if created {
            if let Err(e) = self.save_topics().await {
                log::error!("cannot persist topics: {e}");
            }
            self.topics_changed.notify_all();
        }
        if created || subs_changed {
            self.republish(shard).await;
        }
        if shard.cfg.auto_create_subscription_group {
            self.auto_create_groups(&seen_groups).await;
        }
        for g in notify {
            self.notify_group(shard, &g).await;
        }
        let mut r = RemotingCommand::response_to(&cmd, response::SUCCESS, None);
        r.ext_fields.insert("IS_SUPPORT_HEART_BEAT_V2", "true");
        r.ext_fields.insert("IS_SUB_CHANGE", "true");
        Some(r)
    }

    fn check_consistency(&self, name: &str, group: &ConsumerGroup) {
        let mut found = Vec::new();
        let mut clients: Vec<(&String, &BTreeMap<String, String>)> = group.subs.iter().collect();
        clients.sort();
        if let Some((first, base)) = clients.first() {
            for (other, subs) in clients.iter().skip(1) {
                if subs != base {
                    let diff = describe_difference(base, subs);
                    found.push(Inconsistency {
                        group: name.to_string(),
                        client: (*first).clone(),
                        other: (*other).clone(),
                        difference: diff,
                    });
                }
            }
        }
        let mut all = self.inconsistent.borrow_mut();
        let was: Vec<Inconsistency> = all.iter().filter(|i| i.group == name).cloned().collect();
        if found != was {
            for i in &found {
                log::warn!(
                    "consumer group {} has inconsistent subscriptions: client {} vs {}: {}",
                    i.group,
                    i.client,
                    i.other,
                    i.difference
                );
            }
            all.retain(|i| i.group != name);
            all.extend(found);
        }
    }

    async fn unregister(&self, shard: &Rc<Shard>, cmd: RemotingCommand, client: &ClientRef) -> Option<RemotingCommand> {
        let key = (client.shard, client.conn);
        let mut notify = Vec::new();
        if let Some(g) = cmd.ext_str("consumerGroup") {
            if let Some(group) = self.groups.borrow_mut().get_mut(g) {
                if let Some(ch) = group.channels.remove(&key) {
                    if !group.channels.values().any(|c| c.client_id == ch.client_id) {
                        group.subs.remove(&ch.client_id);
                    }
                    notify.push(g.to_string());
                }
            }
        }
        if let Some(g) = cmd.ext_str("producerGroup") {
            if let Some(p) = self.producers.borrow_mut().get_mut(g) {
                p.remove(&key);
            }
        }
        for g in notify {
            self.notify_group(shard, &g).await;
        }
        Some(RemotingCommand::response_to(&cmd, response::SUCCESS, None))
    }

    fn consumer_list(&self, cmd: RemotingCommand) -> Option<RemotingCommand> {
        let group = match cmd.required_str("consumerGroup") {
            Ok(g) => g.to_string(),
            Err(e) => return error(&cmd, response::INVALID_PARAMETER, e.to_string()),
        };
        let ids: Vec<String> = self
            .groups
            .borrow()
            .get(&group)
            .map(|g| g.client_ids().into_iter().collect())
            .unwrap_or_default();
        if ids.is_empty() {
            return error(
                &cmd,
                response::SYSTEM_ERROR,
                format!("no consumer for this group, {group}"),
            );
        }
        let body = serde_json::json!({ "consumerIdList": ids });
        Some(RemotingCommand::response_to(&cmd, response::SUCCESS, None).with_body(body.to_string().into_bytes()))
    }

    /// LOCK_BATCH_MQ / UNLOCK_BATCH_MQ. Queues are named as the client
    /// knows them (broker entry + entry-local id); locks are kept per
    /// global queue so both views share them.
    fn lock(&self, shard: &Rc<Shard>, cmd: RemotingCommand, lock: bool) -> Option<RemotingCommand> {
        let body: Value = match serde_json::from_slice(&cmd.body) {
            Ok(v) => v,
            Err(e) => return error(&cmd, response::SYSTEM_ERROR, format!("invalid lock body: {e}")),
        };
        let (Some(group), Some(client_id)) = (
            body.get("consumerGroup").and_then(Value::as_str),
            body.get("clientId").and_then(Value::as_str),
        ) else {
            return error(
                &cmd,
                response::SYSTEM_ERROR,
                "lock body without consumerGroup or clientId",
            );
        };
        let meta = shard.meta();
        let now = Instant::now();
        let mut locked = Vec::new();
        let mut locks = self.locks.borrow_mut();
        for mq in body
            .get("mqSet")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .take(10_000)
        {
            let (Some(topic), Some(broker), Some(qid)) = (
                mq.get("topic").and_then(Value::as_str),
                mq.get("brokerName").and_then(Value::as_str),
                mq.get("queueId").and_then(json_i64),
            ) else {
                continue;
            };
            let Some(global) = global_queue(&shard.cfg.broker_name, &meta, topic, broker, qid) else {
                continue;
            };
            let k = (group.to_string(), topic.to_string(), global);
            if lock {
                let free = match locks.get(&k) {
                    Some((owner, at)) => owner == client_id || now.duration_since(*at) > LOCK_EXPIRY,
                    None => true,
                };
                if free {
                    locks.insert(k, (client_id.to_string(), now));
                    locked.push(mq.clone());
                }
            } else if locks.get(&k).is_some_and(|(owner, _)| owner == client_id) {
                locks.remove(&k);
            }
        }
        let mut r = RemotingCommand::response_to(&cmd, response::SUCCESS, None);
        if lock {
            r = r.with_body(serde_json::json!({ "lockOKMQSet": locked }).to_string().into_bytes());
        }
        Some(r)
    }

    /// Sends NOTIFY_CONSUMER_IDS_CHANGED to every channel of the group.
    pub(super) async fn notify_group(&self, shard: &Rc<Shard>, group: &str) {
        let mut cmd = RemotingCommand::new_request(request::NOTIFY_CONSUMER_IDS_CHANGED).with_oneway();
        cmd.ext_fields.insert("consumerGroup", group);
        self.push_to_group(shard, group, &cmd).await;
    }

    /// Queues a broker → client request on every channel of a consumer
    /// group, on whichever shard holds the connection.
    pub(super) async fn push_to_group(&self, shard: &Rc<Shard>, group: &str, cmd: &RemotingCommand) {
        let channels: Vec<ChannelKey> = self
            .groups
            .borrow()
            .get(group)
            .map(|g| g.channels.keys().copied().collect())
            .unwrap_or_default();
        for (s, conn) in channels {
            if s == shard.id {
                shard.push(conn, cmd.clone());
            } else {
                shard.router.send(s, ShardMsg::Push { conn, cmd: cmd.clone() }).await;
            }
        }
    }

    /// A client connection closed: forget its channels at once.
    pub fn connection_closed(&self, shard: &Rc<Shard>, client: &ClientRef) {
        let key = (client.shard, client.conn);
        let mut changed = Vec::new();
        for (name, g) in self.groups.borrow_mut().iter_mut() {
            if let Some(ch) = g.channels.remove(&key) {
                if !g.channels.values().any(|c| c.client_id == ch.client_id) {
                    g.subs.remove(&ch.client_id);
                }
                changed.push(name.clone());
            }
        }
        for p in self.producers.borrow_mut().values_mut() {
            p.remove(&key);
        }
        let shard = shard.clone();
        glommio::spawn_local(async move {
            if let Some(c) = &shard.controller {
                for g in changed {
                    c.notify_group(&shard, &g).await;
                }
            }
        })
        .detach();
    }

    /// Drops channels silent for [`CHANNEL_EXPIRY`] and expired locks.
    pub async fn expire(&self, shard: &Rc<Shard>) {
        let now = Instant::now();
        let mut changed = Vec::new();
        for (name, g) in self.groups.borrow_mut().iter_mut() {
            let before = g.client_ids();
            g.channels
                .retain(|_, c| now.duration_since(c.last_seen) < CHANNEL_EXPIRY);
            let live = g.client_ids();
            g.subs.retain(|id, _| live.contains(id));
            if live != before {
                changed.push(name.clone());
            }
        }
        self.groups.borrow_mut().retain(|_, g| !g.channels.is_empty());
        for p in self.producers.borrow_mut().values_mut() {
            p.retain(|_, c| now.duration_since(c.last_seen) < CHANNEL_EXPIRY);
        }
        self.producers.borrow_mut().retain(|_, p| !p.is_empty());
        self.locks
            .borrow_mut()
            .retain(|_, (_, at)| now.duration_since(*at) <= LOCK_EXPIRY);
        for g in changed {
            self.notify_group(shard, &g).await;
        }
    }
}

/// The global queue id of a queue named by (broker entry, entry-local id).
pub fn global_queue(broker_name: &str, meta: &Metadata, topic: &str, entry: &str, qid: i64) -> Option<u32> {
    let qid = u32::try_from(qid).ok()?;
    if entry == broker_name {
        return Some(qid);
    }
    let k: u16 = entry.strip_prefix(broker_name)?.strip_prefix("-s")?.parse().ok()?;
    meta.topic(topic)?.local_to_global(k, qid)
}

fn json_i64(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

/// Enum fields come as names (Java, ali-ons) or ordinals (C++).
fn enum_name(v: Option<&Value>, names: &[&str]) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|i| names.get(i as usize))
            .map_or(n.to_string(), |s| s.to_string()),
        _ => String::new(),
    }
}

fn describe_difference(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> String {
    let mut parts = Vec::new();
    for (t, e) in a {
        match b.get(t) {
            None => parts.push(format!("only the first subscribes {t}")),
            Some(e2) if e2 != e => parts.push(format!("{t}: {e:?} vs {e2:?}")),
            _ => {}
        }
    }
    for t in b.keys().filter(|t| !a.contains_key(*t)) {
        parts.push(format!("only the second subscribes {t}"));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_are_described() {
        let a = BTreeMap::from([
            ("T".to_string(), "TagA".to_string()),
            ("U".to_string(), "*".to_string()),
        ]);
        let b = BTreeMap::from([
            ("T".to_string(), "TagB".to_string()),
            ("V".to_string(), "*".to_string()),
        ]);
        let d = describe_difference(&a, &b);
        assert!(d.contains("T: \"TagA\" vs \"TagB\""), "{d}");
        assert!(d.contains("only the first subscribes U"), "{d}");
        assert!(d.contains("only the second subscribes V"), "{d}");
    }

    #[test]
    fn enums_by_name_or_ordinal() {
        assert_eq!(
            enum_name(Some(&serde_json::json!("CLUSTERING")), &["BROADCASTING", "CLUSTERING"]),
            "CLUSTERING"
        );
        assert_eq!(
            enum_name(Some(&serde_json::json!(1)), &["BROADCASTING", "CLUSTERING"]),
            "CLUSTERING"
        );
        assert_eq!(enum_name(None, &[]), "");
    }
}
