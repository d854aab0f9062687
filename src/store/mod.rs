//! The storage engine of one shard.
//!
//! ```text
//! <storePathRootDir>/shard-<k>/
//!   commitlog/<20-digit log offset>            fixed-size O_DIRECT segments
//!   consumequeue/<topic>/<queueId>/<20-digit>  20-byte entries, write-behind
//!   checkpoint                                 recovery start + queue offsets
//!   index/<from>-<to>.run                      key index runs (key_index)
//!   timer/, transactions                       the broker's timer and open
//!                                              transactions (broker::timer,
//!                                              broker::transaction)
//! ```
//!
//! Internal queues the broker keeps in the same store: the schedule queue
//! ([`SCHEDULE_TOPIC`]/0, tags code = due time), the transactions' half and
//! op queues, and the *mark* queues ([`MARK_TOPIC`]): a record may carry a
//! [`Mark`] (property [`MARK_PROPERTY`]) and is then dispatched to a mark
//! queue too, at put and at recovery alike, which makes "this record was
//! written" and "this event happened" one durable fact.
//!
//! * [`commit_log`] — segments, tail cache, group commit ([`CommitLog`]).
//! * [`durable_wait`] — durability waiters, woken in log order.
//! * [`record`] — the stored record, RocketMQ's layout byte for byte.
//! * [`consume_queue`], [`cq_files`] — per-queue index and its files.
//! * [`recovery`], [`checkpoint`] — crash safety.
//! * [`retention`] — expiry and disk-space protection.
//! * [`key_index`] — keys and message ids → records (QUERY_MESSAGE).
//! * [`write_state`] — whether the shard takes appends, and why not.
//! * [`message_store`] — the facade a shard uses ([`MessageStore`]).
//! * [`faults`] — an injectable faulty disk under every store I/O point
//!   (`StoreConfig::faults`, tests only).
//!
//! # Durability invariants
//!
//! * SYNC_FLUSH: a put is acknowledged only after its record (and every
//!   byte before it) is fdatasynced; readers (pulls and lookups by physical
//!   offset) see only durable records.
//! * Recovery never truncates a valid record because the checkpoint
//!   disagrees with it: the checkpoint is discarded and the consume queues
//!   are rebuilt from the oldest segment instead. Bytes recovery finds are
//!   fdatasynced before the log builds on them, and stale bytes past the
//!   recovered end are cleared however far they lie.
//! * Retention never deletes a segment that ends above the `log_pos` of the
//!   last checkpoint stored on disk (recovery scans from there).
//! * Checkpoints run one at a time; consume-queue files and directories
//!   stay on the dirty list until a checkpoint that synced them is stored.
//!
//! Memory per shard is bounded by `tail_cache_bytes` (CommitLog tail) plus,
//! per queue, a fixed struct (~150 bytes) and at most `cq_mem_entries`
//! written entries (24 bytes each) plus the entries not yet written behind
//! (bounded in turn by the unflushed part of the tail cache).

pub mod checkpoint;
pub mod commit_log;
pub mod config;
pub mod consume_queue;
pub mod cq_files;
pub mod crypt;
pub mod durable_wait;
pub mod error;
pub mod faults;
pub mod key_index;
pub mod message_store;
pub mod notify;
pub mod position;
pub mod reader;
pub mod record;
pub mod recovery;
pub mod replication;
pub mod retention;
pub mod segment;
pub mod tail_cache;
pub mod write_state;

pub use commit_log::CommitLog;
pub use config::{DiskFullPolicy, FlushMode, StoreConfig};
pub use consume_queue::CqEntry;
pub use error::StoreError;
pub use message_store::{Appended, Boundary, MessageStore, Pin, PutResult, PutStatus, Replicate, Truncated};
pub use position::{LogOffset, PhysicalOffset};
pub use reader::{GetResult, GetStatus, TagFilter};
pub use record::{
    Mark, MessageInput, RecordView, DUE_PROPERTY, MARK_PROPERTY, MARK_QUEUE_TIMER, MARK_QUEUE_TRANSACTION, MARK_TOPIC,
    SCHEDULE_TOPIC,
};
pub use write_state::ReadOnlyReason;

#[cfg(test)]
mod tests;
