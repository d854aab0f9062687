//! The consume queue of one (topic, queue id): a dense array of 20-byte
//! entries, one per message, indexed by queue offset.
//!
//! ```text
//! +---------------------+-----------+--------------------+
//! | commit-log offset 8 |  size 4   |   tags code 8      |   big-endian
//! +---------------------+-----------+--------------------+
//! ```
//! The commit-log offset is the record's [`PhysicalOffset`] (shard bits
//! included), as in RocketMQ's `ConsumeQueue.java`.
//!
//! In memory a queue keeps only its tail: entries not yet written behind to
//! its files plus the last `cq_mem_entries` written ones, for tail readers.
//! Offsets `[written, max)` are always in memory; older ones are read back
//! from the files ([`super::cq_files`]). An idle queue costs one small
//! struct.
//!
//! [`PhysicalOffset`]: super::position::PhysicalOffset

use std::collections::VecDeque;
use std::rc::Rc;

pub const CQ_ENTRY_SIZE: usize = 20;
const _: () = assert!(CQ_ENTRY_SIZE == 8 + 4 + 8);

/// One consume-queue entry; `pos` is the shard-local log offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CqEntry {
    pub pos: u64,
    pub size: u32,
    pub tags_code: i64,
}

impl CqEntry {
    pub fn end(&self) -> u64 {
        self.pos + self.size as u64
    }

    pub fn encode(&self, shard: u16, out: &mut Vec<u8>) {
        let phys = super::position::PhysicalOffset::new(shard, super::position::LogOffset(self.pos));
        out.extend_from_slice(&phys.0.to_be_bytes());
        out.extend_from_slice(&self.size.to_be_bytes());
        out.extend_from_slice(&self.tags_code.to_be_bytes());
    }

    /// Decodes an entry; `None` for an all-zero (never written) or
    /// malformed slot.
    pub fn decode(b: &[u8]) -> Option<CqEntry> {
        let b: &[u8; CQ_ENTRY_SIZE] = b.get(..CQ_ENTRY_SIZE)?.try_into().ok()?;
        let mut w8 = [0u8; 8];
        w8.copy_from_slice(&b[0..8]);
        let phys = super::position::PhysicalOffset(u64::from_be_bytes(w8));
        let size = u32::from_be_bytes([b[8], b[9], b[10], b[11]]);
        w8.copy_from_slice(&b[12..20]);
        if size == 0 {
            return None;
        }
        Some(CqEntry {
            pos: phys.log_offset().0,
            size,
            tags_code: i64::from_be_bytes(w8),
        })
    }
}

pub struct ConsumeQueue {
    pub topic: Rc<str>,
    pub queue_id: u32,
    /// Smallest offset still readable (raised by retention).
    pub min_offset: u64,
    /// Next offset to assign = number of entries ever written.
    pub max_offset: u64,
    /// Entries below this are written to the queue's files.
    pub written: u64,
    /// Queue offset of `mem[0]`.
    pub mem_base: u64,
    pub mem: VecDeque<CqEntry>,
}

impl ConsumeQueue {
    pub fn new(topic: Rc<str>, queue_id: u32, min_offset: u64, max_offset: u64) -> ConsumeQueue {
        ConsumeQueue {
            topic,
            queue_id,
            min_offset,
            max_offset,
            written: max_offset,
            mem_base: max_offset,
            mem: VecDeque::new(),
        }
    }

    pub fn push(&mut self, e: CqEntry) -> u64 {
        debug_assert_eq!(self.mem_base + self.mem.len() as u64, self.max_offset);
        let offset = self.max_offset;
        self.mem.push_back(e);
        self.max_offset += 1;
        offset
    }

    /// The entry at `offset` if it is in memory.
    pub fn get(&self, offset: u64) -> Option<CqEntry> {
        offset
            .checked_sub(self.mem_base)
            .and_then(|i| self.mem.get(i as usize))
            .copied()
    }

    /// Number of entries whose record ends at or below `durable`: what a
    /// reader may see (nothing that a crash could still take back).
    pub fn visible_max(&self, durable: u64) -> u64 {
        let mut max = self.max_offset;
        for e in self.mem.iter().rev() {
            if e.end() <= durable {
                break;
            }
            max -= 1;
        }
        max
    }

    /// Entries `[written, upto)` where `upto` stops at the first entry whose
    /// record is not below `durable`.
    pub fn unwritten_below(&self, durable: u64) -> (u64, Vec<CqEntry>) {
        let from = self.written;
        let skip = (from - self.mem_base) as usize;
        let v: Vec<CqEntry> = self
            .mem
            .iter()
            .skip(skip)
            .take_while(|e| e.end() <= durable)
            .copied()
            .collect();
        (from, v)
    }

    /// Marks entries below `upto` as written and drops older ones beyond
    /// the in-memory allowance.
    pub fn mark_written(&mut self, upto: u64, keep: usize) {
        debug_assert!(upto <= self.max_offset && upto >= self.written);
        self.written = upto;
        while self.mem_base < self.written && (self.written - self.mem_base) as usize > keep {
            self.mem.pop_front();
            self.mem_base += 1;
        }
    }

    /// Removes the entries from queue offset `at` on (the log was
    /// truncated below their records): `max_offset` becomes `at`.
    pub fn cut(&mut self, at: u64) {
        if at >= self.max_offset {
            return;
        }
        match at.checked_sub(self.mem_base) {
            Some(keep) => self.mem.truncate(keep as usize),
            None => {
                self.mem.clear();
                self.mem_base = at;
            }
        }
        self.max_offset = at;
        self.written = self.written.min(at);
        self.min_offset = self.min_offset.min(at);
    }

    /// Bytes of memory this queue holds (entries only).
    pub fn memory(&self) -> usize {
        self.mem.capacity() * std::mem::size_of::<CqEntry>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_round_trips_with_shard_bits() {
        let e = CqEntry {
            pos: 123_456,
            size: 300,
            tags_code: -5,
        };
        let mut b = Vec::new();
        e.encode(7, &mut b);
        assert_eq!(b.len(), CQ_ENTRY_SIZE);
        assert_eq!(b[0..2], [0, 7]);
        assert_eq!(CqEntry::decode(&b), Some(e));
        assert_eq!(CqEntry::decode(&[0u8; 20]), None);
        assert_eq!(CqEntry::decode(&[0u8; 5]), None);
    }

    #[test]
    fn visibility_and_write_behind_follow_durability() {
        let mut q = ConsumeQueue::new("t".into(), 0, 0, 0);
        for i in 0..10u64 {
            q.push(CqEntry {
                pos: i * 100,
                size: 100,
                tags_code: 0,
            });
        }
        assert_eq!(q.visible_max(500), 5);
        let (from, v) = q.unwritten_below(500);
        assert_eq!((from, v.len()), (0, 5));
        q.mark_written(5, 2);
        assert_eq!(q.mem_base, 3);
        assert_eq!(q.get(2), None);
        assert_eq!(q.get(3).map(|e| e.pos), Some(300));
        assert_eq!(q.unwritten_below(u64::MAX).1.len(), 5);
    }
}
