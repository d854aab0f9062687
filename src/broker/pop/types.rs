//! What a pop asks and answers: plain data, sent between shards
//! ([`crate::broker::mesh`]) as well as used by [`super::engine`].

use crate::store::TagFilter;

pub type Refusal = (i32, String);

/// What a client asks to pop (queue ids global).
#[derive(Debug, Clone)]
pub struct PopRequest {
    pub group: String,
    pub topic: String,
    /// `None`: any queue of the topic this shard owns.
    pub queue: Option<u32>,
    pub max: usize,
    pub invisible_ms: i64,
    pub filter: TagFilter,
    /// A group without a position starts at the end of the queue (else at
    /// its start).
    pub init_max: bool,
    pub order: bool,
    pub attempt_id: String,
}

/// One popped message: the stored record with the reconsume count of this
/// delivery written in.
pub struct Popped {
    pub queue: u32,
    pub offset: u64,
    pub record: Vec<u8>,
    pub reconsume_times: i32,
}

pub struct PopBatch {
    /// The handle time of every message of the batch.
    pub pop_time: i64,
    pub invisible_ms: i64,
    pub msgs: Vec<Popped>,
    /// Messages left for the group in the queues looked at.
    pub rest: u64,
}
