//! Shard executors.
