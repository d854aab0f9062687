//! Accounts and their permissions.
//!
//! ```text
//!   Perm     DENY | PUB | SUB | PUB|SUB (also written SUB|PUB)
//!   entry    <resource>=<Perm>          topicA=PUB|SUB   orders-*=SUB   *=DENY
//! ```
//!
//! A resource is looked up in the account's table of its kind (topic or
//! group): an exact entry first, then the longest matching prefix entry
//! (`orders-*`; `*` alone is the empty prefix), then the account's default
//! for that kind. Topic and group names cannot contain `*`
//! (`^[%|a-zA-Z0-9_-]+$`), so an entry is never ambiguous.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::address::AddressPattern;
use super::resources::{Need, Resource};

/// Apache's `AclConstants.ACCESS_KEY_MIN_LENGTH`/`SECRET_KEY_MIN_LENGTH`
/// (6), which a key must be longer than.
pub const MIN_KEY_LEN: usize = 7;
/// Longest access or secret key (bounds what remarks and files carry).
pub const MAX_KEY_LEN: usize = 256;
/// Most entries in one account's `topicPerms` or `groupPerms`.
pub const MAX_ENTRIES: usize = 10_000;

/// What an account may do with a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Perm {
    Deny,
    Pub,
    Sub,
    PubSub,
}

impl Perm {
    /// Apache's spellings, surrounding whitespace ignored. Anything else is
    /// `None` (Apache silently read it as DENY; a typo here should not
    /// load quietly).
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "DENY" => Some(Self::Deny),
            "PUB" => Some(Self::Pub),
            "SUB" => Some(Self::Sub),
            "PUB|SUB" | "SUB|PUB" => Some(Self::PubSub),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deny => "DENY",
            Self::Pub => "PUB",
            Self::Sub => "SUB",
            Self::PubSub => "PUB|SUB",
        }
    }

    /// Apache `Permission.checkPermission`: DENY grants nothing; `Any` is
    /// granted by PUB or SUB.
    pub fn allows(self, need: Need) -> bool {
        match (self, need) {
            (Self::Deny, _) => false,
            (_, Need::Any) | (Self::PubSub, _) => true,
            (Self::Pub, Need::Pub) | (Self::Sub, Need::Sub) => true,
            (Self::Pub, Need::Sub) | (Self::Sub, Need::Pub) => false,
        }
    }
}

impl fmt::Display for Perm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn perm_error(text: &str) -> String {
    format!(
        "permission {:?} is not one of DENY, PUB, SUB, PUB|SUB, SUB|PUB",
        text.chars().take(40).collect::<String>()
    )
}

impl Serialize for Perm {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Perm {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).ok_or_else(|| serde::de::Error::custom(perm_error(&text)))
    }
}

/// One `topicPerms`/`groupPerms` entry: `name=PERM`, where `name` may end
/// with `*` (a prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePerm {
    pub name: String,
    pub perm: Perm,
}

impl ResourcePerm {
    pub fn parse(text: &str) -> Result<Self, String> {
        let shown = || text.chars().take(80).collect::<String>();
        let (name, perm) = text
            .split_once('=')
            .ok_or_else(|| format!("{:?} is not of the form Resource=Perm (e.g. topicA=SUB)", shown()))?;
        let name = name.trim();
        if name.is_empty() || name.len() > 255 {
            return Err(format!("{:?}: the resource name must be 1..=255 bytes", shown()));
        }
        if name.find('*').is_some_and(|at| at + 1 != name.len()) {
            return Err(format!("{:?}: `*` may only end a resource name (a prefix)", shown()));
        }
        let perm = Perm::parse(perm).ok_or_else(|| format!("{:?}: {}", shown(), perm_error(perm)))?;
        Ok(Self {
            name: name.to_owned(),
            perm,
        })
    }

    pub fn prefix(&self) -> Option<&str> {
        self.name.strip_suffix('*')
    }
}

impl fmt::Display for ResourcePerm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.name, self.perm)
    }
}

impl Serialize for ResourcePerm {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ResourcePerm {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// The entries of one kind, compiled for lookup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct PermTable {
    exact: HashMap<String, Perm>,
    /// Longest prefix first.
    prefixes: Vec<(String, Perm)>,
}

impl PermTable {
    /// Later entries for the same name win, as in Apache's map.
    fn build<'a>(entries: impl Iterator<Item = &'a ResourcePerm>) -> Self {
        let mut t = Self::default();
        for e in entries {
            match e.prefix() {
                Some(prefix) => {
                    t.prefixes.retain(|(p, _)| p != prefix);
                    t.prefixes.push((prefix.to_owned(), e.perm));
                }
                None => {
                    t.exact.insert(e.name.clone(), e.perm);
                }
            }
        }
        t.prefixes.sort_by_key(|p| std::cmp::Reverse(p.0.len()));
        t
    }

    fn lookup(&self, name: &str) -> Option<Perm> {
        self.exact.get(name).copied().or_else(|| {
            self.prefixes
                .iter()
                .find(|(p, _)| name.starts_with(p.as_str()))
                .map(|(_, perm)| *perm)
        })
    }
}

/// A secret key. Never printed: `Debug` shows `<redacted>`, and there is
/// no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The key itself, for signing and for writing the ACL file.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The fields of an account as written in the file; [`Account::new`]
/// validates them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSpec {
    pub access_key: String,
    pub secret_key: Secret,
    /// `None` (or `*`): any address.
    pub white_remote_address: Option<AddressPattern>,
    pub admin: bool,
    pub default_topic_perm: Perm,
    pub default_group_perm: Perm,
    pub topic_perms: Vec<ResourcePerm>,
    pub group_perms: Vec<ResourcePerm>,
}

/// A validated account with its lookup tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    spec: AccountSpec,
    topics: PermTable,
    groups: PermTable,
}

impl Account {
    /// Validates `spec`: keys of [`MIN_KEY_LEN`]..=[`MAX_KEY_LEN`] bytes
    /// without control characters, at most [`MAX_ENTRIES`] entries a kind.
    ///
    /// A `topicPerms` entry naming `%RETRY%g` or `%DLQ%g` is group `g`'s
    /// (Apache kept group permissions under the retry topic's name, so
    /// such an entry meant the group there too).
    pub fn new(spec: AccountSpec) -> Result<Self, String> {
        check_key("accessKey", &spec.access_key)?;
        check_key("secretKey", spec.secret_key.expose())?;
        for (kind, entries) in [("topicPerms", &spec.topic_perms), ("groupPerms", &spec.group_perms)] {
            if entries.len() > MAX_ENTRIES {
                return Err(format!("{kind}: more than {MAX_ENTRIES} entries"));
            }
        }
        let (group_like, topics): (Vec<&ResourcePerm>, Vec<&ResourcePerm>) = spec
            .topic_perms
            .iter()
            .partition(|e| Resource::group_of_topic(&e.name).is_some());
        let as_groups: Vec<ResourcePerm> = group_like
            .into_iter()
            .filter_map(|e| {
                Resource::group_of_topic(&e.name).map(|g| ResourcePerm {
                    name: g.to_owned(),
                    perm: e.perm,
                })
            })
            .collect();
        let topics = PermTable::build(topics.into_iter());
        let groups = PermTable::build(as_groups.iter().chain(&spec.group_perms));
        Ok(Self { spec, topics, groups })
    }

    pub fn spec(&self) -> &AccountSpec {
        &self.spec
    }

    pub fn access_key(&self) -> &str {
        &self.spec.access_key
    }

    pub fn secret(&self) -> &Secret {
        &self.spec.secret_key
    }

    pub fn is_admin(&self) -> bool {
        self.spec.admin
    }

    /// True when this account may connect from `remote`.
    pub fn allows_address(&self, remote: std::net::IpAddr) -> bool {
        self.spec
            .white_remote_address
            .as_ref()
            .is_none_or(|p| p.matches(remote))
    }

    /// An admin account without any topic or group entry may use every
    /// resource (Apache 4.9.8: "if it is admin, it could access all
    /// resources"); with entries it is checked like any other account.
    pub fn is_unrestricted(&self) -> bool {
        self.spec.admin && self.spec.topic_perms.is_empty() && self.spec.group_perms.is_empty()
    }

    /// The permission this account has on `resource`.
    pub fn perm(&self, resource: &Resource<'_>) -> Perm {
        match resource {
            Resource::Topic(t) => self.topics.lookup(t).unwrap_or(self.spec.default_topic_perm),
            Resource::Group(g) => self.groups.lookup(g).unwrap_or(self.spec.default_group_perm),
        }
    }
}

fn check_key(field: &str, key: &str) -> Result<(), String> {
    if !(MIN_KEY_LEN..=MAX_KEY_LEN).contains(&key.len()) {
        return Err(format!(
            "{field} must be {MIN_KEY_LEN}..={MAX_KEY_LEN} bytes long (it is {})",
            key.len()
        ));
    }
    if key.chars().any(char::is_control) {
        return Err(format!("{field} must not contain control characters"));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn spec(access_key: &str) -> AccountSpec {
        AccountSpec {
            access_key: access_key.to_owned(),
            secret_key: Secret::new("12345678"),
            white_remote_address: None,
            admin: false,
            default_topic_perm: Perm::Deny,
            default_group_perm: Perm::Deny,
            topic_perms: Vec::new(),
            group_perms: Vec::new(),
        }
    }

    fn entries(list: &[&str]) -> Vec<ResourcePerm> {
        list.iter().map(|e| ResourcePerm::parse(e).unwrap()).collect()
    }

    #[test]
    fn perm_spellings_and_checks() {
        assert_eq!(Perm::parse(" PUB|SUB "), Some(Perm::PubSub));
        assert_eq!(Perm::parse("SUB|PUB"), Some(Perm::PubSub));
        for bad in ["pub", "PUB,SUB", "", "ANY", "PUB | SUB"] {
            assert_eq!(Perm::parse(bad), None, "{bad}");
        }
        let table = [
            (Perm::Deny, [false, false, false]),
            (Perm::Pub, [true, false, true]),
            (Perm::Sub, [false, true, true]),
            (Perm::PubSub, [true, true, true]),
        ];
        for (perm, [p, s, a]) in table {
            assert_eq!(perm.allows(Need::Pub), p, "{perm} pub");
            assert_eq!(perm.allows(Need::Sub), s, "{perm} sub");
            assert_eq!(perm.allows(Need::Any), a, "{perm} any");
        }
    }

    #[test]
    fn resource_entries_parse() {
        let e = ResourcePerm::parse(" topicA = PUB|SUB ").unwrap();
        assert_eq!((e.name.as_str(), e.perm), ("topicA", Perm::PubSub));
        assert_eq!(e.to_string(), "topicA=PUB|SUB");
        assert_eq!(ResourcePerm::parse("orders-*=SUB").unwrap().prefix(), Some("orders-"));
        assert_eq!(ResourcePerm::parse("*=DENY").unwrap().prefix(), Some(""));
        for bad in [
            "topicA",
            "=SUB",
            "topicA=",
            "topicA=READ",
            "a*b=SUB",
            "**=SUB",
            "t=PUB=SUB",
        ] {
            assert!(ResourcePerm::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn exact_then_longest_prefix_then_default() {
        let mut s = spec("account1");
        s.default_topic_perm = Perm::Sub;
        s.topic_perms = entries(&["orders-*=PUB", "orders-eu-*=DENY", "orders-eu-1=PUB|SUB", "*=DENY"]);
        let a = Account::new(s).unwrap();
        let t = |n: &'static str| a.perm(&Resource::Topic(n.into()));
        assert_eq!(t("orders-eu-1"), Perm::PubSub);
        assert_eq!(t("orders-eu-2"), Perm::Deny);
        assert_eq!(t("orders-us"), Perm::Pub);
        assert_eq!(t("other"), Perm::Deny);

        let mut s = spec("account2");
        s.default_topic_perm = Perm::Sub;
        s.topic_perms = entries(&["topicA=PUB"]);
        let a = Account::new(s).unwrap();
        assert_eq!(a.perm(&Resource::Topic("topicB".into())), Perm::Sub);
        // Topic and group tables are separate.
        assert_eq!(a.perm(&Resource::Group("topicA".into())), Perm::Deny);
    }

    #[test]
    fn later_entries_win_and_retry_topics_are_groups() {
        let mut s = spec("account1");
        s.topic_perms = entries(&["t=PUB", "t=SUB", "%RETRY%g1=SUB", "%DLQ%g2=PUB|SUB"]);
        s.group_perms = entries(&["g1=DENY"]);
        let a = Account::new(s).unwrap();
        assert_eq!(a.perm(&Resource::Topic("t".into())), Perm::Sub);
        // groupPerms come after topicPerms: the explicit group entry wins.
        assert_eq!(a.perm(&Resource::Group("g1".into())), Perm::Deny);
        assert_eq!(a.perm(&Resource::Group("g2".into())), Perm::PubSub);
        assert_eq!(a.perm(&Resource::Topic("%RETRY%g1".into())), Perm::Deny);
    }

    #[test]
    fn keys_are_validated() {
        assert!(Account::new(spec("short")).is_err());
        assert!(Account::new(spec("sixsix")).is_err());
        assert!(Account::new(spec("seven77")).is_ok());
        assert!(Account::new(spec(&"k".repeat(MAX_KEY_LEN + 1))).is_err());
        assert!(Account::new(spec("with\nnewline")).is_err());
        let mut s = spec("account1");
        s.secret_key = Secret::new("123456");
        let err = Account::new(s).unwrap_err();
        assert!(err.contains("secretKey") && !err.contains("123456"), "{err}");
    }

    #[test]
    fn secrets_are_not_printed() {
        let a = Account::new(spec("account1")).unwrap();
        let shown = format!("{a:?}");
        assert!(!shown.contains("12345678") && shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn admin_shortcut_only_without_entries() {
        let mut s = spec("admin001");
        s.admin = true;
        assert!(Account::new(s.clone()).unwrap().is_unrestricted());
        s.group_perms = entries(&["g=SUB"]);
        assert!(!Account::new(s).unwrap().is_unrestricted());
        assert!(!Account::new(spec("plain01")).unwrap().is_unrestricted());
    }
}
