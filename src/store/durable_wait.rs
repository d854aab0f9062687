//! Durability waiters, queued by the log offset they wait for.
//!
//! An appender waits until everything below the end of its record is
//! durable. The flusher publishes durability in log order, so the waiters
//! form a queue sorted by `end`: when `flushed` moves, exactly the prefix
//! of the queue it covers is woken — no waiter is woken for a flush that
//! does not cover it, and a flush costs O(woken), not O(waiting).
//!
//! Appenders usually register in log order (they reserve, write and wait
//! without suspending in between), so an insert lands at the back; one
//! that registers late is placed by binary search. A waiter that is
//! polled again finds its entry by `(end, id)` and refreshes the waker;
//! a waiter dropped while queued (its request was cancelled) removes its
//! entry, so the queue holds only live waiters.
//!
//! Deadlines are not timers per waiter: [`Waiters::wake_expired`] runs on
//! a periodic tick and wakes the entries whose deadline has passed.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::task::Waker;
use std::time::Instant;

struct Entry {
    end: u64,
    id: u64,
    deadline: Instant,
    waker: Waker,
}

impl Entry {
    fn key(&self) -> (u64, u64) {
        (self.end, self.id)
    }
}

#[derive(Default)]
pub struct Waiters {
    queue: RefCell<VecDeque<Entry>>,
    next_id: Cell<u64>,
    /// The highest offset [`wake_covered`](Self::wake_covered) was called
    /// with: no entry at or below it is queued (a waiter registers only
    /// while its end is above the durable point).
    covered: Cell<u64>,
}

impl Waiters {
    /// Queues (or refreshes) the waiter `slot` for `end`. `slot` keeps the
    /// waiter's id between polls; it is `None` before the first one.
    pub fn register(&self, slot: &mut Option<u64>, end: u64, deadline: Instant, waker: &Waker) {
        let mut q = self.queue.borrow_mut();
        if let Some(id) = *slot {
            if let Ok(i) = q.binary_search_by_key(&(end, id), Entry::key) {
                if !q[i].waker.will_wake(waker) {
                    q[i].waker = waker.clone();
                }
                return;
            }
            // Woken (and dequeued) but not covered yet: queue again.
        }
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        *slot = Some(id);
        let entry = Entry {
            end,
            id,
            deadline,
            waker: waker.clone(),
        };
        // Ids grow, so (end, id) sorts after every queued entry with the
        // same end: the common case is a push at the back.
        if q.back().is_none_or(|b| b.end <= end) {
            q.push_back(entry);
        } else {
            let at = q.partition_point(|e| e.end <= end);
            q.insert(at, entry);
        }
    }

    /// Removes the waiter's entry if it is still queued (it completed or
    /// was dropped without being woken).
    pub fn forget(&self, slot: Option<u64>, end: u64) {
        let Some(id) = slot else { return };
        if end <= self.covered.get() {
            return; // dequeued when it was woken
        }
        let mut q = self.queue.borrow_mut();
        if let Ok(i) = q.binary_search_by_key(&(end, id), Entry::key) {
            q.remove(i);
        }
    }

    /// Wakes (and dequeues) every waiter whose record ends at or below
    /// `flushed`.
    pub fn wake_covered(&self, flushed: u64) {
        self.covered.set(self.covered.get().max(flushed));
        loop {
            // One entry at a time: waking only schedules the task, but the
            // borrow must not be held while foreign code runs.
            let entry = {
                let mut q = self.queue.borrow_mut();
                match q.front() {
                    Some(e) if e.end <= flushed => q.pop_front(),
                    _ => None,
                }
            };
            match entry {
                Some(e) => e.waker.wake(),
                None => return,
            }
        }
    }

    /// Wakes (and dequeues) every waiter whose deadline has passed.
    pub fn wake_expired(&self, now: Instant) {
        let expired: Vec<Waker> = {
            let mut q = self.queue.borrow_mut();
            if !q.iter().any(|e| e.deadline <= now) {
                return;
            }
            let mut out = Vec::new();
            q.retain(|e| {
                if e.deadline <= now {
                    out.push(e.waker.clone());
                    false
                } else {
                    true
                }
            });
            out
        };
        for w in expired {
            w.wake();
        }
    }

    /// Wakes (and dequeues) every waiter: the log failed.
    pub fn wake_all(&self) {
        let all = std::mem::take(&mut *self.queue.borrow_mut());
        for e in all {
            e.waker.wake();
        }
    }

    pub fn len(&self) -> usize {
        self.queue.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.borrow().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;
    use std::time::Duration;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn waker() -> (Arc<Count>, Waker) {
        let c = Arc::new(Count(AtomicUsize::new(0)));
        (c.clone(), Waker::from(c))
    }

    fn woken(c: &Count) -> usize {
        c.0.load(Ordering::SeqCst)
    }

    #[test]
    fn wakes_exactly_the_covered_prefix_in_any_registration_order() {
        let w = Waiters::default();
        let far = Instant::now() + Duration::from_secs(60);
        let ends = [300u64, 100, 200, 100, 500];
        let mut counters = Vec::new();
        for end in ends {
            let (c, wk) = waker();
            let mut slot = None;
            w.register(&mut slot, end, far, &wk);
            counters.push((end, c));
        }
        w.wake_covered(99);
        assert!(counters.iter().all(|(_, c)| woken(c) == 0));
        w.wake_covered(200);
        for (end, c) in &counters {
            assert_eq!(woken(c), usize::from(*end <= 200), "end {end}");
        }
        assert_eq!(w.len(), 2);
        w.wake_covered(1000);
        assert!(counters.iter().all(|(_, c)| woken(c) == 1));
        assert!(w.is_empty());
    }

    #[test]
    fn a_second_poll_refreshes_instead_of_queueing_twice_and_forget_removes() {
        let w = Waiters::default();
        let far = Instant::now() + Duration::from_secs(60);
        let (c1, wk1) = waker();
        let (c2, wk2) = waker();
        let mut slot = None;
        w.register(&mut slot, 10, far, &wk1);
        w.register(&mut slot, 10, far, &wk2);
        assert_eq!(w.len(), 1);
        w.wake_covered(10);
        assert_eq!((woken(&c1), woken(&c2)), (0, 1));
        // Woken but polled again before being covered: queued anew.
        w.register(&mut slot, 20, far, &wk1);
        assert_eq!(w.len(), 1);
        w.forget(slot, 20);
        assert!(w.is_empty());
        w.forget(slot, 20); // already gone: no effect
    }

    #[test]
    fn expired_waiters_are_woken_and_others_stay() {
        let w = Waiters::default();
        let now = Instant::now();
        let (c1, wk1) = waker();
        let (c2, wk2) = waker();
        w.register(&mut None, 10, now, &wk1);
        w.register(&mut None, 20, now + Duration::from_secs(60), &wk2);
        w.wake_expired(now);
        assert_eq!((woken(&c1), woken(&c2)), (1, 0));
        assert_eq!(w.len(), 1);
        w.wake_all();
        assert_eq!(woken(&c2), 1);
        assert!(w.is_empty());
    }
}
