//! Server-side assignment for consumers that do not rebalance themselves
//! (5.x `clientRebalance=false`): QUERY_ASSIGNMENT (400), and the
//! per-(topic, group) message request mode — PULL or POP — set by
//! SET_MESSAGE_REQUEST_MODE (401), listed by GET_ALL_MESSAGE_REQUEST_MODE
//! (402), kept in `config/messageRequestMode.json` in the Java broker's
//! shape (`{"messageRequestModeMap":{topic:{group:{...}}}}`).
//!
//! As the Java broker answers: a group without a mode uses
//! `defaultMessageRequestMode` (PULL; retry topics always PULL). POP mode
//! with `popShareQueueNum` ≤ 0 (or ≥ consumers − 1) gives every consumer
//! every broker entry with queue id −1 ("pop from any queue"); otherwise,
//! and in PULL mode, queues are allocated by the client's strategy
//! (`AVG`, `AVG_BY_CIRCLE`; an unknown one gets no assignment, which the
//! client treats as "keep what you have"). The queues are the route's:
//! with shard-aware routes, entry `<brokerName>-s<k>` and its local ids.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::protocol::codes::response;
use crate::protocol::RemotingCommand;

use super::super::metadata::{self, RETRY_GROUP_TOPIC_PREFIX};
use super::super::reply::error;
use super::{Controller, Host};

const MODE_FILE: &str = "messageRequestMode.json";

/// One (topic, group)'s mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestMode {
    pub pop: bool,
    pub pop_share_queue_num: i32,
}

/// (topic, broker entry name, queue id) as the route names it.
type Mq = (String, String, i32);

impl Controller {
    /// Loads `config/messageRequestMode.json` (absent: no modes).
    pub fn load_request_modes(&self) -> Result<(), String> {
        let path = self.root.join("config").join(MODE_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut modes = self.modes.borrow_mut();
        if let Some(t) = v.get("messageRequestModeMap").and_then(Value::as_object) {
            for (topic, groups) in t {
                for (group, m) in groups.as_object().into_iter().flatten() {
                    modes.insert((topic.clone(), group.clone()), mode_of(m));
                }
            }
        }
        Ok(())
    }

    fn modes_json(&self) -> Value {
        let mut by_topic: BTreeMap<&str, serde_json::Map<String, Value>> = BTreeMap::new();
        let modes = self.modes.borrow();
        for ((topic, group), m) in modes.iter() {
            by_topic.entry(topic).or_default().insert(
                group.clone(),
                json!({
                    "topic": topic, "consumerGroup": group,
                    "mode": if m.pop { "POP" } else { "PULL" },
                    "popShareQueueNum": m.pop_share_queue_num
                }),
            );
        }
        json!({ "messageRequestModeMap": by_topic })
    }

    /// The mode of (topic, group).
    pub fn request_mode(&self, cfg: &crate::config::BrokerConfig, topic: &str, group: &str) -> RequestMode {
        if let Some(m) = self.modes.borrow().get(&(topic.to_string(), group.to_string())) {
            return m.clone();
        }
        let pop = !topic.starts_with(RETRY_GROUP_TOPIC_PREFIX) && cfg.default_message_request_mode_pop;
        RequestMode {
            pop,
            pop_share_queue_num: if pop { cfg.default_pop_share_queue_num } else { 0 },
        }
    }

    pub(super) async fn set_request_mode(&self, cmd: RemotingCommand, auto_create: bool) -> Option<RemotingCommand> {
        let body: Value = match serde_json::from_slice(&cmd.body[..]) {
            Ok(v) => v,
            Err(e) => {
                return error(
                    &cmd,
                    response::INVALID_PARAMETER,
                    format!("SetMessageRequestModeRequestBody: {e}"),
                )
            }
        };
        let topic = body.get("topic").and_then(Value::as_str).unwrap_or("").to_string();
        let group = body
            .get("consumerGroup")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if topic.starts_with(RETRY_GROUP_TOPIC_PREFIX) {
            return error(&cmd, response::NO_PERMISSION, "retry topic is not allowed to set mode");
        }
        if !self.topics.borrow().contains_key(&topic) {
            return error(&cmd, response::TOPIC_NOT_EXIST, format!("topic[{topic}] not exist"));
        }
        if let Err(e) = metadata::validate_group(&group) {
            return error(&cmd, response::INVALID_PARAMETER, e);
        }
        let known = self.sub_groups.borrow().contains_key(&group);
        if !known {
            // As the Java broker's lookup: created when auto-creation is on.
            if !auto_create {
                return error(
                    &cmd,
                    response::SUBSCRIPTION_GROUP_NOT_EXIST,
                    "subscription group does not exist",
                );
            }
            self.auto_create_groups(std::slice::from_ref(&group)).await;
        }
        let m = mode_of(&body);
        {
            let mut modes = self.modes.borrow_mut();
            if modes.len() >= 100_000 && !modes.contains_key(&(topic.clone(), group.clone())) {
                return error(&cmd, response::SYSTEM_BUSY, "100000 request modes are set already");
            }
            modes.insert((topic, group), m);
        }
        let bytes = match serde_json::to_vec_pretty(&self.modes_json()) {
            Ok(b) => b,
            Err(e) => return error(&cmd, response::SYSTEM_ERROR, e.to_string()),
        };
        if let Err(e) = metadata::save(self.root.join("config"), MODE_FILE, bytes).await {
            return error(
                &cmd,
                response::SYSTEM_ERROR,
                format!("cannot persist the request mode: {e}"),
            );
        }
        Some(RemotingCommand::response_to(&cmd, response::SUCCESS, None))
    }

    pub(super) fn all_request_modes(&self, cmd: RemotingCommand) -> Option<RemotingCommand> {
        let body = self.modes_json().to_string().into_bytes();
        Some(RemotingCommand::response_to(&cmd, response::SUCCESS, None).with_body(body))
    }

    pub(super) fn query_assignment(&self, host: &impl Host, cmd: RemotingCommand) -> Option<RemotingCommand> {
        let body: Value = match serde_json::from_slice(&cmd.body[..]) {
            Ok(v) => v,
            Err(e) => {
                return error(
                    &cmd,
                    response::INVALID_PARAMETER,
                    format!("QueryAssignmentRequestBody: {e}"),
                )
            }
        };
        let s = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let (topic, group, client_id, strategy) = (s("topic"), s("consumerGroup"), s("clientId"), s("strategyName"));
        let broadcasting = s("messageModel") == "BROADCASTING";
        let cfg = host.config();
        let mode = self.request_mode(cfg, &topic, &group);
        let all = self.route_queues(cfg, &topic);
        let assigned: Option<Vec<Mq>> = match all {
            None => None,
            Some(all) if broadcasting => Some(all),
            Some(mut all) => {
                all.sort();
                let mut cids: Vec<String> = self
                    .groups
                    .borrow()
                    .get(&group)
                    .map(|g| g.client_ids().into_iter().collect())
                    .unwrap_or_default();
                cids.sort();
                if cids.is_empty() {
                    None
                } else if mode.pop {
                    allocate_pop(&strategy, &client_id, &all, &cids, mode.pop_share_queue_num)
                } else {
                    allocate(&strategy, &client_id, &all, &cids)
                }
            }
        };
        let mode_name = if mode.pop { "POP" } else { "PULL" };
        let list: Option<Vec<Value>> = assigned.map(|v| {
            let mut v = v;
            v.sort();
            v.dedup();
            v.into_iter()
                .map(|(t, b, q)| {
                    json!({"messageQueue": {"topic": t, "brokerName": b, "queueId": q}, "mode": mode_name, "attachments": {}})
                })
                .collect()
        });
        let body = json!({ "messageQueueAssignments": list });
        Some(RemotingCommand::response_to(&cmd, response::SUCCESS, None).with_body(body.to_string().into_bytes()))
    }

    /// The readable queues of `topic` as its route lists them.
    fn route_queues(&self, cfg: &crate::config::BrokerConfig, topic: &str) -> Option<Vec<Mq>> {
        let topics = self.topics.borrow();
        let t = topics.get(topic)?;
        let mut out = Vec::new();
        if cfg.shard_aware_routes {
            for k in 0..self.shard_count {
                let (read, _) = t.shard_view(k);
                for q in 0..read {
                    out.push((topic.to_string(), format!("{}-s{k}", cfg.broker_name), q as i32));
                }
            }
        } else {
            for q in 0..t.read_queue_nums {
                out.push((topic.to_string(), cfg.broker_name.clone(), q as i32));
            }
        }
        Some(out)
    }
}

fn mode_of(v: &Value) -> RequestMode {
    RequestMode {
        pop: v.get("mode").and_then(Value::as_str) == Some("POP"),
        pop_share_queue_num: v.get("popShareQueueNum").and_then(Value::as_i64).unwrap_or(0) as i32,
    }
}

/// The client's allocation strategy (`AllocateMessageQueueAveragely`,
/// `…AveragelyByCircle`); `None` for one this broker does not know.
fn allocate(strategy: &str, cid: &str, all: &[Mq], cids: &[String]) -> Option<Vec<Mq>> {
    let Some(index) = cids.iter().position(|c| c == cid) else {
        return Some(Vec::new());
    };
    let (n, m) = (all.len(), cids.len());
    match strategy {
        "AVG" => {
            let rem = n % m;
            let size = if n <= m {
                1
            } else if rem > 0 && index < rem {
                n / m + 1
            } else {
                n / m
            };
            let start = if rem > 0 && index < rem {
                index * size
            } else {
                index * size + rem
            };
            let range = size.min(n.saturating_sub(start));
            Some((0..range).map(|i| all[(start + i) % n].clone()).collect())
        }
        "AVG_BY_CIRCLE" => Some((index..n).step_by(m).map(|i| all[i].clone()).collect()),
        _ => None,
    }
}

/// POP mode: every consumer pops every entry (queue −1), or its own
/// allocation plus that of the `share` consumers after it.
fn allocate_pop(strategy: &str, cid: &str, all: &[Mq], cids: &[String], share: i32) -> Option<Vec<Mq>> {
    if share <= 0 || share as usize >= cids.len().saturating_sub(1) {
        return Some(all.iter().map(|(t, b, _)| (t.clone(), b.clone(), -1)).collect());
    }
    if cids.len() > all.len() {
        let index = cids.iter().position(|c| c == cid)?;
        return Some(vec![all[index % all.len()].clone()]);
    }
    let mut out = allocate(strategy, cid, all, cids)?;
    if let Some(mut index) = cids.iter().position(|c| c == cid) {
        for _ in 0..share {
            index = (index + 1) % cids.len();
            out.extend(allocate(strategy, &cids[index], all, cids)?);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mqs(n: i32) -> Vec<Mq> {
        (0..n).map(|q| ("T".to_string(), "b".to_string(), q)).collect()
    }

    #[test]
    fn averagely_matches_the_java_strategy() {
        let cids: Vec<String> = ["c1", "c2", "c3"].iter().map(|s| s.to_string()).collect();
        let q = |v: Option<Vec<Mq>>| v.expect("known").into_iter().map(|m| m.2).collect::<Vec<_>>();
        assert_eq!(q(allocate("AVG", "c1", &mqs(8), &cids)), vec![0, 1, 2]);
        assert_eq!(q(allocate("AVG", "c2", &mqs(8), &cids)), vec![3, 4, 5]);
        assert_eq!(q(allocate("AVG", "c3", &mqs(8), &cids)), vec![6, 7]);
        assert_eq!(q(allocate("AVG", "c3", &mqs(2), &cids)), Vec::<i32>::new());
        assert_eq!(q(allocate("AVG_BY_CIRCLE", "c2", &mqs(8), &cids)), vec![1, 4, 7]);
        assert!(allocate("NOPE", "c1", &mqs(8), &cids).is_none());
        assert_eq!(q(allocate("AVG", "zz", &mqs(8), &cids)), Vec::<i32>::new());
    }

    #[test]
    fn pop_mode_shares_every_entry_by_default() {
        let cids: Vec<String> = vec!["c1".into(), "c2".into()];
        let mut all = mqs(4);
        all.push(("T".into(), "other".into(), 0));
        let got = allocate_pop("AVG", "c1", &all, &cids, -1).expect("all");
        assert!(got.iter().all(|m| m.2 == -1));
        let mut entries: Vec<&str> = got.iter().map(|m| m.1.as_str()).collect();
        entries.dedup();
        assert_eq!(entries, vec!["b", "other"]);
    }
}
