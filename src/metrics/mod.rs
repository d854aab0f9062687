//! Per-shard metrics: latency histograms per operation and counters.
//!
//! Each shard records into its own [`ShardMetrics`] (no sharing, no
//! atomics: it lives on the shard's thread). Readers ask every shard for a
//! [`ShardSnapshot`] — plain data, percentiles and bucket counts already
//! computed — and merge or print them: the admin `stats` table and the
//! Prometheus `/metrics` endpoint ([`prometheus`]).

pub mod http;
pub mod prometheus;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Operations with a latency histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    /// Whole send request (includes the flush wait with SYNC_FLUSH).
    Send,
    /// Whole pull request, long-poll hold included.
    Pull,
    /// UPDATE_CONSUMER_OFFSET and committed offsets on pulls.
    OffsetUpdate,
    /// One CommitLog write + fdatasync (group commit).
    Flush,
    /// Round trip of a request executed on another shard.
    CrossShardHop,
    /// From a request's arrival to the start of its handler.
    Queueing,
    /// Any other request.
    Other,
}

impl Op {
    pub const ALL: [Op; 7] = [
        Op::Send,
        Op::Pull,
        Op::OffsetUpdate,
        Op::Flush,
        Op::CrossShardHop,
        Op::Queueing,
        Op::Other,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Op::Send => "send",
            Op::Pull => "pull",
            Op::OffsetUpdate => "offset_update",
            Op::Flush => "flush",
            Op::CrossShardHop => "cross_shard_hop",
            Op::Queueing => "queueing",
            Op::Other => "other",
        }
    }
}

/// Prometheus histogram bucket bounds, microseconds.
pub const BUCKETS_US: [u64; 16] = [
    50, 100, 250, 500, 1_000, 2_000, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 5_000_000,
    30_000_000,
];

/// Histograms cover 1 µs .. 5 min with 3 significant digits.
const MAX_US: u64 = 300_000_000;

pub struct ShardMetrics {
    hist: RefCell<BTreeMap<Op, Histogram<u64>>>,
    counters: RefCell<Counters>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Counters {
    pub requests_by_code: BTreeMap<i32, u64>,
    pub errors_by_code: BTreeMap<i32, u64>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub connections_opened: u64,
    pub connections_open: u64,
    /// Send requests (SEND_MESSAGE, _V2, SEND_BATCH_MESSAGE) answered, and
    /// those answered with an error (the `sendErrorPercent` alert).
    #[serde(default)]
    pub sends: u64,
    #[serde(default)]
    pub send_errors: u64,
}

impl Default for ShardMetrics {
    fn default() -> Self {
        ShardMetrics {
            hist: RefCell::new(BTreeMap::new()),
            counters: RefCell::new(Counters::default()),
        }
    }
}

impl ShardMetrics {
    pub fn record(&self, op: Op, d: Duration) {
        let us = (d.as_micros() as u64).clamp(1, MAX_US);
        let mut h = self.hist.borrow_mut();
        let hist = h.entry(op).or_insert_with(|| {
            Histogram::new_with_bounds(1, MAX_US, 3).unwrap_or_else(|_| Histogram::new(3).expect("3 sig figs is valid"))
        });
        let _ = hist.record(us);
    }

    pub fn request(&self, code: i32) {
        *self.counters.borrow_mut().requests_by_code.entry(code).or_default() += 1;
    }

    /// A send request answered, failed or not.
    pub fn send_answered(&self, failed: bool) {
        let mut c = self.counters.borrow_mut();
        c.sends += 1;
        c.send_errors += failed as u64;
    }

    pub fn error(&self, code: i32) {
        *self.counters.borrow_mut().errors_by_code.entry(code).or_default() += 1;
    }

    pub fn bytes(&self, inbound: u64, outbound: u64) {
        let mut c = self.counters.borrow_mut();
        c.bytes_in += inbound;
        c.bytes_out += outbound;
    }

    pub fn connection(&self, opened: bool) {
        let mut c = self.counters.borrow_mut();
        if opened {
            c.connections_opened += 1;
            c.connections_open += 1;
        } else {
            c.connections_open = c.connections_open.saturating_sub(1);
        }
    }

    pub fn snapshot(&self, shard: u16, gauges: Gauges) -> ShardSnapshot {
        let ops = self
            .hist
            .borrow()
            .iter()
            .map(|(op, h)| {
                let q = |p: f64| h.value_at_quantile(p);
                let mut buckets = Vec::with_capacity(BUCKETS_US.len());
                for &b in &BUCKETS_US {
                    buckets.push(h.count_between(0, b));
                }
                OpStats {
                    op: op.name().to_string(),
                    count: h.len(),
                    sum_us: (h.mean() * h.len() as f64) as u64,
                    p50_us: q(0.5),
                    p90_us: q(0.9),
                    p99_us: q(0.99),
                    p999_us: q(0.999),
                    max_us: h.max(),
                    buckets,
                }
            })
            .collect();
        ShardSnapshot {
            shard,
            ops,
            counters: self.counters.borrow().clone(),
            gauges,
            details: ShardDetails::default(),
        }
    }
}

/// Instantaneous values read when the snapshot is taken.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Gauges {
    pub long_poll_waiters: u64,
    pub cache_memory_bytes: u64,
    pub queues: u64,
    pub log_write_offset: u64,
    pub log_flushed_offset: u64,
    /// 1 while appends are refused for disk space.
    #[serde(default)]
    pub disk_full: u64,
    /// Unexpired segments deleted under `diskFullPolicy=deleteOldest`.
    #[serde(default)]
    pub forced_segment_deletions: u64,
    /// Why the shard refuses appends ([`crate::store::ReadOnlyReason`]
    /// names); None while it is writable.
    #[serde(default)]
    pub read_only_reason: Option<String>,
    /// Delayed and scheduled messages not yet delivered.
    #[serde(default)]
    pub scheduled_messages: u64,
    /// Earliest due time (ms since the epoch) of a scheduled message.
    #[serde(default)]
    pub scheduled_next_due_ms: Option<i64>,
    /// Scheduled messages delivered since the start.
    #[serde(default)]
    pub scheduled_delivered: u64,
    #[serde(default)]
    pub open_transactions: u64,
    #[serde(default)]
    pub transactions_committed: u64,
    #[serde(default)]
    pub transactions_rolled_back: u64,
    /// Messages popped and not acknowledged (POP), and pops long-polling.
    #[serde(default)]
    pub pop_in_flight: u64,
    #[serde(default)]
    pub pop_waiters: u64,
    /// A master's slaves in sync, and the log end the best of them holds
    /// durably (None on a slave).
    #[serde(default)]
    pub slaves_in_sync: Option<u64>,
    #[serde(default)]
    pub replicated_offset: Option<u64>,
    /// Controller mode: 1 while this shard is its group's master, and the
    /// master epoch it serves or follows (None outside controller mode).
    #[serde(default)]
    pub is_master: Option<u64>,
    #[serde(default)]
    pub master_epoch: Option<u64>,
}

/// A shard's scheduled messages per target topic and its oldest open
/// transactions (`shardmq admin schedule`, `shardmq admin transactions`).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct ShardDetails {
    pub scheduled_topics: Vec<(String, u64)>,
    pub open_transactions: Vec<OpenTransaction>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OpenTransaction {
    pub producer_group: String,
    pub half_offset: u64,
    pub age_ms: i64,
    pub checks: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OpStats {
    pub op: String,
    pub count: u64,
    pub sum_us: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    /// Cumulative counts at [`BUCKETS_US`].
    pub buckets: Vec<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardSnapshot {
    pub shard: u16,
    pub ops: Vec<OpStats>,
    pub counters: Counters,
    pub gauges: Gauges,
    #[serde(default)]
    pub details: ShardDetails,
}

/// What the broker answers to a stats request: every shard's snapshot and
/// the consumer backlog.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BrokerStats {
    pub shards: Vec<ShardSnapshot>,
    pub lag: Vec<QueueLag>,
    pub inconsistent_groups: Vec<String>,
    /// The alert rules' state (shard 0's alert engine).
    #[serde(default)]
    pub alerts: Vec<AlertStatus>,
}

/// One alert rule's state, for `admin alert status` and Prometheus.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AlertStatus {
    pub name: String,
    pub metric: String,
    pub severity: String,
    pub threshold: f64,
    /// The last value evaluated (None before the first evaluation).
    pub value: Option<f64>,
    /// Consecutive periods at or above the threshold.
    pub breaches: u32,
    pub firing: bool,
    /// Since when it fires (ms), if it does.
    pub firing_since: Option<i64>,
    pub last_evaluated: Option<i64>,
    /// Notifications sent (fired, repeated, resolved) since start.
    pub notifications: u64,
}

/// Backlog of one consumer group on one queue.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct QueueLag {
    pub group: String,
    pub topic: String,
    pub queue_id: u32,
    pub broker_offset: u64,
    pub consumer_offset: u64,
}

impl QueueLag {
    pub fn lag(&self) -> u64 {
        self.broker_offset.saturating_sub(self.consumer_offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_has_percentiles_and_cumulative_buckets() {
        let m = ShardMetrics::default();
        for us in 1..=1000u64 {
            m.record(Op::Send, Duration::from_micros(us));
        }
        m.request(310);
        m.error(2);
        let s = m.snapshot(3, Gauges::default());
        assert_eq!(s.shard, 3);
        let send = &s.ops[0];
        assert_eq!(send.op, "send");
        assert_eq!(send.count, 1000);
        assert!((495..=505).contains(&send.p50_us), "{}", send.p50_us);
        assert!(send.p99_us >= 985 && send.max_us >= 999);
        assert_eq!(send.buckets[0], 50);
        assert_eq!(*send.buckets.last().unwrap(), 1000);
        assert!(send.buckets.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(s.counters.requests_by_code[&310], 1);
    }
}
