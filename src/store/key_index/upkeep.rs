//! Upkeep of the runs: expiry below the log's minimum offset and merges
//! of contiguous runs of one size class.

use std::rc::Rc;

use super::run::{self, Run, RunWriter};
use super::{IndexEntry, KeyIndex};
use crate::store::error::StoreError;

impl KeyIndex {
    /// Deletes runs wholly below `log_min` and forgets gaps there.
    pub async fn expire(&self, log_min: u64) -> Result<usize, StoreError> {
        let dead: Vec<Rc<Run>> = {
            let mut runs = self.runs.borrow_mut();
            let n = runs.partition_point(|r| r.to <= log_min);
            runs.drain(..n).collect()
        };
        {
            let mut gaps = self.gaps.borrow_mut();
            for g in gaps.iter_mut() {
                g.0 = g.0.max(log_min);
            }
            gaps.retain(|g| g.0 < g.1);
        }
        for r in &dead {
            glommio::io::remove(&r.path)
                .await
                .map_err(|e| StoreError::glommio(format_args!("remove {}", r.path.display()), e))?;
        }
        Ok(dead.len())
    }

    /// Merges [`FAN_IN`] or more contiguous runs of one size class (the
    /// newest such group; catch-up runs sit anywhere); returns whether it
    /// merged (call again: merges cascade).
    pub async fn merge_once(&self) -> Result<bool, StoreError> {
        let inputs: Vec<Rc<Run>> = {
            let runs = self.runs.borrow();
            match mergeable(&runs) {
                Some(range) => runs[range].to_vec(),
                None => return Ok(false),
            }
        };
        let (from, to) = (inputs[0].from, inputs[inputs.len() - 1].to);
        let mut w = RunWriter::create(&self.dir, from, to, self.faults.clone()).await?;
        let mut cursors: Vec<run::Cursor> = inputs.iter().map(|r| r.cursor()).collect();
        let merged: Result<(), StoreError> = async {
            loop {
                let mut best: Option<(usize, IndexEntry)> = None;
                for (i, c) in cursors.iter_mut().enumerate() {
                    if let Some(e) = c.peek().await? {
                        if best.is_none_or(|(_, b)| (e.hash, e.pos) < (b.hash, b.pos)) {
                            best = Some((i, e));
                        }
                    }
                }
                let Some((i, e)) = best else { return Ok(()) };
                cursors[i].advance();
                w.push(e).await?;
            }
        }
        .await;
        if let Err(e) = merged {
            w.abandon().await;
            return Err(e);
        }
        let out = Rc::new(w.finish(from, to).await?);
        {
            let mut runs = self.runs.borrow_mut();
            let Some(at) = runs.iter().position(|r| Rc::ptr_eq(r, &inputs[0])) else {
                return Err(StoreError::Glommio("key index: merged runs vanished".into()));
            };
            runs.splice(at..at + inputs.len(), [out]);
        }
        for r in &inputs {
            glommio::io::remove(&r.path)
                .await
                .map_err(|e| StoreError::glommio(format_args!("remove {}", r.path.display()), e))?;
        }
        Ok(true)
    }
}

impl KeyIndex {
    /// Holds off memtable flushes and upkeep (catch-up, merges, expiry)
    /// while the permits live (`MessageStore::truncate_log`).
    pub async fn pause(&self) -> Result<(glommio::sync::Permit<'_>, glommio::sync::Permit<'_>), StoreError> {
        let err = |e| StoreError::Glommio(format!("key index: {e}"));
        let upkeep = self.upkeep.acquire_permit(1).await.map_err(err)?;
        let flushing = self.flushing.acquire_permit(1).await.map_err(err)?;
        Ok((upkeep, flushing))
    }

    /// Forgets every entry of records at or after log offset `to` (the log
    /// is cut there; call with [`Self::pause`]'s permits held): memtable
    /// entries are dropped, gaps clipped, and each run reaching past `to`
    /// is rewritten as the run of `[from, to)` (or deleted when it starts
    /// at or after `to`), the new file durable before the old one is
    /// deleted. Returns the runs rewritten or deleted.
    pub async fn cut(&self, to: u64) -> Result<usize, StoreError> {
        if !self.cfg.enabled {
            return Ok(0);
        }
        {
            let mut mem = self.mem.borrow_mut();
            let keep = mem.entries.partition_point(|e| e.pos < to);
            mem.entries.truncate(keep);
            mem.from = mem.from.min(to);
            if mem.full_at.is_some_and(|p| p >= to) {
                mem.full_at = None;
            }
            if mem.entries.is_empty() {
                mem.since = None;
            }
        }
        {
            let mut gaps = self.gaps.borrow_mut();
            for g in gaps.iter_mut() {
                g.1 = g.1.min(to);
            }
            gaps.retain(|g| g.0 < g.1);
        }
        let doomed: Vec<Rc<Run>> = self.runs.borrow().iter().filter(|r| r.to > to).cloned().collect();
        for old in &doomed {
            let new = if old.from < to {
                let mut w = RunWriter::create(&self.dir, old.from, to, self.faults.clone()).await?;
                let mut c = old.cursor();
                let copied: Result<(), StoreError> = async {
                    while let Some(e) = c.peek().await? {
                        c.advance();
                        if e.pos < to {
                            w.push(e).await?;
                        }
                    }
                    Ok(())
                }
                .await;
                if let Err(e) = copied {
                    w.abandon().await;
                    return Err(e);
                }
                Some(Rc::new(w.finish(old.from, to).await?))
            } else {
                None
            };
            {
                let mut runs = self.runs.borrow_mut();
                if let Some(at) = runs.iter().position(|r| Rc::ptr_eq(r, old)) {
                    match new {
                        Some(n) => runs[at] = n,
                        None => {
                            runs.remove(at);
                        }
                    }
                }
            }
            glommio::io::remove(&old.path)
                .await
                .map_err(|e| StoreError::glommio(format_args!("remove {}", old.path.display()), e))?;
        }
        if !doomed.is_empty() {
            crate::store::segment::sync_dir(&self.dir).await?;
        }
        Ok(doomed.len())
    }
}

/// Runs merged at once, at least and at most.
const FAN_IN: usize = 4;
const MAX_FAN_IN: usize = 8;

/// The newest group of at least [`FAN_IN`] (at most [`MAX_FAN_IN`])
/// adjacent runs (each ends where the next begins) of one size class.
fn mergeable(runs: &[Rc<Run>]) -> Option<std::ops::Range<usize>> {
    let mut end = runs.len();
    while end >= FAN_IN {
        let class = size_class(runs[end - 1].entries);
        let mut start = end - 1;
        while start > 0
            && end - start < MAX_FAN_IN
            && runs[start - 1].to == runs[start].from
            && size_class(runs[start - 1].entries) == class
        {
            start -= 1;
        }
        if end - start >= FAN_IN {
            return Some(start..end);
        }
        // Too few: try the group before this one.
        end = start;
    }
    None
}

/// Size classes: up to 16 Ki entries, then ×4 each.
fn size_class(entries: u64) -> u32 {
    let mut c = 0;
    let mut limit = 16 * 1024;
    while entries > limit {
        c += 1;
        limit *= 4;
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes_grow_by_four() {
        assert_eq!(size_class(0), 0);
        assert_eq!(size_class(16 * 1024), 0);
        assert_eq!(size_class(16 * 1024 + 1), 1);
        assert_eq!(size_class(64 * 1024), 1);
        assert_eq!(size_class(64 * 1024 + 1), 2);
    }
}
