//! Reads: visible queue offsets, consume-queue entries (memory, then
//! files) and records by queue offset, physical offset or store time.

use crate::store::config::FlushMode;
use crate::store::consume_queue::{ConsumeQueue, CqEntry};
use crate::store::error::StoreError;
use crate::store::position::PhysicalOffset;
use crate::store::reader::{self, GetResult, TagFilter};

use super::{Boundary, MessageStore};

impl MessageStore {
    /// Offsets visible to readers: `(min, max)`; `None` for an unknown queue.
    pub fn offsets(&self, topic: &str, queue_id: u32) -> Option<(u64, u64)> {
        let queues = self.inner.queues.borrow();
        let q = &queues.queues[queues.find(topic, queue_id)?];
        let max = self.visible_max(q);
        Some((q.min_offset.min(max), max))
    }

    pub(in crate::store) fn visible_max(&self, q: &ConsumeQueue) -> u64 {
        match self.inner.cfg.flush_mode {
            FlushMode::Sync => q.visible_max(self.inner.log.flushed()),
            FlushMode::Async => q.max_offset,
        }
    }

    pub fn max_offset(&self, topic: &str, queue_id: u32) -> u64 {
        self.offsets(topic, queue_id).map_or(0, |o| o.1)
    }

    pub fn min_offset(&self, topic: &str, queue_id: u32) -> u64 {
        self.offsets(topic, queue_id).map_or(0, |o| o.0)
    }

    pub fn queue_count(&self) -> usize {
        self.inner.queues.borrow().queues.len()
    }

    /// Reads up to `max_msgs` records from `offset` (RocketMQ's getMessage).
    pub async fn get_messages(
        &self,
        topic: &str,
        queue_id: u32,
        offset: u64,
        max_msgs: usize,
        max_bytes: usize,
        filter: &TagFilter,
    ) -> Result<GetResult, StoreError> {
        reader::get_messages(self, topic, queue_id, offset, max_msgs, max_bytes, filter).await
    }

    /// The consume-queue entry at `offset` (memory or file).
    pub(in crate::store) async fn entry(
        &self,
        topic: &str,
        queue_id: u32,
        offset: u64,
    ) -> Result<Option<CqEntry>, StoreError> {
        Ok(self.entries(topic, queue_id, offset, 1).await?.into_iter().next())
    }

    /// Up to `count` consecutive entries from `offset`, stopping at the
    /// visible max. The result is always contiguous from `offset`: a
    /// checkpoint that runs while a file read is awaited may move entries
    /// out of memory, so the rest is looked up again (memory first, then the
    /// files) until the range is complete — an offset is never skipped.
    pub(in crate::store) async fn entries(
        &self,
        topic: &str,
        queue_id: u32,
        offset: u64,
        count: usize,
    ) -> Result<Vec<CqEntry>, StoreError> {
        let upto = {
            let queues = self.inner.queues.borrow();
            let Some(i) = queues.find(topic, queue_id) else {
                return Ok(Vec::new());
            };
            let q = &queues.queues[i];
            let visible = self.visible_max(q);
            if offset >= visible || offset < q.min_offset {
                return Ok(Vec::new());
            }
            offset + (count as u64).min(visible - offset)
        };
        let mut out = Vec::with_capacity((upto - offset) as usize);
        let mut next = offset;
        loop {
            let mem_base = {
                let queues = self.inner.queues.borrow();
                let Some(i) = queues.find(topic, queue_id) else {
                    return Ok(out);
                };
                let q = &queues.queues[i];
                while next < upto {
                    match q.get(next) {
                        Some(e) => out.push(e),
                        None => break,
                    }
                    next += 1;
                }
                if next == upto {
                    return Ok(out);
                }
                if next >= q.mem_base {
                    return Err(StoreError::Corrupt {
                        path: self.inner.cq_files.queue_dir(topic, queue_id),
                        what: format!("consume-queue entry {next} is missing from memory"),
                    });
                }
                q.mem_base
            };
            let want = (mem_base.min(upto) - next) as usize;
            let v = self.inner.cq_files.read(topic, queue_id, next, want).await?;
            if v.is_empty() {
                if !out.is_empty() {
                    return Ok(out); // contiguous so far; the caller continues later
                }
                return Err(StoreError::Corrupt {
                    path: self.inner.cq_files.queue_dir(topic, queue_id),
                    what: format!("consume-queue entry {next} is not in its file"),
                });
            }
            next += v.len() as u64;
            out.extend(v);
        }
    }

    /// Up to `count` consume-queue entries of a queue from `offset`, only
    /// visible ones (durable, in SYNC_FLUSH mode); fewer at the end.
    pub async fn queue_entries(
        &self,
        topic: &str,
        queue_id: u32,
        offset: u64,
        count: usize,
    ) -> Result<Vec<CqEntry>, StoreError> {
        self.entries(topic, queue_id, offset, count).await
    }

    /// The whole record stored at a physical offset (view by message id).
    pub async fn read_record(&self, phys: PhysicalOffset) -> Result<Option<Vec<u8>>, StoreError> {
        reader::read_record_at(self, phys).await
    }

    /// [`Self::read_record`] when the size is known (a consume-queue entry's):
    /// one read. `None` also when the record there has another size.
    pub async fn read_record_sized(&self, phys: PhysicalOffset, size: u32) -> Result<Option<Vec<u8>>, StoreError> {
        reader::read_record_sized(self, phys, Some(size)).await
    }

    pub async fn search_offset_by_time(
        &self,
        topic: &str,
        queue_id: u32,
        ts: i64,
        b: Boundary,
    ) -> Result<u64, StoreError> {
        reader::search_offset_by_time(self, topic, queue_id, ts, b).await
    }

    /// Store time of the message at `offset` of the queue (`None` when the
    /// offset holds no visible message).
    pub async fn store_time_at(&self, topic: &str, queue_id: u32, offset: u64) -> Result<Option<i64>, StoreError> {
        reader::store_time_at(self, topic, queue_id, offset).await
    }

    /// Store time of the oldest retained message of the queue.
    pub async fn earliest_store_time(&self, topic: &str, queue_id: u32) -> Result<Option<i64>, StoreError> {
        let (min, _) = match self.offsets(topic, queue_id) {
            Some(o) if o.0 < o.1 => o,
            _ => return Ok(None),
        };
        reader::store_time_at(self, topic, queue_id, min).await
    }
}
