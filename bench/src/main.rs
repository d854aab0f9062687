//! shardmq-bench: load generators for shardmq's layers.
//!
//! * `store` — drives one shard's `MessageStore` directly (no network) with
//!   N concurrent appender tasks on one pinned glommio executor.
//! * `produce`, `consume`, `e2e` — thread-per-core network load generator
//!   for any RocketMQ-protocol broker, found through a name server.
//! * `plot` — overlays the `--json` summaries of several network runs.
//! * `create-topics` — creates topics with many queues (memory checks).
//! * `timers`, `send-back` — scheduled-delivery lateness and the retry path.
//! * `pop` — invisible-time consumption (POP + ack) of a backlog.

use clap::{Parser, Subcommand};

mod net;
mod plot;
mod pop;
mod rest;
mod store;
mod timers;

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
    /// Send messages (SEND_MESSAGE_V2 / SEND_BATCH_MESSAGE) through the name server's route.
    Produce(net::NetArgs),
    /// Pull messages (PULL_MESSAGE with long polling and commitOffset).
    Consume(net::NetArgs),
    /// Produce and consume at once; end-to-end latency from send time to receipt.
    E2e(net::NetArgs),
    /// Draw several runs' `--json` summaries into one SVG.
    Plot(plot::PlotArgs),
    /// Create topics through TBW102's brokers (e.g. many queues, to measure memory).
    CreateTopics(CreateTopicsArgs),
    /// Scheduled delivery: schedule N timers, then measure how late each is.
    Timers(timers::TimerArgs),
    /// CONSUMER_SEND_MSG_BACK throughput and latency.
    SendBack(timers::SendBackArgs),
    /// Invisible-time consumption: POP_MESSAGE + acks of a backlog.
    Pop(pop::PopArgs),
    /// The REST API: produce (POST batches) or receive + ack a backlog.
    Rest(rest::RestArgs),
}

#[derive(clap::Args, Debug)]
struct CreateTopicsArgs {
    #[arg(long, default_value = "127.0.0.1:9876")]
    namesrv: String,
    /// Topics are named PREFIX-0, PREFIX-1, …
    #[arg(long, default_value = "BenchQ")]
    prefix: String,
    #[arg(long, default_value_t = 1)]
    count: u32,
    /// Queues per topic (per broker).
    #[arg(long, default_value_t = 8)]
    queues: u32,
}

fn create_topics(a: CreateTopicsArgs) -> Result<(), String> {
    for i in 0..a.count {
        let topic = format!("{}-{i}", a.prefix);
        net::setup::create_topic(&a.namesrv, &topic, a.queues)?;
        println!("created {topic} with {} queues", a.queues);
    }
    Ok(())
}

fn main() {
    env_logger_init();
    let cli = Cli::parse();
    let res = match cli.cmd {
        Cmd::Store(args) => store::run(args),
        Cmd::Produce(args) => net::run(net::Kind::Produce, args),
        Cmd::Consume(args) => net::run(net::Kind::Consume, args),
        Cmd::E2e(args) => net::run(net::Kind::E2e, args),
        Cmd::Plot(args) => plot::run(args),
        Cmd::CreateTopics(args) => create_topics(args),
        Cmd::Timers(args) => timers::timers(args),
        Cmd::SendBack(args) => timers::send_back(args),
        Cmd::Pop(args) => pop::run(args),
        Cmd::Rest(args) => rest::run(args),
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
