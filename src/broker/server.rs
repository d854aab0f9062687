//! Starting and stopping the shards of one broker process.
//!
//! One pinned glommio executor per shard. Each opens its store, joins the
//! channel mesh, and listens on the main broker port (SO_REUSEPORT spreads
//! connections over the shards), on its own shard port, and on the VIP port
//! (main − 2) for old Java clients. Shard 0 also runs the controller and
//! the name-server registration. An embedded name server runs on its own
//! (unpinned) executor thread, started by the main thread before the shards.
//!
//! Start-up never blocks on a barrier (PLATFORM.md trap 4): each shard
//! reports success or failure over a std channel and the main thread
//! decides.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use glommio::channels::channel_mesh::MeshBuilder;
use glommio::net::TcpListener;
use glommio::{LocalExecutorBuilder, Placement};

use crate::config::BrokerConfig;
use crate::runtime::mesh::{ClientRef, Envelope, Mesh, View};
use crate::runtime::shutdown::{SHUTDOWN, SHUTDOWN_GRACE};
use crate::runtime::tls::{ClientTls, ServerTls};
use crate::runtime::{connection, ports};
use crate::store::{MessageStore, StoreConfig};

use super::controller::Controller;
use super::data_dir::{lock_data_dir, Created};
use super::mesh::{Event, Reply, Request};
use super::metadata::{self, Metadata};
use super::service::BrokerService;
use super::shard::Shard;

/// How long start-up waits for the first round of name-server
/// registrations before it reports ready anyway.
const REGISTERED_WAIT: Duration = Duration::from_secs(5);

/// What the shard mesh carries.
type ShardEnvelope = Envelope<Request, Reply, Event>;

/// What a shard reports to the main thread.
enum Report {
    Ready,
    Failed(u16, String),
    Stopped,
}

/// Runs the broker until SIGINT/SIGTERM. Returns an error message for a
/// failed start, or for a shutdown that could not flush everything.
pub fn serve(cfg: BrokerConfig) -> Result<(), String> {
    crate::runtime::ensure_memlock()?;
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let root = cfg.store_path_root_dir.clone();
    let created = Created::before_start(&root);
    let result = start_and_run(cfg, cores, &root);
    if let Err(Failure::Start(_)) = &result {
        created.remove_after_failed_start();
    }
    result.map_err(|f| match f {
        Failure::Start(e) | Failure::Refused(e) | Failure::Stop(e) => e,
    })
}

enum Failure {
    /// The data directory belongs to another process: touch nothing.
    Refused(String),
    /// Never said ready: what this start created is removed.
    Start(String),
    /// Said ready; the shutdown did not complete cleanly.
    Stop(String),
}

fn start_and_run(cfg: BrokerConfig, cores: usize, root: &std::path::Path) -> Result<(), Failure> {
    let start = Failure::Start;
    std::fs::create_dir_all(root).map_err(|e| start(format!("cannot create {}: {e}", root.display())))?;
    let lock = lock_data_dir(root).map_err(Failure::Refused)?;
    crate::runtime::doctor::warn_at_start(root);
    let (persisted_shards, topics) = match metadata::load_topics(root).map_err(start)? {
        Some((n, t)) => (Some(n), t),
        None => (None, Vec::new()),
    };
    let wanted = if cfg.shard_count == 0 { cores } else { cfg.shard_count };
    let shards = match persisted_shards {
        Some(n) if n as usize != wanted => {
            log::warn!(
                "data dir {} was created with {n} shards; keeping {n} (queue ownership is stable across restarts)",
                root.display()
            );
            n
        }
        Some(n) => n,
        None => wanted as u16,
    };
    crate::runtime::ports::check_free(&listen_plan(&cfg, shards)).map_err(start)?;
    let tls = NetTls::load(&cfg).map_err(start)?;
    let keys = store_keys(&cfg).map_err(start)?;
    // The embedded name server runs on its own thread, never on a shard
    // (heavy registrations must not stall sends); it stops on SHUTDOWN.
    // With ACL on, the embedded name server checks every request too; this
    // broker registers with it under an account made up for this process.
    let inner = if cfg.acl_enable && cfg.embedded_namesrv {
        Some(crate::namesrv::acl::InnerAccount::generate().map_err(start)?)
    } else {
        None
    };
    let namesrv = if cfg.embedded_namesrv {
        let addr = SocketAddr::new(cfg.namesrv_bind_ip(), cfg.namesrv_listen_port);
        let acl = cfg.acl_enable.then(|| crate::namesrv::acl::NamesrvAclConfig {
            path: cfg.acl_path(),
            inner: inner.clone(),
        });
        Some(crate::namesrv::server::spawn(addr, cfg.conn_limits.clone(), tls.server.clone(), acl).map_err(start)?)
    } else {
        None
    };
    let sign = match (&cfg.namesrv_access_key, &cfg.namesrv_secret_key, &inner) {
        (Some(ak), Some(sk), _) => Some(crate::admin::client::Credentials::new(ak.clone(), sk.clone())),
        (_, _, Some(i)) => Some(crate::admin::client::Credentials::new(
            i.access_key.clone(),
            i.secret_key.clone(),
        )),
        _ => None,
    };
    let outcome = run_shards(
        cfg,
        cores,
        root,
        shards,
        topics,
        Security {
            acl: None,
            tls,
            keys,
            sign,
        },
    );
    // Every exit from run_shards has set SHUTDOWN (the signal, or a failed
    // start stopping the shards); make sure, and wait for the name server
    // (it polls SHUTDOWN every 100 ms).
    SHUTDOWN.store(true, Ordering::SeqCst);
    if let Some(ns) = namesrv {
        if let Err(e) = ns.join() {
            log::warn!("{e}");
        }
    }
    drop(lock);
    outcome
}

/// Starts the shards, says ready, and runs until they have stopped.
fn run_shards(
    cfg: BrokerConfig,
    cores: usize,
    root: &std::path::Path,
    shards: u16,
    topics: Vec<metadata::TopicInfo>,
    security: Security,
) -> Result<(), Failure> {
    let Security { tls, keys, sign, .. } = security;
    let start = Failure::Start;
    let ctl = Controller::new(root.to_path_buf(), shards, topics);
    ctl.ensure_system_topics(cfg.auto_create_topic_enable, cfg.default_topic_queue_nums)
        .map_err(start)?;
    ctl.load_subscription_groups().map_err(start)?;
    ctl.load_request_modes().map_err(start)?;
    crate::broker::admin::mark_boot();
    let meta = ctl.snapshot();
    let acl = if cfg.acl_enable {
        let path = cfg.acl_path();
        let loaded = super::access::Loaded::load(&path).map_err(|e| start(format!("aclEnable=true: {e}")))?;
        log::info!(
            "ACL on: {} accounts, {} global white address patterns, from {}",
            loaded.acl.accounts().len(),
            loaded.acl.global_white_remote_addresses().len(),
            path.display()
        );
        Some(loaded)
    } else {
        None
    };
    let cfg = Arc::new(cfg);
    let mesh = MeshBuilder::<ShardEnvelope, _>::full(shards as usize, 1024);
    let (tx, rx) = mpsc::channel::<Report>();
    let mut ctl = Some(ctl);
    let mut handles = Vec::new();
    for k in 0..shards {
        let (cfg, mesh, tx, meta, acl) = (cfg.clone(), mesh.clone(), tx.clone(), meta.clone(), acl.clone());
        let security = Security {
            acl,
            tls: tls.clone(),
            keys: keys.clone(),
            sign: sign.clone(),
        };
        let controller = if k == 0 { ctl.take() } else { None };
        let placement = Placement::Fixed(k as usize % cores);
        let spawned = LocalExecutorBuilder::new(placement)
            .name(&format!("shard-{k}"))
            .spin_before_park(cfg.spin_before_park)
            .spawn(move || async move {
                match run_shard(k, cfg, mesh, meta, controller, security, tx.clone()).await {
                    Ok(()) => {
                        let _ = tx.send(Report::Stopped);
                    }
                    Err(e) => {
                        let _ = tx.send(Report::Failed(k, e));
                    }
                }
            });
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => {
                stop_started(&rx, handles.len());
                return Err(start(format!("cannot start shard {k}: {e}")));
            }
        }
    }
    drop(tx);
    let mut ready = 0;
    while ready < shards {
        match rx.recv() {
            Ok(Report::Ready) => ready += 1,
            Ok(Report::Failed(k, e)) => {
                // The others may be open (or still opening): stop them so
                // that nothing is left holding files we remove.
                stop_started(&rx, shards as usize - 1);
                return Err(start(format!("shard {k} failed to start: {e}")));
            }
            Ok(Report::Stopped) | Err(_) => {
                stop_started(&rx, shards as usize - 1);
                return Err(start("a shard stopped during start-up".into()));
            }
        }
    }
    println!(
        "shardmq ready: {} shards, broker {} ({} routes{}{}), name server {}, data in {}",
        shards,
        cfg.broker_addr(),
        if cfg.shard_aware_routes {
            "shard-aware"
        } else {
            "single-entry"
        },
        if cfg.shard_aware_routes {
            format!(
                ", shard ports {}..={}",
                cfg.shard_port(0),
                cfg.shard_port(shards as usize - 1)
            )
        } else {
            String::new()
        },
        match cfg.tls_server.mode {
            crate::runtime::tls::Mode::Disabled => "",
            crate::runtime::tls::Mode::Permissive => ", TLS permissive",
            crate::runtime::tls::Mode::Enforcing => ", TLS enforcing",
        },
        if cfg.embedded_namesrv {
            format!(
                "embedded on {}",
                SocketAddr::new(cfg.namesrv_bind_ip(), cfg.namesrv_listen_port)
            )
        } else {
            cfg.namesrv_addrs.join(";")
        },
        root.display()
    );
    let outcome = wait_for_shutdown(&rx, shards as usize);
    if outcome.is_ok() {
        for h in handles {
            let _ = h.join();
        }
    }
    outcome.map_err(Failure::Stop)
}

/// Waits for the signal, then for every shard's final flush — at most
/// [`SHUTDOWN_GRACE`]. Failures are collected into one message.
fn wait_for_shutdown(rx: &mpsc::Receiver<Report>, shards: usize) -> Result<(), String> {
    let mut failures = Vec::new();
    let mut stopped = 0;
    let mut deadline: Option<std::time::Instant> = None;
    while stopped < shards {
        if deadline.is_none() && SHUTDOWN.load(Ordering::SeqCst) {
            deadline = Some(std::time::Instant::now() + SHUTDOWN_GRACE);
        }
        if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            failures.push(format!(
                "{} of {shards} shards did not finish their final flush within {SHUTDOWN_GRACE:?}; \
                 messages acknowledged with ASYNC_FLUSH since the last flush may be lost",
                shards - stopped
            ));
            break;
        }
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(Report::Stopped) => stopped += 1,
            Ok(Report::Failed(k, e)) => {
                stopped += 1;
                failures.push(format!("shard {k}: {e}"));
            }
            Ok(Report::Ready) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    if failures.is_empty() {
        log::info!("shutdown complete");
        Ok(())
    } else {
        Err(format!("shutdown incomplete: {}", failures.join("; ")))
    }
}

/// After a failed start: stops the shards that are running (or opening)
/// and waits for them, bounded.
fn stop_started(rx: &mpsc::Receiver<Report>, others: usize) {
    SHUTDOWN.store(true, Ordering::SeqCst);
    let deadline = std::time::Instant::now() + SHUTDOWN_GRACE;
    let mut done = 0;
    while done < others {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(Report::Stopped) | Ok(Report::Failed(..)) => done += 1,
            Ok(Report::Ready) => {}
            Err(_) => break,
        }
    }
}

/// The broker listeners shard `k` binds, each with what it is for: the
/// main port and the VIP port (shared by every shard, SO_REUSEPORT) and
/// the shard's own port.
fn shard_listeners(cfg: &BrokerConfig, k: u16) -> Vec<(SocketAddr, View, String)> {
    let ip = cfg.broker_ip1;
    let mut v = vec![(
        SocketAddr::new(ip, cfg.listen_port),
        View::Main,
        "broker port, listenPort".to_string(),
    )];
    if cfg.vip_channel_enable && cfg.listen_port > 2 {
        v.push((
            SocketAddr::new(ip, cfg.listen_port - 2),
            View::Main,
            "VIP channel, listenPort - 2 (vipChannelEnable=false turns it off)".into(),
        ));
    }
    v.push((
        SocketAddr::new(ip, cfg.shard_port(k as usize)),
        View::Shard(k),
        format!("shard {k} port, shardListenPortBase + {k}"),
    ));
    v
}

/// The gRPC listeners of shard `k`: the access point (shared by every
/// shard) and, with shard-aware routes, the shard's own; none when
/// `grpcListenPort=0`.
fn grpc_listeners(cfg: &BrokerConfig, k: u16) -> Vec<(SocketAddr, View, String)> {
    if cfg.grpc_listen_port == 0 {
        return Vec::new();
    }
    let ip = cfg.broker_ip1;
    let mut v = vec![(
        SocketAddr::new(ip, cfg.grpc_listen_port),
        View::Main,
        "gRPC (5.x clients), grpcListenPort (0 turns it off)".to_string(),
    )];
    if cfg.shard_aware_routes {
        v.push((
            SocketAddr::new(ip, cfg.grpc_shard_port(k as usize)),
            View::Shard(k),
            format!("shard {k} gRPC port, grpcShardPortBase + {k}"),
        ));
    }
    v
}

/// The REST API's listener (every shard accepts on it), unless
/// `httpListenPort=0`.
fn http_listener(cfg: &BrokerConfig) -> Option<(SocketAddr, String)> {
    (cfg.http_listen_port != 0).then(|| {
        (
            SocketAddr::new(cfg.broker_ip1, cfg.http_listen_port),
            "REST API and console, httpListenPort (0 turns it off)".to_string(),
        )
    })
}

/// Every address the broker will listen on, for the up-front check: the
/// shards' listeners (the shared ones once), the name server, metrics.
fn listen_plan(cfg: &BrokerConfig, shards: u16) -> Vec<ports::Wanted> {
    let mut v: Vec<ports::Wanted> = Vec::new();
    for k in 0..shards {
        for (addr, _, what) in shard_listeners(cfg, k).into_iter().chain(grpc_listeners(cfg, k)) {
            if !v.iter().any(|w| w.addr == addr) {
                v.push(ports::Wanted { addr, what });
            }
        }
    }
    if let Some((addr, what)) = http_listener(cfg) {
        v.push(ports::Wanted { addr, what });
    }
    if cfg.embedded_namesrv {
        v.push(ports::Wanted {
            addr: SocketAddr::new(cfg.namesrv_bind_ip(), cfg.namesrv_listen_port),
            what: "embedded name server, namesrvListenPort".into(),
        });
    }
    if cfg.metrics_port != 0 {
        v.push(ports::Wanted {
            addr: SocketAddr::new(cfg.broker_ip1, cfg.metrics_port),
            what: "Prometheus metrics, metricsPort (0 turns it off)".into(),
        });
    }
    v
}

async fn run_shard(
    k: u16,
    cfg: Arc<BrokerConfig>,
    mesh: MeshBuilder<ShardEnvelope, glommio::channels::channel_mesh::Full>,
    meta: Arc<Metadata>,
    controller: Option<Controller>,
    security: Security,
    report: mpsc::Sender<Report>,
) -> Result<(), String> {
    let Security { acl, tls, keys, sign } = security;
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
    glommio::spawn_local(super::acl_admin::watch(shard.clone())).detach();
    let stopping = shard.clone();
    glommio::spawn_local(super::audit::run(shard.audit.clone(), move || {
        stopping.store.is_stopping()
    }))
    .detach();
    glommio::spawn_local(super::pull::answer_parked(shard.clone())).detach();
    glommio::spawn_local(super::trace_store::run(shard.clone())).detach();
    glommio::spawn_local(super::timer::run(shard.clone())).detach();
    glommio::spawn_local(super::transaction::run(shard.clone())).detach();
    glommio::spawn_local(super::pop::run(shard.clone())).detach();
    glommio::spawn_local(super::pop::answer_parked(shard.clone())).detach();
    for (_, stream) in receivers.streams() {
        let shard = shard.clone();
        glommio::spawn_local(async move {
            while let Some(env) = stream.recv().await {
                super::dispatch::on_envelope(&shard, env);
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
        glommio::spawn_local(super::grpc::accept_loop(shard.clone(), l, view, tls.grpc.clone())).detach();
    }
    if let Some((addr, _)) = http_listener(&cfg) {
        let l = TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let render = metrics_render(&shard);
        glommio::spawn_local(super::rest::accept_loop(shard.clone(), l, tls.server.clone(), render)).detach();
    }
    // Shard 0 registers with the name servers before it reports ready (at
    // most REGISTERED_WAIT: a name server that does not answer is retried
    // every registration period, not waited for).
    let mut registered = None;
    if k == 0 {
        let (tx, rx) = futures::channel::oneshot::channel();
        glommio::spawn_local(super::registration::run(
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
    let engine = Rc::new(super::alerts::Engine::open(path, cfg.alert_webhook_url.clone(), tls)?);
    super::alerts::start(engine, shard.clone());
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
            let stats = super::stats::collect(&s).await;
            crate::metrics::prometheus::render(&stats)
        })
    })
}

/// What every connection of one shard shares: limits, admission, budget,
/// TLS.
#[derive(Clone)]
struct ConnPolicy {
    limits: connection::Limits,
    admission: Rc<connection::ConnLimits>,
    budget: Rc<connection::InboundBudget>,
    tls: ServerTls,
}

/// What a shard starts with to check its clients and keep its data: the
/// ACL, TLS, the keys of encryption at rest.
struct Security {
    acl: Option<super::access::Loaded>,
    tls: NetTls,
    keys: Option<Arc<crate::store::crypt::KeyRing>>,
    /// The account registrations with name servers are signed with.
    sign: Option<crate::admin::client::Credentials>,
}

/// The key ring of `storeEncryptionEnable`, read now (main thread).
fn store_keys(cfg: &BrokerConfig) -> Result<Option<Arc<crate::store::crypt::KeyRing>>, String> {
    if !cfg.store_encryption_enable {
        return Ok(None);
    }
    let path = cfg
        .store_encryption_key_file
        .as_deref()
        .ok_or("storeEncryptionEnable=true needs storeEncryptionKeyFile")?;
    if path.starts_with(&cfg.store_path_root_dir) {
        log::warn!(
            "storeEncryptionKeyFile {} is inside storePathRootDir: a copy of the data directory carries its key",
            path.display()
        );
    }
    let ring = crate::store::crypt::KeyRing::load(path)?;
    log::info!(
        "encryption at rest on: new records sealed with key {} of {}",
        ring.active(),
        path.display()
    );
    Ok(Some(Arc::new(ring)))
}

/// The process's TLS, loaded on the main thread before anything listens
/// (a bad certificate fails the start, naming the setting).
#[derive(Clone)]
pub(super) struct NetTls {
    /// The remoting ports and the name server.
    server: ServerTls,
    /// The gRPC ports (ALPN `h2`).
    grpc: ServerTls,
    /// The broker's own connections to name servers (`tlsEnable`).
    client: Option<ClientTls>,
}

impl NetTls {
    fn load(cfg: &BrokerConfig) -> Result<NetTls, String> {
        let server = ServerTls::load(&cfg.tls_server)?;
        let grpc = server.with_alpn(&[b"h2"]);
        let client = if cfg.tls_outgoing() {
            Some(ClientTls::load(&cfg.tls_client)?)
        } else {
            None
        };
        Ok(NetTls { server, grpc, client })
    }
}

async fn accept_loop(shard: Rc<Shard>, listener: TcpListener, view: View, policy: ConnPolicy) {
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
