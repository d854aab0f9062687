//! The in-memory tail of a shard's CommitLog.
//!
//! Every appended byte lands here first. The flusher copies dirty ranges
//! into aligned DMA buffers and writes them with O_DIRECT; readers of
//! recent data copy from here and never touch the disk. The cache covers
//! one contiguous window `[start, end)` of the log, in chunks; a chunk never
//! spans a segment boundary (after a roll the next chunk starts at the new
//! segment's base, so the window may have a hole over a segment's unused
//! tail, which no record and no read ever refers to).
//!
//! Invariant: `start <= flushed <= end` — only flushed chunks are evicted,
//! so anything older than `start` is on disk. The byte budget bounds the
//! memory; when unflushed data alone would exceed it, appends are refused
//! (back-pressure) instead of growing.

use std::collections::VecDeque;

pub struct TailCache {
    chunks: VecDeque<Chunk>,
    /// One evicted chunk kept for the next append: a steady stream reuses
    /// its memory instead of allocating (and faulting in) a fresh chunk per
    /// `chunk_size` bytes. Counted in `bytes` while kept.
    spare: Option<Vec<u8>>,
    chunk_size: usize,
    budget: usize,
    bytes: usize,
}

struct Chunk {
    base: u64,
    data: Vec<u8>,
}

impl Chunk {
    fn end(&self) -> u64 {
        self.base + self.data.len() as u64
    }
}

impl TailCache {
    pub fn new(budget: usize, chunk_size: usize) -> TailCache {
        TailCache {
            chunks: VecDeque::new(),
            spare: None,
            chunk_size,
            budget,
            bytes: 0,
        }
    }

    /// First cached offset (everything before it is on disk).
    pub fn start(&self) -> Option<u64> {
        self.chunks.front().map(|c| c.base)
    }

    pub fn end(&self) -> Option<u64> {
        self.chunks.back().map(Chunk::end)
    }

    /// Bytes currently held (capacity, not just length: that is the memory).
    pub fn memory(&self) -> usize {
        self.bytes
    }

    /// Can `len` more bytes be appended, evicting only data that is
    /// already flushed (below `flushed`)?
    /// `fresh`: the bytes start a new chunk (a new segment).
    pub fn make_room(&mut self, len: usize, flushed: u64, fresh: bool) -> bool {
        let room = match self.chunks.back() {
            Some(c) if !fresh => c.data.capacity() - c.data.len(),
            _ => 0,
        };
        let need = len.saturating_sub(room).div_ceil(self.chunk_size) * self.chunk_size;
        // Memory after the append: the chunks kept plus `need` (a spare
        // chunk is reused for the first new one, so it adds nothing then;
        // with no new chunk it stays, and it came from an eviction that
        // already made room for it).
        let spare = self.spare.as_ref().map_or(0, Vec::capacity);
        let mut chunk_bytes = self.bytes - spare;
        while chunk_bytes + need > self.budget {
            match self.chunks.front() {
                Some(c) if c.end() <= flushed && self.chunks.len() > 1 => {
                    let Some(old) = self.chunks.pop_front() else {
                        return false;
                    };
                    let cap = old.data.capacity();
                    chunk_bytes -= cap;
                    if self.spare.is_none() && cap == self.chunk_size {
                        let mut data = old.data;
                        data.clear();
                        self.spare = Some(data); // still counted in `bytes`
                    } else {
                        self.bytes -= cap;
                    }
                }
                _ => return false,
            }
        }
        true
    }

    /// Appends bytes at `pos`, which must be the current end or — after a
    /// segment roll — a later segment base (`new_segment`).
    pub fn append(&mut self, pos: u64, mut bytes: &[u8], new_segment: bool) {
        let at_end = self.end().is_none_or(|e| e == pos);
        debug_assert!(at_end || new_segment, "tail cache append out of order");
        let mut fresh = new_segment || !at_end || self.chunks.is_empty();
        let mut pos = pos;
        while !bytes.is_empty() {
            if fresh || self.chunks.back().is_some_and(|c| c.data.len() == c.data.capacity()) {
                let data = match self.spare.take() {
                    Some(d) => d, // already counted in `bytes`
                    None => {
                        self.bytes += self.chunk_size;
                        Vec::with_capacity(self.chunk_size)
                    }
                };
                self.chunks.push_back(Chunk { base: pos, data });
                fresh = false;
            }
            let Some(last) = self.chunks.back_mut() else { return };
            let room = last.data.capacity() - last.data.len();
            let n = room.min(bytes.len());
            last.data.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            pos += n as u64;
        }
    }

    /// End of the cached data that lies below `limit` (a segment end): for a
    /// sealed segment, where its last record (or BLANK marker) ends.
    pub fn data_end_below(&self, limit: u64) -> Option<u64> {
        let idx = self.chunks.partition_point(|c| c.base < limit);
        idx.checked_sub(1).map(|i| self.chunks[i].end())
    }

    /// Drops everything cached at or after `pos` (the log was truncated
    /// there, see `MessageStore::truncate_log`).
    pub fn cut(&mut self, pos: u64) {
        while let Some(last) = self.chunks.back_mut() {
            if last.base >= pos {
                let cap = last.data.capacity();
                self.chunks.pop_back();
                self.bytes -= cap;
                continue;
            }
            if last.end() > pos {
                last.data.truncate((pos - last.base) as usize);
            }
            break;
        }
    }

    /// Drops every chunk (the spare stays).
    pub fn clear(&mut self) {
        let held: usize = self.chunks.iter().map(|c| c.data.capacity()).sum();
        self.chunks.clear();
        self.bytes -= held;
    }

    /// Copies `[pos, pos + out.len())` into `out`. Returns false if any part
    /// of the range is not cached.
    pub fn read(&self, pos: u64, out: &mut [u8]) -> bool {
        let Some(start) = self.start() else { return false };
        if pos < start {
            return false;
        }
        let idx = self.chunks.partition_point(|c| c.end() <= pos);
        let mut pos = pos;
        let mut done = 0;
        for c in self.chunks.range(idx..) {
            if done == out.len() {
                break;
            }
            if c.base > pos || c.end() <= pos {
                return false;
            }
            let from = (pos - c.base) as usize;
            let n = (c.data.len() - from).min(out.len() - done);
            out[done..done + n].copy_from_slice(&c.data[from..from + n]);
            done += n;
            pos += n as u64;
        }
        done == out.len()
    }

    /// Copies whatever is cached of `[pos, pos + out.len())` into `out`,
    /// zeroing only the bytes that are not cached (holes past a segment's
    /// last record): the buffer is written once, never cleared first.
    /// Used by the flusher, which only asks for ranges it knows are cached.
    pub fn copy_for_flush(&self, pos: u64, out: &mut [u8]) {
        let end = pos + out.len() as u64;
        let idx = self.chunks.partition_point(|c| c.end() <= pos);
        let mut filled = 0usize; // out[..filled] is final
        for c in self.chunks.range(idx..) {
            if c.base >= end {
                break;
            }
            let from = pos.max(c.base);
            let to = end.min(c.end());
            if from >= to {
                continue;
            }
            let dst = (from - pos) as usize;
            let src = (from - c.base) as usize;
            let n = (to - from) as usize;
            out[filled..dst].fill(0);
            out[dst..dst + n].copy_from_slice(&c.data[src..src + n]);
            filled = dst + n;
        }
        out[filled..].fill(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_across_chunks_and_refuses_holes() {
        let mut c = TailCache::new(1 << 20, 16);
        let data: Vec<u8> = (0..40u8).collect();
        c.append(0, &data, false);
        let mut out = [0u8; 20];
        assert!(c.read(10, &mut out));
        assert_eq!(out.to_vec(), (10..30u8).collect::<Vec<_>>());
        // Next segment starts at 64: a hole from 40 to 64.
        c.append(64, &[7u8; 8], true);
        assert!(!c.read(38, &mut [0u8; 4]));
        let mut out = [0u8; 4];
        assert!(c.read(66, &mut out));
        assert_eq!(out, [7u8; 4]);
        let mut f = [9u8; 32];
        c.copy_for_flush(32, &mut f);
        assert_eq!(&f[..8], &(32..40u8).collect::<Vec<_>>()[..]);
        assert_eq!(&f[8..], &[0u8; 24][..]);
    }

    #[test]
    fn evicts_only_flushed_chunks() {
        let mut c = TailCache::new(64, 16);
        c.append(0, &[1u8; 48], false);
        assert_eq!(c.memory(), 48);
        assert!(!c.make_room(32, 0, false), "nothing flushed: must refuse");
        assert!(c.make_room(32, 32, false));
        assert_eq!(c.start(), Some(16));
        assert!(!c.read(0, &mut [0u8; 1]));
    }

    #[test]
    fn an_evicted_chunk_is_reused_and_memory_stays_within_budget() {
        let mut c = TailCache::new(64, 16);
        for round in 0..20u64 {
            let pos = round * 16;
            assert!(c.make_room(16, pos, false), "round {round}");
            c.append(pos, &[round as u8; 16], false);
            assert!(c.memory() <= 64, "round {round}: {} bytes", c.memory());
            let mut out = [0u8; 16];
            assert!(c.read(pos, &mut out));
            assert_eq!(out, [round as u8; 16]);
        }
        // A hole between cached ranges is zeroed, the rest copied.
        c.append(512, &[5u8; 4], true);
        let mut f = [9u8; 16];
        c.copy_for_flush(310, &mut f);
        assert_eq!(&f[..10], &[19u8; 10][..]);
        assert_eq!(&f[10..], &[0u8; 6][..]);
    }
}
