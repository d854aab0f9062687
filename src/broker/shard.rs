//! The state one shard owns, and the glue from connections to handlers.
//!
//! A request is handled where its queue lives: the connection's shard
//! decodes it, translates shard-local queue ids to global ones, and either
//! runs the handler itself or forwards the request to the owner shard (or
//! to the controller, shard 0, for client/group/topic metadata).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use crate::config::BrokerConfig;
use crate::metrics::Op;
use crate::protocol::codes::{request, response};
use crate::protocol::{RemotingCommand, UniqIdGenerator};
use crate::runtime::connection::{Outbox, Service};
use crate::runtime::router::{ClientRef, Router, ShardMsg, View};
use crate::store::MessageStore;

use super::controller::Controller;
use super::metadata::Metadata;
use super::offsets::ConsumerOffsets;
use super::pull::PullWaiters;

pub struct Shard {
    pub id: u16,
    pub cfg: Arc<BrokerConfig>,
    pub store: MessageStore,
    pub meta: RefCell<Arc<Metadata>>,
    pub router: Router,
    pub conns: RefCell<HashMap<u64, (Rc<Outbox>, ClientRef)>>,
    next_conn: Cell<u64>,
    pub offsets: ConsumerOffsets,
    pub pulls: PullWaiters,
    pub uniq: RefCell<UniqIdGenerator>,
    pub metrics: crate::metrics::ShardMetrics,
    /// Shard 0 only.
    pub controller: Option<Controller>,
}

impl Shard {
    pub fn new(
        id: u16,
        cfg: Arc<BrokerConfig>,
        store: MessageStore,
        router: Router,
        meta: Arc<Metadata>,
        controller: Option<Controller>,
    ) -> Shard {
        let offsets = ConsumerOffsets::load(&store.dir());
        Shard {
            id,
            uniq: RefCell::new(UniqIdGenerator::new(cfg.broker_ip1)),
            cfg,
            store,
            meta: RefCell::new(meta),
            router,
            conns: RefCell::new(HashMap::new()),
            next_conn: Cell::new(1),
            offsets,
            pulls: PullWaiters::default(),
            metrics: crate::metrics::ShardMetrics::default(),
            controller,
        }
    }

    pub fn meta(&self) -> Arc<Metadata> {
        self.meta.borrow().clone()
    }

    /// `f` of a topic of the current snapshot, read in place.
    pub fn with_topic<T>(&self, name: &str, f: impl FnOnce(&super::metadata::TopicInfo) -> T) -> Option<T> {
        self.meta.borrow().topic(name).map(|t| f(t))
    }

    /// A topic of the current snapshot (without cloning the snapshot).
    pub fn topic(&self, name: &str) -> Option<Arc<super::metadata::TopicInfo>> {
        self.meta.borrow().topic(name).cloned()
    }

    pub fn new_conn_id(&self) -> u64 {
        let c = self.next_conn.get();
        self.next_conn.set(c + 1);
        c
    }

    pub fn shard_count(&self) -> u16 {
        self.meta.borrow().shard_count
    }

    /// Messages from other shards.
    pub async fn on_message(self: &Rc<Self>, msg: ShardMsg) {
        match msg {
            ShardMsg::Call { id, from, cmd, client } => {
                let me = self.clone();
                glommio::spawn_local(async move {
                    let reply = super::dispatch::execute(&me, cmd, &client).await;
                    me.router.reply(from, id, reply).await;
                })
                .detach();
            }
            ShardMsg::Reply { id, reply } => self.router.complete(id, reply),
            ShardMsg::Metadata(m) => {
                if m.version >= self.meta.borrow().version {
                    *self.meta.borrow_mut() = m;
                }
            }
            ShardMsg::Push { conn, cmd } => self.push(conn, cmd),
            ShardMsg::ConnClosed(client) => {
                if let Some(c) = &self.controller {
                    c.connection_closed(self, &client);
                }
            }
        }
    }

    /// Queues a command on one of this shard's connections.
    pub fn push(&self, conn: u64, cmd: RemotingCommand) {
        if let Some((out, _)) = self.conns.borrow().get(&conn) {
            out.try_push(cmd);
        }
    }

    /// Publishes a metadata snapshot to every shard (this one included).
    pub async fn publish(self: &Rc<Self>, m: Arc<Metadata>) {
        for s in 0..self.shard_count() {
            if s == self.id {
                *self.meta.borrow_mut() = m.clone();
            } else {
                self.router.send(s, ShardMsg::Metadata(m.clone())).await;
            }
        }
    }

    /// Runs `cmd` on shard `to` (locally when it is this shard).
    pub async fn run_on(self: &Rc<Self>, to: u16, cmd: RemotingCommand, client: &ClientRef) -> Option<RemotingCommand> {
        if to == self.id {
            Box::pin(super::dispatch::execute(self, cmd, client)).await
        } else {
            let t = std::time::Instant::now();
            let r = self.router.call(to, cmd, client.clone()).await;
            self.metrics.record(crate::metrics::Op::CrossShardHop, t.elapsed());
            r
        }
    }
}

/// A listener's service: the broker on the main port or a shard port.
pub struct BrokerService {
    pub shard: Rc<Shard>,
    pub view: View,
}

impl Service for BrokerService {
    // Not `async fn`: the trait promises a `'static` future, which this
    // block is (it owns everything it uses).
    #[allow(clippy::manual_async_fn)]
    fn handle(
        self: Rc<Self>,
        conn: u64,
        cmd: RemotingCommand,
        received: Instant,
    ) -> impl Future<Output = Option<RemotingCommand>> + 'static {
        async move {
            // Shard-to-shard requests travel on the mesh, never from a
            // socket: one that arrives on a connection is unknown to it.
            if is_internal_code(cmd.code) {
                self.shard.metrics.request(cmd.code);
                self.shard.metrics.error(response::REQUEST_CODE_NOT_SUPPORTED);
                return if cmd.is_oneway() { None } else { not_supported(&cmd) };
            }
            let client = self.shard.conns.borrow().get(&conn).map(|(_, c)| c.clone())?;
            let m = &self.shard.metrics;
            let start = Instant::now();
            m.record(Op::Queueing, start - received);
            m.request(cmd.code);
            let oneway = cmd.is_oneway();
            let op = op_of(cmd.code);
            let reply = super::dispatch::route(&self.shard, cmd, &client).await;
            m.record(op, start.elapsed());
            if let Some(r) = &reply {
                if !matches!(
                    r.code,
                    response::SUCCESS
                        | response::PULL_NOT_FOUND
                        | response::PULL_RETRY_IMMEDIATELY
                        | response::QUERY_NOT_FOUND
                ) {
                    m.error(r.code);
                }
            }
            if oneway {
                None
            } else {
                reply
            }
        }
    }

    fn traffic(&self, inbound: u64, outbound: u64) {
        self.shard.metrics.bytes(inbound, outbound);
    }

    fn closed(&self, conn: u64) {
        let Some((_, client)) = self.shard.conns.borrow_mut().remove(&conn) else {
            return;
        };
        let shard = self.shard.clone();
        glommio::spawn_local(async move {
            if shard.id == 0 {
                if let Some(c) = &shard.controller {
                    c.connection_closed(&shard, &client);
                }
            } else {
                shard.router.send(0, ShardMsg::ConnClosed(client)).await;
            }
        })
        .detach();
    }
}

fn op_of(code: i32) -> Op {
    match code {
        request::SEND_MESSAGE | request::SEND_MESSAGE_V2 | request::SEND_BATCH_MESSAGE => Op::Send,
        request::PULL_MESSAGE | request::LITE_PULL_MESSAGE => Op::Pull,
        request::UPDATE_CONSUMER_OFFSET => Op::OffsetUpdate,
        _ => Op::Other,
    }
}

/// An error reply with a remark (never for oneway requests).
pub fn error(req: &RemotingCommand, code: i32, remark: impl Into<String>) -> Option<RemotingCommand> {
    Some(RemotingCommand::response_to(req, code, Some(remark.into())))
}

/// Request codes only shards send each other (over the mesh): a socket
/// that sends one gets REQUEST_CODE_NOT_SUPPORTED. GET_BROKER_STATS
/// (19001, `shardmq admin stats`) is public.
pub fn is_internal_code(code: i32) -> bool {
    use super::admin::{GROUP_INFO, PUSH_RESET, SHARD_QUEUE_STATS, SHARD_RESET_OFFSET};
    use super::stats::{GET_INCONSISTENT, GET_SHARD_STATS};
    [
        GET_SHARD_STATS,
        GET_INCONSISTENT,
        SHARD_QUEUE_STATS,
        SHARD_RESET_OFFSET,
        GROUP_INFO,
        PUSH_RESET,
    ]
    .contains(&code)
}

pub fn not_supported(req: &RemotingCommand) -> Option<RemotingCommand> {
    error(
        req,
        response::REQUEST_CODE_NOT_SUPPORTED,
        request::not_supported_remark(req.code),
    )
}
