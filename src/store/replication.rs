//! The replication gate of a SYNC_MASTER shard: an append is acknowledged
//! only once an in-sync slave holds it durably.
//!
//! The HA service (`broker::ha`) reports what the slaves have made durable
//! ([`ReplicaGate::set_acked`]) and how many of them are in sync
//! ([`ReplicaGate::set_in_sync`]); appenders wait with
//! [`ReplicaGate::wait`] after their local flush. The waiters are the same
//! offset-ordered queue as the local flush's ([`super::durable_wait`]): a
//! slave's ack wakes exactly the appends it covers, so one replication
//! round acknowledges every append waiting below it — group commit across
//! the network.
//!
//! Outcomes, RocketMQ's statuses:
//! * [`Replicated::Yes`] — a slave acknowledged a durable copy;
//! * [`Replicated::NoSlave`] — no slave is in sync when the append starts
//!   waiting, or the last one drops out while it waits
//!   (`SLAVE_NOT_AVAILABLE`): there is nobody to wait for;
//! * [`Replicated::TimedOut`] — slaves are in sync but none acknowledged
//!   before the deadline (`FLUSH_SLAVE_TIMEOUT`).
//!
//! In every case the message is stored on the master: the status says how
//! far its redundancy got, as in RocketMQ.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::durable_wait::Waiters;

/// How a replication wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replicated {
    Yes,
    TimedOut,
    NoSlave,
}

#[derive(Default)]
pub struct ReplicaGate {
    /// Everything below is durable on an in-sync slave.
    acked: Cell<u64>,
    /// Slaves in sync now.
    in_sync: Cell<u32>,
    /// Bumped whenever `in_sync` drops to 0: a waiter registered in an
    /// earlier epoch lost its slave.
    lost: Cell<u64>,
    waiters: Waiters,
}

impl ReplicaGate {
    pub fn new() -> Rc<ReplicaGate> {
        Rc::new(ReplicaGate::default())
    }

    /// Everything below `end` is durable on an in-sync slave (monotone:
    /// a lower value is ignored).
    pub fn set_acked(&self, end: u64) {
        if end > self.acked.get() {
            self.acked.set(end);
            self.waiters.wake_covered(end);
        }
    }

    pub fn acked(&self) -> u64 {
        self.acked.get()
    }

    /// The number of slaves in sync. Dropping to 0 ends every wait with
    /// [`Replicated::NoSlave`].
    pub fn set_in_sync(&self, n: u32) {
        let before = self.in_sync.replace(n);
        if before > 0 && n == 0 {
            self.lost.set(self.lost.get() + 1);
            self.waiters.wake_all();
        }
    }

    pub fn in_sync(&self) -> u32 {
        self.in_sync.get()
    }

    /// Replication waiters queued now.
    pub fn waiting(&self) -> usize {
        self.waiters.len()
    }

    /// Waits until an in-sync slave holds everything below `end` durably.
    pub fn wait(&self, end: u64, deadline: Instant) -> WaitReplicated<'_> {
        WaitReplicated {
            gate: self,
            end,
            deadline,
            epoch: self.lost.get(),
            slot: None,
        }
    }

    /// Wakes the waiters whose deadline passed, every `tick`, until the
    /// task is dropped.
    pub async fn run_ticker(self: Rc<Self>, tick: Duration) {
        loop {
            glommio::timer::sleep(tick).await;
            self.waiters.wake_expired(Instant::now());
        }
    }
}

/// The future of [`ReplicaGate::wait`].
pub struct WaitReplicated<'a> {
    gate: &'a ReplicaGate,
    end: u64,
    deadline: Instant,
    epoch: u64,
    slot: Option<u64>,
}

impl std::future::Future for WaitReplicated<'_> {
    type Output = Replicated;
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Replicated> {
        let g = self.gate;
        let outcome = if g.acked.get() >= self.end {
            Some(Replicated::Yes)
        } else if g.in_sync.get() == 0 || g.lost.get() != self.epoch {
            Some(Replicated::NoSlave)
        } else if Instant::now() >= self.deadline {
            Some(Replicated::TimedOut)
        } else {
            None
        };
        if let Some(r) = outcome {
            g.waiters.forget(self.slot.take(), self.end);
            return std::task::Poll::Ready(r);
        }
        let (end, deadline) = (self.end, self.deadline);
        g.waiters.register(&mut self.slot, end, deadline, cx.waker());
        std::task::Poll::Pending
    }
}

impl Drop for WaitReplicated<'_> {
    fn drop(&mut self) {
        self.gate.waiters.forget(self.slot.take(), self.end);
    }
}

/// Controller mode: a master may write only while the controller has
/// confirmed it recently. The broker's agent grants the lease up to
/// `sent + masterLeaseMillis` for each heartbeat (sent at `sent`) that the
/// controller answered naming this broker master; the controller elects
/// another master only after `heartbeat timeout` without a heartbeat,
/// which is longer. So a master cut off from the controller stops
/// acknowledging before any other broker can start: there is never a
/// moment with two writable masters (clock *rates* assumed alike, not
/// clocks). Shared by the agent thread and every shard: one atomic.
pub struct WriteLease {
    base: Instant,
    /// Milliseconds after `base` until which writes are allowed (0: none).
    until_ms: std::sync::atomic::AtomicU64,
}

impl WriteLease {
    pub fn new() -> std::sync::Arc<WriteLease> {
        std::sync::Arc::new(WriteLease {
            base: Instant::now(),
            until_ms: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Writes are allowed until `t` (never shortens a later grant).
    pub fn grant_until(&self, t: Instant) {
        let ms = t.saturating_duration_since(self.base).as_millis() as u64;
        self.until_ms.fetch_max(ms, std::sync::atomic::Ordering::SeqCst);
    }

    /// No more writes until the next grant.
    pub fn revoke(&self) {
        self.until_ms.store(0, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn valid(&self) -> bool {
        let now = Instant::now().saturating_duration_since(self.base).as_millis() as u64;
        now < self.until_ms.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_allows_writes_until_it_lapses_or_is_revoked() {
        let l = WriteLease::new();
        assert!(!l.valid(), "none granted");
        l.grant_until(Instant::now() + Duration::from_secs(5));
        assert!(l.valid());
        l.grant_until(Instant::now());
        assert!(l.valid(), "an earlier grant does not shorten a later one");
        l.revoke();
        assert!(!l.valid());
        l.grant_until(Instant::now() + Duration::from_millis(30));
        std::thread::sleep(Duration::from_millis(60));
        assert!(!l.valid(), "lapsed");
    }
    use std::future::Future;
    use std::task::{Context, Poll, Waker};

    fn poll<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
        let mut cx = Context::from_waker(Waker::noop());
        std::pin::Pin::new(f).poll(&mut cx)
    }

    #[test]
    fn no_slave_in_sync_answers_at_once() {
        let g = ReplicaGate::new();
        let far = Instant::now() + Duration::from_secs(60);
        assert_eq!(poll(&mut g.wait(10, far)), Poll::Ready(Replicated::NoSlave));
    }

    #[test]
    fn an_ack_wakes_exactly_the_appends_it_covers() {
        let g = ReplicaGate::new();
        g.set_in_sync(1);
        let far = Instant::now() + Duration::from_secs(60);
        let mut a = g.wait(100, far);
        let mut b = g.wait(200, far);
        assert!(poll(&mut a).is_pending());
        assert!(poll(&mut b).is_pending());
        assert_eq!(g.waiting(), 2);
        g.set_acked(150);
        assert_eq!(g.waiting(), 1);
        assert_eq!(poll(&mut a), Poll::Ready(Replicated::Yes));
        assert!(poll(&mut b).is_pending());
        g.set_acked(120); // stale ack: ignored
        assert_eq!(g.acked(), 150);
        g.set_acked(200);
        assert_eq!(poll(&mut b), Poll::Ready(Replicated::Yes));
        assert_eq!(g.waiting(), 0);
    }

    #[test]
    fn losing_the_last_slave_ends_waits_with_no_slave() {
        let g = ReplicaGate::new();
        g.set_in_sync(1);
        let far = Instant::now() + Duration::from_secs(60);
        let mut a = g.wait(100, far);
        assert!(poll(&mut a).is_pending());
        g.set_in_sync(0);
        g.set_in_sync(1); // a slave is back before the waiter runs
        assert_eq!(poll(&mut a), Poll::Ready(Replicated::NoSlave));
        assert_eq!(g.waiting(), 0);
    }

    #[test]
    fn a_deadline_passes_as_timed_out_and_a_dropped_waiter_leaves_the_queue() {
        let g = ReplicaGate::new();
        g.set_in_sync(1);
        let mut a = g.wait(100, Instant::now());
        assert_eq!(poll(&mut a), Poll::Ready(Replicated::TimedOut));
        {
            let mut b = g.wait(100, Instant::now() + Duration::from_secs(60));
            assert!(poll(&mut b).is_pending());
            assert_eq!(g.waiting(), 1);
        }
        assert_eq!(g.waiting(), 0);
    }
}
