//! Broker statistics for `shardmq admin stats` and `/metrics`: every
//! shard's latency histograms, counters and gauges, and the consumer
//! backlog of the queues it owns.
//!
//! `GET_BROKER_STATS` (a shardmq-specific request code) can arrive on any
//! shard; it asks every shard for its part ([`super::mesh::Request::Stats`])
//! and merges the answers into one [`BrokerStats`] JSON body.

use std::rc::Rc;
use std::time::Duration;

use crate::metrics::{BrokerStats, Gauges, Op, OpenTransaction, QueueLag, ShardDetails, ShardSnapshot};
use crate::protocol::codes::response;
use crate::protocol::RemotingCommand;

use super::mesh::{unexpected, Reply, Request};
use super::reply::error;
use super::shard::Shard;

/// shardmq's own request codes, outside RocketMQ's ranges.
pub const GET_BROKER_STATS: i32 = 19001;

/// This shard's snapshot (flush samples folded in first).
pub fn shard_snapshot(shard: &Shard) -> (ShardSnapshot, Vec<QueueLag>) {
    for us in shard.store.take_sync_samples() {
        shard.metrics.record(Op::Flush, Duration::from_micros(us as u64));
    }
    let timer = shard
        .timer
        .stats(shard.store.max_offset(crate::store::SCHEDULE_TOPIC, 0));
    let (open_count, open) = shard.tx.list(100);
    let (committed, rolled_back) = shard.tx.counts();
    let replica = shard.store.replica_status();
    let controller_mode = shard.cfg.enable_controller_mode;
    let gauges = Gauges {
        scheduled_messages: timer.scheduled,
        scheduled_next_due_ms: timer.next_due,
        scheduled_delivered: timer.delivered,
        open_transactions: open_count as u64,
        transactions_committed: committed,
        transactions_rolled_back: rolled_back,
        long_poll_waiters: shard.pulls.held() as u64,
        pop_in_flight: shard.pops.in_flight() as u64,
        pop_waiters: shard.pops.polls.held() as u64,
        cache_memory_bytes: shard.store.memory_used() as u64,
        queues: shard.store.queue_count() as u64,
        log_write_offset: shard.store.write_log_offset(),
        log_flushed_offset: shard.store.flushed_log_offset(),
        disk_full: shard.store.is_disk_full() as u64,
        forced_segment_deletions: shard.store.forced_deletions(),
        read_only_reason: shard.store.read_only().map(|(r, _)| r.as_str().to_string()),
        slaves_in_sync: replica.map(|(n, _)| n as u64),
        replicated_offset: replica.map(|(_, end)| end),
        is_master: controller_mode.then(|| shard.role.is_master() as u64),
        master_epoch: controller_mode.then(|| shard.role.epoch() as u64),
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
    let mut snap = shard.metrics.snapshot(shard.id, gauges);
    snap.details = ShardDetails {
        scheduled_topics: timer.topics,
        open_transactions: open
            .into_iter()
            .map(|t| OpenTransaction {
                producer_group: t.group,
                half_offset: t.half_offset,
                age_ms: t.age_ms,
                checks: t.checks,
            })
            .collect(),
    };
    (snap, lag)
}

/// GET_BROKER_STATS: every shard's snapshot and backlog, merged.
pub async fn handle(shard: &Rc<Shard>, cmd: RemotingCommand) -> Option<RemotingCommand> {
    let stats = collect(shard).await;
    match serde_json::to_vec(&stats) {
        Ok(b) => Some(RemotingCommand::response_to(&cmd, response::SUCCESS, None).with_body(b)),
        Err(e) => error(&cmd, response::SYSTEM_ERROR, e.to_string()),
    }
}

/// Gathers every shard's snapshot and backlog (this shard's directly,
/// the others' over the mesh), and the controller's inconsistent groups.
pub async fn collect(shard: &Rc<Shard>) -> BrokerStats {
    let mut stats = BrokerStats::default();
    for k in 0..shard.shard_count() {
        let (snap, lag) = if k == shard.id {
            shard_snapshot(shard)
        } else {
            match shard.ask(k, Request::Stats).await {
                Some(Reply::Stats(snap, lag)) => (*snap, lag),
                Some(_) => {
                    log::error!("{}", unexpected("Stats"));
                    continue;
                }
                None => continue,
            }
        };
        stats.shards.push(snap);
        stats.lag.extend(lag);
    }
    stats.inconsistent_groups = match &shard.controller {
        Some(c) => c.inconsistent_groups(),
        None => match shard.ask(0, Request::InconsistentGroups).await {
            Some(Reply::Groups(g)) => g,
            _ => Vec::new(),
        },
    };
    stats
        .lag
        .sort_by(|a, b| (&a.group, &a.topic, a.queue_id).cmp(&(&b.group, &b.topic, b.queue_id)));
    // The alert engine runs on shard 0 (which serves /metrics too).
    if shard.id == 0 {
        stats.alerts = shard.alert_status.borrow().clone();
    }
    stats
}
