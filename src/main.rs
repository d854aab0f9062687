//! `shardmq`: the broker (`serve`), a standalone name server (`namesrv`),
//! the admin tool (`admin`).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[cfg(feature = "alloc-count")]
#[global_allocator]
static ALLOC: shardmq::alloc_count::Counting = shardmq::alloc_count::Counting;

#[derive(Parser)]
#[command(
    name = "shardmq",
    version,
    about = "A thread-per-core RocketMQ-compatible message broker"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a broker (with an embedded name server unless
    /// embeddedNamesrvEnable=false).
    Serve {
        /// broker.conf-style properties file (RocketMQ key names).
        #[arg(short = 'c', long = "config")]
        config: Option<PathBuf>,
        /// Override one setting, e.g. --set listenPort=20911 (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// Administer a broker and name server (like mqadmin).
    Admin(Box<shardmq::admin::AdminArgs>),
    /// Start one node of the controller quorum (a Raft group that names
    /// each broker group's master: brokers with enableControllerMode=true
    /// and controllerAddr set).
    Controller {
        /// This node's id (one of --peers).
        #[arg(long)]
        id: u64,
        /// Every controller node, id=host:port, comma-separated, the same
        /// on every node (e.g. 1=127.0.0.1:9878,2=127.0.0.1:9879,3=127.0.0.1:9880).
        #[arg(long)]
        peers: String,
        /// Where this node keeps its Raft log, vote and snapshots.
        #[arg(long)]
        data_dir: PathBuf,
        /// A master not heard from this long is failed over (ms).
        #[arg(long, default_value_t = 3000)]
        heartbeat_timeout_ms: u64,
    },
    /// Start a standalone name server (with a controller node beside it
    /// when --controller-id is given).
    Namesrv {
        /// Port to listen on.
        #[arg(long, default_value_t = 9876)]
        port: u16,
        /// Also run controller node ID of the quorum --controller-peers in
        /// this process (RocketMQ's controller embedded in the name server).
        #[arg(long, requires_all = ["controller_peers", "controller_data_dir"])]
        controller_id: Option<u64>,
        /// The controller nodes, id=host:port,... (as `shardmq controller --peers`).
        #[arg(long)]
        controller_peers: Option<String>,
        /// Where the embedded controller keeps its Raft log, vote and snapshots.
        #[arg(long)]
        controller_data_dir: Option<PathBuf>,
        /// A master not heard from this long is failed over (ms).
        #[arg(long, default_value_t = 3000)]
        controller_heartbeat_timeout_ms: u64,
        /// TLS and ACL settings, with the broker's key names, e.g. --set
        /// tlsServerMode=enforcing --set tlsServerCertPath=cert.pem --set
        /// aclEnable=true --set aclFile=plain_acl.yml (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
}

/// `shardmq controller`.
fn controller(id: u64, peers: &str, data_dir: PathBuf, heartbeat_timeout_ms: u64) -> Result<(), String> {
    shardmq_controller::run_blocking(controller_config(id, peers, data_dir, heartbeat_timeout_ms)?)
}

fn controller_config(
    id: u64,
    peers: &str,
    data_dir: PathBuf,
    heartbeat_timeout_ms: u64,
) -> Result<shardmq_controller::ControllerConfig, String> {
    let mut map = std::collections::BTreeMap::new();
    for p in peers.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, addr) = p
            .split_once('=')
            .ok_or_else(|| format!("--peers: {p:?} is not id=host:port"))?;
        let k: u64 = k
            .trim()
            .parse()
            .map_err(|_| format!("--peers: {k:?} is not a node id"))?;
        map.insert(k, addr.trim().to_string());
    }
    let listen = map
        .get(&id)
        .ok_or_else(|| format!("--id {id} is not one of --peers"))?
        .parse::<std::net::SocketAddr>()
        .map_err(|e| format!("--peers: node {id}'s address: {e}"))?;
    if heartbeat_timeout_ms < 100 {
        return Err("--heartbeat-timeout-ms is at least 100".into());
    }
    let mut cfg = shardmq_controller::ControllerConfig::new(id, listen, map, data_dir);
    cfg.heartbeat_timeout = std::time::Duration::from_millis(heartbeat_timeout_ms);
    Ok(cfg)
}

/// `shardmq namesrv`, with a controller node (`((id, peers), data dir)`)
/// on threads of its own beside it for as long as the process runs.
fn namesrv_with_controller(
    port: u16,
    set: Vec<String>,
    ctl: Option<((u64, String), PathBuf)>,
    heartbeat_timeout_ms: u64,
) -> Result<(), String> {
    let _node = match ctl {
        Some(((id, peers), dir)) => Some(shardmq_controller::start(controller_config(
            id,
            &peers,
            dir,
            heartbeat_timeout_ms,
        )?)?),
        None => None,
    };
    namesrv(port, set)
}

/// `shardmq namesrv`: only the TLS keys of `--set` apply to it.
fn namesrv(port: u16, set: Vec<String>) -> Result<(), String> {
    let allowed = |s: &str| {
        let k = s.trim_start();
        k.starts_with("tlsServer") || k.starts_with("aclEnable=") || k.starts_with("aclFile=")
    };
    if let Some(other) = set.iter().find(|s| !allowed(s)) {
        return Err(format!(
            "--set {other}: the name server takes only tlsServer*, aclEnable and aclFile settings"
        ));
    }
    let (cfg, unknown) = shardmq::config::BrokerConfig::load(None, &set).map_err(|e| e.to_string())?;
    if let Some(k) = unknown.first() {
        return Err(format!("unknown setting {k}"));
    }
    let acl = match (cfg.acl_enable, &cfg.acl_file) {
        (false, _) => None,
        (true, None) => return Err("aclEnable=true needs aclFile on a standalone name server".into()),
        (true, Some(path)) => Some(shardmq::namesrv::acl::NamesrvAclConfig {
            path: path.clone(),
            inner: None,
        }),
    };
    shardmq::namesrv::server::run_standalone(port, &cfg.tls_server, acl)
}

fn main() {
    let cli = Cli::parse();
    if let Command::Admin(args) = cli.command {
        // Piping into `head` ends the tool quietly instead of a panic on a
        // closed stdout.
        // SAFETY: restoring the default disposition of one signal at start.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
        if let Err(e) = shardmq::admin::run(*args) {
            eprintln!("shardmq admin: {e}");
            std::process::exit(1);
        }
        return;
    }
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let result = match cli.command {
        Command::Admin(_) => Ok(()),
        Command::Serve { config, set } => serve(config, set),
        Command::Namesrv {
            port,
            set,
            controller_id,
            controller_peers,
            controller_data_dir,
            controller_heartbeat_timeout_ms,
        } => {
            let ctl = controller_id.zip(controller_peers).zip(controller_data_dir);
            namesrv_with_controller(port, set, ctl, controller_heartbeat_timeout_ms)
        }
        Command::Controller {
            id,
            peers,
            data_dir,
            heartbeat_timeout_ms,
        } => controller(id, &peers, data_dir, heartbeat_timeout_ms),
    };
    #[cfg(feature = "alloc-count")]
    eprintln!(
        "allocations: {} ({} bytes)",
        shardmq::alloc_count::allocations(),
        shardmq::alloc_count::allocated_bytes()
    );
    if let Err(e) = result {
        eprintln!("shardmq: {e}");
        std::process::exit(1);
    }
}

fn serve(config: Option<PathBuf>, set: Vec<String>) -> Result<(), String> {
    let (cfg, unknown) = shardmq::config::BrokerConfig::load(config.as_deref(), &set).map_err(|e| e.to_string())?;
    for k in unknown {
        log::warn!("ignoring unknown setting {k}");
    }
    shardmq::runtime::shutdown::install_signal_handler()?;
    let restart = cfg.restart_when_demoted;
    shardmq::broker::server::serve(cfg)?;
    if shardmq::broker::ha::role::DEMOTED.load(std::sync::atomic::Ordering::SeqCst) {
        if restart {
            eprintln!("shardmq: demoted by the controller: starting again in place to rejoin the group as a slave");
            let e = shardmq::runtime::reexec::exec_self();
            eprintln!("shardmq: cannot start again in place ({e}); start it again to rejoin the group as a slave");
        } else {
            eprintln!("shardmq: demoted by the controller; start again to rejoin the group as a slave");
        }
        std::process::exit(3);
    }
    Ok(())
}
