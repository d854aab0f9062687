//! Broker statistics for `shardmq admin stats` and `/metrics`: every
//! shard's latency histograms, counters and gauges, and the consumer
//! backlog of the queues it owns.
//!
//! `GET_BROKER_STATS` (a shardmq-specific request code) can arrive on any
//! shard; it fans out `GET_SHARD_STATS` to every shard and merges the
//! answers into one [`BrokerStats`] JSON body.

use std::rc::Rc;
use std::time::Duration;

use crate::metrics::{BrokerStats, Gauges, Op, QueueLag, ShardSnapshot};
use crate::protocol::codes::response;
use crate::protocol::RemotingCommand;
use crate::runtime::router::ClientRef;

use super::shard::{error, Shard};

/// shardmq's own request codes, outside RocketMQ's ranges.
pub const GET_BROKER_STATS: i32 = 19001;
pub const GET_SHARD_STATS: i32 = 19002;

/// This shard's snapshot (flush samples folded in first).
pub fn shard_snapshot(shard: &Shard) -> (ShardSnapshot, Vec<QueueLag>) {
    for us in shard.store.take_sync_samples() {
        shard.metrics.record(Op::Flush, Duration::from_micros(us as u64));
    }
    let gauges = Gauges {
        long_poll_waiters: shard.pulls.held() as u64,
        cache_memory_bytes: shard.store.memory_used() as u64,
        queues: shard.store.queue_count() as u64,
        log_write_offset: shard.store.write_log_offset(),
        log_flushed_offset: shard.store.flushed_log_offset(),
        disk_full: shard.store.is_disk_full() as u64,
        forced_segment_deletions: shard.store.forced_deletions(),
    };
    let lag = shard
        .offsets
        .snapshot()
        .into_iter()
        .map(|(group, topic, queue_id, consumer_offset)| QueueLag {
            broker_offset: shard.store.max_offset(&topic, queue_id),
            group,
            topic,
            queue_id,
            consumer_offset,
        })
        .collect();
    (shard.metrics.snapshot(shard.id, gauges), lag)
}

pub async fn handle(shard: &Rc<Shard>, cmd: RemotingCommand, client: &ClientRef) -> Option<RemotingCommand> {
    match cmd.code {
        GET_SHARD_STATS => {
            let (snap, lag) = shard_snapshot(shard);
            let body = serde_json::json!({ "shard": snap, "lag": lag });
            Some(RemotingCommand::response_to(&cmd, response::SUCCESS, None).with_body(body.to_string().into_bytes()))
        }
        GET_BROKER_STATS => {
            let stats = collect(shard, client).await;
            match serde_json::to_vec(&stats) {
                Ok(b) => Some(RemotingCommand::response_to(&cmd, response::SUCCESS, None).with_body(b)),
                Err(e) => error(&cmd, response::SYSTEM_ERROR, e.to_string()),
            }
        }
        _ => super::shard::not_supported(&cmd),
    }
}

/// Gathers every shard's snapshot and backlog.
pub async fn collect(shard: &Rc<Shard>, client: &ClientRef) -> BrokerStats {
    let mut stats = BrokerStats::default();
    for k in 0..shard.shard_count() {
        let req = RemotingCommand::new_request(GET_SHARD_STATS);
        let Some(r) = shard.run_on(k, req, client).await else {
            continue;
        };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&r.body) else {
            continue;
        };
        if let Some(s) = v
            .get("shard")
            .and_then(|s| serde_json::from_value::<ShardSnapshot>(s.clone()).ok())
        {
            stats.shards.push(s);
        }
        if let Some(l) = v
            .get("lag")
            .and_then(|l| serde_json::from_value::<Vec<QueueLag>>(l.clone()).ok())
        {
            stats.lag.extend(l);
        }
    }
    let mut cmd = RemotingCommand::new_request(super::stats::GET_INCONSISTENT);
    cmd.opaque = 0;
    if let Some(r) = shard.run_on(0, cmd, client).await {
        if let Ok(groups) = serde_json::from_slice::<Vec<String>>(&r.body) {
            stats.inconsistent_groups = groups;
        }
    }
    stats
        .lag
        .sort_by(|a, b| (&a.group, &a.topic, a.queue_id).cmp(&(&b.group, &b.topic, b.queue_id)));
    stats
}

/// Controller: groups with inconsistent subscriptions (JSON list).
pub const GET_INCONSISTENT: i32 = 19003;
