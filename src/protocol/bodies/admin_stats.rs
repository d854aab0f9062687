//! Admin bodies keyed by `MessageQueue` (json.md §6), written in fastjson's
//! object-key form because Java tools on fastjson 1.2.51 reject the
//! stringified form.
//!
//! ```json
//! {"consumeTps":1.5,"offsetTable":{{"brokerName":"broker-a","queueId":0,"topic":"TopicTest"}:{"brokerOffset":100,"consumerOffset":90,"lastTimestamp":1700000000123,"pullOffset":95}}}
//! {"offsetTable":{{"brokerName":"broker-a","queueId":0,"topic":"TopicTest"}:{"lastUpdateTimestamp":1700000000123,"maxOffset":100,"minOffset":0}},"topicPutTps":0.0}
//! {"offsetTable":{{"brokerName":"broker-a","queueId":0,"topic":"TopicTest"}:42}}
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::message_queue::MqMap;
use super::{loose, JsonBody};

/// GET_CONSUME_STATS response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ConsumeStats {
    #[serde(deserialize_with = "loose::de")]
    pub consume_tps: f64,
    #[serde(deserialize_with = "loose::or_default")]
    pub offset_table: MqMap<OffsetWrapper>,
}

impl JsonBody for ConsumeStats {
    const NAME: &'static str = "ConsumeStats";

    fn raw_keys(path: &[&str]) -> bool {
        path == ["offsetTable"]
    }
}

/// Progress of one group on one queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct OffsetWrapper {
    /// Queue max offset.
    #[serde(deserialize_with = "loose::de")]
    pub broker_offset: i64,
    /// Committed offset (0 if none).
    #[serde(deserialize_with = "loose::de")]
    pub consumer_offset: i64,
    /// Store time of the message at `consumer_offset - 1` (0 if unknown).
    #[serde(deserialize_with = "loose::de")]
    pub last_timestamp: i64,
    /// max(consumer offset, last pulled next offset).
    #[serde(deserialize_with = "loose::de")]
    pub pull_offset: i64,
}

/// GET_TOPIC_STATS_INFO response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TopicStatsTable {
    #[serde(deserialize_with = "loose::or_default")]
    pub offset_table: MqMap<TopicOffset>,
    #[serde(deserialize_with = "loose::de")]
    pub topic_put_tps: f64,
}

impl JsonBody for TopicStatsTable {
    const NAME: &'static str = "TopicStatsTable";

    fn raw_keys(path: &[&str]) -> bool {
        path == ["offsetTable"]
    }
}

/// Offsets of one queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TopicOffset {
    #[serde(deserialize_with = "loose::de")]
    pub last_update_timestamp: i64,
    #[serde(deserialize_with = "loose::de")]
    pub max_offset: i64,
    #[serde(deserialize_with = "loose::de")]
    pub min_offset: i64,
}

/// INVOKE_BROKER_TO_RESET_OFFSET response / RESET_CONSUMER_CLIENT_OFFSET body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ResetOffsetBody {
    #[serde(deserialize_with = "loose::or_default")]
    pub offset_table: MqMap<i64>,
}

impl JsonBody for ResetOffsetBody {
    const NAME: &'static str = "ResetOffsetBody";

    fn raw_keys(path: &[&str]) -> bool {
        path == ["offsetTable"]
    }
}

/// INVOKE_BROKER_TO_GET_CONSUMER_STATUS response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct GetConsumerStatusBody {
    /// clientId → its offsets.
    #[serde(deserialize_with = "loose::or_default")]
    pub consumer_table: BTreeMap<String, MqMap<i64>>,
    #[serde(deserialize_with = "loose::or_default")]
    pub message_queue_table: MqMap<i64>,
}

impl JsonBody for GetConsumerStatusBody {
    const NAME: &'static str = "GetConsumerStatusBody";

    fn raw_keys(path: &[&str]) -> bool {
        matches!(path, ["messageQueueTable"] | ["consumerTable", _])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::bodies::MessageQueue;

    const CONSUME_STATS: &str = r#"{"consumeTps":1.5,"offsetTable":{{"brokerName":"broker-a","queueId":0,"topic":"TopicTest"}:{"brokerOffset":100,"consumerOffset":90,"lastTimestamp":1700000000123,"pullOffset":95}}}"#;
    const TOPIC_STATS: &str = r#"{"offsetTable":{{"brokerName":"broker-a","queueId":0,"topic":"TopicTest"}:{"lastUpdateTimestamp":1700000000123,"maxOffset":100,"minOffset":0}},"topicPutTps":0.0}"#;
    const RESET: &str = r#"{"offsetTable":{{"brokerName":"broker-a","queueId":0,"topic":"TopicTest"}:42}}"#;
    const BROWSER_FORM: &str = r#"{"consumeTps":1.5,"offsetTable":{"{\"brokerName\":\"broker-a\",\"queueId\":0,\"topic\":\"TopicTest\"}":{"brokerOffset":100,"consumerOffset":90,"lastTimestamp":1700000000123,"pullOffset":95}}}"#;

    fn mq() -> MessageQueue {
        MessageQueue::new("TopicTest", "broker-a", 0)
    }

    #[test]
    fn consume_stats_both_forms() {
        let stats = ConsumeStats::decode(CONSUME_STATS.as_bytes()).unwrap();
        assert_eq!(stats.offset_table.0[&mq()].pull_offset, 95);
        assert_eq!(String::from_utf8(stats.encode()).unwrap(), CONSUME_STATS);
        assert_eq!(String::from_utf8(stats.encode_standard()).unwrap(), BROWSER_FORM);
        assert_eq!(ConsumeStats::decode(BROWSER_FORM.as_bytes()).unwrap(), stats);
    }

    #[test]
    fn topic_stats_and_reset_offset() {
        let t = TopicStatsTable::decode(TOPIC_STATS.as_bytes()).unwrap();
        assert_eq!(t.offset_table.0[&mq()].max_offset, 100);
        assert_eq!(String::from_utf8(t.encode()).unwrap(), TOPIC_STATS);
        let r = ResetOffsetBody::decode(RESET.as_bytes()).unwrap();
        assert_eq!(r.offset_table.0[&mq()], 42);
        assert_eq!(String::from_utf8(r.encode()).unwrap(), RESET);
    }

    #[test]
    fn consumer_status_nested_maps() {
        let mut body = GetConsumerStatusBody::default();
        body.message_queue_table.0.insert(mq(), 7);
        body.consumer_table
            .insert("c1".into(), [(mq(), 5)].into_iter().collect());
        let text = String::from_utf8(body.encode()).unwrap();
        let key = r#"{"brokerName":"broker-a","queueId":0,"topic":"TopicTest"}"#;
        assert_eq!(
            text,
            format!(r#"{{"consumerTable":{{"c1":{{{key}:5}}}},"messageQueueTable":{{{key}:7}}}}"#)
        );
        assert_eq!(GetConsumerStatusBody::decode(text.as_bytes()).unwrap(), body);
    }
}
