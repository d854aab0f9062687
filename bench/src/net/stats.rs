//! Counters and latency histograms: each executor records into its own
//! [`Local`] (no atomics, no locks on the hot path) and merges into the
//! process-wide [`Shared`] every 100 ms.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed};
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
    /// Messages, bytes and successful requests in every phase (progress
    /// lines, e2e accounting, error rate).
    pub msgs_all: AtomicU64,
    pub bytes_all: AtomicU64,
    pub reqs_all: AtomicU64,
}

pub struct Agg {
    /// Measured window, per op.
    pub total: Vec<Histogram<u64>>,
    /// Since the reporter last took them (HDR log intervals).
    pub interval: Vec<Histogram<u64>>,
    /// Error counts by response code or failure kind, every phase.
    pub errors: BTreeMap<String, u64>,
    /// The first remark (or detail) seen for each error kind.
    pub error_remarks: BTreeMap<String, String>,
}

/// Shared by all executors and the main thread.
pub struct Shared {
    pub ops: [OpCounters; 3],
    /// Measured messages (sent after the warm-up) whose send finished:
    /// answered, failed or timed out. Added to at once (not at the next
    /// flush) so that a `--messages` run ends when its last reply comes.
    pub send_done: AtomicU64,
    /// Messages consumers may still receive in the measured window
    /// (`i64::MAX`: no budget), taken from at once as pulls return.
    pub pull_budget: AtomicI64,
    pub errors: AtomicU64,
    pub measuring: AtomicBool,
    pub stop_send: AtomicBool,
    pub stop: AtomicBool,
    /// Messages producers may still send in the measured window
    /// (`i64::MAX`: no budget). Warm-up sends do not take from it.
    pub budget: AtomicI64,
    /// Producer connections still running; pull loops still running.
    pub producers_alive: AtomicUsize,
    pub pullers_alive: AtomicUsize,
    /// Wall-clock ns when measuring started: e2e counts messages born after it.
    pub measure_start_wall_ns: AtomicU64,
    pub agg: Mutex<Agg>,
}

impl Shared {
    pub fn new(budget: i64) -> Shared {
        Shared {
            ops: Default::default(),
            send_done: AtomicU64::new(0),
            pull_budget: AtomicI64::new(i64::MAX),
            errors: AtomicU64::new(0),
            measuring: AtomicBool::new(false),
            stop_send: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            budget: AtomicI64::new(budget),
            producers_alive: AtomicUsize::new(0),
            pullers_alive: AtomicUsize::new(0),
            measure_start_wall_ns: AtomicU64::new(u64::MAX),
            agg: Mutex::new(Agg {
                total: OPS.iter().map(|_| new_hist()).collect(),
                interval: OPS.iter().map(|_| new_hist()).collect(),
                errors: BTreeMap::new(),
                error_remarks: BTreeMap::new(),
            }),
        }
    }

    pub fn measuring(&self) -> bool {
        self.measuring.load(Relaxed)
    }

    /// Successful requests, every phase and operation.
    pub fn ok_requests(&self) -> u64 {
        self.ops.iter().map(|o| o.reqs_all.load(Relaxed)).sum()
    }
}

/// Decrements a live-task counter when dropped, however the task ends.
pub struct AliveGuard<'a>(pub &'a AtomicUsize, pub usize);

impl Drop for AliveGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(self.1, Relaxed);
    }
}

/// What some successful requests carried.
#[derive(Debug, Clone, Copy)]
pub struct Done {
    pub reqs: u64,
    pub msgs: u64,
    pub bytes: u64,
}

/// One executor's counters since its last flush.
pub struct Local {
    hist: RefCell<Vec<Histogram<u64>>>,
    msgs: [Cell<u64>; 3],
    bytes: [Cell<u64>; 3],
    reqs: [Cell<u64>; 3],
    msgs_all: [Cell<u64>; 3],
    bytes_all: [Cell<u64>; 3],
    reqs_all: [Cell<u64>; 3],
    errors: RefCell<BTreeMap<String, (u64, String)>>,
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
            reqs_all: Default::default(),
            errors: RefCell::new(BTreeMap::new()),
            dirty_hist: Cell::new(false),
        }
    }

    fn add(c: &Cell<u64>, n: u64) {
        c.set(c.get() + n);
    }

    /// Successful requests (`n`). `measured` says whether they count in
    /// the measured window: for sends, whether they were sent after the
    /// warm-up (decided when sent, so that the budget and the count
    /// agree); for pulls, whether measuring now. `latency_ns` is recorded
    /// when given and measured.
    pub fn ok(&self, shared: &Shared, op: Op, n: Done, latency_ns: Option<u64>, measured: bool) {
        let Done { reqs, msgs, bytes } = n;
        let i = op as usize;
        Self::add(&self.msgs_all[i], msgs);
        Self::add(&self.bytes_all[i], bytes);
        Self::add(&self.reqs_all[i], reqs);
        if measured {
            Self::add(&self.msgs[i], msgs);
            Self::add(&self.bytes[i], bytes);
            Self::add(&self.reqs[i], reqs);
            match op {
                Op::Send => {
                    shared.send_done.fetch_add(msgs, Relaxed);
                }
                Op::Pull if msgs > 0 => {
                    shared
                        .pull_budget
                        .fetch_sub(i64::try_from(msgs).unwrap_or(i64::MAX), Relaxed);
                }
                _ => {}
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

    /// A failed request of `msgs` messages: `kind` names the response
    /// code or failure, `detail` is the broker's remark or the error text.
    /// `measured` as for [`Local::ok`] (a failed measured send is done).
    pub fn error(&self, shared: &Shared, op: Op, msgs: u64, kind: String, detail: Option<&str>, measured: bool) {
        if op == Op::Send && measured {
            shared.send_done.fetch_add(msgs, Relaxed);
        }
        let mut errors = self.errors.borrow_mut();
        let e = errors
            .entry(format!("{} {kind}", op.name()))
            .or_insert_with(|| (0, String::new()));
        e.0 += 1;
        if e.1.is_empty() {
            if let Some(d) = detail.filter(|d| !d.is_empty()) {
                e.1 = d.chars().take(300).collect();
            }
        }
    }

    pub fn flush(&self, shared: &Shared) {
        for i in 0..3 {
            let o = &shared.ops[i];
            o.msgs.fetch_add(self.msgs[i].take(), Relaxed);
            o.bytes.fetch_add(self.bytes[i].take(), Relaxed);
            o.reqs.fetch_add(self.reqs[i].take(), Relaxed);
            o.msgs_all.fetch_add(self.msgs_all[i].take(), Relaxed);
            o.bytes_all.fetch_add(self.bytes_all[i].take(), Relaxed);
            o.reqs_all.fetch_add(self.reqs_all[i].take(), Relaxed);
        }
        let errors = std::mem::take(&mut *self.errors.borrow_mut());
        if !errors.is_empty() || self.dirty_hist.get() {
            let mut agg = shared.agg.lock().expect("stats lock");
            for (k, (n, remark)) in errors {
                shared.errors.fetch_add(n, Relaxed);
                if !remark.is_empty() {
                    agg.error_remarks.entry(k.clone()).or_insert(remark);
                }
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

/// A response code and its name, e.g. `code 13 MESSAGE_ILLEGAL` (errors
/// are counted by this; the remark is kept beside it).
pub fn code_kind(code: i32) -> String {
    match response::name(code) {
        Some(n) => format!("code {code} {n}"),
        None => format!("code {code}"),
    }
}
