//! Master/slave replication of a broker group (RocketMQ's HA service),
//! shard by shard.
//!
//! A broker group is one master (`brokerId=0`, `brokerRole` ASYNC_MASTER
//! or SYNC_MASTER) and its slaves (`brokerId>0`, `brokerRole=SLAVE`), each
//! its own `shardmq serve` with its own data directory and the same
//! `brokerName`, `shardCount` and `mapedFileSizeCommitLog`. Shard k of the
//! master owns the same queues as shard k of each slave, so replication
//! is a connection per shard pair — master shard k listens on
//! `haListenPort + k`, slave shard k connects to `haMasterAddress` port
//! + k — and never crosses shards on either side.
//!
//! What flows (see `frame.rs` for the bytes): the master streams its
//! CommitLog — durable records only, from where the slave's log ends —
//! and the slave places each record at the same log offset with the
//! ordinary append path (O_DIRECT, group commit), indexes it as recovery
//! would, and acks its durable end. Everything kept in the CommitLog
//! therefore replicates by itself: messages, scheduled and half
//! messages with their marks, POP state records, transaction resolutions.
//!
//! * **ASYNC_MASTER** acknowledges sends once stored locally; slaves copy
//!   behind.
//! * **SYNC_MASTER** acknowledges a send only when an in-sync slave holds
//!   it durably: one slave ack covers every append below it (the store's
//!   `ReplicaGate`). `FLUSH_SLAVE_TIMEOUT` when no ack arrives within
//!   `syncFlushTimeout` (a paused or slow slave), `SLAVE_NOT_AVAILABLE`
//!   when no slave is in sync (none connected, or every one more than
//!   `haMaxGapNotInSync` behind, or the last one drops while the send
//!   waits). The message is stored on the master in both cases.
//! * **SLAVE** refuses every write (SERVICE_NOT_AVAILABLE naming its
//!   master), runs none of the tasks that write on their own (scheduled
//!   delivery, transaction check-back, POP revival), and serves reads:
//!   pulls and queries by offset, key or id find what the master stored,
//!   at the same offsets.
//!
//! Only durable bytes are sent, so a slave is never ahead of what its
//! master can recover after a crash: a master that restarts finds every
//! slave at or behind its own log. (A slave that is ahead — its master's
//! disk was lost, or it was pointed at another master — is refused with
//! the reason and must be rebuilt.)
//!
//! **Controller mode** (`enableControllerMode`, [`role`], [`agent`],
//! [`epochs`]): the controller quorum names the master, its epoch and
//! the in-sync set; a slave is promoted at runtime, and a returning old
//! master truncates what it never replicated in the handshake.

pub mod agent;
pub mod epochs;
pub mod frame;
pub mod master;
pub mod role;
pub mod slave;
pub mod state;

use std::time::Duration;

/// Waits until the store's durable end moves past generation `seen`, or
/// `within` passes: true when it was the time (send a heartbeat).
async fn quiet_for(store: &crate::store::MessageStore, seen: u64, within: Duration) -> bool {
    futures_lite::future::or(
        async {
            store.durable_changed().changed_since(seen).await;
            false
        },
        async {
            glommio::timer::sleep(within).await;
            true
        },
    )
    .await
}
