//! The POP state of one shard: per (group, topic, queue) the frontier and
//! the leases of messages in flight, and the per-shard index of lease
//! expiries. Every change is an [`Op`] applied by [`Tables::apply`] — the
//! live path and recovery's replay run the same code, which is what makes
//! the state after a restart the state the clients were answered from.
//!
//! Memory: a lease costs its map entry in its queue (offset → [`Lease`],
//! 32 bytes + B-tree overhead) and its expiry entry (24 bytes + overhead),
//! about 90 bytes in all; [`Tables::in_flight`] is bounded by the shard's
//! `popMaxInFlight` (1 M by default: ~90 MB), and the number of
//! (group, topic, queue) entries by [`MAX_QUEUES`].

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::rc::Rc;

use crate::store::notify::Notify;

use super::oplog::Op;
use crate::broker::long_poll::LongPolls;

/// (group, topic, queue) entries a shard keeps at most; a pop for a new
/// one beyond is refused with SYSTEM_BUSY.
pub const MAX_QUEUES: usize = 200_000;

/// One popped message not acknowledged yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// When it was popped or its invisible time last changed, ms; strictly
    /// increasing per message, so it names this lease: a handle carrying
    /// another value is stale.
    pub pop_time: i64,
    /// When it becomes visible again (ms).
    pub visible_at: i64,
    /// Deliveries so far (1 after the first pop).
    pub attempts: u32,
}

/// The POP position of a group in one queue.
#[derive(Debug, Default)]
pub struct PopQueue {
    pub group: Rc<str>,
    pub topic: Rc<str>,
    pub queue: u32,
    /// Offsets below were popped at least once (or filtered out); `None`
    /// until the first pop, which starts at the committed offset or per
    /// the request's init mode.
    pub next: Option<u64>,
    pub leases: BTreeMap<u64, Lease>,
    /// Leases whose time is up, waiting to be delivered again (moved here
    /// by [`Tables::expire`]; not logged: derived from time).
    pub ready: BTreeSet<u64>,
    /// Orderly pops: the attempt id of the batch in flight and its offsets.
    pub attempt: Option<(String, Vec<u64>)>,
    /// A pop of this queue is reading (not logged): pops of one queue do
    /// not overlap.
    pub busy: bool,
}

impl PopQueue {
    /// The lowest offset not acknowledged: everything below is done for
    /// this group (its consume progress).
    pub fn low(&self) -> Option<u64> {
        let first = self.leases.keys().next().copied();
        match (first, self.next) {
            (Some(f), Some(n)) => Some(f.min(n)),
            (f, n) => f.or(n),
        }
    }

    /// Orderly: a lease still invisible blocks the queue.
    pub fn blocked(&self, now: i64) -> bool {
        self.leases.values().any(|l| l.visible_at > now)
    }
}

/// The outcome of an ack or change for one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// Not in flight: acknowledged before (or never popped).
    NotInFlight,
    /// In flight under another handle (popped again, or its time changed).
    Stale {
        current: i64,
    },
}

/// group → queue → index in [`Tables::queues`].
type GroupsOf = HashMap<Rc<str>, HashMap<u32, u32>>;

#[derive(Default)]
pub struct Tables {
    /// topic → group → queue → index in `queues`.
    keys: HashMap<Rc<str>, GroupsOf>,
    pub queues: Vec<PopQueue>,
    /// (visible_at, queue index, offset) of every lease not yet ready.
    expiry: BTreeSet<(i64, u32, u64)>,
    in_flight: usize,
    /// Ops applied since the last checkpoint.
    pub dirty: u64,
}

impl Tables {
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// The index of (group, topic, queue), if it has state.
    pub fn find(&self, group: &str, topic: &str, queue: u32) -> Option<u32> {
        self.keys.get(topic)?.get(group)?.get(&queue).copied()
    }

    /// The index of (group, topic, queue), created when new (`None` when
    /// the shard holds [`MAX_QUEUES`] already).
    pub fn index(&mut self, group: &str, topic: &str, queue: u32) -> Option<u32> {
        if let Some(i) = self.find(group, topic, queue) {
            return Some(i);
        }
        if self.queues.len() >= MAX_QUEUES {
            return None;
        }
        let t: Rc<str> = match self.keys.get_key_value(topic) {
            Some((k, _)) => k.clone(),
            None => Rc::from(topic),
        };
        let by_group = self.keys.entry(t.clone()).or_default();
        let g: Rc<str> = match by_group.get_key_value(group) {
            Some((k, _)) => k.clone(),
            None => Rc::from(group),
        };
        let i = self.queues.len() as u32;
        by_group.entry(g.clone()).or_default().insert(queue, i);
        self.queues.push(PopQueue {
            group: g,
            topic: t,
            queue,
            ..Default::default()
        });
        Some(i)
    }

    pub fn queue(&self, i: u32) -> &PopQueue {
        &self.queues[i as usize]
    }

    /// Installs a queue read from a checkpoint (`None`: over
    /// [`MAX_QUEUES`]).
    pub fn restore(
        &mut self,
        group: &str,
        topic: &str,
        queue: u32,
        q: PopQueue,
        leases: Vec<(u64, Lease)>,
    ) -> Option<()> {
        let i = self.index(group, topic, queue)?;
        for (off, l) in &leases {
            self.expiry.insert((l.visible_at, i, *off));
        }
        self.in_flight += leases.len();
        let slot = &mut self.queues[i as usize];
        slot.next = q.next;
        slot.attempt = q.attempt;
        slot.leases = leases.into_iter().collect();
        Some(())
    }

    /// Applies one op. Returns one outcome per message a pop or an ack
    /// names (or the change's), nothing for resets.
    pub fn apply(&mut self, op: &Op) -> Vec<Outcome> {
        self.dirty += 1;
        match op {
            Op::Pop {
                group,
                topic,
                queue,
                pop_time,
                visible_at,
                next,
                attempt_id,
                offsets,
            } => {
                let Some(i) = self.index(group, topic, *queue) else {
                    return Vec::new();
                };
                let mut out = Vec::with_capacity(offsets.len());
                for &(off, prev) in offsets {
                    let q = &mut self.queues[i as usize];
                    let attempts = match (q.leases.get(&off), prev) {
                        (None, 0) => {
                            self.in_flight += 1;
                            1
                        }
                        (Some(old), p) if p != 0 && old.pop_time == p => {
                            self.expiry.remove(&(old.visible_at, i, off));
                            old.attempts.saturating_add(1)
                        }
                        (Some(old), _) => {
                            out.push(Outcome::Stale { current: old.pop_time });
                            continue;
                        }
                        (None, _) => {
                            out.push(Outcome::NotInFlight);
                            continue;
                        }
                    };
                    q.ready.remove(&off);
                    q.leases.insert(
                        off,
                        Lease {
                            pop_time: *pop_time,
                            visible_at: *visible_at,
                            attempts,
                        },
                    );
                    self.expiry.insert((*visible_at, i, off));
                    out.push(Outcome::Done);
                }
                let q = &mut self.queues[i as usize];
                q.next = Some(q.next.map_or(*next, |n| n.max(*next)));
                let taken: Vec<u64> = offsets
                    .iter()
                    .zip(&out)
                    .filter(|(_, o)| **o == Outcome::Done)
                    .map(|((off, _), _)| *off)
                    .collect();
                q.attempt = (!attempt_id.is_empty() && !taken.is_empty()).then(|| (attempt_id.clone(), taken));
                out
            }
            Op::Ack {
                group,
                topic,
                queue,
                items,
            } => {
                let Some(i) = self.find(group, topic, *queue) else {
                    return vec![Outcome::NotInFlight; items.len()];
                };
                items.iter().map(|&(off, pt)| self.ack_one(i, off, pt)).collect()
            }
            Op::Change {
                group,
                topic,
                queue,
                offset,
                pop_time,
                new_pop_time,
                visible_at,
            } => {
                let Some(i) = self.find(group, topic, *queue) else {
                    return vec![Outcome::NotInFlight];
                };
                let q = &mut self.queues[i as usize];
                let Some(l) = q.leases.get_mut(offset) else {
                    return vec![Outcome::NotInFlight];
                };
                if l.pop_time != *pop_time {
                    return vec![Outcome::Stale { current: l.pop_time }];
                }
                self.expiry.remove(&(l.visible_at, i, *offset));
                l.pop_time = *new_pop_time;
                l.visible_at = *visible_at;
                q.ready.remove(offset);
                self.expiry.insert((*visible_at, i, *offset));
                vec![Outcome::Done]
            }
            Op::Reset {
                group,
                topic,
                queue,
                next,
            } => {
                let Some(i) = self.index(group, topic, *queue) else {
                    return Vec::new();
                };
                let q = &mut self.queues[i as usize];
                for (off, l) in std::mem::take(&mut q.leases) {
                    self.expiry.remove(&(l.visible_at, i, off));
                    self.in_flight -= 1;
                }
                q.ready.clear();
                q.attempt = None;
                q.next = Some(*next);
                Vec::new()
            }
        }
    }

    fn ack_one(&mut self, i: u32, off: u64, pop_time: i64) -> Outcome {
        let q = &mut self.queues[i as usize];
        let Some(l) = q.leases.get(&off).copied() else {
            return Outcome::NotInFlight;
        };
        if l.pop_time != pop_time {
            return Outcome::Stale { current: l.pop_time };
        }
        q.leases.remove(&off);
        q.ready.remove(&off);
        if let Some((_, offs)) = &q.attempt {
            if !offs.iter().any(|o| q.leases.contains_key(o)) {
                q.attempt = None;
            }
        }
        self.expiry.remove(&(l.visible_at, i, off));
        self.in_flight -= 1;
        Outcome::Done
    }

    /// Moves leases whose time is up (`visible_at <= now`) to their queue's
    /// ready set; returns the queues that got some.
    pub fn expire(&mut self, now: i64) -> Vec<u32> {
        let mut touched = Vec::new();
        while let Some(&(t, i, off)) = self.expiry.first() {
            if t > now {
                break;
            }
            self.expiry.pop_first();
            self.queues[i as usize].ready.insert(off);
            if touched.last() != Some(&i) {
                touched.push(i);
            }
        }
        touched.sort_unstable();
        touched.dedup();
        touched
    }

    /// Whether a lease of queue `i` is visible again at `now` but not yet
    /// moved to its queue's ready set: looks only at the leases already
    /// expired shard-wide, a handful between two expiry passes.
    pub fn expired_in(&self, i: u32, now: i64) -> bool {
        self.expiry
            .range(..(now.saturating_add(1), 0, 0))
            .any(|&(_, q, _)| q == i)
    }

    /// The earliest lease expiry (ms).
    pub fn next_expiry(&self) -> Option<i64> {
        self.expiry.first().map(|e| e.0)
    }

    /// Every queue's state, for the checkpoint.
    pub fn iter(&self) -> impl Iterator<Item = &PopQueue> {
        self.queues.iter()
    }
}

/// The POP engine's state of one shard (held by the shard; the work on it
/// is in the sibling modules).
pub struct Pops {
    pub(super) dir: PathBuf,
    pub st: RefCell<Tables>,
    /// Signalled when a lease may expire earlier than the reviver sleeps.
    pub wake: Notify,
    /// Long-polling pops, woken by arrivals and by expiries.
    pub polls: LongPolls,
    /// Recovery done: handlers wait for it.
    pub(super) loaded: Cell<bool>,
    pub(super) loaded_signal: Notify,
    /// Offset in the op queue up to which ops are applied (recovery) —
    /// ops from here on are replayed after a restart.
    pub(super) applied: Cell<u64>,
    pub(super) max_in_flight: usize,
    /// Last pop time handed out (pop times are strictly increasing).
    pub(super) clock: Cell<i64>,
    /// Where an any-queue pop starts (round robin over the shard's queues).
    pub(super) rr: Cell<usize>,
}

impl Pops {
    pub fn new(store_dir: &std::path::Path, max_in_flight: usize) -> Pops {
        Pops {
            dir: store_dir.join("pop"),
            st: RefCell::new(Tables::default()),
            wake: Notify::default(),
            polls: LongPolls::default(),
            loaded: Cell::new(false),
            loaded_signal: Notify::default(),
            applied: Cell::new(0),
            max_in_flight: max_in_flight.max(32),
            clock: Cell::new(0),
            rr: Cell::new(0),
        }
    }

    /// A pop time after every one handed out before (and ≥ the wall clock).
    pub fn next_pop_time(&self) -> i64 {
        let t = super::now_ms().max(self.clock.get() + 1);
        self.clock.set(t);
        t
    }

    /// A turn number for spreading main-entry any-queue pops over shards.
    pub fn next_turn(&self) -> usize {
        let k = self.rr.get();
        self.rr.set(k.wrapping_add(1));
        k
    }

    /// Moves a group's POP position in a queue to `next` and drops its
    /// leases (an admin offset reset), logged like any op; `None` when the
    /// group never popped there. The caller waits for the record with
    /// `store.durable`.
    pub fn reset(
        &self,
        store: &crate::store::MessageStore,
        group: &str,
        topic: &str,
        queue: u32,
        next: u64,
    ) -> Option<Result<crate::store::Appended, crate::store::PutStatus>> {
        let mut st = self.st.borrow_mut();
        st.find(group, topic, queue)?;
        let op = Op::Reset {
            group: group.to_string(),
            topic: topic.to_string(),
            queue,
            next,
        };
        let rec = op.record(store.config().store_host, super::now_ms());
        Some(store.append(&rec).inspect(|_| {
            st.apply(&op);
        }))
    }

    /// Messages in flight (popped, not acknowledged) on this shard.
    pub fn in_flight(&self) -> usize {
        self.st.borrow().in_flight()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pop(offsets: &[(u64, i64)], pop_time: i64, visible_at: i64, next: u64) -> Op {
        Op::Pop {
            group: "G".into(),
            topic: "T".into(),
            queue: 0,
            pop_time,
            visible_at,
            next,
            attempt_id: String::new(),
            offsets: offsets.to_vec(),
        }
    }

    fn ack(items: &[(u64, i64)]) -> Op {
        Op::Ack {
            group: "G".into(),
            topic: "T".into(),
            queue: 0,
            items: items.to_vec(),
        }
    }

    #[test]
    fn pop_ack_and_expiry() {
        let mut t = Tables::default();
        assert_eq!(
            t.apply(&pop(&[(0, 0), (1, 0), (2, 0)], 100, 1100, 3)),
            vec![Outcome::Done; 3]
        );
        assert_eq!(t.in_flight(), 3);
        let i = t.find("G", "T", 0).expect("queue");
        assert_eq!(t.queue(i).low(), Some(0));
        assert_eq!(t.apply(&ack(&[(1, 100)])), vec![Outcome::Done]);
        assert_eq!(t.apply(&ack(&[(1, 100)])), vec![Outcome::NotInFlight]);
        assert_eq!(t.apply(&ack(&[(0, 99)])), vec![Outcome::Stale { current: 100 }]);
        assert_eq!(t.expire(1099), Vec::<u32>::new());
        assert!(!t.expired_in(i, 1099) && t.expired_in(i, 1100));
        assert!(!t.expired_in(i + 1, 1100), "another queue has nothing expired");
        assert_eq!(t.expire(1100), vec![i]);
        assert!(!t.expired_in(i, 1100), "moved to the ready set");
        assert_eq!(t.queue(i).ready.iter().copied().collect::<Vec<_>>(), vec![0, 2]);
        // Popped again: attempt 2, a new handle; the old one is stale.
        assert_eq!(
            t.apply(&pop(&[(0, 100), (1, 100)], 1200, 2200, 3)),
            vec![Outcome::Done, Outcome::NotInFlight]
        );
        assert_eq!(
            t.apply(&pop(&[(2, 99)], 1200, 2200, 3)),
            vec![Outcome::Stale { current: 100 }]
        );
        let q = t.queue(i);
        assert_eq!(q.leases[&0].attempts, 2);
        assert!(!q.ready.contains(&0) && q.ready.contains(&2));
        assert_eq!(t.apply(&ack(&[(0, 100)])), vec![Outcome::Stale { current: 1200 }]);
        assert_eq!(
            t.apply(&ack(&[(0, 1200), (2, 100)])),
            vec![Outcome::Done, Outcome::Done]
        );
        assert_eq!(t.in_flight(), 0);
        assert_eq!(t.queue(i).low(), Some(3));
        assert_eq!(t.next_expiry(), None);
    }

    #[test]
    fn change_moves_the_expiry_and_renames_the_lease() {
        let mut t = Tables::default();
        t.apply(&pop(&[(5, 0)], 100, 1100, 6));
        let change = |old, new, at| Op::Change {
            group: "G".into(),
            topic: "T".into(),
            queue: 0,
            offset: 5,
            pop_time: old,
            new_pop_time: new,
            visible_at: at,
        };
        assert_eq!(t.apply(&change(100, 500, 9000)), vec![Outcome::Done]);
        assert_eq!(t.apply(&change(100, 600, 9000)), vec![Outcome::Stale { current: 500 }]);
        assert_eq!(t.expire(5000), Vec::<u32>::new());
        assert_eq!(t.next_expiry(), Some(9000));
        assert_eq!(t.apply(&ack(&[(5, 500)])), vec![Outcome::Done]);
    }

    #[test]
    fn orderly_queue_blocks_until_its_batch_is_done() {
        let mut t = Tables::default();
        t.apply(&Op::Pop {
            group: "G".into(),
            topic: "T".into(),
            queue: 0,
            pop_time: 10,
            visible_at: 1000,
            next: 2,
            attempt_id: "a1".into(),
            offsets: vec![(0, 0), (1, 0)],
        });
        let i = t.find("G", "T", 0).expect("queue");
        assert!(t.queue(i).blocked(500));
        assert!(!t.queue(i).blocked(1000));
        t.apply(&ack(&[(0, 10)]));
        assert!(t.queue(i).attempt.is_some(), "offset 1 still in flight");
        t.apply(&ack(&[(1, 10)]));
        assert!(t.queue(i).attempt.is_none() && !t.queue(i).blocked(0));
    }

    #[test]
    fn reset_drops_leases() {
        let mut t = Tables::default();
        t.apply(&pop(&[(0, 0), (1, 0)], 10, 1000, 2));
        t.apply(&Op::Reset {
            group: "G".into(),
            topic: "T".into(),
            queue: 0,
            next: 0,
        });
        assert_eq!(t.in_flight(), 0);
        assert_eq!(t.next_expiry(), None);
        assert_eq!(t.queue(0).next, Some(0));
    }
}
