//! Why a request is refused: the remark a client sees.
//!
//! A refusal is answered with `NO_PERMISSION` (16) and [`Refusal::remark`]
//! (Apache 4.9.8 answered its `AclException` as SYSTEM_ERROR with the
//! exception text; 16 is what 5.x answers and says more). A remark names
//! the access key, the resource and the permission missing; it never
//! contains a secret (no variant holds one). Text that came from the
//! network is cut to a bounded length.

use std::net::IpAddr;

use super::resources::{Need, Resource, MAX_RESOURCES};
use crate::protocol::codes::{request, response};

/// Longest access key shown in a remark.
const SHOWN_KEY_CHARS: usize = 64;

/// An access key as shown in remarks: cut, control characters dropped.
pub(super) fn shown_key(key: &str) -> String {
    key.chars().filter(|c| !c.is_control()).take(SHOWN_KEY_CHARS).collect()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No (or an empty) `AccessKey`, from outside the global white list.
    #[error("ACL: the request has no AccessKey and {remote} is not in globalWhiteRemoteAddresses")]
    Anonymous { remote: IpAddr },
    #[error("ACL: no account has accessKey={access_key}")]
    UnknownAccessKey { access_key: String },
    /// The account's `whiteRemoteAddress` does not admit the client.
    #[error("ACL: accessKey={access_key} may not connect from {remote} (whiteRemoteAddress)")]
    AddressNotAllowed { access_key: String, remote: IpAddr },
    /// A gRPC `authorization` header that is not MQv2-HMAC-SHA1.
    #[error("ACL: {reason}")]
    BadAuthorization { reason: &'static str },
    /// A gRPC call signed for a date-time far from the broker's clock.
    #[error(
        "ACL: accessKey={access_key} signed x-mq-date-time {date_time:?}, more than 15 minutes from the broker's clock"
    )]
    StaleDateTime { access_key: String, date_time: String },
    /// Missing, malformed or wrong `Signature`.
    #[error("ACL: check signature failed for accessKey={access_key}")]
    BadSignature { access_key: String },
    #[error("ACL: request code {code} ({name}) needs an admin account, and accessKey={access_key} is not one", name = request::name(*code).unwrap_or("unknown"))]
    AdminRequired { access_key: String, code: i32 },
    #[error("ACL: accessKey={access_key} has no {need} permission on {resource}")]
    Denied {
        access_key: String,
        resource: Resource<'static>,
        need: Need,
    },
    #[error("ACL: the request names more than {MAX_RESOURCES} topics and groups")]
    TooManyResources,
    #[error("ACL: cannot read the request body to check its permissions: {reason}")]
    UnreadableBody { reason: String },
    /// From a [`super::Limiter`]: the address failed too often lately.
    #[error("ACL: too many failed authentications from {remote}; retry in {retry_ms} ms")]
    Throttled { remote: IpAddr, retry_ms: u64 },
}

impl Refusal {
    /// The response code to answer with.
    pub fn response_code(&self) -> i32 {
        response::NO_PERMISSION
    }

    /// The response remark.
    pub fn remark(&self) -> String {
        self.to_string()
    }

    /// True for failures to prove who the client is, which a
    /// [`super::Limiter`] should count (not for a known account lacking a
    /// permission: that is a configuration matter, not a guess).
    pub fn is_authentication_failure(&self) -> bool {
        matches!(
            self,
            Refusal::Anonymous { .. }
                | Refusal::UnknownAccessKey { .. }
                | Refusal::AddressNotAllowed { .. }
                | Refusal::BadSignature { .. }
                | Refusal::BadAuthorization { .. }
                | Refusal::StaleDateTime { .. }
        )
    }

    /// A [`Refusal::Throttled`] for a wait of `retry`.
    pub fn throttled(remote: IpAddr, retry: std::time::Duration) -> Self {
        Refusal::Throttled {
            remote,
            retry_ms: u64::try_from(retry.as_millis()).unwrap_or(u64::MAX).max(1),
        }
    }
}
