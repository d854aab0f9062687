//! `QueryConsumeQueueResponseBody` (QUERY_CONSUME_QUEUE, json.md §10).
//!
//! ```json
//! {"filterData":"..","maxQueueIndex":N,"minQueueIndex":N,"queueData":[{"bitMap":..,"eval":false,"extendDataJson":..,"msg":..,"physicOffset":N,"physicSize":N,"tagsCode":N}],"subscriptionData":{..}}
//! ```

use serde::{Deserialize, Serialize};

use super::heartbeat::SubscriptionData;
use super::{loose, JsonBody};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct QueryConsumeQueueResponseBody {
    #[serde(deserialize_with = "loose::de", skip_serializing_if = "Option::is_none")]
    pub filter_data: Option<String>,
    #[serde(deserialize_with = "loose::de")]
    pub max_queue_index: i64,
    #[serde(deserialize_with = "loose::de")]
    pub min_queue_index: i64,
    #[serde(deserialize_with = "loose::or_default")]
    pub queue_data: Vec<ConsumeQueueData>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription_data: Option<SubscriptionData>,
}

impl JsonBody for QueryConsumeQueueResponseBody {
    const NAME: &'static str = "QueryConsumeQueueResponseBody";
}

/// One consume-queue entry with its (optional) filter evaluation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ConsumeQueueData {
    #[serde(deserialize_with = "loose::de", skip_serializing_if = "Option::is_none")]
    pub bit_map: Option<String>,
    #[serde(deserialize_with = "loose::de")]
    pub eval: bool,
    #[serde(deserialize_with = "loose::de", skip_serializing_if = "Option::is_none")]
    pub extend_data_json: Option<String>,
    #[serde(deserialize_with = "loose::de", skip_serializing_if = "Option::is_none")]
    pub msg: Option<String>,
    #[serde(deserialize_with = "loose::de")]
    pub physic_offset: i64,
    #[serde(deserialize_with = "loose::de")]
    pub physic_size: i32,
    #[serde(deserialize_with = "loose::de")]
    pub tags_code: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let text = r#"{"maxQueueIndex":10,"minQueueIndex":0,"queueData":[{"eval":false,"physicOffset":1024,"physicSize":200,"tagsCode":2598919}]}"#;
        let body = QueryConsumeQueueResponseBody::decode(text.as_bytes()).unwrap();
        assert_eq!(body.queue_data[0].physic_size, 200);
        assert_eq!(String::from_utf8(body.encode()).unwrap(), text);
    }
}
