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
    let open = Rc::new(std::cell::Cell::new(0usize));
    loop {
        let stream = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                if shard.store.is_stopping() {
                    return;
                }
                log::warn!("shard {}: gRPC accept failed: {e}", shard.id);
                glommio::timer::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        if open.get() >= shard.cfg.max_connections_per_shard {
            log::warn!(
                "shard {}: gRPC connection refused: {} open (maxConnectionsPerShard)",
                shard.id,
                open.get()
            );
            continue;
        }
        open.set(open.get() + 1);
        let (service, limits, open, tls) = (service.clone(), limits.clone(), open.clone(), tls.clone());
        glommio::spawn_local(async move {
            let r = match stream.peer_addr() {
                Err(e) => Err(e.to_string()),
                Ok(peer) => match tls.accept(stream).await {
                    Err(e) => Err(format!("{peer}: {e}")),
                    Ok(io) => crate::grpc::serve_io(io, peer, service, &limits, || {
                        crate::runtime::shutdown::SHUTDOWN.load(std::sync::atomic::Ordering::Relaxed)
                    })
                    .await
                    .map_err(|e| e.to_string()),
                },
            };
            if let Err(e) = r {
                log::debug!("gRPC connection ended: {e}");
            }
            open.set(open.get() - 1);
        })
        .detach();
    }
}
