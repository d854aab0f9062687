//! The open transactions' in-memory state, owned by the shard
//! (`Shard::tx`); the work on it is in [`super`] and [`super::checks`].
//! Imports nothing of the shard, so that the shard can hold it without an
//! import cycle.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::store::notify::Notify;

pub(super) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[derive(Debug, Clone)]
pub(super) struct Open {
    pub(super) pos: u64,
    pub(super) group: String,
    pub(super) stored: i64,
    pub(super) checks: u32,
    pub(super) next_check: i64,
}

#[derive(Default)]
pub(super) struct State {
    /// Half-queue entries below this were scanned into `open`/`resolved`.
    pub(super) scanned: u64,
    pub(super) open: BTreeMap<u64, Open>,
    /// Resolutions being written.
    pub(super) resolving: HashMap<u64, ()>,
    /// Resolved halves at or above `low`, with a lower bound of their
    /// mark's offset.
    pub(super) resolved: BTreeMap<u64, u64>,
    /// Check counts restored at start, applied when the scan finds them.
    pub(super) restored_checks: HashMap<u64, u32>,
    pub(super) started: bool,
    pub(super) dirty: bool,
    pub(super) committed: u64,
    pub(super) rolled_back: u64,
}

/// One shard's open transactions ([`run`] drives the checks).
pub struct Transactions {
    pub(super) dir: PathBuf,
    pub(super) st: RefCell<State>,
    pub wake: Notify,
    /// gRPC producers' Telemetry streams, for checks.
    pub streams: super::streams::CheckStreams,
}

/// An open transaction as `shardmq admin` shows it.
#[derive(Debug, Clone)]
pub struct OpenTx {
    pub group: String,
    pub half_offset: u64,
    pub age_ms: i64,
    pub checks: u32,
}

impl Transactions {
    pub fn new(store_dir: &std::path::Path) -> Transactions {
        Transactions {
            dir: store_dir.to_path_buf(),
            st: RefCell::new(State::default()),
            wake: Notify::default(),
            streams: Default::default(),
        }
    }

    /// Open transactions, oldest first (at most `limit`).
    pub fn list(&self, limit: usize) -> (usize, Vec<OpenTx>) {
        let st = self.st.borrow();
        let now = now_ms();
        let v = st
            .open
            .iter()
            .take(limit)
            .map(|(h, o)| OpenTx {
                group: o.group.clone(),
                half_offset: *h,
                age_ms: now - o.stored,
                checks: o.checks,
            })
            .collect();
        (st.open.len(), v)
    }

    pub fn counts(&self) -> (u64, u64) {
        let st = self.st.borrow();
        (st.committed, st.rolled_back)
    }

    pub(super) fn tracked(&self) -> usize {
        let st = self.st.borrow();
        st.open.len() + st.resolved.len() + st.resolving.len()
    }
}

pub(super) fn low(st: &State) -> u64 {
    let open = st.open.keys().next().copied();
    let resolving = st.resolving.keys().min().copied();
    [open, resolving].into_iter().flatten().min().unwrap_or(st.scanned)
}
