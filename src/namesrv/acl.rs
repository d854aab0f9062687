//! ACL on the name server port (`aclEnable`). Route and cluster queries
//! (GET_ROUTEINFO_BY_TOPIC, GET_BROKER_CLUSTER_INFO) are answered to
//! anyone, as Apache's name server does: they hold broker addresses, no
//! data, and every client asks for them before it can sign anything a
//! broker would check. Every other request — broker registrations, KV
//! config, topic deletions — is checked as on a broker (`crate::acl`):
//! signed by a known **admin** account from an allowed address. A refusal
//! is NO_PERMISSION with the remark; failed authentications are slowed
//! down per address and account.
//!
//! Without this anyone who reaches the port could register a broker under
//! a real broker's name and take its clients (route hijack).
//!
//! The broker a name server is embedded in registers with an *inner*
//! account: an admin account made up at start (random key and secret,
//! never written anywhere), added to whatever the ACL file says. A
//! broker registering with another name server signs with the account
//! of `namesrvAccessKey` / `namesrvSecretKey`.
//!
//! The file is re-read when it changes (checked every second, off the
//! name server's thread), as brokers do.

use std::cell::{Cell, RefCell};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::acl::{stamp, AccountUpdate, Acl, Gate, Stamp};
use crate::protocol::codes::{request, response};
use crate::protocol::RemotingCommand;

/// An account made up for one process (the embedded name server's own
/// broker): admin, any address.
#[derive(Clone)]
pub struct InnerAccount {
    pub access_key: String,
    pub secret_key: String,
}

impl std::fmt::Debug for InnerAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InnerAccount")
            .field("access_key", &self.access_key)
            .finish_non_exhaustive()
    }
}

impl InnerAccount {
    /// A fresh random account (key and secret from /dev/urandom).
    pub fn generate() -> Result<InnerAccount, String> {
        Ok(InnerAccount {
            access_key: format!("shardmq-inner-{}", crate::runtime::random_hex(4)?),
            secret_key: crate::runtime::random_hex(20)?,
        })
    }
}

/// What the name server starts with: the file and the inner account.
#[derive(Clone, Debug)]
pub struct NamesrvAclConfig {
    pub path: PathBuf,
    pub inner: Option<InnerAccount>,
}

/// The checks of one name server (its own thread).
pub struct NamesrvAcl {
    cfg: NamesrvAclConfig,
    acl: RefCell<Arc<Acl>>,
    seen: Cell<Option<Stamp>>,
    gate: Gate,
}

impl NamesrvAcl {
    /// Reads the file (start-up: a bad file fails the start).
    pub fn load(cfg: NamesrvAclConfig) -> Result<NamesrvAcl, String> {
        let seen = stamp(&cfg.path).ok();
        let acl = Acl::load(&cfg.path).map_err(|e| format!("aclEnable=true: {e}"))?;
        let acl = with_inner(acl, cfg.inner.as_ref())?;
        Ok(NamesrvAcl {
            cfg,
            acl: RefCell::new(Arc::new(acl)),
            seen: Cell::new(seen),
            gate: Gate::default(),
        })
    }

    /// Checks `cmd` from `peer`: `None` to serve it, or the refusal to
    /// answer.
    pub fn check(&self, cmd: &RemotingCommand, peer: IpAddr) -> Option<RemotingCommand> {
        if matches!(
            cmd.code,
            request::GET_ROUTEINFO_BY_TOPIC | request::GET_BROKER_CLUSTER_INFO
        ) {
            return None;
        }
        let acl = self.acl.borrow().clone();
        let refusal = self.gate.check(&acl, cmd, peer).err()?;
        Some(RemotingCommand::response_to(
            cmd,
            response::NO_PERMISSION,
            Some(refusal.remark()),
        ))
    }

    /// Re-reads the file when it changed (the read runs on a helper
    /// thread); a file that does not parse is logged and the ACL in force
    /// stays.
    pub async fn reload_if_changed(&self) {
        let path = self.cfg.path.clone();
        let now = crate::runtime::blocking::run(move || stamp(&path).ok()).await;
        if now == self.seen.get() {
            return;
        }
        let path = self.cfg.path.clone();
        let (before, loaded) = crate::runtime::blocking::run(move || (stamp(&path).ok(), Acl::load(&path))).await;
        self.seen.set(before);
        match loaded
            .map_err(|e| e.to_string())
            .and_then(|a| with_inner(a, self.cfg.inner.as_ref()))
        {
            Ok(acl) => {
                log::info!(
                    "name server ACL: {} changed, reloaded: {} accounts",
                    self.cfg.path.display(),
                    acl.accounts().len()
                );
                *self.acl.borrow_mut() = Arc::new(acl);
            }
            Err(e) => log::error!("name server ACL: {e}; the ACL in force stays as it was"),
        }
    }
}

/// How often the file is checked for changes.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(1);

fn with_inner(mut acl: Acl, inner: Option<&InnerAccount>) -> Result<Acl, String> {
    if let Some(a) = inner {
        let update = AccountUpdate {
            access_key: a.access_key.clone(),
            secret_key: Some(crate::acl::Secret::new(a.secret_key.clone())),
            white_remote_address: None,
            admin: Some(true),
            ..Default::default()
        };
        acl.upsert_account(update, 0)
            .map_err(|e| format!("the name server's inner account: {e}"))?;
    }
    Ok(acl)
}
