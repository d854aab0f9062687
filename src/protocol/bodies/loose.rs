//! Loose scalar conversion, as fastjson does when it binds JSON to a bean.
//!
//! Real peers disagree on scalar types: ali-ons and the C++ client send
//! numbers and booleans where Java sends strings and vice versa, Go sends
//! `null` for empty slices, the C++ client sends enums as ordinals. Fields
//! use `#[serde(deserialize_with = "loose::de")]` (scalars and collections
//! of scalars), `loose::or_default` (nested objects: `null` ⇒ default) or
//! `loose::lenient` (enums: unknown ⇒ `None`, as fastjson yields `null`).
//!
//! ```text
//!   target  accepts
//!   i32/i64 7, 7.9 (truncated), "7", " 7 ", true(1)/false(0), null(0)
//!   bool    true, 1/0, "true"/"false"/"1"/"0"/"Y"/"N"/"T"/"F", null(false)
//!   String  "s", 7 → "7", true → "true", null → "", {..}/[..] → JSON text
//! ```

use std::collections::{BTreeMap, BTreeSet};

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A type that can be read loosely from any JSON value.
pub trait Loose: Sized {
    fn from_value(value: Value) -> Result<Self, String>;
}

/// `deserialize_with` for [`Loose`] types.
pub fn de<'de, D: Deserializer<'de>, T: Loose>(d: D) -> Result<T, D::Error> {
    T::from_value(Value::deserialize(d)?).map_err(D::Error::custom)
}

/// `deserialize_with` for nested bodies: `null` becomes the default.
pub fn or_default<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `deserialize_with` for values that fastjson turns into `null` when they
/// do not fit (unknown enum names): any failure becomes `None`.
pub fn lenient<'de, D: Deserializer<'de>, T: Loose>(d: D) -> Result<Option<T>, D::Error> {
    Ok(T::from_value(Value::deserialize(d)?).ok())
}

fn describe(value: &Value) -> String {
    let text = value.to_string();
    let mut short: String = text.chars().take(40).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    short
}

pub(crate) fn to_i64(value: &Value) -> Result<i64, String> {
    let bad = || format!("expected an integer, got {}", describe(value));
    match value {
        Value::Null => Ok(0),
        Value::Bool(b) => Ok(i64::from(*b)),
        Value::Number(n) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite() && f.abs() < 9.3e18)
                    .map(|f| f as i64)
            })
            .ok_or_else(bad),
        Value::String(s) => {
            let s = s.trim();
            if s.is_empty() {
                return Ok(0);
            }
            s.parse::<i64>()
                .ok()
                .or_else(|| {
                    s.parse::<f64>()
                        .ok()
                        .filter(|f| f.is_finite() && f.abs() < 9.3e18)
                        .map(|f| f as i64)
                })
                .ok_or_else(bad)
        }
        Value::Array(_) | Value::Object(_) => Err(bad()),
    }
}

impl Loose for i64 {
    fn from_value(value: Value) -> Result<Self, String> {
        to_i64(&value)
    }
}

impl Loose for i32 {
    fn from_value(value: Value) -> Result<Self, String> {
        let wide = to_i64(&value)?;
        i32::try_from(wide).map_err(|_| format!("{wide} does not fit a 32-bit integer"))
    }
}

impl Loose for f64 {
    fn from_value(value: Value) -> Result<Self, String> {
        match &value {
            Value::Number(n) => n.as_f64().ok_or_else(|| "bad number".to_owned()),
            Value::String(s) => s
                .trim()
                .parse()
                .map_err(|_| format!("expected a number, got {}", describe(&value))),
            _ => to_i64(&value).map(|i| i as f64),
        }
    }
}

impl Loose for bool {
    fn from_value(value: Value) -> Result<Self, String> {
        match &value {
            Value::Null => Ok(false),
            Value::Bool(b) => Ok(*b),
            Value::Number(n) => Ok(n.as_f64().is_some_and(|f| f != 0.0)),
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "y" | "t" => Ok(true),
                "false" | "0" | "n" | "f" | "" => Ok(false),
                _ => Err(format!("expected a boolean, got {}", describe(&value))),
            },
            _ => Err(format!("expected a boolean, got {}", describe(&value))),
        }
    }
}

impl Loose for String {
    fn from_value(value: Value) -> Result<Self, String> {
        Ok(match value {
            Value::Null => String::new(),
            Value::String(s) => s,
            other => other.to_string(),
        })
    }
}

impl<T: Loose> Loose for Option<T> {
    fn from_value(value: Value) -> Result<Self, String> {
        match value {
            Value::Null => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

impl<T: Loose> Loose for Vec<T> {
    fn from_value(value: Value) -> Result<Self, String> {
        match value {
            Value::Null => Ok(Vec::new()),
            Value::Array(items) => items.into_iter().map(T::from_value).collect(),
            // A single value where a list is expected (fastjson does this too).
            other => Ok(vec![T::from_value(other)?]),
        }
    }
}

impl<T: Loose + Ord> Loose for BTreeSet<T> {
    fn from_value(value: Value) -> Result<Self, String> {
        Ok(Vec::<T>::from_value(value)?.into_iter().collect())
    }
}

impl<K: Loose + Ord, V: Loose> Loose for BTreeMap<K, V> {
    fn from_value(value: Value) -> Result<Self, String> {
        match value {
            Value::Null => Ok(BTreeMap::new()),
            Value::Object(map) => map
                .into_iter()
                .map(|(k, v)| Ok((K::from_value(Value::String(k))?, V::from_value(v)?)))
                .collect(),
            other => Err(format!("expected an object, got {}", describe(&other))),
        }
    }
}

/// A Java enum on the wire: written as its `name()`, read from the name or
/// from the ordinal (the C++ client sends ordinals).
macro_rules! java_enum {
    ($(#[$doc:meta])* pub enum $name:ident { $($(#[$vdoc:meta])* $variant:ident = $java:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vdoc])* $variant,)* }

        impl $name {
            /// Every variant, in Java declaration (ordinal) order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The Java `name()`.
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $java,)* }
            }

            /// From a Java `name()`.
            pub fn from_name(name: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.name() == name)
            }

            /// From a Java/C++ `ordinal()`.
            pub fn from_ordinal(ordinal: i64) -> Option<Self> {
                usize::try_from(ordinal).ok().and_then(|i| Self::ALL.get(i).copied())
            }
        }

        impl $crate::protocol::bodies::loose::Loose for $name {
            fn from_value(value: serde_json::Value) -> Result<Self, String> {
                let found = match &value {
                    serde_json::Value::String(s) => Self::from_name(s.trim())
                        .or_else(|| s.trim().parse::<i64>().ok().and_then(Self::from_ordinal)),
                    serde_json::Value::Number(n) => n.as_i64().and_then(Self::from_ordinal),
                    _ => None,
                };
                found.ok_or_else(|| format!("unknown {} {}", stringify!($name), value))
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $crate::protocol::bodies::loose::de(d)
            }
        }
    };
}
pub(crate) use java_enum;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integers() {
        for (v, want) in [
            (json!(7), 7),
            (json!(7.9), 7),
            (json!("7"), 7),
            (json!(" -7 "), -7),
            (json!(true), 1),
            (json!(null), 0),
            (json!(""), 0),
            (json!("1e3"), 1000),
        ] {
            assert_eq!(i64::from_value(v.clone()), Ok(want), "{v}");
        }
        assert!(i64::from_value(json!("x")).is_err());
        assert!(i64::from_value(json!([1])).is_err());
        assert!(i64::from_value(json!(1e300)).is_err());
        assert!(i32::from_value(json!(1u64 << 40)).is_err());
    }

    #[test]
    fn booleans_and_strings() {
        assert_eq!(bool::from_value(json!("Y")), Ok(true));
        assert_eq!(bool::from_value(json!(0)), Ok(false));
        assert!(bool::from_value(json!("maybe")).is_err());
        assert_eq!(String::from_value(json!(12)), Ok("12".into()));
        assert_eq!(String::from_value(json!(false)), Ok("false".into()));
        assert_eq!(String::from_value(json!(null)), Ok(String::new()));
    }

    #[test]
    fn collections() {
        assert_eq!(Vec::<i32>::from_value(json!(null)), Ok(vec![]));
        assert_eq!(Vec::<i32>::from_value(json!(["1", 2])), Ok(vec![1, 2]));
        assert_eq!(Vec::<String>::from_value(json!("a")), Ok(vec!["a".to_owned()]));
        let map = BTreeMap::<i64, String>::from_value(json!({"1":"a","0":5})).unwrap();
        assert_eq!(
            map.into_iter().collect::<Vec<_>>(),
            vec![(0, "5".into()), (1, "a".into())]
        );
        assert!(BTreeMap::<i64, String>::from_value(json!({"x":"a"})).is_err());
    }
}
