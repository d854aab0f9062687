//! Writing runs: the memtable's durable prefix flushed as a run, and the
//! runs of gaps indexed from the CommitLog.

use std::rc::Rc;
use std::time::{Duration, Instant};

use super::run::{Run, RunWriter};
use super::{IndexEntry, KeyIndex};
use crate::store::commit_log::CommitLog;
use crate::store::error::StoreError;

impl KeyIndex {
    /// Writes the memtable's entries of durable records as a run when it
    /// is due (size or age, or full) or `force`d (shutdown). A failure
    /// keeps them for the next call. The sort runs on the executor's
    /// blocking thread: a few million entries would hold the shard for a
    /// while.
    pub async fn flush(&self, log: &CommitLog, force: bool) -> Result<(), StoreError> {
        let _turn = self
            .flushing
            .acquire_permit(1)
            .await
            .map_err(|e| StoreError::Glommio(format!("key index flush: {e}")))?;
        let durable = log.flushed();
        let (from, to, batch) = {
            let mem = self.mem.borrow();
            let to = mem.full_at.map_or(durable, |p| p.min(durable));
            let n = mem.entries.partition_point(|e| e.pos < to);
            let due = force
                || mem.full_at.is_some()
                || n >= self.cfg.flush_entries
                || mem.since.is_some_and(|t| t.elapsed() >= self.cfg.flush_interval);
            if !due || n == 0 || to <= mem.from {
                return Ok(());
            }
            (mem.from, to, mem.entries[..n].to_vec())
        };
        let n = batch.len();
        let batch = crate::runtime::blocking::run(move || {
            let mut b = batch;
            b.sort_unstable_by_key(|e| (e.hash, e.pos));
            b
        })
        .await;
        match self.write_run(from, to, &batch).await {
            Ok(run) => {
                let mut mem = self.mem.borrow_mut();
                mem.entries.drain(..n);
                // A burst's capacity is given back once written out.
                let keep = (mem.entries.len() * 2).max(self.cfg.flush_entries);
                if mem.entries.capacity() > 2 * keep {
                    mem.entries.shrink_to(keep);
                }
                mem.from = to;
                mem.since = (!mem.entries.is_empty()).then(Instant::now);
                if mem.full_at == Some(to) && mem.entries.is_empty() {
                    // Written out since it filled up: every record since
                    // then is a gap; the memtable goes on from the end.
                    let end = log.write_pos();
                    mem.full_at = None;
                    mem.from = end;
                    self.gaps.borrow_mut().push((to, end));
                }
                self.runs.borrow_mut().push(Rc::new(run));
                Ok(())
            }
            Err(e) => {
                self.flush_failures.set(self.flush_failures.get() + 1);
                let quiet = self
                    .last_error_log
                    .get()
                    .is_some_and(|t| t.elapsed() < Duration::from_secs(60));
                if !quiet {
                    self.last_error_log.set(Some(Instant::now()));
                    log::error!(
                        "key index: cannot write the run of log [{from}, {to}) ({n} entries kept in memory, retried): {e}"
                    );
                }
                Err(e)
            }
        }
    }

    async fn write_run(&self, from: u64, to: u64, sorted: &[IndexEntry]) -> Result<Run, StoreError> {
        let mut w = RunWriter::create(&self.dir, from, to, self.faults.clone()).await?;
        for e in sorted {
            if let Err(err) = w.push(*e).await {
                w.abandon().await;
                return Err(err);
            }
        }
        w.finish(from, to).await
    }

    /// The next gap to index from the CommitLog, if any.
    pub fn next_gap(&self) -> Option<(u64, u64)> {
        self.gaps.borrow().first().copied()
    }

    /// Indexes `[from, to)` of a gap with `sorted` entries: writes the run
    /// and shrinks the gap.
    pub async fn fill_gap(&self, from: u64, to: u64, mut entries: Vec<IndexEntry>) -> Result<(), StoreError> {
        entries.sort_unstable_by_key(|e| (e.hash, e.pos));
        let run = self.write_run(from, to, &entries).await?;
        let mut runs = self.runs.borrow_mut();
        let at = runs.partition_point(|r| r.from < from);
        runs.insert(at, Rc::new(run));
        let mut gaps = self.gaps.borrow_mut();
        if let Some(g) = gaps.iter_mut().find(|g| g.0 == from) {
            g.0 = to;
        }
        gaps.retain(|g| g.0 < g.1);
        Ok(())
    }
}
