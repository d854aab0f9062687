//! `ConsumeMessageDirectlyResult` (CONSUME_MESSAGE_DIRECTLY answer from a
//! client, relayed to admin tools; json.md §10).
//!
//! ```json
//! {"autoCommit":true,"consumeResult":"CR_SUCCESS","order":false,"remark":"..","spentTimeMills":3}
//! ```

use serde::{Deserialize, Serialize};

use super::loose::{self, java_enum};
use super::JsonBody;

java_enum! {
    /// `CMResult`.
    pub enum CMResult {
        Success = "CR_SUCCESS",
        Later = "CR_LATER",
        Rollback = "CR_ROLLBACK",
        Commit = "CR_COMMIT",
        ThrowException = "CR_THROW_EXCEPTION",
        ReturnNull = "CR_RETURN_NULL",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ConsumeMessageDirectlyResult {
    #[serde(deserialize_with = "loose::de")]
    pub auto_commit: bool,
    #[serde(deserialize_with = "loose::lenient", skip_serializing_if = "Option::is_none")]
    pub consume_result: Option<CMResult>,
    #[serde(deserialize_with = "loose::de")]
    pub order: bool,
    #[serde(deserialize_with = "loose::de", skip_serializing_if = "Option::is_none")]
    pub remark: Option<String>,
    /// (sic) Java's spelling.
    #[serde(deserialize_with = "loose::de")]
    pub spent_time_mills: i64,
}

/// Java defaults: `autoCommit = true`.
impl Default for ConsumeMessageDirectlyResult {
    fn default() -> Self {
        Self {
            auto_commit: true,
            consume_result: None,
            order: false,
            remark: None,
            spent_time_mills: 0,
        }
    }
}

impl JsonBody for ConsumeMessageDirectlyResult {
    const NAME: &'static str = "ConsumeMessageDirectlyResult";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_md_example_round_trips() {
        let text = r#"{"autoCommit":true,"consumeResult":"CR_SUCCESS","order":false,"remark":"..","spentTimeMills":3}"#;
        let r = ConsumeMessageDirectlyResult::decode(text.as_bytes()).unwrap();
        assert_eq!(r.consume_result, Some(CMResult::Success));
        assert_eq!(String::from_utf8(r.encode()).unwrap(), text);
        assert!(ConsumeMessageDirectlyResult::decode(b"{}").unwrap().auto_commit);
    }
}
