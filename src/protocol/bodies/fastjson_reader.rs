//! Lenient reader for the JSON dialect fastjson writes (json.md §1).
//!
//! Java peers send bodies that are not valid JSON. This reader is the
//! "normalisation pass" of json.md §1 *Recommended strategy*: it accepts
//! the fastjson forms and produces a plain [`serde_json::Value`] that the
//! serde-derived body types then read. What it accepts beyond RFC 8259:
//!
//! ```text
//!   {0:"a",-1:"b"}            bare numeric keys            → {"0":"a","-1":"b"}
//!   {{"brokerName":"b",..}:7} object (or array) as a key   → {"{\"brokerName\":\"b\",..}":7}
//!   {topic:'x'}               bare identifier keys, single-quoted strings
//!   [1,2,]  {"a":1,}          trailing commas
//!   {"$ref":"$.a[0].b"}       fastjson references: resolved against the
//!                             document when absolute, else replaced by {}
//!   leading BOM, trailing whitespace / NUL bytes (C++ writers)
//! ```
//!
//! Object keys become their canonical compact JSON text, so a
//! `Map<MessageQueue, V>` body arrives with the same key string whether the
//! peer sent the fastjson object-key form or the BrowserCompatible
//! stringified form (after a re-parse of that string, see `message_queue.rs`).
//!
//! Robustness: never panics; nesting is limited to [`MAX_DEPTH`]; memory is
//! a constant factor of the input (each byte yields at most one value node,
//! and `$ref` copies are budgeted by the input length).

use serde_json::{Map, Number, Value};

use super::BodyError;

/// Deepest nesting accepted (serde_json's own limit is 128 too).
pub const MAX_DEPTH: usize = 128;

/// Parse `input` leniently into a [`Value`], resolving `$ref` objects.
pub fn parse_lenient(input: &[u8]) -> Result<Value, BodyError> {
    let text = String::from_utf8_lossy(input);
    let mut reader = Reader {
        bytes: text.as_bytes(),
        pos: 0,
    };
    reader.skip_bom();
    let mut value = reader.value(0)?;
    reader.skip_ws();
    while reader.peek() == Some(0) {
        reader.pos += 1;
        reader.skip_ws();
    }
    if reader.pos != reader.bytes.len() {
        return Err(reader.error("trailing characters after the JSON value"));
    }
    if text.contains("\"$ref\"") {
        resolve_refs(&mut value, input.len());
    }
    Ok(value)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn error(&self, what: &str) -> BodyError {
        BodyError::Syntax {
            offset: self.pos,
            reason: what.to_owned(),
        }
    }

    fn skip_bom(&mut self) {
        if self.bytes.starts_with("\u{feff}".as_bytes()) {
            self.pos += 3;
        }
    }

    fn skip_ws(&mut self) {
        while let Some(b) = self.peek() {
            if matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0c | 0x08) {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), BodyError> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(&format!("expected '{}'", char::from(byte))))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, BodyError> {
        if depth >= MAX_DEPTH {
            return Err(self.error("nesting too deep"));
        }
        self.skip_ws();
        match self.peek() {
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(q @ (b'"' | b'\'')) => self.string(q).map(Value::String),
            Some(b'-' | b'0'..=b'9') => {
                let raw = self.number_text();
                number_value(raw).ok_or_else(|| self.error("invalid number"))
            }
            Some(b) if is_ident_start(b) => match self.identifier() {
                "true" => Ok(Value::Bool(true)),
                "false" => Ok(Value::Bool(false)),
                "null" | "undefined" => Ok(Value::Null),
                _ => Err(self.error("unexpected bare word")),
            },
            Some(_) => Err(self.error("unexpected character")),
            None => Err(self.error("unexpected end of input")),
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, BodyError> {
        self.expect(b'{')?;
        let mut map = Map::new();
        loop {
            self.skip_ws();
            match self.peek() {
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Value::Object(map));
                }
                Some(b',') => {
                    // Tolerates `{,` and `,,` as fastjson does.
                    self.pos += 1;
                    continue;
                }
                _ => {}
            }
            let key = self.key(depth)?;
            self.skip_ws();
            self.expect(b':')?;
            let value = self.value(depth + 1)?;
            map.insert(key, value);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {}
                _ => return Err(self.error("expected ',' or '}' in object")),
            }
        }
    }

    fn key(&mut self, depth: usize) -> Result<String, BodyError> {
        match self.peek() {
            Some(q @ (b'"' | b'\'')) => self.string(q),
            Some(b'-' | b'0'..=b'9') => Ok(self.number_text().to_owned()),
            Some(b'{' | b'[') => {
                let key = self.value(depth + 1)?;
                // Canonical compact text; cannot fail for a Value.
                Ok(serde_json::to_string(&key).unwrap_or_default())
            }
            Some(b) if is_ident_start(b) => Ok(self.identifier().to_owned()),
            _ => Err(self.error("expected an object key")),
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, BodyError> {
        self.expect(b'[')?;
        let mut items = Vec::new();
        loop {
            self.skip_ws();
            match self.peek() {
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                Some(b',') => {
                    self.pos += 1;
                    continue;
                }
                _ => {}
            }
            items.push(self.value(depth + 1)?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {}
                _ => return Err(self.error("expected ',' or ']' in array")),
            }
        }
    }

    fn identifier(&mut self) -> &str {
        let start = self.pos;
        while self.peek().is_some_and(|b| is_ident_start(b) || b.is_ascii_digit()) {
            self.pos += 1;
        }
        // ASCII only, so always valid UTF-8.
        std::str::from_utf8(&self.bytes[start..self.pos]).unwrap_or("")
    }

    fn number_text(&mut self) -> &str {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        while self
            .peek()
            .is_some_and(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
        {
            self.pos += 1;
        }
        std::str::from_utf8(&self.bytes[start..self.pos]).unwrap_or("")
    }

    /// A string delimited by `quote`; the opening quote is at `pos`.
    fn string(&mut self, quote: u8) -> Result<String, BodyError> {
        self.pos += 1;
        let mut out = String::new();
        let mut run_start = self.pos;
        loop {
            let Some(b) = self.peek() else {
                return Err(self.error("unterminated string"));
            };
            if b == quote {
                out.push_str(self.slice(run_start, self.pos));
                self.pos += 1;
                return Ok(out);
            }
            if b != b'\\' {
                self.pos += 1;
                continue;
            }
            out.push_str(self.slice(run_start, self.pos));
            self.pos += 1;
            let Some(esc) = self.peek() else {
                return Err(self.error("unterminated escape"));
            };
            self.pos += 1;
            match esc {
                b'b' => out.push('\u{8}'),
                b'f' => out.push('\u{c}'),
                b'n' => out.push('\n'),
                b'r' => out.push('\r'),
                b't' => out.push('\t'),
                b'v' => out.push('\u{b}'),
                b'0' => out.push('\0'),
                b'u' => {
                    let ch = self.unicode_escape()?;
                    out.push(ch);
                }
                b'x' => {
                    let hi = self.hex_digits(2)?;
                    out.push(char::from_u32(hi).unwrap_or('\u{fffd}'));
                }
                // `\"`, `\\`, `\/`, `\'` and any other escaped character
                // stand for themselves.
                _ => {
                    self.pos -= 1;
                    let ch = self
                        .slice(self.pos, self.bytes.len())
                        .chars()
                        .next()
                        .unwrap_or('\u{fffd}');
                    self.pos += ch.len_utf8();
                    out.push(ch);
                }
            }
            run_start = self.pos;
        }
    }

    /// After `\u`: a UTF-16 unit, combined with a following low surrogate.
    fn unicode_escape(&mut self) -> Result<char, BodyError> {
        let first = self.hex_digits(4)?;
        let next_is_escape = self.bytes.get(self.pos..).is_some_and(|rest| rest.starts_with(b"\\u"));
        if (0xD800..0xDC00).contains(&first) && next_is_escape {
            let save = self.pos;
            self.pos += 2;
            let second = self.hex_digits(4)?;
            if (0xDC00..0xE000).contains(&second) {
                let code = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
                return Ok(char::from_u32(code).unwrap_or('\u{fffd}'));
            }
            self.pos = save;
        }
        Ok(char::from_u32(first).unwrap_or('\u{fffd}'))
    }

    fn hex_digits(&mut self, count: usize) -> Result<u32, BodyError> {
        let end = self.pos + count;
        let digits = self
            .bytes
            .get(self.pos..end)
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u32::from_str_radix(d, 16).ok())
            .ok_or_else(|| self.error("invalid hex escape"))?;
        self.pos = end;
        Ok(digits)
    }

    /// `bytes[start..end]` as text. Both ends sit next to ASCII bytes (quotes,
    /// backslashes) of valid UTF-8, so the slice is valid UTF-8.
    fn slice(&self, start: usize, end: usize) -> &str {
        std::str::from_utf8(self.bytes.get(start..end).unwrap_or(b"")).unwrap_or("")
    }
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b'$'
}

/// A JSON number from its text: integers stay exact, others become f64.
fn number_value(raw: &str) -> Option<Value> {
    if let Ok(i) = raw.parse::<i64>() {
        return Some(Value::Number(i.into()));
    }
    if let Ok(u) = raw.parse::<u64>() {
        return Some(Value::Number(u.into()));
    }
    let f: f64 = raw.parse().ok()?;
    Number::from_f64(f).map(Value::Number)
}

/// Replace every `{"$ref": path}` object in `root`.
///
/// fastjson writes `$ref` for the second occurrence of one Java object:
/// `"$"` (root), `"$.a.b[0]"` (absolute), `".."` (parent), `"@"` (self).
/// Absolute paths are replaced by a copy of their target as it was before
/// resolution (nested references inside the copy become `{}`); everything
/// else, and any copy that would exceed `budget` nodes in total, becomes an
/// empty object, which the body types read as "all defaults".
fn resolve_refs(root: &mut Value, budget: usize) {
    let original = root.clone();
    let mut budget = budget;
    replace_refs(root, &original, &mut budget);
}

fn replace_refs(value: &mut Value, original: &Value, budget: &mut usize) {
    if let Some(path) = ref_path(value) {
        let target = lookup(original, &path).filter(|t| ref_path(t).is_none());
        *value = match target {
            Some(target) if node_count(target) <= *budget => {
                *budget -= node_count(target);
                let mut copy = target.clone();
                blank_refs(&mut copy);
                copy
            }
            _ => Value::Object(Map::new()),
        };
        return;
    }
    match value {
        Value::Array(items) => items.iter_mut().for_each(|v| replace_refs(v, original, budget)),
        Value::Object(map) => map.values_mut().for_each(|v| replace_refs(v, original, budget)),
        _ => {}
    }
}

fn blank_refs(value: &mut Value) {
    if ref_path(value).is_some() {
        *value = Value::Object(Map::new());
        return;
    }
    match value {
        Value::Array(items) => items.iter_mut().for_each(blank_refs),
        Value::Object(map) => map.values_mut().for_each(blank_refs),
        _ => {}
    }
}

fn ref_path(value: &Value) -> Option<String> {
    match value {
        Value::Object(map) if map.len() == 1 => map.get("$ref").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

/// Follow a fastjson path `$.name[3].other` from `root`.
fn lookup<'v>(root: &'v Value, path: &str) -> Option<&'v Value> {
    let mut rest = path.strip_prefix('$')?;
    let mut cur = root;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            cur = cur.as_object()?.get(&after[..end])?;
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']')?;
            let index: usize = after[..end].parse().ok()?;
            cur = cur.as_array()?.get(index)?;
            rest = &after[end + 1..];
        } else {
            return None;
        }
    }
    Some(cur)
}

fn node_count(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(node_count).sum::<usize>(),
        Value::Object(map) => 1 + map.values().map(node_count).sum::<usize>(),
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(text: &str) -> Value {
        parse_lenient(text.as_bytes()).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn standard_json_is_unchanged() {
        let text = r#"{"a":[1,-2,3.5,true,false,null,"x\"\\\/\n\u00e9\ud83d\ude00"],"b":{}}"#;
        let expected: Value = serde_json::from_str(text).unwrap();
        assert_eq!(parse(text), expected);
    }

    #[test]
    fn bare_numeric_keys_become_strings() {
        assert_eq!(
            parse(r#"{"brokerAddrs":{0:"a:1",1:"b:2",-1:"c"}}"#),
            json!({"brokerAddrs":{"0":"a:1","1":"b:2","-1":"c"}})
        );
    }

    #[test]
    fn object_keys_become_their_canonical_text() {
        let v = parse(r#"{"offsetTable":{{"brokerName":"b","queueId":0,"topic":"t"}:42}}"#);
        assert_eq!(
            v,
            json!({"offsetTable":{"{\"brokerName\":\"b\",\"queueId\":0,\"topic\":\"t\"}":42}})
        );
    }

    #[test]
    fn javascript_style_leniency() {
        assert_eq!(
            parse("\u{feff} {topic:'a\\'b', list:[1,2,],}\n\0"),
            json!({"topic":"a'b","list":[1,2]})
        );
    }

    #[test]
    fn refs_are_resolved_or_blanked() {
        let v = parse(r#"{"a":[{"x":1},{"$ref":"$.a[0]"}],"b":{"$ref":".."},"c":{"$ref":"$.nope"}}"#);
        assert_eq!(v, json!({"a":[{"x":1},{"x":1}],"b":{},"c":{}}));
        // A self-referencing root does not loop.
        assert_eq!(parse(r#"{"a":{"$ref":"$"}}"#), json!({"a":{"a":{}}}));
    }

    #[test]
    fn errors_instead_of_panics() {
        for bad in [
            "", "{", "[1,", "{\"a\"", "{\"a\":}", "\"\\u12", "tru", "{1 2}", "[1]x", "\"\\",
        ] {
            assert!(parse_lenient(bad.as_bytes()).is_err(), "{bad:?}");
        }
        let deep = "[".repeat(MAX_DEPTH + 1);
        assert!(parse_lenient(deep.as_bytes()).is_err());
    }
}
