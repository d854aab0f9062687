//! Automatic lease renewal for push consumers (`ReceiveMessage` with
//! `auto_renew`), tied to the client's session.
//!
//! A 5.x PushConsumer names no invisible time: its messages wait in the
//! client's cache and listener for as long as they take, and the broker
//! keeps them invisible meanwhile. Apache's proxy does it in a receipt
//! handle manager; here each gRPC service of a shard keeps the leases it
//! handed out with `auto_renew` and, every [`PERIOD`], renews those due
//! within [`AHEAD`] through [`engine::renew`] — the same handle, so the
//! client's ack still names the lease; the extension grows with each
//! renewal ([`EXTENSIONS`]).
//!
//! Renewal stops when one of these happens; in the first two cases the
//! lease is cut to [`CLEAR`] (Apache's `invisibleTimeMillisWhenClear`) so
//! that the message comes back soon, with `reconsumeTimes + 1`:
//! * the client is gone: no Heartbeat, receive, ack or Telemetry settings
//!   from it for [`SESSION`], or it sent NotifyClientTermination;
//! * it was renewed for [`MAX_RENEW`] (Apache's `renewMaxTimeMillis`);
//! * the lease was acked, changed (a push consumer's nack: the client wants
//!   it back after its backoff), or re-delivered.
//!
//! Bounds: at most [`MAX_LEASES`] renewable leases and [`MAX_CLIENTS`]
//! sessions per service; beyond them a lease is simply not renewed.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::broker::pop::engine;
use crate::broker::pop::state::Outcome;
use crate::broker::shard::Shard;

pub const PERIOD: Duration = Duration::from_secs(5);
pub const AHEAD: Duration = Duration::from_secs(10);
pub const SESSION: Duration = Duration::from_secs(30);
pub const MAX_RENEW: Duration = Duration::from_secs(3 * 3600);
pub const CLEAR: Duration = Duration::from_secs(1);
/// The n-th renewal makes the message invisible this long (the last one
/// repeats).
pub const EXTENSIONS: [Duration; 6] = [
    Duration::from_secs(60),
    Duration::from_secs(180),
    Duration::from_secs(300),
    Duration::from_secs(600),
    Duration::from_secs(1800),
    Duration::from_secs(3600),
];
pub const MAX_LEASES: usize = 200_000;
pub const MAX_CLIENTS: usize = 100_000;

/// A lease: (group, topic, queue, offset).
type Key = (Rc<str>, Rc<str>, u32, u64);

struct Lease {
    client: Rc<str>,
    pop_time: i64,
    visible_at: i64,
    since: Instant,
    renewed: usize,
}

#[derive(Default)]
pub struct Renewals {
    leases: RefCell<HashMap<Key, Lease>>,
    seen: RefCell<HashMap<Rc<str>, Instant>>,
    running: Cell<bool>,
}

impl Renewals {
    /// The client showed it is alive.
    pub fn seen(&self, client: &str) {
        let mut seen = self.seen.borrow_mut();
        let now = Instant::now();
        if let Some(t) = seen.get_mut(client) {
            *t = now;
            return;
        }
        if seen.len() >= MAX_CLIENTS {
            seen.retain(|_, t| now.duration_since(*t) < SESSION);
        }
        if seen.len() < MAX_CLIENTS {
            seen.insert(Rc::from(client), now);
        }
    }

    /// The client ended its session: its leases are cut to [`CLEAR`] at
    /// the next round.
    pub fn gone(&self, client: &str) {
        self.seen.borrow_mut().remove(client);
    }

    /// A lease handed out with `auto_renew` (the receive has marked its
    /// client [`seen`](Self::seen)); starts the renewal task of `shard` when
    /// it is not running.
    #[allow(clippy::too_many_arguments)]
    pub fn hold(
        self: &Rc<Self>,
        shard: &Rc<Shard>,
        client: &str,
        group: &str,
        topic: &str,
        queue: u32,
        offset: u64,
        pop_time: i64,
        visible_at: i64,
    ) {
        {
            let mut leases = self.leases.borrow_mut();
            if leases.len() >= MAX_LEASES {
                return;
            }
            leases.insert(
                (Rc::from(group), Rc::from(topic), queue, offset),
                Lease {
                    client: Rc::from(client),
                    pop_time,
                    visible_at,
                    since: Instant::now(),
                    renewed: 0,
                },
            );
        }
        if !self.running.replace(true) {
            glommio::spawn_local(run(shard.clone(), self.clone())).detach();
        }
    }

    /// The lease was acked, changed or forwarded: no more renewals.
    pub fn release(&self, group: &str, topic: &str, queue: u32, offset: u64) {
        self.leases
            .borrow_mut()
            .remove(&(Rc::from(group), Rc::from(topic), queue, offset));
    }

    pub fn len(&self) -> usize {
        self.leases.borrow().len()
    }

    /// The leases to renew now, and for how long; those whose client is
    /// gone or that were renewed long enough are cut to [`CLEAR`] and
    /// forgotten.
    fn due(&self, now_ms: i64) -> Vec<(Key, i64, Duration)> {
        let now = Instant::now();
        let mut seen = self.seen.borrow_mut();
        seen.retain(|_, t| now.duration_since(*t) < SESSION);
        let mut out = Vec::new();
        self.leases.borrow_mut().retain(|k, l| {
            if !seen.contains_key(&l.client) || now.duration_since(l.since) >= MAX_RENEW {
                out.push((k.clone(), l.pop_time, CLEAR));
                return false;
            }
            if l.visible_at - now_ms <= AHEAD.as_millis() as i64 {
                let ext = EXTENSIONS[l.renewed.min(EXTENSIONS.len() - 1)];
                out.push((k.clone(), l.pop_time, ext));
            }
            true
        });
        out
    }

    fn renewed(&self, k: &Key, visible_at: i64) {
        if let Some(l) = self.leases.borrow_mut().get_mut(k) {
            l.visible_at = visible_at;
            l.renewed += 1;
        }
    }
}

/// Renews due leases every [`PERIOD`] while there are any.
async fn run(shard: Rc<Shard>, r: Rc<Renewals>) {
    while !shard.store.is_stopping() && r.len() > 0 {
        glommio::timer::sleep(PERIOD).await;
        for (k, pop_time, ext) in r.due(crate::broker::pop::now_ms()) {
            let (group, topic, queue, offset) = (&k.0, &k.1, k.2, k.3);
            let ms = ext.as_millis() as i64;
            match engine::renew(&shard, group, topic, queue, offset, pop_time, ms).await {
                Ok(Outcome::Done) if ext == CLEAR => {}
                Ok(Outcome::Done) => r.renewed(&k, crate::broker::pop::now_ms() + ms),
                Ok(_) => r.release(group, topic, queue, offset),
                Err((code, why)) => {
                    log::warn!(
                        "shard {}: renewal of {group}/{topic}/{queue}@{offset} failed ({code}): {why}",
                        shard.id
                    );
                }
            }
        }
    }
    r.running.set(false);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(r: &Renewals, client: &str, offset: u64, visible_at: i64) {
        r.seen(client);
        r.leases.borrow_mut().insert(
            (Rc::from("G"), Rc::from("T"), 0, offset),
            Lease {
                client: Rc::from(client),
                pop_time: 7,
                visible_at,
                since: Instant::now(),
                renewed: 0,
            },
        );
    }

    #[test]
    fn only_leases_near_their_end_of_live_clients_are_due() {
        let r = Renewals::default();
        lease(&r, "a", 1, 1_000 + 5_000); // due within 10 s
        lease(&r, "a", 2, 1_000 + 50_000); // not yet
        lease(&r, "b", 3, 1_000 + 1_000);
        r.gone("b");
        let mut due = r.due(1_000);
        due.sort_by_key(|d| d.0 .3);
        assert_eq!(due.len(), 2);
        assert_eq!((due[0].0 .3, due[0].1, due[0].2), (1, 7, EXTENSIONS[0]));
        assert_eq!(
            (due[1].0 .3, due[1].2),
            (3, CLEAR),
            "the gone client's lease is cut short"
        );
        assert_eq!(r.len(), 2, "and forgotten");
        r.renewed(&due[0].0, 61_000);
        r.renewed(&due[0].0, 61_000);
        // Its next renewal is longer; offset 2 is due by then too.
        let due = r.due(55_000);
        let ext: Vec<(u64, Duration)> = due.iter().map(|d| (d.0 .3, d.2)).collect();
        assert_eq!(ext.len(), 2);
        assert!(ext.contains(&(1, EXTENSIONS[2])) && ext.contains(&(2, EXTENSIONS[0])));
        r.release("G", "T", 0, 1);
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn a_silent_client_loses_its_renewals() {
        let r = Renewals::default();
        lease(&r, "a", 1, 0);
        *r.seen.borrow_mut().get_mut("a").expect("seen") -= SESSION;
        let due = r.due(0);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].2, CLEAR);
        assert_eq!(r.len(), 0);
    }
}
