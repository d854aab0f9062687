//! The store's side of master/slave replication (the HA stream itself is
//! `broker::ha`).
//!
//! A slave's CommitLog is a byte-for-byte copy of its master's, at the
//! same log offsets: message ids, physical offsets and queue offsets mean
//! the same on both, so a consumer can move between them. The master
//! reads whole records of its log ([`MessageStore::log_chunk`], durable
//! bytes only); the slave places each record where the master had it
//! ([`MessageStore::replicate`]) with the ordinary append machinery
//! (reserve, tail cache, group commit), so everything the write path
//! guarantees — O_DIRECT, fdatasync, recovery — holds for the copy, and
//! indexes it like recovery does (consume queue, marks, key index).
//!
//! Segment rolls need no message of their own: the master's BLANK marker
//! is sent alone, the slave skips it, and the next record — which starts
//! the next segment on the master — makes the slave's own `reserve` roll
//! and write the same BLANK at the same offset (it depends only on the
//! write position and the segment size, which the handshake compares).

use std::rc::Rc;

use crate::store::commit_log::ReserveError;
use crate::store::error::StoreError;
use crate::store::notify::Notify;
use crate::store::position::{LogOffset, PhysicalOffset};
use crate::store::record::{be_u32, check_record, properties_of, RecordCheck, BLANK_SIZE, MAGIC_BLANK};
use crate::store::replication::ReplicaGate;

use super::dispatch::dispatch_recovered;
use super::MessageStore;

/// What [`MessageStore::replicate`] made of a chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replicate {
    /// Every record was placed (or the chunk was a BLANK marker).
    Done,
    /// The first `n` bytes were placed; the rest waits for the flusher to
    /// make room in the tail cache (or for a segment): try again.
    Partly(usize),
}

impl MessageStore {
    /// A master's replication state; with `wait` (SYNC_MASTER) every
    /// acknowledged append waits for `gate` too.
    pub fn set_replica_gate(&self, gate: Option<Rc<ReplicaGate>>, wait: bool) {
        *self.inner.replica_gate.borrow_mut() = gate;
        self.inner.wait_for_replica.set(wait);
    }

    /// Whether acknowledged appends wait for the replica gate (controller
    /// mode changes it with the in-sync set).
    pub fn set_replica_wait(&self, wait: bool) {
        self.inner.wait_for_replica.set(wait);
    }

    /// (slaves in sync, log end they hold durably) of a master.
    pub fn replica_status(&self) -> Option<(u32, u64)> {
        self.inner
            .replica_gate
            .borrow()
            .as_ref()
            .map(|g| (g.in_sync(), g.acked()))
    }

    /// Makes this a slave's store: puts are refused, naming `master`.
    pub fn set_slave_of(&self, master: Option<String>) {
        *self.inner.slave_of.borrow_mut() = master;
    }

    /// Controller mode: puts also need `lease` to be valid.
    pub fn set_write_lease(&self, lease: Option<std::sync::Arc<crate::store::replication::WriteLease>>) {
        *self.inner.write_lease.borrow_mut() = lease;
    }

    /// Waits (at most `within`) until everything written to the log so
    /// far is durable; false when it is not by then, or the log failed.
    pub async fn wait_written_durable(&self, within: std::time::Duration) -> bool {
        let log = &self.inner.log;
        let end = log.write_pos();
        matches!(
            log.wait_durable(end, std::time::Instant::now() + within).await,
            crate::store::commit_log::Durability::Durable
        )
    }

    /// Fires whenever the durable end of the log moves.
    pub fn durable_changed(&self) -> &Notify {
        &self.inner.log.durable_progress
    }

    pub fn segment_size(&self) -> u64 {
        self.inner.log.segment_size()
    }

    /// Master: whole records from log offset `pos` (a record boundary),
    /// durable ones only, at most `max` bytes unless the first record is
    /// larger, and never across a segment end. A BLANK marker comes alone
    /// (its 8 bytes) and `next` is then the next segment's base. `None`:
    /// nothing durable at `pos` yet.
    pub async fn log_chunk(&self, pos: u64, max: usize) -> Result<Option<(Vec<u8>, u64)>, StoreError> {
        let log = &self.inner.log;
        let flushed = log.flushed();
        if pos >= flushed {
            return Ok(None);
        }
        let seg = log.segment_size();
        let seg_end = pos - pos % seg + seg;
        let avail = (flushed.min(seg_end) - pos) as usize;
        let corrupt = |what: String| StoreError::Corrupt {
            path: log.dir().to_path_buf(),
            what,
        };
        // One read covers the chunk; only a first record larger than `max`
        // needs a second, of its own size.
        let mut buf = log.read(pos, max.max(BLANK_SIZE).min(avail)).await?;
        let (Some(total), Some(magic)) = (be_u32(&buf, 0), be_u32(&buf, 4)) else {
            return Err(corrupt(format!("no record header at log offset {pos}")));
        };
        if magic == MAGIC_BLANK {
            buf.truncate(BLANK_SIZE);
            return Ok(Some((buf, seg_end)));
        }
        let total = total as usize;
        if total < BLANK_SIZE || total > avail {
            return Err(corrupt(format!(
                "record at log offset {pos} claims {total} bytes, {avail} are durable in its segment"
            )));
        }
        if total > buf.len() {
            buf = log.read(pos, total).await?;
        }
        // Whole records only: stop before a partial one or a BLANK.
        let mut end = 0usize;
        while end + BLANK_SIZE <= buf.len() {
            let (Some(n), Some(m)) = (be_u32(&buf, end), be_u32(&buf, end + 4)) else {
                break;
            };
            let n = n as usize;
            if m == MAGIC_BLANK || n < BLANK_SIZE || end + n > buf.len() {
                break;
            }
            end += n;
        }
        buf.truncate(end);
        Ok(Some((buf, pos + end as u64)))
    }

    /// Slave: places the master's records `bytes`, which sat at log offset
    /// `pos` on the master, at the same offsets here. Each record is
    /// checked (magic, size, physical offset, body CRC) before it is
    /// placed; one that does not land exactly where the master had it
    /// means the two logs diverged, and nothing more is taken.
    /// `on_record` hears the (topic, queue) of each record indexed.
    pub fn replicate(&self, pos: u64, bytes: &[u8], on_record: &mut dyn FnMut(&str, u32)) -> Result<Replicate, String> {
        let inner = &*self.inner;
        let log = &inner.log;
        let shard = inner.cfg.shard_id;
        let seg = log.segment_size();
        let mut at = 0usize;
        while at < bytes.len() {
            let write_pos = log.write_pos();
            let rec_pos = pos + at as u64;
            let phys = PhysicalOffset::new(shard, LogOffset(rec_pos)).0;
            let v = match check_record(&bytes[at..], Some(phys), true) {
                RecordCheck::Record(v) => v,
                RecordCheck::Blank if at == 0 => {
                    // The master rolled here; our next reserve will too.
                    return if rec_pos == write_pos {
                        Ok(Replicate::Done)
                    } else {
                        Err(format!(
                            "master BLANK at log offset {rec_pos}, the slave log is at {write_pos}"
                        ))
                    };
                }
                RecordCheck::Blank => return Err(format!("BLANK marker inside a chunk at log offset {rec_pos}")),
                RecordCheck::NeedMore(_) => return Err(format!("partial record at log offset {rec_pos}")),
                RecordCheck::Invalid(why) => return Err(format!("record at log offset {rec_pos}: {why}")),
            };
            let size = v.total_size as usize;
            // The master rolled before this record although it would have
            // fitted: it was part of a batch that did not.
            let rolled_here = rec_pos != write_pos && rec_pos == write_pos - write_pos % seg + seg;
            let reserved = if rolled_here {
                log.reserve_in_next_segment(size)
            } else {
                log.reserve(size)
            };
            let here = match reserved {
                Ok(p) => p,
                Err(ReserveError::Busy) | Err(ReserveError::Unavailable(_)) if at > 0 => {
                    return Ok(Replicate::Partly(at));
                }
                Err(ReserveError::Busy) | Err(ReserveError::Unavailable(_)) => return Ok(Replicate::Partly(0)),
                Err(ReserveError::TooLarge) => {
                    return Err(format!(
                        "record of {size} bytes at log offset {rec_pos} does not fit a segment of {seg} bytes"
                    ))
                }
                Err(ReserveError::Failed(f)) => return Err(format!("the slave's CommitLog failed: {f}")),
            };
            if here != rec_pos {
                // Reserve may have rolled (written a BLANK) already: the
                // log is unusable for this stream either way.
                return Err(format!(
                    "the logs diverged: the master's record at log offset {rec_pos} would land at {here} here"
                ));
            }
            let mut opened = Vec::new();
            let props = properties_of(inner.cfg.encryption.as_deref(), shard, &v, &mut opened)?;
            {
                let mut table = inner.queues.borrow_mut();
                let mut problems = Vec::new();
                if let Err(e) = dispatch_recovered(&mut table, &v, props, rec_pos, true, &mut problems) {
                    log::error!("shard {shard}: replicated record at log offset {rec_pos} not indexed: {e:?}");
                }
                for p in problems {
                    log::error!("shard {shard}: replicated record: {p}");
                }
            }
            if let Ok(topic) = std::str::from_utf8(v.topic) {
                inner.index.add(topic, props, rec_pos, v.total_size, v.store_timestamp);
                on_record(topic, v.queue_id);
            }
            log.write(rec_pos, &bytes[at..at + size]);
            at += size;
        }
        Ok(Replicate::Done)
    }
}
