//! JSON header (serialize type 0; framing.md §4).
//!
//! Java writes it with fastjson: keys sorted, `null`s omitted, no spaces.
//!
//! ```text
//! {"code":105,"extFields":{"topic":"TopicTest"},"flag":0,"language":"JAVA",
//!  "opaque":7,"serializeTypeCurrentRPC":"JSON","version":479}
//! ```
//!
//! **Decode is lenient**, because real clients differ (framing.md §4):
//! `extFields` values may be any JSON scalar (ali-ons and C++ send numbers
//! and booleans) and become Java-style strings; `null` values are absent;
//! `remark`, `extFields`, `version`, `flag` and `serializeTypeCurrentRPC`
//! may be missing or `null`; an empty remark is no remark; a missing
//! language is JAVA (the Java default) and an unknown one OTHER; extra keys are ignored. Only `code` and `opaque` are
//! required, and must be JSON integers.
//!
//! **Encode is strict**: compact fastjson form, keys sorted, always `code`,
//! `flag`, `language`, `opaque`, `serializeTypeCurrentRPC`, `version`;
//! `extFields` omitted when empty, `remark` omitted when `None`; all values
//! of `extFields` are strings (Go decodes them into `map[string]string`).

use std::fmt::Write as _;

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{Map, Value};

use super::command::{LanguageCode, RemotingCommand, SerializeType};
use super::ext_fields::ExtFields;
use super::ProtocolError;

/// Decode a JSON header into a command with an empty body.
///
/// The hand-written scanner ([`super::json_scan`]) decodes the headers
/// real clients send in one pass; anything it does not take is decoded by
/// [`decode_value`], the definition of the lenient rules.
pub fn decode(header: &[u8]) -> Result<RemotingCommand, ProtocolError> {
    match super::json_scan::decode(header) {
        Some(cmd) => Ok(cmd),
        None => decode_value(header),
    }
}

/// Decode a JSON header through `serde_json::Value`: the oracle of the
/// fast path, and the decoder of every header it declines.
pub fn decode_value(header: &[u8]) -> Result<RemotingCommand, ProtocolError> {
    let value: Value = serde_json::from_slice(header).map_err(|e| invalid(e.to_string()))?;
    let Value::Object(obj) = value else {
        return Err(invalid("top level is not an object"));
    };
    let code = int_field(&obj, "code")?.ok_or_else(|| invalid("missing \"code\""))?;
    let opaque = int_field(&obj, "opaque")?.ok_or_else(|| invalid("missing \"opaque\""))?;
    let flag = int_field(&obj, "flag")?.unwrap_or(0);
    let version = int_field(&obj, "version")?.unwrap_or(0);
    let language = match obj.get("language") {
        None | Some(Value::Null) => LanguageCode::Java,
        Some(Value::String(name)) => LanguageCode::from_name(name),
        // fastjson maps a number to the enum ordinal.
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u8::try_from(n).ok())
            .map_or(LanguageCode::Other, LanguageCode::from_u8),
        Some(_) => LanguageCode::Other,
    };
    let remark = match obj.get("remark") {
        None | Some(Value::Null) => None,
        Some(v) => Some(java_string(v)).filter(|s| !s.is_empty()),
    };
    let ext_fields = match obj.get("extFields") {
        None | Some(Value::Null) => ExtFields::new(),
        Some(Value::Object(map)) => map
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.clone(), java_string(v)))
            .collect(),
        Some(_) => return Err(invalid("\"extFields\" is not an object")),
    };
    Ok(RemotingCommand {
        code,
        language,
        version,
        opaque,
        flag,
        remark,
        ext_fields,
        body: Bytes::new(),
        serialize_type: SerializeType::Json,
    })
}

/// Append the JSON header of `cmd` to `dst` (fastjson form, module docs).
pub fn encode(cmd: &RemotingCommand, dst: &mut BytesMut) {
    let mut w = Writer(dst);
    w.raw("{\"code\":");
    w.int(cmd.code);
    if !cmd.ext_fields.is_empty() {
        w.raw(",\"extFields\":{");
        for (i, (key, value)) in cmd.ext_fields.iter().enumerate() {
            if i > 0 {
                w.raw(",");
            }
            w.string(key);
            w.raw(":");
            w.string(value);
        }
        w.raw("}");
    }
    w.raw(",\"flag\":");
    w.int(cmd.flag);
    w.raw(",\"language\":");
    w.string(cmd.language.name());
    w.raw(",\"opaque\":");
    w.int(cmd.opaque);
    if let Some(remark) = &cmd.remark {
        w.raw(",\"remark\":");
        w.string(remark);
    }
    w.raw(",\"serializeTypeCurrentRPC\":\"JSON\",\"version\":");
    w.int(cmd.version);
    w.raw("}");
}

fn invalid(reason: impl Into<String>) -> ProtocolError {
    ProtocolError::JsonHeader(reason.into())
}

/// An optional `i32` field: absent/`null` → `None`; a JSON integer in range
/// → its value; anything else is an error naming the field.
fn int_field(obj: &Map<String, Value>, key: &str) -> Result<Option<i32>, ProtocolError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_i64().and_then(|n| i32::try_from(n).ok()).map(Some).ok_or_else(|| {
            let shown: String = v.to_string().chars().take(64).collect();
            invalid(format!("\"{key}\" is not a 32-bit integer: {shown}"))
        }),
    }
}

/// The string Java would see for a JSON value in a `String` slot: strings
/// as-is, numbers in decimal, booleans `true`/`false`, objects and arrays
/// as their compact JSON text.
fn java_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

struct Writer<'a>(&'a mut BytesMut);

impl Writer<'_> {
    fn raw(&mut self, s: &str) {
        self.0.put_slice(s.as_bytes());
    }

    fn int(&mut self, n: i32) {
        // Writing to a BytesMut cannot fail; it grows.
        let _ = write!(self.0, "{n}");
    }

    /// A JSON string literal with standard escaping.
    fn string(&mut self, s: &str) {
        self.0.reserve(s.len() + 2);
        self.0.put_u8(b'"');
        let mut start = 0;
        for (i, byte) in s.bytes().enumerate() {
            let escape: &[u8] = match byte {
                b'"' => b"\\\"",
                b'\\' => b"\\\\",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                b'\t' => b"\\t",
                0x08 => b"\\b",
                0x0c => b"\\f",
                0x00..=0x1f => b"",
                _ => continue,
            };
            self.0.put_slice(&s.as_bytes()[start..i]);
            if escape.is_empty() {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                self.0.put_slice(b"\\u00");
                self.0.put_u8(HEX[usize::from(byte >> 4)]);
                self.0.put_u8(HEX[usize::from(byte & 0xf)]);
            } else {
                self.0.put_slice(escape);
            }
            start = i + 1;
        }
        self.0.put_slice(&s.as_bytes()[start..]);
        self.0.put_u8(b'"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::codes::{request, response};
    use crate::protocol::version;
    use proptest::prelude::*;

    const REQUEST: &str = r#"{"code":105,"extFields":{"topic":"TopicTest"},"flag":0,"language":"JAVA","opaque":7,"serializeTypeCurrentRPC":"JSON","version":479}"#;
    const ERROR_RESPONSE: &str = r#"{"code":17,"flag":1,"language":"JAVA","opaque":7,"remark":"No topic route info in name server for the topic: X","serializeTypeCurrentRPC":"JSON","version":479}"#;

    fn encoded(cmd: &RemotingCommand) -> String {
        let mut out = BytesMut::new();
        encode(cmd, &mut out);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn fastjson_request_example_round_trips_exactly() {
        let cmd = decode(REQUEST.as_bytes()).unwrap();
        assert_eq!(cmd.code, request::GET_ROUTEINFO_BY_TOPIC);
        assert_eq!(cmd.opaque, 7);
        assert_eq!(cmd.version, version::V5_3_3);
        assert_eq!(cmd.language, LanguageCode::Java);
        assert_eq!(cmd.ext_str("topic"), Some("TopicTest"));
        assert_eq!(encoded(&cmd), REQUEST);

        let built = RemotingCommand::new_request(request::GET_ROUTEINFO_BY_TOPIC)
            .with_opaque(7)
            .with_ext_fields([("topic", "TopicTest")].into_iter().collect());
        assert_eq!(encoded(&built), REQUEST);
    }

    #[test]
    fn fastjson_error_response_example_round_trips_exactly() {
        let cmd = decode(ERROR_RESPONSE.as_bytes()).unwrap();
        assert!(cmd.is_response());
        assert!(cmd.ext_fields.is_empty());
        assert_eq!(encoded(&cmd), ERROR_RESPONSE);

        let req = decode(REQUEST.as_bytes()).unwrap();
        let rsp = RemotingCommand::response_to(
            &req,
            response::TOPIC_NOT_EXIST,
            Some("No topic route info in name server for the topic: X".into()),
        );
        assert_eq!(encoded(&rsp), ERROR_RESPONSE);
    }

    #[test]
    fn ali_ons_numbers_and_booleans() {
        let header = r#"{"code":310,"language":"JAVA","version":121,"opaque":3,"flag":0,"extFields":{"a":"pg","b":"T","e":0,"f":0,"g":1700000000000,"k":false,"l":16,"neg":-1,"big":12345678901234567890,"float":1.5}}"#;
        let cmd = decode(header.as_bytes()).unwrap();
        assert_eq!(cmd.version, version::V3_4_9);
        assert_eq!(cmd.remark, None);
        assert_eq!(cmd.ext_fields.get_raw("e"), Some("0"));
        assert_eq!(cmd.ext_fields.get_raw("g"), Some("1700000000000"));
        assert_eq!(cmd.ext_fields.get_raw("k"), Some("false"));
        assert_eq!(cmd.ext_fields.get_raw("neg"), Some("-1"));
        assert_eq!(cmd.ext_fields.get_raw("big"), Some("12345678901234567890"));
        assert_eq!(cmd.ext_fields.get_raw("float"), Some("1.5"));
        assert_eq!(cmd.required_i64("g"), Ok(1_700_000_000_000));
        assert_eq!(cmd.required_bool("k"), Ok(false));
        // Re-encoded values are strings.
        assert!(encoded(&cmd).contains(r#""e":"0""#));
        assert!(encoded(&cmd).contains(r#""k":"false""#));
    }

    #[test]
    fn go_empty_strings_and_field_order() {
        let header = r#"{"code":11,"language":"GO","version":317,"opaque":1,"flag":0,"remark":"","extFields":{"consumerGroup":"g","subscription":"","expressionType":"","bname":"","subVersion":""}}"#;
        let cmd = decode(header.as_bytes()).unwrap();
        assert_eq!(cmd.language, LanguageCode::Go);
        assert_eq!(cmd.remark, None);
        assert_eq!(cmd.ext_str("consumerGroup"), Some("g"));
        assert_eq!(cmd.ext_str("subscription"), None);
        assert_eq!(cmd.ext_i64("subVersion"), Ok(None));
        assert_eq!(cmd.ext_str("bname"), None);
    }

    #[test]
    fn cpp_extra_keys_and_numbers() {
        let header = r#"{"code":34,"language":"CPP","version":333,"opaque":9,"flag":0,"remark":"","extFields":{"Signature":"","AccessKey":"","OnsChannel":"ALIYUN","queueId":3,"sysFlag":0},"unknownTopLevel":[1,2]}"#;
        let cmd = decode(header.as_bytes()).unwrap();
        assert_eq!(cmd.language, LanguageCode::Cpp);
        assert_eq!(cmd.version, version::V4_6_0);
        assert_eq!(cmd.ext_str("AccessKey"), None);
        assert_eq!(cmd.ext_str("OnsChannel"), Some("ALIYUN"));
        assert_eq!(cmd.required_i32("queueId"), Ok(3));
        assert_eq!(cmd.ext_fields.len(), 5);
    }

    #[test]
    fn minimal_and_null_fields() {
        let cmd = decode(br#"{"code":34,"opaque":2}"#).unwrap();
        assert_eq!((cmd.code, cmd.opaque, cmd.flag, cmd.version), (34, 2, 0, 0));
        assert_eq!(cmd.language, LanguageCode::Java);
        let cmd = decode(
            br#"{"code":34,"opaque":2,"flag":null,"version":null,"remark":null,"extFields":{"a":null,"b":"x"},"language":"KLINGON","serializeTypeCurrentRPC":"ROCKETMQ"}"#,
        )
        .unwrap();
        assert_eq!(cmd.language, LanguageCode::Other);
        assert_eq!(cmd.ext_fields.get_raw("a"), None);
        assert_eq!(cmd.ext_str("b"), Some("x"));
        assert_eq!(cmd.serialize_type, SerializeType::Json);
        let cmd = decode(br#"{"code":34,"opaque":2,"language":9,"extFields":{}}"#).unwrap();
        assert_eq!(cmd.language, LanguageCode::Go);
    }

    #[test]
    fn rejects_bad_shapes_with_clear_errors() {
        let err = |h: &str| decode(h.as_bytes()).unwrap_err().to_string();
        assert!(err("[1,2]").contains("not an object"));
        assert!(err("").starts_with("invalid JSON header"));
        assert!(err(r#"{"opaque":1}"#).contains("missing \"code\""));
        assert!(err(r#"{"code":1}"#).contains("missing \"opaque\""));
        assert!(err(r#"{"code":"105","opaque":1}"#).contains("\"code\" is not"));
        assert!(err(r#"{"code":1.5,"opaque":1}"#).contains("\"code\""));
        assert!(err(r#"{"code":1,"opaque":4294967296}"#).contains("\"opaque\""));
        assert!(err(r#"{"code":1,"opaque":1,"flag":"x"}"#).contains("\"flag\""));
        assert!(err(r#"{"code":1,"opaque":1,"extFields":[]}"#).contains("extFields"));
        assert!(err(r#"{"code":1,"opaque":1} trailing"#).contains("trailing"));
    }

    #[test]
    fn escapes_strings() {
        let mut cmd = RemotingCommand::new_request(310);
        cmd.ext_fields.insert("i", "TAGS\u{1}A\u{2}q\"b\\s/\n\t\u{7f}é");
        let text = encoded(&cmd);
        assert!(text.contains(r#""i":"TAGS\u0001A\u0002q\"b\\s/\n\t"#), "{text}");
        assert_eq!(decode(text.as_bytes()).unwrap(), cmd);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = format!(
            r#"{{"code":1,"opaque":1,"extFields":{{"x":{}{}}}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert!(decode(deep.as_bytes()).is_err());
    }

    fn arb_command() -> impl Strategy<Value = RemotingCommand> {
        (
            any::<i32>(),
            0u8..14,
            any::<i32>(),
            any::<i32>(),
            any::<i32>(),
            proptest::option::of("\\PC{1,20}|[\x00-\x1f\"\\\\]{1,5}"),
            proptest::collection::btree_map("\\PC{0,8}", "\\PC{0,16}|[\x00-\x1f]{0,3}", 0..6),
        )
            .prop_map(|(code, lang, version, opaque, flag, remark, ext)| RemotingCommand {
                code,
                language: LanguageCode::from_u8(lang),
                version,
                opaque,
                flag,
                remark,
                ext_fields: ext.into(),
                body: Bytes::new(),
                serialize_type: SerializeType::Json,
            })
    }

    fn check_against_oracle(bytes: &[u8]) -> Result<(), TestCaseError> {
        if let Some(fast) = super::super::json_scan::decode(bytes) {
            match decode_value(bytes) {
                Ok(oracle) => prop_assert_eq!(fast, oracle, "{}", String::from_utf8_lossy(bytes)),
                Err(e) => prop_assert!(
                    false,
                    "fast path took {:?}, oracle: {e}",
                    String::from_utf8_lossy(bytes)
                ),
            }
        }
        Ok(())
    }

    /// JSON scalars and values as clients (and attackers) write them.
    fn json_value() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => any::<i64>().prop_map(|n| n.to_string()),
            2 => (-300i64..300).prop_map(|n| n.to_string()),
            1 => Just("-0".to_string()),
            1 => Just("007".to_string()),
            1 => "-?[0-9]{1,3}\\.[0-9]{1,3}([eE][+-]?[0-9]{1,2})?",
            1 => Just("18446744073709551615".to_string()),
            1 => Just("99999999999999999999999".to_string()),
            4 => "\\PC{0,12}".prop_map(|s| serde_json::to_string(&s).unwrap()),
            2 => r#""([a-z]|\\[nrtbf/"\\]|\\u[0-9a-fA-F]{4}|\\u[dD][89abAB][0-9a-f]{2}(\\u[dD][c-fC-F][0-9a-f]{2})?){0,6}""#,
            1 => Just("\"tab\there\"".to_string()),
            2 => Just("true".to_string()),
            1 => Just("false".to_string()),
            2 => Just("null".to_string()),
            1 => Just("{}".to_string()),
            1 => Just("[1,\"a\"]".to_string()),
            1 => Just("{\"x\":[null]}".to_string()),
        ]
    }

    fn header_like() -> impl Strategy<Value = String> {
        let key = prop_oneof![
            Just("code".to_string()),
            Just("opaque".to_string()),
            Just("flag".to_string()),
            Just("version".to_string()),
            Just("language".to_string()),
            Just("remark".to_string()),
            Just("serializeTypeCurrentRPC".to_string()),
            Just("extFields".to_string()),
            Just("lang\\u0075age".to_string()),
            "[a-zA-Z]{1,8}",
        ];
        let ext_key =
            prop_oneof![4 => "[a-zA-Z]{1,8}", 1 => Just("t\\u00f6pic".to_string()), 1 => Just("\u{e9}".to_string())];
        let ext = proptest::collection::vec((ext_key, json_value()), 0..8).prop_map(|fields| {
            let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            format!("{{{}}}", body.join(","))
        });
        let value = prop_oneof![3 => json_value(), 1 => ext, 1 => Just("\"JAVA\"".to_string()), 1 => Just("\"GO\"".to_string())];
        let ws = prop_oneof![8 => Just(""), 1 => Just(" "), 1 => Just("\n\t ")];
        (
            Just(("code".to_string(), "10".to_string())),
            Just(("opaque".to_string(), "3".to_string())),
            proptest::collection::vec((key, value), 0..9),
            ws,
        )
            .prop_map(|(c, o, rest, ws)| {
                let mut all = vec![c, o];
                all.extend(rest);
                let body: Vec<String> = all.iter().map(|(k, v)| format!("{ws}\"{k}\"{ws}:{ws}{v}")).collect();
                format!("{ws}{{{}{ws}}}{ws}", body.join(","))
            })
    }

    proptest! {
        // Cheap cases: run more of them than the default 256.
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn round_trip(cmd in arb_command()) {
            let mut out = BytesMut::new();
            encode(&cmd, &mut out);
            // Our output is always valid JSON with string extFields values.
            let value: Value = serde_json::from_slice(&out).unwrap();
            if let Some(Value::Object(ext)) = value.get("extFields") {
                prop_assert!(ext.values().all(Value::is_string));
            }
            prop_assert_eq!(decode(&out).unwrap(), cmd);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(cmd) = decode(&bytes) {
                let text: usize = cmd.remark.as_ref().map_or(0, String::len)
                    + cmd.ext_fields.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
                // Numbers may re-print longer ("9e15" -> "9000000000000000.0").
                prop_assert!(text <= 8 * bytes.len());
            }
        }

        /// The fast path and the oracle agree on every header the fast
        /// path takes, and it takes every header we encode ourselves.
        #[test]
        fn fast_path_matches_oracle_on_encoded(cmd in arb_command()) {
            let mut out = BytesMut::new();
            encode(&cmd, &mut out);
            let fast = super::super::json_scan::decode(&out);
            prop_assert!(fast.is_some(), "declined {}", String::from_utf8_lossy(&out));
            prop_assert_eq!(fast.unwrap(), decode_value(&out).unwrap());
        }

        /// Header-shaped JSON with every scalar kind, duplicates, escapes,
        /// whitespace, nesting and unknown keys: whenever the fast path
        /// answers, the oracle answers the same.
        #[test]
        fn fast_path_matches_oracle_on_generated(text in header_like()) {
            check_against_oracle(text.as_bytes())?;
        }

        /// The same after corrupting, inserting or deleting a few bytes.
        #[test]
        fn fast_path_matches_oracle_on_mutated(
            text in header_like(),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..3, any::<u8>()), 1..4),
        ) {
            let mut bytes = text.into_bytes();
            for (at, kind, byte) in edits {
                let i = at.index(bytes.len() + 1);
                match kind {
                    0 if i < bytes.len() => bytes[i] = byte,
                    1 => bytes.insert(i, byte),
                    _ if i < bytes.len() => { bytes.remove(i); }
                    _ => {}
                }
            }
            check_against_oracle(&bytes)?;
        }

        #[test]
        fn json_shaped_input_never_panics(text in r#"\{("[a-zA-Z]{1,6}":(-?[0-9]{1,12}|"[^"]{0,5}"|true|null|\{\}|\[\]),?){0,6}\}"#) {
            let _ = decode(text.as_bytes());
        }
    }
}
