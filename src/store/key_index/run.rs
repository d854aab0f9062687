//! One key-index run file: the entries of a contiguous range of the
//! CommitLog, sorted by (key hash, log offset), written once and never
//! modified.
//!
//! ```text
//! index/<from:020>-<to:020>.run       covers log offsets [from, to)
//!
//! [block 0] … [block n-1]   4096 B each, O_DIRECT
//!     170 entries × 24 B    hash u64 | log offset u64 | store time s u32 | size u32
//!     @4080 count u32       entries used in this block (the last may be partial)
//!     @4084 crc u32         CRC-32 (IEEE) of bytes [0, 4084)
//! [fence]                   first hash of each block, u64 each, padded to 4096
//! [footer]                  4096 B:
//!     @0  magic "SMQKIX01"
//!     @8  from u64          @16 to u64        @24 entries u64
//!     @32 blocks u32        @36 min time s    @40 max time s
//!     @44 fence crc u32     @4092 crc u32 of the footer's bytes [0, 4092)
//! ```
//!
//! Everything is little-endian. A run is written to `<name>.tmp`,
//! fdatasynced, renamed and its directory synced, so a run that exists
//! under its name is whole; one that fails its checks at open is renamed
//! `.corrupt-<secs>` and the range it covered is indexed again from the
//! CommitLog. The fence (8 bytes per 170 entries) stays in memory: a
//! lookup reads only the blocks its hash can be in.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use glommio::io::{DmaFile, OpenOptions};

use super::super::error::StoreError;
use super::super::faults::{self, DiskFaults, DiskOp, Fault};
use super::super::segment::sync_dir;
use super::IndexEntry;

pub const BLOCK: usize = 4096;
pub const ENTRY: usize = 24;
pub const PER_BLOCK: usize = 170;
const COUNT_AT: usize = PER_BLOCK * ENTRY;
const CRC_AT: usize = COUNT_AT + 4;
const MAGIC: &[u8; 8] = b"SMQKIX01";
/// Blocks written (and read while merging) per I/O.
const CHUNK_BLOCKS: usize = 64;
/// Blocks a lookup reads from one run at most: the newest entries of a key
/// that has more than 64 × 170 of them in the run.
const MAX_LOOKUP_BLOCKS: usize = 64;

pub fn file_name(from: u64, to: u64) -> String {
    format!("{from:020}-{to:020}.run")
}

/// `(from, to)` of a run file name.
pub fn parse_name(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(".run")?;
    let (a, b) = stem.split_once('-')?;
    if a.len() != 20 || b.len() != 20 {
        return None;
    }
    let (from, to) = (a.parse().ok()?, b.parse().ok()?);
    (from <= to).then_some((from, to))
}

impl IndexEntry {
    fn put(&self, out: &mut [u8]) {
        out[0..8].copy_from_slice(&self.hash.to_le_bytes());
        out[8..16].copy_from_slice(&self.pos.to_le_bytes());
        out[16..20].copy_from_slice(&self.time_s.to_le_bytes());
        out[20..24].copy_from_slice(&self.size.to_le_bytes());
    }

    fn get(b: &[u8]) -> IndexEntry {
        let u64_at = |i: usize| {
            u64::from_le_bytes([
                b[i],
                b[i + 1],
                b[i + 2],
                b[i + 3],
                b[i + 4],
                b[i + 5],
                b[i + 6],
                b[i + 7],
            ])
        };
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        IndexEntry {
            hash: u64_at(0),
            pos: u64_at(8),
            time_s: u32_at(16),
            size: u32_at(20),
        }
    }
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// The entries of one block, after checking its CRC and count.
fn decode_block(b: &[u8], path: &Path, block: usize) -> Result<Vec<IndexEntry>, StoreError> {
    let corrupt = |what: String| StoreError::Corrupt {
        path: path.to_path_buf(),
        what: format!("block {block}: {what}"),
    };
    if b.len() < BLOCK {
        return Err(corrupt(format!("short read ({} bytes)", b.len())));
    }
    if crc32fast::hash(&b[..CRC_AT]) != le_u32(b, CRC_AT) {
        return Err(corrupt("CRC mismatch".into()));
    }
    let n = le_u32(b, COUNT_AT) as usize;
    if n == 0 || n > PER_BLOCK {
        return Err(corrupt(format!("entry count {n}")));
    }
    Ok((0..n)
        .map(|i| IndexEntry::get(&b[i * ENTRY..(i + 1) * ENTRY]))
        .collect())
}

/// An open run: its footer facts and fence in memory, its file open for
/// block reads.
pub struct Run {
    pub from: u64,
    pub to: u64,
    pub entries: u64,
    pub min_s: u32,
    pub max_s: u32,
    pub path: PathBuf,
    fence: Vec<u64>,
    /// Closed when the last holder (the index, a merge or a lookup in
    /// progress) drops the run: glommio closes a dropped file itself.
    file: Rc<DmaFile>,
}

impl Run {
    /// Opens and checks a run file (footer, fence); the blocks are checked
    /// when read.
    pub async fn open(path: &Path) -> Result<Run, StoreError> {
        let gerr = |what: &str, e| StoreError::glommio(format_args!("{what} {}", path.display()), e);
        let corrupt = |what: String| StoreError::Corrupt {
            path: path.to_path_buf(),
            what,
        };
        let file = OpenOptions::new()
            .read(true)
            .dma_open(path)
            .await
            .map_err(|e| gerr("open", e))?;
        let size = file.file_size().await.map_err(|e| gerr("stat", e))?;
        if size < BLOCK as u64 || size % BLOCK as u64 != 0 {
            let _ = file.close().await;
            return Err(corrupt(format!("size {size} is not a whole number of blocks")));
        }
        let footer = file
            .read_at(size - BLOCK as u64, BLOCK)
            .await
            .map_err(|e| gerr("read", e))?;
        let checked = footer.len() == BLOCK
            && &footer[..8] == MAGIC
            && crc32fast::hash(&footer[..BLOCK - 4]) == le_u32(&footer, BLOCK - 4);
        if !checked {
            let _ = file.close().await;
            return Err(corrupt("footer magic or CRC mismatch".into()));
        }
        let (from, to, entries) = (le_u64(&footer, 8), le_u64(&footer, 16), le_u64(&footer, 24));
        let blocks = le_u32(&footer, 32) as usize;
        let fence_bytes = (blocks * 8).div_ceil(BLOCK) * BLOCK;
        let expect = ((blocks + 1) * BLOCK + fence_bytes) as u64;
        if size != expect || entries > (blocks * PER_BLOCK) as u64 || Some((from, to)) != name_range(path) {
            let _ = file.close().await;
            return Err(corrupt(format!(
                "footer ({blocks} blocks, {entries} entries, [{from}, {to})) disagrees with the file ({size} bytes) or its name"
            )));
        }
        let fence_raw = if blocks == 0 {
            Vec::new()
        } else {
            let r = file
                .read_at((blocks * BLOCK) as u64, blocks * 8)
                .await
                .map_err(|e| gerr("read", e))?;
            r.to_vec()
        };
        if fence_raw.len() != blocks * 8 || crc32fast::hash(&fence_raw) != le_u32(&footer, 44) {
            let _ = file.close().await;
            return Err(corrupt("fence CRC mismatch".into()));
        }
        let fence = fence_raw.chunks_exact(8).map(|c| le_u64(c, 0)).collect();
        Ok(Run {
            from,
            to,
            entries,
            min_s: le_u32(&footer, 36),
            max_s: le_u32(&footer, 40),
            path: path.to_path_buf(),
            fence,
            file: Rc::new(file),
        })
    }

    pub fn blocks(&self) -> usize {
        self.fence.len()
    }

    /// Entries of `hash` (the newest ones when there are very many).
    pub async fn lookup(&self, hash: u64) -> Result<Vec<IndexEntry>, StoreError> {
        // Block b holds hashes in [fence[b], fence[b+1]]: entries of `hash`
        // start in the last block whose first hash is below it (or the
        // first block) and end in the last whose first hash is ≤ it.
        let start = self.fence.partition_point(|f| *f < hash).saturating_sub(1);
        let end = self.fence.partition_point(|f| *f <= hash);
        if end <= start {
            return Ok(Vec::new());
        }
        let start = start.max(end.saturating_sub(MAX_LOOKUP_BLOCKS));
        let data = self.read_blocks(start, end - start).await?;
        let mut out = Vec::new();
        for (i, b) in data.chunks(BLOCK).enumerate() {
            out.extend(
                decode_block(b, &self.path, start + i)?
                    .into_iter()
                    .filter(|e| e.hash == hash),
            );
        }
        Ok(out)
    }

    async fn read_blocks(&self, first: usize, n: usize) -> Result<Vec<u8>, StoreError> {
        let r = self
            .file
            .read_at((first * BLOCK) as u64, n * BLOCK)
            .await
            .map_err(|e| StoreError::glommio(format_args!("read {}", self.path.display()), e))?;
        if r.len() != n * BLOCK {
            return Err(StoreError::Corrupt {
                path: self.path.clone(),
                what: format!("short read of blocks [{first}, {})", first + n),
            });
        }
        Ok(r.to_vec())
    }

    /// Reads the run in order, a chunk of blocks at a time (merging).
    pub fn cursor(self: &Rc<Run>) -> Cursor {
        Cursor {
            run: self.clone(),
            next_block: 0,
            buf: Vec::new(),
            at: 0,
        }
    }
}

fn name_range(path: &Path) -> Option<(u64, u64)> {
    parse_name(path.file_name()?.to_str()?)
}

/// Reads a run's entries in (hash, pos) order.
pub struct Cursor {
    run: Rc<Run>,
    next_block: usize,
    buf: Vec<IndexEntry>,
    at: usize,
}

impl Cursor {
    pub async fn peek(&mut self) -> Result<Option<IndexEntry>, StoreError> {
        if self.at == self.buf.len() {
            self.buf.clear();
            self.at = 0;
            let n = CHUNK_BLOCKS.min(self.run.blocks() - self.next_block);
            if n == 0 {
                return Ok(None);
            }
            let data = self.run.read_blocks(self.next_block, n).await?;
            for (i, b) in data.chunks(BLOCK).enumerate() {
                self.buf.extend(decode_block(b, &self.run.path, self.next_block + i)?);
            }
            self.next_block += n;
        }
        Ok(self.buf.get(self.at).copied())
    }

    pub fn advance(&mut self) {
        self.at += 1;
    }
}

/// Writes a run from entries pushed in (hash, pos) order.
pub struct RunWriter {
    dir: PathBuf,
    tmp: PathBuf,
    /// `None` once closed.
    file: Option<DmaFile>,
    faults: Option<Rc<DiskFaults>>,
    chunk: Vec<u8>,
    written: u64,
    fence: Vec<u64>,
    in_block: usize,
    entries: u64,
    min_s: u32,
    max_s: u32,
    last: Option<(u64, u64)>,
}

impl RunWriter {
    pub async fn create(
        dir: &Path,
        from: u64,
        to: u64,
        faults: Option<Rc<DiskFaults>>,
    ) -> Result<RunWriter, StoreError> {
        let tmp = dir.join(format!("{}.tmp", file_name(from, to)));
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .dma_open(&tmp)
            .await
            .map_err(|e| StoreError::glommio(format_args!("create {}", tmp.display()), e))?;
        Ok(RunWriter {
            dir: dir.to_path_buf(),
            tmp,
            file: Some(file),
            faults,
            chunk: Vec::with_capacity(CHUNK_BLOCKS * BLOCK),
            written: 0,
            fence: Vec::new(),
            in_block: 0,
            entries: 0,
            min_s: u32::MAX,
            max_s: 0,
            last: None,
        })
    }

    pub async fn push(&mut self, e: IndexEntry) -> Result<(), StoreError> {
        debug_assert!(self.last.is_none_or(|l| l <= (e.hash, e.pos)), "entries out of order");
        self.last = Some((e.hash, e.pos));
        if self.in_block == 0 {
            self.fence.push(e.hash);
            self.chunk.resize(self.chunk.len() + BLOCK, 0);
        }
        let block_at = self.chunk.len() - BLOCK;
        let at = block_at + self.in_block * ENTRY;
        e.put(&mut self.chunk[at..at + ENTRY]);
        self.in_block += 1;
        self.entries += 1;
        self.min_s = self.min_s.min(e.time_s);
        self.max_s = self.max_s.max(e.time_s);
        if self.in_block == PER_BLOCK {
            self.seal_block();
            if self.chunk.len() == CHUNK_BLOCKS * BLOCK {
                self.write_chunk().await?;
            }
        }
        Ok(())
    }

    fn seal_block(&mut self) {
        let block_at = self.chunk.len() - BLOCK;
        let b = &mut self.chunk[block_at..];
        b[COUNT_AT..COUNT_AT + 4].copy_from_slice(&(self.in_block as u32).to_le_bytes());
        let crc = crc32fast::hash(&b[..CRC_AT]);
        b[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
        self.in_block = 0;
    }

    async fn write_chunk(&mut self) -> Result<(), StoreError> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let len = self.chunk.len();
        let Some(file) = &self.file else {
            return Err(StoreError::Glommio(format!("{} is closed", self.tmp.display())));
        };
        let mut buf = file.alloc_dma_buffer(len);
        buf.as_bytes_mut().copy_from_slice(&self.chunk);
        let res = match faults::consult(&self.faults, DiskOp::IndexWrite) {
            None => file.write_at(buf, self.written).await,
            Some(Fault::ShortWrite) => {
                // The first whole sectors reach the file, as in a real
                // short write; the count says how many.
                let keep = faults::short_len(len, 512);
                if keep == 0 {
                    Ok(0)
                } else {
                    let mut part = file.alloc_dma_buffer(keep);
                    part.as_bytes_mut().copy_from_slice(&self.chunk[..keep]);
                    file.write_at(part, self.written).await
                }
            }
            Some(f) => Err(faults::os_error(f, "Writing", &self.tmp)),
        };
        let n = res.map_err(|e| StoreError::glommio(format_args!("write {}", self.tmp.display()), e))?;
        if n != len {
            return Err(StoreError::NoSpace(format!(
                "short write on {}: {n} of {len} bytes",
                self.tmp.display()
            )));
        }
        self.written += len as u64;
        self.chunk.clear();
        Ok(())
    }

    /// Gives up: closes and removes the temporary file.
    pub async fn abandon(mut self) {
        if let Some(f) = self.file.take() {
            let _ = f.close().await;
        }
        if let Err(rm) = glommio::io::remove(&self.tmp).await {
            log::warn!("cannot remove {}: {rm}", self.tmp.display());
        }
    }

    /// Writes the fence and footer, makes the file durable under its name
    /// `<from>-<to>.run` and opens it.
    pub async fn finish(mut self, from: u64, to: u64) -> Result<Run, StoreError> {
        match self.finish_inner(from, to).await {
            Ok(path) => Run::open(&path).await,
            Err(e) => {
                if let Some(f) = self.file.take() {
                    let _ = f.close().await;
                }
                if let Err(rm) = glommio::io::remove(&self.tmp).await {
                    log::warn!("cannot remove {}: {rm}", self.tmp.display());
                }
                Err(e)
            }
        }
    }

    async fn finish_inner(&mut self, from: u64, to: u64) -> Result<PathBuf, StoreError> {
        if self.in_block > 0 {
            self.seal_block();
        }
        let mut fence: Vec<u8> = self.fence.iter().flat_map(|h| h.to_le_bytes()).collect();
        let fence_crc = crc32fast::hash(&fence);
        fence.resize(fence.len().div_ceil(BLOCK) * BLOCK, 0);
        self.chunk.extend_from_slice(&fence);
        let mut footer = [0u8; BLOCK];
        footer[..8].copy_from_slice(MAGIC);
        footer[8..16].copy_from_slice(&from.to_le_bytes());
        footer[16..24].copy_from_slice(&to.to_le_bytes());
        footer[24..32].copy_from_slice(&self.entries.to_le_bytes());
        footer[32..36].copy_from_slice(&(self.fence.len() as u32).to_le_bytes());
        let (min_s, max_s) = if self.entries == 0 {
            (0, 0)
        } else {
            (self.min_s, self.max_s)
        };
        footer[36..40].copy_from_slice(&min_s.to_le_bytes());
        footer[40..44].copy_from_slice(&max_s.to_le_bytes());
        footer[44..48].copy_from_slice(&fence_crc.to_le_bytes());
        let crc = crc32fast::hash(&footer[..BLOCK - 4]);
        footer[BLOCK - 4..].copy_from_slice(&crc.to_le_bytes());
        self.chunk.extend_from_slice(&footer);
        // The fence and footer may exceed one chunk: write in pieces.
        let rest = std::mem::take(&mut self.chunk);
        for piece in rest.chunks(CHUNK_BLOCKS * BLOCK) {
            self.chunk.extend_from_slice(piece);
            self.write_chunk().await?;
        }
        let Some(file) = self.file.take() else {
            return Err(StoreError::Glommio(format!("{} is closed", self.tmp.display())));
        };
        let synced = match faults::consult(&self.faults, DiskOp::IndexSync) {
            None => file.fdatasync().await,
            Some(f) => Err(faults::os_error(f, "Syncing", &self.tmp)),
        };
        let path = self.dir.join(file_name(from, to));
        let renamed = match synced {
            Ok(()) => file.rename(&path).await,
            Err(e) => Err(e),
        };
        let _ = file.close().await;
        renamed.map_err(|e| StoreError::glommio(format_args!("sync and rename {}", self.tmp.display()), e))?;
        sync_dir(&self.dir).await?;
        Ok(path)
    }
}
