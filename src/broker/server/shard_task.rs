//! One shard's life on its executor: open the store, join the mesh, spawn
//! the background tasks and listeners (plus shard 0's registration,
//! alerts, metrics and controller expiry), report ready, and flush on
//! shutdown.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use glommio::channels::channel_mesh::MeshBuilder;
use glommio::net::TcpListener;

use crate::broker::controller::Controller;
use crate::broker::metadata::Metadata;
use crate::broker::shard::Shard;
use crate::config::{BrokerConfig, BrokerRole};
use crate::runtime::connection;
use crate::runtime::mesh::Mesh;
use crate::runtime::shutdown::SHUTDOWN;
use crate::store::{MessageStore, StoreConfig};

use super::accept::{accept_loop, ConnPolicy};
use super::listeners::{grpc_listeners, http_listener, shard_listeners};
use super::security::Security;
use super::{Report, ShardEnvelope};

/// How long start-up waits for the first round of name-server
/// registrations before it reports ready anyway.
const REGISTERED_WAIT: Duration = Duration::from_secs(5);
// Each argument is a separate piece one shard gets at start (its id,
// settings, mesh, metadata, the controller for shard 0, security, the
// failover agent's shared state, the start-up report channel).
#[allow(clippy::too_many_arguments)]
pub(super) async fn run_shard(
    k: u16,
    cfg: Arc<BrokerConfig>,
    mesh: MeshBuilder<ShardEnvelope, glommio::channels::channel_mesh::Full>,
    meta: Arc<Metadata>,
    controller: Option<Controller>,
    security: Security,
    ha: Option<Arc<crate::broker::ha::agent::Shared>>,
    report: mpsc::Sender<Report>,
) -> Result<(), String> {
    let Security { acl, tls, keys, sign } = security;
    if cfg.io_workers_on_all_cpus {
        // Before the store opens: its first fdatasync already benefits.
        match crate::runtime::iowq::set_worker_cpus(None) {
            Ok(cpus) => log::debug!("shard {k}: io_uring workers may run on CPUs {cpus:?}"),
            Err(e) => log::warn!("shard {k}: io_uring workers stay on the shard's CPU: {e}"),
        }
    }
    let mut scfg = StoreConfig::new(
        cfg.store_path_root_dir.join(format!("shard-{k}")),
        k,
        SocketAddr::new(cfg.broker_ip1, cfg.listen_port),
    );
    scfg.flush_mode = cfg.flush_disk_type;
    scfg.segment_size = cfg.mapped_file_size_commit_log;
    scfg.segment_pre_zero = cfg
        .segment_pre_zero
        .unwrap_or(cfg.flush_disk_type == crate::store::FlushMode::Sync);
    scfg.sync_flush_timeout = cfg.sync_flush_timeout;
    scfg.file_reserved_time = cfg.file_reserved_time;
    scfg.clean_interval = cfg.clean_resource_interval;
    scfg.disk_max_used_ratio = cfg.disk_max_used_space_ratio;
    scfg.disk_full_policy = cfg.disk_full_policy;
    scfg.key_index.enabled = cfg.message_index_enable;
    scfg.tail_cache_bytes = cfg.tail_cache_bytes;
    scfg.max_record_size = cfg.max_message_size + 64 * 1024;
    scfg.encryption = keys;
    let (store, report_rec) = MessageStore::open(scfg).await.map_err(|e| e.to_string())?;
    if let Some(stop) = &report_rec.stop {
        log::info!(
            "shard {k}: recovery stopped at {}:{} ({})",
            stop.file.display(),
            stop.file_pos,
            stop.why
        );
    }
    let (senders, mut receivers) = mesh
        .join()
        .await
        .map_err(|_| "cannot join the shard mesh".to_string())?;
    let shard = Rc::new(Shard::new(
        k,
        cfg.clone(),
        store,
        Mesh::new(k, senders),
        meta,
        controller,
        acl.as_ref(),
    ));
    glommio::spawn_local(crate::broker::acl_admin::watch(shard.clone())).detach();
    let stopping = shard.clone();
    glommio::spawn_local(crate::broker::audit::run(shard.audit.clone(), move || {
        stopping.store.is_stopping()
    }))
    .detach();
    glommio::spawn_local(crate::broker::pull::answer_parked(shard.clone())).detach();
    glommio::spawn_local(crate::broker::pop::answer_parked(shard.clone())).detach();
    if let Some(shared) = ha {
        // Controller mode: no role until the controller names one; the HA
        // port is open from the start and refuses slaves until this broker
        // is master.
        let _ = shard.ha_shared.set(shared.clone());
        shard
            .store
            .set_slave_of(Some("nobody yet: the controller has not named a master".into()));
        shard.store.set_write_lease(Some(shared.lease.clone()));
        glommio::spawn_local(crate::broker::ha::role::run(shard.clone(), tls.client.clone())).detach();
        let s = shard.clone();
        glommio::spawn_local(async move {
            while !s.store.is_stopping() {
                if let Some(d) = shared.durable.get(k as usize) {
                    d.store(s.store.flushed_log_offset(), Ordering::SeqCst);
                }
                glommio::timer::sleep(Duration::from_millis(100)).await;
            }
        })
        .detach();
        serve_ha(&shard, &cfg, tls.server.clone())?;
        if k == 0 {
            start_agent(&shard)?;
        }
    } else {
        match cfg.broker_role {
            BrokerRole::Slave => {
                // A slave's log is its master's: nothing here writes on its own.
                let master = cfg
                    .ha_master_address
                    .clone()
                    .unwrap_or_else(|| format!("the master of {}", cfg.broker_name));
                shard.store.set_slave_of(Some(master));
                glommio::spawn_local(crate::broker::ha::slave::follow(shard.clone(), tls.client.clone())).detach();
            }
            _ => {
                shard.role.start_master_tasks();
                spawn_master_tasks(&shard);
                serve_ha(&shard, &cfg, tls.server.clone())?;
            }
        }
    }
    for (_, stream) in receivers.streams() {
        let shard = shard.clone();
        glommio::spawn_local(async move {
            while let Some(env) = stream.recv().await {
                crate::broker::dispatch::on_envelope(&shard, env);
            }
        })
        .detach();
    }
    let ip = cfg.broker_ip1;
    let listeners = shard_listeners(&cfg, k);
    let policy = ConnPolicy {
        limits: cfg.conn_limits.clone(),
        admission: connection::ConnLimits::new(cfg.max_connections_per_shard, cfg.max_connections_per_address),
        budget: connection::InboundBudget::new(cfg.inbound_frame_budget, cfg.request_budget),
        tls: tls.server.clone(),
    };
    for (addr, view, _) in listeners {
        let l = TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        glommio::spawn_local(accept_loop(shard.clone(), l, view, policy.clone())).detach();
    }
    for (addr, view, _) in grpc_listeners(&cfg, k) {
        let l = TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        glommio::spawn_local(crate::broker::grpc::accept_loop(
            shard.clone(),
            l,
            view,
            tls.grpc.clone(),
        ))
        .detach();
    }
    if let Some((addr, _)) = http_listener(&cfg) {
        let l = TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let render = metrics_render(&shard);
        glommio::spawn_local(crate::broker::rest::accept_loop(
            shard.clone(),
            l,
            tls.server.clone(),
            render,
        ))
        .detach();
    }
    // Shard 0 registers with the name servers before it reports ready (at
    // most REGISTERED_WAIT: a name server that does not answer is retried
    // every registration period, not waited for).
    let mut registered = None;
    if k == 0 {
        let (tx, rx) = futures::channel::oneshot::channel();
        glommio::spawn_local(crate::broker::registration::run(
            shard.clone(),
            tx,
            tls.client.clone(),
            sign.clone(),
        ))
        .detach();
        registered = Some(rx);
        start_alerts(&shard, &cfg)?;
        if cfg.metrics_port != 0 {
            start_metrics(&shard, SocketAddr::new(ip, cfg.metrics_port))?;
        }
        let s = shard.clone();
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(Duration::from_secs(10)).await;
                if let Some(c) = &s.controller {
                    c.expire(&*s).await;
                }
            }
        })
        .detach();
    }
    let s = shard.clone();
    glommio::spawn_local(async move {
        loop {
            glommio::timer::sleep(Duration::from_secs(5)).await;
            if let Err(e) = s.offsets.persist().await {
                log::error!("shard {}: cannot persist consumer offsets: {e}", s.id);
            }
        }
    })
    .detach();
    if let Some(rx) = registered {
        let first = async {
            let _ = rx.await;
            true
        };
        let waited = async {
            glommio::timer::sleep(REGISTERED_WAIT).await;
            false
        };
        if !futures_lite::future::or(first, waited).await {
            log::warn!("shard {k}: the first registration with the name servers took over {REGISTERED_WAIT:?}; ready without it (retried in the background)");
        }
    }
    let _ = report.send(Report::Ready);
    while !SHUTDOWN.load(Ordering::SeqCst) {
        glommio::timer::sleep(Duration::from_millis(100)).await;
    }
    log::info!("shard {k}: shutting down");
    if let Err(e) = shard.offsets.persist().await {
        log::error!("shard {k}: cannot persist consumer offsets: {e}");
    }
    shard.store.shutdown().await.map_err(|e| e.to_string())
}

/// The tasks that write on their own: a master's only.
pub fn spawn_master_tasks(shard: &Rc<Shard>) {
    glommio::spawn_local(crate::broker::trace_store::run(shard.clone())).detach();
    glommio::spawn_local(crate::broker::timer::run(shard.clone())).detach();
    glommio::spawn_local(crate::broker::transaction::run(shard.clone())).detach();
    glommio::spawn_local(crate::broker::pop::run(shard.clone())).detach();
}

/// A master shard's replication port (`haListenPort + k`).
fn serve_ha(shard: &Rc<Shard>, cfg: &BrokerConfig, tls: crate::runtime::tls::ServerTls) -> Result<(), String> {
    let addr = SocketAddr::new(cfg.broker_ip1, cfg.ha_port(shard.id as usize));
    let l = TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr} (haListenPort): {e}"))?;
    glommio::spawn_local(crate::broker::ha::master::serve(shard.clone(), l, tls)).detach();
    Ok(())
}

/// Shard 0 in controller mode: the agent thread, and the task that hands
/// what it hears to every shard.
fn start_agent(shard: &Rc<Shard>) -> Result<(), String> {
    use futures::StreamExt;
    let Some(shared) = shard.ha_shared.get().cloned() else {
        return Ok(());
    };
    let (tx, mut rx) = futures::channel::mpsc::unbounded();
    crate::broker::ha::agent::start(shard.cfg.clone(), shared.clone(), tx)?;
    let s = shard.clone();
    glommio::spawn_local(async move {
        let mut last: Option<crate::broker::ha::role::RoleView> = None;
        while let Some(view) = rx.next().await {
            if last.as_ref() == Some(&view) {
                continue;
            }
            last = Some(view.clone());
            for k in 0..s.shard_count() {
                if k == s.id {
                    s.role.submit(view.clone());
                } else {
                    s.mesh.send(k, crate::broker::mesh::Event::Role(view.clone())).await;
                }
            }
        }
    })
    .detach();
    let stop = shard.clone();
    glommio::spawn_local(async move {
        while !stop.store.is_stopping() && !SHUTDOWN.load(Ordering::SeqCst) {
            glommio::timer::sleep(Duration::from_millis(100)).await;
        }
        shared.stop.store(true, Ordering::SeqCst);
    })
    .detach();
    Ok(())
}

/// The Prometheus endpoint; a port that cannot be bound fails the start.
/// Shard 0: the alert rules' engine (see `broker::alerts`).
fn start_alerts(shard: &Rc<Shard>, cfg: &crate::config::BrokerConfig) -> Result<(), String> {
    let path = cfg
        .alert_rules_file
        .clone()
        .unwrap_or_else(|| cfg.store_path_root_dir.join("config").join("alertRules.json"));
    let tls = match &cfg.alert_webhook_trust {
        Some(ca) => Some(crate::runtime::tls::client_config(
            &crate::runtime::tls::ClientSettings {
                verify_server: true,
                trust: Some(ca.clone()),
                cert: None,
                key: None,
            },
        )?),
        None => None,
    };
    let engine = Rc::new(crate::broker::alerts::Engine::open(
        path,
        cfg.alert_webhook_url.clone(),
        tls,
    )?);
    crate::broker::alerts::start(engine, shard.clone());
    Ok(())
}

fn start_metrics(shard: &Rc<Shard>, addr: SocketAddr) -> Result<(), String> {
    let listener = TcpListener::bind(addr)
        .map_err(|e| format!("cannot listen on {addr} (Prometheus metrics; metricsPort=0 turns it off): {e}"))?;
    log::info!("metrics on http://{addr}/metrics");
    glommio::spawn_local(crate::metrics::http::serve(listener, metrics_render(shard))).detach();
    Ok(())
}

/// `/metrics`: the broker's statistics as Prometheus text.
fn metrics_render(shard: &Rc<Shard>) -> crate::metrics::http::Render {
    let s = shard.clone();
    Rc::new(move || {
        let s = s.clone();
        Box::pin(async move {
            let stats = crate::broker::stats::collect(&s).await;
            crate::metrics::prometheus::render(&stats)
        })
    })
}
