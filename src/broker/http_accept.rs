//! The accept loop of the broker's HTTP ports (gRPC, REST): every shard
//! accepts on the port (SO_REUSEPORT), admits at most
//! `maxConnectionsPerShard` connections, does the TLS handshake the mode
//! asks for, and serves each connection in a task of its own.

use std::cell::Cell;
use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use crate::runtime::tls::{Io, ServerTls};

use super::shard::Shard;

/// Accepts on `listener` until the broker stops; `serve` runs each
/// connection (its error is logged at debug level). `what` names the port
/// in the log.
pub async fn accept_loop<F, Fut>(
    shard: Rc<Shard>,
    listener: glommio::net::TcpListener,
    tls: ServerTls,
    what: &'static str,
    serve: F,
) where
    F: Fn(Io, SocketAddr) -> Fut + 'static,
    Fut: Future<Output = Result<(), String>> + 'static,
{
    let serve = Rc::new(serve);
    let open = Rc::new(Cell::new(0usize));
    loop {
        let stream = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                if shard.store.is_stopping() {
                    return;
                }
                log::warn!("shard {}: {what} accept failed: {e}", shard.id);
                glommio::timer::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if open.get() >= shard.cfg.max_connections_per_shard {
            log::warn!(
                "shard {}: {what} connection refused: {} open (maxConnectionsPerShard)",
                shard.id,
                open.get()
            );
            continue;
        }
        open.set(open.get() + 1);
        let (serve, open, tls) = (serve.clone(), open.clone(), tls.clone());
        glommio::spawn_local(async move {
            let r = match stream.peer_addr() {
                Err(e) => Err(e.to_string()),
                Ok(peer) => match tls.accept(stream).await {
                    Err(e) => Err(format!("{peer}: {e}")),
                    Ok(io) => serve(io, peer).await,
                },
            };
            if let Err(e) = r {
                log::debug!("{what} connection ended: {e}");
            }
            open.set(open.get() - 1);
        })
        .detach();
    }
}

/// Whether the process is shutting down (checked by the connections).
pub fn stopping() -> bool {
    crate::runtime::shutdown::SHUTDOWN.load(std::sync::atomic::Ordering::Relaxed)
}
