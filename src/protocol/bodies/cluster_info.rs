//! `ClusterInfo` (GET_BROKER_CLUSTER_INFO response, json.md §3).
//!
//! The Java name server always writes it with plain fastjson, so broker ids
//! are unquoted:
//!
//! ```json
//! {"brokerAddrTable":{"broker-a":{"brokerAddrs":{0:"192.168.1.10:10911",1:"192.168.1.11:10911"},"brokerName":"broker-a","cluster":"DefaultCluster","enableActingMaster":false}},"clusterAddrTable":{"DefaultCluster":["broker-a"]}}
//! ```

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::route::BrokerData;
use super::{loose, JsonBody};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ClusterInfo {
    /// brokerName → its addresses.
    #[serde(deserialize_with = "loose::or_default")]
    pub broker_addr_table: BTreeMap<String, BrokerData>,
    /// clusterName → brokerNames.
    #[serde(deserialize_with = "loose::de")]
    pub cluster_addr_table: BTreeMap<String, BTreeSet<String>>,
}

impl JsonBody for ClusterInfo {
    const NAME: &'static str = "ClusterInfo";

    fn raw_keys(path: &[&str]) -> bool {
        matches!(path, ["brokerAddrTable", _, "brokerAddrs"])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"{"brokerAddrTable":{"broker-a":{"brokerAddrs":{0:"192.168.1.10:10911",1:"192.168.1.11:10911"},"brokerName":"broker-a","cluster":"DefaultCluster","enableActingMaster":false}},"clusterAddrTable":{"DefaultCluster":["broker-a"]}}"#;

    #[test]
    fn json_md_example_round_trips() {
        let info = ClusterInfo::decode(EXAMPLE.as_bytes()).unwrap();
        assert_eq!(info.broker_addr_table["broker-a"].broker_addrs.len(), 2);
        assert_eq!(info.encode(), EXAMPLE.as_bytes());
        // Quoted ids are accepted too.
        let quoted = EXAMPLE.replace("{0:", "{\"0\":").replace(",1:", ",\"1\":");
        assert_eq!(ClusterInfo::decode(quoted.as_bytes()).unwrap(), info);
    }

    #[test]
    fn a_broker_named_like_a_field_keeps_quoted_keys() {
        let mut info = ClusterInfo::default();
        info.broker_addr_table.insert(
            "brokerAddrs".into(),
            BrokerData {
                broker_addrs: [(0, "a:1".to_owned())].into(),
                broker_name: "brokerAddrs".into(),
                ..BrokerData::default()
            },
        );
        let text = String::from_utf8(info.encode()).unwrap();
        assert!(
            text.starts_with(r#"{"brokerAddrTable":{"brokerAddrs":{"brokerAddrs":{0:"a:1"}"#),
            "{text}"
        );
    }
}
