//! Cross-shard routing over a glommio channel mesh.
//!
//! Every shard can ask another shard to execute a remoting request and
//! await the reply (`call`), publish a metadata snapshot, push a command
//! onto one of the other shard's connections, or report a closed
//! connection. Channels are bounded: a full peer queue makes the sender
//! wait (back-pressure), never grow.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use futures::channel::oneshot;
use glommio::channels::channel_mesh::Senders;

use crate::broker::metadata::Metadata;
use crate::protocol::RemotingCommand;

/// How a connection numbers queues: the main port uses global queue ids,
/// a shard's own port numbers that shard's queues from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Main,
    Shard(u16),
}

/// Who sent a request: enough to answer, to push to the connection later
/// and to describe it in admin output.
#[derive(Debug, Clone)]
pub struct ClientRef {
    pub shard: u16,
    pub conn: u64,
    pub addr: SocketAddr,
    pub view: View,
}

pub enum ShardMsg {
    Call {
        id: u64,
        from: u16,
        cmd: RemotingCommand,
        client: ClientRef,
    },
    Reply {
        id: u64,
        reply: Option<RemotingCommand>,
    },
    Metadata(Arc<Metadata>),
    Push {
        conn: u64,
        cmd: RemotingCommand,
    },
    ConnClosed(ClientRef),
}

pub struct Router {
    pub me: u16,
    senders: Senders<ShardMsg>,
    next_id: Cell<u64>,
    pending: RefCell<HashMap<u64, oneshot::Sender<Option<RemotingCommand>>>>,
}

impl Router {
    pub fn new(me: u16, senders: Senders<ShardMsg>) -> Router {
        Router {
            me,
            senders,
            next_id: Cell::new(1),
            pending: RefCell::new(HashMap::new()),
        }
    }

    pub fn shard_count(&self) -> u16 {
        self.senders.nr_consumers() as u16
    }

    /// Executes `cmd` on shard `to` and returns its reply (None: oneway or
    /// the peer is gone).
    pub async fn call(&self, to: u16, cmd: RemotingCommand, client: ClientRef) -> Option<RemotingCommand> {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let (tx, rx) = oneshot::channel();
        self.pending.borrow_mut().insert(id, tx);
        if self
            .senders
            .send_to(
                to as usize,
                ShardMsg::Call {
                    id,
                    from: self.me,
                    cmd,
                    client,
                },
            )
            .await
            .is_err()
        {
            self.pending.borrow_mut().remove(&id);
            return None;
        }
        rx.await.ok().flatten()
    }

    pub async fn reply(&self, to: u16, id: u64, reply: Option<RemotingCommand>) {
        let _ = self.senders.send_to(to as usize, ShardMsg::Reply { id, reply }).await;
    }

    pub fn complete(&self, id: u64, reply: Option<RemotingCommand>) {
        if let Some(tx) = self.pending.borrow_mut().remove(&id) {
            let _ = tx.send(reply);
        }
    }

    pub async fn send(&self, to: u16, msg: ShardMsg) {
        let _ = self.senders.send_to(to as usize, msg).await;
    }
}
