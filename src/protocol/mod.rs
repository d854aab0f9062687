//! RocketMQ remoting protocol codec (frames, headers, codes).
//!
//! Pure codec code on [`bytes`]: nothing here touches a socket or an
//! executor. A connection task feeds received bytes into a
//! [`FrameDecoder`], gets [`RemotingCommand`]s out, and writes commands back
//! with [`encode_frame`].
//!
//! # Layers
//!
//! ```text
//!   frame            4-byte length | header word | header | body     (frame.rs)
//!     header         JSON (json_header.rs) or ROCKETMQ binary (binary_header.rs)
//!       command      code, flag, opaque, remark, extFields          (command.rs)
//!         extFields  string map, typed getters                      (ext_fields.rs)
//!           typed    hot request/response headers                   (header.rs)
//!   body formats     batch bodies (batch.rs), property strings (properties.rs)
//!   ids              offset msgId, UNIQ_KEY, tag hash, CRC          (message_id.rs)
//!   constants        codes.rs, sys_flag.rs, version.rs
//! ```
//!
//! # Robustness contract
//!
//! Every decoder here takes untrusted bytes. None of them panics on any
//! input, and none allocates more than a small constant factor of the input
//! it was given: every length read from the wire is checked against the
//! bytes actually present (and the frame decoder checks the announced frame
//! length against its configured maximum) before anything is sized by it.
//! Property tests in each file feed arbitrary bytes to check this.
//!
//! Decoding is lenient where real clients differ (see
//! `shared/protocol/framing.md` §4); encoding is strict and mirrors what the
//! Java broker emits, so every client can read it.

pub mod batch;
pub mod binary_header;
pub mod bodies;
pub mod codes;
pub mod command;
pub mod ext_fields;
pub mod frame;
pub mod header;
pub mod json_header;
pub mod json_scan;
pub mod message_id;
pub mod properties;
pub mod sys_flag;
pub mod version;

#[cfg(test)]
mod test_util;

pub use batch::{decode_batch, encode_batch_entry, BatchEntry, BatchIter};
pub use command::{LanguageCode, RemotingCommand, SerializeType};
pub use ext_fields::{ExtFields, HeaderError};
pub use frame::{encode_frame, FrameDecoder, DEFAULT_MAX_FRAME_LEN};
pub use header::{
    CommandHeader, PullMessageRequestHeader, PullMessageResponseHeader, SendHeaderView, SendMessageRequestHeader,
    SendMessageResponseHeader,
};
pub use message_id::{crc32_masked, java_string_hash, OffsetMessageId, UniqIdGenerator};
pub use properties::Properties;

/// Every way a protocol decode or encode can fail.
///
/// A decode error on a connection means the peer spoke something we cannot
/// frame; the Java broker closes the channel in that case (no reply).
/// Header-level problems of a well-framed request ([`HeaderError`]) are
/// different: they are answered with an error response.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    /// `frameLength` is below the 4 bytes of the header word it must cover.
    #[error("frame length {0} is less than 4")]
    FrameTooShort(i32),
    /// The frame (including its 4-byte length field) exceeds the limit.
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    FrameTooLarge { len: u64, max: usize },
    /// The header word announces more header bytes than the frame holds.
    #[error("header length {header_len} exceeds frame length {frame_len}")]
    HeaderLongerThanFrame { header_len: usize, frame_len: usize },
    /// High byte of the header word is neither 0 (JSON) nor 1 (ROCKETMQ).
    #[error("unknown serialize type {0}")]
    UnknownSerializeType(u8),
    /// Encoding: the header does not fit the 24-bit header length.
    #[error("encoded header of {0} bytes exceeds the 24-bit header length")]
    HeaderTooLarge(usize),
    /// Encoding: the whole frame does not fit the signed 32-bit frame length.
    #[error("encoded frame of {0} bytes exceeds the 32-bit frame length")]
    EncodedFrameTooLarge(usize),
    /// The JSON header is not valid JSON or has the wrong shape.
    #[error("invalid JSON header: {0}")]
    JsonHeader(String),
    /// The binary header ends before a field it announces.
    #[error("binary header truncated reading {field}: need {needed} bytes, {available} left")]
    Truncated {
        field: &'static str,
        needed: usize,
        available: usize,
    },
    /// A length field in the binary header is negative or over its limit.
    #[error("binary header field {field} has invalid length {len}")]
    InvalidLength { field: &'static str, len: i64 },
    /// Encoding: a value does not fit its binary-header field.
    #[error("{field} value {value} does not fit the binary (ROCKETMQ) header")]
    NotRepresentable { field: &'static str, value: i64 },
    /// A batch body is inconsistent; `offset` is where the bad entry starts.
    #[error("invalid batch body at byte {offset}: {reason}")]
    Batch { offset: usize, reason: String },
    /// A property key or value contains a separator character.
    #[error("property {0:?} contains a reserved separator character (\\x01 or \\x02)")]
    InvalidProperty(String),
    /// A message id string is malformed.
    #[error("invalid message id {id:?}: {reason}")]
    InvalidMessageId { id: String, reason: &'static str },
    /// A required header field is missing or a field has a bad value.
    #[error(transparent)]
    Header(#[from] HeaderError),
}
