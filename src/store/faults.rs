//! An injectable disk: a fault plan the store consults at each of its
//! real I/O points, so that tests reach the paths a `kill -9` never does
//! (a failed fdatasync, a short write, a full disk).
//!
//! # Use
//!
//! ```ignore
//! let faults = DiskFaults::new();
//! let mut cfg = StoreConfig::new(dir, 0, host);
//! cfg.faults = Some(faults.clone());
//! let (store, _) = MessageStore::open(cfg).await?;
//! // The third CommitLog fdatasync from now on fails with EIO, once.
//! faults.add(FaultRule::new(DiskOp::SegmentSync, Fault::Eio).after(2).times(1));
//! // Every consume-queue write fails with ENOSPC until cleared.
//! faults.add(FaultRule::new(DiskOp::CqWrite, Fault::Enospc));
//! // ... then the disk has room again:
//! faults.clear();
//! ```
//!
//! Rules can be added and cleared while the store runs. Unused (the
//! default, `StoreConfig::faults == None`) the layer costs one branch per
//! I/O call.
//!
//! # The I/O points ([`DiskOp`])
//!
//! | op | where | real call it stands for |
//! |---|---|---|
//! | `SegmentPrepare` | `segment::prepare_file`, after the file is created | `fallocate` of a new CommitLog segment |
//! | `SegmentWrite` | `Segment::write` (flusher, recovery) | O_DIRECT `pwrite` |
//! | `SegmentSync` | `Segment::sync` (flusher, recovery) | `fdatasync` |
//! | `CqWrite` | `CqFiles::write` (write-behind) | buffered `pwrite` |
//! | `CqSync` | `CqFiles::sync_dirty` (checkpoint) | `fdatasync` |
//! | `CheckpointWrite` | `Checkpoint::store` | buffered `pwrite` of `checkpoint.tmp` |
//! | `CheckpointSync` | `Checkpoint::store` | `fdatasync` of `checkpoint.tmp` |
//! | `IndexWrite` | `key_index::run::RunWriter` | O_DIRECT `pwrite` of a key-index run |
//! | `IndexSync` | `key_index::run::RunWriter::finish` | `fdatasync` of a key-index run |
//!
//! # The faults ([`Fault`])
//!
//! * `Eio`, `Enospc`: the call is not made; it fails with the error glommio
//!   returns for a real failure (`EnhancedIoError` around an `io::Error`
//!   with raw os error `EIO` / `ENOSPC`), so every classification the store
//!   makes ([`StoreError::glommio`](super::StoreError::glommio): ENOSPC is
//!   a full disk, anything else a device fault) behaves as in reality.
//! * `Slow(ms)`: the call is made for real, `ms` late (the CommitLog's
//!   segment write and fdatasync only): a device whose flush takes long,
//!   to see what overlaps it.
//! * `ShortWrite` (write ops only): the first half of the buffer (whole
//!   512-byte sectors for O_DIRECT) is written for real and the call reports
//!   that count, leaving on disk exactly what a real short write leaves.
//!
//! # Rules ([`FaultRule`])
//!
//! A rule names an op and a fault; it lets the first `after` calls of its
//! op (counted from when it was added) through, then fires on the next
//! `times` calls (`None`: every call until cleared), then disappears. The
//! first rule that is due fires; [`DiskFaults::calls`] and
//! [`DiskFaults::injected`] count per op what the store did.

use std::cell::{Cell, RefCell};
use std::path::Path;
use std::rc::Rc;

/// A store I/O point that consults the fault plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DiskOp {
    SegmentPrepare,
    SegmentWrite,
    SegmentSync,
    CqWrite,
    CqSync,
    CheckpointWrite,
    CheckpointSync,
    IndexWrite,
    IndexSync,
}

const OPS: usize = 9;

impl DiskOp {
    fn index(self) -> usize {
        self as usize
    }

    /// Whether the op writes a buffer (a short write is possible).
    pub fn is_write(self) -> bool {
        matches!(
            self,
            DiskOp::SegmentWrite | DiskOp::CqWrite | DiskOp::CheckpointWrite | DiskOp::IndexWrite
        )
    }
}

/// What goes wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Half the buffer is written for real; the call reports that count.
    ShortWrite,
    /// The call fails with EIO (a device error).
    Eio,
    /// The call fails with ENOSPC (the device is full).
    Enospc,
    /// A slow device: the call is made for real, this many milliseconds
    /// late. Honoured where the store awaits the call anyway (the
    /// CommitLog's segment write and fdatasync, [`consult_async`]);
    /// elsewhere the call goes through at once.
    Slow(u32),
}

/// When and how often a fault fires. Build with [`FaultRule::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRule {
    pub op: DiskOp,
    pub fault: Fault,
    /// Calls of `op` let through before the fault starts.
    pub after: u64,
    /// Calls that fail; `None`: all of them until the rule is cleared.
    pub times: Option<u64>,
}

impl FaultRule {
    /// A fault on every call of `op` from the next one on, until cleared.
    pub fn new(op: DiskOp, fault: Fault) -> FaultRule {
        FaultRule {
            op,
            fault,
            after: 0,
            times: None,
        }
    }

    /// Lets the first `n` calls through.
    pub fn after(mut self, n: u64) -> FaultRule {
        self.after = n;
        self
    }

    /// Fires `n` times, then the rule is gone.
    pub fn times(mut self, n: u64) -> FaultRule {
        self.times = Some(n);
        self
    }
}

#[derive(Debug)]
struct Armed {
    rule: FaultRule,
    passed: u64,
    fired: u64,
}

/// The fault plan shared by the store (through `StoreConfig::faults`) and
/// the test that drives it. Single-threaded, like the store.
#[derive(Debug, Default)]
pub struct DiskFaults {
    rules: RefCell<Vec<Armed>>,
    calls: [Cell<u64>; OPS],
    injected: [Cell<u64>; OPS],
}

impl DiskFaults {
    pub fn new() -> Rc<DiskFaults> {
        Rc::new(DiskFaults::default())
    }

    /// Arms a rule. A short write on an op that writes no buffer is a
    /// mistake in the test and panics.
    pub fn add(&self, rule: FaultRule) {
        assert!(
            rule.fault != Fault::ShortWrite || rule.op.is_write(),
            "a short write needs a write op, not {:?}",
            rule.op
        );
        self.rules.borrow_mut().push(Armed {
            rule,
            passed: 0,
            fired: 0,
        });
    }

    /// Disarms every rule (the disk is healthy again).
    pub fn clear(&self) {
        self.rules.borrow_mut().clear();
    }

    /// Disarms the rules of one op.
    pub fn clear_op(&self, op: DiskOp) {
        self.rules.borrow_mut().retain(|a| a.rule.op != op);
    }

    /// Calls of `op` the store made (faulted or not).
    pub fn calls(&self, op: DiskOp) -> u64 {
        self.calls[op.index()].get()
    }

    /// Faults injected into calls of `op`.
    pub fn injected(&self, op: DiskOp) -> u64 {
        self.injected[op.index()].get()
    }

    /// Consulted by the store at each call of `op`: the fault to inject, if any.
    pub fn check(&self, op: DiskOp) -> Option<Fault> {
        let i = op.index();
        self.calls[i].set(self.calls[i].get() + 1);
        let mut rules = self.rules.borrow_mut();
        let mut hit = None;
        for (k, a) in rules.iter_mut().enumerate().filter(|(_, a)| a.rule.op == op) {
            if a.passed < a.rule.after {
                a.passed += 1;
            } else if hit.is_none() {
                a.fired += 1;
                hit = Some((k, a.rule.fault));
            }
        }
        let (k, fault) = hit?;
        if rules[k].rule.times.is_some_and(|t| rules[k].fired >= t) {
            rules.remove(k);
        }
        self.injected[i].set(self.injected[i].get() + 1);
        Some(fault)
    }
}

/// The fault planned for this call of `op` (one branch when unused).
#[inline]
pub fn consult(faults: &Option<Rc<DiskFaults>>, op: DiskOp) -> Option<Fault> {
    match faults {
        None => None,
        Some(f) => match f.check(op) {
            Some(Fault::Slow(_)) => None,
            other => other,
        },
    }
}

/// [`consult`] for I/O points that can wait: a `Slow` fault delays the
/// call (then answers `None`: make it).
pub async fn consult_async(faults: &Option<Rc<DiskFaults>>, op: DiskOp) -> Option<Fault> {
    match faults {
        None => None,
        Some(f) => match f.check(op) {
            Some(Fault::Slow(ms)) => {
                glommio::timer::sleep(std::time::Duration::from_millis(u64::from(ms))).await;
                None
            }
            other => other,
        },
    }
}

/// The error glommio returns when the real `op` (its name as glommio
/// reports it: "Writing", "Syncing", ...) fails with this fault's errno.
pub fn os_error(fault: Fault, op: &'static str, path: &Path) -> glommio::GlommioError<()> {
    let errno = match fault {
        Fault::Enospc => libc::ENOSPC,
        Fault::Eio | Fault::ShortWrite | Fault::Slow(_) => libc::EIO,
    };
    glommio::GlommioError::EnhancedIoError {
        source: std::io::Error::from_raw_os_error(errno),
        op,
        path: Some(path.to_path_buf()),
        fd: None,
    }
}

/// Bytes a short write of `len` bytes writes: half, rounded down to
/// `granularity` (512 for O_DIRECT, 1 for buffered files).
pub fn short_len(len: usize, granularity: usize) -> usize {
    (len / 2) / granularity * granularity
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_lets_after_calls_through_then_fires_times_then_goes() {
        let f = DiskFaults::new();
        f.add(FaultRule::new(DiskOp::SegmentSync, Fault::Eio).after(2).times(2));
        let seen: Vec<_> = (0..6).map(|_| f.check(DiskOp::SegmentSync)).collect();
        assert_eq!(seen, [None, None, Some(Fault::Eio), Some(Fault::Eio), None, None]);
        assert_eq!(f.check(DiskOp::SegmentWrite), None);
        assert_eq!((f.calls(DiskOp::SegmentSync), f.injected(DiskOp::SegmentSync)), (6, 2));
    }

    #[test]
    fn a_rule_without_times_fires_until_cleared() {
        let f = DiskFaults::new();
        f.add(FaultRule::new(DiskOp::CqWrite, Fault::Enospc));
        assert!((0..100).all(|_| f.check(DiskOp::CqWrite) == Some(Fault::Enospc)));
        f.clear_op(DiskOp::CqWrite);
        assert_eq!(f.check(DiskOp::CqWrite), None);
        assert_eq!(consult(&None, DiskOp::CqWrite), None);
    }

    #[test]
    fn injected_errors_look_like_real_ones() {
        let e = std::io::Error::from(os_error(Fault::Enospc, "Writing", Path::new("/x")));
        assert_eq!(e.kind(), std::io::ErrorKind::StorageFull);
        assert!(e.to_string().contains("No space left on device"), "{e}");
        assert_eq!(short_len(8192, 512), 4096);
        assert_eq!(short_len(4096 + 512, 512), 2048);
        assert_eq!(short_len(41, 1), 20);
    }

    #[test]
    #[should_panic(expected = "short write needs a write op")]
    fn a_short_fdatasync_is_a_mistake() {
        DiskFaults::new().add(FaultRule::new(DiskOp::CqSync, Fault::ShortWrite));
    }
}
