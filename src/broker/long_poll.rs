//! Held long-poll pulls, kept as registrations (codes.md §2.3).
//!
//! A pull that finds nothing new and may be suspended is parked here: a
//! record of the request, the client, its queue and its deadline. It is
//! not a task and holds none of its connection's request slots; the
//! connection only learns that a reply will come later
//! ([`crate::runtime::connection::Outbox::defer`]), which keeps it from
//! counting as idle. One task per shard ([`super::pull::answer_parked`])
//! takes the registrations that are due — their queue got a message (the
//! send path calls [`LongPolls::wake`] once the message is visible to
//! readers) or their time is up — and answers each by running the pull once
//! more, without suspension. One timer per shard (the earliest deadline),
//! none per registration.
//!
//! Bounds: [`MAX_HELD`] registrations per shard and
//! [`MAX_HELD_PER_CONNECTION`] per client connection; a pull beyond either
//! is answered at once, as if its hold time were 0. A registration costs
//! its request (header fields, no body) plus ~150 bytes of indexes.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use futures_lite::future;

use crate::protocol::RemotingCommand;
use crate::runtime::mesh::ClientRef;
use crate::store::notify::Notify;

/// Registrations per shard at most.
pub const MAX_HELD: usize = 100_000;
/// Registrations per client connection at most (a consumer holds one per
/// queue it pulls from this broker).
pub const MAX_HELD_PER_CONNECTION: u32 = 1024;

/// The queue of a registration that waits for any queue of its topic
/// (an any-queue pop): woken by every queue of the topic.
pub const ANY_QUEUE: u32 = u32::MAX;

/// A parked pull.
pub struct Parked {
    /// The pull request as it arrived (queue id already global).
    pub cmd: RemotingCommand,
    pub client: ClientRef,
    pub topic: String,
    pub queue: u32,
    deadline: Instant,
    /// A waiter that answers itself (a gRPC long poll): told when due
    /// instead of having `cmd` run again.
    pub notify: Option<futures::channel::oneshot::Sender<()>>,
}

impl Parked {
    pub fn new(cmd: RemotingCommand, client: ClientRef, topic: String, queue: u32) -> Parked {
        Parked {
            cmd,
            client,
            topic,
            queue,
            deadline: Instant::now(),
            notify: None,
        }
    }

    /// A waiter told through `tx` when (topic, queue) gets a message or its
    /// time is up.
    pub fn waiter(client: ClientRef, topic: String, queue: u32, tx: futures::channel::oneshot::Sender<()>) -> Parked {
        let mut p = Parked::new(RemotingCommand::new_request(0), client, topic, queue);
        p.notify = Some(tx);
        p
    }
}

type Ids = HashSet<u64>;

#[derive(Default)]
pub struct LongPolls {
    next_id: Cell<u64>,
    entries: RefCell<HashMap<u64, Parked>>,
    /// topic → queue → ids parked on it.
    queues: RefCell<HashMap<String, HashMap<u32, Ids>>>,
    deadlines: RefCell<BTreeSet<(Instant, u64)>>,
    /// (client shard, connection) → registrations.
    per_conn: RefCell<HashMap<(u16, u64), u32>>,
    /// Woken: to answer now.
    due: RefCell<Vec<u64>>,
    signal: Notify,
}

impl LongPolls {
    /// Registrations held now.
    pub fn held(&self) -> usize {
        self.entries.borrow().len()
    }

    /// Registrations waiting on (topic, queue), the topic's any-queue ones
    /// included.
    pub fn held_on(&self, topic: &str, queue: u32) -> usize {
        self.queues.borrow().get(topic).map_or(0, |by_queue| {
            by_queue.get(&queue).map_or(0, |ids| ids.len()) + by_queue.get(&ANY_QUEUE).map_or(0, |ids| ids.len())
        })
    }

    /// Whether the shard and `client`'s connection are both under their
    /// bounds (see [`LongPolls::park`]).
    pub fn has_room(&self, client: &ClientRef) -> bool {
        self.entries.borrow().len() < MAX_HELD
            && self
                .per_conn
                .borrow()
                .get(&(client.shard, client.conn))
                .is_none_or(|n| *n < MAX_HELD_PER_CONNECTION)
    }

    /// Parks `p` for `hold`. The caller checked [`LongPolls::has_room`]
    /// (nothing may run in between: parking never yields).
    pub fn park(&self, mut p: Parked, hold: Duration) {
        let conn = (p.client.shard, p.client.conn);
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        p.deadline = Instant::now() + hold;
        self.deadlines.borrow_mut().insert((p.deadline, id));
        self.queues
            .borrow_mut()
            .entry(p.topic.clone())
            .or_default()
            .entry(p.queue)
            .or_default()
            .insert(id);
        *self.per_conn.borrow_mut().entry(conn).or_insert(0) += 1;
        self.entries.borrow_mut().insert(id, p);
        // The answering task may be sleeping until a later deadline.
        self.signal.notify_all();
    }

    /// A message became visible on (topic, queue): its registrations and
    /// the topic's [`ANY_QUEUE`] ones are due. Costs one map lookup when
    /// nothing is parked on the topic.
    pub fn wake(&self, topic: &str, queue: u32) {
        let ids = {
            let mut queues = self.queues.borrow_mut();
            let Some(by_queue) = queues.get_mut(topic) else {
                return;
            };
            let mut ids = by_queue.remove(&queue).unwrap_or_default();
            if let Some(any) = by_queue.remove(&ANY_QUEUE) {
                ids.extend(any);
            }
            if by_queue.is_empty() {
                queues.remove(topic);
            }
            if ids.is_empty() {
                return;
            }
            ids
        };
        self.due.borrow_mut().extend(ids);
        self.signal.notify_all();
    }

    /// Waits until registrations are due (woken or expired) and takes them.
    pub async fn next_due(&self) -> Vec<Parked> {
        loop {
            let seen = self.signal.generation();
            let now = Instant::now();
            let mut out = Vec::new();
            let woken = std::mem::take(&mut *self.due.borrow_mut());
            out.extend(woken.into_iter().filter_map(|id| self.take(id)));
            loop {
                let first = self.deadlines.borrow().first().copied();
                match first {
                    Some((t, id)) if t <= now => out.extend(self.take(id)),
                    _ => break,
                }
            }
            if !out.is_empty() {
                return out;
            }
            let next = self.deadlines.borrow().first().map(|(t, _)| *t);
            match next {
                Some(t) => future::or(self.signal.changed_since(seen), glommio::timer::sleep(t - now)).await,
                None => self.signal.changed_since(seen).await,
            }
        }
    }

    /// Removes registration `id` from every index.
    fn take(&self, id: u64) -> Option<Parked> {
        let p = self.entries.borrow_mut().remove(&id)?;
        self.deadlines.borrow_mut().remove(&(p.deadline, id));
        {
            let mut queues = self.queues.borrow_mut();
            if let Some(by_queue) = queues.get_mut(&p.topic) {
                if let Some(ids) = by_queue.get_mut(&p.queue) {
                    ids.remove(&id);
                    if ids.is_empty() {
                        by_queue.remove(&p.queue);
                    }
                }
                if by_queue.is_empty() {
                    queues.remove(&p.topic);
                }
            }
        }
        let conn = (p.client.shard, p.client.conn);
        let mut per_conn = self.per_conn.borrow_mut();
        if let Some(n) = per_conn.get_mut(&conn) {
            *n -= 1;
            if *n == 0 {
                per_conn.remove(&conn);
            }
        }
        Some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::mesh::View;

    /// Parks like the pull handler does: when there is room.
    fn park(lp: &LongPolls, p: Parked, hold: Duration) -> bool {
        let room = lp.has_room(&p.client);
        if room {
            lp.park(p, hold);
        }
        room
    }

    fn parked(conn: u64, topic: &str, queue: u32) -> Parked {
        let client = ClientRef {
            shard: 0,
            conn,
            addr: "127.0.0.1:1".parse().expect("addr"),
            view: View::Main,
            verified: Default::default(),
        };
        Parked::new(RemotingCommand::new_request(11), client, topic.into(), queue)
    }

    fn run<F, Fut>(f: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + 'static,
    {
        crate::runtime::run_on_executor("long-poll-test", f)
    }

    #[test]
    fn a_wake_makes_that_queue_due_and_leaves_no_trace() {
        run(|| async {
            let lp = LongPolls::default();
            assert!(park(&lp, parked(1, "T", 0), Duration::from_secs(30)));
            assert!(park(&lp, parked(1, "T", 1), Duration::from_secs(30)));
            assert!(park(&lp, parked(2, "T", 0), Duration::from_secs(30)));
            lp.wake("T", 7);
            lp.wake("U", 0);
            lp.wake("T", 0);
            let due = lp.next_due().await;
            let mut conns: Vec<u64> = due.iter().map(|p| p.client.conn).collect();
            conns.sort();
            assert_eq!(conns, vec![1, 2]);
            assert!(due.iter().all(|p| p.queue == 0));
            assert_eq!(lp.held(), 1);
            assert_eq!(lp.per_conn.borrow().get(&(0, 1)), Some(&1));
            assert!(!lp.per_conn.borrow().contains_key(&(0, 2)));
            assert_eq!(lp.deadlines.borrow().len(), 1);
            assert_eq!(lp.queues.borrow()["T"].len(), 1);
        });
    }

    #[test]
    fn registrations_expire_in_deadline_order_with_one_timer() {
        run(|| async {
            let lp = LongPolls::default();
            let t0 = Instant::now();
            assert!(park(&lp, parked(1, "T", 0), Duration::from_millis(300)));
            assert!(park(&lp, parked(2, "T", 0), Duration::from_millis(100)));
            let first = lp.next_due().await;
            assert_eq!(first.iter().map(|p| p.client.conn).collect::<Vec<_>>(), vec![2]);
            assert!(t0.elapsed() >= Duration::from_millis(100));
            let second = lp.next_due().await;
            assert_eq!(second.iter().map(|p| p.client.conn).collect::<Vec<_>>(), vec![1]);
            assert!(t0.elapsed() >= Duration::from_millis(300));
            assert_eq!(lp.held(), 0);
            assert!(lp.queues.borrow().is_empty() && lp.per_conn.borrow().is_empty());
        });
    }

    #[test]
    fn a_connection_cannot_park_more_than_its_share() {
        run(|| async {
            let lp = LongPolls::default();
            for q in 0..MAX_HELD_PER_CONNECTION {
                assert!(park(&lp, parked(1, "T", q), Duration::from_secs(30)));
            }
            let refused = !park(&lp, parked(1, "T", 0), Duration::from_secs(30));
            assert!(refused, "the connection is over its share");
            assert!(park(&lp, parked(2, "T", 0), Duration::from_secs(30)));
            assert_eq!(lp.held(), MAX_HELD_PER_CONNECTION as usize + 1);
        });
    }
}
