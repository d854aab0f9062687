//! `shardmq`: the broker (`serve`), a standalone name server (`namesrv`).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

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
    /// Start a standalone name server.
    Namesrv {
        /// Port to listen on.
        #[arg(long, default_value_t = 9876)]
        port: u16,
    },
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config, set } => serve(config, set),
        Command::Namesrv { port } => shardmq::namesrv::server::run_standalone(port),
    };
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
    shardmq::runtime::server::install_signal_handler()?;
    shardmq::runtime::server::serve(cfg)
}
