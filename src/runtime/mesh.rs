//! Shard-to-shard messaging over a glommio channel mesh.
//!
//! A [`Mesh`] carries three kinds of message between the shards of one
//! process: a call (`Req`) whose answer (`Rep`) the caller awaits, that
//! answer, and one-way events (`Ev`). The broker defines the three types
//! (typed Rust values, never wire frames: nothing a socket sends can become
//! one); this layer only numbers calls and matches their answers.
//!
//! Channels are bounded: a full peer queue makes the sender wait
//! (back-pressure), never grow. A call to a shard whose channel is gone
//! answers `None`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;

use futures::channel::oneshot;
use glommio::channels::channel_mesh::Senders;

/// How a connection numbers queues: the main port uses global queue ids,
/// a shard's own port numbers that shard's queues from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Main,
    Shard(u16),
}

/// Who sent a request: enough to answer, to push to the connection later
/// (from any shard, through the mesh) and to describe it in admin output.
#[derive(Debug, Clone)]
pub struct ClientRef {
    pub shard: u16,
    pub conn: u64,
    pub addr: SocketAddr,
    pub view: View,
    /// Who the client proved to be, when its transport checked that once
    /// for every request made on its behalf (the gRPC endpoint); `No` for
    /// remoting, whose requests each carry their own signature.
    pub verified: Verified,
}

/// See [`ClientRef::verified`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Verified {
    #[default]
    No,
    /// From an address that needs no credentials.
    WhiteListed,
    /// Signed with this account's secret.
    Account(std::sync::Arc<str>),
}

/// What travels between two shards.
pub enum Envelope<Req, Rep, Ev> {
    Call { id: u64, from: u16, req: Req },
    Reply { id: u64, rep: Rep },
    Event(Ev),
}

pub struct Mesh<Req: Send + 'static, Rep: Send + 'static, Ev: Send + 'static> {
    pub me: u16,
    senders: Senders<Envelope<Req, Rep, Ev>>,
    next_id: Cell<u64>,
    pending: RefCell<HashMap<u64, oneshot::Sender<Rep>>>,
}

impl<Req: Send + 'static, Rep: Send + 'static, Ev: Send + 'static> Mesh<Req, Rep, Ev> {
    pub fn new(me: u16, senders: Senders<Envelope<Req, Rep, Ev>>) -> Self {
        Mesh {
            me,
            senders,
            next_id: Cell::new(1),
            pending: RefCell::new(HashMap::new()),
        }
    }

    pub fn shard_count(&self) -> u16 {
        self.senders.nr_consumers() as u16
    }

    /// Runs `req` on shard `to` (never this one: the caller runs its own
    /// part directly) and returns its answer; `None` when the peer is gone.
    pub async fn call(&self, to: u16, req: Req) -> Option<Rep> {
        debug_assert_ne!(to, self.me, "a shard calls itself directly, not through the mesh");
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let (tx, rx) = oneshot::channel();
        self.pending.borrow_mut().insert(id, tx);
        let sent = self
            .senders
            .send_to(to as usize, Envelope::Call { id, from: self.me, req })
            .await;
        if sent.is_err() {
            self.pending.borrow_mut().remove(&id);
            return None;
        }
        rx.await.ok()
    }

    /// Answers call `id` of shard `to`.
    pub async fn reply(&self, to: u16, id: u64, rep: Rep) {
        let _ = self.senders.send_to(to as usize, Envelope::Reply { id, rep }).await;
    }

    /// Hands an answer that arrived to the call waiting for it.
    pub fn complete(&self, id: u64, rep: Rep) {
        if let Some(tx) = self.pending.borrow_mut().remove(&id) {
            let _ = tx.send(rep);
        }
    }

    /// A one-way event to shard `to`.
    pub async fn send(&self, to: u16, ev: Ev) {
        let _ = self.senders.send_to(to as usize, Envelope::Event(ev)).await;
    }
}
