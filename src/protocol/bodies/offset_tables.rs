//! Offset tables with Java `Integer` map keys (json.md §10), written with
//! unquoted keys as fastjson does.
//!
//! ```json
//! {"offsetTable":{"TopicTest@cg1":{0:12,1:34}}}      consumerOffset.json / GET_ALL_CONSUMER_OFFSET
//! {"offsetTable":{1:0,2:5}}                          delayOffset.json / GET_ALL_DELAY_OFFSET
//! ```
//!
//! 5.x adds a `dataVersion` member to both.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::data_version::DataVersion;
use super::{loose, JsonBody};

/// `ConsumerOffsetSerializeWrapper`: `"<topic>@<group>"` → queueId → offset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ConsumerOffsetSerializeWrapper {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_version: Option<DataVersion>,
    #[serde(deserialize_with = "loose::de")]
    pub offset_table: BTreeMap<String, BTreeMap<i32, i64>>,
}

impl JsonBody for ConsumerOffsetSerializeWrapper {
    const NAME: &'static str = "ConsumerOffsetSerializeWrapper";

    fn raw_keys(path: &[&str]) -> bool {
        matches!(path, ["offsetTable", _])
    }
}

/// `DelayOffsetSerializeWrapper`: delay level → progress offset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DelayOffsetSerializeWrapper {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_version: Option<DataVersion>,
    #[serde(deserialize_with = "loose::de")]
    pub offset_table: BTreeMap<i32, i64>,
}

impl JsonBody for DelayOffsetSerializeWrapper {
    const NAME: &'static str = "DelayOffsetSerializeWrapper";

    fn raw_keys(path: &[&str]) -> bool {
        path == ["offsetTable"]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_md_examples_round_trip() {
        let consumer = r#"{"offsetTable":{"TopicTest@cg1":{0:12,1:34}}}"#;
        let c = ConsumerOffsetSerializeWrapper::decode(consumer.as_bytes()).unwrap();
        assert_eq!(c.offset_table["TopicTest@cg1"][&1], 34);
        assert_eq!(c.encode(), consumer.as_bytes());

        let delay = r#"{"offsetTable":{1:0,2:5}}"#;
        let d = DelayOffsetSerializeWrapper::decode(delay.as_bytes()).unwrap();
        assert_eq!(d.offset_table[&2], 5);
        assert_eq!(d.encode(), delay.as_bytes());
    }

    #[test]
    fn integer_keys_are_written_in_numeric_order() {
        let d = DelayOffsetSerializeWrapper {
            data_version: Some(DataVersion::default()),
            offset_table: (1..=11).map(|l| (l, i64::from(l) * 10)).collect(),
        };
        let text = String::from_utf8(d.encode()).unwrap();
        assert!(
            text.contains("{1:10,2:20,3:30,4:40,5:50,6:60,7:70,8:80,9:90,10:100,11:110}"),
            "{text}"
        );
        assert!(text.starts_with(r#"{"dataVersion":{"counter":0"#), "{text}");
    }
}
