//! Cutting a demoted master's log back to the new master's
//! ([`MessageStore::truncate_log`]).
//!
//! A broker that was master and now follows another may hold a log tail
//! its new master never had. Before it replicates again its log must be a
//! prefix of the new master's: everything from the new master's log end
//! for that epoch (`to`, a record boundary) on goes, from the CommitLog
//! and from everything indexed from it.
//!
//! # Preconditions
//!
//! * The store is a slave's ([`MessageStore::set_slave_of`]): puts are
//!   refused. Otherwise the call is refused.
//! * The caller has stopped its replication stream. The CommitLog also
//!   refuses every reservation while the truncation runs (a `replicate`
//!   that races it gets `Replicate::Partly(0)`, a put `SERVICE_NOT_AVAILABLE`),
//!   and the truncation first waits (at most [`FLUSH_WAIT`]) until
//!   everything appended is durable.
//!
//! # Steps, in this order
//!
//! 1. Checks that change nothing: `to` below the log end (else a no-op),
//!    not below the oldest retained segment, and a record boundary (the
//!    records are walked from the segment base, or from the nearest record
//!    a consume queue holds in memory, each checked at its offset).
//! 2. A normal checkpoint: every consume-queue entry is written behind and
//!    synced, so the queue files hold every entry below the cut.
//! 3. With the checkpoint turn and the key index's flush and upkeep held:
//!    each queue's cut (its first entry whose record lies at or after
//!    `to`, found by binary search in memory and files).
//! 4. Key index: memtable entries at or after `to` dropped, gaps clipped,
//!    each run reaching past `to` rewritten as the run of `[from, to)`
//!    (durable) before the old file is deleted.
//! 5. A checkpoint at `log_pos = to` whose queue marks are the cuts.
//! 6. In memory: CommitLog positions (write, written, durable) become
//!    `to`, the tail cache drops what lies at or after it; every queue is cut (pulls, offsets and `max_offset`
//!    see the shortened queues at once). Marks are mark queues, cut alike.
//! 7. On disk: the block holding `to` is rewritten with its prefix and
//!    zeros and fdatasynced; the rest of the segment is punched out and
//!    re-allocated (reads as zeros) and synced; later segments are deleted
//!    and the directory synced, then they leave the log's map (until then
//!    the preparer sees them present and cannot reopen their files).
//! 8. Consume-queue files: the slots from the cut are zeroed and synced,
//!    files wholly past it deleted.
//!
//! # Crash safety
//!
//! Up to step 5 the stored checkpoint is the one of step 2 and the log is
//! intact: a restart recovers the old log; key-index ranges whose run was
//! clipped or deleted are gaps at open and indexed again from the log.
//! After step 5 and before the block holding `to` is zeroed, recovery
//! scans the intact log from `to` and re-dispatches its tail with exactly
//! the queue offsets it had (the checkpoint's marks are the cuts): the old
//! log again. Once that block is zeroed and synced, recovery from `to`
//! finds no record there: the log ends at `to` (bytes still after it in
//! the segment are cleared as a torn tail; later segments still holding
//! data are moved aside as `.corrupt-*`, never read), the queues are the
//! checkpoint's cuts, and stale consume-queue slots past a queue's max
//! are never read and are overwritten by the next entries. The key index
//! never holds a run reaching past `to` at that point (step 4 came first),
//! so no future run can be mistaken as covered by a stale one.
//!
//! Key lookups additionally verify every candidate against the record
//! stored at its offset (topic, key, store time, size; only durable
//! records): an entry that survived anyway can never return a removed
//! record, and one whose offset now holds a new record returns it only if
//! that record has the key.
//!
//! A failure before step 4 changes nothing and is returned. A failure
//! from step 4 on leaves memory and disk apart: the CommitLog is failed
//! (it refuses appends, like after a failed fdatasync) and a restart
//! recovers the old or the truncated log as above.

use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::store::checkpoint::{Checkpoint, QueueMark};
use crate::store::commit_log::Durability;
use crate::store::error::StoreError;
use crate::store::position::{LogOffset, PhysicalOffset};
use crate::store::record::{be_u32, check_record, RecordCheck, BLANK_SIZE, MAGIC_BLANK};
use crate::store::segment::{self, align_down, Segment, ALIGN};

use super::{Inner, MessageStore};

/// What [`MessageStore::truncate_log`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Truncated {
    /// Log bytes cut (old log end − `to`).
    pub removed_bytes: u64,
    /// Segment files deleted (those after the one holding `to`).
    pub removed_segments: usize,
    /// Consume queues (marks included) that lost entries.
    pub queues_cut: usize,
    /// Key-index runs rewritten or deleted.
    pub index_runs_cut: usize,
}

/// How long a truncation waits for the appended log to become durable.
pub const FLUSH_WAIT: Duration = Duration::from_secs(10);

/// Bytes read at once while walking records to `to`.
const WALK_WINDOW: usize = 1 << 20;

/// One queue losing entries: (index in the table, cut, old max offset).
type Cut = (usize, u64, u64);

/// Releases what a truncation (or a [`MessageStore::start_log_at`]) holds:
/// the CommitLog's refusal of reservations and, once taken, the
/// checkpoint turn.
pub(super) struct Hold<'a> {
    inner: &'a Inner,
    turn: bool,
}

impl<'a> Hold<'a> {
    /// Makes the CommitLog refuse every reservation until dropped.
    pub(super) fn refuse_appends(inner: &'a Inner) -> Hold<'a> {
        inner.log.set_truncating(true);
        Hold { inner, turn: false }
    }

    /// Waits for the checkpoint turn and keeps it until dropped: no
    /// periodic checkpoint runs meanwhile.
    pub(super) async fn take_checkpoint_turn(&mut self) {
        let inner = self.inner;
        loop {
            let seen = inner.checkpoint_done.generation();
            if !inner.checkpoint_busy.get() {
                inner.checkpoint_busy.set(true);
                self.turn = true;
                return;
            }
            inner.checkpoint_done.changed_since(seen).await;
        }
    }
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        self.inner.log.set_truncating(false);
        if self.turn {
            self.inner.checkpoint_busy.set(false);
            self.inner.checkpoint_done.notify_all();
        }
    }
}

fn refused(what: String) -> StoreError {
    StoreError::Refused(what)
}

impl MessageStore {
    /// Cuts the log back to log offset `to` (a record boundary), and every
    /// index with it; durable when it returns. See the module docs of
    /// `truncate` for preconditions, steps and crash safety. `to` at or
    /// past the log end: nothing to do. Refused (nothing changed) when the
    /// store is not a slave's, is stopping or failed, or `to` is below the
    /// oldest retained segment or not a record boundary.
    pub async fn truncate_log(&self, to: u64) -> Result<Truncated, StoreError> {
        let inner = &*self.inner;
        let log = inner.log.clone();
        if inner.slave_of.borrow().is_none() {
            return Err(refused(
                "truncate_log: the store is not a slave's (set_slave_of first: puts must be refused)".into(),
            ));
        }
        if inner.stopping.get() {
            return Err(refused("truncate_log: the store is shutting down".into()));
        }
        if let Some(f) = log.failure() {
            return Err(refused(format!("truncate_log: the CommitLog failed: {f}")));
        }
        if to >= log.write_pos() {
            return Ok(Truncated::default());
        }
        if to < log.min_offset() {
            return Err(refused(format!(
                "truncate_log: log offset {to} is below the oldest retained segment {}",
                log.min_offset()
            )));
        }
        let mut hold = Hold::refuse_appends(inner);
        let end = log.write_pos();
        match log.wait_durable(end, Instant::now() + FLUSH_WAIT).await {
            Durability::Durable => {}
            d => {
                return Err(refused(format!(
                    "truncate_log: the log up to {end} is not durable ({d:?})"
                )))
            }
        }
        self.check_boundary(to).await?;
        self.checkpoint().await?;
        let _index_paused = inner.index.pause().await?;
        hold.take_checkpoint_turn().await;
        inner.log.preparer_quiet().await;
        if log.write_pos() != end || log.flushed() != end || to < log.min_offset() {
            return Err(refused(format!(
                "truncate_log: the log changed meanwhile (end {end} → {}, oldest {})",
                log.write_pos(),
                log.min_offset()
            )));
        }
        let cuts = self.queue_cuts(to).await?;
        let block = align_down(to);
        let tail_block = if block < to {
            log.read(block, (to - block) as usize).await?
        } else {
            Vec::new()
        };
        match self.cut_everything(to, end, &cuts, &tail_block).await {
            Ok(t) => {
                log::warn!(
                    "shard {}: CommitLog truncated from {end} to {to}: {} segments deleted, {} queues cut, {} key-index runs rewritten",
                    self.shard(),
                    t.removed_segments,
                    t.queues_cut,
                    t.index_runs_cut
                );
                Ok(t)
            }
            Err(e) => {
                log.fail_truncation(format!(
                    "truncating the CommitLog from {end} to {to} failed midway (restart to recover): {e}"
                ));
                Err(e)
            }
        }
    }

    /// Whether `to` is where a record starts (or its segment begins):
    /// walks the records from the segment base, or from the nearest record
    /// below `to` a consume queue holds in memory, checking each at its
    /// offset. Everything below the log end is durable here.
    async fn check_boundary(&self, to: u64) -> Result<(), StoreError> {
        let log = self.log();
        let size = log.segment_size();
        let base = to - to % size;
        if log.segment_at(to).is_none() {
            return Err(refused(format!("truncate_log: no segment holds log offset {to}")));
        }
        let mut at = base;
        for q in self.inner.queues.borrow().queues.iter() {
            if let Some(e) = q.mem.iter().rev().find(|e| e.pos <= to) {
                if e.pos >= at {
                    at = e.pos;
                }
            }
        }
        let not_boundary =
            |why: String| refused(format!("truncate_log: log offset {to} is not a record boundary: {why}"));
        let mut win: Vec<u8> = Vec::new();
        let mut win_at = at;
        let covered =
            |win: &Vec<u8>, win_at: u64, p: u64, n: usize| p >= win_at && p + n as u64 <= win_at + win.len() as u64;
        while at < to {
            if to - at < BLANK_SIZE as u64 {
                return Err(not_boundary(format!("it lies inside the record at {at}")));
            }
            if !covered(&win, win_at, at, BLANK_SIZE) {
                win = log.read(at, ((to - at) as usize).min(WALK_WINDOW)).await?;
                win_at = at;
            }
            let off = (at - win_at) as usize;
            let (Some(total), Some(magic)) = (be_u32(&win, off), be_u32(&win, off + 4)) else {
                return Err(not_boundary(format!("no record header at {at}")));
            };
            if magic == MAGIC_BLANK {
                return Err(not_boundary(format!(
                    "it lies in the unused tail after the BLANK at {at}"
                )));
            }
            let total = total as usize;
            if total < BLANK_SIZE || at + total as u64 > to {
                return Err(not_boundary(format!(
                    "it lies inside the record at {at} ({total} bytes)"
                )));
            }
            if !covered(&win, win_at, at, total) {
                win = log.read(at, total.max(((to - at) as usize).min(WALK_WINDOW))).await?;
                win_at = at;
            }
            let off = (at - win_at) as usize;
            let phys = PhysicalOffset::new(self.shard(), LogOffset(at)).0;
            match check_record(&win[off..off + total], Some(phys), false) {
                RecordCheck::Record(v) if v.total_size as usize == total => {}
                other => {
                    let why = match other {
                        RecordCheck::Invalid(w) => w,
                        _ => "not a whole record",
                    };
                    return Err(not_boundary(format!("the record at {at} is invalid ({why})")));
                }
            }
            at += total as u64;
        }
        Ok(())
    }

    /// Each queue's first offset whose record lies at or after `to`, for
    /// the queues that have one. Every entry must be written behind (the
    /// checkpoint just taken did that).
    async fn queue_cuts(&self, to: u64) -> Result<Vec<Cut>, StoreError> {
        let n = self.inner.queues.borrow().queues.len();
        let mut cuts = Vec::new();
        for i in 0..n {
            let (topic, qid, lo, hi, written) = {
                let t = self.inner.queues.borrow();
                let q = &t.queues[i];
                (q.topic.clone(), q.queue_id, q.min_offset, q.max_offset, q.written)
            };
            if written != hi {
                return Err(refused(format!(
                    "truncate_log: consume queue {topic}/{qid} is not written behind ({written} of {hi})"
                )));
            }
            if lo >= hi || self.entry_pos(i, &topic, qid, hi - 1).await? < to {
                continue;
            }
            // pos(b) >= to throughout; the cut lies in [a, b].
            let (mut a, mut b) = (lo, hi - 1);
            while a < b {
                let m = a + (b - a) / 2;
                if self.entry_pos(i, &topic, qid, m).await? >= to {
                    b = m;
                } else {
                    a = m + 1;
                }
            }
            cuts.push((i, a, hi));
        }
        Ok(cuts)
    }

    /// Log offset of the record of entry `offset` of queue `i`.
    async fn entry_pos(&self, i: usize, topic: &str, qid: u32, offset: u64) -> Result<u64, StoreError> {
        let mem = self.inner.queues.borrow().queues[i].get(offset);
        if let Some(e) = mem {
            return Ok(e.pos);
        }
        let v = self.inner.cq_files.read(topic, qid, offset, 1).await?;
        v.first().map(|e| e.pos).ok_or_else(|| StoreError::Corrupt {
            path: self.inner.cq_files.queue_dir(topic, qid),
            what: format!("consume-queue entry {offset} is not in its file"),
        })
    }

    /// Steps 4 to 8 of the module docs; an error leaves memory and disk
    /// apart (the caller fails the log).
    async fn cut_everything(
        &self,
        to: u64,
        end: u64,
        cuts: &[Cut],
        tail_block: &[u8],
    ) -> Result<Truncated, StoreError> {
        let inner = &*self.inner;
        let log = &inner.log;
        let index_runs_cut = inner.index.cut(to).await?;
        let ckpt = {
            let t = inner.queues.borrow();
            Checkpoint {
                log_pos: to,
                log_min: log.min_offset(),
                queues: t
                    .queues
                    .iter()
                    .enumerate()
                    .map(|(i, q)| {
                        let max = cuts.iter().find(|c| c.0 == i).map_or(q.written, |c| c.1);
                        QueueMark {
                            topic: q.topic.to_string(),
                            queue_id: q.queue_id,
                            min_offset: q.min_offset.min(max),
                            max_offset: max,
                        }
                    })
                    .collect(),
            }
        };
        ckpt.store(&inner.cfg.dir, &inner.cfg.faults).await?;
        *inner.last_checkpoint.borrow_mut() = None;
        let later = log.cut_back(to, tail_block);
        {
            let mut t = inner.queues.borrow_mut();
            for &(i, cut, _) in cuts {
                t.queues[i].cut(cut);
            }
        }
        let seg = log.segment_at(to).ok_or_else(|| StoreError::Corrupt {
            path: log.dir().to_path_buf(),
            what: format!("no segment holds log offset {to}"),
        })?;
        zero_from(&seg, to, tail_block).await?;
        drop(seg);
        let removed_segments = later.len();
        for s in &later {
            remove_segment_file(s).await?;
        }
        segment::sync_dir(log.dir()).await?;
        log.forget_segments_after(to);
        drop(later); // the last holders close the files
        for &(i, cut, old_max) in cuts {
            let (topic, qid) = {
                let t = inner.queues.borrow();
                (t.queues[i].topic.clone(), t.queues[i].queue_id)
            };
            inner.cq_files.cut(&topic, qid, cut, old_max).await?;
        }
        Ok(Truncated {
            removed_bytes: end - to,
            removed_segments,
            queues_cut: cuts.len(),
            index_runs_cut,
        })
    }
}

/// Makes `[to, segment end)` of `seg` zeros, durably: first the block
/// holding `to`, rewritten with its valid `prefix` and synced on its own
/// (from then on no record starts at `to`), then the rest punched out and
/// allocated again, and synced.
async fn zero_from(seg: &Segment, to: u64, prefix: &[u8]) -> Result<(), StoreError> {
    let block = align_down(to);
    debug_assert_eq!(block + prefix.len() as u64, to);
    let mut buf = seg.file.alloc_dma_buffer(ALIGN as usize);
    buf.as_bytes_mut().fill(0);
    buf.as_bytes_mut()[..prefix.len()].copy_from_slice(prefix);
    seg.write(block, buf).await?;
    seg.sync().await?;
    let rest = block + ALIGN;
    if rest < seg.end() {
        let err = |e| StoreError::glommio(format_args!("{}", seg.path.display()), e);
        seg.file
            .deallocate(rest - seg.base, seg.end() - rest)
            .await
            .map_err(err)?;
        seg.file.pre_allocate(seg.size, false).await.map_err(err)?;
        seg.sync().await?;
    }
    Ok(())
}

/// Unlinks the file of a segment after the cut. It stays in the log's map
/// until all are unlinked (so the preparer cannot reopen the old file);
/// glommio closes it when its last holder drops it.
pub(super) async fn remove_segment_file(seg: &Rc<Segment>) -> Result<(), StoreError> {
    match crate::runtime::blocking::remove_file(&seg.path).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StoreError::io(&seg.path, e)),
        _ => Ok(()),
    }
}
