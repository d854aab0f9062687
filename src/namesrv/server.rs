//! The name server on the network: embedded on shard 0 of a broker, or
//! standalone (`shardmq namesrv`) on its own executor. The route table is
//! pure logic ([`super::NameServer`]); this file feeds it requests,
//! connection closes and the expiry clock.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use glommio::net::TcpListener;

use super::{ConnId, NameServer, NamesrvConfig, SCAN_INTERVAL};
use crate::protocol::RemotingCommand;
use crate::runtime::connection::{self, Service};

struct NamesrvService {
    ns: RefCell<NameServer>,
    next_conn: Cell<u64>,
}

impl Service for NamesrvService {
    fn handle(
        self: Rc<Self>,
        conn: u64,
        cmd: RemotingCommand,
        _received: Instant,
    ) -> impl Future<Output = Option<RemotingCommand>> + 'static {
        let reply = self.ns.borrow_mut().handle(ConnId(conn), &cmd, Instant::now());
        std::future::ready(reply)
    }

    fn closed(&self, conn: u64) {
        self.ns.borrow_mut().connection_closed(ConnId(conn));
    }
}

/// Starts the name server on the current executor, listening on `addr`.
pub fn start(addr: SocketAddr, limits: connection::Limits) -> Result<(), String> {
    let listener = TcpListener::bind(addr).map_err(|e| format!("name server cannot listen on {addr}: {e}"))?;
    let svc = Rc::new(NamesrvService {
        ns: RefCell::new(NameServer::new(NamesrvConfig::default())),
        next_conn: Cell::new(1),
    });
    // Name server connections: brokers and clients, far fewer than a
    // data shard's; register requests are small (a broker's topic table).
    let admission = connection::ConnLimits::new(10_000, 1_000);
    let budget = connection::InboundBudget::new(64 << 20, 16 << 20);
    let scan = svc.clone();
    glommio::spawn_local(async move {
        loop {
            glommio::timer::sleep(SCAN_INTERVAL).await;
            let _ = scan.ns.borrow_mut().scan_expired(Instant::now());
        }
    })
    .detach();
    glommio::spawn_local(async move {
        loop {
            match listener.accept().await {
                Ok(stream) => {
                    let Ok(peer) = stream.peer_addr() else { continue };
                    let Some(admitted) = admission.admit(peer.ip(), "name server") else {
                        continue;
                    };
                    let conn = svc.next_conn.get();
                    svc.next_conn.set(conn + 1);
                    svc.ns.borrow_mut().connection_opened(ConnId(conn), peer.ip());
                    let (svc, limits, budget) = (svc.clone(), limits.clone(), budget.clone());
                    glommio::spawn_local(async move {
                        connection::serve(svc, conn, stream, limits, budget, |_| {}).await;
                        drop(admitted);
                    })
                    .detach();
                }
                Err(e) => {
                    log::warn!("name server: accept failed: {e}");
                    glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
                }
            }
        }
    })
    .detach();
    Ok(())
}

/// `shardmq namesrv`: a standalone name server until SIGINT/SIGTERM.
pub fn run_standalone(port: u16) -> Result<(), String> {
    crate::runtime::ensure_memlock()?;
    crate::runtime::shutdown::install_signal_handler()?;
    let addr = SocketAddr::from(([0, 0, 0, 0], port));
    let (tx, rx) = std::sync::mpsc::channel();
    let h = glommio::LocalExecutorBuilder::default()
        .name("namesrv")
        .spawn(move || async move {
            let r = start(addr, connection::Limits::default());
            let failed = r.is_err();
            let _ = tx.send(r);
            if failed {
                return;
            }
            while !crate::runtime::shutdown::SHUTDOWN.load(std::sync::atomic::Ordering::SeqCst) {
                glommio::timer::sleep(std::time::Duration::from_millis(100)).await;
            }
        })
        .map_err(|e| format!("cannot start the name server executor: {e}"))?;
    match rx.recv() {
        Ok(Ok(())) => println!("shardmq name server ready on {addr}"),
        Ok(Err(e)) => return Err(e),
        Err(_) => return Err("the name server executor stopped".into()),
    }
    h.join().map_err(|e| format!("name server: {e}"))
}
