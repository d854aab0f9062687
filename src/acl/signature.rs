//! Request signatures, as Java's `AclClientRPCHook` computes them
//! (shared/protocol/acl.md §2):
//!
//! ```text
//!   content   = UTF-8(values of extFields except Signature, in key order) ++ body
//!   Signature = Base64(HMAC-SHA1(key = UTF-8(secretKey), content))
//! ```
//!
//! Key order is Java `TreeMap`'s: UTF-16 code units, which is byte order
//! for ASCII keys (every real header) but not in general. Values are
//! concatenated without separators; an empty value adds nothing. The
//! decoders already turned JSON numbers and booleans into their Java text
//! and a binary-header null into `""`.
//!
//! Client quirks ([`verify_request`]):
//! * `_UNIQUE_KEY_QUERY` (QUERY_MESSAGE): left out of the content for
//!   clients up to V4_9_3 (version ≤ 399), signed by later ones (Apache 5.x
//!   broker's rule). Clients have differed across releases, so when the
//!   first rule fails the other is tried: the flag only chooses how a
//!   query matches keys.
//! * `SecurityToken`: the Go client sends it but leaves it out of what it
//!   signs; from a Go client (language GO) it is left out.
//!
//! The computed and received Base64 strings are compared in constant time.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

use crate::protocol::{version, ExtFields, LanguageCode, RemotingCommand};

pub const ACCESS_KEY: &str = "AccessKey";
pub const SIGNATURE: &str = "Signature";
pub const SECURITY_TOKEN: &str = "SecurityToken";
/// RocketMQ `MixAll.UNIQUE_MSG_QUERY_FLAG`.
pub const UNIQUE_KEY_QUERY: &str = "_UNIQUE_KEY_QUERY";

/// Fields left out of the signed content besides `Signature`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Exclusions {
    pub unique_key_query: bool,
    pub security_token: bool,
}

impl Exclusions {
    fn excludes(self, key: &str) -> bool {
        key == SIGNATURE
            || (self.unique_key_query && key == UNIQUE_KEY_QUERY)
            || (self.security_token && key == SECURITY_TOKEN)
    }
}

/// Calls `f` with each value to sign, in Java `TreeMap` order.
fn each_signed_value(ext: &ExtFields, ex: Exclusions, mut f: impl FnMut(&[u8])) {
    // `ExtFields` iterates in byte order, which is UTF-16 order unless a
    // key has a character above U+007F: only then is a sorted copy needed.
    if ext.iter().all(|(k, _)| k.is_ascii()) {
        for (k, v) in ext.iter() {
            if !ex.excludes(k) {
                f(v.as_bytes());
            }
        }
    } else {
        let mut sorted: Vec<(&str, &str)> = ext.iter().filter(|(k, _)| !ex.excludes(k)).collect();
        sorted.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
        for (_, v) in sorted {
            f(v.as_bytes());
        }
    }
}

/// The signed content (values then body), for tests and diagnostics; the
/// signature itself is computed without building it.
pub fn content(ext: &ExtFields, body: &[u8], ex: Exclusions) -> Vec<u8> {
    let mut out = Vec::new();
    each_signed_value(ext, ex, |v| out.extend_from_slice(v));
    out.extend_from_slice(body);
    out
}

/// Base64 of a 20-byte HMAC-SHA1: 28 characters, padding included.
const SIGNATURE_LEN: usize = 28;

fn signature_bytes(secret: &str, ext: &ExtFields, body: &[u8], ex: Exclusions) -> [u8; SIGNATURE_LEN] {
    let mut out = [0u8; SIGNATURE_LEN];
    // HMAC takes keys of any length: `new_from_slice` cannot fail.
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(secret.as_bytes()) else {
        return out;
    };
    each_signed_value(ext, ex, |v| mac.update(v));
    mac.update(body);
    let written = base64::engine::general_purpose::STANDARD.encode_slice(mac.finalize().into_bytes(), &mut out);
    debug_assert_eq!(written.ok(), Some(SIGNATURE_LEN));
    out
}

/// The `Signature` a client with `secret` sends for `ext` and `body`.
pub fn sign(secret: &str, ext: &ExtFields, body: &[u8], ex: Exclusions) -> String {
    String::from_utf8_lossy(&signature_bytes(secret, ext, body, ex)).into_owned()
}

/// Constant-time equality of two signatures (their length is public).
pub fn signatures_equal(a: &str, b: &str) -> bool {
    bytes_equal(a.as_bytes(), b.as_bytes())
}

fn bytes_equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// The exclusions the sender of `cmd` applied, by its version and language.
pub fn exclusions_for(cmd: &RemotingCommand) -> Exclusions {
    Exclusions {
        unique_key_query: cmd.version <= version::V4_9_3,
        security_token: cmd.language == LanguageCode::Go,
    }
}

/// True when `cmd` carries a valid signature made with `secret`.
pub fn verify_request(secret: &str, cmd: &RemotingCommand) -> bool {
    let Some(received) = cmd.ext_fields.get_str(SIGNATURE) else {
        return false;
    };
    let received = received.as_bytes();
    let ex = exclusions_for(cmd);
    if bytes_equal(&signature_bytes(secret, &cmd.ext_fields, &cmd.body, ex), received) {
        return true;
    }
    if cmd.ext_fields.get_raw(UNIQUE_KEY_QUERY).is_some() {
        let other = Exclusions {
            unique_key_query: !ex.unique_key_query,
            ..ex
        };
        return bytes_equal(&signature_bytes(secret, &cmd.ext_fields, &cmd.body, other), received);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::codes::request;
    use proptest::prelude::*;

    // Expected signatures below were computed once, independently, with
    // Python's standard library (the unicode one also with Java's
    // TreeMap + javax.crypto.Mac, which agreed):
    //
    //   def sign(secret, fields, body=b"", exclude=("Signature",)):
    //       keys = sorted((k for k in fields if k not in exclude),
    //                     key=lambda k: k.encode("utf-16-be"))
    //       content = "".join(fields[k] for k in keys).encode("utf-8") + body
    //       return base64.b64encode(hmac.new(secret.encode("utf-8"), content,
    //                                        hashlib.sha1).digest()).decode()
    //
    // with the field maps written out in each test.

    fn ext(fields: &[(&str, &str)]) -> ExtFields {
        fields.iter().copied().collect()
    }

    fn send_v2() -> ExtFields {
        ext(&[
            ("AccessKey", "RocketMQ"),
            ("a", "pg"),
            ("b", "TopicTest"),
            ("c", "TBW102"),
            ("d", "4"),
            ("e", "0"),
            ("f", "0"),
            ("g", "1700000000000"),
            ("h", "0"),
            ("i", "KEYS\u{1}k1\u{2}UNIQ_KEY\u{1}ABC\u{2}"),
            ("j", "0"),
            ("k", "false"),
            ("m", "false"),
            ("n", "broker-a"),
            ("Signature", "ignored"),
        ])
    }

    #[test]
    fn java_send_v2_with_body() {
        let sig = sign("12345678", &send_v2(), b"Hello RocketMQ", Exclusions::default());
        assert_eq!(sig, "iqWVmlxkmCHez7GQA9iB7mvoBIA=");
        // The content is the values in key order, then the body.
        let c = content(&send_v2(), b"!", Exclusions::default());
        assert!(c.starts_with(b"RocketMQpgTopicTestTBW1024001700000000000"), "{c:?}");
        assert!(c.ends_with(b"broker-a!"));
    }

    #[test]
    fn ali_ons_fields_without_body() {
        let f = ext(&[
            ("AccessKey", "onsAccess"),
            ("OnsChannel", "ALIYUN"),
            ("consumerGroup", "CID_1"),
            ("topic", "T"),
            ("queueId", "0"),
            ("commitOffset", "1700000000000"),
            ("empty", ""),
        ]);
        assert_eq!(
            sign("ons-secret-1", &f, b"", Exclusions::default()),
            "8UyUFf/HRCojarimRN8I8Em0do4="
        );
    }

    #[test]
    fn ali_ons_json_numbers_are_signed_as_their_text() {
        // ali-ons sends numbers and booleans as JSON scalars and signs
        // String(value); the JSON header decoder turns them into that text.
        // Expected: the fields as strings ("e": "0", "g": "1700000000000",
        // "k": "false") signed with "ons-secret-1" over body "hi".
        let header = br#"{"code":310,"language":"NODE_JS","version":121,"opaque":3,"flag":0,"extFields":{"AccessKey":"onsAccess","OnsChannel":"ALIYUN","a":"PID_1","b":"T","e":0,"g":1700000000000,"k":false,"Signature":"YhHzwhJ4n9QLkfFYGTEIdShYDPA="}}"#;
        let cmd = crate::protocol::json_header::decode(header)
            .unwrap()
            .with_body(&b"hi"[..]);
        assert!(verify_request("ons-secret-1", &cmd));
        assert!(!verify_request("ons-secret-2", &cmd));
    }

    #[test]
    fn keys_sort_as_java_utf16_not_as_bytes() {
        let f = ext(&[
            ("AccessKey", "unicode1"),
            ("\u{ff61}", "X"),
            ("\u{1F600}", "Y"),
            ("a", "Z"),
            ("k\u{e9}", "\u{e9}t\u{e9}"),
        ]);
        let sig = sign("secret-utf16", &f, b"\x00\xff", Exclusions::default());
        assert_eq!(sig, "B49k/BJFdLeLCkwUjNSzQYKFA9o=");
        // What byte order would give (U+FF61 before U+1F600): different.
        assert_ne!(sig, "I1bqPYWc+4yY2jDtAMoGwGWbX6Q=");
    }

    fn command(code: i32, fields: &[(&str, &str)], version: i32, language: LanguageCode) -> RemotingCommand {
        let mut cmd = RemotingCommand::new_request(code).with_ext_fields(ext(fields));
        cmd.version = version;
        cmd.language = language;
        cmd
    }

    const QUERY: &[(&str, &str)] = &[
        ("AccessKey", "RocketMQ"),
        ("topic", "TopicTest"),
        ("key", "ABC"),
        ("maxNum", "32"),
        ("beginTimestamp", "0"),
        ("endTimestamp", "9223372036854775807"),
        ("_UNIQUE_KEY_QUERY", "true"),
    ];
    const QUERY_WITH_FLAG: &str = "2kAw7xZMAu08eU0krWUXtC3RNo4=";
    const QUERY_WITHOUT_FLAG: &str = "++xu/av9WNQmFCjqtyiL8YsrYRQ=";

    #[test]
    fn unique_key_query_rule_by_version() {
        let old = command(request::QUERY_MESSAGE, QUERY, version::V4_9_3, LanguageCode::Java);
        assert_eq!(
            sign("12345678", &old.ext_fields, b"", exclusions_for(&old)),
            QUERY_WITHOUT_FLAG
        );
        let new = command(request::QUERY_MESSAGE, QUERY, version::V4_9_4, LanguageCode::Java);
        assert_eq!(
            sign("12345678", &new.ext_fields, b"", exclusions_for(&new)),
            QUERY_WITH_FLAG
        );
        // Either signature verifies at either version (clients differed).
        for v in [version::V4_9_3, version::V4_9_4, version::V5_3_3] {
            for sig in [QUERY_WITH_FLAG, QUERY_WITHOUT_FLAG] {
                let mut cmd = command(request::QUERY_MESSAGE, QUERY, v, LanguageCode::Java);
                cmd.ext_fields.insert(SIGNATURE, sig);
                assert!(verify_request("12345678", &cmd), "version {v} signature {sig}");
                assert!(!verify_request("12345679", &cmd));
            }
        }
    }

    #[test]
    fn go_leaves_the_security_token_unsigned() {
        let fields = [
            ("AccessKey", "goAccess1"),
            ("SecurityToken", "sts-token"),
            ("topic", "T"),
            ("consumerGroup", "g"),
        ];
        let mut go = command(request::PULL_MESSAGE, &fields, version::V4_5_2, LanguageCode::Go);
        go.ext_fields.insert(SIGNATURE, "AnRdMq+VXoa0S5st5KQ6t0z0vkI=");
        assert!(verify_request("go-secret-1", &go));
        let mut java = command(request::PULL_MESSAGE, &fields, version::V4_9_8, LanguageCode::Java);
        java.ext_fields.insert(SIGNATURE, "B5HmYTzpSIs5KZqFEJop/9reefc=");
        assert!(verify_request("go-secret-1", &java));
        // Each with the other's rule fails.
        java.ext_fields.insert(SIGNATURE, "AnRdMq+VXoa0S5st5KQ6t0z0vkI=");
        assert!(!verify_request("go-secret-1", &java));
    }

    #[test]
    fn verification_fails_on_any_change() {
        let secret = "12345678";
        let mut cmd = RemotingCommand::new_request(request::SEND_MESSAGE_V2)
            .with_ext_fields(send_v2())
            .with_body(&b"Hello RocketMQ"[..]);
        cmd.ext_fields.insert(SIGNATURE, "iqWVmlxkmCHez7GQA9iB7mvoBIA=");
        assert!(verify_request(secret, &cmd));
        assert!(!verify_request("12345679", &cmd));
        let mut body = cmd.clone().with_body(&b"Hello RocketMQ!"[..]);
        assert!(!verify_request(secret, &body));
        body = cmd.clone();
        body.ext_fields.insert("b", "OtherTopic");
        assert!(!verify_request(secret, &body));
        body = cmd.clone();
        body.ext_fields.insert("zz", "extra");
        assert!(!verify_request(secret, &body));
        body = cmd.clone();
        body.ext_fields.remove(SIGNATURE);
        assert!(!verify_request(secret, &body));
        body.ext_fields.insert(SIGNATURE, "");
        assert!(!verify_request(secret, &body));
        // Values are concatenated without separators: moving a character
        // between adjacent values keeps the content, and so the signature
        // (a property of the Java algorithm, kept for compatibility).
        body = cmd.clone();
        body.ext_fields.insert("a", "p");
        body.ext_fields.insert("b", "gTopicTest");
        assert!(verify_request(secret, &body));
    }

    #[test]
    fn constant_time_comparison_is_equality() {
        assert!(signatures_equal("abc=", "abc="));
        assert!(!signatures_equal("abc=", "abd="));
        assert!(!signatures_equal("abc=", "abc"));
        assert!(!signatures_equal("", "a"));
        assert!(signatures_equal("", ""));
    }

    proptest! {
        #[test]
        fn signing_then_verifying_round_trips(
            fields in proptest::collection::btree_map("\\PC{1,8}", "\\PC{0,12}", 0..8),
            body in proptest::collection::vec(any::<u8>(), 0..64),
            secret in "[ -~]{7,20}",
            go in any::<bool>(),
            version in 0i32..600,
        ) {
            let mut cmd = RemotingCommand::new_request(request::SEND_MESSAGE)
                .with_ext_fields(fields.into())
                .with_body(body);
            cmd.version = version;
            cmd.language = if go { LanguageCode::Go } else { LanguageCode::Java };
            let sig = sign(&secret, &cmd.ext_fields, &cmd.body, exclusions_for(&cmd));
            cmd.ext_fields.insert(SIGNATURE, &sig);
            prop_assert!(verify_request(&secret, &cmd));
            let wrong = format!("{secret}x");
            prop_assert!(!verify_request(&wrong, &cmd));
        }
    }
}
