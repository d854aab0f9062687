//! GET_CONSUMER_CONNECTION_LIST / GET_PRODUCER_CONNECTION_LIST bodies
//! (json.md §7).
//!
//! ```json
//! {"connectionSet":[{"clientAddr":"192.168.1.20:53422","clientId":"192.168.1.20@12345#1234567890","language":"JAVA","version":479}],"consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","consumeType":"CONSUME_PASSIVELY","messageModel":"CLUSTERING","subscriptionTable":{"TopicTest":{..SubscriptionData..}}}
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::heartbeat::{ConsumeFromWhere, ConsumeType, MessageModel, SubscriptionData};
use super::{loose, JsonBody};

/// One client connection as seen by the broker.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Connection {
    /// Remote `ip:port` of the channel.
    #[serde(deserialize_with = "loose::de")]
    pub client_addr: String,
    #[serde(deserialize_with = "loose::de")]
    pub client_id: String,
    /// `LanguageCode` name from the request header (`JAVA`, `CPP`, ...).
    #[serde(deserialize_with = "loose::de")]
    pub language: String,
    /// The client's request `version`.
    #[serde(deserialize_with = "loose::de")]
    pub version: i32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ConsumerConnection {
    #[serde(deserialize_with = "loose::or_default")]
    pub connection_set: Vec<Connection>,
    #[serde(deserialize_with = "loose::lenient", skip_serializing_if = "Option::is_none")]
    pub consume_from_where: Option<ConsumeFromWhere>,
    #[serde(deserialize_with = "loose::lenient", skip_serializing_if = "Option::is_none")]
    pub consume_type: Option<ConsumeType>,
    #[serde(deserialize_with = "loose::lenient", skip_serializing_if = "Option::is_none")]
    pub message_model: Option<MessageModel>,
    /// topic → subscription.
    #[serde(deserialize_with = "loose::or_default")]
    pub subscription_table: BTreeMap<String, SubscriptionData>,
}

impl JsonBody for ConsumerConnection {
    const NAME: &'static str = "ConsumerConnection";
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ProducerConnection {
    #[serde(deserialize_with = "loose::or_default")]
    pub connection_set: Vec<Connection>,
}

impl JsonBody for ProducerConnection {
    const NAME: &'static str = "ProducerConnection";
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"{"connectionSet":[{"clientAddr":"192.168.1.20:53422","clientId":"192.168.1.20@12345#1234567890","language":"JAVA","version":479}],"consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","consumeType":"CONSUME_PASSIVELY","messageModel":"CLUSTERING","subscriptionTable":{"TopicTest":{"classFilterMode":false,"codeSet":[2598919,2598920],"expressionType":"TAG","subString":"TagA || TagB","subVersion":1700000000000,"tagsSet":["TagA","TagB"],"topic":"TopicTest"}}}"#;

    #[test]
    fn json_md_example_round_trips() {
        let cc = ConsumerConnection::decode(EXAMPLE.as_bytes()).unwrap();
        assert_eq!(cc.connection_set[0].version, 479);
        assert_eq!(cc.subscription_table["TopicTest"].tags_set, ["TagA", "TagB"]);
        assert_eq!(String::from_utf8(cc.encode()).unwrap(), EXAMPLE);
        let pc = ProducerConnection {
            connection_set: cc.connection_set.clone(),
        };
        let text = String::from_utf8(pc.encode()).unwrap();
        assert_eq!(ProducerConnection::decode(text.as_bytes()).unwrap(), pc);
    }
}
