//! The CommitLog's segment files: the preparer that keeps the next
//! segment ready (checking disk use first), the wait for it, and the
//! deletion of the oldest one (retention).

use std::rc::Rc;
use std::time::{Duration, Instant};

use super::super::error::StoreError;
use super::super::segment::{self, Segment};
use super::{CommitLog, SharedDiskUsage};

impl CommitLog {
    /// Makes the preparer check disk use before allocating a segment.
    pub fn set_space_check(&self, disk: SharedDiskUsage, max_used_percent: u8) {
        *self.space.borrow_mut() = Some((disk, max_used_percent));
    }

    /// Why the next segment must not be allocated now, if it must not,
    /// and whether that is for lack of space (true) or a failed measure.
    fn space_refusal(&self) -> Option<(bool, String)> {
        let (disk, max) = self.space.borrow().clone()?;
        let after = disk.borrow().used_percent_after(self.segment_size);
        match after {
            Ok(after) if after > max => Some((
                true,
                format!(
                    "the disk would be {after}% used with another {} MiB segment, above diskMaxUsedSpaceRatio {max}%",
                    self.segment_size >> 20
                ),
            )),
            Ok(_) => None,
            Err(e) => Some((false, format!("cannot measure disk use: {e}"))),
        }
    }

    /// Removes the oldest segment (retention). Refuses the active segment,
    /// anything not yet flushed, and any segment ending above the `log_pos`
    /// of the last stored checkpoint (recovery would need it).
    ///
    /// The file is closed before it is unlinked (after waiting, briefly,
    /// for readers still holding it), so that its space is free when this
    /// returns and a disk-full loop that measures again sees it.
    pub async fn delete_oldest(&self) -> Result<Option<u64>, StoreError> {
        let Some(base) = self.segments.borrow().keys().next().copied() else {
            return Ok(None);
        };
        let end = base + self.segment_size;
        if end > self.flushed.get() || base >= self.active_base() || end > self.checkpointed.get() {
            return Ok(None);
        }
        let Some(mut seg) = self.segments.borrow_mut().remove(&base) else {
            return Ok(None);
        };
        self.min_offset.set(end);
        let path = seg.path.clone();
        let deadline = Instant::now() + Duration::from_secs(2);
        let file = loop {
            match Rc::try_unwrap(seg) {
                Ok(s) => break Rc::try_unwrap(s.file).ok(),
                Err(s) if Instant::now() >= deadline => {
                    log::warn!(
                        "CommitLog segment {} still in use after 2 s; unlinking it open (its space is freed later)",
                        path.display()
                    );
                    drop(s);
                    break None;
                }
                Err(s) => {
                    seg = s;
                    glommio::timer::sleep(Duration::from_millis(1)).await;
                }
            }
        };
        if let Some(f) = file {
            if let Err(e) = f.close().await {
                log::warn!("closing {} before deleting it: {e}", path.display());
            }
        }
        crate::runtime::blocking::remove_file(&path)
            .await
            .map_err(|e| StoreError::io(&path, e))?;
        segment::sync_dir(&self.dir).await?;
        Ok(Some(base))
    }

    /// Stops the preparer; call after the flusher has finished.
    pub fn stop_preparer(&self) {
        self.stop_preparer.set(true);
        self.rolled.notify_all();
    }

    /// Prepares the active segment if it does not exist yet (a new store, or
    /// one that crashed right after a roll). Called before the store says
    /// it is open: a store that cannot create its first file must fail to
    /// start rather than accept appends it can never write.
    pub async fn prepare_active(&self) -> Result<(), StoreError> {
        let base = self.active_base();
        if self.segments.borrow().contains_key(&base) {
            return Ok(());
        }
        let seg = segment::prepare(&self.dir, base, self.segment_size, self.pre_zero, self.faults.clone()).await?;
        self.segments.borrow_mut().insert(base, Rc::new(seg));
        Ok(())
    }

    /// Keeps the segment after the active one prepared. Runs until shutdown.
    pub async fn run_preparer(self: Rc<Self>) {
        let mut backoff = Duration::from_millis(10);
        while !self.stop_preparer.get() {
            let seen = self.rolled.generation();
            // Every segment from the flushed position to one past the active
            // one: appends may have rolled over several small segments
            // before this task got to run.
            let active = self.active_base();
            let first = align_down_to(self.flushed.get(), self.segment_size);
            let mut wanted = (first..=active + self.segment_size).step_by(self.segment_size as usize);
            let missing = wanted.find(|b| !self.segments.borrow().contains_key(b));
            let Some(base) = missing else {
                self.rolled.changed_since(seen).await;
                continue;
            };
            if self.truncating.get() {
                // The segments are being removed or cut: a file created
                // now could outlive them (`set_truncating(false)` wakes).
                self.rolled.changed_since(seen).await;
                continue;
            }
            self.preparing.set(true);
            let prepared = match self.space_refusal() {
                Some(refusal) => Err(refusal),
                None => segment::prepare(&self.dir, base, self.segment_size, self.pre_zero, self.faults.clone())
                    .await
                    .map_err(|e| (false, e.to_string())),
            };
            self.preparing.set(false);
            match prepared {
                Ok(seg) => {
                    self.segments.borrow_mut().insert(base, Rc::new(seg));
                    *self.prepare_error.borrow_mut() = None;
                    self.refusing.set(false);
                    backoff = Duration::from_millis(10);
                    self.prepared.notify_all();
                }
                Err((for_space, e)) => {
                    self.prepared.notify_all();
                    log::error!("cannot prepare CommitLog segment {base}: {e}; retrying in {backoff:?}");
                    self.prepare_refused_for_space.set(for_space);
                    *self.prepare_error.borrow_mut() = Some(e);
                    glommio::timer::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    /// Waits until the preparer creates no segment file, and (with
    /// `set_truncating(true)`, which the caller holds) creates none until
    /// it is cleared: the segment map and the directory then change only
    /// by the caller.
    pub(in crate::store) async fn preparer_quiet(&self) {
        debug_assert!(self.truncating.get());
        loop {
            let seen = self.prepared.generation();
            if !self.preparing.get() {
                return;
            }
            self.prepared.changed_since(seen).await;
        }
    }

    pub(super) async fn wait_segment(&self, pos: u64) -> Result<Rc<Segment>, StoreError> {
        loop {
            let seen = self.prepared.generation();
            if let Some(s) = self.segment_at(pos) {
                return Ok(s);
            }
            if self.stop_preparer.get() {
                let why = self
                    .prepare_error
                    .borrow()
                    .clone()
                    .unwrap_or_else(|| "store stopped".into());
                return Err(StoreError::Glommio(format!("no segment for log offset {pos}: {why}")));
            }
            self.rolled.notify_all();
            self.prepared.changed_since(seen).await;
        }
    }
}

pub(super) fn align_down_to(v: u64, size: u64) -> u64 {
    v - v % size
}
