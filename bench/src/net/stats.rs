//! Counters and latency histograms: each executor records into its own
//! [`Local`] (no atomics, no locks on the hot path) and merges into the
//! process-wide [`Shared`] every 100 ms.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use hdrhistogram::Histogram;
use shardmq::protocol::codes::response;

/// Operations with a latency histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Send = 0,
    Pull = 1,
    E2e = 2,
}

pub const OPS: [Op; 3] = [Op::Send, Op::Pull, Op::E2e];

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Send => "send",
            Op::Pull => "pull",
            Op::E2e => "e2e",
        }
    }
}

/// Latencies in nanoseconds, up to 10 minutes, 3 significant digits.
pub fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000_000, 3).expect("histogram bounds")
}

#[derive(Default)]
pub struct OpCounters {
    /// Messages / body bytes / requests in the measured window.
    pub msgs: AtomicU64,
    pub bytes: AtomicU64,
    pub reqs: AtomicU64,
    /// Messages and bytes in every phase (progress lines, e2e accounting).
    pub msgs_all: AtomicU64,
    pub bytes_all: AtomicU64,
}

pub struct Agg {
    /// Measured window, per op.
    pub total: Vec<Histogram<u64>>,
    /// Since the reporter last took them (HDR log intervals).
    pub interval: Vec<Histogram<u64>>,
    /// Error counts by response code or failure kind, every phase.
    pub errors: BTreeMap<String, u64>,
}

/// Shared by all executors and the main thread.
pub struct Shared {
    pub ops: [OpCounters; 3],
    /// Messages whose send finished (ok or failed) in the measured window.
    pub send_done: AtomicU64,
    pub errors: AtomicU64,
    pub measuring: AtomicBool,
    pub stop_send: AtomicBool,
    pub stop: AtomicBool,
    /// Messages producers may still send in the measured window.
    pub budget: AtomicI64,
    /// Wall-clock ns when measuring started: e2e counts messages born after it.
    pub measure_start_wall_ns: AtomicU64,
    pub agg: Mutex<Agg>,
}

impl Shared {
    pub fn new(budget: i64) -> Shared {
        Shared {
            ops: Default::default(),
            send_done: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            measuring: AtomicBool::new(false),
            stop_send: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            budget: AtomicI64::new(budget),
            measure_start_wall_ns: AtomicU64::new(u64::MAX),
            agg: Mutex::new(Agg {
                total: OPS.iter().map(|_| new_hist()).collect(),
                interval: OPS.iter().map(|_| new_hist()).collect(),
                errors: BTreeMap::new(),
            }),
        }
    }

    pub fn measuring(&self) -> bool {
        self.measuring.load(Relaxed)
    }
}

/// One executor's counters since its last flush.
pub struct Local {
    hist: RefCell<Vec<Histogram<u64>>>,
    msgs: [Cell<u64>; 3],
    bytes: [Cell<u64>; 3],
    reqs: [Cell<u64>; 3],
    msgs_all: [Cell<u64>; 3],
    bytes_all: [Cell<u64>; 3],
    send_done: Cell<u64>,
    errors: RefCell<BTreeMap<String, u64>>,
    dirty_hist: Cell<bool>,
}

impl Local {
    pub fn new() -> Local {
        Local {
            hist: RefCell::new(OPS.iter().map(|_| new_hist()).collect()),
            msgs: Default::default(),
            bytes: Default::default(),
            reqs: Default::default(),
            msgs_all: Default::default(),
            bytes_all: Default::default(),
            send_done: Cell::new(0),
            errors: RefCell::new(BTreeMap::new()),
            dirty_hist: Cell::new(false),
        }
    }

    fn add(c: &Cell<u64>, n: u64) {
        c.set(c.get() + n);
    }

    /// A successful request of `msgs` messages; `latency_ns` is recorded
    /// when given and measuring.
    pub fn ok(&self, shared: &Shared, op: Op, msgs: u64, bytes: u64, latency_ns: Option<u64>) {
        let i = op as usize;
        Self::add(&self.msgs_all[i], msgs);
        Self::add(&self.bytes_all[i], bytes);
        if shared.measuring() {
            Self::add(&self.msgs[i], msgs);
            Self::add(&self.bytes[i], bytes);
            Self::add(&self.reqs[i], 1);
            if op == Op::Send {
                Self::add(&self.send_done, msgs);
            }
            if let Some(ns) = latency_ns {
                self.latency(op, ns);
            }
        }
    }

    /// A latency without counts (e2e per message).
    pub fn latency(&self, op: Op, ns: u64) {
        self.hist.borrow_mut()[op as usize].saturating_record(ns.max(1));
        self.dirty_hist.set(true);
    }

    /// A failed request: `kind` names the response code or failure.
    pub fn error(&self, shared: &Shared, op: Op, msgs: u64, kind: String) {
        if op == Op::Send && shared.measuring() {
            Self::add(&self.send_done, msgs);
        }
        *self
            .errors
            .borrow_mut()
            .entry(format!("{} {kind}", op.name()))
            .or_insert(0) += 1;
    }

    pub fn flush(&self, shared: &Shared) {
        for i in 0..3 {
            let o = &shared.ops[i];
            o.msgs.fetch_add(self.msgs[i].take(), Relaxed);
            o.bytes.fetch_add(self.bytes[i].take(), Relaxed);
            o.reqs.fetch_add(self.reqs[i].take(), Relaxed);
            o.msgs_all.fetch_add(self.msgs_all[i].take(), Relaxed);
            o.bytes_all.fetch_add(self.bytes_all[i].take(), Relaxed);
        }
        shared.send_done.fetch_add(self.send_done.take(), Relaxed);
        let errors = std::mem::take(&mut *self.errors.borrow_mut());
        if !errors.is_empty() || self.dirty_hist.get() {
            let mut agg = shared.agg.lock().expect("stats lock");
            for (k, n) in errors {
                shared.errors.fetch_add(n, Relaxed);
                *agg.errors.entry(k).or_insert(0) += n;
            }
            if self.dirty_hist.take() {
                let mut hist = self.hist.borrow_mut();
                for (i, h) in hist.iter_mut().enumerate() {
                    if !h.is_empty() {
                        let _ = agg.total[i].add(&*h);
                        let _ = agg.interval[i].add(&*h);
                        h.reset();
                    }
                }
            }
        }
    }
}

/// `code 14 SYSTEM_BUSY: remark` shortened to the code and its name.
pub fn code_kind(code: i32) -> String {
    match response::name(code) {
        Some(n) => format!("code {code} {n}"),
        None => format!("code {code}"),
    }
}
