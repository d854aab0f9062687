//! The store checkpoint: the point up to which the consume queues are
//! durable, and every queue's offsets at that point. Recovery starts its
//! CommitLog scan there; a start-up reads this one file instead of opening
//! thousands of consume-queue files.
//!
//! ```text
//! 0      8   magic "SMQCKPT1"
//! 8      8   log_pos    every entry of a record below it is in the CQ files
//! 16     8   log_min    first retained CommitLog offset
//! 24     4   queue count N
//! 28     ... N × { u16 topic_len, topic, u32 queue_id, u64 min, u64 max }
//! end-4  4   CRC32 of everything before
//! ```
//! Replaced atomically: written to `checkpoint.tmp`, fdatasynced, renamed
//! over `checkpoint`, directory synced. A store that fails (short write,
//! ENOSPC, EIO) leaves the previous `checkpoint` as it was.

use std::path::Path;
use std::rc::Rc;

use glommio::io::{BufferedFile, OpenOptions};

use super::error::StoreError;
use super::faults::{self, DiskFaults, DiskOp, Fault};

const MAGIC: &[u8; 8] = b"SMQCKPT1";
pub const FILE: &str = "checkpoint";

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Checkpoint {
    pub log_pos: u64,
    pub log_min: u64,
    pub queues: Vec<QueueMark>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMark {
    pub topic: String,
    pub queue_id: u32,
    pub min_offset: u64,
    pub max_offset: u64,
}

impl Checkpoint {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(32 + self.queues.len() * 40);
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&self.log_pos.to_be_bytes());
        b.extend_from_slice(&self.log_min.to_be_bytes());
        b.extend_from_slice(&(self.queues.len() as u32).to_be_bytes());
        for q in &self.queues {
            b.extend_from_slice(&(q.topic.len() as u16).to_be_bytes());
            b.extend_from_slice(q.topic.as_bytes());
            b.extend_from_slice(&q.queue_id.to_be_bytes());
            b.extend_from_slice(&q.min_offset.to_be_bytes());
            b.extend_from_slice(&q.max_offset.to_be_bytes());
        }
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_be_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Result<Checkpoint, String> {
        if b.len() < 32 || &b[..8] != MAGIC {
            return Err("bad magic or too short".into());
        }
        let (body, crc) = b.split_at(b.len() - 4);
        let want = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
        if crc32fast::hash(body) != want {
            return Err("checksum mismatch".into());
        }
        let mut r = Reader { b: body, at: 8 };
        let log_pos = r.u64()?;
        let log_min = r.u64()?;
        let n = r.u32()? as usize;
        // Each queue needs at least 22 bytes: bound the allocation by input.
        let mut queues = Vec::with_capacity(n.min(body.len() / 22));
        for _ in 0..n {
            let len = r.u16()? as usize;
            let topic = std::str::from_utf8(r.take(len)?)
                .map_err(|_| "topic not UTF-8")?
                .to_string();
            queues.push(QueueMark {
                topic,
                queue_id: r.u32()?,
                min_offset: r.u64()?,
                max_offset: r.u64()?,
            });
        }
        if r.at != body.len() {
            return Err("trailing bytes".into());
        }
        Ok(Checkpoint {
            log_pos,
            log_min,
            queues,
        })
    }

    /// Loads `dir/checkpoint`: `Ok(None)` if absent, `Err` if unreadable or
    /// corrupt (the caller reports it and rebuilds from the CommitLog).
    pub fn load(dir: &Path) -> Result<Option<Checkpoint>, StoreError> {
        let path = dir.join(FILE);
        match std::fs::read(&path) {
            Ok(b) => Checkpoint::decode(&b)
                .map(Some)
                .map_err(|what| StoreError::Corrupt { path, what }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io(path, e)),
        }
    }

    /// Stores the checkpoint: `checkpoint.tmp` written, fdatasynced and
    /// renamed over `checkpoint`, then the directory synced. On a failure
    /// before the rename the old checkpoint stays as it was and the
    /// temporary file is removed (best effort): nothing half written is
    /// left under either name.
    pub async fn store(&self, dir: &Path, faults: &Option<Rc<DiskFaults>>) -> Result<(), StoreError> {
        let tmp = dir.join("checkpoint.tmp");
        let err =
            |what: &str, e: glommio::GlommioError<()>| StoreError::glommio(format_args!("{what} {}", tmp.display()), e);
        let mut f: BufferedFile = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .buffered_open(&tmp)
            .await
            .map_err(|e| err("create", e))?;
        match self.write_tmp(&f, &tmp, faults).await {
            Ok(()) => {
                f.rename(dir.join(FILE)).await.map_err(|e| err("rename", e))?;
                f.close().await.map_err(|e| err("close", e))?;
                super::segment::sync_dir(dir).await
            }
            Err(e) => {
                let _ = f.close().await;
                if let Err(rm) = glommio::io::remove(&tmp).await {
                    log::warn!("cannot remove {} after a failed checkpoint: {rm}", tmp.display());
                }
                Err(e)
            }
        }
    }

    /// Writes and fdatasyncs the encoded checkpoint into `f` (at `tmp`).
    async fn write_tmp(&self, f: &BufferedFile, tmp: &Path, faults: &Option<Rc<DiskFaults>>) -> Result<(), StoreError> {
        let err =
            |what: &str, e: glommio::GlommioError<()>| StoreError::glommio(format_args!("{what} {}", tmp.display()), e);
        let mut bytes = self.encode();
        let len = bytes.len();
        let written = match faults::consult(faults, DiskOp::CheckpointWrite) {
            None => f.write_at(bytes, 0).await,
            Some(Fault::ShortWrite) => {
                bytes.truncate(faults::short_len(len, 1));
                f.write_at(bytes, 0).await
            }
            Some(fault) => Err(faults::os_error(fault, "Writing", tmp)),
        };
        let n = written.map_err(|e| err("write", e))?;
        if n != len {
            return Err(StoreError::NoSpace(format!(
                "short write on {}: {n} of {len} bytes",
                tmp.display()
            )));
        }
        let synced = match faults::consult(faults, DiskOp::CheckpointSync) {
            None => f.fdatasync().await,
            Some(fault) => Err(faults::os_error(fault, "Syncing", tmp)),
        };
        synced.map_err(|e| err("fdatasync", e))
    }
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let s = self.b.get(self.at..self.at + n).ok_or("truncated")?;
        self.at += n;
        Ok(s)
    }
    fn u16(&mut self) -> Result<u16, String> {
        let s = self.take(2)?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }
    fn u32(&mut self) -> Result<u32, String> {
        let s = self.take(4)?;
        Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn u64(&mut self) -> Result<u64, String> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trips_and_detects_damage() {
        let c = Checkpoint {
            log_pos: 42,
            log_min: 7,
            queues: vec![QueueMark {
                topic: "T".into(),
                queue_id: 3,
                min_offset: 1,
                max_offset: 9,
            }],
        };
        let b = c.encode();
        assert_eq!(Checkpoint::decode(&b), Ok(c));
        for i in 0..b.len() {
            let mut bad = b.clone();
            bad[i] ^= 0x40;
            assert!(Checkpoint::decode(&bad).is_err(), "flip at {i} undetected");
        }
    }

    proptest! {
        #[test]
        fn decode_never_panics(b in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = Checkpoint::decode(&b);
        }
    }
}
