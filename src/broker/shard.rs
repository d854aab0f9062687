//! The state one shard owns: its store, consumer offsets, long-poll
//! waiters, connections, metadata snapshot and its end of the mesh (the
//! controller's state too, on shard 0). Handlers receive it; which shard
//! runs what is [`super::dispatch`]'s business.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use crate::config::BrokerConfig;
use crate::metrics::Op;
use crate::protocol::{RemotingCommand, UniqIdGenerator};
use crate::runtime::connection::Outbox;
use crate::runtime::mesh::ClientRef;
use crate::store::MessageStore;

use super::consumer_offsets::ConsumerOffsets;
use super::controller::{Controller, Host};
use super::long_poll::LongPolls;
use super::mesh::{ConnOp, Event, Reply, Request, ShardMesh};
use super::metadata::Metadata;

/// How long a topic the controller created may take to reach this shard.
pub const TOPIC_VISIBLE_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);

pub struct Shard {
    pub id: u16,
    pub cfg: Arc<BrokerConfig>,
    pub store: MessageStore,
    pub meta: RefCell<Arc<Metadata>>,
    pub mesh: ShardMesh,
    pub conns: RefCell<HashMap<u64, (Rc<Outbox>, ClientRef)>>,
    next_conn: Cell<u64>,
    pub offsets: ConsumerOffsets,
    pub pulls: LongPolls,
    pub uniq: RefCell<UniqIdGenerator>,
    pub metrics: crate::metrics::ShardMetrics,
    /// Delayed and scheduled messages of this shard's queues.
    pub timer: super::timer::state::Timer,
    /// Transactional (half) messages of this shard's queues.
    pub tx: super::transaction::state::Transactions,
    /// Invisible-time consumption of this shard's queues.
    pub pops: super::pop::state::Pops,
    /// Shard 0 only.
    pub controller: Option<Controller>,
    /// The ACL in force here (`aclEnable`).
    pub access: super::access::Access,
    /// Shard 0 with ACL on: the ACL file it edits and watches.
    pub acl_file: Option<super::access::AclFile>,
    pub audit: Rc<super::audit::Audit>,
    /// Broker-side trace records (`traceBrokerEvents`).
    pub trace: super::trace::BrokerTrace,
    /// Shard 0: the alert rules' state, as the engine last published it
    /// (`broker::alerts`; the engine itself is shard 0's thread-local).
    pub alert_status: RefCell<Vec<crate::metrics::AlertStatus>>,
    /// Signalled when a new metadata snapshot is installed.
    meta_changed: crate::store::notify::Notify,
    /// A slave's: its master shard's replication address, from
    /// `haMasterAddress` or the name server.
    ha_master: RefCell<Option<String>>,
    pub ha_master_changed: crate::store::notify::Notify,
    /// This shard's role in its broker group (`ha::role`).
    pub role: super::ha::state::RoleState,
    /// Controller mode: what the shards share with the controller agent.
    pub ha_shared: std::cell::OnceCell<Arc<super::ha::agent::Shared>>,
}

impl Shard {
    pub fn new(
        id: u16,
        cfg: Arc<BrokerConfig>,
        store: MessageStore,
        mesh: ShardMesh,
        meta: Arc<Metadata>,
        controller: Option<Controller>,
        acl: Option<&super::access::Loaded>,
    ) -> Shard {
        let (access, acl_file) = super::access::Loaded::for_shard(acl, controller.is_some());
        let audit = Rc::new(super::audit::Audit::new(
            &cfg.store_path_root_dir,
            id,
            cfg.audit_log_enable,
        ));
        let offsets = ConsumerOffsets::load(&store.dir());
        let timer = super::timer::state::Timer::new(&store.dir(), cfg.timer_max_in_memory);
        let tx = super::transaction::state::Transactions::new(&store.dir());
        let pops = super::pop::state::Pops::new(&store.dir(), cfg.pop_max_in_flight);
        let trace = super::trace::BrokerTrace::new(cfg.trace_broker_events);
        let (cfg_controller_mode, cfg_role) = (cfg.enable_controller_mode, cfg.broker_role);
        Shard {
            pops,
            timer,
            tx,
            id,
            uniq: RefCell::new(UniqIdGenerator::new(cfg.broker_ip1)),
            cfg,
            store,
            meta: RefCell::new(meta),
            mesh,
            conns: RefCell::new(HashMap::new()),
            next_conn: Cell::new(1),
            offsets,
            pulls: LongPolls::default(),
            metrics: crate::metrics::ShardMetrics::default(),
            acl_file,
            access,
            audit,
            controller,
            alert_status: RefCell::new(Vec::new()),
            trace,
            meta_changed: Default::default(),
            ha_master: RefCell::new(None),
            ha_master_changed: Default::default(),
            role: super::ha::state::RoleState::new(cfg_controller_mode, cfg_role),
            ha_shared: std::cell::OnceCell::new(),
        }
    }

    pub fn meta(&self) -> Arc<Metadata> {
        self.meta.borrow().clone()
    }

    /// `f` of the current snapshot, read in place (no reference count of
    /// the snapshot, shared with the other shards, is touched). `f` cannot
    /// await, so no borrow is held across a suspension.
    pub fn with_meta<T>(&self, f: impl FnOnce(&Metadata) -> T) -> T {
        f(&self.meta.borrow())
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

    /// Asks shard `to` (another shard) to run `req`; `None` when it is gone.
    pub async fn ask(&self, to: u16, req: Request) -> Option<Reply> {
        let t = Instant::now();
        let r = self.mesh.call(to, req).await;
        self.metrics.record(Op::CrossShardHop, t.elapsed());
        r
    }

    /// Does `op` to connection `conn` of shard `to`: here when it is this
    /// shard, through the mesh otherwise.
    pub async fn to_conn(&self, to: u16, conn: u64, op: ConnOp) {
        if to == self.id {
            self.on_conn(conn, op);
        } else {
            self.mesh.send(to, Event::Conn { conn, op }).await;
        }
    }

    /// Does `op` to one of this shard's connections (gone: nothing to do).
    pub fn on_conn(&self, conn: u64, op: ConnOp) {
        let Some(out) = self.conns.borrow().get(&conn).map(|(o, _)| o.clone()) else {
            return;
        };
        match op {
            ConnOp::Push(cmd) => {
                out.try_push(cmd);
            }
            ConnOp::Defer => out.defer(),
            ConnOp::Deliver(cmd) => out.deliver(cmd),
        }
    }

    /// Takes a metadata snapshot from the controller unless it is older
    /// than the one this shard has.
    pub fn install(&self, m: Arc<Metadata>) {
        if m.version >= self.meta.borrow().version {
            *self.meta.borrow_mut() = m;
            self.meta_changed.notify_all();
        }
    }

    /// Has the controller create `topic` (auto-creation: a retry or DLQ
    /// topic, or one from TBW102 with `queue_nums` queues for the client's
    /// `view`) — here on shard 0, through the mesh elsewhere — and returns it
    /// once its snapshot reached this shard.
    pub async fn auto_create_topic(
        &self,
        topic: &str,
        queue_nums: i32,
        view: crate::runtime::mesh::View,
    ) -> Result<Arc<super::metadata::TopicInfo>, (i32, String)> {
        use crate::protocol::codes::response;
        let done = match &self.controller {
            Some(c) => c.auto_create_topic(self, topic, queue_nums, view).await,
            None => {
                let req = Request::AutoCreateTopic {
                    topic: topic.to_string(),
                    default_queue_nums: queue_nums,
                    view,
                };
                match self.ask(0, req).await {
                    Some(Reply::Done(r)) => r,
                    Some(_) => Err((response::SYSTEM_ERROR, super::mesh::unexpected("AutoCreateTopic"))),
                    None => Err((response::SYSTEM_ERROR, "the controller did not answer".into())),
                }
            }
        };
        done?;
        self.topic_after_create(topic, TOPIC_VISIBLE_WITHIN)
            .await
            .ok_or_else(|| {
                (
                    response::SYSTEM_ERROR,
                    format!("topic {topic} was created but is not visible"),
                )
            })
    }

    /// A topic the controller just created or found: its snapshot may still
    /// be on its way to this shard (another request's creation is published
    /// to every shard, but not necessarily before this request's answer
    /// arrives). Waits for it at most `within`.
    pub async fn topic_after_create(
        &self,
        name: &str,
        within: std::time::Duration,
    ) -> Option<Arc<super::metadata::TopicInfo>> {
        let deadline = Instant::now() + within;
        loop {
            let seen = self.meta_changed.generation();
            if let Some(t) = self.topic(name) {
                return Some(t);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            futures_lite::future::or(
                async {
                    self.meta_changed.changed_since(seen).await;
                    true
                },
                async {
                    glommio::timer::sleep(left).await;
                    false
                },
            )
            .await;
        }
    }

    /// A slave's master shard's replication address (`host:port`), once
    /// known.
    /// A slave now: configured so, or so named by the controller (or not
    /// named anything yet).
    pub fn is_slave_now(&self) -> bool {
        !self.role.is_master()
    }

    /// The brokerId to register with the name servers: in controller
    /// mode the master's is 0 and a slave's its own.
    pub fn registered_broker_id(&self) -> u64 {
        if self.cfg.enable_controller_mode && self.role.is_master() {
            0
        } else {
            self.cfg.broker_id
        }
    }

    pub fn ha_master(&self) -> Option<String> {
        self.ha_master.borrow().clone()
    }

    pub fn set_ha_master(&self, addr: String) {
        if self.ha_master.borrow().as_deref() != Some(addr.as_str()) {
            *self.ha_master.borrow_mut() = Some(addr);
            self.ha_master_changed.notify_all();
        }
    }

    /// A message became visible on (topic, queue): pulls and pops waiting
    /// for one are due.
    pub fn message_arrived(&self, topic: &str, queue: u32) {
        self.pulls.wake(topic, queue);
        self.pops.polls.wake(topic, queue);
    }

    /// Publishes a metadata snapshot to every shard (this one included).
    pub async fn publish(&self, m: Arc<Metadata>) {
        for s in 0..self.shard_count() {
            if s == self.id {
                self.install(m.clone());
            } else {
                self.mesh.send(s, Event::Metadata(m.clone())).await;
            }
        }
    }
}

impl Host for Shard {
    fn config(&self) -> &BrokerConfig {
        &self.cfg
    }

    fn is_slave(&self) -> bool {
        self.is_slave_now()
    }

    fn meta(&self) -> Arc<Metadata> {
        Shard::meta(self)
    }

    async fn publish(&self, m: Arc<Metadata>) {
        Shard::publish(self, m).await
    }

    async fn push(&self, shard: u16, conn: u64, cmd: RemotingCommand) {
        self.to_conn(shard, conn, ConnOp::Push(cmd)).await
    }
}
