//! Where a port checks a request against the ACL: the failure limiter in
//! front of the check, and the log line of a refusal. One gate per shard
//! (and one for the name server); every port of it goes through it.

use std::cell::RefCell;
use std::net::IpAddr;
use std::time::Instant;

use super::limiter::{Limiter, LimiterConfig};
use super::{Acl, Refusal};
use crate::protocol::codes::request;
use crate::protocol::RemotingCommand;

pub struct Gate {
    limiter: RefCell<Limiter>,
}

impl Default for Gate {
    fn default() -> Self {
        Self {
            limiter: RefCell::new(Limiter::new(LimiterConfig::default())),
        }
    }
}

impl Gate {
    /// Whether remoting request `cmd` from `peer` may run under `acl`: its
    /// signature, its account's address rule and every permission it needs.
    pub fn check(&self, acl: &Acl, cmd: &RemotingCommand, peer: IpAddr) -> Result<(), Refusal> {
        // The limiter's bucket: the account named, if there is one.
        let who = cmd
            .ext_fields
            .get_str(super::signature::ACCESS_KEY)
            .filter(|k| acl.account(k).is_some())
            .unwrap_or("");
        let what = request::name(cmd.code).unwrap_or("a request");
        self.guard(peer, who, what, || acl.check(peer, cmd).map(|_| ()))
    }

    /// Runs `check` for `what` from `peer` as account `who` (`""`: none
    /// known) unless the limiter holds them back; counts the outcome and
    /// logs a failed authentication (bounded: the limiter answers the next
    /// ones unchecked).
    pub fn guard<T>(
        &self,
        peer: IpAddr,
        who: &str,
        what: &str,
        check: impl FnOnce() -> Result<T, Refusal>,
    ) -> Result<T, Refusal> {
        let now = Instant::now();
        // Read before the check, not borrowed across it: a failure below
        // records itself.
        let retry = self.limiter.borrow().retry_after(peer, who, now);
        if let Some(wait) = retry {
            return Err(Refusal::throttled(peer, wait));
        }
        let checked = check();
        match &checked {
            Ok(_) => self.limiter.borrow_mut().record_success(peer, who),
            Err(refusal) if refusal.is_authentication_failure() => {
                let wait = self.limiter.borrow_mut().record_failure(peer, who, now);
                log::warn!(
                    "ACL: refused {what} from {peer}: {}{}",
                    refusal.remark(),
                    if wait.is_zero() {
                        String::new()
                    } else {
                        format!("; its next requests wait {} ms", wait.as_millis())
                    }
                );
            }
            Err(refusal) => log::debug!("ACL: refused {what} from {peer}: {}", refusal.remark()),
        }
        checked
    }
}
