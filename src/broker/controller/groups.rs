//! Subscription group configs (`config/subscriptionGroup.json`): loaded
//! at start, auto-created by heartbeats, created and listed by admin
//! requests; and what the controller knows of a group.

use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::protocol::codes::response;
use crate::protocol::RemotingCommand;

use super::super::mesh::GroupInfo;
use super::super::metadata;
use super::super::reply::error;
use super::Controller;

const SUB_GROUP_FILE: &str = "subscriptionGroup.json";

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
    pub(super) async fn store_subscription_groups(&self) -> Result<(), String> {
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

    /// Groups whose online consumers subscribe to `topic`, or that
    /// subscribed to it through gRPC (QUERY_TOPIC_CONSUME_BY_WHO).
    pub fn groups_subscribing(&self, topic: &str) -> Vec<String> {
        let mut out: BTreeSet<String> = self
            .groups
            .borrow()
            .iter()
            .filter(|(_, g)| g.subs.values().any(|s| s.contains_key(topic)))
            .map(|(name, _)| name.clone())
            .collect();
        out.extend(
            self.subscriptions
                .borrow()
                .keys()
                .filter(|(_, t)| t == topic)
                .map(|(g, _)| g.clone()),
        );
        out.into_iter().collect()
    }

    /// What the controller knows of `group`.
    pub fn group_info(&self, group: &str) -> GroupInfo {
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
        let sub_groups = self.sub_groups.borrow();
        let config = sub_groups.get(group);
        GroupInfo {
            known: online || config.is_some(),
            online,
            topics: topics.into_iter().collect(),
            holds_locks: self.group_holds_locks(group),
            retry_max_times: config
                .and_then(|c| c.get("retryMaxTimes"))
                .and_then(Value::as_i64)
                .map_or(metadata::DEFAULT_RETRY_MAX_TIMES, |n| {
                    n.clamp(0, i32::MAX as i64) as i32
                }),
            orderly: config
                .and_then(|c| c.get("consumeMessageOrderly"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
        }
    }

    pub(super) async fn update_group(&self, cmd: RemotingCommand) -> Option<RemotingCommand> {
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

    /// GET_ALL_SUBSCRIPTIONGROUP_CONFIG.
    pub(super) fn all_groups(&self, cmd: RemotingCommand) -> Option<RemotingCommand> {
        let body = json!({
            "dataVersion": {"counter": self.sub_groups_version.get(), "stateVersion": 0, "timestamp": now_ms()},
            "forbiddenTable": {},
            "subscriptionGroupTable": &*self.sub_groups.borrow(),
        });
        Some(RemotingCommand::response_to(&cmd, response::SUCCESS, None).with_body(body.to_string().into_bytes()))
    }
}

/// SubscriptionGroupConfig defaults (json.md §9).
pub(super) fn default_group_config(name: &str) -> Value {
    json!({
        "attributes": {}, "brokerId": 0, "consumeBroadcastEnable": true, "consumeEnable": true,
        "consumeFromMinEnable": true, "consumeMessageOrderly": false, "consumeTimeoutMinute": 15,
        "groupName": name, "groupRetryPolicy": {"type": "CUSTOMIZED"}, "groupSysFlag": 0,
        "notifyConsumerIdsChangedEnable": true, "retryMaxTimes": 16, "retryQueueNums": 1,
        "whichBrokerWhenConsumeSlowly": 1
    })
}

pub(super) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
