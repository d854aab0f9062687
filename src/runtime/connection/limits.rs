//! What a connection may make a shard hold: per-connection limits, the
//! shard's inbound budget for large frames, and connection admission.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::Duration;

use glommio::sync::Semaphore;

/// Per-connection limits (from the broker's settings).
#[derive(Clone, Debug)]
pub struct Limits {
    pub idle_timeout: Duration,
    pub partial_frame_timeout: Duration,
    pub outbox_max_bytes: usize,
    pub write_stall_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            idle_timeout: Duration::from_secs(120),
            partial_frame_timeout: Duration::from_secs(30),
            outbox_max_bytes: 16 << 20,
            write_stall_timeout: Duration::from_secs(30),
        }
    }
}

/// Bytes of large frames being read or running, per shard.
pub struct InboundBudget {
    /// Large frames (over [`super::READ_CHUNK`]): their whole size is taken
    /// before their body is buffered.
    pub(super) sem: Rc<Semaphore>,
    total: u64,
    /// Small frames: their size is taken once decoded, before their
    /// request starts. Both are held until the request ends, so the bytes
    /// of the requests a shard is reading or running are bounded by the
    /// two totals, whatever the number of connections.
    pub(super) small: Rc<Semaphore>,
    small_total: u64,
}

impl InboundBudget {
    pub fn new(bytes: u64, small_bytes: u64) -> Rc<InboundBudget> {
        Rc::new(InboundBudget {
            sem: Rc::new(Semaphore::new(bytes)),
            total: bytes,
            small: Rc::new(Semaphore::new(small_bytes)),
            small_total: small_bytes,
        })
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    /// What a small frame of `bytes` takes (never more than there is).
    pub(super) fn small_share(&self, bytes: u64) -> u64 {
        bytes.min(self.small_total)
    }
}

/// Open connections per shard and per client address.
pub struct ConnLimits {
    per_shard: usize,
    per_addr: usize,
    open: Cell<usize>,
    by_addr: RefCell<HashMap<IpAddr, usize>>,
    refused: Cell<u64>,
}

/// An admitted connection; dropping it gives its place back.
pub struct Admission {
    limits: Rc<ConnLimits>,
    addr: IpAddr,
}

impl ConnLimits {
    pub fn new(per_shard: usize, per_addr: usize) -> Rc<ConnLimits> {
        Rc::new(ConnLimits {
            per_shard,
            per_addr,
            open: Cell::new(0),
            by_addr: RefCell::new(HashMap::new()),
            refused: Cell::new(0),
        })
    }

    /// Admits a connection from `addr`, or refuses it (None) when it is
    /// over a limit, logging the refusal sparsely (the 1st, 2nd, 4th, 8th…:
    /// a flood must not become a log flood). `who` names the listener.
    pub fn admit(self: &Rc<Self>, addr: IpAddr, who: &str) -> Option<Admission> {
        match self.try_admit(addr) {
            Ok(a) => Some(a),
            Err(why) => {
                let refused = self.refused.get() + 1;
                self.refused.set(refused);
                if refused.is_power_of_two() {
                    log::warn!("{who}: refusing a connection from {addr}: {why} ({refused} refused so far)");
                }
                None
            }
        }
    }

    fn try_admit(self: &Rc<Self>, addr: IpAddr) -> Result<Admission, String> {
        if self.open.get() >= self.per_shard {
            return Err(format!("{} connections open on this shard (the limit)", self.per_shard));
        }
        let mut by = self.by_addr.borrow_mut();
        let n = by.entry(addr).or_insert(0);
        if *n >= self.per_addr {
            return Err(format!("{} connections open from {addr} (the limit)", self.per_addr));
        }
        *n += 1;
        self.open.set(self.open.get() + 1);
        Ok(Admission {
            limits: self.clone(),
            addr,
        })
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let l = &self.limits;
        l.open.set(l.open.get().saturating_sub(1));
        let mut by = l.by_addr.borrow_mut();
        if let Some(n) = by.get_mut(&self.addr) {
            *n -= 1;
            if *n == 0 {
                by.remove(&self.addr);
            }
        }
    }
}
