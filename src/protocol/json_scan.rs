//! The hand-written JSON header decoder: the fast path of
//! [`super::json_header::decode`].
//!
//! One pass over the header bytes, straight into a [`RemotingCommand`]:
//! no `serde_json::Value`, no map of owned strings — two allocations (the
//! [`ExtFields`] text and its spans), plus one for a remark.
//!
//! # What it accepts, and the oracle
//! It decodes the shapes real clients send: a top-level object whose
//! values are strings, integers, `true`/`false`/`null`, and an `extFields`
//! object of such scalars. Anything else — a float, an escaped key, a
//! nested value outside `extFields`, a lone surrogate, a control character
//! in a string, invalid UTF-8, broken JSON of any kind — makes it return
//! `None`, and the caller decodes the header with the serde-based decoder
//! ([`super::json_header::decode_value`]), which stays the definition of
//! the lenient rules and produces every error message. So this decoder
//! never has to agree with serde on an error, only on a success: whenever
//! it returns `Some(cmd)`, the oracle returns `Ok(cmd)` for the same bytes.
//! The property tests in `json_header.rs` check exactly that, on generated
//! headers and on mutated bytes.
//!
//! Duplicate keys follow serde_json's map: the last one wins (for
//! `extFields`, the whole last object).

use bytes::Bytes;

use super::command::{LanguageCode, RemotingCommand, SerializeType};
use super::ext_fields::ExtFields;

/// Decodes `header`, or `None` when it is not of the simple shape (module
/// docs); the caller then asks the oracle.
pub fn decode(header: &[u8]) -> Option<RemotingCommand> {
    let mut s = Scanner { b: header, i: 0 };
    let mut code = None;
    let mut opaque = None;
    let mut flag = None;
    let mut version = None;
    let mut language = LanguageCode::Java;
    let mut remark = None;
    let mut ext = None;
    s.ws();
    s.eat(b'{')?;
    s.ws();
    if s.peek() == Some(b'}') {
        s.i += 1;
    } else {
        loop {
            s.ws();
            let key = s.plain_string()?;
            s.ws();
            s.eat(b':')?;
            s.ws();
            match key {
                b"code" => code = s.int_or_null()?,
                b"opaque" => opaque = s.int_or_null()?,
                b"flag" => flag = s.int_or_null()?,
                b"version" => version = s.int_or_null()?,
                b"language" => language = s.language()?,
                b"remark" => remark = s.remark()?,
                b"extFields" => ext = Some(s.ext_fields(header.len())?),
                _ => s.skip_scalar()?,
            }
            s.ws();
            match s.next()? {
                b',' => continue,
                b'}' => break,
                _ => return None,
            }
        }
    }
    s.ws();
    if s.i != header.len() {
        return None;
    }
    Some(RemotingCommand {
        code: code?,
        language,
        version: version.unwrap_or(0),
        opaque: opaque?,
        flag: flag.unwrap_or(0),
        remark,
        ext_fields: ext.unwrap_or_default(),
        body: Bytes::new(),
        serialize_type: SerializeType::Json,
    })
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.i.checked_add(word.len())?;
        (self.b.get(self.i..end)? == word).then(|| self.i = end)
    }

    /// A string without escapes, as raw bytes (UTF-8 checked). `None` for
    /// anything else, including a string with escapes.
    fn plain_string(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.i;
        let rest = &self.b[start..];
        let n = rest.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
        if rest[n] != b'"' {
            return None;
        }
        let raw = &rest[..n];
        std::str::from_utf8(raw).ok()?;
        self.i = start + n + 1;
        Some(raw)
    }

    /// An object key: borrowed when it has no escapes (every client's).
    fn key(&mut self) -> Option<std::borrow::Cow<'a, str>> {
        let at = self.i;
        if let Some(raw) = self.plain_string() {
            return std::str::from_utf8(raw).ok().map(std::borrow::Cow::Borrowed);
        }
        self.i = at;
        let mut owned = String::new();
        self.string_into(&mut owned)?;
        Some(std::borrow::Cow::Owned(owned))
    }

    /// A string, unescaped and appended to `out`.
    fn string_into(&mut self, out: &mut String) -> Option<()> {
        self.string(Some(out))
    }

    /// Validates and skips a string, with the same rules, writing nothing.
    fn skip_string(&mut self) -> Option<()> {
        self.string(None)
    }

    fn string(&mut self, mut out: Option<&mut String>) -> Option<()> {
        self.eat(b'"')?;
        loop {
            let rest = &self.b[self.i..];
            let n = rest.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
            let text = std::str::from_utf8(&rest[..n]).ok()?;
            if let Some(out) = out.as_deref_mut() {
                out.push_str(text);
            }
            self.i += n + 1;
            match rest[n] {
                b'"' => return Some(()),
                b'\\' => {}
                _ => return None, // a raw control character
            }
            let c = self.escape()?;
            if let Some(out) = out.as_deref_mut() {
                out.push(c);
            }
        }
    }

    /// The character of the escape sequence after a backslash; `None` for
    /// an unknown escape or a lone surrogate.
    fn escape(&mut self) -> Option<char> {
        Some(match self.next()? {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = self.hex4()?;
                if (0xD800..0xDC00).contains(&hi) {
                    self.literal(b"\\u")?;
                    let lo = self.hex4()?;
                    if !(0xDC00..0xE000).contains(&lo) {
                        return None;
                    }
                    char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))?
                } else {
                    char::from_u32(hi)? // a lone low surrogate is None
                }
            }
            _ => return None,
        })
    }

    fn hex4(&mut self) -> Option<u32> {
        let end = self.i.checked_add(4)?;
        let digits = self.b.get(self.i..end)?;
        let mut v = 0;
        for &d in digits {
            v = v * 16 + (d as char).to_digit(16)?;
        }
        self.i = end;
        Some(v)
    }

    /// A JSON integer that fits an `i64`; `None` for a fraction, an
    /// exponent, a leading zero, `-0` or overflow (the oracle decides).
    fn integer(&mut self) -> Option<i64> {
        let start = self.i;
        let neg = self.peek() == Some(b'-');
        if neg {
            self.i += 1;
        }
        let digits_start = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        let digits = &self.b[digits_start..self.i];
        if digits.is_empty()
            || (digits[0] == b'0' && (digits.len() > 1 || neg))
            || matches!(self.peek(), Some(b'.' | b'e' | b'E'))
        {
            return None;
        }
        // ASCII digits, checked above.
        std::str::from_utf8(&self.b[start..self.i]).ok()?.parse().ok()
    }

    /// `Some(None)` for `null`, `Some(Some(n))` for an `i32`; `None`
    /// otherwise.
    fn int_or_null(&mut self) -> Option<Option<i32>> {
        if self.peek() == Some(b'n') {
            self.literal(b"null")?;
            return Some(None);
        }
        i32::try_from(self.integer()?).ok().map(Some)
    }

    fn language(&mut self) -> Option<LanguageCode> {
        match self.peek()? {
            b'n' => self.literal(b"null").map(|_| LanguageCode::Java),
            b'"' => {
                let name = self.plain_string()?;
                Some(LanguageCode::from_name(std::str::from_utf8(name).ok()?))
            }
            // fastjson maps a number to the enum ordinal.
            b'-' | b'0'..=b'9' => {
                let n = self.integer()?;
                Some(u8::try_from(n).map_or(LanguageCode::Other, LanguageCode::from_u8))
            }
            _ => None,
        }
    }

    fn remark(&mut self) -> Option<Option<String>> {
        match self.peek()? {
            b'n' => self.literal(b"null").map(|_| None),
            b'"' => {
                let mut s = String::new();
                self.string_into(&mut s)?;
                Some(Some(s).filter(|s| !s.is_empty()))
            }
            _ => None,
        }
    }

    /// Skips a string, integer or literal (an unknown key's value).
    fn skip_scalar(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.skip_string(),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.integer().map(|_| ()),
            _ => None,
        }
    }

    /// The `extFields` object (or `null`); values become Java strings,
    /// `null` values are absent.
    fn ext_fields(&mut self, header_len: usize) -> Option<ExtFields> {
        if self.peek() == Some(b'n') {
            self.literal(b"null")?;
            return Some(ExtFields::new());
        }
        self.eat(b'{')?;
        // The text is never longer than the header.
        let mut ext = ExtFields::with_capacity(16, header_len);
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Some(ext);
        }
        loop {
            self.ws();
            let key = self.key()?;
            let key: &str = &key;
            self.ws();
            self.eat(b':')?;
            self.ws();
            match self.peek()? {
                b'"' => {
                    let mut ok = None;
                    ext.insert_with(key, |t| ok = self.string_into(t));
                    ok?;
                }
                b't' => {
                    self.literal(b"true")?;
                    ext.insert(key, "true");
                }
                b'f' => {
                    self.literal(b"false")?;
                    ext.insert(key, "false");
                }
                b'n' => {
                    self.literal(b"null")?;
                    // A null value is absent, and hides an earlier duplicate
                    // no more than serde's map does: it replaces it with null.
                    ext.remove(key);
                }
                b'-' | b'0'..=b'9' => {
                    let n = self.integer()?;
                    ext.insert_display(key, n);
                }
                _ => return None,
            }
            self.ws();
            match self.next()? {
                b',' => continue,
                b'}' => return Some(ext),
                _ => return None,
            }
        }
    }
}
