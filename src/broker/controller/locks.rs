//! Orderly consumers' queue locks (LOCK_BATCH_MQ / UNLOCK_BATCH_MQ): a
//! lock belongs to one client id and expires [`LOCK_EXPIRY`] after its
//! last renewal.

use std::time::Instant;

use serde_json::Value;

use crate::protocol::codes::response;
use crate::protocol::RemotingCommand;

use super::super::group_names;
use super::super::metadata::{self, Metadata};
use super::super::reply::error;
use super::clients::json_i64;
use super::{Controller, Host, LOCK_EXPIRY};

impl Controller {
    /// LOCK_BATCH_MQ / UNLOCK_BATCH_MQ. Queues are named as the client
    /// knows them (broker entry + entry-local id); locks are kept per
    /// global queue so both views share them.
    pub(super) fn lock(&self, host: &impl Host, cmd: RemotingCommand, lock: bool) -> Option<RemotingCommand> {
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
        if let Err(why) = metadata::validate_group(group) {
            return group_names::refuse(&cmd, "lock body consumerGroup", why);
        }
        let meta = host.meta();
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
            let Some(global) = global_queue(&host.config().broker_name, &meta, topic, broker, qid) else {
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
}

/// The global queue id of a queue named by (broker entry, entry-local id).
impl Controller {
    /// Whether some consumer of `group` holds a live orderly lock (a direct
    /// send to its retry topic then goes to its DLQ, as in Java).
    pub fn group_holds_locks(&self, group: &str) -> bool {
        let now = std::time::Instant::now();
        self.locks
            .borrow()
            .iter()
            .any(|((g, _, _), (_, at))| g == group && now.duration_since(*at) <= LOCK_EXPIRY)
    }
}

pub fn global_queue(broker_name: &str, meta: &Metadata, topic: &str, entry: &str, qid: i64) -> Option<u32> {
    let qid = u32::try_from(qid).ok()?;
    if entry == broker_name {
        return Some(qid);
    }
    let k: u16 = entry.strip_prefix(broker_name)?.strip_prefix("-s")?.parse().ok()?;
    meta.topic(topic)?.local_to_global(k, qid)
}
