//! Clients: producer and consumer channels from heartbeats, their
//! subscriptions and the consistency check inside a group, consumer lists
//! and connections, pushes to a group's consumers, expiry.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use crate::protocol::bodies::{ConsumerConnection, JsonBody, MessageQueue, ResetOffsetBody, SubscriptionData};
use crate::protocol::codes::{request, response};
use crate::protocol::RemotingCommand;
use crate::runtime::mesh::ClientRef;

use super::super::group_names;
use super::super::metadata::{self, perm, Subscription};
use super::super::reply::error;
use super::{
    Channel, ChannelKey, ConsumerGroup, Controller, Host, Inconsistency, CHANNEL_EXPIRY, LOCK_EXPIRY, MAX_GROUPS,
    MAX_SUBSCRIPTIONS_PER_CLIENT,
};

impl Controller {
    pub(super) async fn heartbeat(
        &self,
        host: &impl Host,
        cmd: RemotingCommand,
        client: &ClientRef,
    ) -> Option<RemotingCommand> {
        let body: Value = match serde_json::from_slice(&cmd.body) {
            Ok(v) => v,
            Err(e) => return error(&cmd, response::SYSTEM_ERROR, format!("invalid heartbeat body: {e}")),
        };
        let Some(client_id) = body.get("clientID").and_then(Value::as_str).map(String::from) else {
            return error(&cmd, response::SYSTEM_ERROR, "heartbeat without clientID");
        };
        // Refused whole, before anything is recorded.
        if let Some(refusal) = group_names::check_heartbeat(&cmd, &body) {
            return refusal;
        }
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
                    let codes = match metadata::tag_filter(&expr) {
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
            self.republish(host).await;
        }
        if host.config().auto_create_subscription_group {
            self.auto_create_groups(&seen_groups).await;
        }
        for g in notify {
            self.notify_group(host, &g).await;
        }
        let mut r = RemotingCommand::response_to(&cmd, response::SUCCESS, None);
        r.ext_fields.insert("IS_SUPPORT_HEART_BEAT_V2", "true");
        r.ext_fields.insert("IS_SUB_CHANGE", "true");
        Some(r)
    }

    pub(super) fn check_consistency(&self, name: &str, group: &ConsumerGroup) {
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

    pub(super) async fn unregister(
        &self,
        host: &impl Host,
        cmd: RemotingCommand,
        client: &ClientRef,
    ) -> Option<RemotingCommand> {
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
            self.notify_group(host, &g).await;
        }
        Some(RemotingCommand::response_to(&cmd, response::SUCCESS, None))
    }

    pub(super) fn consumer_list(&self, cmd: RemotingCommand) -> Option<RemotingCommand> {
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

    /// One live connection of a producer group, taking turns (transaction
    /// checks go to one producer of the group).
    pub fn producer_channel(&self, group: &str) -> Option<ChannelKey> {
        let producers = self.producers.borrow();
        let channels = producers.get(group)?;
        if channels.is_empty() {
            return None;
        }
        let mut keys: Vec<ChannelKey> = channels.keys().copied().collect();
        keys.sort_unstable();
        let turn = self.producer_turn.get();
        self.producer_turn.set(turn.wrapping_add(1));
        Some(keys[turn % keys.len()])
    }

    /// Sends NOTIFY_CONSUMER_IDS_CHANGED to every channel of the group.
    pub(super) async fn notify_group(&self, host: &impl Host, group: &str) {
        let mut cmd = RemotingCommand::new_request(request::NOTIFY_CONSUMER_IDS_CHANGED).with_oneway();
        cmd.ext_fields.insert("consumerGroup", group);
        self.push_to_group(host, group, &cmd).await;
    }

    /// Queues a broker → client request on every channel of a consumer
    /// group, on whichever shard holds the connection.
    pub(super) async fn push_to_group(&self, host: &impl Host, group: &str, cmd: &RemotingCommand) {
        let channels: Vec<ChannelKey> = self
            .groups
            .borrow()
            .get(group)
            .map(|g| g.channels.keys().copied().collect())
            .unwrap_or_default();
        for (s, conn) in channels {
            host.push(s, conn, cmd.clone()).await;
        }
    }

    /// A client connection closed: forget its channels at once.
    pub async fn connection_closed(&self, host: &impl Host, client: &ClientRef) {
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
        for g in changed {
            self.notify_group(host, &g).await;
        }
    }

    /// Drops channels silent for [`CHANNEL_EXPIRY`] and expired locks.
    pub async fn expire(&self, host: &impl Host) {
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
            self.notify_group(host, &g).await;
        }
    }

    pub(super) fn consumer_connections(&self, cmd: RemotingCommand) -> Option<RemotingCommand> {
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
        Some(RemotingCommand::response_to(&cmd, response::SUCCESS, None).with_body(body.encode()))
    }

    /// RESET_CONSUMER_CLIENT_OFFSET to every channel of the group, naming
    /// each queue both ways (main view and the owner shard's entry) since a
    /// client may know the broker by either; clients ignore queues they do
    /// not consume.
    pub async fn push_reset(&self, host: &impl Host, group: &str, topic: &str, ts: i64, offsets: &[(u32, u64)]) {
        let meta = host.meta();
        let broker = &host.config().broker_name;
        let mut body = ResetOffsetBody::default();
        for &(q, o) in offsets {
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
        push.ext_fields.insert_display("timestamp", ts);
        push.ext_fields.insert("isForce", "true");
        let push = push.with_body(body.encode());
        self.push_to_group(host, group, &push).await;
    }
}

pub(super) fn json_i64(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

/// Enum fields come as names (Java, ali-ons) or ordinals (C++).
pub(super) fn enum_name(v: Option<&Value>, names: &[&str]) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|i| names.get(i as usize))
            .map_or(n.to_string(), |s| s.to_string()),
        _ => String::new(),
    }
}

pub(super) fn describe_difference(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> String {
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

/// A Java enum from its name (`None` for an empty or unknown name).
pub(super) fn enum_of<T: serde::de::DeserializeOwned>(name: &str) -> Option<T> {
    serde_json::from_value(Value::String(name.to_string())).ok()
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
