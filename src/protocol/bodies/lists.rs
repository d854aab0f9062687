//! Bodies that are one list of names (json.md §10).
//!
//! ```json
//! {"topicList":["TopicTest","TBW102"]}
//! {"brokerAddr":"192.168.1.10:10911","topicList":["DefaultCluster","broker-a"]}
//! {"groupList":["cg1"]}
//! {"consumerIdList":["192.168.1.20@12345#1234567890","192.168.1.21@23456#2234567890"]}
//! ```
//!
//! Java holds these in `HashSet`s (arbitrary order); ours keep the order
//! the producer of the body chose.

use serde::{Deserialize, Serialize};

use super::{loose, JsonBody};

/// `TopicList`: GET_ALL_TOPIC_LIST_FROM_NAMESERVER, GET_TOPICS_BY_CLUSTER,
/// GET_SYSTEM_TOPIC_LIST_FROM_NS (which also sets `brokerAddr`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TopicList {
    #[serde(deserialize_with = "loose::de", skip_serializing_if = "Option::is_none")]
    pub broker_addr: Option<String>,
    #[serde(deserialize_with = "loose::de")]
    pub topic_list: Vec<String>,
}

impl JsonBody for TopicList {
    const NAME: &'static str = "TopicList";
}

/// `GroupList`: QUERY_TOPIC_CONSUME_BY_WHO and friends.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct GroupList {
    #[serde(deserialize_with = "loose::de")]
    pub group_list: Vec<String>,
}

impl JsonBody for GroupList {
    const NAME: &'static str = "GroupList";
}

/// GET_CONSUMER_LIST_BY_GROUP response: every live clientId of the group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct GetConsumerListByGroupResponseBody {
    #[serde(deserialize_with = "loose::de")]
    pub consumer_id_list: Vec<String>,
}

impl JsonBody for GetConsumerListByGroupResponseBody {
    const NAME: &'static str = "GetConsumerListByGroupResponseBody";
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: JsonBody + PartialEq + std::fmt::Debug>(text: &str) -> T {
        let body = T::decode(text.as_bytes()).unwrap();
        assert_eq!(String::from_utf8(body.encode()).unwrap(), text);
        body
    }

    #[test]
    fn json_md_examples() {
        let t: TopicList = round_trip(r#"{"topicList":["TopicTest","TBW102"]}"#);
        assert_eq!(t.topic_list, ["TopicTest", "TBW102"]);
        let s: TopicList =
            round_trip(r#"{"brokerAddr":"192.168.1.10:10911","topicList":["DefaultCluster","broker-a"]}"#);
        assert_eq!(s.broker_addr.as_deref(), Some("192.168.1.10:10911"));
        let g: GroupList = round_trip(r#"{"groupList":["cg1"]}"#);
        assert_eq!(g.group_list, ["cg1"]);
        let c: GetConsumerListByGroupResponseBody =
            round_trip(r#"{"consumerIdList":["192.168.1.20@12345#1234567890","192.168.1.21@23456#2234567890"]}"#);
        assert_eq!(c.consumer_id_list.len(), 2);
    }

    #[test]
    fn go_null_list_is_empty() {
        let t = TopicList::decode(br#"{"topicList":null}"#).unwrap();
        assert!(t.topic_list.is_empty());
        assert_eq!(t.encode(), br#"{"topicList":[]}"#);
    }
}
