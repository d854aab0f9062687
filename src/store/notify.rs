//! A single-threaded "something changed" signal for tasks of one shard.
//!
//! Waiters capture the generation before checking their condition and wait
//! until it moves, so a notification between the check and the wait is never
//! lost. No locks: everything lives on one executor.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

#[derive(Default)]
pub struct Notify {
    generation: Cell<u64>,
    waiters: RefCell<Vec<Waker>>,
}

impl Notify {
    pub fn generation(&self) -> u64 {
        self.generation.get()
    }

    /// Wakes every task waiting on this signal.
    pub fn notify_all(&self) {
        self.generation.set(self.generation.get() + 1);
        let mut waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        for w in waiters.drain(..) {
            w.wake();
        }
        // Keep the buffer: a notify that fires per request would otherwise
        // allocate a new one for the next waiter every time. (Waking only
        // schedules; no waiter registers again during the loop above.)
        let mut slot = self.waiters.borrow_mut();
        if slot.is_empty() {
            *slot = waiters;
        }
    }

    /// Completes once the generation differs from `seen`.
    pub fn changed_since(&self, seen: u64) -> Changed<'_> {
        Changed { notify: self, seen }
    }
}

pub struct Changed<'a> {
    notify: &'a Notify,
    seen: u64,
}

impl Future for Changed<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.notify.generation.get() != self.seen {
            return Poll::Ready(());
        }
        let mut waiters = self.notify.waiters.borrow_mut();
        if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
            waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }
}
