//! Opening a store: recovery of the CommitLog, the checkpoint's queue
//! offsets (or a rebuild of every consume queue when it is unusable), the
//! key index, and the first checkpoint before the store serves.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use crate::store::checkpoint::Checkpoint;
use crate::store::commit_log::{CommitLog, SharedDiskUsage};
use crate::store::config::StoreConfig;
use crate::store::cq_files::CqFiles;
use crate::store::error::StoreError;
use crate::store::notify::Notify;
use crate::store::recovery::{self, RecoveryReport};
use crate::store::retention;

use super::dispatch::dispatch_recovered;
use super::{Inner, MessageStore, QueueTable};

impl MessageStore {
    /// Opens (creating if needed) the store in `cfg.dir`, recovers it, and
    /// starts its background tasks on the current executor.
    ///
    /// A checkpoint that fails validation, points below the oldest segment,
    /// or disagrees with a record of the log is discarded (logged as an
    /// error, listed in the report's problems, `report.rebuilt` set) and
    /// every consume queue is rebuilt from the oldest segment; queues the
    /// retained log no longer mentions keep the discarded checkpoint's max
    /// offset. When segments were deleted after the stored checkpoint, the
    /// queue minimums are advanced before the store opens.
    pub async fn open(cfg: StoreConfig) -> Result<(MessageStore, RecoveryReport), StoreError> {
        cfg.validate()?;
        let log_dir = cfg.dir.join("commitlog");
        let cq_dir = cfg.dir.join("consumequeue");
        for d in [&cfg.dir, &log_dir, &cq_dir] {
            std::fs::create_dir_all(d).map_err(|e| StoreError::io(d, e))?;
        }
        crate::store::crypt::check_and_record(&cfg.dir, cfg.encryption.as_deref()).map_err(StoreError::Config)?;
        crate::runtime::prime_dma_probe(&cfg.dir)
            .await
            .map_err(|e| StoreError::io(&cfg.dir, e))?;
        let mut problems = Vec::new();
        let mut ckpt = match Checkpoint::load(&cfg.dir) {
            Ok(c) => c,
            Err(e) => {
                log::error!("{e}; rebuilding every consume queue from the CommitLog");
                problems.push(e.to_string());
                None
            }
        };
        if let Some(c) = &ckpt {
            if let Err(why) = validate_checkpoint(c, cfg.segment_size) {
                log::error!(
                    "shard {}: checkpoint unusable ({why}); rebuilding every consume queue from the oldest CommitLog segment",
                    cfg.shard_id
                );
                problems.push(format!("checkpoint unusable: {why}"));
                ckpt = None;
            }
        }
        let shard = cfg.shard_id;
        // The checkpoint that was discarded, if any: its queues keep their
        // offsets when the retained log no longer holds any of their records.
        let mut discarded: Option<Checkpoint> = None;
        let (recovered, table, used_ckpt) = loop {
            let mut table = QueueTable::default();
            if let Some(c) = &ckpt {
                for m in &c.queues {
                    let i = table.get_or_create(&m.topic, m.queue_id, m.max_offset);
                    table.queues[i].min_offset = m.min_offset.min(m.max_offset);
                }
            }
            let rebuilding = ckpt.is_none();
            let params = recovery::ScanParams {
                shard,
                segment_size: cfg.segment_size,
                max_record_size: cfg.max_record_size,
                checkpoint: ckpt.as_ref().map(|c| c.log_pos),
                faults: cfg.faults.clone(),
            };
            let mut skipped = Vec::new();
            let ring = cfg.encryption.clone();
            let mut opened = Vec::new();
            let outcome = recovery::recover(&log_dir, params, |v, pos| {
                let props = crate::store::record::properties_of(ring.as_deref(), shard, v, &mut opened)
                    .map_err(recovery::Refusal::Fatal)?;
                dispatch_recovered(&mut table, v, props, pos, rebuilding, &mut skipped)
            })
            .await?;
            problems.extend(skipped);
            match outcome {
                recovery::Recovery::Recovered(r) => break (r, table, ckpt),
                recovery::Recovery::CheckpointRejected { at, why } => {
                    log::error!(
                        "shard {shard}: the checkpoint disagrees with the CommitLog at log offset {at} ({why}); \
                         discarding it and REBUILDING every consume queue from the oldest segment \
                         (no record is truncated for this)"
                    );
                    problems.push(format!("checkpoint rejected at log offset {at}: {why}"));
                    discarded = ckpt.take();
                }
            }
        };
        let mut table = table;
        if let Some(old) = &discarded {
            // Queues the retained log no longer mentions keep their offsets
            // (empty, min = max), so that new messages do not reuse them.
            for m in &old.queues {
                if table.find(&m.topic, m.queue_id).is_none() {
                    let i = table.get_or_create(&m.topic, m.queue_id, m.max_offset);
                    table.queues[i].min_offset = m.max_offset;
                }
            }
        }
        let mut report = recovered.report;
        report.rebuilt = discarded.is_some();
        report.problems.extend(problems);
        let end = recovered.end;
        let log = CommitLog::new(&cfg, log_dir, recovered.segments, end);
        log.seed_tail(end, &recovered.tail_block);
        log.prepare_active().await?;
        // Retention may delete a segment only once a stored checkpoint lies
        // past it; without one, recovery would scan from the oldest segment.
        log.set_checkpointed(used_ckpt.as_ref().map_or(0, |c| c.log_pos));
        let stale_minimums = used_ckpt.as_ref().is_some_and(|c| log.min_offset() > c.log_min);
        let cq_files = CqFiles::new(cq_dir, cfg.cq_entries_per_file, shard, cfg.faults.clone());
        let disk: SharedDiskUsage = Rc::new(RefCell::new(Box::new(retention::StatVfs::new(cfg.dir.clone()))));
        log.set_space_check(disk.clone(), cfg.disk_max_used_ratio);
        let index = crate::store::key_index::KeyIndex::open(
            cfg.dir.join("index"),
            cfg.key_index.clone(),
            cfg.faults.clone(),
            log.min_offset(),
            end,
        )
        .await?;
        let inner = Rc::new(Inner {
            log: Rc::new(log),
            queues: RefCell::new(table),
            cq_files,
            disk_full: Cell::new(false),
            disk: disk.clone(),
            forced_deletions: Cell::new(0),
            scratch: RefCell::new(Vec::with_capacity(64 * 1024)),
            stopping: Cell::new(false),
            stop_signal: Notify::default(),
            tasks: RefCell::new(Vec::new()),
            periodic: RefCell::new(Vec::new()),
            last_checkpoint: RefCell::new(None),
            checkpoint_busy: Cell::new(false),
            checkpoint_done: Notify::default(),
            checkpoints_stopped: RefCell::new(None),
            pins: [Cell::new(u64::MAX), Cell::new(u64::MAX)],
            replica_gate: RefCell::new(None),
            wait_for_replica: Cell::new(false),
            slave_of: RefCell::new(None),
            write_lease: RefCell::new(None),
            index,
            cfg,
        });
        let store = MessageStore { inner };
        if stale_minimums {
            // Segments were deleted after the checkpoint was stored: its
            // queue minimums point into them.
            retention::advance_queue_minimums(&store).await;
        }
        // A new store writes its first checkpoint before it is open, so that
        // a data directory that cannot take one fails the start instead of
        // every second afterwards. An existing store opens regardless (on
        // a full disk it still serves what it holds).
        if let Err(e) = store.checkpoint().await {
            if used_ckpt.is_none() && end == 0 {
                return Err(e);
            }
            log::error!("shard {shard}: cannot write a checkpoint at open: {e}");
        }
        store.start_tasks();
        log::info!(
            "shard {} store open at {}: log [{}, {}), {} queues, {} records re-dispatched",
            shard,
            store.inner.cfg.dir.display(),
            store.inner.log.min_offset(),
            end,
            store.queue_count(),
            report.records
        );
        Ok((store, report))
    }
}

/// Sanity checks of a loaded checkpoint that need no disk access.
fn validate_checkpoint(c: &Checkpoint, segment_size: u64) -> Result<(), String> {
    if c.log_min % segment_size != 0 {
        return Err(format!(
            "log_min {} is not a segment boundary (segment size {segment_size})",
            c.log_min
        ));
    }
    if c.log_min > c.log_pos {
        return Err(format!("log_min {} lies above log_pos {}", c.log_min, c.log_pos));
    }
    if let Some(m) = c.queues.iter().find(|m| m.min_offset > m.max_offset) {
        return Err(format!(
            "queue {}/{} has min offset {} above its max {}",
            m.topic, m.queue_id, m.min_offset, m.max_offset
        ));
    }
    Ok(())
}
