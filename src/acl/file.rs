//! The ACL file: RocketMQ 4.9.8's `plain_acl.yml`, read and written.
//!
//! ```yaml
//! globalWhiteRemoteAddresses:      # optional; requests from these pass unsigned
//!   - 10.10.103.*
//!   - 192.168.0.*
//! accounts:
//!   - accessKey: RocketMQ          # 7..=256 bytes
//!     secretKey: 12345678          # 7..=256 bytes; a YAML number is read as its text
//!     whiteRemoteAddress:          # optional: where the account may connect from
//!     admin: false                 # optional, default false
//!     defaultTopicPerm: DENY       # optional, default DENY
//!     defaultGroupPerm: SUB        # optional, default DENY
//!     topicPerms:                  # optional: Resource=Perm, `*` ends a prefix
//!       - topicA=DENY
//!       - topicB=PUB|SUB
//!     groupPerms:
//!       - groupA=SUB
//! dataVersion:                     # written on every change
//!   - counter: 3
//!     timestamp: 1700000000000
//! ```
//!
//! Scalars are read as their text (`secretKey: 12345678` is the string
//! `"12345678"`, `admin: "true"` is true), `null` or an empty value counts
//! as absent, unknown keys are ignored. An error names the origin (file
//! path), the place in the document and, from the YAML parser, the line and
//! column. Writing produces the same keys; comments and unknown keys of the
//! original are not kept.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

use super::account::{Account, AccountSpec, Perm, ResourcePerm, Secret};
use super::address::AddressPattern;
use super::AclError;
use crate::protocol::bodies::DataVersion;

/// What identifies one content of the ACL file without reading it: a
/// change (edit in place or replacement by rename) changes one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    ino: u64,
    len: u64,
    mtime_s: i64,
    mtime_ns: i64,
}

/// The file's [`Stamp`] (one `stat`: blocking, off a shard's thread).
pub fn stamp(path: &std::path::Path) -> std::io::Result<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path)?;
    Ok(Stamp {
        ino: m.ino(),
        len: m.len(),
        mtime_s: m.mtime(),
        mtime_ns: m.mtime_nsec(),
    })
}

/// Largest ACL file read.
pub const MAX_FILE_BYTES: usize = 4 << 20;
/// Deepest `[`/`{` nesting read. The YAML parser's time grows with the
/// square of it; an ACL file needs 2 (`{1,2}` inside a list).
pub const MAX_FLOW_DEPTH: usize = 64;

/// The deepest `[`/`{` nesting of `text`, counting brackets in quoted
/// strings and comments too (an over-estimate is harmless here).
fn flow_depth(text: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    for b in text.bytes() {
        match b {
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// A parsed file: the contents of an [`super::Acl`].
#[derive(Debug, Clone, Default)]
pub(super) struct Document {
    pub global_white: Vec<AddressPattern>,
    pub accounts: Vec<Account>,
    pub version: DataVersion,
}

/// Deserializes a string scalar through `parse`, so that a parse error
/// carries the scalar's line and column.
fn parse_str<'de, D, T>(d: D, expecting: &'static str, parse: fn(&str) -> Result<T, String>) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    struct V<T> {
        expecting: &'static str,
        parse: fn(&str) -> Result<T, String>,
        out: PhantomData<T>,
    }
    impl<T> Visitor<'_> for V<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.expecting)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            (self.parse)(v).map_err(E::custom)
        }
    }
    d.deserialize_str(V {
        expecting,
        parse,
        out: PhantomData,
    })
}

/// `topicPerms`/`groupPerms` entry.
struct PermEntry(ResourcePerm);

impl<'de> Deserialize<'de> for PermEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_str(d, "Resource=Perm", ResourcePerm::parse).map(PermEntry)
    }
}

/// A `defaultTopicPerm`/`defaultGroupPerm` value.
struct PermValue(Perm);

impl<'de> Deserialize<'de> for PermValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_str(d, "DENY, PUB, SUB or PUB|SUB", |s| {
            Perm::parse(s).ok_or_else(|| format!("{s:?} is not one of DENY, PUB, SUB, PUB|SUB, SUB|PUB"))
        })
        .map(PermValue)
    }
}

/// A `globalWhiteRemoteAddresses` entry (blank entries are dropped).
struct AddressValue(Option<AddressPattern>);

impl<'de> Deserialize<'de> for AddressValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_str(d, "an address pattern", parse_optional_address).map(AddressValue)
    }
}

/// A blank text is no pattern; anything else must parse.
pub(super) fn parse_optional_address(text: &str) -> Result<Option<AddressPattern>, String> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    AddressPattern::parse(text).map(Some).map_err(|e| e.to_string())
}

/// `admin`: true/false in any case, and the YAML 1.1 words Apache's
/// SnakeYAML also reads as booleans (yes/no, on/off, y/n).
struct Flag(bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_str(d, "true or false", |s| match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "y" => Ok(true),
            "false" | "no" | "off" | "n" | "" => Ok(false),
            _ => Err(format!("{s:?} is not true or false")),
        })
        .map(Flag)
    }
}

/// A list that may be written as `null`.
fn list<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", expecting = "an account (accessKey, secretKey, ...)")]
struct AccountIn {
    #[serde(default)]
    access_key: Option<String>,
    #[serde(default)]
    secret_key: Option<String>,
    #[serde(default)]
    white_remote_address: Option<AddressValue>,
    #[serde(default)]
    admin: Option<Flag>,
    #[serde(default)]
    default_topic_perm: Option<PermValue>,
    #[serde(default)]
    default_group_perm: Option<PermValue>,
    #[serde(default, deserialize_with = "list")]
    topic_perms: Vec<PermEntry>,
    #[serde(default, deserialize_with = "list")]
    group_perms: Vec<PermEntry>,
}

/// An account entry, validated as it is read (errors point at it).
#[derive(Deserialize)]
#[serde(try_from = "AccountIn")]
struct AccountEntry(Account);

impl TryFrom<AccountIn> for AccountEntry {
    type Error = String;

    fn try_from(a: AccountIn) -> Result<Self, String> {
        let access_key = a
            .access_key
            .filter(|k| !k.is_empty())
            .ok_or("an account has no accessKey")?;
        let shown: String = access_key.chars().take(64).collect();
        let secret = a
            .secret_key
            .filter(|k| !k.is_empty())
            .ok_or_else(|| format!("account {shown:?} has no secretKey"))?;
        let spec = AccountSpec {
            access_key,
            secret_key: Secret::new(secret),
            white_remote_address: a.white_remote_address.and_then(|w| w.0),
            admin: a.admin.is_some_and(|f| f.0),
            default_topic_perm: a.default_topic_perm.map_or(Perm::Deny, |p| p.0),
            default_group_perm: a.default_group_perm.map_or(Perm::Deny, |p| p.0),
            topic_perms: a.topic_perms.into_iter().map(|e| e.0).collect(),
            group_perms: a.group_perms.into_iter().map(|e| e.0).collect(),
        };
        Account::new(spec)
            .map(AccountEntry)
            .map_err(|e| format!("account {shown:?}: {e}"))
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct VersionIn {
    counter: i64,
    timestamp: i64,
}

#[derive(Deserialize, Default)]
#[serde(
    default,
    rename_all = "camelCase",
    expecting = "a mapping of globalWhiteRemoteAddresses, accounts, dataVersion"
)]
struct FileIn {
    #[serde(deserialize_with = "list")]
    global_white_remote_addresses: Vec<AddressValue>,
    #[serde(deserialize_with = "list")]
    accounts: Vec<AccountEntry>,
    #[serde(deserialize_with = "list")]
    data_version: Vec<VersionIn>,
}

/// Parses the text of an ACL file; `origin` names it in errors.
pub(super) fn parse(text: &str, origin: &str) -> Result<Document, AclError> {
    if text.len() > MAX_FILE_BYTES {
        return Err(AclError::Invalid {
            origin: origin.to_owned(),
            message: format!("larger than {MAX_FILE_BYTES} bytes"),
        });
    }
    if flow_depth(text) > MAX_FLOW_DEPTH {
        return Err(AclError::Invalid {
            origin: origin.to_owned(),
            message: format!("`[`/`{{` nested deeper than {MAX_FLOW_DEPTH}"),
        });
    }
    // An empty file (or one of comments only) is an empty ACL.
    let file: Option<FileIn> = serde_norway::from_str(text).map_err(|e| {
        let at = e.location();
        AclError::Parse {
            origin: origin.to_owned(),
            line: at.as_ref().map(|l| l.line()),
            column: at.as_ref().map(|l| l.column()),
            message: e.to_string(),
        }
    })?;
    let file = file.unwrap_or_default();
    let accounts: Vec<Account> = file.accounts.into_iter().map(|a| a.0).collect();
    let mut seen = std::collections::HashSet::new();
    for a in &accounts {
        if !seen.insert(a.access_key()) {
            return Err(AclError::Invalid {
                origin: origin.to_owned(),
                message: format!(
                    "accessKey {:?} is defined more than once",
                    a.access_key().chars().take(64).collect::<String>()
                ),
            });
        }
    }
    let version = file
        .data_version
        .first()
        .map_or_else(DataVersion::default, |v| DataVersion {
            counter: v.counter,
            timestamp: v.timestamp,
            ..DataVersion::default()
        });
    Ok(Document {
        global_white: file
            .global_white_remote_addresses
            .into_iter()
            .filter_map(|a| a.0)
            .collect(),
        accounts,
        version,
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AccountOut<'a> {
    access_key: &'a str,
    secret_key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    white_remote_address: Option<&'a str>,
    admin: bool,
    default_topic_perm: Perm,
    default_group_perm: Perm,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    topic_perms: &'a [ResourcePerm],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    group_perms: &'a [ResourcePerm],
}

#[derive(Serialize)]
struct VersionOut {
    counter: i64,
    timestamp: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FileOut<'a> {
    global_white_remote_addresses: Vec<&'a str>,
    accounts: Vec<AccountOut<'a>>,
    data_version: [VersionOut; 1],
}

/// The YAML text of `doc`, secrets included (it is the ACL file).
pub(super) fn to_yaml(doc: &Document) -> Result<String, AclError> {
    let out = FileOut {
        global_white_remote_addresses: doc.global_white.iter().map(AddressPattern::as_str).collect(),
        accounts: doc
            .accounts
            .iter()
            .map(|a| {
                let s = a.spec();
                AccountOut {
                    access_key: &s.access_key,
                    secret_key: s.secret_key.expose(),
                    white_remote_address: s.white_remote_address.as_ref().map(AddressPattern::as_str),
                    admin: s.admin,
                    default_topic_perm: s.default_topic_perm,
                    default_group_perm: s.default_group_perm,
                    topic_perms: &s.topic_perms,
                    group_perms: &s.group_perms,
                }
            })
            .collect(),
        data_version: [VersionOut {
            counter: doc.version.counter,
            timestamp: doc.version.timestamp,
        }],
    };
    serde_norway::to_string(&out).map_err(|e| AclError::Invalid {
        origin: "ACL file".to_owned(),
        message: format!("cannot be written as YAML: {e}"),
    })
}

#[cfg(test)]
#[path = "file_tests.rs"]
mod tests;
