//! Consume-queue files: `consumequeue/<topic>/<queueId>/<20-digit byte
//! offset>`, each holding `entries_per_file` 20-byte entries.
//!
//! Unlike the CommitLog these go through the page cache (glommio buffered
//! files): they are a derived index, rebuilt from the CommitLog after a
//! crash from the last checkpoint on, and their writes are 20-byte entries
//! scattered over up to thousands of files — O_DIRECT would turn every
//! write-behind into a 4 KiB read-modify-write per queue. Durability comes
//! from the checkpoint protocol: files are fdatasynced (and new directory
//! entries synced) before a checkpoint claims them. Every file written and
//! every directory created stays on the dirty list until a checkpoint that
//! synced it has been stored ([`CqFiles::clear_dirty`]): a checkpoint that
//! fails midway leaves them for the next one.
//!
//! Open handles are kept in a small LRU so that 10 000 queues never hold
//! 10 000 descriptors.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use glommio::io::{BufferedFile, OpenOptions};

use super::consume_queue::{CqEntry, CQ_ENTRY_SIZE};
use super::error::StoreError;
use super::faults::{self, DiskFaults, DiskOp, Fault};
use super::position::{parse_segment_file_name, segment_file_name};

const MAX_OPEN: usize = 256;

pub struct CqFiles {
    root: PathBuf,
    entries_per_file: u64,
    shard: u16,
    open: RefCell<HashMap<PathBuf, (Rc<BufferedFile>, u64)>>,
    tick: Cell<u64>,
    /// Directories created since the last stored checkpoint (must be synced).
    new_dirs: RefCell<Vec<PathBuf>>,
    /// Files written since the last stored checkpoint (must be synced).
    dirty_files: RefCell<HashMap<PathBuf, Rc<BufferedFile>>>,
    /// Consulted at each write and fdatasync (tests only).
    faults: Option<Rc<DiskFaults>>,
}

/// What a checkpoint must sync before it is stored.
#[derive(Default)]
pub struct Dirty {
    files: Vec<(PathBuf, Rc<BufferedFile>)>,
    dirs: Vec<PathBuf>,
}

impl Dirty {
    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.dirs.is_empty()
    }
}

impl CqFiles {
    pub fn new(root: PathBuf, entries_per_file: u64, shard: u16, faults: Option<Rc<DiskFaults>>) -> CqFiles {
        CqFiles {
            root,
            entries_per_file,
            shard,
            open: RefCell::new(HashMap::new()),
            tick: Cell::new(0),
            new_dirs: RefCell::new(Vec::new()),
            dirty_files: RefCell::new(HashMap::new()),
            faults,
        }
    }

    pub fn queue_dir(&self, topic: &str, queue_id: u32) -> PathBuf {
        self.root.join(topic).join(queue_id.to_string())
    }

    fn file_path(&self, topic: &str, queue_id: u32, offset: u64) -> (PathBuf, u64) {
        let file_no = offset / self.entries_per_file;
        let first = file_no * self.entries_per_file;
        let name = segment_file_name(first * CQ_ENTRY_SIZE as u64);
        (self.queue_dir(topic, queue_id).join(name), first)
    }

    async fn handle(&self, path: &Path, create: bool) -> Result<Option<Rc<BufferedFile>>, StoreError> {
        let t = self.tick.get() + 1;
        self.tick.set(t);
        if let Some((f, used)) = self.open.borrow_mut().get_mut(path) {
            *used = t;
            return Ok(Some(f.clone()));
        }
        if create {
            if let Some(dir) = path.parent() {
                // A new queue's first file: mkdir on the blocking thread.
                let d = dir.to_path_buf();
                let created = crate::runtime::blocking::run(move || -> std::io::Result<bool> {
                    if d.exists() {
                        return Ok(false);
                    }
                    std::fs::create_dir_all(&d).map(|()| true)
                })
                .await
                .map_err(|e| StoreError::io(dir, e))?;
                if created {
                    let mut nd = self.new_dirs.borrow_mut();
                    nd.push(dir.to_path_buf());
                    if let Some(p) = dir.parent() {
                        nd.push(p.to_path_buf());
                    }
                    nd.push(self.root.clone());
                }
            }
        }
        // No stat first: an unopened file that does not exist is ENOENT
        // from the (asynchronous) open itself.
        let f = match OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .buffered_open(path)
            .await
        {
            Ok(f) => f,
            Err(e) if !create && is_not_found(&e) => return Ok(None),
            Err(e) => return Err(StoreError::glommio(format_args!("open {}", path.display()), e)),
        };
        let f = Rc::new(f);
        let mut open = self.open.borrow_mut();
        if open.len() >= MAX_OPEN {
            if let Some(old) = open.iter().min_by_key(|(_, (_, u))| *u).map(|(p, _)| p.clone()) {
                open.remove(&old);
            }
        }
        open.insert(path.to_path_buf(), (f.clone(), t));
        Ok(Some(f))
    }

    /// Writes `entries` starting at queue offset `from`; the files touched
    /// join the dirty list (synced by the next checkpoint).
    pub async fn write(&self, topic: &str, queue_id: u32, from: u64, entries: &[CqEntry]) -> Result<(), StoreError> {
        let mut off = from;
        let mut rest = entries;
        while !rest.is_empty() {
            let (path, first) = self.file_path(topic, queue_id, off);
            let room = (first + self.entries_per_file - off) as usize;
            let n = room.min(rest.len());
            let mut buf = Vec::with_capacity(n * CQ_ENTRY_SIZE);
            for e in &rest[..n] {
                e.encode(self.shard, &mut buf);
            }
            let Some(f) = self.handle(&path, true).await? else {
                return Err(StoreError::Corrupt {
                    path,
                    what: "could not create consume-queue file".into(),
                });
            };
            let pos = (off - first) * CQ_ENTRY_SIZE as u64;
            let len = buf.len();
            let written = match faults::consult(&self.faults, DiskOp::CqWrite) {
                None => f.write_at(buf, pos).await,
                Some(Fault::ShortWrite) => {
                    buf.truncate(faults::short_len(len, 1));
                    f.write_at(buf, pos).await
                }
                Some(fault) => Err(faults::os_error(fault, "Writing", &path)),
            };
            // On failure the entries stay unwritten: the next write-behind
            // writes them again from `from`, over whatever part landed.
            let w = written.map_err(|e| StoreError::glommio(format_args!("write {}", path.display()), e))?;
            if w != len {
                return Err(StoreError::NoSpace(format!(
                    "short write on {}: {w} of {len} bytes",
                    path.display()
                )));
            }
            self.dirty_files.borrow_mut().insert(path, f);
            rest = &rest[n..];
            off += n as u64;
        }
        Ok(())
    }

    /// Whether the file that would hold queue offset `offset` exists (a
    /// stat, on the blocking thread).
    pub async fn has_file(&self, topic: &str, queue_id: u32, offset: u64) -> bool {
        let path = self.file_path(topic, queue_id, offset).0;
        crate::runtime::blocking::run(move || path.exists()).await
    }

    /// Reads up to `count` entries from queue offset `from`. Stops early at
    /// a file end or an unwritten slot.
    pub async fn read(&self, topic: &str, queue_id: u32, from: u64, count: usize) -> Result<Vec<CqEntry>, StoreError> {
        let (path, first) = self.file_path(topic, queue_id, from);
        let Some(f) = self.handle(&path, false).await? else {
            return Err(StoreError::Corrupt {
                path,
                what: format!("consume-queue file for offset {from} is missing"),
            });
        };
        let room = (first + self.entries_per_file - from) as usize;
        let n = room.min(count);
        let pos = (from - first) * CQ_ENTRY_SIZE as u64;
        let r = f
            .read_at(pos, n * CQ_ENTRY_SIZE)
            .await
            .map_err(|e| StoreError::glommio(format_args!("read {}", path.display()), e))?;
        let mut out = Vec::with_capacity(n);
        for chunk in r.chunks_exact(CQ_ENTRY_SIZE) {
            match CqEntry::decode(chunk) {
                Some(e) => out.push(e),
                None => break,
            }
        }
        Ok(out)
    }

    /// Files and directories written since the last stored checkpoint.
    pub fn dirty(&self) -> Dirty {
        let files = self
            .dirty_files
            .borrow()
            .iter()
            .map(|(p, f)| (p.clone(), f.clone()))
            .collect();
        let mut dirs = self.new_dirs.borrow().clone();
        dirs.sort();
        dirs.dedup();
        Dirty { files, dirs }
    }

    /// fdatasyncs the files and syncs the directories of `d`.
    pub async fn sync_dirty(&self, d: &Dirty) -> Result<(), StoreError> {
        let syncs = futures::future::join_all(d.files.iter().map(|(p, f)| async move {
            match faults::consult(&self.faults, DiskOp::CqSync) {
                None => f.fdatasync().await,
                Some(fault) => Err(faults::os_error(fault, "Syncing", p)),
            }
        }))
        .await;
        for (r, (p, _)) in syncs.into_iter().zip(&d.files) {
            r.map_err(|e| StoreError::glommio(format_args!("fdatasync {}", p.display()), e))?;
        }
        for dir in &d.dirs {
            super::segment::sync_dir(dir).await?;
        }
        Ok(())
    }

    /// Forgets what `d` listed: call only after the checkpoint that synced
    /// it has been stored. (Checkpoints are serialised, and only they write
    /// these files, so nothing in `d` was written again since.)
    pub fn clear_dirty(&self, d: &Dirty) {
        let mut files = self.dirty_files.borrow_mut();
        for (p, _) in &d.files {
            files.remove(p);
        }
        self.new_dirs.borrow_mut().retain(|x| !d.dirs.contains(x));
    }

    /// Removes queue offsets `[from, to)` from the queue's files (the log
    /// was truncated below their records): the slots of the file holding
    /// `from` are zeroed and fdatasynced, the files after it deleted and
    /// the directory synced. Handles of deleted files are forgotten, so a
    /// later write creates them anew.
    pub async fn cut(&self, topic: &str, queue_id: u32, from: u64, to: u64) -> Result<(), StoreError> {
        if from >= to {
            return Ok(());
        }
        let (path, first) = self.file_path(topic, queue_id, from);
        let mut next = first;
        if from > first {
            next = first + self.entries_per_file;
            if let Some(f) = self.handle(&path, false).await? {
                let n = (to.min(next) - from) as usize;
                let err = |what: &str, e| StoreError::glommio(format_args!("{what} {}", path.display()), e);
                let w = f
                    .write_at(vec![0u8; n * CQ_ENTRY_SIZE], (from - first) * CQ_ENTRY_SIZE as u64)
                    .await
                    .map_err(|e| err("write", e))?;
                if w != n * CQ_ENTRY_SIZE {
                    return Err(StoreError::NoSpace(format!("short write on {}", path.display())));
                }
                f.fdatasync().await.map_err(|e| err("fdatasync", e))?;
            }
        }
        let mut doomed = Vec::new();
        while next < to {
            let p = self.file_path(topic, queue_id, next).0;
            self.open.borrow_mut().remove(&p);
            self.dirty_files.borrow_mut().remove(&p);
            doomed.push(p);
            next += self.entries_per_file;
        }
        if doomed.is_empty() {
            return Ok(());
        }
        crate::runtime::blocking::run(move || {
            for p in &doomed {
                match std::fs::remove_file(p) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(StoreError::io(p, e)),
                    _ => {}
                }
            }
            Ok(())
        })
        .await?;
        super::segment::sync_dir(&self.queue_dir(topic, queue_id)).await
    }

    /// Deletes the queue's files that hold only offsets below `min`. The
    /// directory listing and the unlinks run on the blocking thread (one
    /// round trip each, see [`crate::runtime::blocking`]); the open and
    /// dirty maps are updated here, before the unlinks.
    pub async fn delete_below(&self, topic: &str, queue_id: u32, min: u64) -> Result<usize, StoreError> {
        let dir = self.queue_dir(topic, queue_id);
        let listed = {
            let dir = dir.clone();
            crate::runtime::blocking::run(move || -> Vec<(std::path::PathBuf, u64)> {
                let Ok(rd) = std::fs::read_dir(&dir) else {
                    return Vec::new();
                };
                rd.flatten()
                    .filter_map(|ent| {
                        let start = ent.file_name().to_str().and_then(parse_segment_file_name)?;
                        Some((ent.path(), start))
                    })
                    .collect()
            })
            .await
        };
        let doomed: Vec<std::path::PathBuf> = listed
            .into_iter()
            .filter(|(_, start)| start / CQ_ENTRY_SIZE as u64 + self.entries_per_file <= min)
            .map(|(p, _)| p)
            .collect();
        if doomed.is_empty() {
            return Ok(0);
        }
        for p in &doomed {
            self.open.borrow_mut().remove(p);
            self.dirty_files.borrow_mut().remove(p);
        }
        crate::runtime::blocking::run(move || {
            for p in &doomed {
                std::fs::remove_file(p).map_err(|e| StoreError::io(p, e))?;
            }
            Ok(doomed.len())
        })
        .await
    }
}

/// Whether a failed open says the file does not exist.
fn is_not_found(e: &glommio::GlommioError<()>) -> bool {
    match e {
        glommio::GlommioError::IoError(s) | glommio::GlommioError::EnhancedIoError { source: s, .. } => {
            s.kind() == std::io::ErrorKind::NotFound
        }
        _ => false,
    }
}
