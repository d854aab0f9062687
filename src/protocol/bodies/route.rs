//! `TopicRouteData` (GET_ROUTEINFO_BY_TOPIC response, REGISTER_TOPIC_IN_NAMESRV
//! request) with its `QueueData` and `BrokerData` (json.md §2).
//!
//! Two dialects, chosen by the name server from the request
//! ([`RouteDialect::for_request`]):
//!
//! ```text
//! Fastjson (version < 401):
//! {"brokerDatas":[{"brokerAddrs":{0:"192.168.1.10:10911",1:"192.168.1.11:10911"},"brokerName":"broker-a","cluster":"DefaultCluster","enableActingMaster":false}],"filterServerTable":{},"queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":4}]}
//! BrowserCompatible (version >= 401 or acceptStandardJsonOnly=true):
//! {"brokerDatas":[{"brokerAddrs":{"0":"192.168.1.10:10911","1":"192.168.1.11:10911"},...}],...}
//! ```
//!
//! Both are compact: Go's route parser splits `brokerAddrs` on `,` and `:`.
//! The QueueData flag is written only as `topicSysFlag` (as Java 5.x does,
//! byte-exact with json.md); the 4.4 spelling `topicSynFlag` is ignored on
//! input.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::fastjson_writer::WriteOptions;
use super::message_queue::MessageQueue;
use super::topic_config::perm;
use super::{encode_with, loose, JsonBody};
use crate::protocol::version;

/// brokerId of the master in `brokerAddrs` (`MixAll.MASTER_ID`).
pub const MASTER_ID: i64 = 0;

/// Queues of one topic on one brokerName.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct QueueData {
    #[serde(deserialize_with = "loose::de")]
    pub broker_name: String,
    /// [`perm`] bits.
    #[serde(deserialize_with = "loose::de")]
    pub perm: i32,
    #[serde(deserialize_with = "loose::de")]
    pub read_queue_nums: i32,
    #[serde(deserialize_with = "loose::de")]
    pub topic_sys_flag: i32,
    #[serde(deserialize_with = "loose::de")]
    pub write_queue_nums: i32,
}

/// The addresses of one brokerName (master id 0 plus slaves).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct BrokerData {
    /// brokerId → `ip:port`; [`MASTER_ID`] is the master.
    #[serde(deserialize_with = "loose::de")]
    pub broker_addrs: BTreeMap<i64, String>,
    #[serde(deserialize_with = "loose::de")]
    pub broker_name: String,
    #[serde(deserialize_with = "loose::de")]
    pub cluster: String,
    /// 5.x slave-acting-master mode; always written (false by default).
    #[serde(deserialize_with = "loose::de")]
    pub enable_acting_master: bool,
    #[serde(deserialize_with = "loose::de", skip_serializing_if = "Option::is_none")]
    pub zone_name: Option<String>,
}

impl BrokerData {
    pub fn master_addr(&self) -> Option<&str> {
        self.broker_addrs.get(&MASTER_ID).map(String::as_str)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TopicRouteData {
    #[serde(deserialize_with = "loose::or_default")]
    pub broker_datas: Vec<BrokerData>,
    /// brokerAddr → filter server addresses; Java always sends `{}`.
    #[serde(deserialize_with = "loose::de")]
    pub filter_server_table: BTreeMap<String, Vec<String>>,
    /// `"brokerA:4;brokerB:4"` from KV namespace `ORDER_TOPIC_CONFIG`.
    #[serde(deserialize_with = "loose::de", skip_serializing_if = "Option::is_none")]
    pub order_topic_conf: Option<String>,
    #[serde(deserialize_with = "loose::or_default")]
    pub queue_datas: Vec<QueueData>,
    /// Static topics only (kept opaque).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic_queue_mapping_by_broker: Option<BTreeMap<String, Value>>,
}

/// Which JSON the name server writes route data in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteDialect {
    /// Plain fastjson: `brokerAddrs` keys unquoted (`{0:"ip:port"}`).
    Fastjson,
    /// fastjson `BrowserCompatible`: keys quoted, non-ASCII escaped.
    BrowserCompatible,
}

impl RouteDialect {
    /// `ClientRequestProcessor.getRouteInfoByTopic`: clients at or above
    /// `V4_9_4` (401), or asking with `acceptStandardJsonOnly=true`, get
    /// standard JSON.
    pub fn for_request(request_version: i32, accept_standard_json_only: bool) -> Self {
        if request_version >= version::V4_9_4 || accept_standard_json_only {
            Self::BrowserCompatible
        } else {
            Self::Fastjson
        }
    }
}

fn broker_addrs_path(path: &[&str]) -> bool {
    path == ["brokerDatas", "[]", "brokerAddrs"]
}

impl JsonBody for TopicRouteData {
    const NAME: &'static str = "TopicRouteData";

    fn raw_keys(path: &[&str]) -> bool {
        broker_addrs_path(path)
    }
}

/// Clients never get more than this many queues from one QueueData here
/// (guards the helpers below against absurd counts in a received route).
pub const MAX_QUEUES_PER_BROKER: i32 = 65_536;

impl TopicRouteData {
    /// Route data in the given dialect.
    pub fn encode_dialect(&self, dialect: RouteDialect) -> Vec<u8> {
        match dialect {
            RouteDialect::Fastjson => self.encode(),
            RouteDialect::BrowserCompatible => {
                let opts = WriteOptions {
                    escape_non_ascii: true,
                    raw_keys: &|_| false,
                };
                encode_with(self, Self::NAME, opts)
            }
        }
    }

    /// The queues a Java producer sends to (`MQClientInstance.
    /// topicRouteData2TopicPublishInfo`, without `orderTopicConf`): for each
    /// writable QueueData, sorted by brokerName, whose broker has a master,
    /// queues `0..writeQueueNums`.
    pub fn producer_queues(&self, topic: &str) -> Vec<MessageQueue> {
        let mut qds: Vec<&QueueData> = self.queue_datas.iter().collect();
        qds.sort_by(|a, b| a.broker_name.cmp(&b.broker_name));
        qds.into_iter()
            .filter(|qd| perm::is_writeable(qd.perm))
            .filter(|qd| {
                self.broker_datas
                    .iter()
                    .find(|bd| bd.broker_name == qd.broker_name)
                    .is_some_and(|bd| bd.master_addr().is_some())
            })
            .flat_map(|qd| {
                (0..qd.write_queue_nums.clamp(0, MAX_QUEUES_PER_BROKER))
                    .map(move |i| MessageQueue::new(topic, &qd.broker_name, i))
            })
            .collect()
    }

    /// The queues a Java consumer balances over: every readable QueueData,
    /// queues `0..readQueueNums` (sorted as clients sort them).
    pub fn consumer_queues(&self, topic: &str) -> Vec<MessageQueue> {
        let mut out: Vec<MessageQueue> = self
            .queue_datas
            .iter()
            .filter(|qd| perm::is_readable(qd.perm))
            .flat_map(|qd| {
                (0..qd.read_queue_nums.clamp(0, MAX_QUEUES_PER_BROKER))
                    .map(move |i| MessageQueue::new(topic, &qd.broker_name, i))
            })
            .collect();
        out.sort();
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const OLD: &str = r#"{"brokerDatas":[{"brokerAddrs":{0:"192.168.1.10:10911",1:"192.168.1.11:10911"},"brokerName":"broker-a","cluster":"DefaultCluster","enableActingMaster":false}],"filterServerTable":{},"queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":4}]}"#;
    pub(crate) const NEW: &str = r#"{"brokerDatas":[{"brokerAddrs":{"0":"192.168.1.10:10911","1":"192.168.1.11:10911"},"brokerName":"broker-a","cluster":"DefaultCluster","enableActingMaster":false}],"filterServerTable":{},"queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":4}]}"#;

    fn example() -> TopicRouteData {
        TopicRouteData {
            broker_datas: vec![BrokerData {
                broker_addrs: [
                    (0, "192.168.1.10:10911".to_owned()),
                    (1, "192.168.1.11:10911".to_owned()),
                ]
                .into(),
                broker_name: "broker-a".into(),
                cluster: "DefaultCluster".into(),
                ..BrokerData::default()
            }],
            queue_datas: vec![QueueData {
                broker_name: "broker-a".into(),
                perm: 6,
                read_queue_nums: 4,
                topic_sys_flag: 0,
                write_queue_nums: 4,
            }],
            ..TopicRouteData::default()
        }
    }

    #[test]
    fn both_json_md_dialects_byte_for_byte() {
        let route = example();
        assert_eq!(
            String::from_utf8(route.encode_dialect(RouteDialect::Fastjson)).unwrap(),
            OLD
        );
        assert_eq!(
            String::from_utf8(route.encode_dialect(RouteDialect::BrowserCompatible)).unwrap(),
            NEW
        );
        assert_eq!(TopicRouteData::decode(OLD.as_bytes()).unwrap(), route);
        assert_eq!(TopicRouteData::decode(NEW.as_bytes()).unwrap(), route);
    }

    #[test]
    fn dialect_selection() {
        assert_eq!(RouteDialect::for_request(400, false), RouteDialect::Fastjson);
        assert_eq!(RouteDialect::for_request(317, true), RouteDialect::BrowserCompatible);
        assert_eq!(RouteDialect::for_request(401, false), RouteDialect::BrowserCompatible);
        assert_eq!(RouteDialect::for_request(121, false), RouteDialect::Fastjson);
    }

    #[test]
    fn browser_compatible_escapes_non_ascii() {
        let mut route = example();
        route.order_topic_conf = Some("bröker:4".into());
        let new = String::from_utf8(route.encode_dialect(RouteDialect::BrowserCompatible)).unwrap();
        assert!(new.contains(r#""orderTopicConf":"br\u00F6ker:4""#), "{new}");
    }

    #[test]
    fn legacy_and_loose_input() {
        let text = r#"{"brokerDatas":[{"brokerAddrs":{"0":"a:1"},"brokerName":"b","cluster":"c"}],
            "queueDatas":[{"brokerName":"b","perm":"6","readQueueNums":2,"writeQueueNums":2,"topicSynFlag":0}],
            "filterServerTable":null,"extra":[1]}"#;
        let route = TopicRouteData::decode(text.as_bytes()).unwrap();
        assert_eq!(route.queue_datas[0].perm, 6);
        assert!(!route.broker_datas[0].enable_acting_master);
    }

    #[test]
    fn client_queue_selection() {
        let mut route = example();
        route.queue_datas.push(QueueData {
            broker_name: "broker-b".into(),
            perm: 6,
            read_queue_nums: 1,
            write_queue_nums: 1,
            topic_sys_flag: 0,
        });
        // broker-b has only a slave: readable, but not writable for producers.
        route.broker_datas.push(BrokerData {
            broker_addrs: [(1, "10.0.0.2:10911".to_owned())].into(),
            broker_name: "broker-b".into(),
            ..BrokerData::default()
        });
        let writable = route.producer_queues("T");
        assert_eq!(writable.len(), 4);
        assert!(writable.iter().all(|mq| mq.broker_name == "broker-a"));
        assert_eq!(route.consumer_queues("T").len(), 5);
        route.queue_datas[0].perm = perm::READ;
        assert!(route.producer_queues("T").is_empty());
    }
}
