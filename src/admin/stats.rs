//! `stats [--watch SECS]` and `subscriptions`, from shardmq's own
//! GET_BROKER_STATS request ([`crate::broker::stats`]).

use std::time::Duration;

use clap::Args;
use serde_json::json;

use crate::broker::stats::GET_BROKER_STATS;
use crate::metrics::BrokerStats;

use super::client::req;
use super::output::{bytes, micros, print_json, table};
use super::Ctx;

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Refresh every SECS seconds until interrupted.
    #[arg(long, value_name = "SECS")]
    pub watch: Option<u64>,
}

fn fetch(ctx: &Ctx) -> Result<BrokerStats, String> {
    let r = ctx.broker_call(req(GET_BROKER_STATS, &[]))?;
    serde_json::from_slice(&r.body).map_err(|e| format!("invalid stats body: {e}"))
}

pub fn stats(ctx: &Ctx, a: StatsArgs) -> Result<(), String> {
    loop {
        let s = fetch(ctx)?;
        if ctx.json {
            print_json(&serde_json::to_value(&s).map_err(|e| e.to_string())?);
        } else {
            if a.watch.is_some() {
                print!("\x1b[2J\x1b[H");
            }
            print_stats(&s);
        }
        match a.watch {
            Some(secs) => std::thread::sleep(Duration::from_secs(secs.max(1))),
            None => return Ok(()),
        }
    }
}

fn print_stats(s: &BrokerStats) {
    let mut shards = table(
        &[
            "shard",
            "state",
            "requests",
            "errors",
            "bytes in",
            "bytes out",
            "conns",
            "queues",
            "long polls",
            "cache",
            "unflushed",
        ],
        2,
    );
    for sh in &s.shards {
        let c = &sh.counters;
        let g = &sh.gauges;
        shards.add_row(vec![
            sh.shard.to_string(),
            match &g.read_only_reason {
                None => "writable".to_string(),
                Some(why) => format!("READ-ONLY: {why}"),
            },
            c.requests_by_code.values().sum::<u64>().to_string(),
            c.errors_by_code.values().sum::<u64>().to_string(),
            bytes(c.bytes_in),
            bytes(c.bytes_out),
            c.connections_open.to_string(),
            g.queues.to_string(),
            g.long_poll_waiters.to_string(),
            bytes(g.cache_memory_bytes),
            bytes(g.log_write_offset.saturating_sub(g.log_flushed_offset)),
        ]);
    }
    println!("Shards\n{shards}");
    let mut ops = table(&["shard", "op", "count", "p50", "p99", "p999", "max"], 2);
    for sh in &s.shards {
        for o in &sh.ops {
            ops.add_row(vec![
                sh.shard.to_string(),
                o.op.clone(),
                o.count.to_string(),
                micros(o.p50_us),
                micros(o.p99_us),
                micros(o.p999_us),
                micros(o.max_us),
            ]);
        }
    }
    println!("Latency\n{ops}");
    if s.lag.is_empty() {
        println!("Consumer lag: no committed offsets");
    } else {
        let mut lag = table(
            &["group", "topic", "queue", "broker offset", "consumer offset", "lag"],
            2,
        );
        for l in &s.lag {
            lag.add_row(vec![
                l.group.clone(),
                l.topic.clone(),
                l.queue_id.to_string(),
                l.broker_offset.to_string(),
                l.consumer_offset.to_string(),
                l.lag().to_string(),
            ]);
        }
        println!("Consumer lag\n{lag}");
    }
    if !s.inconsistent_groups.is_empty() {
        println!(
            "Groups with inconsistent subscriptions: {} (see `shardmq admin subscriptions`)",
            s.inconsistent_groups.join(", ")
        );
    }
}

pub fn subscriptions(ctx: &Ctx) -> Result<(), String> {
    let s = fetch(ctx)?;
    if ctx.json {
        print_json(&json!({ "inconsistentGroups": s.inconsistent_groups }));
    } else if s.inconsistent_groups.is_empty() {
        println!("every consumer group's members subscribe consistently");
    } else {
        let mut t = table(&["group with inconsistent subscriptions"], 1);
        for g in &s.inconsistent_groups {
            t.add_row(vec![g]);
        }
        println!("{t}");
        println!("the broker log names the clients and the difference");
    }
    Ok(())
}
