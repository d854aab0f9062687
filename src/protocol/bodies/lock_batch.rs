//! LOCK_BATCH_MQ / UNLOCK_BATCH_MQ bodies (json.md §5).
//!
//! ```json
//! {"clientId":"192.168.1.20@12345#1234567890","consumerGroup":"cg1","mqSet":[{"brokerName":"broker-a","queueId":0,"topic":"TopicTest"},{"brokerName":"broker-a","queueId":1,"topic":"TopicTest"}],"onlyThisBroker":false}
//! {"lockOKMQSet":[{"brokerName":"broker-a","queueId":0,"topic":"TopicTest"}]}
//! ```
//!
//! The sets are ordered (Java `compareTo` order) so output is deterministic;
//! duplicates in a request collapse, as in Java's `HashSet`.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::message_queue::MessageQueue;
use super::{loose, JsonBody};

/// `LockBatchRequestBody`; the unlock request has the same fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct LockBatchRequestBody {
    #[serde(deserialize_with = "loose::de")]
    pub client_id: String,
    #[serde(deserialize_with = "loose::de")]
    pub consumer_group: String,
    #[serde(deserialize_with = "loose::or_default")]
    pub mq_set: BTreeSet<MessageQueue>,
    /// 5.x: do not forward the lock to the other replicas.
    #[serde(deserialize_with = "loose::de")]
    pub only_this_broker: bool,
}

impl JsonBody for LockBatchRequestBody {
    const NAME: &'static str = "LockBatchRequestBody";
}

/// `UnlockBatchRequestBody` (same JSON as the lock request).
pub type UnlockBatchRequestBody = LockBatchRequestBody;

/// The queues actually locked for the requester.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LockBatchResponseBody {
    #[serde(rename = "lockOKMQSet", deserialize_with = "loose::or_default")]
    pub lock_ok_mq_set: BTreeSet<MessageQueue>,
}

impl JsonBody for LockBatchResponseBody {
    const NAME: &'static str = "LockBatchResponseBody";
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUEST: &str = r#"{"clientId":"192.168.1.20@12345#1234567890","consumerGroup":"cg1","mqSet":[{"brokerName":"broker-a","queueId":0,"topic":"TopicTest"},{"brokerName":"broker-a","queueId":1,"topic":"TopicTest"}],"onlyThisBroker":false}"#;
    const RESPONSE: &str = r#"{"lockOKMQSet":[{"brokerName":"broker-a","queueId":0,"topic":"TopicTest"}]}"#;

    #[test]
    fn json_md_examples_round_trip() {
        let req = LockBatchRequestBody::decode(REQUEST.as_bytes()).unwrap();
        assert_eq!(req.mq_set.len(), 2);
        assert_eq!(req.encode(), REQUEST.as_bytes());
        let rsp = LockBatchResponseBody::decode(RESPONSE.as_bytes()).unwrap();
        assert!(rsp
            .lock_ok_mq_set
            .contains(&MessageQueue::new("TopicTest", "broker-a", 0)));
        assert_eq!(rsp.encode(), RESPONSE.as_bytes());
    }

    #[test]
    fn cpp_style_request_without_only_this_broker() {
        let text = r#"{"consumerGroup":"cg1","clientId":"c","mqSet":[{"topic":"T","brokerName":"b","queueId":"3"},{"topic":"T","brokerName":"b","queueId":3}]}"#;
        let req: UnlockBatchRequestBody = LockBatchRequestBody::decode(text.as_bytes()).unwrap();
        assert_eq!(req.mq_set.len(), 1);
        assert!(!req.only_this_broker);
    }
}
