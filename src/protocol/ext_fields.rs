//! `extFields`: the string map that carries every request/response header.
//!
//! On the wire each Java "custom header" object is flattened into this map:
//! key = Java field name, value = `String.valueOf(value)` (framing.md §5).
//! The typed getters here implement the decoding rules all clients need:
//! an empty string means "absent" (Go sends `""` for unset optional fields,
//! and the binary header cannot tell `""` from `null`), numbers are decimal,
//! booleans are `true`/`false`.

use std::collections::BTreeMap;

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

/// Ordered `extFields` map.
///
/// Sorted by key so that encoding is deterministic (fastjson sorts bean
/// properties; for the map itself any order is accepted by every client).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtFields(BTreeMap<String, String>);

impl ExtFields {
    pub fn new() -> Self {
        Self(BTreeMap::new())
    }

    /// Insert or replace a field (last write wins, like Java's `HashMap`).
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.0.insert(key.into(), value.into());
    }

    /// Insert a field only when `value` is `Some` (Java omits `null` fields).
    pub fn insert_opt<V: ToString>(&mut self, key: &str, value: Option<V>) {
        if let Some(value) = value {
            self.0.insert(key.to_owned(), value.to_string());
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<String> {
        self.0.remove(key)
    }

    /// The raw value, including `""`.
    pub fn get_raw(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// True when `key` has a non-empty value.
    pub fn contains(&self, key: &str) -> bool {
        self.get_str(key).is_some()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Fields in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
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

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for ExtFields {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self(iter.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }
}

impl From<BTreeMap<String, String>> for ExtFields {
    fn from(map: BTreeMap<String, String>) -> Self {
        Self(map)
    }
}

impl From<ExtFields> for BTreeMap<String, String> {
    fn from(fields: ExtFields) -> Self {
        fields.0
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
