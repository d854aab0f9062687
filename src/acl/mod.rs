//! Access control: RocketMQ 4.x "ACL 1.0" (plain ACL) accounts, request
//! signatures and permissions, as a pure library.
//!
//! Nothing here does I/O on the request path or keeps a clock: the broker
//! hands in the client's address, the decoded request and (for the
//! [`Limiter`]) the time. [`Acl::load`]/[`Acl::save`] read and write the
//! ACL file, off the hot path.
//!
//! # Files
//!
//! * [`file`](mod@file) — the ACL file (`plain_acl.yml` keys), parse and write.
//! * [`account`] — accounts, permissions, wildcard/prefix resources.
//! * [`address`] — client address patterns (CIDR and RocketMQ's forms).
//! * [`signature`] — the HMAC-SHA1 request signature and client quirks.
//! * [`grpc_signature`] — the 5.x gRPC clients' `authorization` header.
//! * [`resources`] — what each request code needs (the table is there).
//! * [`edit`] — the admin operations (codes 50–53) and the secret-free view.
//! * [`limiter`] — slowing down addresses that keep failing.
//! * [`refusal`] — refusals and their remarks.
//!
//! # Checking a request
//!
//! ```text
//!   remote in globalWhiteRemoteAddresses? ── yes ──> pass (no signature, no permissions)
//!   AccessKey absent or ""?               ── yes ──> refuse (Anonymous)
//!   no account with that AccessKey?       ── yes ──> refuse (UnknownAccessKey)
//!   whiteRemoteAddress set, remote not in it? ─────> refuse (AddressNotAllowed)
//!   Signature wrong?                      ── yes ──> refuse (BadSignature)
//!   admin code and not an admin account?  ── yes ──> refuse (AdminRequired)
//!   each resource the request needs:
//!     admin account with no topic/group entries ───> pass
//!     permission (exact > longest prefix > default) lacks the need ─> refuse (Denied)
//!   pass
//! ```
//!
//! What the broker does per request (the wiring step):
//!
//! ```ignore
//! if acl_enabled {
//!     if let Some(wait) = limiter.retry_after(peer_ip, account_or_blank, now) {
//!         return refuse(Refusal::throttled(peer_ip, wait));
//!     }
//!     match acl.check(peer_ip, &cmd) {
//!         Ok(_identity) => limiter.record_success(peer_ip, account_or_blank),
//!         Err(refusal) => {
//!             if refusal.is_authentication_failure() {
//!                 limiter.record_failure(peer_ip, account_or_blank, now);
//!             }
//!             // NO_PERMISSION with the remark; nothing for a oneway request.
//!             return reply(refusal.response_code(), refusal.remark());
//!         }
//!     }
//! }
//! ```
//!
//! [`Acl::check`] reads request bodies where the needs are in them
//! (HEART_BEAT, LOCK/UNLOCK_BATCH_MQ, QUERY_ASSIGNMENT, BATCH_ACK_MESSAGE);
//! a broker that has decoded a heartbeat already can call
//! [`Acl::authenticate`] and then [`Acl::authorize`] with
//! [`Needs::of_heartbeat`]. Handlers that learn a message's real topic only
//! after reading it (VIEW_MESSAGE_BY_ID, CONSUMER_SEND_MSG_BACK,
//! END_TRANSACTION name an offset) can call [`Acl::authorize`] again with
//! that topic.
//!
//! # Deviations from Apache RocketMQ 4.9.8 (and why)
//!
//! * **`whiteRemoteAddress` restricts** where an account may connect from
//!   (absent, blank or `*`: anywhere). In 4.9.8 a match *skipped the
//!   signature and permission checks*, so anyone who knew an access key
//!   could act as the account from those addresses.
//! * **Unlisted request codes need an admin account** (fail closed). 4.9.8
//!   required admin for five codes only and let any account reset offsets,
//!   read broker config, update ACLs (50–53), and so on.
//! * **Retry and DLQ topics are their group's**: `%RETRY%g` and `%DLQ%g`
//!   need SUB on group `g`, whatever the request. 4.9.8 mapped only
//!   `%RETRY%`, and for a send to one checked the group named by the
//!   producer-group header (and a header key `group` that V1 sends lack).
//! * **Wildcard/prefix entries** (`orders-*=SUB`, `*=DENY`): 4.9.8 knew
//!   exact names only.
//! * **More requests are covered**: POP codes, LITE_PULL, offset queries,
//!   lock/unlock, QUERY_ASSIGNMENT, END_TRANSACTION/RECALL (their `topic`),
//!   QUERY_CONSUMER_OFFSET (the [`resources`] table).
//! * **Address patterns** check every octet (4.9.8 ignored those after the
//!   first range), mix forms in one list, and accept CIDR.
//! * **The file is strict**: an unknown permission word, a short key, a
//!   malformed entry or a repeated access key fails the load with its
//!   place (4.9.8 read unknown words as DENY and let the last duplicate
//!   win). One file, not a directory of them.
//! * **`_UNIQUE_KEY_QUERY`**: the version rule of the 5.x broker, and the
//!   other rule when it fails (4.9.8 always left it out).
//! * **Refusals** answer NO_PERMISSION (16), as 5.x does, not SYSTEM_ERROR.
//! * **Repeated failures are slowed down** ([`Limiter`]); 4.9.8 had none.
//! * **GET_BROKER_CLUSTER_ACL_INFO's view has no secrets** ([`AclView`]);
//!   4.9.8's GET_BROKER_CLUSTER_ACL_CONFIG returned the secret keys.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

pub mod account;
pub mod address;
pub mod edit;
pub mod file;
pub mod gate;
pub mod grpc_signature;
pub mod limiter;
pub mod refusal;
pub mod resources;
pub mod signature;

pub use account::{Account, AccountSpec, Perm, ResourcePerm, Secret};
pub use address::AddressPattern;
pub use edit::{AccountUpdate, AccountView, AclView, Upserted};
pub use file::{stamp, Stamp};
pub use gate::Gate;
pub use limiter::{Limiter, LimiterConfig};
pub use refusal::Refusal;
pub use resources::{needs_of_body, required, BodyKind, Need, Needs, Required, Resource};

use crate::protocol::bodies::DataVersion;
use crate::protocol::RemotingCommand;

use refusal::shown_key;

/// Loading, parsing, writing or editing the ACL failed.
#[derive(Debug, thiserror::Error)]
pub enum AclError {
    #[error("cannot read ACL file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write ACL file {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The YAML parser's error; its message has the place and the line
    /// and column when known (also in `line`/`column`, 1-based).
    #[error("{origin}: {message}")]
    Parse {
        origin: String,
        line: Option<usize>,
        column: Option<usize>,
        message: String,
    },
    /// Well-formed YAML with invalid content, or an invalid edit.
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
    #[error("no account has accessKey {0:?}")]
    NoSuchAccount(String),
}

/// Who a request comes from, once authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity<'a> {
    /// From a `globalWhiteRemoteAddresses` address: nothing is checked.
    WhiteListed,
    Account(&'a Account),
}

/// The ACL: global white list, accounts and the file's version.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    global_white: Vec<AddressPattern>,
    accounts: Vec<Account>,
    /// Access key → index in `accounts`.
    index: HashMap<String, usize>,
    version: DataVersion,
}

impl Acl {
    /// Parses ACL file text (errors name it `<ACL text>`).
    pub fn parse(text: &str) -> Result<Self, AclError> {
        Self::parse_named(text, "<ACL text>")
    }

    /// Parses ACL file text; errors name it `origin`.
    pub fn parse_named(text: &str, origin: &str) -> Result<Self, AclError> {
        Ok(Self::from_document(file::parse(text, origin)?))
    }

    /// Reads and parses the ACL file at `path`.
    pub fn load(path: &Path) -> Result<Self, AclError> {
        let read = |source| AclError::Read {
            path: path.to_path_buf(),
            source,
        };
        let len = std::fs::metadata(path).map_err(read)?.len();
        if len > file::MAX_FILE_BYTES as u64 {
            return Err(AclError::Invalid {
                origin: path.display().to_string(),
                message: format!("larger than {} bytes", file::MAX_FILE_BYTES),
            });
        }
        let text = std::fs::read_to_string(path).map_err(read)?;
        Self::parse_named(&text, &path.display().to_string())
    }

    /// The ACL file text (secrets included).
    pub fn to_yaml(&self) -> Result<String, AclError> {
        file::to_yaml(&self.document())
    }

    /// Writes the ACL file: a temporary file beside `path` (mode 0600: it
    /// holds secrets), synced, renamed over `path`, directory synced.
    pub fn save(&self, path: &Path) -> Result<(), AclError> {
        let text = self.to_yaml()?;
        let write = |source| AclError::Write {
            path: path.to_path_buf(),
            source,
        };
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        {
            use std::io::Write as _;
            use std::os::unix::fs::OpenOptionsExt as _;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(write)?;
            f.write_all(text.as_bytes()).map_err(write)?;
            f.sync_all().map_err(write)?;
        }
        std::fs::rename(&tmp, path).map_err(write)?;
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(write)?;
        Ok(())
    }

    fn from_document(doc: file::Document) -> Self {
        let mut acl = Self {
            global_white: doc.global_white,
            accounts: doc.accounts,
            index: HashMap::new(),
            version: doc.version,
        };
        acl.reindex();
        acl
    }

    fn document(&self) -> file::Document {
        file::Document {
            global_white: self.global_white.clone(),
            accounts: self.accounts.clone(),
            version: self.version,
        }
    }

    fn reindex(&mut self) {
        self.index = self
            .accounts
            .iter()
            .enumerate()
            .map(|(i, a)| (a.access_key().to_owned(), i))
            .collect();
    }

    pub fn account(&self, access_key: &str) -> Option<&Account> {
        self.index.get(access_key).and_then(|&i| self.accounts.get(i))
    }

    /// Accounts in file order.
    pub fn accounts(&self) -> &[Account] {
        &self.accounts
    }

    pub fn global_white_remote_addresses(&self) -> &[AddressPattern] {
        &self.global_white
    }

    /// The file's `dataVersion` (GET_BROKER_CLUSTER_ACL_INFO reports it).
    pub fn version(&self) -> DataVersion {
        self.version
    }

    pub fn is_globally_white(&self, remote: IpAddr) -> bool {
        self.global_white.iter().any(|p| p.matches(remote))
    }

    /// Who sent `cmd` from `remote`: the global white list, or an account
    /// whose address rule admits `remote` and whose secret signed `cmd`.
    pub fn authenticate(&self, remote: IpAddr, cmd: &RemotingCommand) -> Result<Identity<'_>, Refusal> {
        if self.is_globally_white(remote) {
            return Ok(Identity::WhiteListed);
        }
        let Some(key) = cmd.ext_fields.get_str(signature::ACCESS_KEY) else {
            return Err(Refusal::Anonymous { remote });
        };
        let Some(account) = self.account(key) else {
            return Err(Refusal::UnknownAccessKey {
                access_key: shown_key(key),
            });
        };
        if !account.allows_address(remote) {
            return Err(Refusal::AddressNotAllowed {
                access_key: shown_key(key),
                remote,
            });
        }
        if !signature::verify_request(account.secret().expose(), cmd) {
            return Err(Refusal::BadSignature {
                access_key: shown_key(key),
            });
        }
        Ok(Identity::Account(account))
    }

    /// Whether `account` may make a request needing `needs`.
    pub fn authorize(&self, account: &Account, needs: &Needs<'_>) -> Result<(), Refusal> {
        if let Some(code) = needs.admin_code().filter(|_| !account.is_admin()) {
            return Err(Refusal::AdminRequired {
                access_key: shown_key(account.access_key()),
                code,
            });
        }
        if needs.overflowed() {
            return Err(Refusal::TooManyResources);
        }
        if account.is_unrestricted() {
            return Ok(());
        }
        for (resource, need) in needs.iter() {
            let trace = need == Need::Pub && *resource == Resource::Topic(resources::TRACE_TOPIC.into());
            if !trace && !account.perm(resource).allows(need) {
                return Err(Refusal::Denied {
                    access_key: shown_key(account.access_key()),
                    resource: resource.clone().into_owned(),
                    need,
                });
            }
        }
        Ok(())
    }

    /// Authenticates `cmd` and checks everything it needs ([`required`],
    /// its body read when the needs are there).
    pub fn check(&self, remote: IpAddr, cmd: &RemotingCommand) -> Result<Identity<'_>, Refusal> {
        let identity = self.authenticate(remote, cmd)?;
        let Identity::Account(account) = identity else {
            return Ok(identity);
        };
        match required(cmd.code, &cmd.ext_fields) {
            Required::Needs(needs) => self.authorize(account, &needs)?,
            // Nothing to read for an account that may use everything.
            Required::Body(_) if account.is_unrestricted() => {}
            Required::Body(kind) => {
                let needs = needs_of_body(kind, &cmd.body).map_err(|reason| Refusal::UnreadableBody {
                    reason: reason.chars().take(200).collect(),
                })?;
                self.authorize(account, &needs)?;
            }
        }
        Ok(identity)
    }
}

#[cfg(test)]
mod tests;
