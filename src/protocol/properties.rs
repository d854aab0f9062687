//! Message property strings (message.md §2).
//!
//! ```text
//!  key1 \x01 value1 \x02 key2 \x01 value2 \x02 ...
//! ```
//!
//! Carried in the `properties` send header field and in the PROPERTIES part
//! of every stored record. Java writes a trailing `\x02` after every pair
//! (`messageProperties2String`); the parser (`string2messageProperties`) is
//! lenient and is mirrored exactly here:
//!
//! * split on `\x02`; a missing trailing `\x02` is fine;
//! * a segment is kept only if its first `\x01` leaves a non-empty key and
//!   a non-empty value (`k\x01\x02` and `\x01v\x02` are dropped);
//! * the value is everything after the first `\x01` (it may contain more
//!   `\x01`s);
//! * a repeated key replaces the earlier value (Java's map `put`); here it
//!   keeps the position of its first occurrence.

use super::ProtocolError;

/// Separates a key from its value.
pub const NAME_VALUE_SEPARATOR: char = '\u{1}';
/// Terminates every pair.
pub const PROPERTY_SEPARATOR: char = '\u{2}';
/// Stored length is a signed 16-bit byte count; sends above are illegal.
pub const MAX_PROPERTIES_LEN: usize = i16::MAX as usize;

/// Property names (message.md §3, Java `MessageConst`).
pub mod keys {
    pub const TAGS: &str = "TAGS";
    /// Business keys, space-separated; indexed for QUERY_MESSAGE.
    pub const KEYS: &str = "KEYS";
    /// Client message id (the user-visible msgId).
    pub const UNIQ_KEY: &str = "UNIQ_KEY";
    /// `"true"`/`"false"`: wait for the store before replying.
    pub const WAIT: &str = "WAIT";
    /// Delay level 1..18; `-1` marks a DLQ redirect.
    pub const DELAY: &str = "DELAY";
    pub const TIMER_DELIVER_MS: &str = "TIMER_DELIVER_MS";
    pub const TIMER_DELAY_SEC: &str = "TIMER_DELAY_SEC";
    pub const TIMER_DELAY_MS: &str = "TIMER_DELAY_MS";
    pub const TIMER_OUT_MS: &str = "TIMER_OUT_MS";
    pub const TIMER_ENQUEUE_MS: &str = "TIMER_ENQUEUE_MS";
    pub const TIMER_DEQUEUE_MS: &str = "TIMER_DEQUEUE_MS";
    pub const TIMER_ROLL_TIMES: &str = "TIMER_ROLL_TIMES";
    pub const TIMER_DEL_UNIQKEY: &str = "TIMER_DEL_UNIQKEY";
    pub const TIMER_DELAY_LEVEL: &str = "TIMER_DELAY_LEVEL";
    /// Aliyun ONS absolute delivery time (ali-ons); Apache brokers ignore it.
    pub const START_DELIVER_TIME: &str = "__STARTDELIVERTIME";
    pub const REAL_TOPIC: &str = "REAL_TOPIC";
    pub const REAL_QUEUE_ID: &str = "REAL_QID";
    pub const RETRY_TOPIC: &str = "RETRY_TOPIC";
    pub const ORIGIN_MESSAGE_ID: &str = "ORIGIN_MESSAGE_ID";
    pub const RECONSUME_TIME: &str = "RECONSUME_TIME";
    pub const MAX_RECONSUME_TIMES: &str = "MAX_RECONSUME_TIMES";
    /// `"true"` = transactional half message.
    pub const TRANSACTION_PREPARED: &str = "TRAN_MSG";
    pub const PRODUCER_GROUP: &str = "PGROUP";
    pub const TRANSACTION_ID: &str = "__transactionId__";
    pub const TRANSACTION_CHECK_TIMES: &str = "TRANSACTION_CHECK_TIMES";
    pub const CHECK_IMMUNITY_TIME_IN_SECONDS: &str = "CHECK_IMMUNITY_TIME_IN_SECONDS";
    pub const TRANSACTION_PREPARED_QUEUE_OFFSET: &str = "TRAN_PREPARED_QUEUE_OFFSET";
    pub const MIN_OFFSET: &str = "MIN_OFFSET";
    pub const MAX_OFFSET: &str = "MAX_OFFSET";
    pub const CONSUME_START_TIME: &str = "CONSUME_START_TIME";
    pub const MSG_REGION: &str = "MSG_REGION";
    pub const TRACE_SWITCH: &str = "TRACE_ON";
    pub const CLUSTER: &str = "CLUSTER";
    pub const BUYER_ID: &str = "BUYER_ID";
    pub const INSTANCE_ID: &str = "INSTANCE_ID";
    /// FIFO message group (5.x). ali-ons spells it `__SHARDING_KEY`.
    pub const SHARDING_KEY: &str = "__SHARDINGKEY";
    /// `"reply"` for request/reply replies.
    pub const MESSAGE_TYPE: &str = "MSG_TYPE";
    pub const CORRELATION_ID: &str = "CORRELATION_ID";
    pub const REPLY_TO_CLIENT: &str = "REPLY_TO_CLIENT";
    pub const TTL: &str = "TTL";
    pub const ARRIVE_TIME: &str = "ARRIVE_TIME";
    pub const PUSH_REPLY_TIME: &str = "PUSH_REPLY_TIME";
    pub const POP_CK: &str = "POP_CK";
    pub const POP_CK_OFFSET: &str = "POP_CK_OFFSET";
    pub const FIRST_POP_TIME: &str = "1ST_POP_TIME";
    pub const INNER_NUM: &str = "INNER_NUM";
    pub const INNER_BASE: &str = "INNER_BASE";
    pub const INNER_MULTI_DISPATCH: &str = "INNER_MULTI_DISPATCH";
    pub const INNER_MULTI_QUEUE_OFFSET: &str = "INNER_MULTI_QUEUE_OFFSET";
    pub const DLQ_ORIGIN_TOPIC: &str = "DLQ_ORIGIN_TOPIC";
    pub const DLQ_ORIGIN_MESSAGE_ID: &str = "DLQ_ORIGIN_MESSAGE_ID";
    pub const BORN_HOST: &str = "__BORNHOST";
    pub const BORN_TIMESTAMP: &str = "BORN_TIMESTAMP";
    pub const CRC32: &str = "__CRC32#";
    /// Names with this prefix are client-side only, never stored.
    pub const TRANSIENT_PREFIX: &str = "__RMQ.TRANSIENT.";
}

/// An ordered property map, in wire order.
///
/// Messages carry a handful of properties, so a `Vec` beats a map here.
/// The value of `key` in a property string, by the parser's rules (the
/// last valid occurrence wins), without parsing the rest.
pub fn find<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    if key.is_empty() {
        return None; // the parser drops pairs with an empty key
    }
    let mut found = None;
    for segment in text.split(PROPERTY_SEPARATOR) {
        if let Some((k, v)) = segment.split_once(NAME_VALUE_SEPARATOR) {
            if k == key && !v.is_empty() {
                found = Some(v);
            }
        }
    }
    found
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties {
    pairs: Vec<(String, String)>,
}

impl Properties {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parse a property string with the Java rules (module docs). Never
    /// fails; malformed segments are dropped.
    pub fn parse(text: &str) -> Self {
        let mut props = Self::new();
        for segment in text.split(PROPERTY_SEPARATOR) {
            let Some((key, value)) = segment.split_once(NAME_VALUE_SEPARATOR) else {
                continue;
            };
            if key.is_empty() || value.is_empty() {
                continue;
            }
            props.put(key.to_owned(), value.to_owned());
        }
        props
    }

    /// Parse raw bytes as Java does (`new String(bytes, UTF_8)`: invalid
    /// sequences become U+FFFD), then [`Self::parse`].
    pub fn parse_bytes(bytes: &[u8]) -> Self {
        Self::parse(&String::from_utf8_lossy(bytes))
    }

    /// Encode with a `\x02` after every pair, like Java.
    pub fn encode(&self) -> String {
        let len = self.pairs.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
        let mut out = String::with_capacity(len);
        for (key, value) in &self.pairs {
            out.push_str(key);
            out.push(NAME_VALUE_SEPARATOR);
            out.push_str(value);
            out.push(PROPERTY_SEPARATOR);
        }
        out
    }

    /// Length in bytes of [`Self::encode`]'s output.
    pub fn encoded_len(&self) -> usize {
        self.pairs.iter().map(|(k, v)| k.len() + v.len() + 2).sum()
    }

    /// Set `key` (replacing in place if present).
    ///
    /// Rejects what would not survive a round trip: an empty key or value,
    /// a key containing `\x01`/`\x02`, or a value containing `\x02`.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) -> Result<(), ProtocolError> {
        let (key, value) = (key.into(), value.into());
        if key.is_empty() || key.contains([NAME_VALUE_SEPARATOR, PROPERTY_SEPARATOR]) {
            return Err(ProtocolError::InvalidProperty(key));
        }
        if value.is_empty() || value.contains(PROPERTY_SEPARATOR) {
            return Err(ProtocolError::InvalidProperty(value));
        }
        self.put(key, value);
        Ok(())
    }

    fn put(&mut self, key: String, value: String) {
        match self.pairs.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.pairs.push((key, value)),
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn remove(&mut self, key: &str) -> Option<String> {
        let index = self.pairs.iter().position(|(k, _)| k == key)?;
        Some(self.pairs.remove(index).1)
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pairs(p: &Properties) -> Vec<(&str, &str)> {
        p.iter().collect()
    }

    #[test]
    fn parses_the_stored_record_example() {
        // message.md §4 example record: TAGS=TagA, WAIT=true.
        let p = Properties::parse("TAGS\x01TagA\x02WAIT\x01true\x02");
        assert_eq!(pairs(&p), vec![("TAGS", "TagA"), ("WAIT", "true")]);
        assert_eq!(p.encode(), "TAGS\x01TagA\x02WAIT\x01true\x02");
        assert_eq!(p.encoded_len(), 20);
        assert_eq!(p.get(keys::TAGS), Some("TagA"));
    }

    #[test]
    fn java_parse_edge_cases() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            ("", &[]),
            ("\x02\x02", &[]),
            // Missing trailing separator is fine.
            ("a\x01b", &[("a", "b")]),
            // Empty value or key: dropped.
            ("k\x01\x02", &[]),
            ("\x01v\x02", &[]),
            ("k\x01", &[]),
            // No name/value separator: dropped.
            ("abc\x02x\x01y", &[("x", "y")]),
            // Shorter than 3 chars: dropped (cannot have key and value).
            ("a\x01\x02b\x01c\x02", &[("b", "c")]),
            // The value keeps everything after the first \x01.
            ("k\x01v\x01w\x02", &[("k", "v\x01w")]),
            ("k\x01\x01\x02", &[("k", "\x01")]),
            // Last duplicate wins, at the first position.
            ("a\x011\x02b\x012\x02a\x013\x02", &[("a", "3"), ("b", "2")]),
            // Multi-byte UTF-8.
            ("标签\x01订单\x02", &[("标签", "订单")]),
        ];
        for (input, expected) in cases {
            assert_eq!(pairs(&Properties::parse(input)), *expected, "{input:?}");
        }
    }

    #[test]
    fn invalid_utf8_is_replaced_not_rejected() {
        let p = Properties::parse_bytes(b"k\x01\xff\x02TAGS\x01A\x02");
        assert_eq!(pairs(&p), vec![("k", "\u{fffd}"), ("TAGS", "A")]);
    }

    #[test]
    fn insert_rejects_what_would_not_round_trip() {
        let mut p = Properties::new();
        assert!(p.insert("", "v").is_err());
        assert!(p.insert("k", "").is_err());
        assert!(p.insert("k\x01", "v").is_err());
        assert!(p.insert("k\x02", "v").is_err());
        assert!(p.insert("k", "v\x02").is_err());
        p.insert("k", "v\x01w").unwrap();
        p.insert(keys::WAIT, "true").unwrap();
        p.insert("k", "x").unwrap();
        assert_eq!(pairs(&p), vec![("k", "x"), ("WAIT", "true")]);
        assert_eq!(p.remove("k").as_deref(), Some("x"));
        assert_eq!(p.remove("k"), None);
        assert_eq!(p.len(), 1);
        assert!(!p.is_empty());
        assert!(p.contains_key(keys::WAIT));
    }

    fn key() -> impl Strategy<Value = String> {
        "[^\x01\x02]{1,12}"
    }

    fn value() -> impl Strategy<Value = String> {
        "[^\x02]{1,24}"
    }

    proptest! {
        // Cheap cases: run more of them than the default 256.
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// `find` answers what a full parse would.
        #[test]
        fn find_agrees_with_parse(text in "[ab\x01\x02]{0,24}", key in "[ab]{0,2}") {
            let parsed = Properties::parse(&text);
            prop_assert_eq!(find(&text, &key), parsed.get(&key));
        }

        #[test]
        fn parse_never_panics_and_stays_within_input(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let p = Properties::parse_bytes(&bytes);
            // Lossy decoding at most triples a byte (1 byte -> U+FFFD).
            prop_assert!(p.encoded_len() <= 3 * bytes.len() + 2);
            for (k, v) in p.iter() {
                prop_assert!(!k.is_empty() && !v.is_empty());
                prop_assert!(!k.contains(['\x01', '\x02']) && !v.contains('\x02'));
            }
        }

        #[test]
        fn encode_parse_round_trip(entries in proptest::collection::vec((key(), value()), 0..8)) {
            let mut p = Properties::new();
            for (k, v) in entries {
                p.insert(k, v).unwrap();
            }
            let encoded = p.encode();
            prop_assert_eq!(encoded.len(), p.encoded_len());
            prop_assert_eq!(Properties::parse(&encoded), p);
        }

        #[test]
        fn parse_encode_is_idempotent(text in "[a-c\x01\x02]{0,40}") {
            let once = Properties::parse(&text);
            prop_assert_eq!(Properties::parse(&once.encode()), once);
        }
    }
}
