//! shardmq controller: a Raft quorum (openraft 0.9) that keeps each broker
//! group's master, master epoch and sync state set (ISR) and fails a group
//! over when its master stops heartbeating, like RocketMQ 5's controller mode.
//!
//! - [`sm`]: the replicated state machine and the election rules;
//! - [`store`]: durable log/vote/snapshot storage (on-disk format there);
//! - [`wire`]: the framed JSON protocol (wire format there);
//! - [`network`]: openraft's network over that protocol;
//! - [`client`]: the blocking client brokers and admin tools use.
//!
//! Each node runs on a thread of its own with a tokio runtime ([`start`]);
//! it never touches glommio. Heartbeats are not replicated: the leader keeps
//! them in memory, and a new leader gives every broker one
//! `heartbeat_timeout` of grace before failing anything over.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Cursor;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InitializeError, RaftError};
use openraft::{BasicNode, Raft, SnapshotPolicy};

pub mod client;
pub mod network;
mod server;
pub mod sm;
pub mod store;
pub mod types;
pub mod wire;

pub use types::{AlterReq, BrokerReq, BrokerView, ErrorCode, GroupView, Status};

openraft::declare_raft_types!(
    /// openraft type configuration: u64 node ids, `BasicNode{addr}`, [`sm::Command`] entries.
    pub TypeConfig:
        D = sm::Command,
        R = sm::Outcome,
        NodeId = u64,
        Node = BasicNode,
        SnapshotData = Cursor<Vec<u8>>,
);

/// A controller node's configuration.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    pub node_id: u64,
    /// Address the node listens on (Raft and clients); port 0 picks one.
    pub listen: SocketAddr,
    /// Every controller, id → "host:port", the same on every node (this node
    /// included). Empty: a single-node controller at its own bound address.
    pub peers: BTreeMap<u64, String>,
    pub data_dir: PathBuf,
    /// A master not heard from for this long is failed over (default 3 s).
    pub heartbeat_timeout: Duration,
    /// How often the leader scans groups (default 500 ms).
    pub scan_interval: Duration,
    /// Raft election timeout range (default 800–1600 ms).
    pub election_timeout: (Duration, Duration),
    /// Raft leader heartbeat interval (default 200 ms).
    pub raft_heartbeat_interval: Duration,
    /// Build a snapshot (and compact the log) every this many applied entries (default 500).
    pub snapshot_every: u64,
    /// Log entries kept behind a snapshot for lagging followers (default 100);
    /// one further behind receives the snapshot (`raft_snapshot`).
    pub snapshot_logs_to_keep: u64,
}

impl ControllerConfig {
    /// A configuration with the defaults.
    pub fn new(node_id: u64, listen: SocketAddr, peers: BTreeMap<u64, String>, data_dir: PathBuf) -> Self {
        ControllerConfig {
            node_id,
            listen,
            peers,
            data_dir,
            heartbeat_timeout: Duration::from_millis(3000),
            scan_interval: Duration::from_millis(500),
            election_timeout: (Duration::from_millis(800), Duration::from_millis(1600)),
            raft_heartbeat_interval: Duration::from_millis(200),
            snapshot_every: 500,
            snapshot_logs_to_keep: 100,
        }
    }
}

/// A running controller node (its own thread and tokio runtime).
pub struct Controller {
    node_id: u64,
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Controller {
    /// The address the node listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    /// Stop Raft and the server, and join the node's thread.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

fn ms(d: Duration) -> u64 {
    d.as_millis().min(u64::MAX as u128) as u64
}

/// Open storage, start Raft (initializing the cluster if new), the server and the scan.
async fn boot(
    cfg: ControllerConfig,
) -> Result<(Arc<server::Node>, SocketAddr, Vec<tokio::task::JoinHandle<()>>), String> {
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| format!("bind {}: {e}", cfg.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let mut peers = cfg.peers.clone();
    if peers.is_empty() {
        peers.insert(cfg.node_id, addr.to_string());
    }
    if !peers.contains_key(&cfg.node_id) {
        return Err(format!("node id {} is not among the peers {:?}", cfg.node_id, peers));
    }
    let dir = cfg.data_dir.clone();
    let (log_store, sm) = tokio::task::spawn_blocking(move || {
        let l = store::LogStore::open(&dir)?;
        let s = store::SmStore::open(&dir)?;
        Ok::<_, std::io::Error>((l, s))
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("open {}: {e}", cfg.data_dir.display()))?;

    let raft_cfg = openraft::Config {
        cluster_name: "shardmq-controller".to_string(),
        election_timeout_min: ms(cfg.election_timeout.0),
        election_timeout_max: ms(cfg.election_timeout.1),
        heartbeat_interval: ms(cfg.raft_heartbeat_interval),
        install_snapshot_timeout: 2000,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(cfg.snapshot_every.max(1)),
        max_in_snapshot_log_to_keep: cfg.snapshot_logs_to_keep,
        snapshot_max_chunk_size: 1024 * 1024,
        ..Default::default()
    }
    .validate()
    .map_err(|e| format!("raft config: {e}"))?;
    let raft = Raft::new(cfg.node_id, Arc::new(raft_cfg), network::Network, log_store, sm.clone())
        .await
        .map_err(|e| format!("raft: {e}"))?;
    if !raft.is_initialized().await.map_err(|e| e.to_string())? {
        let members: BTreeMap<u64, BasicNode> = peers.iter().map(|(id, a)| (*id, BasicNode::new(a))).collect();
        match raft.initialize(members).await {
            Ok(()) => {}
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
            Err(e) => return Err(format!("raft initialize: {e}")),
        }
    }
    let node = Arc::new(server::Node::new(cfg.node_id, raft, sm, cfg.heartbeat_timeout));
    let tasks = vec![
        tokio::spawn(server::accept_loop(node.clone(), listener)),
        tokio::spawn(server::scan_loop(node.clone(), cfg.scan_interval)),
    ];
    log::info!("controller {} listening on {addr}, peers {:?}", cfg.node_id, peers);
    Ok((node, addr, tasks))
}

/// Run a node on the current thread until `stop` completes.
fn run<F>(
    cfg: ControllerConfig,
    ready: std::sync::mpsc::Sender<Result<SocketAddr, String>>,
    stop: impl FnOnce() -> F,
) -> Result<(), String>
where
    F: Future<Output = ()>,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(format!("ctrl-{}", cfg.node_id))
        .enable_all()
        .build()
        .map_err(|e| {
            let msg = format!("tokio runtime: {e}");
            let _ = ready.send(Err(msg.clone()));
            msg
        })?;
    let res = rt.block_on(async move {
        match boot(cfg).await {
            Ok((node, addr, tasks)) => {
                let _ = ready.send(Ok(addr));
                stop().await;
                for t in &tasks {
                    t.abort();
                }
                if let Err(e) = node.raft.shutdown().await {
                    log::warn!("controller {}: raft shutdown: {e}", node.id);
                }
                Ok(())
            }
            Err(e) => {
                let _ = ready.send(Err(e.clone()));
                Err(e)
            }
        }
    });
    rt.shutdown_timeout(Duration::from_secs(2));
    res
}

/// Start a node on a thread of its own; returns once it listens.
pub fn start(cfg: ControllerConfig) -> Result<Controller, String> {
    let node_id = cfg.node_id;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name(format!("controller-{node_id}"))
        .spawn(move || {
            let _ = run(cfg, ready_tx, move || async move {
                let _ = stop_rx.await;
            });
        })
        .map_err(|e| format!("spawn: {e}"))?;
    match ready_rx.recv() {
        Ok(Ok(addr)) => Ok(Controller {
            node_id,
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        }),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => {
            let _ = thread.join();
            Err("controller thread exited".to_string())
        }
    }
}

/// Run a node on the calling thread until SIGTERM or SIGINT (the CLI's `shardmq controller`).
pub fn run_blocking(cfg: ControllerConfig) -> Result<(), String> {
    let (ready_tx, _ready_rx) = std::sync::mpsc::channel();
    run(cfg, ready_tx, || async {
        #[cfg(unix)]
        {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = tokio::signal::ctrl_c() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        log::info!("controller stopping");
    })
}
