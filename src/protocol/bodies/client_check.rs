//! `CheckClientRequestBody` (CHECK_CLIENT_CONFIG, json.md §10): Java push
//! consumers send it at start for SQL92 subscriptions.
//!
//! ```json
//! {"clientId":"192.168.1.20@1","group":"cg1","namespace":"ns","subscriptionData":{..SubscriptionData..}}
//! ```

use serde::{Deserialize, Serialize};

use super::heartbeat::SubscriptionData;
use super::{loose, JsonBody};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct CheckClientRequestBody {
    #[serde(deserialize_with = "loose::de")]
    pub client_id: String,
    #[serde(deserialize_with = "loose::de")]
    pub group: String,
    #[serde(deserialize_with = "loose::de", skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription_data: Option<SubscriptionData>,
}

impl JsonBody for CheckClientRequestBody {
    const NAME: &'static str = "CheckClientRequestBody";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let text = r#"{"clientId":"c","group":"cg1","subscriptionData":{"classFilterMode":false,"codeSet":[],"expressionType":"SQL92","subString":"a > 1","subVersion":5,"tagsSet":[],"topic":"T"}}"#;
        let body = CheckClientRequestBody::decode(text.as_bytes()).unwrap();
        assert_eq!(
            body.subscription_data.as_ref().map(|s| s.expression_type.as_str()),
            Some("SQL92")
        );
        assert_eq!(String::from_utf8(body.encode()).unwrap(), text);
    }
}
