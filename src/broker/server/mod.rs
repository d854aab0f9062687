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

mod accept;
mod listeners;
mod security;
mod shard_task;
pub use shard_task::spawn_master_tasks;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use glommio::channels::channel_mesh::MeshBuilder;
use glommio::{LocalExecutorBuilder, Placement};

use crate::config::BrokerConfig;
use crate::runtime::mesh::Envelope;
use crate::runtime::shutdown::{SHUTDOWN, SHUTDOWN_GRACE};

use super::controller::Controller;
use super::data_dir::{lock_data_dir, Created};
use super::mesh::{Event, Reply, Request};
use super::metadata;

use listeners::listen_plan;
use security::{store_keys, NetTls, Security};
use shard_task::run_shard;

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
    let ha = cfg
        .enable_controller_mode
        .then(|| crate::broker::ha::agent::Shared::new(shards as usize));
    let mesh = MeshBuilder::<ShardEnvelope, _>::full(shards as usize, 1024);
    let (tx, rx) = mpsc::channel::<Report>();
    let mut ctl = Some(ctl);
    let mut handles = Vec::new();
    for k in 0..shards {
        let (cfg, mesh, tx, meta, acl, ha) = (
            cfg.clone(),
            mesh.clone(),
            tx.clone(),
            meta.clone(),
            acl.clone(),
            ha.clone(),
        );
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
                match run_shard(k, cfg, mesh, meta, controller, security, ha, tx.clone()).await {
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
