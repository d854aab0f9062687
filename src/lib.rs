//! shardmq — a RocketMQ-compatible message broker, thread-per-core on io_uring.
//!
//! # The thread-per-core model
//!
//! Every CPU core runs one *shard*: a pinned glommio executor that owns a
//! subset of the queues end to end — its own CommitLog segments (written with
//! O_DIRECT), the consume-queue indexes of its queues and their consumer
//! offsets. Nothing on the hot path is shared between shards and nothing on
//! it takes a lock: a request for a queue that another shard owns is routed
//! to that shard over a cross-shard channel, served there, and answered on
//! the connection's own shard.
//!
//! # Layers
//!
//! * [`store`] — the per-shard storage engine: CommitLog, consume queues,
//!   group commit, crash recovery, retention.
//! * [`protocol`] — the RocketMQ remoting protocol codec and JSON bodies.
//! * [`acl`] — access control (RocketMQ's plain ACL: accounts, request
//!   signatures, permissions), pure logic the broker calls per request.
//! * [`namesrv`] — the name server's route table and request handling, as
//!   pure logic driven by the runtime (requests, connection closes, clock).
//! * [`runtime`] — shard executors and the glommio glue kept behind our own
//!   small module so that it can be swapped.

pub mod acl;
pub mod admin;
#[cfg(feature = "alloc-count")]
pub mod alloc_count;
pub mod broker;
pub mod config;
pub mod grpc;
pub mod http;
pub mod metrics;
pub mod namesrv;
pub mod protocol;
pub mod runtime;
pub mod store;
