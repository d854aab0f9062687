//! Group commit: the writer and syncer tasks of the pipeline described
//! in the module above, the deadline ticker, and the future an appender
//! awaits until its record is durable.

use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_lite::future;

use super::super::config::FlushMode;
use super::super::error::StoreError;
use super::super::segment::{align_down, align_up, Segment, MAX_IO};
use super::{CommitLog, Durability};

impl CommitLog {
    /// Waits until everything below `end` is durable, the deadline passes,
    /// or the flusher fails. The waiter is queued by `end` and woken once,
    /// when a sync covers it (see [`super::durable_wait`]).
    pub fn wait_durable(&self, end: u64, deadline: Instant) -> WaitDurable<'_> {
        WaitDurable {
            log: self,
            end,
            deadline,
            slot: None,
        }
    }

    /// Durability waiters queued now (tests and probes).
    pub fn durability_waiters(&self) -> usize {
        self.waiters.len()
    }

    /// Wakes the durability waiters whose deadline has passed, every
    /// `tick` — also while a flush hangs, and during the final flush at
    /// shutdown, which is why this runs until it is cancelled.
    pub async fn run_timeout_ticker(self: Rc<Self>, tick: Duration) {
        loop {
            glommio::timer::sleep(tick).await;
            self.waiters.wake_expired(Instant::now());
        }
    }

    /// The writer half of group commit: writes what is appended (SYNC:
    /// at once; ASYNC: on the size or time trigger) and hands it to the
    /// syncer ([`run_syncer`](Self::run_syncer)). Group N+1 is written
    /// while group N syncs, but never more than one group ahead: each
    /// sync then covers everything that arrived during the previous one.
    /// Runs until shutdown, then writes what is left.
    ///
    /// A write that fails for lack of space (ENOSPC, a short write) stalls
    /// the log: appends are refused, and the write is retried with backoff
    /// (from the last completed write, so whatever part landed is
    /// overwritten) until it succeeds. Any other failure — every failed
    /// fdatasync above all — is final: after a failed fdatasync nobody
    /// knows what reached the disk, and a retry that succeeds would prove
    /// nothing (fsyncgate), so nothing is acknowledged any more until a
    /// restart recovers from what the disk really holds.
    pub async fn run_flusher(self: Rc<Self>) {
        let mut last_write = Instant::now();
        let mut backoff = STALL_BACKOFF_MIN;
        loop {
            if self.failed.borrow().is_some() {
                break;
            }
            let seen = self.dirty.generation();
            let seen_sync = self.sync_progress.generation();
            let target = self.write_pos();
            let pending = target - self.written.get();
            let stopping = self.shutting_down.get();
            let due = match self.mode {
                FlushMode::Sync => pending > 0,
                FlushMode::Async => {
                    pending >= self.async_flush_bytes
                        || (pending > 0 && last_write.elapsed() >= self.async_flush_interval)
                }
            };
            if due || (stopping && pending > 0) {
                if self.written.get() > self.sync_taken.get() {
                    // A written group waits for the running sync: write
                    // the next one when the syncer takes that one.
                    self.sync_progress.changed_since(seen_sync).await;
                    continue;
                }
                match self.write_to(target).await {
                    Ok(()) => {
                        if let Some(why) = self.write_stall.borrow_mut().take() {
                            log::warn!("CommitLog writes resumed after: {why}");
                        }
                        backoff = STALL_BACKOFF_MIN;
                        last_write = Instant::now();
                    }
                    Err(e) if e.is_no_space() => {
                        log::error!("CommitLog write failed, refusing appends and retrying in {backoff:?}: {e}");
                        *self.write_stall.borrow_mut() = Some(e.to_string());
                        glommio::timer::sleep(backoff).await;
                        backoff = (backoff * 2).min(STALL_BACKOFF_MAX);
                    }
                    Err(e) => {
                        self.fail(format!("{e}"));
                        break;
                    }
                }
                continue;
            }
            if stopping {
                break;
            }
            match self.mode {
                FlushMode::Sync => self.dirty.changed_since(seen).await,
                FlushMode::Async => {
                    let wait = self.async_flush_interval.saturating_sub(last_write.elapsed());
                    let wait = if pending == 0 { self.async_flush_interval } else { wait };
                    future::or(self.dirty.changed_since(seen), glommio::timer::sleep(wait)).await;
                }
            }
        }
        self.writer_done.set(true);
        self.wrote.notify_all();
    }

    /// The sync half of group commit: fdatasyncs the segments written since
    /// the last sync, then publishes `flushed` and wakes exactly the
    /// waiters it covers. One sync runs at a time; the writer fills the
    /// next group meanwhile. Ends when the writer has ended and everything
    /// it wrote is synced (or at the first failure).
    pub async fn run_syncer(self: Rc<Self>) {
        loop {
            if self.failed.borrow().is_some() {
                return;
            }
            let seen = self.wrote.generation();
            let upto = self.written.get();
            if upto > self.flushed.get() {
                let segments = std::mem::take(&mut *self.unsynced.borrow_mut());
                self.sync_taken.set(upto);
                self.sync_progress.notify_all();
                let t = Instant::now();
                let syncs = futures::future::join_all(segments.iter().map(|s| s.sync())).await;
                if let Some(Err(e)) = syncs.into_iter().find(Result::is_err) {
                    self.fail(format!("{e}"));
                    return;
                }
                {
                    let mut probe = self.probe.borrow_mut();
                    probe.flushes += 1;
                    if probe.sync_micros.len() < 1 << 16 {
                        probe
                            .sync_micros
                            .push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    }
                }
                debug_assert!(upto >= self.flushed.get());
                self.flushed.set(upto);
                self.waiters.wake_covered(upto);
                self.durable_progress.notify_all();
                continue;
            }
            if self.writer_done.get() {
                return;
            }
            self.wrote.changed_since(seen).await;
        }
    }

    /// Makes a write or sync failure final: nothing is acknowledged any
    /// more, every waiter learns it, and both flusher halves stop.
    pub(super) fn fail(&self, why: String) {
        log::error!("CommitLog flush failed, refusing further appends until a restart: {why}");
        *self.failed.borrow_mut() = Some(why);
        self.waiters.wake_all();
        self.sync_progress.notify_all();
        self.wrote.notify_all();
        self.dirty.notify_all();
    }

    /// Writes `[written, target)` (from the block holding `written`, whose
    /// partial tail is rewritten), publishing progress as it goes: the
    /// segments that exist are written at once and handed to the syncer
    /// before the writer waits for the next segment to be prepared — a
    /// sealed segment's records never wait for the preparer.
    async fn write_to(&self, target: u64) -> Result<(), StoreError> {
        while self.written.get() < target {
            let from = self.written.get();
            let mut pos = align_down(from);
            let mut writes = Vec::new();
            let mut touched: Vec<Rc<Segment>> = Vec::new();
            let mut written = 0u64;
            let mut reached = from;
            while pos < target {
                let seg = match self.segment_at(pos) {
                    Some(s) => s,
                    None if touched.is_empty() => self.wait_segment(pos).await?,
                    None => break, // write what is ready first
                };
                let data_end = if target <= seg.end() {
                    target
                } else {
                    self.state
                        .borrow()
                        .cache
                        .data_end_below(seg.end())
                        .unwrap_or(seg.base)
                        .max(pos)
                };
                let end = align_up(data_end).min(seg.end());
                let st = self.state.borrow();
                let mut p = pos;
                while p < end {
                    let n = ((end - p) as usize).min(MAX_IO);
                    let mut buf = seg.file.alloc_dma_buffer(n);
                    st.cache.copy_for_flush(p, buf.as_bytes_mut());
                    writes.push((seg.clone(), p, buf));
                    written += n as u64;
                    p += n as u64;
                }
                drop(st);
                touched.push(seg.clone());
                pos = if target > seg.end() { seg.end() } else { target };
                reached = pos;
            }
            let results =
                futures::future::join_all(writes.into_iter().map(|(s, p, b)| async move { s.write(p, b).await })).await;
            // A retry can fix a full disk only: any other failed write
            // makes the failure final.
            let mut failure: Option<StoreError> = None;
            for r in results {
                if let Err(e) = r {
                    if failure.as_ref().is_none_or(|f| f.is_no_space()) {
                        failure = Some(e);
                    }
                }
            }
            if let Some(e) = failure {
                return Err(e);
            }
            self.probe.borrow_mut().bytes_written += written;
            debug_assert!(reached >= self.written.get());
            {
                let mut unsynced = self.unsynced.borrow_mut();
                for seg in touched {
                    if !unsynced.iter().any(|s| Rc::ptr_eq(s, &seg)) {
                        unsynced.push(seg);
                    }
                }
            }
            self.written.set(reached);
            self.wrote.notify_all();
        }
        Ok(())
    }
}

/// Backoff of a flusher stalled on a full disk.
const STALL_BACKOFF_MIN: Duration = Duration::from_millis(10);
const STALL_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The future of [`CommitLog::wait_durable`].
pub struct WaitDurable<'a> {
    log: &'a CommitLog,
    end: u64,
    deadline: Instant,
    /// The waiter's id in the queue once registered.
    slot: Option<u64>,
}

impl std::future::Future for WaitDurable<'_> {
    type Output = Durability;
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Durability> {
        let log = self.log;
        let outcome = if log.flushed.get() >= self.end {
            Some(Durability::Durable)
        } else if let Some(f) = log.failed.borrow().as_ref() {
            Some(Durability::Failed(f.clone()))
        } else if Instant::now() >= self.deadline {
            Some(Durability::TimedOut)
        } else {
            None
        };
        if let Some(d) = outcome {
            log.waiters.forget(self.slot.take(), self.end);
            return std::task::Poll::Ready(d);
        }
        let (end, deadline) = (self.end, self.deadline);
        log.waiters.register(&mut self.slot, end, deadline, cx.waker());
        std::task::Poll::Pending
    }
}

impl Drop for WaitDurable<'_> {
    fn drop(&mut self) {
        self.log.waiters.forget(self.slot.take(), self.end);
    }
}
