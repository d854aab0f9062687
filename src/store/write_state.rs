//! Whether a shard's store takes appends, and if not, why: one state per
//! shard for `/metrics` (`shardmq_shard_writable`,
//! `shardmq_shard_read_only_reason`) and `shardmq admin stats`, logged
//! once per change (WARN when the shard becomes read-only, INFO when it is
//! writable again).
//!
//! | reason | when | cleared |
//! |---|---|---|
//! | `flush_failed` | an fdatasync of the CommitLog failed: nothing more can be made durable | only by a restart (what reached the disk is unknown) |
//! | `disk_full` | disk use above `diskMaxUsedSpaceRatio` (retention's measure), or an append needed a new segment that would take use above it | by itself, once space returns |
//! | `segment_unavailable` | an append needed a new segment that cannot be created (directory gone, I/O error, use cannot be measured) | by itself, once a segment is prepared |
//!
//! When several apply, the first in this order is reported. The segment
//! reasons describe refusals that happened (an append needed the segment),
//! not a preparer that is merely behind: a shard whose next segment
//! cannot be prepared still writes into its active one, and is writable.

use std::cell::Cell;
use std::time::Duration;

use super::message_store::MessageStore;

/// Why a shard refuses appends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOnlyReason {
    FlushFailed,
    DiskFull,
    SegmentUnavailable,
}

impl ReadOnlyReason {
    /// Every reason, in reporting priority.
    pub const ALL: [ReadOnlyReason; 3] = [
        ReadOnlyReason::FlushFailed,
        ReadOnlyReason::DiskFull,
        ReadOnlyReason::SegmentUnavailable,
    ];

    /// The label value (`reason="..."`) and the name in `admin stats`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReadOnlyReason::FlushFailed => "flush_failed",
            ReadOnlyReason::DiskFull => "disk_full",
            ReadOnlyReason::SegmentUnavailable => "segment_unavailable",
        }
    }

    /// The reason reported for these conditions: the first that applies.
    pub fn of(flush_failed: bool, disk_full: bool, segment_unavailable: bool) -> Option<ReadOnlyReason> {
        [flush_failed, disk_full, segment_unavailable]
            .into_iter()
            .zip(Self::ALL)
            .find_map(|(applies, reason)| applies.then_some(reason))
    }
}

/// A change of a shard's write state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    ReadOnly(ReadOnlyReason),
    /// Still read-only, for another reason.
    Reason {
        from: ReadOnlyReason,
        to: ReadOnlyReason,
    },
    /// Writable again after `was`.
    Writable {
        was: ReadOnlyReason,
    },
}

/// The last state seen; reports each change once.
#[derive(Debug, Default)]
pub struct Watch {
    last: Cell<Option<ReadOnlyReason>>,
}

impl Watch {
    pub fn observe(&self, now: Option<ReadOnlyReason>) -> Option<Change> {
        let before = self.last.replace(now);
        match (before, now) {
            (None, Some(r)) => Some(Change::ReadOnly(r)),
            (Some(from), Some(to)) if from != to => Some(Change::Reason { from, to }),
            (Some(was), None) => Some(Change::Writable { was }),
            _ => None,
        }
    }
}

/// How often the state is looked at for the log (the metrics read it
/// when scraped).
const WATCH_INTERVAL: Duration = Duration::from_millis(500);

impl MessageStore {
    /// Why appends are refused now, with the detail (None: writable).
    pub fn read_only(&self) -> Option<(ReadOnlyReason, String)> {
        let inner = &*self.inner;
        if let Some(e) = inner.log.failure() {
            return Some((ReadOnlyReason::FlushFailed, format!("a CommitLog flush failed: {e}")));
        }
        if inner.disk_full.get() {
            return Some((
                ReadOnlyReason::DiskFull,
                format!(
                    "disk use above diskMaxUsedSpaceRatio {}%",
                    inner.cfg.disk_max_used_ratio
                ),
            ));
        }
        let (for_space, why) = inner.log.segment_refusal()?;
        let reason = ReadOnlyReason::of(false, for_space, !for_space)?;
        Some((reason, why))
    }

    /// Logs each change of the write state until the store stops.
    pub(super) async fn watch_write_state(self) {
        let watch = Watch::default();
        while !self.is_stopping() {
            let now = self.read_only();
            if let Some(change) = watch.observe(now.as_ref().map(|(r, _)| *r)) {
                let shard = self.shard();
                let detail = now.map(|(_, why)| why).unwrap_or_default();
                match change {
                    Change::ReadOnly(r) => log::warn!("shard {shard} is read-only ({}): {detail}", r.as_str()),
                    Change::Reason { from, to } => log::warn!(
                        "shard {shard} is still read-only, now {} (was {}): {detail}",
                        to.as_str(),
                        from.as_str()
                    ),
                    Change::Writable { was } => {
                        log::info!("shard {shard} is writable again (was read-only: {})", was.as_str())
                    }
                }
            }
            self.sleep_unless_stopping(WATCH_INTERVAL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ReadOnlyReason::*;

    #[test]
    fn the_first_applying_reason_is_reported() {
        assert_eq!(ReadOnlyReason::of(false, false, false), None);
        assert_eq!(ReadOnlyReason::of(true, true, true), Some(FlushFailed));
        assert_eq!(ReadOnlyReason::of(false, true, true), Some(DiskFull));
        assert_eq!(ReadOnlyReason::of(false, false, true), Some(SegmentUnavailable));
        let names: Vec<_> = ReadOnlyReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names, ["flush_failed", "disk_full", "segment_unavailable"]);
    }

    #[test]
    fn each_change_is_reported_once() {
        let w = Watch::default();
        assert_eq!(w.observe(None), None);
        assert_eq!(w.observe(Some(DiskFull)), Some(Change::ReadOnly(DiskFull)));
        assert_eq!(w.observe(Some(DiskFull)), None);
        assert_eq!(
            w.observe(Some(FlushFailed)),
            Some(Change::Reason {
                from: DiskFull,
                to: FlushFailed
            })
        );
        assert_eq!(w.observe(None), Some(Change::Writable { was: FlushFailed }));
        assert_eq!(w.observe(None), None);
    }
}
