//! Prometheus text exposition (format 0.0.4) of the broker's stats:
//! latency histograms labelled by shard and operation, counters, gauges
//! and consumer backlog per group/topic/queue.

use std::fmt::Write;

use super::{BrokerStats, BUCKETS_US};

/// Alert rules: firing (0/1) and the last value evaluated.
fn write_alerts(out: &mut String, stats: &BrokerStats) {
    if stats.alerts.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "# HELP shardmq_alert_firing Whether an alert rule fires (1) or not (0).\n\
         # TYPE shardmq_alert_firing gauge"
    );
    for a in &stats.alerts {
        let _ = writeln!(
            out,
            "shardmq_alert_firing{{alert=\"{}\",metric=\"{}\",severity=\"{}\"}} {}",
            escape(&a.name),
            escape(&a.metric),
            escape(&a.severity),
            a.firing as u8
        );
    }
    let _ = writeln!(
        out,
        "# HELP shardmq_alert_value The value an alert rule last evaluated.\n\
         # TYPE shardmq_alert_value gauge"
    );
    for a in stats.alerts.iter().filter(|a| a.value.is_some()) {
        let _ = writeln!(
            out,
            "shardmq_alert_value{{alert=\"{}\"}} {}",
            escape(&a.name),
            a.value.unwrap_or(0.0)
        );
    }
}

pub fn render(stats: &BrokerStats) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let _ = writeln!(
        out,
        "# HELP shardmq_latency_seconds Request and I/O latency per shard and operation."
    );
    let _ = writeln!(out, "# TYPE shardmq_latency_seconds histogram");
    for s in &stats.shards {
        for o in &s.ops {
            let labels = format!("shard=\"{}\",op=\"{}\"", s.shard, o.op);
            for (b, c) in BUCKETS_US.iter().zip(&o.buckets) {
                let _ = writeln!(
                    out,
                    "shardmq_latency_seconds_bucket{{{labels},le=\"{}\"}} {c}",
                    *b as f64 / 1e6
                );
            }
            let _ = writeln!(
                out,
                "shardmq_latency_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                o.count
            );
            let _ = writeln!(out, "shardmq_latency_seconds_sum{{{labels}}} {}", o.sum_us as f64 / 1e6);
            let _ = writeln!(out, "shardmq_latency_seconds_count{{{labels}}} {}", o.count);
        }
    }
    counter(
        &mut out,
        "shardmq_requests_total",
        "Requests by request code.",
        stats,
        |s| {
            s.counters
                .requests_by_code
                .iter()
                .map(|(c, n)| (format!("code=\"{c}\""), *n))
                .collect()
        },
    );
    counter(
        &mut out,
        "shardmq_errors_total",
        "Error responses by response code.",
        stats,
        |s| {
            s.counters
                .errors_by_code
                .iter()
                .map(|(c, n)| (format!("code=\"{c}\""), *n))
                .collect()
        },
    );
    counter(
        &mut out,
        "shardmq_bytes_in_total",
        "Bytes read from clients.",
        stats,
        |s| vec![(String::new(), s.counters.bytes_in)],
    );
    counter(
        &mut out,
        "shardmq_bytes_out_total",
        "Bytes written to clients.",
        stats,
        |s| vec![(String::new(), s.counters.bytes_out)],
    );
    counter(
        &mut out,
        "shardmq_connections_opened_total",
        "Connections accepted.",
        stats,
        |s| vec![(String::new(), s.counters.connections_opened)],
    );
    type Gauge = (&'static str, &'static str, fn(&super::Gauges) -> u64);
    let gauges: [Gauge; 13] = [
        ("shardmq_connections_open", "Open client connections.", |_| 0),
        (
            "shardmq_long_poll_waiters",
            "Pull requests held by long polling.",
            |g| g.long_poll_waiters,
        ),
        (
            "shardmq_cache_memory_bytes",
            "Memory held by the CommitLog tail and consume-queue caches.",
            |g| g.cache_memory_bytes,
        ),
        ("shardmq_queues", "Queues stored on the shard.", |g| g.queues),
        (
            "shardmq_unflushed_bytes",
            "CommitLog bytes written but not yet durable.",
            |g| g.log_write_offset.saturating_sub(g.log_flushed_offset),
        ),
        (
            "shardmq_disk_full",
            "1 while appends are refused because the disk is used above diskMaxUsedSpaceRatio.",
            |g| g.disk_full,
        ),
        (
            "shardmq_forced_segment_deletions",
            "Unexpired CommitLog segments deleted under diskFullPolicy=deleteOldest (messages lost); alert on any increase.",
            |g| g.forced_segment_deletions,
        ),
        (
            "shardmq_scheduled_messages",
            "Delayed and scheduled messages not yet delivered.",
            |g| g.scheduled_messages,
        ),
        (
            "shardmq_scheduled_delivered",
            "Scheduled messages delivered since the start.",
            |g| g.scheduled_delivered,
        ),
        (
            "shardmq_pop_in_flight",
            "Messages popped (POP) and not acknowledged yet; bounded per shard by popMaxInFlight.",
            |g| g.pop_in_flight,
        ),
        (
            "shardmq_pop_waiters",
            "POP requests long-polling for messages.",
            |g| g.pop_waiters,
        ),
        (
            "shardmq_open_transactions",
            "Half messages neither committed nor rolled back.",
            |g| g.open_transactions,
        ),
        (
            "shardmq_transactions_rolled_back",
            "Transactions rolled back since the start (by the producer or after transactionCheckMax checks).",
            |g| g.transactions_rolled_back,
        ),
    ];
    for (name, help, f) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for s in &stats.shards {
            let v = if name == "shardmq_connections_open" {
                s.counters.connections_open
            } else {
                f(&s.gauges)
            };
            let _ = writeln!(out, "{name}{{shard=\"{}\"}} {v}", s.shard);
        }
    }
    write_state(&mut out, stats);
    write_replication(&mut out, stats);
    let _ = writeln!(
        out,
        "# HELP shardmq_consumer_lag_messages Backlog of a consumer group on one queue."
    );
    let _ = writeln!(out, "# TYPE shardmq_consumer_lag_messages gauge");
    for l in &stats.lag {
        let _ = writeln!(
            out,
            "shardmq_consumer_lag_messages{{group=\"{}\",topic=\"{}\",queue=\"{}\"}} {}",
            escape(&l.group),
            escape(&l.topic),
            l.queue_id,
            l.lag()
        );
    }
    write_alerts(&mut out, stats);
    let _ = writeln!(
        out,
        "# HELP shardmq_inconsistent_subscription_groups Consumer groups whose members subscribe differently."
    );
    let _ = writeln!(out, "# TYPE shardmq_inconsistent_subscription_groups gauge");
    let _ = writeln!(
        out,
        "shardmq_inconsistent_subscription_groups {}",
        stats.inconsistent_groups.len()
    );
    #[cfg(feature = "alloc-count")]
    let _ = writeln!(
        out,
        "# HELP shardmq_allocations_total Heap allocations since start (feature alloc-count).\n\
         # TYPE shardmq_allocations_total counter\nshardmq_allocations_total {}",
        crate::alloc_count::allocations()
    );
    out
}

fn counter(
    out: &mut String,
    name: &str,
    help: &str,
    stats: &BrokerStats,
    values: impl Fn(&super::ShardSnapshot) -> Vec<(String, u64)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for s in &stats.shards {
        for (labels, v) in values(s) {
            let sep = if labels.is_empty() { "" } else { "," };
            let _ = writeln!(out, "{name}{{shard=\"{}\"{sep}{labels}}} {v}", s.shard);
        }
    }
}

/// A master's replication: slaves in sync, and how far the best of them
/// is behind the master's durable log (only while one is in sync).
fn write_replication(out: &mut String, stats: &BrokerStats) {
    if stats.shards.iter().any(|s| s.gauges.is_master.is_some()) {
        let _ = writeln!(
            out,
            "# HELP shardmq_ha_is_master 1 while this shard's broker is its group's master (controller mode).\n\
             # TYPE shardmq_ha_is_master gauge"
        );
        for s in &stats.shards {
            if let Some(m) = s.gauges.is_master {
                let _ = writeln!(out, "shardmq_ha_is_master{{shard=\"{}\"}} {m}", s.shard);
            }
        }
        let _ = writeln!(
            out,
            "# HELP shardmq_ha_master_epoch The master epoch this shard serves or follows (controller mode).\n\
             # TYPE shardmq_ha_master_epoch gauge"
        );
        for s in &stats.shards {
            if let Some(e) = s.gauges.master_epoch {
                let _ = writeln!(out, "shardmq_ha_master_epoch{{shard=\"{}\"}} {e}", s.shard);
            }
        }
    }
    if stats.shards.iter().all(|s| s.gauges.slaves_in_sync.is_none()) {
        return;
    }
    let _ = writeln!(
        out,
        "# HELP shardmq_replica_slaves_in_sync Slaves within haMaxGapNotInSync of this master shard \
         (0 on a SYNC_MASTER: sends get SLAVE_NOT_AVAILABLE).\n# TYPE shardmq_replica_slaves_in_sync gauge"
    );
    for s in &stats.shards {
        if let Some(n) = s.gauges.slaves_in_sync {
            let _ = writeln!(out, "shardmq_replica_slaves_in_sync{{shard=\"{}\"}} {n}", s.shard);
        }
    }
    let _ = writeln!(
        out,
        "# HELP shardmq_replica_lag_bytes Durable CommitLog bytes of this master shard that no slave in \
         sync holds durably yet.\n# TYPE shardmq_replica_lag_bytes gauge"
    );
    for s in &stats.shards {
        if let (Some(n), Some(end)) = (s.gauges.slaves_in_sync, s.gauges.replicated_offset) {
            if n > 0 {
                let lag = s.gauges.log_flushed_offset.saturating_sub(end);
                let _ = writeln!(out, "shardmq_replica_lag_bytes{{shard=\"{}\"}} {lag}", s.shard);
            }
        }
    }
}

/// `shardmq_shard_writable` and, as a state set, one
/// `shardmq_shard_read_only_reason` series per reason (1 for the current one).
fn write_state(out: &mut String, stats: &BrokerStats) {
    use crate::store::ReadOnlyReason;
    let _ = writeln!(
        out,
        "# HELP shardmq_shard_writable 1 while the shard takes appends, 0 while it is read-only \
         (shardmq_shard_read_only_reason says why).\n# TYPE shardmq_shard_writable gauge"
    );
    for s in &stats.shards {
        let writable = s.gauges.read_only_reason.is_none() as u8;
        let _ = writeln!(out, "shardmq_shard_writable{{shard=\"{}\"}} {writable}", s.shard);
    }
    let _ = writeln!(
        out,
        "# HELP shardmq_shard_read_only_reason 1 for the reason a read-only shard refuses appends: \
         disk_full (use above diskMaxUsedSpaceRatio; clears when space returns), flush_failed \
         (an fdatasync failed; needs a restart), segment_unavailable (a CommitLog segment cannot be \
         created; clears when one can).\n# TYPE shardmq_shard_read_only_reason gauge"
    );
    for s in &stats.shards {
        for r in ReadOnlyReason::ALL {
            let on = (s.gauges.read_only_reason.as_deref() == Some(r.as_str())) as u8;
            let _ = writeln!(
                out,
                "shardmq_shard_read_only_reason{{shard=\"{}\",reason=\"{}\"}} {on}",
                s.shard,
                r.as_str()
            );
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{AlertStatus, Gauges, Op, QueueLag, ShardMetrics};
    use std::time::Duration;

    #[test]
    fn renders_histograms_counters_and_lag() {
        let m = ShardMetrics::default();
        m.record(Op::Pull, Duration::from_micros(700));
        m.request(11);
        let stats = BrokerStats {
            shards: vec![m.snapshot(
                1,
                Gauges {
                    long_poll_waiters: 4,
                    ..Default::default()
                },
            )],
            lag: vec![QueueLag {
                group: "g\"1".into(),
                topic: "T".into(),
                queue_id: 2,
                broker_offset: 10,
                consumer_offset: 3,
            }],
            inconsistent_groups: vec![],
            alerts: vec![AlertStatus {
                name: "b\"1".into(),
                metric: "groupBacklog".into(),
                severity: "critical".into(),
                threshold: 5.0,
                value: Some(7.0),
                firing: true,
                ..Default::default()
            }],
        };
        let text = render(&stats);
        assert!(
            text.contains("shardmq_latency_seconds_bucket{shard=\"1\",op=\"pull\",le=\"0.001\"} 1"),
            "{text}"
        );
        assert!(text.contains("shardmq_latency_seconds_count{shard=\"1\",op=\"pull\"} 1"));
        assert!(text.contains("shardmq_requests_total{shard=\"1\",code=\"11\"} 1"));
        assert!(text.contains("shardmq_long_poll_waiters{shard=\"1\"} 4"));
        assert!(text.contains("shardmq_shard_writable{shard=\"1\"} 1"), "{text}");
        assert!(text.contains("shardmq_shard_read_only_reason{shard=\"1\",reason=\"disk_full\"} 0"));
        assert!(text.contains("shardmq_consumer_lag_messages{group=\"g\\\"1\",topic=\"T\",queue=\"2\"} 7"));
        assert!(text.contains("shardmq_alert_firing{alert=\"b\\\"1\",metric=\"groupBacklog\",severity=\"critical\"} 1"));
        assert!(text.contains("shardmq_alert_value{alert=\"b\\\"1\"} 7"), "{text}");
    }

    #[test]
    fn a_masters_replication_is_exposed_and_a_slave_has_none() {
        let mut stats = BrokerStats {
            shards: vec![ShardMetrics::default().snapshot(
                0,
                Gauges {
                    log_flushed_offset: 5000,
                    slaves_in_sync: Some(1),
                    replicated_offset: Some(4200),
                    ..Default::default()
                },
            )],
            ..Default::default()
        };
        let text = render(&stats);
        assert!(text.contains("shardmq_replica_slaves_in_sync{shard=\"0\"} 1"), "{text}");
        assert!(text.contains("shardmq_replica_lag_bytes{shard=\"0\"} 800"), "{text}");
        stats.shards[0].gauges.slaves_in_sync = None;
        assert!(!render(&stats).contains("shardmq_replica"));
        assert!(!render(&stats).contains("shardmq_ha_"), "outside controller mode");
        stats.shards[0].gauges.is_master = Some(1);
        stats.shards[0].gauges.master_epoch = Some(7);
        let text = render(&stats);
        assert!(text.contains("shardmq_ha_is_master{shard=\"0\"} 1"), "{text}");
        assert!(text.contains("shardmq_ha_master_epoch{shard=\"0\"} 7"), "{text}");
    }

    #[test]
    fn a_read_only_shard_says_why_once() {
        let stats = BrokerStats {
            shards: vec![ShardMetrics::default().snapshot(
                0,
                Gauges {
                    read_only_reason: Some("flush_failed".into()),
                    ..Default::default()
                },
            )],
            lag: vec![],
            inconsistent_groups: vec![],
            alerts: vec![],
        };
        let text = render(&stats);
        assert!(text.contains("shardmq_shard_writable{shard=\"0\"} 0"), "{text}");
        let on: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("shardmq_shard_read_only_reason{") && l.ends_with(" 1"))
            .collect();
        assert_eq!(
            on,
            ["shardmq_shard_read_only_reason{shard=\"0\",reason=\"flush_failed\"} 1"]
        );
        assert_eq!(text.matches("shardmq_shard_read_only_reason{shard=\"0\"").count(), 3);
    }
}
