//! The broker: request handlers, one file per request family, and the
//! controller that owns metadata.
//!
//! * [`dispatch`] — which shard runs a request; the handler table.
//! * [`send`], [`pull`], [`offsets`] — the data path, on the queue's owner.
//! * [`pop`] — invisible-time consumption (POP) on the queue's owner.
//! * [`consumer_offsets`], [`offset_journal`] — the offsets table and its
//!   snapshot + journal on disk.
//! * [`admin`] — mqadmin requests: stats, consume progress, groups, resets.
//! * [`controller`] — topics, clients, groups, locks (shard 0).
//! * [`metadata`] — the snapshot every shard reads.
//! * [`registration`] — REGISTER_BROKER to the name servers.
//! * [`shard`] — per-shard state and the connection service.

pub mod access;
pub mod acl_admin;
pub mod admin;
pub mod alerts;
pub mod audit;
pub mod consumer_offsets;
pub mod controller;
mod data_dir;
pub mod dispatch;
pub mod group_names;
pub mod grpc;
pub mod ha;
pub mod http_accept;
pub mod long_poll;
pub mod mesh;
pub mod metadata;
pub mod offset_journal;
pub mod offsets;
pub mod pop;
pub mod pull;
pub mod query;
pub mod registration;
pub mod reply;
pub mod rest;
pub mod retry;
pub mod send;
pub mod server;
pub mod service;
pub mod shard;
pub mod stats;
pub mod timer;
pub mod trace;
pub mod trace_store;
pub mod transaction;

#[cfg(test)]
mod tests;
