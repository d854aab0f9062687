//! The name server's KV config (PUT/GET/DELETE_KV_CONFIG,
//! GET_KVLIST_BY_NAMESPACE), held in memory.
//!
//! Java persists it to `kvConfig.json`; shardmq keeps it in memory only
//! (brokers and admin tools re-create what they need). The one namespace
//! clients care about is `ORDER_TOPIC_CONFIG` (topic → `"brokerA:4;brokerB:4"`),
//! returned to brokers on registration and, with `orderMessageEnable`, to
//! clients inside route data.

use std::collections::BTreeMap;

use crate::protocol::bodies::KvTable;

/// `NamesrvUtil.NAMESPACE_ORDER_TOPIC_CONFIG`.
pub const NAMESPACE_ORDER_TOPIC_CONFIG: &str = "ORDER_TOPIC_CONFIG";

#[derive(Debug, Default)]
pub struct KvConfig {
    namespaces: BTreeMap<String, BTreeMap<String, String>>,
}

impl KvConfig {
    pub fn put(&mut self, namespace: &str, key: &str, value: &str) {
        self.namespaces
            .entry(namespace.to_owned())
            .or_default()
            .insert(key.to_owned(), value.to_owned());
    }

    pub fn get(&self, namespace: &str, key: &str) -> Option<&str> {
        self.namespaces.get(namespace)?.get(key).map(String::as_str)
    }

    /// Like Java, an emptied namespace stays (and lists as `{"table":{}}`).
    pub fn delete(&mut self, namespace: &str, key: &str) {
        if let Some(table) = self.namespaces.get_mut(namespace) {
            table.remove(key);
        }
    }

    /// The whole namespace, `None` if it was never written.
    pub fn list(&self, namespace: &str) -> Option<KvTable> {
        self.namespaces
            .get(namespace)
            .map(|table| KvTable { table: table.clone() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_delete_list() {
        let mut kv = KvConfig::default();
        assert!(kv.list("ns").is_none());
        kv.put("ns", "k", "v1");
        kv.put("ns", "k", "v2");
        assert_eq!(kv.get("ns", "k"), Some("v2"));
        assert_eq!(kv.get("other", "k"), None);
        kv.delete("ns", "k");
        assert_eq!(kv.get("ns", "k"), None);
        assert_eq!(kv.list("ns"), Some(KvTable::default()));
    }
}
