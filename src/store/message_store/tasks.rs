//! The store's background tasks (flusher, syncer, preparer, checkpointer,
//! retention, write state, key index), checkpoints, and shutdown.

use std::time::{Duration, Instant};

use crate::store::checkpoint::{Checkpoint, QueueMark};
use crate::store::commit_log::Durability;
use crate::store::error::StoreError;
use crate::store::retention;

use super::{Inner, MessageStore};

impl MessageStore {
    pub(super) fn start_tasks(&self) {
        use glommio::{Latency, Shares};
        let bg = glommio::executor().create_task_queue(Shares::Static(100), Latency::NotImportant, "store-background");
        let log = self.inner.log.clone();
        let mut tasks = self.inner.tasks.borrow_mut();
        tasks.push(glommio::spawn_local(log.clone().run_flusher()).detach());
        tasks.push(glommio::spawn_local(log.clone().run_syncer()).detach());
        tasks.push(glommio::spawn_local(log.clone().run_timeout_ticker(Duration::from_millis(50))).detach());
        let spawn_bg = |f: std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>| {
            glommio::spawn_local_into(f, bg)
                .map(|t| t.detach())
                .unwrap_or_else(|_| glommio::spawn_local(async {}).detach())
        };
        tasks.push(spawn_bg(Box::pin(log.run_preparer())));
        let mut periodic = self.inner.periodic.borrow_mut();
        let me = self.clone();
        periodic.push(spawn_bg(Box::pin(async move { me.run_checkpointer().await })));
        let me = self.clone();
        periodic.push(spawn_bg(Box::pin(async move { retention::run(me).await })));
        periodic.push(spawn_bg(Box::pin(self.clone().watch_write_state())));
        if self.inner.index.enabled() {
            periodic.push(spawn_bg(Box::pin(self.clone().run_key_index())));
            periodic.push(spawn_bg(Box::pin(self.clone().run_key_index_flusher())));
        }
    }

    /// Sleeps for `d`, or less if the store begins to shut down.
    pub(in crate::store) async fn sleep_unless_stopping(&self, d: Duration) {
        let seen = self.inner.stop_signal.generation();
        if self.inner.stopping.get() {
            return;
        }
        futures_lite::future::or(glommio::timer::sleep(d), self.inner.stop_signal.changed_since(seen)).await;
    }

    /// Writes consume-queue entries behind the CommitLog and records a
    /// checkpoint once they are durable.
    ///
    /// Checkpoints are serialised: a second call (the periodic one, the one
    /// at shutdown, one taken by retention) waits for the running one, so a
    /// stored checkpoint always pairs `log_pos` with the queue marks of the
    /// same moment and `written` only moves forward. Files and directories
    /// written stay on the dirty list until a checkpoint that synced them
    /// has been stored, so a checkpoint that fails midway loses nothing.
    ///
    /// A failed write (a full disk) is retried by the next checkpoint; a
    /// failed fdatasync of consume-queue files stops checkpoints until a
    /// restart: the kernel may have dropped the entries it could not write
    /// back and would let the next fdatasync succeed without them
    /// (fsyncgate), so no later checkpoint could vouch for those files.
    /// The stored checkpoint stays the last good one; a restart rebuilds
    /// the queues from it, and retention waits for it.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        let _turn = self.checkpoint_turn().await;
        if let Some(why) = self.inner.checkpoints_stopped.borrow().as_ref() {
            return Err(StoreError::Glommio(format!(
                "checkpoints stopped until a restart: syncing consume-queue files failed: {why}"
            )));
        }
        let durable = self.inner.log.flushed();
        let keep = self.inner.cfg.cq_mem_entries;
        let n = self.inner.queues.borrow().queues.len();
        for i in 0..n {
            let (topic, qid, from, entries) = {
                let queues = self.inner.queues.borrow();
                let q = &queues.queues[i];
                if q.written == q.max_offset {
                    continue;
                }
                let (from, v) = q.unwritten_below(durable);
                (q.topic.clone(), q.queue_id, from, v)
            };
            if entries.is_empty() {
                continue;
            }
            self.inner.cq_files.write(&topic, qid, from, &entries).await?;
            let mut queues = self.inner.queues.borrow_mut();
            queues.queues[i].mark_written(from + entries.len() as u64, keep);
        }
        let log_min = self.inner.log.min_offset();
        let sig = (durable, log_min, n);
        let dirty = self.inner.cq_files.dirty();
        if dirty.is_empty() && *self.inner.last_checkpoint.borrow() == Some(sig) {
            return Ok(());
        }
        if let Err(e) = self.inner.cq_files.sync_dirty(&dirty).await {
            log::error!(
                "shard {}: consume-queue fdatasync failed, no further checkpoint until a restart \
                 (the last stored one stays; restart the broker to rebuild the queues from it): {e}",
                self.shard()
            );
            *self.inner.checkpoints_stopped.borrow_mut() = Some(e.to_string());
            return Err(e);
        }
        let ckpt = {
            let queues = self.inner.queues.borrow();
            Checkpoint {
                log_pos: durable,
                log_min,
                queues: queues
                    .queues
                    .iter()
                    .map(|q| QueueMark {
                        topic: q.topic.to_string(),
                        queue_id: q.queue_id,
                        min_offset: q.min_offset.min(q.written),
                        max_offset: q.written,
                    })
                    .collect(),
            }
        };
        ckpt.store(&self.inner.cfg.dir, &self.inner.cfg.faults).await?;
        self.inner.cq_files.clear_dirty(&dirty);
        self.inner.log.set_checkpointed(durable);
        *self.inner.last_checkpoint.borrow_mut() = Some(sig);
        Ok(())
    }

    /// Waits until no other checkpoint runs and takes the turn; the turn
    /// is released when the guard drops (also on error or cancellation).
    async fn checkpoint_turn(&self) -> CheckpointTurn<'_> {
        loop {
            let seen = self.inner.checkpoint_done.generation();
            if !self.inner.checkpoint_busy.get() {
                self.inner.checkpoint_busy.set(true);
                return CheckpointTurn(&self.inner);
            }
            self.inner.checkpoint_done.changed_since(seen).await;
        }
    }

    async fn run_checkpointer(&self) {
        while !self.inner.stopping.get() {
            self.sleep_unless_stopping(self.inner.cfg.checkpoint_interval).await;
            if self.inner.stopping.get() {
                break;
            }
            if let Err(e) = self.checkpoint().await {
                log::error!("shard {} checkpoint failed: {e}", self.shard());
            }
        }
    }

    /// Stops the checkpointer and retention (awaiting the pass in
    /// progress), flushes everything, writes a final checkpoint and stops
    /// the remaining tasks.
    pub async fn shutdown(&self) -> Result<(), StoreError> {
        self.inner.stopping.set(true);
        self.inner.stop_signal.notify_all();
        let periodic = std::mem::take(&mut *self.inner.periodic.borrow_mut());
        for t in periodic {
            t.await;
        }
        self.inner.log.begin_shutdown();
        let end = self.inner.log.write_pos();
        // Bounded: a log that cannot be written (no segment, a hung device)
        // must not hold the process forever; the caller reports what is left.
        let deadline = Instant::now() + FINAL_FLUSH_TIMEOUT;
        let flushed = self.inner.log.wait_durable(end, deadline).await;
        let res = self.checkpoint().await;
        // The key index's last entries (an error is logged; the next open
        // indexes them from the log).
        let _ = self.inner.index.flush(&self.inner.log, true).await;
        self.inner.log.stop_preparer();
        let tasks = std::mem::take(&mut *self.inner.tasks.borrow_mut());
        for t in tasks {
            t.cancel();
        }
        match flushed {
            Durability::Durable => res,
            Durability::TimedOut => Err(StoreError::Glommio(format!(
                "final flush timed out after {FINAL_FLUSH_TIMEOUT:?}: {} bytes not durable{}",
                end.saturating_sub(self.inner.log.flushed()),
                self.inner
                    .log
                    .prepare_error()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            ))),
            Durability::Failed(e) => Err(StoreError::Glommio(format!("final flush failed: {e}"))),
        }
    }
}

/// How long shutdown waits for the last flush.
pub const FINAL_FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// The turn of the running checkpoint; dropping it lets the next one run.
struct CheckpointTurn<'a>(&'a Inner);

impl Drop for CheckpointTurn<'_> {
    fn drop(&mut self) {
        self.0.checkpoint_busy.set(false);
        self.0.checkpoint_done.notify_all();
    }
}
