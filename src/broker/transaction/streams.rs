//! Transaction checks for gRPC producers.
//!
//! A 5.x client has no connection the broker can send
//! CHECK_TRANSACTION_STATE on: it opens a Telemetry stream to every endpoint
//! it uses, and the broker pushes `RecoverOrphanedTransactionCommand` down
//! that stream; the client answers with EndTransaction (source
//! SERVER_CHECK) to the same endpoint. A gRPC producer's transactional
//! messages carry their topic as producer group, and its Telemetry
//! settings name the topics it publishes, so each shard keeps, per topic,
//! the Telemetry streams it holds of producers publishing it. The clients
//! send to the endpoint of the shard that owns the queue, so the shard that
//! stores a half message holds a stream of its producer whenever one is
//! online.
//!
//! Imports nothing of the shard (it lives in [`super::state::Transactions`]).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

/// One check to push: the half message as the producer sent it (topic and
/// queue restored), where it is stored, and its transaction id.
pub struct OrphanCheck {
    /// The half message's queue offset in the half queue.
    pub half: u64,
    /// Its encoded physical offset.
    pub position: i64,
    /// The message, encoded as a stored record with its real topic.
    pub record: Vec<u8>,
}

/// Where a check goes: `offer` answers false when the stream is gone (the
/// entry is dropped then) or cannot take it now.
pub trait CheckSink {
    fn offer(&self, check: &OrphanCheck) -> Offer;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    Sent,
    /// The stream's queue is full: try another producer, or the next round.
    Busy,
    /// The stream ended: forget it.
    Closed,
}

/// At most this many producer topics per shard, and streams per topic: a
/// client can make us hold only so much.
pub const MAX_TOPICS: usize = 10_000;
pub const MAX_STREAMS_PER_TOPIC: usize = 1_000;

/// Telemetry streams of gRPC producers on this shard, by topic.
/// A registered stream: its id and where its checks go.
type Stream = (u64, Rc<dyn CheckSink>);

/// Telemetry streams of gRPC producers on this shard, by topic; a stream
/// is named by the id [`CheckStreams::new_stream`] gave it.
#[derive(Default)]
pub struct CheckStreams {
    by_topic: RefCell<HashMap<String, Vec<Stream>>>,
    turn: Cell<usize>,
    next: Cell<u64>,
}

impl CheckStreams {
    /// An id for a new Telemetry stream.
    pub fn new_stream(&self) -> u64 {
        let id = self.next.get();
        self.next.set(id + 1);
        id
    }

    /// Records that stream `stream` publishes `topic` (again: replaces the
    /// sink). False when over a bound.
    pub fn register(&self, topic: &str, stream: u64, sink: Rc<dyn CheckSink>) -> bool {
        let mut t = self.by_topic.borrow_mut();
        if t.len() >= MAX_TOPICS && !t.contains_key(topic) {
            return false;
        }
        let streams = t.entry(topic.to_string()).or_default();
        if let Some(e) = streams.iter_mut().find(|(s, _)| *s == stream) {
            e.1 = sink;
            return true;
        }
        if streams.len() >= MAX_STREAMS_PER_TOPIC {
            return false;
        }
        streams.push((stream, sink));
        true
    }

    /// Forgets a stream (it ended).
    pub fn remove(&self, stream: u64) {
        let mut t = self.by_topic.borrow_mut();
        t.retain(|_, v| {
            v.retain(|(s, _)| *s != stream);
            !v.is_empty()
        });
    }

    /// Pushes `check` to one producer of `topic`, taking turns; true when
    /// one took it.
    pub fn offer(&self, topic: &str, check: &OrphanCheck) -> bool {
        let streams: Vec<Stream> = match self.by_topic.borrow().get(topic) {
            Some(v) => v.clone(),
            None => return false,
        };
        let start = self.turn.get();
        self.turn.set(start.wrapping_add(1));
        let mut closed = Vec::new();
        let mut sent = false;
        for i in 0..streams.len() {
            let (stream, sink) = &streams[(start + i) % streams.len()];
            match sink.offer(check) {
                Offer::Sent => {
                    sent = true;
                    break;
                }
                Offer::Busy => {}
                Offer::Closed => closed.push(*stream),
            }
        }
        for c in closed {
            self.remove(c);
        }
        sent
    }

    /// Whether some stream publishes `topic` (checked before a check reads
    /// its half message).
    pub fn has(&self, topic: &str) -> bool {
        self.by_topic.borrow().contains_key(topic)
    }

    pub fn streams(&self) -> usize {
        self.by_topic.borrow().values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Sink(Cell<Offer>, Cell<u32>);

    impl CheckSink for Sink {
        fn offer(&self, _: &OrphanCheck) -> Offer {
            if self.0.get() == Offer::Sent {
                self.1.set(self.1.get() + 1);
            }
            self.0.get()
        }
    }

    fn check() -> OrphanCheck {
        OrphanCheck {
            half: 1,
            position: 2,
            record: Vec::new(),
        }
    }

    #[test]
    fn checks_take_turns_skip_busy_streams_and_forget_closed_ones() {
        let s = CheckStreams::default();
        let a = Rc::new(Sink(Cell::new(Offer::Sent), Cell::new(0)));
        let b = Rc::new(Sink(Cell::new(Offer::Sent), Cell::new(0)));
        let (ia, ib) = (s.new_stream(), s.new_stream());
        assert_ne!(ia, ib);
        assert!(s.register("T", ia, a.clone()));
        assert!(s.register("T", ib, b.clone()));
        // Registering again replaces, it does not add.
        assert!(s.register("T", ib, b.clone()));
        assert_eq!(s.streams(), 2);
        assert!(s.offer("T", &check()));
        assert!(s.offer("T", &check()));
        assert_eq!((a.1.get(), b.1.get()), (1, 1));
        a.0.set(Offer::Busy);
        assert!(s.offer("T", &check()) && s.offer("T", &check()));
        assert_eq!(b.1.get(), 3);
        b.0.set(Offer::Closed);
        assert!(!s.offer("T", &check()), "busy and closed: nobody took it");
        assert_eq!(s.streams(), 1, "the closed stream is forgotten");
        assert!(!s.offer("U", &check()));
        s.remove(ia);
        assert_eq!(s.streams(), 0);
    }
}
