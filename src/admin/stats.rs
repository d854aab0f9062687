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

/// `schedule`: delayed and scheduled messages not yet delivered, per shard
/// and per target topic, and the next due time.
pub fn schedule(ctx: &Ctx) -> Result<(), String> {
    let s = fetch(ctx)?;
    let mut topics: std::collections::BTreeMap<&str, u64> = Default::default();
    for sh in &s.shards {
        for (t, n) in &sh.details.scheduled_topics {
            *topics.entry(t).or_default() += n;
        }
    }
    let next = s.shards.iter().filter_map(|sh| sh.gauges.scheduled_next_due_ms).min();
    if ctx.json {
        let shards: Vec<_> = s
            .shards
            .iter()
            .map(|sh| {
                json!({"shard": sh.shard, "scheduled": sh.gauges.scheduled_messages,
                       "nextDueMs": sh.gauges.scheduled_next_due_ms, "delivered": sh.gauges.scheduled_delivered})
            })
            .collect();
        print_json(&json!({"shards": shards, "topics": topics, "nextDueMs": next}));
        return Ok(());
    }
    let mut t = table(&["shard", "scheduled", "next due", "delivered"], 1);
    for sh in &s.shards {
        let g = &sh.gauges;
        t.add_row(vec![
            sh.shard.to_string(),
            g.scheduled_messages.to_string(),
            g.scheduled_next_due_ms.map_or("-".into(), super::time::format_ms),
            g.scheduled_delivered.to_string(),
        ]);
    }
    println!("Scheduled messages\n{t}");
    if !topics.is_empty() {
        let mut by = table(&["topic", "scheduled"], 1);
        for (topic, n) in &topics {
            by.add_row(vec![topic.to_string(), n.to_string()]);
        }
        println!("By topic\n{by}");
    }
    Ok(())
}

/// `transactions [--group G]`: open transactions (oldest first, at most 100
/// per shard) with their age and check count.
pub fn transactions(ctx: &Ctx, group: Option<&str>) -> Result<(), String> {
    let s = fetch(ctx)?;
    let mut rows = Vec::new();
    for sh in &s.shards {
        for t in &sh.details.open_transactions {
            if group.is_none_or(|g| g == t.producer_group) {
                rows.push((sh.shard, t.clone()));
            }
        }
    }
    rows.sort_by_key(|(_, t)| std::cmp::Reverse(t.age_ms));
    let open: u64 = s.shards.iter().map(|sh| sh.gauges.open_transactions).sum();
    if ctx.json {
        let v: Vec<_> = rows
            .iter()
            .map(|(k, t)| {
                json!({"shard": k, "producerGroup": t.producer_group, "halfOffset": t.half_offset,
                       "ageMs": t.age_ms, "checks": t.checks})
            })
            .collect();
        print_json(&json!({"open": open, "transactions": v}));
        return Ok(());
    }
    let committed: u64 = s.shards.iter().map(|sh| sh.gauges.transactions_committed).sum();
    let rolled: u64 = s.shards.iter().map(|sh| sh.gauges.transactions_rolled_back).sum();
    println!("open {open}, committed {committed}, rolled back {rolled} (since the start)");
    if rows.is_empty() {
        return Ok(());
    }
    let mut t = table(&["producer group", "shard", "half offset", "age", "checks"], 1);
    for (k, x) in &rows {
        t.add_row(vec![
            x.producer_group.clone(),
            k.to_string(),
            x.half_offset.to_string(),
            micros(x.age_ms.max(0) as u64 * 1000),
            x.checks.to_string(),
        ]);
    }
    println!("{t}");
    Ok(())
}
