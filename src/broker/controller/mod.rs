//! The controller: single writer of the broker's metadata, on shard 0.
//!
//! It owns, one file per concern: [`topics`] (persisted in
//! `config/topics.json`), subscription group configs ([`groups`],
//! `config/subscriptionGroup.json`), the producer and consumer tables
//! built from heartbeats and the subscriptions consumers registered
//! ([`clients`]), and orderly-consumer queue [`locks`]. After every change that
//! the data shards need (topics, subscriptions) it publishes a new
//! read-only [`Metadata`] snapshot to all shards *before* answering, so the
//! client's next request finds it wherever it lands.
//!
//! Subscription consistency: members of one consumer group must subscribe
//! to the same topics with the same expressions. The controller compares
//! each member's subscription set with the others' on every heartbeat; a
//! difference is logged with the group, the clients and the difference, and
//! kept in [`Controller::inconsistencies`] for admin tools and metrics.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::protocol::codes::request;
use crate::protocol::RemotingCommand;
use crate::runtime::mesh::ClientRef;
use crate::store::notify::Notify;

use super::metadata::{self, perm, Metadata, Subscription, TopicInfo};
use crate::config::BrokerConfig;

mod assign;
mod clients;
mod groups;
mod locks;
mod replica;
mod topics;

pub use locks::global_queue;

/// What the controller needs from the shard it runs on: the broker's
/// settings, the current snapshot, and ways to reach every shard and every
/// client connection. The shard implements it; the controller never names
/// the shard type, so the two do not depend on each other.
pub trait Host {
    fn config(&self) -> &BrokerConfig;
    /// A slave now (controller mode: as the controller last said).
    fn is_slave(&self) -> bool {
        self.config().broker_role == crate::config::BrokerRole::Slave
    }
    /// The snapshot the shards read now.
    fn meta(&self) -> Arc<Metadata>;
    /// Installs a snapshot on every shard.
    fn publish(&self, m: Arc<Metadata>) -> impl std::future::Future<Output = ()>;
    /// Queues a broker → client command on connection `conn` of shard
    /// `shard` (dropped if that connection's queue is full).
    fn push(&self, shard: u16, conn: u64, cmd: RemotingCommand) -> impl std::future::Future<Output = ()>;
}

/// A channel is forgotten after this long without a heartbeat.
pub const CHANNEL_EXPIRY: Duration = Duration::from_secs(120);
/// A queue lock expires this long after its last renewal.
pub const LOCK_EXPIRY: Duration = Duration::from_secs(60);
/// Upper bounds on client state (connections are bounded by the OS; this
/// bounds what a misbehaving client can make us remember).
const MAX_GROUPS: usize = 100_000;
const MAX_SUBSCRIPTIONS_PER_CLIENT: usize = 10_000;

pub(super) type ChannelKey = (u16, u64);
/// (group, topic, global queue id) → (owner client id, last renewal).
type LockTable = HashMap<(String, String, u32), (String, Instant)>;

#[derive(Debug, Clone)]
pub(super) struct Channel {
    pub(super) client_id: String,
    pub(super) last_seen: Instant,
    /// Remote address, language and protocol version of the connection
    /// (GET_CONSUMER_CONNECTION_LIST).
    pub(super) addr: std::net::SocketAddr,
    pub(super) language: &'static str,
    pub(super) version: i32,
}

#[derive(Debug, Default)]
pub(super) struct ConsumerGroup {
    pub(super) channels: HashMap<ChannelKey, Channel>,
    /// clientId → its subscriptions (topic → expression).
    pub(super) subs: HashMap<String, BTreeMap<String, String>>,
    pub(super) message_model: String,
    pub(super) consume_type: String,
    pub(super) consume_from_where: String,
}

impl Channel {
    fn new(client_id: &str, now: Instant, client: &ClientRef, cmd: &RemotingCommand) -> Channel {
        Channel {
            client_id: client_id.to_string(),
            last_seen: now,
            addr: client.addr,
            language: cmd.language.name(),
            version: cmd.version,
        }
    }
}

impl ConsumerGroup {
    pub(super) fn client_ids(&self) -> BTreeSet<String> {
        self.channels.values().map(|c| c.client_id.clone()).collect()
    }
}

/// A detected subscription difference inside a consumer group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inconsistency {
    pub group: String,
    pub client: String,
    pub other: String,
    pub difference: String,
}

pub struct Controller {
    topics: RefCell<HashMap<String, Arc<TopicInfo>>>,
    pub(super) subscriptions: RefCell<HashMap<(String, String), Subscription>>,
    pub(super) groups: RefCell<HashMap<String, ConsumerGroup>>,
    /// Subscription group configs (`config/subscriptionGroup.json`), kept
    /// as the JSON objects clients sent so that unknown fields survive.
    pub(super) sub_groups: RefCell<BTreeMap<String, Value>>,
    pub(super) sub_groups_version: Cell<u64>,
    producers: RefCell<HashMap<String, HashMap<ChannelKey, Channel>>>,
    producer_turn: Cell<usize>,
    locks: RefCell<LockTable>,
    /// Message request modes per (topic, group) ([`assign`]).
    pub(super) modes: RefCell<BTreeMap<(String, String), assign::RequestMode>>,
    inconsistent: RefCell<Vec<Inconsistency>>,
    version: Cell<u64>,
    shard_count: u16,
    pub(super) root: std::path::PathBuf,
    /// Topics changed: the registration task re-registers at once.
    pub topics_changed: Notify,
}

impl Controller {
    pub fn new(root: std::path::PathBuf, shard_count: u16, topics: Vec<TopicInfo>) -> Controller {
        Controller {
            topics: RefCell::new(
                topics
                    .into_iter()
                    .map(|t| (t.topic_name.clone(), Arc::new(t)))
                    .collect(),
            ),
            subscriptions: RefCell::new(HashMap::new()),
            groups: RefCell::new(HashMap::new()),
            sub_groups: RefCell::new(BTreeMap::new()),
            sub_groups_version: Cell::new(0),
            producers: RefCell::new(HashMap::new()),
            producer_turn: Cell::new(0),
            locks: RefCell::new(HashMap::new()),
            modes: RefCell::new(BTreeMap::new()),
            inconsistent: RefCell::new(Vec::new()),
            version: Cell::new(1),
            shard_count,
            root,
            topics_changed: Notify::default(),
        }
    }

    /// Adds the system topics a broker always has (TBW102 when
    /// auto-creation is on, with `defaultTopicQueueNums` queues spread
    /// evenly over the shards: each shard entry advertises its share, the
    /// main entry all of them; see [`metadata::auto_create_assignment`]).
    pub fn ensure_system_topics(&self, auto_create: bool, default_queues: u32) -> Result<(), String> {
        let mut changed = false;
        {
            let mut topics = self.topics.borrow_mut();
            let mut add = |name: &str, q: u32, p: i32| {
                if !topics.contains_key(name) {
                    topics.insert(
                        name.to_string(),
                        Arc::new(metadata::new_topic(name, q, q, p, self.shard_count)),
                    );
                    changed = true;
                }
            };
            if auto_create {
                add(
                    metadata::AUTO_CREATE_TOPIC_KEY,
                    default_queues,
                    perm::READ | perm::WRITE | perm::INHERIT,
                );
            }
            add("SELF_TEST_TOPIC", 1, perm::READ | perm::WRITE);
            add("OFFSET_MOVED_EVENT", 1, perm::READ | perm::WRITE);
        }
        if changed {
            metadata::store_topics(&self.root, self.shard_count, &self.topics.borrow())?;
        }
        Ok(())
    }

    pub fn snapshot(&self) -> Arc<Metadata> {
        Arc::new(Metadata {
            version: self.version.get(),
            topics: self.topics.borrow().clone(),
            subscriptions: self.subscriptions.borrow().clone(),
            shard_count: self.shard_count,
        })
    }

    pub fn topics(&self) -> HashMap<String, Arc<TopicInfo>> {
        self.topics.borrow().clone()
    }

    /// Groups whose consumers subscribe differently, each once.
    pub fn inconsistent_groups(&self) -> Vec<String> {
        let mut groups: Vec<String> = self.inconsistent.borrow().iter().map(|i| i.group.clone()).collect();
        groups.dedup();
        groups
    }

    pub fn inconsistencies(&self) -> Vec<Inconsistency> {
        self.inconsistent.borrow().clone()
    }

    async fn republish(&self, host: &impl Host) {
        self.version.set(self.version.get() + 1);
        host.publish(self.snapshot()).await;
    }

    pub async fn handle(&self, host: &impl Host, cmd: RemotingCommand, client: &ClientRef) -> Option<RemotingCommand> {
        let admin_write = matches!(
            cmd.code,
            request::UPDATE_AND_CREATE_TOPIC
                | request::DELETE_TOPIC_IN_BROKER
                | request::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP
        );
        if admin_write && host.is_slave() {
            // A slave's topics and groups are its master's (`replica.rs`):
            // a change here would be undone by the next copy.
            let why = if host.config().enable_controller_mode {
                "this broker is not its group's master now (the controller names the master): change topics \
                 and groups on the master"
            } else {
                "this broker is a SLAVE: change topics and groups on its master"
            };
            return super::reply::error(&cmd, crate::protocol::codes::response::NO_PERMISSION, why);
        }
        match cmd.code {
            request::HEART_BEAT => self.heartbeat(host, cmd, client).await,
            request::UNREGISTER_CLIENT => self.unregister(host, cmd, client).await,
            request::GET_CONSUMER_LIST_BY_GROUP => self.consumer_list(cmd),
            request::LOCK_BATCH_MQ => self.lock(host, cmd, true),
            request::UNLOCK_BATCH_MQ => self.lock(host, cmd, false),
            request::UPDATE_AND_CREATE_TOPIC => self.create_topic(host, cmd).await,
            request::DELETE_TOPIC_IN_BROKER => self.delete_topic(host, cmd).await,
            request::GET_ALL_TOPIC_CONFIG => self.all_topics(cmd),
            request::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP => self.update_group(cmd).await,
            request::GET_ALL_SUBSCRIPTIONGROUP_CONFIG => self.all_groups(cmd),
            request::GET_CONSUMER_CONNECTION_LIST => self.consumer_connections(cmd),
            request::QUERY_ASSIGNMENT => self.query_assignment(host, cmd),
            request::SET_MESSAGE_REQUEST_MODE => {
                self.set_request_mode(cmd, host.config().auto_create_subscription_group)
                    .await
            }
            request::GET_ALL_MESSAGE_REQUEST_MODE => self.all_request_modes(cmd),
            _ => super::reply::not_supported(&cmd),
        }
    }
}
