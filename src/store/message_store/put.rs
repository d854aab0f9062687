//! The append path: validation, placement in the log and the consume
//! queues, encoding (sealed with encryption at rest), key indexing, and
//! the wait for durability in SYNC_FLUSH mode.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::store::commit_log::{Durability, ReserveError};
use crate::store::config::FlushMode;
use crate::store::consume_queue::CqEntry;
use crate::store::position::{LogOffset, PhysicalOffset};
use crate::store::record::{encode_record, encode_sealed, MessageInput, StoreStamp, MARK_TOPIC};
use crate::store::replication::Replicated;

use super::{is_prepared_or_rollback, Appended, MessageStore, PutResult, PutStatus};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl MessageStore {
    /// Appends one message.
    pub async fn put(&self, msg: MessageInput) -> PutResult {
        self.put_batch(std::slice::from_ref(&msg), true).await
    }

    /// Appends messages of one queue contiguously (a batch) with
    /// consecutive queue offsets. With `wait` false (property WAIT=false)
    /// the reply does not wait for the flush even in SYNC mode.
    pub async fn put_batch(&self, msgs: &[MessageInput], wait: bool) -> PutResult {
        let (end, result) = match self.place(msgs) {
            Ok(v) => v,
            Err(refused) => return PutResult::refused(refused),
        };
        if !wait {
            return result;
        }
        PutResult {
            status: self.wait_durable(end).await,
            ..result
        }
    }

    /// The synchronous half of [`Self::put`]: the record is placed in the
    /// log (and its queue) when this returns `Ok`, before any other task
    /// runs — callers that must log in the order they change their own
    /// state apply the change right after, with no suspension in between,
    /// and then wait with [`Self::durable`].
    pub fn append(&self, msg: &MessageInput) -> Result<Appended, PutStatus> {
        self.place(std::slice::from_ref(msg))
            .map(|(end, result)| Appended { end, result })
    }

    /// The status of an [`Appended`] record once it is durable per the
    /// flush mode (at once with ASYNC_FLUSH) and, on a SYNC_MASTER, held
    /// by a slave.
    pub async fn durable(&self, a: &Appended) -> PutStatus {
        self.wait_durable(a.end).await
    }

    /// Waits for the local flush (SYNC_FLUSH), then for a slave's durable
    /// copy (SYNC_MASTER), each within `syncFlushTimeout`. A failed flush
    /// wins; otherwise a replication shortfall is reported over a local
    /// flush timeout, as RocketMQ's `handleHA` does.
    async fn wait_durable(&self, end: u64) -> PutStatus {
        let timeout = self.inner.cfg.sync_flush_timeout;
        let local = if self.inner.cfg.flush_mode == FlushMode::Async {
            PutStatus::Ok
        } else {
            match self.inner.log.wait_durable(end, Instant::now() + timeout).await {
                Durability::Durable => PutStatus::Ok,
                Durability::TimedOut => PutStatus::FlushDiskTimeout,
                Durability::Failed(e) => return PutStatus::FlushFailed(e),
            }
        };
        if !self.inner.wait_for_replica.get() {
            return local;
        }
        let gate = self.inner.replica_gate.borrow().clone();
        let Some(gate) = gate else { return local };
        match gate.wait(end, Instant::now() + timeout).await {
            Replicated::Yes => local,
            Replicated::TimedOut => PutStatus::FlushSlaveTimeout,
            Replicated::NoSlave => PutStatus::SlaveNotAvailable,
        }
    }

    /// The synchronous part of a put: validate, place, encode, index.
    fn place(&self, msgs: &[MessageInput]) -> Result<(u64, PutResult), PutStatus> {
        let inner = &*self.inner;
        if inner.stopping.get() {
            return Err(PutStatus::ServiceNotAvailable("store is shutting down".into()));
        }
        if let Some(master) = inner.slave_of.borrow().as_ref() {
            return Err(PutStatus::ServiceNotAvailable(format!(
                "this broker is a SLAVE (of {master}): writes go to the master"
            )));
        }
        if inner.write_lease.borrow().as_ref().is_some_and(|l| !l.valid()) {
            return Err(PutStatus::ServiceNotAvailable(
                "this master has no recent confirmation from the controller: writes are fenced until it has".into(),
            ));
        }
        if inner.disk_full.get() {
            return Err(PutStatus::ServiceNotAvailable(format!(
                "disk usage above diskMaxUsedSpaceRatio {}%; writes resume when space is freed",
                inner.cfg.disk_max_used_ratio
            )));
        }
        let host = inner.cfg.store_host;
        let ring = inner.cfg.encryption.as_deref();
        let overhead = if ring.is_some() {
            crate::store::crypt::OVERHEAD
        } else {
            0
        };
        let mut total = 0usize;
        for m in msgs {
            m.validate().map_err(|e| PutStatus::MessageIllegal(e.to_string()))?;
            if ring.is_some()
                && m.properties.len() + crate::store::crypt::TAG_LEN > crate::store::record::MAX_PROPERTIES_LEN
            {
                return Err(PutStatus::MessageIllegal(format!(
                    "properties longer than {} bytes (encryption at rest adds {})",
                    crate::store::record::MAX_PROPERTIES_LEN - crate::store::crypt::TAG_LEN,
                    crate::store::crypt::TAG_LEN
                )));
            }
            let size = m.record_size(&host) + overhead;
            if size > inner.cfg.max_record_size {
                return Err(PutStatus::MessageIllegal(format!(
                    "record of {size} bytes exceeds the limit of {}",
                    inner.cfg.max_record_size
                )));
            }
            total += size;
        }
        if msgs.is_empty() {
            return Err(PutStatus::MessageIllegal("empty batch".into()));
        }
        if total > inner.cfg.tail_cache_bytes / 2 {
            // The tail cache could never make room for it: refusing it as
            // busy would make the client retry forever.
            return Err(PutStatus::MessageIllegal(format!(
                "batch of {total} bytes exceeds half the tail cache ({} bytes)",
                inner.cfg.tail_cache_bytes
            )));
        }
        let pos = inner.log.reserve(total).map_err(|e| match e {
            ReserveError::TooLarge => {
                PutStatus::MessageIllegal(format!("batch of {total} bytes does not fit a segment"))
            }
            ReserveError::Busy => PutStatus::Busy,
            ReserveError::Failed(f) => PutStatus::FlushFailed(f),
            ReserveError::Unavailable(why) => PutStatus::ServiceNotAvailable(why),
        })?;
        let now = now_ms();
        let shard = inner.cfg.shard_id;
        let mut scratch = inner.scratch.borrow_mut();
        scratch.clear();
        let mut queues = inner.queues.borrow_mut();
        let mut positions = Vec::with_capacity(msgs.len());
        let mut first_offset = None;
        for m in msgs {
            let rec_pos = pos + scratch.len() as u64;
            let size = (m.record_size(&host) + overhead) as u32;
            let indexed = !is_prepared_or_rollback(m.sys_flag);
            let queue_offset = if indexed {
                let qi = queues.get_or_create(&m.topic, m.queue_id, 0);
                queues.queues[qi].push(CqEntry {
                    pos: rec_pos,
                    size,
                    tags_code: m.tags_code,
                })
            } else {
                0
            };
            if let Some(mark) = m.mark {
                let qi = queues.get_or_create(MARK_TOPIC, mark.queue, 0);
                queues.queues[qi].push(CqEntry {
                    pos: rec_pos,
                    size,
                    tags_code: mark.value,
                });
            }
            first_offset.get_or_insert(queue_offset);
            let phys = PhysicalOffset::new(shard, LogOffset(rec_pos));
            let stamp = StoreStamp {
                queue_offset,
                physical_offset: phys,
                store_timestamp: now,
            };
            match ring {
                Some(ring) => encode_sealed(m, &stamp, &host, ring, shard, &mut scratch),
                None => encode_record(m, &stamp, &host, &mut scratch),
            }
            inner.index.add(&m.topic, &m.properties, rec_pos, size, now);
            positions.push(phys);
        }
        drop(queues);
        inner.log.write(pos, &scratch);
        let end = pos + scratch.len() as u64;
        if scratch.capacity() > 1 << 20 {
            *scratch = Vec::with_capacity(64 * 1024);
        }
        let result = PutResult {
            status: PutStatus::Ok,
            queue_offset: first_offset.unwrap_or(0),
            positions,
            store_timestamp: now,
        };
        Ok((end, result))
    }
}
