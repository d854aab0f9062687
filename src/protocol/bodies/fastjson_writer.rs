//! Writer that reproduces fastjson's output byte for byte (json.md §1).
//!
//! Bodies are serialized with serde into a [`Value`] and then written here,
//! which gives the fastjson rules for free:
//!
//! * compact, no whitespace (Go's route parser splits on `,` and `:`);
//! * object members in byte order of their names (fastjson sorts bean
//!   properties alphabetically; `MapSortField` sorts map keys);
//! * `null` members omitted (fastjson skips null properties and null map
//!   values; `null` inside arrays is kept);
//! * optionally non-ASCII escaped as `\uXXXX` (BrowserCompatible, used for
//!   route data sent to new clients);
//! * chosen maps written with **raw keys**: `{0:"addr"}` for Java
//!   `Map<Long,_>`/`Map<Integer,_>` and `{{"brokerName":..}:V}` for
//!   `Map<MessageQueue,_>`. Which maps is decided by a predicate on the
//!   path of the map (member names from the root, `[]` for array elements),
//!   e.g. `["brokerDatas", "[]", "brokerAddrs"]`.

use serde_json::Value;

/// How to write one body.
#[derive(Clone, Copy)]
pub struct WriteOptions<'a> {
    /// Escape every non-ASCII character as `\uXXXX` (uppercase hex).
    pub escape_non_ascii: bool,
    /// Maps at these paths get unquoted keys (see the module docs).
    pub raw_keys: &'a dyn Fn(&[&str]) -> bool,
}

/// Standard JSON: quoted keys, UTF-8 as is.
pub const STANDARD: WriteOptions<'static> = WriteOptions {
    escape_non_ascii: false,
    raw_keys: &|_| false,
};

/// Write `value` per `opts`.
pub fn write(value: &Value, opts: WriteOptions<'_>) -> String {
    let mut out = String::new();
    let mut path = Vec::new();
    write_value(&mut out, value, opts, &mut path);
    out
}

fn write_value<'v>(out: &mut String, value: &'v Value, opts: WriteOptions<'_>, path: &mut Vec<&'v str>) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_string(out, s, opts.escape_non_ascii),
        Value::Array(items) => {
            out.push('[');
            path.push("[]");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item, opts, path);
            }
            path.pop();
            out.push(']');
        }
        Value::Object(map) => {
            let raw = (opts.raw_keys)(path);
            let mut members: Vec<(&String, &Value)> = map.iter().filter(|(_, v)| !v.is_null()).collect();
            if raw {
                // Java's small Integer/Long keys come out in numeric order.
                members.sort_unstable_by_key(|(k, _)| {
                    let n = k.parse::<i64>();
                    (n.is_err(), n.unwrap_or(0), *k)
                });
            } else {
                members.sort_unstable_by(|a, b| a.0.cmp(b.0));
            }
            out.push('{');
            for (i, (key, member)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if raw && is_raw_key(key) {
                    out.push_str(key);
                } else {
                    write_string(out, key, opts.escape_non_ascii);
                }
                out.push(':');
                path.push(key);
                write_value(out, member, opts, path);
                path.pop();
            }
            out.push('}');
        }
    }
}

/// Only keys we produced ourselves are written raw: a decimal integer, or
/// the JSON text of an object (a serialized `MessageQueue`). Anything else
/// stays quoted, so a bad key can never break the document.
fn is_raw_key(key: &str) -> bool {
    let digits = key.strip_prefix('-').unwrap_or(key);
    let integer = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
    let object =
        key.starts_with('{') && key.ends_with('}') && serde_json::from_str::<Value>(key).is_ok_and(|v| v.is_object());
    integer || object
}

fn write_string(out: &mut String, s: &str, escape_non_ascii: bool) {
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (escape_non_ascii && !c.is_ascii()) => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04X}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorted_compact_without_nulls() {
        let v = json!({"b":1,"a":[null,true,1.5,0.0,-3],"c":null,"B":"x"});
        assert_eq!(write(&v, STANDARD), r#"{"B":"x","a":[null,true,1.5,0.0,-3],"b":1}"#);
    }

    #[test]
    fn raw_keys_only_where_asked_and_only_when_safe() {
        let v = json!({"m":{"0":"a","1":"b","x":"c"},"n":{"0":"a"}});
        let opts = WriteOptions {
            escape_non_ascii: false,
            raw_keys: &|path| path == ["m"],
        };
        assert_eq!(write(&v, opts), r#"{"m":{0:"a",1:"b","x":"c"},"n":{"0":"a"}}"#);
        let mq = json!({"t":{"{\"queueId\":0}":1,"{bad":2}});
        let opts = WriteOptions {
            escape_non_ascii: false,
            raw_keys: &|path| path == ["t"],
        };
        assert_eq!(write(&mq, opts), r#"{"t":{{"queueId":0}:1,"{bad":2}}"#);
    }

    #[test]
    fn escapes() {
        let v = json!("é\u{1F600}\"\\\n\u{1}");
        assert_eq!(write(&v, STANDARD), "\"é\u{1F600}\\\"\\\\\\n\\u0001\"");
        let browser = WriteOptions {
            escape_non_ascii: true,
            ..STANDARD
        };
        assert_eq!(write(&v, browser), r#""\u00E9\uD83D\uDE00\"\\\n\u0001""#);
    }
}
