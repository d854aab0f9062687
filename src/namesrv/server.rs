//! The name server on the network, always on its own executor thread —
//! embedded in a broker ([`spawn`], from the broker's main thread) or
//! standalone (`shardmq namesrv`, [`run_standalone`]). Never on a data
//! shard: a broker registering tens of thousands of topics keeps the name
//! server busy for a second, which on shard 0 stalled its sends as long.
//! The thread is not pinned (`Placement::Unbound`): the OS shares the
//! cores between it and the pinned shards.
//!
//! The route table is pure logic ([`super::NameServer`]); this file feeds
//! it requests, connection closes and the expiry clock.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use glommio::net::TcpListener;

use super::{ConnId, NameServer, NamesrvConfig, SCAN_INTERVAL};
use crate::protocol::RemotingCommand;
use crate::runtime::connection::{self, Service};
use crate::runtime::shutdown::SHUTDOWN;
use crate::runtime::tls::ServerTls;

use super::acl::{NamesrvAcl, NamesrvAclConfig};

struct NamesrvService {
    ns: RefCell<NameServer>,
    next_conn: Cell<u64>,
    /// `aclEnable`: every request checked first.
    acl: Option<NamesrvAcl>,
}

impl Service for NamesrvService {
    fn handle(
        self: Rc<Self>,
        conn: u64,
        cmd: RemotingCommand,
        _received: Instant,
    ) -> impl Future<Output = Option<RemotingCommand>> + 'static {
        if let Some(acl) = &self.acl {
            let peer = self.ns.borrow().peer(ConnId(conn));
            let refused = match peer {
                Some(ip) => acl.check(&cmd, ip),
                None => Some(RemotingCommand::response_to(
                    &cmd,
                    crate::protocol::codes::response::NO_PERMISSION,
                    Some("unknown connection".into()),
                )),
            };
            if let Some(r) = refused {
                return std::future::ready((!cmd.is_oneway()).then_some(r));
            }
        }
        let reply = self.ns.borrow_mut().handle(ConnId(conn), &cmd, Instant::now());
        std::future::ready(reply)
    }

    fn closed(&self, conn: u64) {
        self.ns.borrow_mut().connection_closed(ConnId(conn));
    }
}

/// Starts the name server on the current executor, listening on `addr`.
fn start(
    addr: SocketAddr,
    limits: connection::Limits,
    tls: ServerTls,
    acl: Option<NamesrvAclConfig>,
) -> Result<(), String> {
    let acl = acl.map(NamesrvAcl::load).transpose()?;
    let listener = TcpListener::bind(addr).map_err(|e| format!("name server cannot listen on {addr}: {e}"))?;
    let svc = Rc::new(NamesrvService {
        ns: RefCell::new(NameServer::new(NamesrvConfig::default())),
        next_conn: Cell::new(1),
        acl,
    });
    if svc.acl.is_some() {
        let s = svc.clone();
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(super::acl::CHECK_INTERVAL).await;
                if let Some(a) = &s.acl {
                    a.reload_if_changed().await;
                }
            }
        })
        .detach();
    }
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
                    let (svc, limits, budget, tls) = (svc.clone(), limits.clone(), budget.clone(), tls.clone());
                    glommio::spawn_local(async move {
                        let stream = match tls.accept(stream).await {
                            Ok(s) => s,
                            Err(e) => {
                                log::debug!("name server: connection from {peer}: {e}");
                                svc.closed(conn);
                                return;
                            }
                        };
                        connection::serve(svc, conn, stream, limits, budget, |_| {}).await;
                        drop(admitted);
                    })
                    .detach();
                }
                Err(e) => {
                    log::warn!("name server: accept failed: {e}");
                    glommio::timer::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    })
    .detach();
    Ok(())
}

/// A name server running on its own executor thread until [`SHUTDOWN`].
pub struct Running {
    handle: glommio::ExecutorJoinHandle<()>,
}

impl Running {
    /// Waits for the thread, which ends within ~100 ms of [`SHUTDOWN`].
    pub fn join(self) -> Result<(), String> {
        self.handle.join().map_err(|e| format!("name server: {e}"))
    }
}

/// Starts the name server on a new, unpinned executor thread and returns
/// once it listens on `addr`, or with why it cannot (the listener is bound
/// before this returns, so a taken port fails the caller's start).
pub fn spawn(
    addr: SocketAddr,
    limits: connection::Limits,
    tls: ServerTls,
    acl: Option<NamesrvAclConfig>,
) -> Result<Running, String> {
    let (tx, rx) = mpsc::channel();
    let handle = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .name("namesrv")
        .spawn(move || async move {
            let r = start(addr, limits, tls, acl);
            let failed = r.is_err();
            let _ = tx.send(r);
            if failed {
                return;
            }
            while !SHUTDOWN.load(Ordering::SeqCst) {
                glommio::timer::sleep(Duration::from_millis(100)).await;
            }
        })
        .map_err(|e| format!("cannot start the name server executor: {e}"))?;
    let running = Running { handle };
    match rx.recv() {
        Ok(Ok(())) => Ok(running),
        Ok(Err(e)) => {
            let _ = running.join();
            Err(e)
        }
        Err(_) => Err(match running.join() {
            Err(e) => e,
            Ok(()) => "the name server executor stopped during start-up".into(),
        }),
    }
}

/// `shardmq namesrv`: a standalone name server until SIGINT/SIGTERM.
pub fn run_standalone(
    port: u16,
    tls: &crate::runtime::tls::ServerSettings,
    acl: Option<NamesrvAclConfig>,
) -> Result<(), String> {
    crate::runtime::ensure_memlock()?;
    crate::runtime::shutdown::install_signal_handler()?;
    let addr = SocketAddr::from(([0, 0, 0, 0], port));
    let server_tls = ServerTls::load(tls)?;
    let running = spawn(addr, connection::Limits::default(), server_tls, acl)?;
    println!(
        "shardmq name server ready on {addr}{}",
        match tls.mode {
            crate::runtime::tls::Mode::Disabled => "",
            crate::runtime::tls::Mode::Permissive => " (TLS permissive)",
            crate::runtime::tls::Mode::Enforcing => " (TLS enforcing)",
        }
    );
    running.join()
}

#[cfg(test)]
mod tests {
    /// A port that cannot be bound fails `spawn` itself, naming the
    /// address: the broker's start fails before any shard says ready.
    #[test]
    fn a_taken_port_fails_the_spawn_naming_the_address() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = held.local_addr().expect("addr");
        let e = super::spawn(addr, Default::default(), Default::default(), None)
            .err()
            .expect("spawn on a taken port");
        assert!(e.contains(&format!("name server cannot listen on {addr}")), "{e}");
    }
}
