//! The RocketMQ 5.x gRPC endpoint (`apache.rocketmq.v2.MessagingService`)
//! served by every shard on glommio, over the transport of
//! [`crate::grpc`]: one more front door to the same engines — sends go the
//! remoting send path, receives are pops of [`super::pop`], transactions
//! end through END_TRANSACTION.
//!
//! Ports: `grpcListenPort` (default 8081, 0 = off; every shard accepts,
//! SO_REUSEPORT; the client's access point) and, with shard-aware routes,
//! `grpcShardPortBase + k` (default `grpcListenPort + 10`) per shard.
//! QueryRoute advertises one broker entry per shard, `<brokerName>-s<k>`
//! at `brokerIP1:grpcShardPortBase+k` — the configured address, never the
//! one the client used (NAT, apache/rocketmq#6496) — so that sends and
//! receives reach the shard owning the queues without a hop. A receive on
//! the access point pops the queues of the shard that accepted it.
//!
//! Choices (v5-grpc.md): errors travel in the body's `Status`; a client
//! without `x-mq-client-id` gets CLIENT_ID_REQUIRED; a receive long-polls at
//! most 20 s and ends 500 ms before the call's deadline; the invisible time
//! of a receive must be 10 s … 12 h (ILLEGAL_INVISIBLE_TIME), 60 s when the
//! client names none (push consumers); receipt handles are
//! `smq1.<shard>.<queue>.<offset>.<popTime>.<logOffset>` (a handle from
//! before a re-delivery or an invisible-time change is refused as
//! INVALID_RECEIPT_HANDLE); transaction ids name the half message's log and
//! queue offsets. A consumer group is FIFO when its subscription group
//! config says `consumeMessageOrderly` (receives are orderly pops; the
//! settings answer says `fifo`, and max attempts = `retryMaxTimes` + 1, as
//! Apache's proxy answers). A producer's unknown transactions are checked with
//! `RecoverOrphanedTransactionCommand` down its Telemetry stream
//! ([`super::transaction::streams`]); a push consumer's leases
//! (`auto_renew`) are renewed while it lives ([`renew`]). A receive pops
//! any queue of the shard, whatever queue the client named (Apache's proxy
//! pops the broker's acting queue −1 too). Not done yet: the auth header.

pub mod convert;
mod renew;
mod service;

pub use service::ShardService;

use std::rc::Rc;

use crate::runtime::mesh::View;

use super::shard::Shard;

/// Accepts gRPC connections on `listener` for shard `shard` until the
/// broker stops; each connection is served in a task of its own.
/// With TLS on (`tlsServerMode`), connections are TLS or plain as the mode
/// allows, like the remoting ports.
pub async fn accept_loop(
    shard: Rc<Shard>,
    listener: glommio::net::TcpListener,
    view: View,
    tls: crate::runtime::tls::ServerTls,
) {
    let service = Rc::new(ShardService::new(shard.clone(), view));
    let limits = crate::grpc::Limits::default();
    super::http_accept::accept_loop(shard, listener, tls, "gRPC", move |io, peer| {
        let (service, limits) = (service.clone(), limits.clone());
        async move {
            crate::grpc::serve_io(io, peer, service, &limits, super::http_accept::stopping)
                .await
                .map_err(|e| e.to_string())
        }
    })
    .await;
}
