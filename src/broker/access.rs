//! Access control on a shard: every request is checked where it arrives,
//! before it is routed anywhere ([`super::dispatch::route`]).
//!
//! Each shard holds the same read-only `Arc<Acl>` snapshot, replaced as a
//! whole when the ACL changes (an admin edit or the file changing on disk,
//! [`super::acl_admin`]; the controller publishes it), and a [`Limiter`] of
//! its own for the addresses whose connections it serves. `None` is
//! `aclEnable=false`: nothing is checked.
//!
//! Cost per request with ACL on: one HMAC-SHA1 over the header fields and
//! the body (the signature), one hash lookup of the access key and the
//! permission lookups; the body is decoded only for the requests whose
//! resources are in it (heartbeats, lock batches), and not at all for an
//! admin account without resource entries.

use std::cell::{Cell, RefCell};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use glommio::sync::Semaphore;

use crate::acl::{stamp, Acl, Gate, Identity, Need, Needs, Refusal, Stamp};
use crate::protocol::RemotingCommand;
use crate::runtime::mesh::{ClientRef, Verified};

pub struct Access {
    acl: RefCell<Option<Arc<Acl>>>,
    gate: Gate,
}

impl Access {
    pub fn new(acl: Option<Arc<Acl>>) -> Self {
        Self {
            acl: RefCell::new(acl),
            gate: Gate::default(),
        }
    }

    /// The ACL in force (`None`: ACL is off).
    pub fn current(&self) -> Option<Arc<Acl>> {
        self.acl.borrow().clone()
    }

    pub fn enabled(&self) -> bool {
        self.acl.borrow().is_some()
    }

    /// Replaces the ACL (only ever with ACL on: it is never switched on or
    /// off at runtime).
    pub fn install(&self, acl: Arc<Acl>) {
        let mut slot = self.acl.borrow_mut();
        if slot.is_some() {
            *slot = Some(acl);
        }
    }

    /// Whether `cmd` from `peer` may run: its signature, its account's
    /// address rule and every permission it needs.
    pub fn check(&self, cmd: &RemotingCommand, peer: IpAddr) -> Result<(), Refusal> {
        match self.current() {
            Some(acl) => self.gate.check(&acl, cmd, peer),
            None => Ok(()),
        }
    }

    /// Whether a gRPC call from `peer` with these `authorization` and
    /// `x-mq-date-time` headers may make a request needing `needs`.
    pub fn check_grpc(
        &self,
        peer: IpAddr,
        authorization: Option<&str>,
        date_time: Option<&str>,
        needs: &Needs<'_>,
    ) -> Result<Verified, Refusal> {
        let Some(acl) = self.current() else {
            return Ok(Verified::No);
        };
        let who = authorization
            .and_then(|h| crate::acl::grpc_signature::parse(h).ok())
            .map(|a| a.access_key)
            .filter(|k| acl.account(k).is_some())
            .unwrap_or("");
        self.gate.guard(peer, who, "a gRPC call", || {
            acl.authenticate_grpc(peer, authorization, date_time, crate::runtime::epoch_ms())
                .and_then(|id| match id {
                    Identity::WhiteListed => Ok(Verified::WhiteListed),
                    Identity::Account(account) => acl
                        .authorize(account, needs)
                        .map(|()| Verified::Account(account.access_key().into())),
                })
        })
    }

    /// For requests that name a message by its offset (VIEW_MESSAGE_BY_ID,
    /// CONSUMER_SEND_MSG_BACK, END_TRANSACTION): once the handler has read
    /// the message, whether `client` may `need` its real `topic` (the
    /// header's topic, checked on arrival, is the client's word).
    pub fn check_topic(
        &self,
        cmd: &RemotingCommand,
        client: &ClientRef,
        topic: &str,
        need: Need,
    ) -> Result<(), Refusal> {
        let Some(acl) = self.current() else {
            return Ok(());
        };
        let account = match &client.verified {
            Verified::WhiteListed => return Ok(()),
            Verified::Account(key) => acl.account(key).ok_or_else(|| Refusal::UnknownAccessKey {
                access_key: key.to_string(),
            })?,
            Verified::No => match acl.authenticate(client.addr.ip(), cmd)? {
                Identity::WhiteListed => return Ok(()),
                Identity::Account(account) => account,
            },
        };
        acl.authorize(account, &Needs::none().topic(topic, need))
    }
}

/// The controller's hold on the ACL file.
pub struct AclFile {
    pub(super) path: PathBuf,
    /// One permit: an edit or a reload at a time.
    pub(super) turn: Semaphore,
    /// The file as last read or written.
    pub(super) seen: Cell<Option<Stamp>>,
}

impl AclFile {
    fn new(loaded: &Loaded) -> Self {
        Self {
            path: loaded.path.clone(),
            turn: Semaphore::new(1),
            seen: Cell::new(loaded.seen),
        }
    }
}

/// The ACL file as read at start, on the main thread, for the shards.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub acl: Arc<Acl>,
    path: PathBuf,
    seen: Option<Stamp>,
}

impl Loaded {
    /// Reads the ACL file (blocking: not on a shard).
    pub fn load(path: &Path) -> Result<Self, crate::acl::AclError> {
        let seen = stamp(path).ok();
        Ok(Self {
            acl: Arc::new(Acl::load(path)?),
            path: path.to_path_buf(),
            seen,
        })
    }

    /// The shard's ACL state; the controller's also holds the file.
    pub fn for_shard(loaded: Option<&Loaded>, controller: bool) -> (Access, Option<AclFile>) {
        let access = Access::new(loaded.map(|l| l.acl.clone()));
        (access, loaded.filter(|_| controller).map(AclFile::new))
    }
}

/// [`Access::check_topic`] as a handler's error: (NO_PERMISSION, remark).
pub fn may(
    access: &Access,
    cmd: &RemotingCommand,
    client: &ClientRef,
    topic: &str,
    need: Need,
) -> Result<(), (i32, String)> {
    access
        .check_topic(cmd, client, topic, need)
        .map_err(|r| (r.response_code(), r.remark()))
}

/// The answer to a refused request (none for a oneway one).
pub fn refuse(cmd: &RemotingCommand, refusal: &Refusal) -> Option<RemotingCommand> {
    super::reply::error(cmd, refusal.response_code(), refusal.remark())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::signature;
    use crate::protocol::codes::request;

    const FILE: &str = "accounts:\n  - accessKey: producer1\n    secretKey: secret-producer-1\n    defaultTopicPerm: DENY\n    topicPerms:\n      - orders=PUB\n";

    fn signed(code: i32, fields: &[(&str, &str)], secret: &str) -> RemotingCommand {
        let mut cmd = RemotingCommand::new_request(code);
        for (k, v) in fields {
            cmd.ext_fields.insert(*k, *v);
        }
        cmd.ext_fields.insert(signature::ACCESS_KEY, "producer1");
        let sig = signature::sign(secret, &cmd.ext_fields, &cmd.body, signature::exclusions_for(&cmd));
        cmd.ext_fields.insert(signature::SIGNATURE, sig);
        cmd
    }

    fn peer() -> IpAddr {
        "10.1.2.3".parse().unwrap()
    }

    #[test]
    fn off_checks_nothing_and_install_never_switches_it_on() {
        let a = Access::new(None);
        a.install(Arc::new(Acl::parse(FILE).unwrap()));
        assert!(!a.enabled());
        assert!(a
            .check(&RemotingCommand::new_request(request::SEND_MESSAGE_V2), peer())
            .is_ok());
    }

    #[test]
    fn checks_permissions_and_slows_down_repeated_failures() {
        let a = Access::new(Some(Arc::new(Acl::parse(FILE).unwrap())));
        let ok = signed(request::SEND_MESSAGE, &[("topic", "orders")], "secret-producer-1");
        assert!(a.check(&ok, peer()).is_ok());
        let denied = signed(request::SEND_MESSAGE, &[("topic", "payments")], "secret-producer-1");
        let r = a.check(&denied, peer()).unwrap_err();
        assert!(matches!(r, Refusal::Denied { .. }), "{r:?}");
        // A permission refusal is not a failed authentication: not counted.
        assert!(a.check(&ok, peer()).is_ok());
        let forged = signed(request::SEND_MESSAGE, &[("topic", "orders")], "guess");
        let mut throttled = false;
        for _ in 0..10 {
            match a.check(&forged, peer()) {
                Err(Refusal::BadSignature { .. }) => {}
                Err(Refusal::Throttled { .. }) => throttled = true,
                other => panic!("{other:?}"),
            }
        }
        assert!(throttled, "repeated bad signatures are slowed down");
        // Even a good request waits its turn now.
        assert!(matches!(a.check(&ok, peer()), Err(Refusal::Throttled { .. })));
        // Another address is not affected.
        assert!(a.check(&ok, "10.1.2.4".parse().unwrap()).is_ok());
    }

    fn client(verified: Verified) -> ClientRef {
        ClientRef {
            shard: 0,
            conn: 1,
            addr: std::net::SocketAddr::new(peer(), 40000),
            view: crate::runtime::mesh::View::Main,
            verified,
        }
    }

    #[test]
    fn check_topic_authorizes_the_real_topic() {
        let a = Access::new(Some(Arc::new(Acl::parse(FILE).unwrap())));
        let cmd = signed(request::END_TRANSACTION, &[("topic", "orders")], "secret-producer-1");
        assert!(a.check(&cmd, peer()).is_ok());
        let remoting = client(Verified::No);
        assert!(a.check_topic(&cmd, &remoting, "orders", Need::Pub).is_ok());
        let r = a.check_topic(&cmd, &remoting, "payments", Need::Pub).unwrap_err();
        assert!(r.remark().contains("payments"), "{}", r.remark());
        // A request the gRPC endpoint made for an account it verified
        // carries no signature: the account decides.
        let unsigned = RemotingCommand::new_request(request::END_TRANSACTION);
        let grpc = client(Verified::Account("producer1".into()));
        assert!(a.check_topic(&unsigned, &grpc, "orders", Need::Pub).is_ok());
        assert!(a.check_topic(&unsigned, &grpc, "payments", Need::Pub).is_err());
        assert!(a
            .check_topic(&unsigned, &client(Verified::No), "orders", Need::Pub)
            .is_err());
        assert!(a
            .check_topic(&unsigned, &client(Verified::WhiteListed), "payments", Need::Pub)
            .is_ok());
    }
}
