//! `KVTable`: a string map (json.md §10).
//!
//! ```json
//! {"table":{"brokerVersionDesc":"V5_3_3","msgPutTotalTodayNow":"0"}}
//! ```
//!
//! Used by GET_KVLIST_BY_NAMESPACE, the REGISTER_BROKER response
//! (namespace `ORDER_TOPIC_CONFIG`) and GET_BROKER_RUNTIME_INFO. Values are
//! always strings on output; numbers and booleans are accepted on input.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{loose, JsonBody};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct KvTable {
    #[serde(deserialize_with = "loose::de")]
    pub table: BTreeMap<String, String>,
}

impl JsonBody for KvTable {
    const NAME: &'static str = "KVTable";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_loose_values() {
        let text = r#"{"table":{"brokerVersionDesc":"V5_3_3","msgPutTotalTodayNow":"0"}}"#;
        let kv = KvTable::decode(text.as_bytes()).unwrap();
        assert_eq!(kv.encode(), text.as_bytes());
        let loose = KvTable::decode(br#"{"table":{"a":1,"b":true}}"#).unwrap();
        assert_eq!(loose.table["a"], "1");
        assert_eq!(loose.table["b"], "true");
    }
}
