//! GET_BROKER_RUNTIME_INFO: the broker's (or one shard entry's) figures as
//! the Java broker's key/value table.

use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::protocol::bodies::{JsonBody, KvTable};
use crate::protocol::codes::request;
use crate::protocol::RemotingCommand;
use crate::runtime::mesh::{ClientRef, View};

use crate::broker::shard::Shard;

use super::{ok_body, BOOT};

/// GET_BROKER_RUNTIME_INFO. On a shard port (the broker entry
/// `<brokerName>-s<k>` clients and `cluster list` see) the figures are that
/// shard's alone, so that the entries of one broker add up to its total; on
/// the main port they are the whole broker's.
pub(super) async fn runtime_info(
    shard: &Rc<Shard>,
    cmd: RemotingCommand,
    client: &ClientRef,
) -> Option<RemotingCommand> {
    let mut stats = crate::broker::stats::collect(shard).await;
    let scope = match client.view {
        View::Shard(k) => {
            stats.shards.retain(|s| s.shard == k);
            let meta = shard.meta();
            stats
                .lag
                .retain(|l| meta.topic(&l.topic).and_then(|t| t.owner(l.queue_id)) == Some(k));
            k.to_string()
        }
        View::Main => "all".to_string(),
    };
    let sum_codes = |codes: &[i32]| -> u64 {
        stats
            .shards
            .iter()
            .flat_map(|s| codes.iter().filter_map(|c| s.counters.requests_by_code.get(c)))
            .sum()
    };
    let puts = sum_codes(&[
        request::SEND_MESSAGE,
        request::SEND_MESSAGE_V2,
        request::SEND_BATCH_MESSAGE,
    ]);
    let gets = sum_codes(&[request::PULL_MESSAGE, request::LITE_PULL_MESSAGE]);
    let boot = BOOT.get().copied().unwrap_or_else(SystemTime::now);
    let boot_ms = boot.duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    let up = SystemTime::now().duration_since(boot).map(|d| d.as_secs()).unwrap_or(0);
    let mut t = std::collections::BTreeMap::new();
    let mut put = |k: &str, v: String| {
        t.insert(k.to_string(), v);
    };
    put("brokerVersionDesc", "V5_3_3".into());
    put("brokerVersion", crate::protocol::version::CURRENT.to_string());
    put("brokerImplementation", format!("shardmq {}", env!("CARGO_PKG_VERSION")));
    put("brokerActive", "true".into());
    put("bootTimestamp", boot_ms.to_string());
    put(
        "runtime",
        format!(
            "[ {} days, {} hours, {} minutes, {} seconds ]",
            up / 86400,
            up / 3600 % 24,
            up / 60 % 60,
            up % 60
        ),
    );
    put("shardCount", shard.shard_count().to_string());
    put("shardScope", scope);
    // Since start-up, one per send request (a batch counts once).
    put("msgPutTotalTodayNow", puts.to_string());
    put("msgGetTotalTodayNow", gets.to_string());
    put(
        "commitLogMaxOffset",
        stats
            .shards
            .iter()
            .map(|s| s.gauges.log_write_offset)
            .sum::<u64>()
            .to_string(),
    );
    put(
        "queueCount",
        stats.shards.iter().map(|s| s.gauges.queues).sum::<u64>().to_string(),
    );
    put(
        "connectionsOpen",
        stats
            .shards
            .iter()
            .map(|s| s.counters.connections_open)
            .sum::<u64>()
            .to_string(),
    );
    put(
        "consumerLagTotal",
        stats.lag.iter().map(|l| l.lag()).sum::<u64>().to_string(),
    );
    let root = shard.cfg.store_path_root_dir.clone();
    if let Some(r) = crate::runtime::blocking::run(move || disk_ratio(&root)).await {
        put("commitLogDiskRatio", format!("{r:.4}"));
    }
    ok_body(&cmd, KvTable { table: t }.encode())
}

/// Used fraction of the file system holding `dir`, counted as df(1)
/// counts it ([`crate::store::retention::FsSpace`]). Blocking (statvfs):
/// shards call it through [`crate::runtime::blocking::run`].
fn disk_ratio(dir: &std::path::Path) -> Option<f64> {
    crate::store::retention::FsSpace::of(dir).ok().map(|s| s.used_ratio())
}
