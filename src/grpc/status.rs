//! gRPC status: the `grpc-status` / `grpc-message` pair that ends every
//! call. Not to be confused with `pb::Status`, RocketMQ's application status
//! inside response bodies: a RocketMQ error (topic not found, …) is a
//! successful gRPC call (`grpc-status: 0`) whose body carries a `pb::Status`.
//! [`GrpcStatus`] is for transport-level failures: unknown method, malformed
//! or oversized messages, deadline exceeded, handler crash.

use std::fmt;

use http::{HeaderMap, HeaderValue};

/// gRPC status codes (grpc/doc/statuscodes.md); the value is the number
/// sent in `grpc-status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum GrpcCode {
    Ok = 0,
    Cancelled = 1,
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Aborted = 10,
    OutOfRange = 11,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    DataLoss = 15,
    Unauthenticated = 16,
}

impl GrpcCode {
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    fn header_value(self) -> HeaderValue {
        HeaderValue::from(u16::from(self.as_u8()))
    }
}

/// A gRPC status: code plus a human-readable message (sent percent-encoded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrpcStatus {
    code: GrpcCode,
    message: String,
}

impl GrpcStatus {
    pub fn new(code: GrpcCode, message: impl Into<String>) -> Self {
        GrpcStatus {
            code,
            message: message.into(),
        }
    }

    pub fn ok() -> Self {
        Self::new(GrpcCode::Ok, "")
    }

    pub fn unimplemented(message: impl Into<String>) -> Self {
        Self::new(GrpcCode::Unimplemented, message)
    }

    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(GrpcCode::InvalidArgument, message)
    }

    pub fn resource_exhausted(message: impl Into<String>) -> Self {
        Self::new(GrpcCode::ResourceExhausted, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(GrpcCode::Internal, message)
    }

    pub fn deadline_exceeded() -> Self {
        Self::new(GrpcCode::DeadlineExceeded, "deadline exceeded")
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(GrpcCode::Unavailable, message)
    }

    pub fn code(&self) -> GrpcCode {
        self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// Adds `grpc-status` and, when there is a message, `grpc-message` to
    /// `headers` (trailers, or the headers of a trailers-only response).
    pub(crate) fn write_to(&self, headers: &mut HeaderMap) {
        headers.insert("grpc-status", self.code.header_value());
        if !self.message.is_empty() {
            // percent_encode yields only visible ASCII, which HeaderValue
            // always accepts; the fallback is unreachable but not a panic.
            let encoded = percent_encode(&self.message);
            if let Ok(v) = HeaderValue::from_str(&encoded) {
                headers.insert("grpc-message", v);
            }
        }
    }
}

impl fmt::Display for GrpcStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "grpc-status {:?}: {}", self.code, self.message)
    }
}

impl std::error::Error for GrpcStatus {}

/// `grpc-message` encoding (grpc/doc/PROTOCOL-HTTP2.md, "Status-Message"):
/// the UTF-8 bytes of the message, each byte outside 0x20..=0x7E and `%`
/// itself written as `%XX` (uppercase hex).
pub fn percent_encode(message: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(message.len());
    for &b in message.as_bytes() {
        if (0x20..=0x7E).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0F)]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding_keeps_visible_ascii_and_escapes_the_rest() {
        assert_eq!(percent_encode("plain text: ok!"), "plain text: ok!");
        assert_eq!(percent_encode("100%"), "100%25");
        assert_eq!(percent_encode("a\nb"), "a%0Ab");
        assert_eq!(percent_encode("é"), "%C3%A9");
        assert_eq!(percent_encode("\u{7f}"), "%7F");
    }

    #[test]
    fn trailers_carry_code_and_encoded_message() {
        let mut h = HeaderMap::new();
        GrpcStatus::new(GrpcCode::ResourceExhausted, "too big: 5%").write_to(&mut h);
        assert_eq!(h["grpc-status"], "8");
        assert_eq!(h["grpc-message"], "too big: 5%25");
        let mut h = HeaderMap::new();
        GrpcStatus::ok().write_to(&mut h);
        assert_eq!(h["grpc-status"], "0");
        assert!(!h.contains_key("grpc-message"));
    }
}
