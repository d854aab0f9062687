//! Retention and disk-space protection.
//!
//! Every `clean_interval` the task
//! * measures disk use; above `diskMaxUsedSpaceRatio` appends are refused
//!   (SERVICE_NOT_AVAILABLE with the reason) and resume by themselves once
//!   use is below the ratio again. Only with `diskFullPolicy=deleteOldest`
//!   are the oldest segments then deleted even if not expired (each
//!   deletion logged as an error and counted): by default nothing is
//!   deleted before `fileReservedTime`, consumed or not;
//! * between passes the write path checks too: the segment preparer
//!   measures before allocating each new segment and refuses one that
//!   would take use above the ratio, which refuses the appends that need
//!   it (see `CommitLog::reserve`) — space is claimed a segment at a time,
//!   so this is where a full disk is caught early;
//! * deletes segments whose newest message is older than
//!   `fileReservedTime` (judged by the file's modification time, as
//!   RocketMQ does), oldest first, never the active segment, and never
//!   one holding a log offset at or above the store's pin (the broker's
//!   timer pins its oldest undelivered scheduled record: a 30-day delay
//!   outlives a 72-hour retention);
//! * never deletes a segment that recovery could still need: one ending
//!   above the `log_pos` of the last checkpoint stored on disk. When only
//!   that stands in the way, it takes a checkpoint first;
//! * closes a segment's file before unlinking it, so the disk-full loop
//!   measures the space actually freed and deletes no more than needed;
//! * after a deletion, moves each queue's min offset past entries that
//!   pointed into deleted segments and removes consume-queue files that
//!   hold only such entries. The same runs at open when segments were
//!   deleted after the stored checkpoint (its minimums are stale then). A
//!   queue whose files cannot be read is skipped (and logged), not the
//!   whole pass.
//!
//! Nothing here blocks the shard: `statvfs`, the `stat` for a segment's
//! mtime and the consume-queue directory listing and unlinks run on the
//! executor's blocking thread, the segment unlink through
//! `glommio::io::remove` ([`crate::runtime::blocking`]). The segment
//! preparer's own `statvfs` before each allocation
//! (`CommitLog::space_refusal`) is still synchronous.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::config::DiskFullPolicy;
use super::error::StoreError;
use super::message_store::MessageStore;

/// Disk usage in percent of the filesystem holding the store.
pub trait DiskUsage {
    fn used_percent(&self) -> Result<u8, StoreError> {
        self.used_percent_after(0)
    }
    /// Use in percent once `extra` more bytes are allocated.
    fn used_percent_after(&self, extra: u64) -> Result<u8, StoreError>;
    /// A copy that may run on another thread, when measuring makes a
    /// system call (the shard then measures on its blocking thread, see
    /// [`used_percent`]). In-memory probes (tests) return None.
    fn detached(&self) -> Option<Box<dyn DiskUsage + Send>> {
        None
    }
}

/// Disk use now, without blocking the shard: `statvfs` runs on the
/// executor's blocking thread.
pub(super) async fn used_percent(store: &MessageStore) -> Result<u8, StoreError> {
    let detached = store.inner.disk.borrow().detached();
    match detached {
        Some(probe) => crate::runtime::blocking::run(move || probe.used_percent()).await,
        None => store.inner.disk.borrow().used_percent(),
    }
}

pub struct StatVfs {
    dir: PathBuf,
}

impl StatVfs {
    pub fn new(dir: PathBuf) -> StatVfs {
        StatVfs { dir }
    }
}

impl DiskUsage for StatVfs {
    fn detached(&self) -> Option<Box<dyn DiskUsage + Send>> {
        Some(Box::new(StatVfs { dir: self.dir.clone() }))
    }

    fn used_percent_after(&self, extra: u64) -> Result<u8, StoreError> {
        let space = FsSpace::of(&self.dir).map_err(|e| StoreError::io(&self.dir, e))?;
        Ok(space.used_percent_after(extra))
    }
}

/// The space of one file system, counted as df(1) and RocketMQ
/// (`UtilAll.getDiskPartitionSpaceUsedPercent`) count it: *used* is
/// `f_blocks - f_bfree`, *usable* is `f_bavail`, and use is
/// `used / (used + usable)`. Blocks reserved for root, or withheld by the
/// host (some virtual disks report a size far beyond `used + avail`), are
/// outside both, so a file system reads 100 % exactly when nothing more
/// can be written. (Counting `1 - f_bavail / f_blocks` instead read such a
/// disk as 87 % used where df said 66 %, and refused appends on a disk
/// with tens of GiB free.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsSpace {
    pub used: u128,
    pub usable: u128,
}

impl FsSpace {
    /// `statvfs` of the file system holding `dir`. Blocking.
    pub fn of(dir: &std::path::Path) -> std::io::Result<FsSpace> {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "path contains NUL"))?;
        let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
        // SAFETY: `c` is a valid NUL-terminated path and `st` points to
        // writable memory of the right type; statvfs only writes into it.
        let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: statvfs returned 0, so it initialised the struct.
        let st = unsafe { st.assume_init() };
        Ok(FsSpace::from_counts(
            st.f_blocks as u128,
            st.f_bfree as u128,
            st.f_bavail as u128,
            st.f_frsize as u128,
        ))
    }

    /// From statvfs counts (`blocks`, `bfree`, `bavail` in units of `frsize`).
    pub fn from_counts(blocks: u128, bfree: u128, bavail: u128, frsize: u128) -> FsSpace {
        FsSpace {
            used: blocks.saturating_sub(bfree) * frsize,
            usable: bavail * frsize,
        }
    }

    /// Use in percent (rounded up, at most 100) once `extra` more bytes are
    /// allocated. An empty file system reads 0.
    pub fn used_percent_after(&self, extra: u64) -> u8 {
        let entire = self.used + self.usable;
        if entire == 0 {
            return 0;
        }
        let used = (self.used + extra as u128).min(entire);
        (used * 100).div_ceil(entire) as u8
    }

    /// Used fraction, 0.0..=1.0.
    pub fn used_ratio(&self) -> f64 {
        let entire = self.used + self.usable;
        if entire == 0 {
            return 0.0;
        }
        self.used as f64 / entire as f64
    }
}

pub(super) async fn run(store: MessageStore) {
    let interval = store.config().clean_interval;
    while !store.is_stopping() {
        if let Err(e) = clean_once(&store).await {
            log::error!("shard {} retention: {e}", store.shard());
        }
        store.sleep_unless_stopping(interval).await;
    }
}

/// One pass of the retention task. Returns the number of deleted segments.
pub async fn clean_once(store: &MessageStore) -> Result<usize, StoreError> {
    let cfg = store.config();
    let mut deleted = 0;
    let used = used_percent(store).await?;
    let full = used > cfg.disk_max_used_ratio;
    if full && !store.inner.disk_full.get() {
        log::error!(
            "shard {}: disk {}% used, above diskMaxUsedSpaceRatio {}%: refusing appends and cleaning",
            store.shard(),
            used,
            cfg.disk_max_used_ratio
        );
    }
    store.inner.disk_full.set(full);
    if full && cfg.disk_full_policy == DiskFullPolicy::DeleteOldest {
        while used_percent(store).await? > cfg.disk_max_used_ratio {
            let Some(base) = delete_oldest(store).await? else {
                break;
            };
            deleted += 1;
            store.inner.forced_deletions.set(store.inner.forced_deletions.get() + 1);
            log::error!(
                "shard {}: diskFullPolicy=deleteOldest: DELETED UNEXPIRED CommitLog segment {base} \
                 (its messages are gone, consumed or not) to bring disk use below {}%",
                store.shard(),
                cfg.disk_max_used_ratio
            );
        }
    }
    loop {
        let bases = store.log().segment_bases();
        let Some(&oldest) = bases.first() else { break };
        if bases.len() < 2 || !expired(store, oldest, cfg.file_reserved_time).await {
            break;
        }
        if bases[1] > store.pinned_from() {
            // It holds a record still needed (a scheduled message not yet
            // delivered): kept past its retention.
            break;
        }
        if delete_oldest(store).await?.is_none() {
            break;
        }
        deleted += 1;
    }
    if full {
        let still = used_percent(store).await? > cfg.disk_max_used_ratio;
        store.inner.disk_full.set(still);
        if !still {
            log::warn!(
                "shard {}: disk use back below {}%: appends resume",
                store.shard(),
                cfg.disk_max_used_ratio
            );
        }
    }
    if deleted > 0 {
        log::info!(
            "shard {}: retention deleted {deleted} CommitLog segment(s)",
            store.shard()
        );
        advance_queue_minimums(store).await;
    }
    Ok(deleted)
}

/// Deletes the oldest segment, first storing a checkpoint if the last
/// stored one still points into it.
async fn delete_oldest(store: &MessageStore) -> Result<Option<u64>, StoreError> {
    if store.log().oldest_waits_for_checkpoint() {
        store.checkpoint().await?;
    }
    store.log().delete_oldest().await
}

/// Whether segment `base` was last modified more than `keep` ago; the
/// `stat` runs on the blocking thread (glommio's statx gives no mtime).
async fn expired(store: &MessageStore, base: u64, keep: Duration) -> bool {
    let Some(path) = store.log().segment_at(base).map(|seg| seg.path.clone()) else {
        return false;
    };
    let mtime = crate::runtime::blocking::run(move || std::fs::metadata(&path).and_then(|m| m.modified())).await;
    let Ok(mtime) = mtime else { return false };
    SystemTime::now()
        .duration_since(mtime)
        .map(|age| age > keep)
        .unwrap_or(false)
}

/// Raises every queue's min offset to its first entry that still points
/// into a retained segment. A queue that fails is logged and skipped.
pub(super) async fn advance_queue_minimums(store: &MessageStore) {
    let n = store.inner.queues.borrow().queues.len();
    for i in 0..n {
        if let Err(e) = advance_queue_minimum(store, i).await {
            let qs = store.inner.queues.borrow();
            let q = &qs.queues[i];
            log::error!(
                "shard {}: cannot advance the min offset of {}/{}: {e}",
                store.shard(),
                q.topic,
                q.queue_id
            );
        }
    }
}

/// Raises queue `i`'s min offset to its first entry that still points into
/// a retained segment (binary search over `[min, visible max)`: entries
/// grow with the offset) and deletes consume-queue files wholly below it.
/// Returns the new min offset.
pub(super) async fn advance_queue_minimum(store: &MessageStore, i: usize) -> Result<u64, StoreError> {
    let log_min = store.log().min_offset();
    let (topic, qid, min, max) = {
        let qs = store.inner.queues.borrow();
        let q = &qs.queues[i];
        (q.topic.clone(), q.queue_id, q.min_offset, store.visible_max(q))
    };
    if min >= max || !below_log_min(store, &topic, qid, min, log_min).await? {
        return Ok(min);
    }
    let (mut lo, mut hi) = (min, max);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if below_log_min(store, &topic, qid, mid, log_min).await? {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    let new_min = {
        let mut qs = store.inner.queues.borrow_mut();
        let q = &mut qs.queues[i];
        q.min_offset = q.min_offset.max(lo);
        q.min_offset
    };
    store.inner.cq_files.delete_below(&topic, qid, new_min).await?;
    Ok(new_min)
}

/// Whether the entry at `offset` points below the retained log. A missing
/// consume-queue file counts as below: only retention deletes them.
async fn below_log_min(
    store: &MessageStore,
    topic: &str,
    qid: u32,
    offset: u64,
    log_min: u64,
) -> Result<bool, StoreError> {
    match store.entry(topic, qid, offset).await {
        Ok(Some(e)) => Ok(e.pos < log_min),
        Ok(None) => Ok(true),
        Err(e) => {
            if store.inner.cq_files.has_file(topic, qid, offset).await {
                Err(e)
            } else {
                Ok(true)
            }
        }
    }
}

#[cfg(test)]
mod space_tests {
    use super::FsSpace;

    #[test]
    fn use_is_counted_as_df_counts_it() {
        // The disk this was found on: 252 G, 61 G used, 32 G available
        // (the rest withheld). df says 66 %.
        let g = 1u128 << 30;
        let s = FsSpace::from_counts(252 * g / 4096, (252 - 61) * g / 4096, 32 * g / 4096, 4096);
        assert_eq!(s.used_percent_after(0), 66);
        assert!((s.used_ratio() - 61.0 / 93.0).abs() < 1e-9);
        // Another GiB segment: 62 / 93, rounded up.
        assert_eq!(s.used_percent_after(1 << 30), 67);
        // More than what is left: full, never above 100.
        assert_eq!(s.used_percent_after(40 << 30), 100);
    }

    #[test]
    fn root_reserve_is_outside_the_count() {
        // ext4 with a 5 % root reserve, nothing usable left: 100 %.
        let s = FsSpace::from_counts(1000, 50, 0, 4096);
        assert_eq!(s.used_percent_after(0), 100);
        // Half of what a user can write is used.
        let s = FsSpace::from_counts(1000, 525, 475, 4096);
        assert_eq!(s.used_percent_after(0), 50);
        assert_eq!(FsSpace::from_counts(0, 0, 0, 4096).used_percent_after(5), 0);
    }
}
