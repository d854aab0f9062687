//! `extFields`: the string map that carries every request/response header.
//!
//! On the wire each Java "custom header" object is flattened into this map:
//! key = Java field name, value = `String.valueOf(value)` (framing.md §5).
//! The typed getters here implement the decoding rules all clients need:
//! an empty string means "absent" (Go sends `""` for unset optional fields,
//! and the binary header cannot tell `""` from `null`), numbers are decimal,
//! booleans are `true`/`false`.

use std::collections::BTreeMap;
use std::fmt;

use smallvec::SmallVec;

/// A header field that is missing or cannot be parsed.
///
/// Handlers answer these with an error response; the message names the
/// field like the Java broker does (`the custom field <x> is null`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// A required field is absent (or empty).
    #[error("the custom field <{field}> is null")]
    Missing { field: String },
    /// A field is present but is not a valid value of its type.
    #[error("the custom field <{field}> has invalid value {value:?}, expected {expected}")]
    Invalid {
        field: String,
        value: String,
        expected: &'static str,
    },
}

/// Where one field's key and value sit in [`ExtFields::text`].
#[derive(Debug, Clone, Copy)]
struct Span {
    key: (u32, u32),
    value: (u32, u32),
}

/// The `extFields` map, sorted by key.
///
/// Sorted so that encoding is deterministic (fastjson sorts bean
/// properties; for the map itself any order is accepted by every client).
///
/// # Representation
/// A request header has 5–25 fields. They live in one `String` holding
/// every key and value back to back, and spans into it, kept sorted by
/// key, inline for up to [`INLINE_FIELDS`] fields: decoding a header costs
/// one allocation, not two per field, and lookups are a binary search over a few spans. Replacing a
/// value appends the new text and leaves the old bytes unreferenced; they
/// are reclaimed when the garbage outgrows the live text (bounded: at most
/// about twice the live text plus 4 KiB).
#[derive(Clone, Default)]
pub struct ExtFields {
    text: String,
    spans: SmallVec<[Span; INLINE_FIELDS]>,
}

/// Fields kept without a heap allocation of their own: SEND_MESSAGE_V2
/// has 14 keys, a pull 13, a send reply 6.
pub const INLINE_FIELDS: usize = 16;

/// Garbage tolerated before [`ExtFields::compact`] runs.
const SLACK: usize = 4096;

impl ExtFields {
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty map with room for `fields` fields of `text` bytes in all.
    pub fn with_capacity(fields: usize, text: usize) -> Self {
        Self {
            text: String::with_capacity(text),
            spans: SmallVec::with_capacity(fields),
        }
    }

    fn slice(&self, (at, len): (u32, u32)) -> &str {
        &self.text[at as usize..(at + len) as usize]
    }

    fn find(&self, key: &str) -> Result<usize, usize> {
        // Decoded headers arrive sorted, so the common insert is a push.
        self.spans.binary_search_by(|s| self.slice(s.key).cmp(key))
    }

    /// Appends `s` to the text; its span.
    fn append(&mut self, s: &str) -> (u32, u32) {
        let at = self.text.len();
        self.text.push_str(s);
        (at as u32, s.len() as u32)
    }

    /// Sets `key` to the text `write` appends (last write wins, like
    /// Java's `HashMap`). The single place every insert goes through.
    pub(crate) fn insert_with(&mut self, key: &str, write: impl FnOnce(&mut String)) {
        let at = self.text.len();
        write(&mut self.text);
        let value = (at as u32, (self.text.len() - at) as u32);
        match self.find(key) {
            Ok(i) => {
                self.spans[i].value = value;
                self.compact_if_wasteful();
            }
            Err(i) => {
                let key = self.append(key);
                self.spans.insert(i, Span { key, value });
            }
        }
    }

    /// Insert or replace a field (last write wins, like Java's `HashMap`).
    pub fn insert(&mut self, key: impl AsRef<str>, value: impl AsRef<str>) {
        let value = value.as_ref();
        self.insert_with(key.as_ref(), |t| t.push_str(value));
    }

    /// Insert or replace a field with `value`'s `Display` text, written in
    /// place (no temporary string).
    pub fn insert_display(&mut self, key: &str, value: impl fmt::Display) {
        self.insert_with(key, |t| {
            use fmt::Write as _;
            // Writing to a String cannot fail.
            let _ = write!(t, "{value}");
        });
    }

    /// Insert a field only when `value` is `Some` (Java omits `null` fields).
    pub fn insert_opt<V: fmt::Display>(&mut self, key: &str, value: Option<V>) {
        if let Some(value) = value {
            self.insert_display(key, value);
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<String> {
        let i = self.find(key).ok()?;
        let span = self.spans.remove(i);
        let value = self.slice(span.value).to_owned();
        self.compact_if_wasteful();
        Some(value)
    }

    fn compact_if_wasteful(&mut self) {
        let live: usize = self.spans.iter().map(|s| (s.key.1 + s.value.1) as usize).sum();
        if self.text.len() > 2 * live + SLACK {
            let mut text = String::with_capacity(live);
            for s in &mut self.spans {
                let key = &self.text[s.key.0 as usize..(s.key.0 + s.key.1) as usize];
                let value = &self.text[s.value.0 as usize..(s.value.0 + s.value.1) as usize];
                s.key.0 = text.len() as u32;
                text.push_str(key);
                s.value.0 = text.len() as u32;
                text.push_str(value);
            }
            self.text = text;
        }
    }

    /// The raw value, including `""`.
    pub fn get_raw(&self, key: &str) -> Option<&str> {
        self.find(key).ok().map(|i| self.slice(self.spans[i].value))
    }

    /// True when `key` has a non-empty value.
    pub fn contains(&self, key: &str) -> bool {
        self.get_str(key).is_some()
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Fields in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.spans.iter().map(|s| (self.slice(s.key), self.slice(s.value)))
    }

    /// The value of `key`; `""` counts as absent.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get_raw(key).filter(|v| !v.is_empty())
    }

    /// `key` as an `i32` (Java `Integer.parseInt`: optional sign, decimal).
    pub fn get_i32(&self, key: &str) -> Result<Option<i32>, HeaderError> {
        self.parse_with(key, "a 32-bit integer", |v| v.parse().ok())
    }

    /// `key` as an `i64` (Java `Long.parseLong`).
    pub fn get_i64(&self, key: &str) -> Result<Option<i64>, HeaderError> {
        self.parse_with(key, "a 64-bit integer", |v| v.parse().ok())
    }

    /// `key` as a boolean.
    ///
    /// Accepts `true`/`false` in any case, and also `1`/`0` because the C++
    /// client sends booleans that way in some headers. (Java's
    /// `Boolean.parseBoolean` would read `"1"` as `false`; reading it as
    /// `true` is what the C++ sender means.) Anything else is an error.
    pub fn get_bool(&self, key: &str) -> Result<Option<bool>, HeaderError> {
        self.parse_with(key, "a boolean", |v| {
            if v.eq_ignore_ascii_case("true") || v == "1" {
                Some(true)
            } else if v.eq_ignore_ascii_case("false") || v == "0" {
                Some(false)
            } else {
                None
            }
        })
    }

    pub fn required_str(&self, key: &str) -> Result<&str, HeaderError> {
        self.get_str(key).ok_or_else(|| missing(key))
    }

    pub fn required_i32(&self, key: &str) -> Result<i32, HeaderError> {
        self.get_i32(key)?.ok_or_else(|| missing(key))
    }

    pub fn required_i64(&self, key: &str) -> Result<i64, HeaderError> {
        self.get_i64(key)?.ok_or_else(|| missing(key))
    }

    pub fn required_bool(&self, key: &str) -> Result<bool, HeaderError> {
        self.get_bool(key)?.ok_or_else(|| missing(key))
    }

    fn parse_with<T>(
        &self,
        key: &str,
        expected: &'static str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<Option<T>, HeaderError> {
        match self.get_str(key) {
            None => Ok(None),
            Some(v) => parse(v).map(Some).ok_or_else(|| HeaderError::Invalid {
                field: key.to_owned(),
                // Bounded: the value came from the network.
                value: v.chars().take(64).collect(),
                expected,
            }),
        }
    }
}

fn missing(key: &str) -> HeaderError {
    HeaderError::Missing { field: key.to_owned() }
}

impl<K: AsRef<str>, V: AsRef<str>> FromIterator<(K, V)> for ExtFields {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut f = Self::new();
        for (k, v) in iter {
            f.insert(k, v);
        }
        f
    }
}

impl From<BTreeMap<String, String>> for ExtFields {
    fn from(map: BTreeMap<String, String>) -> Self {
        map.into_iter().collect()
    }
}

impl From<ExtFields> for BTreeMap<String, String> {
    fn from(fields: ExtFields) -> Self {
        fields.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
    }
}

impl PartialEq for ExtFields {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for ExtFields {}

impl fmt::Debug for ExtFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> ExtFields {
        [
            ("topic", "TopicTest"),
            ("queueId", "3"),
            ("neg", "-7"),
            ("plus", "+7"),
            ("big", "9223372036854775807"),
            ("empty", ""),
            ("t", "TRUE"),
            ("f", "false"),
            ("one", "1"),
            ("zero", "0"),
            ("junk", "12a"),
            ("space", " 1"),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn empty_string_is_absent() {
        let f = fields();
        assert_eq!(f.get_raw("empty"), Some(""));
        assert_eq!(f.get_str("empty"), None);
        assert!(!f.contains("empty"));
        assert_eq!(f.get_i32("empty"), Ok(None));
        assert_eq!(f.get_bool("empty"), Ok(None));
        assert_eq!(
            f.required_str("empty").unwrap_err().to_string(),
            "the custom field <empty> is null"
        );
    }

    #[test]
    fn integers_parse_like_java() {
        let f = fields();
        assert_eq!(f.get_i32("queueId"), Ok(Some(3)));
        assert_eq!(f.get_i32("neg"), Ok(Some(-7)));
        assert_eq!(f.get_i32("plus"), Ok(Some(7)));
        assert_eq!(f.get_i64("big"), Ok(Some(i64::MAX)));
        assert_eq!(f.get_i32("missing"), Ok(None));
        assert!(matches!(
            f.get_i32("big"),
            Err(HeaderError::Invalid { ref field, .. }) if field == "big"
        ));
        assert!(f.get_i32("junk").is_err());
        // Java's parseInt does not trim.
        assert!(f.get_i32("space").is_err());
    }

    #[test]
    fn booleans_accept_java_and_cpp_forms() {
        let f = fields();
        assert_eq!(f.required_bool("t"), Ok(true));
        assert_eq!(f.required_bool("f"), Ok(false));
        assert_eq!(f.required_bool("one"), Ok(true));
        assert_eq!(f.required_bool("zero"), Ok(false));
        assert!(f.get_bool("junk").is_err());
    }

    #[test]
    fn required_errors_name_the_field() {
        let f = fields();
        assert_eq!(
            f.required_i64("commitOffset"),
            Err(HeaderError::Missing {
                field: "commitOffset".into()
            })
        );
        let err = f.required_i32("junk").unwrap_err().to_string();
        assert!(err.contains("<junk>") && err.contains("\"12a\""), "{err}");
    }

    #[test]
    fn insert_opt_skips_none_and_iter_is_sorted() {
        let mut f = ExtFields::new();
        f.insert_opt::<i32>("a", None);
        f.insert_opt("c", Some(5));
        f.insert("b", "x");
        f.insert("b", "y");
        let all: Vec<_> = f.iter().collect();
        assert_eq!(all, vec![("b", "y"), ("c", "5")]);
        assert_eq!(f.remove("b").as_deref(), Some("y"));
        assert_eq!(f.len(), 1);
    }
}
