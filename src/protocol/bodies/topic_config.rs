//! `TopicConfig`: one topic as a broker holds it (json.md §8).
//!
//! ```json
//! {"attributes":{},"order":false,"perm":6,"readQueueNums":4,"topicFilterType":"SINGLE_TAG","topicName":"TopicTest","topicSysFlag":0,"writeQueueNums":4}
//! ```
//!
//! The compressed RegisterBrokerBody (store.md §8) carries a text form
//! instead, see [`TopicConfig::encode_text`].

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use super::loose::{self, java_enum, Loose};
use super::JsonBody;

/// `PermName` bits of `perm`.
pub mod perm {
    /// Queue order is preserved (unused by clients).
    pub const PRIORITY: i32 = 0b1000;
    pub const READ: i32 = 0b0100;
    pub const WRITE: i32 = 0b0010;
    /// Template for auto-created topics (`TBW102` has 7).
    pub const INHERIT: i32 = 0b0001;
    /// Default perm of a new topic: read + write.
    pub const READ_WRITE: i32 = READ | WRITE;

    pub fn is_readable(perm: i32) -> bool {
        perm & READ != 0
    }

    pub fn is_writeable(perm: i32) -> bool {
        perm & WRITE != 0
    }
}

java_enum! {
    /// `TopicFilterType`.
    pub enum TopicFilterType {
        SingleTag = "SINGLE_TAG",
        MultiTag = "MULTI_TAG",
    }
}

// `java_enum!` derives no Default (most Java enums have none).
#[allow(clippy::derivable_impls)]
impl Default for TopicFilterType {
    fn default() -> Self {
        Self::SingleTag
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TopicConfig {
    /// 5.x attributes (`message.type`, `queue.type`, ...); values are strings.
    #[serde(deserialize_with = "loose::de")]
    pub attributes: BTreeMap<String, String>,
    #[serde(deserialize_with = "loose::de")]
    pub order: bool,
    /// [`perm`] bits.
    #[serde(deserialize_with = "loose::de")]
    pub perm: i32,
    #[serde(deserialize_with = "loose::de")]
    pub read_queue_nums: i32,
    #[serde(deserialize_with = "filter_type_or_default")]
    pub topic_filter_type: TopicFilterType,
    #[serde(deserialize_with = "loose::de")]
    pub topic_name: String,
    #[serde(deserialize_with = "loose::de")]
    pub topic_sys_flag: i32,
    #[serde(deserialize_with = "loose::de")]
    pub write_queue_nums: i32,
}

/// Java's defaults (`TopicConfig` constructor): 16/16 queues, perm RW.
impl Default for TopicConfig {
    fn default() -> Self {
        Self {
            attributes: BTreeMap::new(),
            order: false,
            perm: perm::READ_WRITE,
            read_queue_nums: 16,
            topic_filter_type: TopicFilterType::SingleTag,
            topic_name: String::new(),
            topic_sys_flag: 0,
            write_queue_nums: 16,
        }
    }
}

fn filter_type_or_default<'de, D: Deserializer<'de>>(d: D) -> Result<TopicFilterType, D::Error> {
    Ok(loose::lenient(d)?.unwrap_or_default())
}

impl JsonBody for TopicConfig {
    const NAME: &'static str = "TopicConfig";
}

impl TopicConfig {
    /// A read-write topic with `queues` read and write queues.
    pub fn new(topic_name: impl Into<String>, queues: i32, perm: i32) -> Self {
        Self {
            topic_name: topic_name.into(),
            read_queue_nums: queues,
            write_queue_nums: queues,
            perm,
            ..Self::default()
        }
    }

    /// Java `TopicConfig.encode()`, used inside the compressed body:
    ///
    /// ```text
    /// <topicName> <readQueueNums> <writeQueueNums> <perm> <SINGLE_TAG|MULTI_TAG> <attributes JSON>
    /// ```
    ///
    /// (`order` and `topicSysFlag` are not part of it.)
    pub fn encode_text(&self) -> String {
        let attributes = super::encode_with(&self.attributes, "attributes", super::fastjson_writer::STANDARD);
        format!(
            "{} {} {} {} {} {}",
            self.topic_name,
            self.read_queue_nums,
            self.write_queue_nums,
            self.perm,
            self.topic_filter_type.name(),
            String::from_utf8_lossy(&attributes)
        )
    }

    /// Java `TopicConfig.decode(String)`: `None` when fewer than five
    /// fields or a number does not parse. The attributes JSON (sixth field,
    /// taken whole even if it contains spaces) is optional and ignored when
    /// unreadable, as in Java.
    pub fn decode_text(text: &str) -> Option<Self> {
        let mut parts = text.splitn(6, ' ');
        let topic_name = parts.next()?.to_owned();
        let read_queue_nums = parts.next()?.parse().ok()?;
        let write_queue_nums = parts.next()?.parse().ok()?;
        let perm = parts.next()?.parse().ok()?;
        let topic_filter_type = TopicFilterType::from_name(parts.next()?)?;
        let attributes = parts
            .next()
            .and_then(|json| super::fastjson_reader::parse_lenient(json.as_bytes()).ok())
            .and_then(|v| BTreeMap::from_value(v).ok())
            .unwrap_or_default();
        Some(Self {
            attributes,
            perm,
            read_queue_nums,
            topic_filter_type,
            topic_name,
            write_queue_nums,
            ..Self::default()
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const EXAMPLE: &str = r#"{"attributes":{},"order":false,"perm":6,"readQueueNums":4,"topicFilterType":"SINGLE_TAG","topicName":"TopicTest","topicSysFlag":0,"writeQueueNums":4}"#;

    #[test]
    fn json_md_example_round_trips() {
        let tc = TopicConfig::decode(EXAMPLE.as_bytes()).unwrap();
        assert_eq!(tc, TopicConfig::new("TopicTest", 4, 6));
        assert_eq!(tc.encode(), EXAMPLE.as_bytes());
    }

    #[test]
    fn missing_fields_take_java_defaults_and_unknown_enum_is_default() {
        let tc = TopicConfig::decode(br#"{"topicName":"t","topicFilterType":"BOGUS","perm":"7"}"#).unwrap();
        assert_eq!((tc.read_queue_nums, tc.write_queue_nums, tc.perm), (16, 16, 7));
        assert_eq!(tc.topic_filter_type, TopicFilterType::SingleTag);
    }

    #[test]
    fn text_form_round_trips() {
        let mut tc = TopicConfig::new("TopicTest", 4, 6);
        tc.attributes.insert("+message.type".into(), "NORMAL".into());
        let text = tc.encode_text();
        assert_eq!(text, r#"TopicTest 4 4 6 SINGLE_TAG {"+message.type":"NORMAL"}"#);
        assert_eq!(TopicConfig::decode_text(&text), Some(tc));
        let old = TopicConfig::decode_text("t 1 2 6 MULTI_TAG").unwrap();
        assert_eq!((old.read_queue_nums, old.write_queue_nums), (1, 2));
        assert!(old.attributes.is_empty());
        assert_eq!(TopicConfig::decode_text("t 1 2 6"), None);
        assert_eq!(TopicConfig::decode_text("t x 2 6 SINGLE_TAG"), None);
    }
}
