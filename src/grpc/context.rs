//! What a handler knows about a call besides its request message: which
//! RPC, who called (peer address, RocketMQ metadata headers) and by when it
//! must answer (`grpc-timeout`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::HeaderMap;

/// The RPCs of `apache.rocketmq.v2.MessagingService` that we serve; the
/// path of each is `/apache.rocketmq.v2.MessagingService/<name>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RpcMethod {
    QueryRoute,
    Heartbeat,
    SendMessage,
    QueryAssignment,
    ReceiveMessage,
    AckMessage,
    ForwardMessageToDeadLetterQueue,
    EndTransaction,
    Telemetry,
    NotifyClientTermination,
    ChangeInvisibleDuration,
}

/// Path prefix of every method of the service.
pub const SERVICE_PREFIX: &str = "/apache.rocketmq.v2.MessagingService/";

impl RpcMethod {
    pub const ALL: [RpcMethod; 11] = [
        RpcMethod::QueryRoute,
        RpcMethod::Heartbeat,
        RpcMethod::SendMessage,
        RpcMethod::QueryAssignment,
        RpcMethod::ReceiveMessage,
        RpcMethod::AckMessage,
        RpcMethod::ForwardMessageToDeadLetterQueue,
        RpcMethod::EndTransaction,
        RpcMethod::Telemetry,
        RpcMethod::NotifyClientTermination,
        RpcMethod::ChangeInvisibleDuration,
    ];

    /// The method name as it appears in the path.
    pub fn name(self) -> &'static str {
        match self {
            RpcMethod::QueryRoute => "QueryRoute",
            RpcMethod::Heartbeat => "Heartbeat",
            RpcMethod::SendMessage => "SendMessage",
            RpcMethod::QueryAssignment => "QueryAssignment",
            RpcMethod::ReceiveMessage => "ReceiveMessage",
            RpcMethod::AckMessage => "AckMessage",
            RpcMethod::ForwardMessageToDeadLetterQueue => "ForwardMessageToDeadLetterQueue",
            RpcMethod::EndTransaction => "EndTransaction",
            RpcMethod::Telemetry => "Telemetry",
            RpcMethod::NotifyClientTermination => "NotifyClientTermination",
            RpcMethod::ChangeInvisibleDuration => "ChangeInvisibleDuration",
        }
    }

    /// The method a request path names, if we serve it.
    pub fn from_path(path: &str) -> Option<RpcMethod> {
        let name = path.strip_prefix(SERVICE_PREFIX)?;
        RpcMethod::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// One call's context, built from its request headers.
///
/// The `x-mq-*` values are the client's raw header values (`None` when
/// absent or not visible ASCII); validating them (e.g. CLIENT_ID_REQUIRED
/// when `client_id` is `None`) is the service's job, since the answer is a
/// RocketMQ `pb::Status` in the response body.
#[derive(Clone, Debug)]
pub struct RequestContext {
    pub method: RpcMethod,
    pub peer: SocketAddr,
    /// From `grpc-timeout`; the transport ends the call with
    /// DEADLINE_EXCEEDED at this instant, so long polls should answer a
    /// little before it.
    pub deadline: Option<Instant>,
    /// `x-mq-client-id`: the key of the client's settings and session.
    pub client_id: Option<String>,
    /// `x-mq-language`, e.g. `JAVA`, `GOLANG`, `RUST`.
    pub language: Option<String>,
    /// `x-mq-client-version`.
    pub client_version: Option<String>,
    /// `x-mq-protocol`, or `x-mq-protocol-version` (sent by the Rust client).
    pub protocol: Option<String>,
    /// `x-mq-request-id`.
    pub request_id: Option<String>,
    /// `x-mq-namespace`.
    pub namespace: Option<String>,
    /// `x-mq-date-time`: the signed time of `authorization`.
    pub date_time: Option<String>,
    /// `x-mq-session-token`.
    pub session_token: Option<String>,
    /// `authorization`: `MQv2-HMAC-SHA1 Credential=…, SignedHeaders=…, Signature=…`.
    pub authorization: Option<String>,
    /// All request headers, for anything not lifted out above.
    pub headers: HeaderMap,
}

impl RequestContext {
    /// Builds the context of a call from its headers; `now` anchors the deadline.
    pub fn from_headers(method: RpcMethod, peer: SocketAddr, headers: HeaderMap, now: Instant) -> Self {
        let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let deadline = headers
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_timeout)
            .and_then(|t| now.checked_add(t));
        RequestContext {
            method,
            peer,
            deadline,
            client_id: get("x-mq-client-id"),
            language: get("x-mq-language"),
            client_version: get("x-mq-client-version"),
            protocol: get("x-mq-protocol").or_else(|| get("x-mq-protocol-version")),
            request_id: get("x-mq-request-id"),
            namespace: get("x-mq-namespace"),
            date_time: get("x-mq-date-time"),
            session_token: get("x-mq-session-token"),
            authorization: get("authorization"),
            headers,
        }
    }

    /// Time left until the deadline (`None`: no deadline; zero: passed).
    pub fn time_left(&self) -> Option<Duration> {
        self.deadline.map(|d| d.saturating_duration_since(Instant::now()))
    }
}

/// Parses `grpc-timeout`: 1 to 8 ASCII digits followed by one unit letter,
/// H(ours) M(inutes) S(econds) m(illis) u(micros) n(anos). Anything else is
/// `None` (the call then has no deadline, as grpc-go treats a bad value).
pub fn parse_timeout(value: &str) -> Option<Duration> {
    // Bytes, not chars: a multi-byte character must not split anything.
    let (&unit, digits) = value.trim().as_bytes().split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse_per_the_spec() {
        assert_eq!(parse_timeout("3S"), Some(Duration::from_secs(3)));
        assert_eq!(parse_timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_timeout("5M"), Some(Duration::from_secs(300)));
        assert_eq!(parse_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_timeout("99999999u"), Some(Duration::from_micros(99_999_999)));
        assert_eq!(parse_timeout("7n"), Some(Duration::from_nanos(7)));
        for bad in ["", "S", "123456789S", "10x", "-1S", "1.5S", "१S", "1१", "10", "1 S"] {
            assert_eq!(parse_timeout(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn methods_round_trip_through_paths() {
        for m in RpcMethod::ALL {
            assert_eq!(RpcMethod::from_path(&format!("{SERVICE_PREFIX}{}", m.name())), Some(m));
        }
        assert_eq!(
            RpcMethod::from_path("/apache.rocketmq.v2.MessagingService/PullMessage"),
            None
        );
        assert_eq!(RpcMethod::from_path("/other.Service/QueryRoute"), None);
    }

    #[test]
    fn metadata_headers_are_lifted() {
        let mut h = HeaderMap::new();
        h.insert("x-mq-client-id", "cid".parse().unwrap());
        h.insert("x-mq-protocol-version", "v2".parse().unwrap());
        h.insert("grpc-timeout", "1S".parse().unwrap());
        let now = Instant::now();
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let ctx = RequestContext::from_headers(RpcMethod::Heartbeat, peer, h, now);
        assert_eq!(ctx.client_id.as_deref(), Some("cid"));
        assert_eq!(ctx.protocol.as_deref(), Some("v2"));
        assert_eq!(ctx.language, None);
        assert_eq!(ctx.deadline, Some(now + Duration::from_secs(1)));
    }
}
