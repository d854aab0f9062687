//! The admin operations on the ACL (4.9.x request codes 50–53) as pure
//! edits of an [`Acl`], and the view GET_BROKER_CLUSTER_ACL_INFO shows.
//!
//! | code | header (4.9.8) | here |
//! |---|---|---|
//! | UPDATE_AND_CREATE_ACL_CONFIG (50) | `accessKey`, `secretKey`, `whiteRemoteAddress`, `admin`, `defaultTopicPerm`, `defaultGroupPerm`, `topicPerms`, `groupPerms` (comma-separated) | [`AccountUpdate::from_ext_fields`], [`Acl::upsert_account`] |
//! | DELETE_ACL_CONFIG (51) | `accessKey` | [`Acl::delete_account`] |
//! | UPDATE_GLOBAL_WHITE_ADDRS_CONFIG (53) | `globalWhiteAddrs` (comma-separated), `aclFileFullPath` (ignored: one file) | [`Acl::set_global_white_addrs`] |
//! | GET_BROKER_CLUSTER_ACL_INFO (52) | — | [`Acl::view`] (never a secret) |
//!
//! Each edit is all-or-nothing (an invalid update leaves the ACL as it
//! was) and bumps the data version to `now_ms`; the broker then saves the
//! file ([`Acl::save`]). An update names only what changes: an absent (or
//! empty) header field keeps the account's value; a new account needs a
//! secret key and starts as a non-admin with DENY defaults. To lift an
//! address restriction, send `whiteRemoteAddress=*`.

use serde::Serialize;

use super::account::{Account, AccountSpec, Perm, ResourcePerm, Secret};
use super::address::split_top_level;
use super::file::parse_optional_address;
use super::{Acl, AclError};
use crate::protocol::bodies::DataVersion;
use crate::protocol::ExtFields;

/// An UPDATE_AND_CREATE_ACL_CONFIG: the fields that change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountUpdate {
    pub access_key: String,
    pub secret_key: Option<Secret>,
    /// A pattern; blank or `*` means any address.
    pub white_remote_address: Option<String>,
    pub admin: Option<bool>,
    pub default_topic_perm: Option<Perm>,
    pub default_group_perm: Option<Perm>,
    pub topic_perms: Option<Vec<ResourcePerm>>,
    pub group_perms: Option<Vec<ResourcePerm>>,
}

fn invalid(message: impl Into<String>) -> AclError {
    AclError::Invalid {
        origin: "ACL update".to_owned(),
        message: message.into(),
    }
}

impl AccountUpdate {
    /// From a `CreateAccessConfigRequestHeader` (code 50).
    pub fn from_ext_fields(ext: &ExtFields) -> Result<Self, AclError> {
        let perm = |key: &str| -> Result<Option<Perm>, AclError> {
            ext.get_str(key)
                .map(|v| {
                    Perm::parse(v).ok_or_else(|| invalid(format!("{key}: {v:?} is not DENY, PUB, SUB or PUB|SUB")))
                })
                .transpose()
        };
        let list = |key: &str| -> Result<Option<Vec<ResourcePerm>>, AclError> {
            ext.get_str(key)
                .map(|v| {
                    v.split(',')
                        .filter(|e| !e.trim().is_empty())
                        .map(|e| ResourcePerm::parse(e).map_err(|why| invalid(format!("{key}: {why}"))))
                        .collect()
                })
                .transpose()
        };
        Ok(Self {
            access_key: ext
                .required_str("accessKey")
                .map_err(|e| invalid(e.to_string()))?
                .to_owned(),
            secret_key: ext.get_str("secretKey").map(Secret::new),
            white_remote_address: ext.get_str("whiteRemoteAddress").map(str::to_owned),
            admin: ext.get_bool("admin").map_err(|e| invalid(e.to_string()))?,
            default_topic_perm: perm("defaultTopicPerm")?,
            default_group_perm: perm("defaultGroupPerm")?,
            topic_perms: list("topicPerms")?,
            group_perms: list("groupPerms")?,
        })
    }
}

/// What [`Acl::upsert_account`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    Created,
    Updated,
}

/// An account as GET_BROKER_CLUSTER_ACL_INFO shows it: Apache's
/// `PlainAccessConfig` JSON names, without `secretKey`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountView {
    pub access_key: String,
    pub white_remote_address: Option<String>,
    pub admin: bool,
    pub default_topic_perm: String,
    pub default_group_perm: String,
    pub topic_perms: Vec<String>,
    pub group_perms: Vec<String>,
}

/// The ACL as GET_BROKER_CLUSTER_ACL_INFO shows it (Apache's `AclConfig`
/// JSON names, plus the data version); it holds no secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AclView {
    pub version: DataVersion,
    pub global_white_addrs: Vec<String>,
    pub plain_access_configs: Vec<AccountView>,
}

impl Acl {
    /// Creates or changes the account `update` names.
    pub fn upsert_account(&mut self, update: AccountUpdate, now_ms: i64) -> Result<Upserted, AclError> {
        let at = self.index.get(&update.access_key).copied();
        let mut spec = match at.and_then(|i| self.accounts.get(i)) {
            Some(a) => a.spec().clone(),
            None => AccountSpec {
                access_key: update.access_key.clone(),
                secret_key: update
                    .secret_key
                    .clone()
                    .ok_or_else(|| invalid("a new account needs a secretKey"))?,
                white_remote_address: None,
                admin: false,
                default_topic_perm: Perm::Deny,
                default_group_perm: Perm::Deny,
                topic_perms: Vec::new(),
                group_perms: Vec::new(),
            },
        };
        if let Some(secret) = update.secret_key {
            spec.secret_key = secret;
        }
        if let Some(white) = update.white_remote_address {
            spec.white_remote_address = parse_optional_address(&white).map_err(invalid)?;
        }
        if let Some(admin) = update.admin {
            spec.admin = admin;
        }
        if let Some(p) = update.default_topic_perm {
            spec.default_topic_perm = p;
        }
        if let Some(p) = update.default_group_perm {
            spec.default_group_perm = p;
        }
        if let Some(list) = update.topic_perms {
            spec.topic_perms = list;
        }
        if let Some(list) = update.group_perms {
            spec.group_perms = list;
        }
        let account = Account::new(spec).map_err(invalid)?;
        let done = match at {
            Some(i) => {
                self.accounts[i] = account;
                Upserted::Updated
            }
            None => {
                self.accounts.push(account);
                Upserted::Created
            }
        };
        self.reindex();
        self.version = self.version.next(now_ms);
        Ok(done)
    }

    /// Removes the account with `access_key`.
    pub fn delete_account(&mut self, access_key: &str, now_ms: i64) -> Result<(), AclError> {
        let Some(i) = self.index.get(access_key).copied() else {
            return Err(AclError::NoSuchAccount(access_key.chars().take(64).collect()));
        };
        self.accounts.remove(i);
        self.reindex();
        self.version = self.version.next(now_ms);
        Ok(())
    }

    /// Replaces the global white list; blank entries are dropped.
    pub fn set_global_white_addrs<S: AsRef<str>>(
        &mut self,
        addrs: impl IntoIterator<Item = S>,
        now_ms: i64,
    ) -> Result<(), AclError> {
        let mut parsed = Vec::new();
        for a in addrs {
            if let Some(p) = parse_optional_address(a.as_ref()).map_err(invalid)? {
                parsed.push(p);
            }
        }
        self.global_white = parsed;
        self.version = self.version.next(now_ms);
        Ok(())
    }

    /// [`Self::set_global_white_addrs`] from the header's comma-separated
    /// `globalWhiteAddrs` (commas inside `{...}` do not split).
    pub fn set_global_white_addrs_text(&mut self, text: &str, now_ms: i64) -> Result<(), AclError> {
        self.set_global_white_addrs(split_top_level(text), now_ms)
    }

    /// The ACL without secrets.
    pub fn view(&self) -> AclView {
        AclView {
            version: self.version,
            global_white_addrs: self.global_white.iter().map(|p| p.as_str().to_owned()).collect(),
            plain_access_configs: self
                .accounts
                .iter()
                .map(|a| {
                    let s = a.spec();
                    AccountView {
                        access_key: s.access_key.clone(),
                        white_remote_address: s.white_remote_address.as_ref().map(|p| p.as_str().to_owned()),
                        admin: s.admin,
                        default_topic_perm: s.default_topic_perm.as_str().to_owned(),
                        default_group_perm: s.default_group_perm.as_str().to_owned(),
                        topic_perms: s.topic_perms.iter().map(ToString::to_string).collect(),
                        group_perms: s.group_perms.iter().map(ToString::to_string).collect(),
                    }
                })
                .collect(),
        }
    }
}

#[cfg(test)]
#[path = "edit_tests.rs"]
mod tests;
