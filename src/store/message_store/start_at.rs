//! A new slave's log starting where its master's retained log starts
//! ([`MessageStore::start_log_at`]).
//!
//! A master deletes its oldest segments by retention. A slave that joins
//! later — a new replica, one whose disk was replaced — cannot copy what
//! is gone, so its log starts at the master's oldest retained segment `to`
//! instead of at 0: the same offsets as the master's from there on, so
//! message ids, physical offsets and queue offsets still mean the same on
//! both. Each consume queue starts at the queue offset of its first
//! replicated record (replica dispatch takes the record's own offset).
//!
//! Only a store that never held a record moves (an empty log — `[0, 0)`,
//! or `[m, m)` after an earlier move — and no consume queue): one that
//! holds records below `to` would keep a hole in its log; the slave
//! refuses to follow and says how to rebuild it.
//!
//! # Steps, in this order
//!
//! 1. Checks that change nothing: a slave's store, not stopping or failed,
//!    never written, `to` a segment base past the log's end.
//! 2. Appends refused, the checkpoint turn taken, and the preparer quiet
//!    (as for a truncation): no segment file appears behind our back.
//! 3. Every segment file (empty, prepared ahead) is unlinked, the
//!    directory synced.
//! 4. A checkpoint at `log_pos = log_min = to`, no queues.
//! 5. In memory: every CommitLog position and the oldest retained offset
//!    become `to`; the preparer creates segment `to`.
//!
//! # Crash safety
//!
//! Until step 4 the stored checkpoint (if any) is at the old start: with
//! no segment file left recovery starts a new log there — the empty store
//! of before, which moves again on the next handshake. After step 4 and before segment `to`
//! exists, recovery finds no segment and starts the new log at the
//! checkpoint's `to`; afterwards it finds segment `to`, empty, and the
//! checkpoint at its base. No step leaves records behind, because there
//! were none.

use crate::store::checkpoint::Checkpoint;
use crate::store::error::StoreError;
use crate::store::segment;

use super::truncate::{remove_segment_file, Hold};
use super::MessageStore;

fn refused(what: String) -> StoreError {
    StoreError::Refused(format!("start_log_at: {what}"))
}

impl MessageStore {
    /// Moves a slave's empty store to start its log at segment base `to`
    /// (see the module docs of `start_at`); durable when it returns.
    /// Refused, nothing changed, when the store is not a slave's, is
    /// stopping or failed, ever held a record, or `to` is not a segment
    /// base past the log's end.
    pub async fn start_log_at(&self, to: u64) -> Result<(), StoreError> {
        let inner = &*self.inner;
        let log = inner.log.clone();
        let seg_size = log.segment_size();
        if inner.slave_of.borrow().is_none() {
            return Err(refused("the store is not a slave's (set_slave_of first)".into()));
        }
        if inner.stopping.get() {
            return Err(refused("the store is shutting down".into()));
        }
        if let Some(f) = log.failure() {
            return Err(refused(format!("the CommitLog failed: {f}")));
        }
        let never_written = || log.write_pos() == log.min_offset() && inner.queues.borrow().queues.is_empty();
        if !never_written() {
            return Err(refused(format!(
                "the store holds log [{}, {}) and {} queue(s): only an empty store moves",
                log.min_offset(),
                log.write_pos(),
                self.queue_count()
            )));
        }
        if to <= log.write_pos() || to % seg_size != 0 {
            return Err(refused(format!(
                "log offset {to} is not a segment base past the log's end {} (segment size {seg_size})",
                log.write_pos()
            )));
        }
        let mut hold = Hold::refuse_appends(inner);
        hold.take_checkpoint_turn().await;
        inner.log.preparer_quiet().await;
        if !never_written() {
            return Err(refused("the store took records meanwhile".into()));
        }
        let done = async {
            let bases = log.segment_bases();
            for base in &bases {
                if let Some(seg) = log.segment_at(*base) {
                    remove_segment_file(&seg).await?;
                }
            }
            segment::sync_dir(log.dir()).await?;
            let ckpt = Checkpoint {
                log_pos: to,
                log_min: to,
                queues: Vec::new(),
            };
            ckpt.store(&inner.cfg.dir, &inner.cfg.faults).await?;
            *inner.last_checkpoint.borrow_mut() = None;
            // The preparer (woken) creates segment `to`; appends wait for
            // it as for any segment (`ReserveError::Busy`).
            drop(log.restart_empty_at(to));
            Ok::<usize, StoreError>(bases.len())
        };
        match done.await {
            Ok(removed) => {
                log::warn!(
                    "shard {}: the CommitLog starts at log offset {to} (the master's oldest retained segment); \
                     {removed} empty segment file(s) removed",
                    self.shard()
                );
                Ok(())
            }
            Err(e) => {
                log.fail_truncation(format!(
                    "moving the empty CommitLog to {to} failed midway (restart to recover): {e}"
                ));
                Err(e)
            }
        }
    }
}
