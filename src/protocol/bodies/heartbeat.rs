//! `HeartbeatData` (HEART_BEAT body, client → broker; json.md §4).
//!
//! Java 5.x client:
//!
//! ```json
//! {"clientID":"192.168.1.20@12345#1234567890","consumerDataSet":[{"consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","consumeType":"CONSUME_PASSIVELY","groupName":"cg1","messageModel":"CLUSTERING","subscriptionDataSet":[{"classFilterMode":false,"codeSet":[2598919,2598920],"expressionType":"TAG","subString":"TagA || TagB","subVersion":1700000000000,"tagsSet":["TagA","TagB"],"topic":"TopicTest"}],"unitMode":false}],"heartbeatFingerprint":0,"producerDataSet":[{"groupName":"CLIENT_INNER_PRODUCER"}],"withoutSub":false}
//! ```
//!
//! Variations accepted: ali-ons sends no `heartbeatFingerprint`/`withoutSub`
//! and may omit `expressionType` (⇒ `TAG`); the C++ client sends enums as
//! ordinals (`"messageModel":1`) and numbers as strings; Go sends `null`
//! for empty lists. An unknown enum name reads as `None` (fastjson: null).

use serde::{Deserialize, Deserializer, Serialize};

use super::loose::{self, java_enum};
use super::JsonBody;

java_enum! {
    /// How the consumer gets messages.
    pub enum ConsumeType {
        /// Pull / lite pull consumers.
        Actively = "CONSUME_ACTIVELY",
        /// Push consumers.
        Passively = "CONSUME_PASSIVELY",
        /// 5.x POP consumers.
        Pop = "CONSUME_POP",
    }
}

java_enum! {
    /// Clustering (queues shared by the group) or broadcasting.
    pub enum MessageModel {
        Broadcasting = "BROADCASTING",
        Clustering = "CLUSTERING",
    }
}

java_enum! {
    /// Where a new group starts; ordinals as in Java and C++.
    pub enum ConsumeFromWhere {
        LastOffset = "CONSUME_FROM_LAST_OFFSET",
        LastOffsetAndFromMinWhenBootFirst = "CONSUME_FROM_LAST_OFFSET_AND_FROM_MIN_WHEN_BOOT_FIRST",
        MinOffset = "CONSUME_FROM_MIN_OFFSET",
        MaxOffset = "CONSUME_FROM_MAX_OFFSET",
        FirstOffset = "CONSUME_FROM_FIRST_OFFSET",
        Timestamp = "CONSUME_FROM_TIMESTAMP",
    }
}

/// `ExpressionType.TAG`, the default subscription type.
pub const EXPRESSION_TYPE_TAG: &str = "TAG";
/// `ExpressionType.SQL92`.
pub const EXPRESSION_TYPE_SQL92: &str = "SQL92";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HeartbeatData {
    /// `clientIP@instanceName[@unitName]` (note the capital `ID`).
    #[serde(rename = "clientID", deserialize_with = "loose::de")]
    pub client_id: String,
    #[serde(rename = "consumerDataSet", deserialize_with = "loose::or_default")]
    pub consumer_data_set: Vec<ConsumerData>,
    /// 5.x heartbeat v2; 0 = full (v1) heartbeat.
    #[serde(rename = "heartbeatFingerprint", deserialize_with = "loose::de")]
    pub heartbeat_fingerprint: i32,
    #[serde(rename = "producerDataSet", deserialize_with = "loose::or_default")]
    pub producer_data_set: Vec<ProducerData>,
    /// v2: subscriptions omitted because unchanged.
    #[serde(rename = "withoutSub", deserialize_with = "loose::de")]
    pub without_sub: bool,
}

impl JsonBody for HeartbeatData {
    const NAME: &'static str = "HeartbeatData";
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ProducerData {
    #[serde(deserialize_with = "loose::de")]
    pub group_name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ConsumerData {
    #[serde(deserialize_with = "loose::lenient", skip_serializing_if = "Option::is_none")]
    pub consume_from_where: Option<ConsumeFromWhere>,
    #[serde(deserialize_with = "loose::lenient", skip_serializing_if = "Option::is_none")]
    pub consume_type: Option<ConsumeType>,
    #[serde(deserialize_with = "loose::de")]
    pub group_name: String,
    #[serde(deserialize_with = "loose::lenient", skip_serializing_if = "Option::is_none")]
    pub message_model: Option<MessageModel>,
    #[serde(deserialize_with = "loose::or_default")]
    pub subscription_data_set: Vec<SubscriptionData>,
    #[serde(deserialize_with = "loose::de")]
    pub unit_mode: bool,
}

/// One subscription of a consumer group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SubscriptionData {
    /// Obsolete class filter flag.
    #[serde(deserialize_with = "loose::de")]
    pub class_filter_mode: bool,
    /// Hash codes of `tags_set` (message.md §8).
    #[serde(deserialize_with = "loose::de")]
    pub code_set: Vec<i32>,
    /// `TAG` or `SQL92`; missing, `null` or empty reads as `TAG`.
    #[serde(deserialize_with = "expression_type")]
    pub expression_type: String,
    /// `*`, `TagA || TagB`, or an SQL92 expression.
    #[serde(deserialize_with = "loose::de")]
    pub sub_string: String,
    /// Version (ms timestamp) compared with PULL's `subVersion`.
    #[serde(deserialize_with = "loose::de")]
    pub sub_version: i64,
    #[serde(deserialize_with = "loose::de")]
    pub tags_set: Vec<String>,
    #[serde(deserialize_with = "loose::de")]
    pub topic: String,
}

impl Default for SubscriptionData {
    fn default() -> Self {
        Self {
            class_filter_mode: false,
            code_set: Vec::new(),
            expression_type: EXPRESSION_TYPE_TAG.to_owned(),
            sub_string: String::new(),
            sub_version: 0,
            tags_set: Vec::new(),
            topic: String::new(),
        }
    }
}

fn expression_type<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let value: String = loose::de(d)?;
    Ok(if value.trim().is_empty() {
        EXPRESSION_TYPE_TAG.to_owned()
    } else {
        value
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const JAVA: &str = r#"{"clientID":"192.168.1.20@12345#1234567890","consumerDataSet":[{"consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","consumeType":"CONSUME_PASSIVELY","groupName":"cg1","messageModel":"CLUSTERING","subscriptionDataSet":[{"classFilterMode":false,"codeSet":[2598919,2598920],"expressionType":"TAG","subString":"TagA || TagB","subVersion":1700000000000,"tagsSet":["TagA","TagB"],"topic":"TopicTest"},{"classFilterMode":false,"codeSet":[],"expressionType":"TAG","subString":"*","subVersion":1700000000000,"tagsSet":[],"topic":"%RETRY%cg1"}],"unitMode":false}],"heartbeatFingerprint":0,"producerDataSet":[{"groupName":"CLIENT_INNER_PRODUCER"}],"withoutSub":false}"#;

    #[test]
    fn java_example_round_trips_byte_for_byte() {
        let hb = HeartbeatData::decode(JAVA.as_bytes()).unwrap();
        assert_eq!(hb.client_id, "192.168.1.20@12345#1234567890");
        let cd = &hb.consumer_data_set[0];
        assert_eq!(cd.consume_type, Some(ConsumeType::Passively));
        assert_eq!(cd.message_model, Some(MessageModel::Clustering));
        assert_eq!(cd.consume_from_where, Some(ConsumeFromWhere::LastOffset));
        assert_eq!(cd.subscription_data_set[0].code_set, [2598919, 2598920]);
        assert_eq!(cd.subscription_data_set[1].topic, "%RETRY%cg1");
        assert_eq!(String::from_utf8(hb.encode()).unwrap(), JAVA);
    }

    #[test]
    fn cpp_ordinals_and_string_numbers() {
        let text = r#"{"clientID":"10.0.0.1@1","consumerDataSet":[{"consumeFromWhere":4,"consumeType":1,"groupName":"g","messageModel":1,
            "subscriptionDataSet":[{"codeSet":[],"subString":"*","subVersion":"1700000000000","tagsSet":[],"topic":"T"}]}],
            "producerDataSet":[]}"#;
        let hb = HeartbeatData::decode(text.as_bytes()).unwrap();
        let cd = &hb.consumer_data_set[0];
        assert_eq!(cd.consume_from_where, Some(ConsumeFromWhere::FirstOffset));
        assert_eq!(cd.consume_type, Some(ConsumeType::Passively));
        assert_eq!(cd.message_model, Some(MessageModel::Clustering));
        assert_eq!(cd.subscription_data_set[0].sub_version, 1_700_000_000_000);
        assert_eq!(cd.subscription_data_set[0].expression_type, "TAG");
        assert_eq!(hb.heartbeat_fingerprint, 0);
    }

    #[test]
    fn ali_ons_and_go_variations() {
        let text = r#"{"clientID":"c","producerDataSet":null,"consumerDataSet":[{"groupName":"g","consumeType":"CONSUME_PASSIVELY",
            "messageModel":"BROADCASTING","consumeFromWhere":"SOMETHING_NEW","subscriptionDataSet":[{"classFilterMode":false,
            "topic":"T","subString":"a||b","tagsSet":["a","b"],"codeSet":[97,98],"subVersion":5,"expressionType":null}]}]}"#;
        let hb = HeartbeatData::decode(text.as_bytes()).unwrap();
        assert!(hb.producer_data_set.is_empty());
        let cd = &hb.consumer_data_set[0];
        assert_eq!(cd.message_model, Some(MessageModel::Broadcasting));
        assert_eq!(cd.consume_from_where, None);
        assert_eq!(cd.subscription_data_set[0].expression_type, EXPRESSION_TYPE_TAG);
    }

    #[test]
    fn enum_names_and_ordinals() {
        for (i, v) in ConsumeFromWhere::ALL.iter().enumerate() {
            assert_eq!(ConsumeFromWhere::from_ordinal(i as i64), Some(*v));
            assert_eq!(ConsumeFromWhere::from_name(v.name()), Some(*v));
        }
        assert_eq!(ConsumeType::from_ordinal(3), None);
        assert_eq!(MessageModel::from_ordinal(-1), None);
    }
}
