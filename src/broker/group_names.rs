//! Group names in requests. Every request that names a consumer or
//! producer group has the name checked against RocketMQ's rule
//! ([`metadata::validate_group`]: `^[%|a-zA-Z0-9_-]+$`, at most 120
//! characters so that `%RETRY%<group>` fits a topic name) before anything
//! uses it, and is refused with INVALID_PARAMETER and a remark naming the
//! group, where it was and the rule. A group name becomes a file name
//! (consumer offsets), a topic name (`%RETRY%<group>`, `%DLQ%<group>`) and
//! a key the controller keeps for as long as the group lives.
//!
//! | request | the group | checked in |
//! |---|---|---|
//! | PULL_MESSAGE, LITE_PULL_MESSAGE, offset requests | header `consumerGroup` | their handlers |
//! | UNREGISTER_CLIENT | headers `consumerGroup`, `producerGroup` | [`check_header`] |
//! | GET_CONSUMER_LIST_BY_GROUP, GET_CONSUMER_CONNECTION_LIST, GET_CONSUME_STATS | header `consumerGroup` | [`check_header`] |
//! | INVOKE_BROKER_TO_RESET_OFFSET | header `group` | [`check_header`] |
//! | HEART_BEAT | body `producerDataSet[].groupName`, `consumerDataSet[].groupName` | [`check_heartbeat`] |
//! | LOCK_BATCH_MQ, UNLOCK_BATCH_MQ | body `consumerGroup` | the lock handler |
//! | UPDATE_AND_CREATE_SUBSCRIPTIONGROUP | body `groupName` | the controller |
//! | sends to `%RETRY%<group>` / `%DLQ%<group>` | the topic | the send's topic check, [`group_of_topic`] |
//!
//! A heartbeat naming an invalid group is refused whole, before it changes
//! anything (the Java client only logs a heartbeat error).

use serde_json::Value;

use crate::protocol::codes::{request, response};
use crate::protocol::RemotingCommand;

use super::metadata::{self, DLQ_GROUP_TOPIC_PREFIX, RETRY_GROUP_TOPIC_PREFIX};
use super::reply::error;

/// Header keys that name a group, by request code (for the requests whose
/// handlers do not check them themselves).
fn header_keys(code: i32) -> &'static [&'static str] {
    match code {
        request::UNREGISTER_CLIENT => &["consumerGroup", "producerGroup"],
        request::GET_CONSUMER_LIST_BY_GROUP | request::GET_CONSUMER_CONNECTION_LIST | request::GET_CONSUME_STATS => {
            &["consumerGroup"]
        }
        request::INVOKE_BROKER_TO_RESET_OFFSET => &["group"],
        _ => &[],
    }
}

/// The refusal of a request with an invalid group: INVALID_PARAMETER,
/// naming where the group was and why it is refused.
pub fn refuse(cmd: &RemotingCommand, place: &str, why: String) -> Option<RemotingCommand> {
    error(cmd, response::INVALID_PARAMETER, format!("{place}: {why}"))
}

/// Checks the groups named in `cmd`'s header: `Some(refusal)` if one is
/// invalid. Absent keys are the handlers' business (most require them).
pub fn check_header(cmd: &RemotingCommand) -> Option<Option<RemotingCommand>> {
    for key in header_keys(cmd.code) {
        if let Some(group) = cmd.ext_str(key) {
            if let Err(why) = metadata::validate_group(group) {
                return Some(refuse(cmd, &format!("header {key}"), why));
            }
        }
    }
    None
}

/// Checks every group a heartbeat body names (producers' and consumers').
pub fn check_heartbeat(cmd: &RemotingCommand, body: &Value) -> Option<Option<RemotingCommand>> {
    for set in ["producerDataSet", "consumerDataSet"] {
        for entry in body.get(set).and_then(Value::as_array).into_iter().flatten() {
            let Some(group) = entry.get("groupName").and_then(Value::as_str) else {
                continue;
            };
            if let Err(why) = metadata::validate_group(group) {
                return Some(refuse(cmd, &format!("heartbeat {set}"), why));
            }
        }
    }
    None
}

/// The group a retry (`%RETRY%<group>`) or dead-letter (`%DLQ%<group>`)
/// topic belongs to; None for other topics.
pub fn group_of_topic(topic: &str) -> Option<&str> {
    topic
        .strip_prefix(RETRY_GROUP_TOPIC_PREFIX)
        .or_else(|| topic.strip_prefix(DLQ_GROUP_TOPIC_PREFIX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::RemotingCommand;

    fn with(code: i32, fields: &[(&str, &str)]) -> RemotingCommand {
        let mut cmd = RemotingCommand::new_request(code);
        for (k, v) in fields {
            cmd.ext_fields.insert(*k, *v);
        }
        cmd
    }

    fn remark(r: Option<Option<RemotingCommand>>) -> String {
        let r = r.flatten().expect("a refusal");
        assert_eq!(r.code, response::INVALID_PARAMETER);
        r.remark.unwrap_or_default()
    }

    #[test]
    fn header_groups_are_checked_per_code() {
        let ok = with(request::GET_CONSUME_STATS, &[("consumerGroup", "cg_1-%|x")]);
        assert!(check_header(&ok).is_none());
        let bad = with(request::GET_CONSUME_STATS, &[("consumerGroup", "c g")]);
        let m = remark(check_header(&bad));
        assert!(m.contains("\"c g\"") && m.contains("^[%|a-zA-Z0-9_-]+$"), "{m}");
        let bad = with(request::UNREGISTER_CLIENT, &[("producerGroup", "p/../g")]);
        assert!(remark(check_header(&bad)).contains("producerGroup"));
        let long = "g".repeat(121);
        let bad = with(request::INVOKE_BROKER_TO_RESET_OFFSET, &[("group", long.as_str())]);
        assert!(remark(check_header(&bad)).contains(&long));
        // Codes without a group header are not looked at.
        let other = with(request::GET_MAX_OFFSET, &[("consumerGroup", "c g")]);
        assert!(check_header(&other).is_none());
    }

    #[test]
    fn heartbeat_groups_of_both_sets_are_checked() {
        let cmd = RemotingCommand::new_request(request::HEART_BEAT);
        let ok = serde_json::json!({"clientID": "c", "producerDataSet": [{"groupName": "pg"}],
            "consumerDataSet": [{"groupName": "cg"}]});
        assert!(check_heartbeat(&cmd, &ok).is_none());
        let bad = serde_json::json!({"clientID": "c", "producerDataSet": [{"groupName": "p g"}]});
        assert!(remark(check_heartbeat(&cmd, &bad)).contains("producerDataSet"));
        let bad = serde_json::json!({"clientID": "c", "consumerDataSet": [{"groupName": ""}]});
        assert!(remark(check_heartbeat(&cmd, &bad)).contains("consumerDataSet"));
    }

    #[test]
    fn retry_and_dlq_topics_name_their_group() {
        assert_eq!(group_of_topic("%RETRY%cg"), Some("cg"));
        assert_eq!(group_of_topic("%DLQ%cg"), Some("cg"));
        assert_eq!(group_of_topic("%RETRY%"), Some(""));
        assert_eq!(group_of_topic("Orders"), None);
    }
}
