//! The REST API's errors: an HTTP status, a stable `code` for programs, the
//! RocketMQ response code it corresponds to (0: none, the error is HTTP's
//! own) and a message for people.
//!
//! | code | HTTP | when |
//! |---|---|---|
//! | `bad_request` | 400 | a parameter or field is missing or out of range |
//! | `bad_json` | 400 | the body is not the JSON expected |
//! | `invalid_message` | 400 | the broker refused the message (MESSAGE_ILLEGAL) |
//! | `invalid_handle` | 400 | not a handle of this broker |
//! | `unauthorized` | 401 | ACL on: no valid signature |
//! | `forbidden` | 403 | ACL on: the account may not do this |
//! | `not_found` | 404 | no such resource path |
//! | `topic_not_found` | 404 | TOPIC_NOT_EXIST |
//! | `group_not_found` | 404 | SUBSCRIPTION_GROUP_NOT_EXIST |
//! | `method_not_allowed` | 405 | the path exists, the method does not |
//! | `conflict` | 409 | TOPIC_EXIST_ALREADY |
//! | `stale_handle` | 409 | the handle names an earlier delivery |
//! | `payload_too_large` | 413 | body over `httpMaxBodyBytes`, batch over `httpMaxBatch` |
//! | `unsupported_media_type` | 415 | a body that is not `application/json` |
//! | `too_many_requests` | 429 | SYSTEM_BUSY, FLOW_CONTROL, POLLING_FULL |
//! | `broker_error` | 500 | SYSTEM_ERROR and anything unexpected |
//! | `unavailable` | 503 | SERVICE_NOT_AVAILABLE (disk full, stopping), flush timeouts |

use http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::protocol::codes::response;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub rocketmq_code: i32,
    pub message: String,
    /// 405: the methods the resource allows (its `Allow` header).
    pub allow: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, rocketmq_code: i32, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            rocketmq_code,
            message: message.into(),
            allow: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            response::INVALID_PARAMETER,
            message,
        )
    }

    pub fn bad_json(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_json",
            response::INVALID_PARAMETER,
            message,
        )
    }

    pub fn too_large(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            response::MESSAGE_ILLEGAL,
            message,
        )
    }

    pub fn topic_not_found(topic: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "topic_not_found",
            response::TOPIC_NOT_EXIST,
            format!("topic {topic} does not exist"),
        )
    }

    pub fn method_not_allowed(m: &Method, allow: Option<&'static str>) -> ApiError {
        ApiError {
            allow,
            ..ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                0,
                format!("{m} is not allowed on this resource"),
            )
        }
    }

    /// The error of a remoting answer `code` with its `remark`.
    pub fn from_remoting(code: i32, remark: &str) -> ApiError {
        let (status, name) = match code {
            response::TOPIC_NOT_EXIST => (StatusCode::NOT_FOUND, "topic_not_found"),
            response::SUBSCRIPTION_GROUP_NOT_EXIST => (StatusCode::NOT_FOUND, "group_not_found"),
            response::NO_PERMISSION => (StatusCode::FORBIDDEN, "forbidden"),
            response::TOPIC_EXIST_ALREADY => (StatusCode::CONFLICT, "conflict"),
            response::MESSAGE_ILLEGAL => (StatusCode::BAD_REQUEST, "invalid_message"),
            response::INVALID_PARAMETER | response::SUBSCRIPTION_PARSE_FAILED => {
                (StatusCode::BAD_REQUEST, "bad_request")
            }
            response::SYSTEM_BUSY | response::FLOW_CONTROL | response::POLLING_FULL => {
                (StatusCode::TOO_MANY_REQUESTS, "too_many_requests")
            }
            response::SERVICE_NOT_AVAILABLE
            | response::FLUSH_DISK_TIMEOUT
            | response::FLUSH_SLAVE_TIMEOUT
            | response::SLAVE_NOT_AVAILABLE => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "broker_error"),
        };
        let message = if remark.is_empty() {
            format!("the broker answered code {code}")
        } else {
            remark.trim().to_string()
        };
        ApiError::new(status, name, code, message)
    }

    pub fn body(&self) -> Value {
        json!({"error": {"code": self.code, "rocketmq_code": self.rocketmq_code, "message": self.message}})
    }
}

impl From<(i32, String)> for ApiError {
    fn from((code, remark): (i32, String)) -> ApiError {
        ApiError::from_remoting(code, &remark)
    }
}
