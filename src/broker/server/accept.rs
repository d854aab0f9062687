//! The remoting accept loop of one listener: admission, TLS, and one
//! connection task per client.

use std::rc::Rc;
use std::time::Duration;

use glommio::net::TcpListener;

use crate::broker::service::BrokerService;
use crate::broker::shard::Shard;
use crate::runtime::connection;
use crate::runtime::mesh::{ClientRef, View};
use crate::runtime::tls::ServerTls;

/// What every connection of one shard shares: limits, admission, budget,
/// TLS.
#[derive(Clone)]
pub(super) struct ConnPolicy {
    pub(super) limits: connection::Limits,
    pub(super) admission: Rc<connection::ConnLimits>,
    pub(super) budget: Rc<connection::InboundBudget>,
    pub(super) tls: ServerTls,
}

pub(super) async fn accept_loop(shard: Rc<Shard>, listener: TcpListener, view: View, policy: ConnPolicy) {
    let service = Rc::new(BrokerService {
        shard: shard.clone(),
        view,
    });
    loop {
        let stream = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                log::warn!("shard {}: accept failed: {e}", shard.id);
                glommio::timer::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Ok(addr) = stream.peer_addr() else { continue };
        let Some(admitted) = policy.admission.admit(addr.ip(), &format!("shard {}", shard.id)) else {
            continue; // dropping the stream closes it
        };
        let conn = shard.new_conn_id();
        shard.metrics.connection(true);
        let client = ClientRef {
            shard: shard.id,
            conn,
            addr,
            view,
            verified: Default::default(),
        };
        let (service, shard2) = (service.clone(), shard.clone());
        let (limits, budget, tls) = (policy.limits.clone(), policy.budget.clone(), policy.tls.clone());
        glommio::spawn_local(async move {
            let stream = match tls.accept(stream).await {
                Ok(s) => s,
                Err(e) => {
                    log::debug!("shard {}: connection from {addr}: {e}", shard2.id);
                    shard2.metrics.connection(false);
                    return;
                }
            };
            connection::serve(service, conn, stream, limits, budget, move |outbox| {
                shard2.conns.borrow_mut().insert(conn, (outbox, client));
            })
            .await;
            drop(admitted);
        })
        .detach();
    }
}
