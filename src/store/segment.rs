//! One CommitLog segment file: `commitlog/<20-digit base offset>`, fixed
//! size, opened read+write with O_DIRECT through a glommio `DmaFile`.
//!
//! Segments are prepared ahead of use ([`prepare`]): created, fallocated to
//! the full size (optionally zero-filled), fdatasynced, and their directory
//! entry made durable, so the append path never creates or grows a file and
//! an fdatasync after a write never has to persist a size change.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use glommio::io::{DmaFile, OpenOptions};

use super::error::StoreError;
use super::faults::{self, DiskFaults, DiskOp, Fault};
use super::position::segment_file_name;

/// Largest single O_DIRECT request (virtio max_sectors_kb here is 4 MiB).
pub const MAX_IO: usize = 4 << 20;
/// Alignment of every O_DIRECT position and length (physical block).
pub const ALIGN: u64 = 4096;

pub fn align_down(v: u64) -> u64 {
    v & !(ALIGN - 1)
}

pub fn align_up(v: u64) -> u64 {
    (v + ALIGN - 1) & !(ALIGN - 1)
}

pub struct Segment {
    pub base: u64,
    pub size: u64,
    pub path: PathBuf,
    pub file: Rc<DmaFile>,
    /// The fault plan consulted by [`write`](Self::write) and
    /// [`sync`](Self::sync) (tests only; `None` costs one branch).
    pub faults: Option<Rc<DiskFaults>>,
}

impl Segment {
    pub fn end(&self) -> u64 {
        self.base + self.size
    }

    pub async fn open(dir: &Path, base: u64, size: u64, faults: Option<Rc<DiskFaults>>) -> Result<Segment, StoreError> {
        let path = dir.join(segment_file_name(base));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .dma_open(&path)
            .await
            .map_err(|e| StoreError::glommio(format_args!("open {}", path.display()), e))?;
        Ok(Segment {
            base,
            size,
            path,
            file: Rc::new(file),
            faults,
        })
    }

    /// Writes `buf` (aligned length) at log offset `pos` (aligned).
    pub async fn write(&self, pos: u64, buf: glommio::io::DmaBuffer) -> Result<(), StoreError> {
        debug_assert!(pos >= self.base && pos % ALIGN == 0);
        let len = buf.len();
        debug_assert!(len as u64 % ALIGN == 0 && pos + len as u64 <= self.end());
        let off = pos - self.base;
        let written = match faults::consult_async(&self.faults, DiskOp::SegmentWrite).await {
            None => self.file.write_at(buf, off).await,
            Some(Fault::ShortWrite) => {
                // The first whole sectors reach the file, as in a real
                // short write; the count says how many.
                let keep = faults::short_len(len, 512);
                if keep == 0 {
                    Ok(0)
                } else {
                    let mut part = self.file.alloc_dma_buffer(keep);
                    part.as_bytes_mut().copy_from_slice(&buf.as_bytes()[..keep]);
                    self.file.write_at(part, off).await
                }
            }
            Some(f) => Err(faults::os_error(f, "Writing", &self.path)),
        };
        let n = written.map_err(|e| StoreError::glommio(format_args!("write {}", self.path.display()), e))?;
        if n != len {
            // A regular file writes short when the device fills up.
            return Err(StoreError::NoSpace(format!(
                "short write on {}: {n} of {len} bytes",
                self.path.display()
            )));
        }
        Ok(())
    }

    pub async fn sync(&self) -> Result<(), StoreError> {
        let res = match faults::consult_async(&self.faults, DiskOp::SegmentSync).await {
            None => self.file.fdatasync().await,
            Some(f) => Err(faults::os_error(f, "Syncing", &self.path)),
        };
        res.map_err(|e| StoreError::glommio(format_args!("fdatasync {}", self.path.display()), e))
    }

    /// Reads `len` bytes at log offset `pos` (any alignment), clipped to the
    /// segment.
    pub async fn read(&self, pos: u64, len: usize) -> Result<glommio::io::ReadResult, StoreError> {
        debug_assert!(pos >= self.base);
        let len = len.min((self.end() - pos) as usize);
        self.file
            .read_at(pos - self.base, len)
            .await
            .map_err(|e| StoreError::glommio(format_args!("read {}", self.path.display()), e))
    }
}

/// Creates and preallocates the segment starting at `base`. Idempotent: a
/// file left by an interrupted preparation is completed, not trusted.
pub async fn prepare(
    dir: &Path,
    base: u64,
    size: u64,
    pre_zero: bool,
    faults: Option<Rc<DiskFaults>>,
) -> Result<Segment, StoreError> {
    let path = dir.join(segment_file_name(base));
    let mut created = false;
    match prepare_file(&path, size, pre_zero, &faults, &mut created).await {
        Ok(file) => {
            sync_dir(dir).await?;
            Ok(Segment {
                base,
                size,
                path,
                file: Rc::new(file),
                faults,
            })
        }
        Err(e) => {
            // Leave nothing half-prepared behind (a start that fails, or a
            // full disk, must not strand a gigabyte of fallocated space).
            // Only a file this call created is removed: it held no data.
            if !created {
                return Err(e);
            }
            if let Err(rm) = glommio::io::remove(&path).await {
                let rm = std::io::Error::from(rm);
                if rm.kind() != std::io::ErrorKind::NotFound {
                    log::warn!("cannot remove half-prepared {}: {rm}", path.display());
                }
            }
            Err(e)
        }
    }
}

async fn prepare_file(
    path: &Path,
    size: u64,
    pre_zero: bool,
    faults: &Option<Rc<DiskFaults>>,
    created: &mut bool,
) -> Result<DmaFile, StoreError> {
    let create_err = |e: glommio::GlommioError<()>| StoreError::glommio(format_args!("create {}", path.display()), e);
    let file = match OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .dma_open(path)
        .await
    {
        Ok(f) => {
            *created = true;
            f
        }
        Err(e) => {
            let e = std::io::Error::from(e);
            if e.kind() != std::io::ErrorKind::AlreadyExists {
                return Err(StoreError::io(path, e));
            }
            // Left by an earlier preparation that failed or crashed before
            // it was complete: finish it.
            OpenOptions::new()
                .read(true)
                .write(true)
                .dma_open(path)
                .await
                .map_err(create_err)?
        }
    };
    let glommio_err =
        |what: &str, e: glommio::GlommioError<()>| StoreError::glommio(format_args!("{what} {}", path.display()), e);
    let allocated = match faults::consult(faults, DiskOp::SegmentPrepare) {
        None => file.pre_allocate(size, false).await,
        Some(f) => Err(faults::os_error(f, "Fallocate", path)),
    };
    allocated.map_err(|e| glommio_err("fallocate", e))?;
    if pre_zero {
        let mut pos = 0;
        while pos < size {
            let n = (size - pos).min(MAX_IO as u64) as usize;
            let mut buf = file.alloc_dma_buffer(n);
            buf.as_bytes_mut().fill(0);
            file.write_at(buf, pos).await.map_err(|e| glommio_err("zero-fill", e))?;
            pos += n as u64;
        }
    }
    file.fdatasync().await.map_err(|e| glommio_err("fdatasync", e))?;
    Ok(file)
}

/// Makes a directory's entries (created, renamed, deleted files) durable.
pub async fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    let d = glommio::io::Directory::open(dir)
        .await
        .map_err(|e| StoreError::glommio(format_args!("open dir {}", dir.display()), e))?;
    d.sync()
        .await
        .map_err(|e| StoreError::glommio(format_args!("fsync dir {}", dir.display()), e))?;
    let _ = d.close().await;
    Ok(())
}
