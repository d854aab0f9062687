//! `RemotingCommand`: the unit of every request and response.
//!
//! Both header serializations (JSON and ROCKETMQ binary) carry the same
//! fields (framing.md §3):
//!
//! ```text
//!  code      i32   request code (request) or response code (response)
//!  language  enum  sender's language; JSON: name, binary: 1 byte
//!  version   i32   sender's MQVersion ordinal; binary: 2 bytes
//!  opaque    i32   request id; a response echoes its request's opaque
//!  flag      i32   bit 0 RPC_TYPE (1 = response), bit 1 RPC_ONEWAY
//!  remark    str?  free text; the error message of error responses
//!  extFields map   the flattened custom header (ext_fields.rs)
//!  body      bytes opaque; format depends on the code
//! ```

use bytes::Bytes;

use super::ext_fields::{ExtFields, HeaderError};
use super::version;

/// `flag` bit 0: set on responses.
pub const RPC_TYPE_RESPONSE: i32 = 0b01;
/// `flag` bit 1: set on oneway requests (no response may be written).
pub const RPC_ONEWAY: i32 = 0b10;

/// Header serialization, the high byte of the frame's header word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SerializeType {
    #[default]
    Json = 0,
    RocketMq = 1,
}

impl SerializeType {
    pub fn from_u8(byte: u8) -> Option<Self> {
        match byte {
            0 => Some(Self::Json),
            1 => Some(Self::RocketMq),
            _ => None,
        }
    }

    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// The `serializeTypeCurrentRPC` name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Json => "JSON",
            Self::RocketMq => "ROCKETMQ",
        }
    }
}

/// `LanguageCode`: the sender's implementation language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LanguageCode {
    #[default]
    Java = 0,
    Cpp = 1,
    Dotnet = 2,
    Python = 3,
    Delphi = 4,
    Erlang = 5,
    Ruby = 6,
    Other = 7,
    Http = 8,
    Go = 9,
    Php = 10,
    Oms = 11,
    Rust = 12,
    NodeJs = 13,
}

impl LanguageCode {
    const ALL: [LanguageCode; 14] = [
        Self::Java,
        Self::Cpp,
        Self::Dotnet,
        Self::Python,
        Self::Delphi,
        Self::Erlang,
        Self::Ruby,
        Self::Other,
        Self::Http,
        Self::Go,
        Self::Php,
        Self::Oms,
        Self::Rust,
        Self::NodeJs,
    ];

    /// From the binary-header byte; unknown values become [`Self::Other`].
    pub fn from_u8(byte: u8) -> Self {
        Self::ALL.get(usize::from(byte)).copied().unwrap_or(Self::Other)
    }

    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// The Java enum name, as sent in JSON headers.
    pub fn name(self) -> &'static str {
        match self {
            Self::Java => "JAVA",
            Self::Cpp => "CPP",
            Self::Dotnet => "DOTNET",
            Self::Python => "PYTHON",
            Self::Delphi => "DELPHI",
            Self::Erlang => "ERLANG",
            Self::Ruby => "RUBY",
            Self::Other => "OTHER",
            Self::Http => "HTTP",
            Self::Go => "GO",
            Self::Php => "PHP",
            Self::Oms => "OMS",
            Self::Rust => "RUST",
            Self::NodeJs => "NODE_JS",
        }
    }

    /// From the JSON name; unknown names become [`Self::Other`] (fastjson
    /// yields `null` there, which no code path distinguishes from OTHER).
    pub fn from_name(name: &str) -> Self {
        Self::ALL
            .iter()
            .copied()
            .find(|l| l.name() == name)
            .unwrap_or(Self::Other)
    }
}

/// One request or response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemotingCommand {
    pub code: i32,
    pub language: LanguageCode,
    pub version: i32,
    pub opaque: i32,
    pub flag: i32,
    pub remark: Option<String>,
    pub ext_fields: ExtFields,
    pub body: Bytes,
    /// How the header was (or will be) serialized.
    pub serialize_type: SerializeType,
}

impl RemotingCommand {
    /// A request as shardmq sends it: language JAVA, our broker version,
    /// JSON header, opaque 0 (the requester assigns it).
    pub fn new_request(code: i32) -> Self {
        Self {
            code,
            language: LanguageCode::Java,
            version: version::CURRENT,
            opaque: 0,
            flag: 0,
            remark: None,
            ext_fields: ExtFields::new(),
            body: Bytes::new(),
            serialize_type: SerializeType::Json,
        }
    }

    /// The response to `request`: same opaque and serialization, response
    /// bit set, never oneway.
    pub fn response_to(request: &RemotingCommand, code: i32, remark: Option<String>) -> Self {
        Self {
            code,
            flag: RPC_TYPE_RESPONSE,
            opaque: request.opaque,
            remark,
            serialize_type: request.serialize_type,
            ..Self::new_request(code)
        }
    }

    pub fn with_opaque(mut self, opaque: i32) -> Self {
        self.opaque = opaque;
        self
    }

    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    pub fn with_ext_fields(mut self, ext_fields: ExtFields) -> Self {
        self.ext_fields = ext_fields;
        self
    }

    pub fn with_remark(mut self, remark: impl Into<String>) -> Self {
        self.remark = Some(remark.into());
        self
    }

    pub fn with_serialize_type(mut self, serialize_type: SerializeType) -> Self {
        self.serialize_type = serialize_type;
        self
    }

    /// Mark as a oneway request.
    pub fn with_oneway(mut self) -> Self {
        self.flag |= RPC_ONEWAY;
        self
    }

    pub fn is_response(&self) -> bool {
        self.flag & RPC_TYPE_RESPONSE != 0
    }

    /// A oneway request must not be answered, not even with an error.
    /// The bit means nothing on a response.
    pub fn is_oneway(&self) -> bool {
        !self.is_response() && self.flag & RPC_ONEWAY != 0
    }

    /// `extFields[key]`, with `""` treated as absent.
    pub fn ext_str(&self, key: &str) -> Option<&str> {
        self.ext_fields.get_str(key)
    }

    pub fn ext_i32(&self, key: &str) -> Result<Option<i32>, HeaderError> {
        self.ext_fields.get_i32(key)
    }

    pub fn ext_i64(&self, key: &str) -> Result<Option<i64>, HeaderError> {
        self.ext_fields.get_i64(key)
    }

    pub fn ext_bool(&self, key: &str) -> Result<Option<bool>, HeaderError> {
        self.ext_fields.get_bool(key)
    }

    pub fn required_str(&self, key: &str) -> Result<&str, HeaderError> {
        self.ext_fields.required_str(key)
    }

    pub fn required_i32(&self, key: &str) -> Result<i32, HeaderError> {
        self.ext_fields.required_i32(key)
    }

    pub fn required_i64(&self, key: &str) -> Result<i64, HeaderError> {
        self.ext_fields.required_i64(key)
    }

    pub fn required_bool(&self, key: &str) -> Result<bool, HeaderError> {
        self.ext_fields.required_bool(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::codes::{request, response};

    #[test]
    fn response_echoes_opaque_and_serialization() {
        let mut req = RemotingCommand::new_request(request::GET_ROUTEINFO_BY_TOPIC)
            .with_opaque(7)
            .with_serialize_type(SerializeType::RocketMq)
            .with_oneway();
        req.language = LanguageCode::Go;
        assert!(!req.is_response());
        assert!(req.is_oneway());

        let rsp = RemotingCommand::response_to(&req, response::TOPIC_NOT_EXIST, Some("no route".into()));
        assert_eq!(rsp.opaque, 7);
        assert_eq!(rsp.code, response::TOPIC_NOT_EXIST);
        assert_eq!(rsp.flag, RPC_TYPE_RESPONSE);
        assert!(rsp.is_response());
        assert!(!rsp.is_oneway());
        assert_eq!(rsp.serialize_type, SerializeType::RocketMq);
        assert_eq!(rsp.language, LanguageCode::Java);
        assert_eq!(rsp.version, version::CURRENT);
        assert_eq!(rsp.remark.as_deref(), Some("no route"));
        assert!(rsp.body.is_empty() && rsp.ext_fields.is_empty());
    }

    #[test]
    fn oneway_bit_on_a_response_is_not_oneway() {
        let mut cmd = RemotingCommand::new_request(0);
        cmd.flag = RPC_TYPE_RESPONSE | RPC_ONEWAY;
        assert!(!cmd.is_oneway());
    }

    #[test]
    fn language_codes_round_trip() {
        for byte in 0..=13u8 {
            let lang = LanguageCode::from_u8(byte);
            assert_eq!(lang.as_u8(), byte);
            assert_eq!(LanguageCode::from_name(lang.name()), lang);
        }
        assert_eq!(LanguageCode::from_u8(14), LanguageCode::Other);
        assert_eq!(LanguageCode::from_u8(255), LanguageCode::Other);
        assert_eq!(LanguageCode::from_name("COBOL"), LanguageCode::Other);
        assert_eq!(LanguageCode::from_name("java"), LanguageCode::Other);
        assert_eq!(LanguageCode::from_name("NODE_JS"), LanguageCode::NodeJs);
    }

    #[test]
    fn serialize_types() {
        assert_eq!(SerializeType::from_u8(0), Some(SerializeType::Json));
        assert_eq!(SerializeType::from_u8(1), Some(SerializeType::RocketMq));
        assert_eq!(SerializeType::from_u8(2), None);
        assert_eq!(SerializeType::RocketMq.name(), "ROCKETMQ");
    }

    #[test]
    fn ext_getters_delegate() {
        let mut cmd = RemotingCommand::new_request(request::PULL_MESSAGE);
        cmd.ext_fields.insert("queueId", "2");
        cmd.ext_fields.insert("bname", "");
        cmd.ext_fields.insert("suspend", "true");
        cmd.ext_fields.insert("queueOffset", "x");
        assert_eq!(cmd.ext_str("bname"), None);
        assert_eq!(cmd.ext_i32("queueId"), Ok(Some(2)));
        assert_eq!(cmd.required_i32("queueId"), Ok(2));
        assert_eq!(cmd.ext_bool("suspend"), Ok(Some(true)));
        assert_eq!(cmd.ext_i64("nope"), Ok(None));
        assert!(cmd.required_i64("queueOffset").is_err());
        assert!(cmd.required_str("topic").is_err());
        assert!(cmd.required_bool("nope").is_err());
    }
}
