//! What the shards of one broker send each other over the
//! [`crate::runtime::mesh`]: typed Rust values, never wire frames. A
//! request code a socket sends can only ever reach the public handler
//! table; none of these operations has one.
//!
//! A shard that needs something from every shard computes its own part
//! directly and asks the others ([`super::shard::Shard::ask`]); the owner
//! of a queue or of metadata answers with [`Reply`].

use std::sync::Arc;

use crate::metrics::{QueueLag, ShardSnapshot};
use crate::protocol::RemotingCommand;
use crate::runtime::mesh::{ClientRef, Mesh, View};
use crate::store::{MessageInput, PhysicalOffset};

use super::metadata::Metadata;

pub type ShardMesh = Mesh<Request, Reply, Event>;

/// A call from one shard to another.
// The large variants (a client's request or reply, a push: a whole
// `RemotingCommand`) are the ones sent all the time; boxing them would cost
// an allocation per hop, and the rare small variants gain nothing from it.
#[allow(clippy::large_enum_variant)]
pub enum Request {
    /// A client's request, run where what it touches lives: the owner of
    /// its queue, or the controller (shard 0) for client, group, lock and
    /// topic metadata. Its reply goes back to the client unchanged.
    Client { cmd: RemotingCommand, client: ClientRef },
    /// The shard's statistics snapshot and the backlog of its queues.
    Stats,
    /// Controller: groups whose consumers subscribe differently.
    InconsistentGroups,
    /// The shard's rows ([`QueueRow`]) for its queues of `topics` and, with
    /// `group_topics`, of every topic `group` committed offsets for.
    QueueRows {
        topics: Vec<String>,
        group: Option<String>,
        group_topics: bool,
    },
    /// The shard moves `group`'s committed offsets of its queues of `topic`
    /// to the first message stored at or after `timestamp` (`-1`: the end);
    /// without `force` an offset only moves back.
    ResetOffsets {
        group: String,
        topic: String,
        timestamp: i64,
        queue: Option<u32>,
        force: bool,
    },
    /// Controller: what it knows of a group ([`GroupInfo`]).
    GroupInfo { group: String },
    /// Controller: tell the group's online consumers their new offsets
    /// (RESET_CONSUMER_CLIENT_OFFSET).
    PushReset {
        group: String,
        topic: String,
        timestamp: i64,
        offsets: Vec<(u32, u64)>,
    },
    /// Controller: create the unknown topic a send names — a retry topic
    /// with one queue, or any other from the TBW102 template with the
    /// queue count the client derived (`default_queue_nums`) for the entry
    /// it sent through (`view`).
    AutoCreateTopic {
        topic: String,
        default_queue_nums: i32,
        view: View,
    },
    /// Store a message the broker makes (a retry, a dead letter, a resend
    /// of one) on the owner of its queue: at once, or scheduled for `due`
    /// (ms) through that shard's timer.
    Store { msg: MessageInput, due: Option<i64> },
    /// Acknowledge popped messages of a queue this shard owns: (offset,
    /// pop time of the handle) each.
    PopAck {
        group: String,
        topic: String,
        queue: u32,
        items: Vec<(u64, i64)>,
    },
    /// Change the invisible time of a popped message of a queue this shard
    /// owns (its handle's pop time).
    PopChange {
        group: String,
        topic: String,
        queue: u32,
        offset: u64,
        pop_time: i64,
        invisible_ms: i64,
    },
    /// Controller: one live connection of a producer group (for a
    /// transaction check), round robin.
    ProducerChannel { group: String },
    /// Groups that committed offsets of the shard's queues of `topic`
    /// (and, on the controller, whose consumers subscribe to it).
    TopicGroups { topic: String },
    /// Pop messages of the queues of `req.topic` this shard owns (a
    /// receive that sweeps every shard: the REST API).
    Pop { req: super::pop::types::PopRequest },
    /// Answer once a queue of `topic` this shard owns may have something to
    /// pop (a message arrived, a lease expired), or after `wait_ms`; an
    /// error when the shard holds too many waiting receives.
    PopWait {
        client: ClientRef,
        topic: String,
        wait_ms: u64,
    },
    /// The shard's records of `topic` found by `key` (QUERY_MESSAGE).
    QueryKey {
        topic: String,
        key: String,
        begin_ms: i64,
        end_ms: i64,
        max: usize,
    },
}

/// The answer to a [`Request`] (the variant of the same name).
// The large variants (a client's request or reply, a push: a whole
// `RemotingCommand`) are the ones sent all the time; boxing them would cost
// an allocation per hop, and the rare small variants gain nothing from it.
#[allow(clippy::large_enum_variant)]
pub enum Reply {
    Client(Option<RemotingCommand>),
    Stats(Box<ShardSnapshot>, Vec<QueueLag>),
    Groups(Vec<String>),
    QueueRows(Vec<QueueRow>),
    /// `(queue, new offset)` per queue, or the code and remark to answer.
    Reset(Result<Vec<(u32, u64)>, (i32, String)>),
    GroupInfo(GroupInfo),
    /// Done, or the code and remark to answer.
    Done(Result<(), (i32, String)>),
    /// Where a [`Request::Store`] put the message, or the code and remark.
    Stored(Result<Stored, (i32, String)>),
    /// (shard, connection) of a producer, if one is online.
    Channel(Option<(u16, u64)>),
    /// What a [`Request::PopAck`] did to each message.
    PopAcked(Result<Vec<super::pop::state::Outcome>, (i32, String)>),
    /// What a [`Request::PopChange`] did, and the new pop time.
    PopChanged(Result<(super::pop::state::Outcome, i64), (i32, String)>),
    /// What a [`Request::Pop`] popped.
    Popped(Result<super::pop::types::PopBatch, (i32, String)>),
    /// What a [`Request::QueryKey`] found, or why the lookup failed.
    Keys(Result<crate::store::key_index::KeyHits, String>),
}

/// Where a message the broker made was stored.
#[derive(Debug, Clone, Copy)]
pub struct Stored {
    pub queue_offset: u64,
    pub position: PhysicalOffset,
}

/// One-way messages.
// The large variants (a client's request or reply, a push: a whole
// `RemotingCommand`) are the ones sent all the time; boxing them would cost
// an allocation per hop, and the rare small variants gain nothing from it.
#[allow(clippy::large_enum_variant)]
pub enum Event {
    /// A new metadata snapshot from the controller.
    Metadata(Arc<Metadata>),
    /// A new ACL from the controller (ACL on).
    Acl(Arc<crate::acl::Acl>),
    /// Something for one of the receiving shard's connections.
    Conn { conn: u64, op: ConnOp },
    /// For the controller: a client connection closed.
    ConnClosed(ClientRef),
    /// A slave's: where the receiving shard's master shard serves
    /// replication, as the name server told shard 0's registration.
    HaMaster(String),
    /// Controller mode: the group as the controller has it now.
    Role(super::ha::agent::RoleView),
}

/// What a shard does to one of its client connections for another shard
/// (or for itself: [`super::shard::Shard::to_conn`] takes both roads).
pub enum ConnOp {
    /// Queue a broker → client command (dropped if the queue is full).
    Push(RemotingCommand),
    /// A reply to one of the connection's requests will come later (a
    /// parked long-poll pull): the connection is not idle meanwhile.
    Defer,
    /// That reply.
    Deliver(RemotingCommand),
}

/// One queue as its owner shard sees it (for admin statistics).
#[derive(Debug, Clone)]
pub struct QueueRow {
    pub topic: String,
    pub queue_id: u32,
    pub min: u64,
    pub max: u64,
    /// Store time of the newest message (0 if empty).
    pub last_update: i64,
    /// The group's committed offset, if any.
    pub consumer_offset: Option<u64>,
    /// Store time of the message at `consumer_offset - 1` (0 if unknown).
    pub last_timestamp: i64,
    /// Store time of the message at `consumer_offset`, the oldest not
    /// consumed (0 if none or unknown).
    pub next_timestamp: i64,
}

/// What the controller knows of a consumer group.
#[derive(Debug, Clone)]
pub struct GroupInfo {
    /// It has a subscription group config or an online consumer.
    pub known: bool,
    pub online: bool,
    /// Topics its consumers subscribe to.
    pub topics: Vec<String>,
    /// `retryMaxTimes` of its subscription group config (16 without one).
    pub retry_max_times: i32,
    /// An orderly consumer of the group holds a queue lock.
    pub holds_locks: bool,
    /// `consumeMessageOrderly` of its subscription group config (false
    /// without one): 5.x gRPC consumers of the group are FIFO consumers.
    pub orderly: bool,
}

impl Default for GroupInfo {
    fn default() -> GroupInfo {
        GroupInfo {
            known: false,
            online: false,
            topics: Vec::new(),
            retry_max_times: super::metadata::DEFAULT_RETRY_MAX_TIMES,
            holds_locks: false,
            orderly: false,
        }
    }
}

/// A reply of the wrong kind: a bug between shards, reported, never a panic.
pub fn unexpected(what: &str) -> String {
    format!("internal error: a shard answered {what} with an unexpected reply")
}
