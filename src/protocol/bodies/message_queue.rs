//! `MessageQueue` and maps keyed by it.
//!
//! ```json
//! {"brokerName":"broker-a","queueId":0,"topic":"TopicTest"}
//! ```
//!
//! Java writes `Map<MessageQueue, V>` with the queue object itself as the
//! key (json.md §1 rule 7, §6), which fastjson 1.2.51-based tools require:
//!
//! ```text
//! {"offsetTable":{{"brokerName":"broker-a","queueId":0,"topic":"TopicTest"}:42}}
//! ```
//!
//! [`MqMap`] serializes each key as the canonical JSON text of the queue;
//! a body whose [`JsonBody::raw_keys`](super::JsonBody::raw_keys) names the
//! map then gets the object-key form, otherwise the BrowserCompatible
//! stringified form. Both forms decode.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::loose;

/// `(topic, brokerName, queueId)`; ordered like Java's `compareTo`
/// (topic, then brokerName, then queueId), which is also the order clients
/// sort queues in before rebalancing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct MessageQueue {
    #[serde(deserialize_with = "loose::de")]
    pub broker_name: String,
    #[serde(deserialize_with = "loose::de")]
    pub queue_id: i32,
    #[serde(deserialize_with = "loose::de")]
    pub topic: String,
}

impl MessageQueue {
    pub fn new(topic: impl Into<String>, broker_name: impl Into<String>, queue_id: i32) -> Self {
        Self {
            broker_name: broker_name.into(),
            queue_id,
            topic: topic.into(),
        }
    }

    /// The canonical JSON text used as a map key.
    pub fn key_text(&self) -> String {
        // Serializing three plain fields cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl Ord for MessageQueue {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (&self.topic, &self.broker_name, self.queue_id).cmp(&(&other.topic, &other.broker_name, other.queue_id))
    }
}

impl PartialOrd for MessageQueue {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// A Java `Map<MessageQueue, V>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqMap<V>(pub BTreeMap<MessageQueue, V>);

impl<V> Default for MqMap<V> {
    fn default() -> Self {
        Self(BTreeMap::new())
    }
}

impl<V> FromIterator<(MessageQueue, V)> for MqMap<V> {
    fn from_iter<I: IntoIterator<Item = (MessageQueue, V)>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl<V: Serialize> Serialize for MqMap<V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (mq, v) in &self.0 {
            map.serialize_entry(&mq.key_text(), v)?;
        }
        map.end()
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for MqMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MqMapVisitor<V>(std::marker::PhantomData<V>);

        impl<'de, V: Deserialize<'de>> Visitor<'de> for MqMapVisitor<V> {
            type Value = MqMap<V>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map keyed by MessageQueue")
            }

            fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(MqMap::default())
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                let mut out = BTreeMap::new();
                while let Some((key, value)) = access.next_entry::<String, V>()? {
                    let mq: MessageQueue = super::decode_json(key.as_bytes(), "MessageQueue")
                        .map_err(|e| serde::de::Error::custom(format!("bad MessageQueue key: {e}")))?;
                    out.insert(mq, value);
                }
                Ok(MqMap(out))
            }
        }

        d.deserialize_any(MqMapVisitor(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::bodies::{decode_json, encode_with, fastjson_writer, WriteOptions};

    #[test]
    fn ordering_is_topic_broker_queue() {
        let mut v = [
            MessageQueue::new("b", "a", 0),
            MessageQueue::new("a", "b", 0),
            MessageQueue::new("a", "a", 10),
            MessageQueue::new("a", "a", 2),
        ];
        v.sort();
        let ids: Vec<_> = v
            .iter()
            .map(|m| (m.topic.as_str(), m.broker_name.as_str(), m.queue_id))
            .collect();
        assert_eq!(ids, vec![("a", "a", 2), ("a", "a", 10), ("a", "b", 0), ("b", "a", 0)]);
    }

    #[test]
    fn both_key_forms_decode_and_encode() {
        let map: MqMap<i64> = [(MessageQueue::new("TopicTest", "broker-a", 0), 42)]
            .into_iter()
            .collect();
        let object_form = r#"{{"brokerName":"broker-a","queueId":0,"topic":"TopicTest"}:42}"#;
        let string_form = r#"{"{\"brokerName\":\"broker-a\",\"queueId\":0,\"topic\":\"TopicTest\"}":42}"#;
        let raw = WriteOptions {
            escape_non_ascii: false,
            raw_keys: &|path| path.is_empty(),
        };
        assert_eq!(encode_with(&map, "t", raw), object_form.as_bytes());
        assert_eq!(
            encode_with(&map, "t", fastjson_writer::STANDARD),
            string_form.as_bytes()
        );
        for form in [object_form, string_form] {
            assert_eq!(decode_json::<MqMap<i64>>(form.as_bytes(), "t").unwrap(), map, "{form}");
        }
        assert!(decode_json::<MqMap<i64>>(br#"{"nope":1}"#, "t").is_err());
    }
}
