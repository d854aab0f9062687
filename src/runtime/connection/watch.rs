//! A connection's deadlines (partial frame, idle, write stall), kept by
//! one watchdog task per connection.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use glommio::sync::Semaphore;

use super::{Limits, Outbox};

/// A connection's clocks, kept by its reader and writer and checked by its
/// [`watchdog`]. Keeping them in cells costs a clock read per socket
/// operation; racing every read and write against its own timer cost an
/// io_uring timeout and its cancellation per request.
pub(super) struct Watch {
    /// Requests running (the reader takes a permit per request).
    pub(super) in_flight: Rc<Semaphore>,
    pub(super) max_in_flight: u64,
    /// The last read, or the end of the last request.
    pub(super) last_active: Cell<Instant>,
    /// When the first byte of the frame being read arrived.
    pub(super) frame_started: Cell<Option<Instant>>,
    /// Bytes of that frame read so far (for the log line).
    pub(super) buffered: Cell<usize>,
    /// When the socket write in progress started.
    pub(super) writing_since: Cell<Option<Instant>>,
    /// Replies still to come for parked requests ([`Outbox::defer`] adds
    /// one, [`Outbox::deliver`] takes one). Signed: the two may arrive in
    /// either order from another shard, and only a positive count means
    /// "waiting".
    pub(super) deferred: Cell<i64>,
    /// Why the watchdog closed the connection.
    pub(super) reason: Cell<Option<String>>,
}

impl Watch {
    pub(super) fn new(max_in_flight: u64) -> Watch {
        Watch {
            in_flight: Rc::new(Semaphore::new(max_in_flight)),
            max_in_flight,
            last_active: Cell::new(Instant::now()),
            frame_started: Cell::new(None),
            buffered: Cell::new(0),
            writing_since: Cell::new(None),
            deferred: Cell::new(0),
            reason: Cell::new(None),
        }
    }

    /// The earliest deadline, or the reason it has passed.
    ///
    /// A frame or a write that starts while the watchdog sleeps is seen at
    /// its next wake-up, at most a quarter of the shortest timeout later:
    /// deadlines are kept to within 25 %, with a few timer wake-ups per
    /// timeout per connection and none per request.
    fn check(&self, limits: &Limits, now: Instant) -> Result<Instant, String> {
        let shortest = limits
            .idle_timeout
            .min(limits.partial_frame_timeout)
            .min(limits.write_stall_timeout);
        let mut next = now + (shortest / 4).max(Duration::from_millis(10));
        if let Some(t) = self.frame_started.get() {
            let d = t + limits.partial_frame_timeout;
            if now >= d {
                return Err(format!(
                    "a frame stayed incomplete for {:?} ({} bytes received)",
                    limits.partial_frame_timeout,
                    self.buffered.get()
                ));
            }
            next = next.min(d);
        } else if self.in_flight.available() == self.max_in_flight && self.deferred.get() <= 0 {
            // Waiting for our own replies is not idleness.
            let d = self.last_active.get() + limits.idle_timeout;
            if now >= d {
                return Err(format!("idle for {:?}", limits.idle_timeout));
            }
            next = next.min(d);
        }
        if let Some(t) = self.writing_since.get() {
            let d = t + limits.write_stall_timeout;
            if now >= d {
                return Err(format!("the client read nothing for {:?}", limits.write_stall_timeout));
            }
            next = next.min(d);
        }
        Ok(next)
    }
}

/// Closes the connection when one of its deadlines passes. It sleeps until
/// the earliest deadline and re-checks, so activity costs it nothing: a
/// busy connection wakes it about once per timeout, not once per request.
pub(super) async fn watchdog(watch: Rc<Watch>, out: Rc<Outbox>, limits: Limits) {
    loop {
        if out.closed.get() {
            return;
        }
        let now = Instant::now();
        match watch.check(&limits, now) {
            Ok(next) => {
                let seen = out.closing.generation();
                futures_lite::future::or(glommio::timer::sleep(next - now), out.closing.changed_since(seen)).await;
            }
            Err(why) => {
                watch.reason.set(Some(why));
                out.close();
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            idle_timeout: Duration::from_secs(120),
            partial_frame_timeout: Duration::from_secs(30),
            outbox_max_bytes: 1 << 20,
            write_stall_timeout: Duration::from_secs(20),
        }
    }

    #[test]
    fn an_idle_connection_expires_and_a_busy_one_does_not() {
        let w = Watch::new(4);
        let l = limits();
        let t0 = w.last_active.get();
        // Nothing running: the next wake-up is a quarter of the shortest
        // timeout away, and idleness expires after the idle timeout.
        assert_eq!(w.check(&l, t0), Ok(t0 + Duration::from_secs(5)));
        let late = t0 + Duration::from_secs(121);
        assert!(w.check(&l, late).unwrap_err().starts_with("idle for"));
        // A reply still to come for a parked request is not idleness.
        w.deferred.set(1);
        assert!(w.check(&l, late).is_ok());
        w.deferred.set(0);
        // A request running is not idleness.
        let _permit = w.in_flight.try_acquire_permit(1).expect("a free slot");
        assert!(w.check(&l, late).is_ok());
    }

    #[test]
    fn a_stalled_frame_or_write_expires_after_its_timeout() {
        let w = Watch::new(4);
        let l = limits();
        let t0 = w.last_active.get();
        w.frame_started.set(Some(t0));
        w.buffered.set(100);
        assert_eq!(
            w.check(&l, t0 + Duration::from_secs(29)),
            Ok(t0 + Duration::from_secs(30))
        );
        let why = w.check(&l, t0 + Duration::from_secs(30)).unwrap_err();
        assert!(why.contains("incomplete") && why.contains("100 bytes"), "{why}");
        w.frame_started.set(None);
        w.last_active.set(t0 + Duration::from_secs(30));
        w.writing_since.set(Some(t0 + Duration::from_secs(30)));
        assert!(w.check(&l, t0 + Duration::from_secs(49)).is_ok());
        let why = w.check(&l, t0 + Duration::from_secs(50)).unwrap_err();
        assert!(why.contains("read nothing"), "{why}");
    }
}
