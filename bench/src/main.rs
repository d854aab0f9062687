//! shardmq-bench: load generators for shardmq's layers.
//!
//! * `store` — drives one shard's `MessageStore` directly (no network) with
//!   N concurrent appender tasks on one pinned glommio executor.

use clap::{Parser, Subcommand};

mod store;

#[derive(Parser)]
#[command(name = "shardmq-bench", about = "Benchmarks for shardmq")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Append throughput and latency of the storage engine of one shard.
    Store(store::StoreArgs),
}

fn main() {
    env_logger_init();
    let cli = Cli::parse();
    let res = match cli.cmd {
        Cmd::Store(args) => store::run(args),
    };
    if let Err(e) = res {
        eprintln!("shardmq-bench: {e}");
        std::process::exit(1);
    }
}

/// Store errors are logged through `log`; without a logger they would be
/// lost. A minimal stderr logger at warn level is enough here.
fn env_logger_init() {
    struct Stderr;
    impl log::Log for Stderr {
        fn enabled(&self, m: &log::Metadata) -> bool {
            m.level() <= log::Level::Warn
        }
        fn log(&self, r: &log::Record) {
            if self.enabled(r.metadata()) {
                eprintln!("[{}] {}: {}", r.level(), r.target(), r.args());
            }
        }
        fn flush(&self) {}
    }
    static LOGGER: Stderr = Stderr;
    let _ = log::set_logger(&LOGGER).map(|()| log::set_max_level(log::LevelFilter::Warn));
}
