//! The storage engine of one shard.
//!
//! ```text
//! <storePathRootDir>/shard-<k>/
//!   commitlog/<20-digit log offset>            fixed-size O_DIRECT segments
//!   consumequeue/<topic>/<queueId>/<20-digit>  20-byte entries, write-behind
//!   checkpoint                                 recovery start + queue offsets
//! ```
//!
//! * [`commit_log`] — segments, tail cache, group commit ([`CommitLog`]).
//! * [`record`] — the stored record, RocketMQ's layout byte for byte.
//! * [`consume_queue`], [`cq_files`] — per-queue index and its files.
//! * [`recovery`], [`checkpoint`] — crash safety.
//! * [`retention`] — expiry and disk-space protection.
//! * [`message_store`] — the facade a shard uses ([`MessageStore`]).
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
pub mod error;
pub mod message_store;
pub mod notify;
pub mod position;
pub mod reader;
pub mod record;
pub mod recovery;
pub mod retention;
pub mod segment;
pub mod tail_cache;

pub use commit_log::CommitLog;
pub use config::{FlushMode, StoreConfig};
pub use error::StoreError;
pub use message_store::{Boundary, MessageStore, PutResult, PutStatus};
pub use position::{LogOffset, PhysicalOffset};
pub use reader::{GetResult, GetStatus, TagFilter};
pub use record::MessageInput;

#[cfg(test)]
mod tests;
