//! The consumer offsets of the queues one shard owns, and their
//! persistence without blocking the shard.
//!
//! In memory: `group -> topic -> queue -> offset`, names interned as
//! `Arc<str>` (lookups by `&str` allocate nothing; capturing the table for
//! a snapshot copies pointers, not names). On disk: a snapshot plus an
//! append-only journal, see [`super::offset_journal`].
//!
//! [`ConsumerOffsets::persist`] (every 5 s, at shutdown, after an admin
//! reset) appends one record per entry changed since the last persist —
//! an entry committed a thousand times in between is written once — and
//! `fdatasync`s the journal, both through io_uring (glommio
//! `BufferedFile`). When the journal outgrows the live table it compacts:
//! the table is captured on the shard (pointer copies), and the snapshot is
//! encoded and written atomically on the blocking thread
//! ([`crate::runtime::blocking`]).
//!
//! Bounds:
//! * the table holds at most [`MAX_ENTRIES`] `(group, topic, queue)`
//!   entries per shard; a commit of a new entry beyond it is refused (and
//!   logged), existing entries still update;
//! * the journals hold at most `max(COMPACT_MIN_BYTES, 2 × live)` bytes
//!   plus one persist's worth (at most `live`), where `live` is the size of
//!   one record per live entry: each persist writes every changed entry
//!   once, and compaction starts as soon as the bound is passed.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use glommio::io::{BufferedFile, OpenOptions};

use super::offset_journal::{self as journal, Record, Step, HEADER_LEN};

/// Most `(group, topic, queue)` entries one shard keeps.
pub const MAX_ENTRIES: usize = 1_000_000;
/// Entries encoded between two yields of a persist.
const ENCODE_CHUNK: usize = 2048;
/// Journals smaller than this are never compacted.
pub const COMPACT_MIN_BYTES: u64 = 1 << 20;

type Key = (Arc<str>, Arc<str>, u32);
/// group -> topic -> queue -> entry.
type Groups = HashMap<Arc<str>, HashMap<Arc<str>, HashMap<u32, Entry>>>;

#[derive(Clone, Copy)]
struct Entry {
    offset: u64,
    /// Listed in `Table::dirty` (changed since the last persist).
    dirty: bool,
}

struct Table {
    groups: Groups,
    len: usize,
    /// One journal record per live entry, in bytes.
    live_bytes: u64,
    dirty: Vec<Key>,
    refused: u64,
    /// [`MAX_ENTRIES`] (smaller in tests).
    max_entries: usize,
}

impl Default for Table {
    fn default() -> Table {
        Table {
            groups: HashMap::new(),
            len: 0,
            live_bytes: 0,
            dirty: Vec::new(),
            refused: 0,
            max_entries: MAX_ENTRIES,
        }
    }
}

impl Table {
    fn get(&self, group: &str, topic: &str, queue: u32) -> Option<&Entry> {
        self.groups.get(group)?.get(topic)?.get(&queue)
    }

    /// Sets an entry; false if it is new and the table is full (or a name
    /// cannot be journaled).
    fn set(&mut self, group: &str, topic: &str, queue: u32, offset: u64) -> bool {
        if let Some(e) = self
            .groups
            .get_mut(group)
            .and_then(|t| t.get_mut(topic))
            .and_then(|q| q.get_mut(&queue))
        {
            if e.offset != offset {
                e.offset = offset;
                if !e.dirty {
                    e.dirty = true;
                    self.dirty.push(key(group, topic, queue, &self.groups));
                }
            }
            return true;
        }
        if self.len >= self.max_entries || group.len() > journal::MAX_NAME || topic.len() > journal::MAX_NAME {
            self.refused += 1;
            return false;
        }
        let g: Arc<str> = match self.groups.get_key_value(group) {
            Some((g, _)) => g.clone(),
            None => group.into(),
        };
        let topics = self.groups.entry(g.clone()).or_default();
        let t: Arc<str> = match topics.get_key_value(topic) {
            Some((t, _)) => t.clone(),
            None => topic.into(),
        };
        topics
            .entry(t.clone())
            .or_default()
            .insert(queue, Entry { offset, dirty: true });
        self.len += 1;
        self.live_bytes += journal::record_len(group, topic) as u64;
        self.dirty.push((g, t, queue));
        true
    }

    /// Encodes the changed entries `keys` as records, marking them clean.
    fn encode_clean(&mut self, keys: &[Key], buf: &mut Vec<u8>) {
        for (g, t, q) in keys {
            let e = self
                .groups
                .get_mut(g)
                .and_then(|x| x.get_mut(t))
                .and_then(|x| x.get_mut(q))
                .expect("a dirty key is in the table");
            debug_assert!(e.dirty);
            e.dirty = false;
            journal::encode_record(buf, g, t, *q, e.offset);
        }
    }

    /// After a failed append: these entries are not on disk yet.
    fn mark_dirty(&mut self, keys: Vec<Key>) {
        for (g, t, q) in keys {
            if let Some(e) = self
                .groups
                .get_mut(&g)
                .and_then(|x| x.get_mut(&t))
                .and_then(|x| x.get_mut(&q))
            {
                if !e.dirty {
                    e.dirty = true;
                    self.dirty.push((g, t, q));
                }
            }
        }
    }

    fn records(&self) -> Vec<Record> {
        let mut v = Vec::with_capacity(self.len);
        for g in self.groups.keys() {
            self.group_records(g, &mut v);
        }
        v
    }

    /// Appends the records of group `g`; how many.
    fn group_records(&self, g: &Arc<str>, out: &mut Vec<Record>) -> usize {
        let before = out.len();
        for (topic, queues) in self.groups.get(g).into_iter().flatten() {
            for (q, e) in queues {
                out.push(Record {
                    group: g.clone(),
                    topic: topic.clone(),
                    queue: *q,
                    offset: e.offset,
                });
            }
        }
        out.len() - before
    }
}

/// The interned key of an entry known to exist.
fn key(group: &str, topic: &str, queue: u32, groups: &Groups) -> Key {
    let (g, topics) = groups.get_key_value(group).expect("entry exists");
    let (t, _) = topics.get_key_value(topic).expect("entry exists");
    (g.clone(), t.clone(), queue)
}

/// The journal appends go to.
struct Writer {
    generation: u64,
    /// Where the next record goes; 0: the file is still to be created.
    end: u64,
    /// Bytes of older journals still to be replayed (until compaction).
    older_bytes: u64,
    file: Option<BufferedFile>,
}

pub struct ConsumerOffsets {
    dir: PathBuf,
    table: RefCell<Table>,
    /// Held for a whole persist, so persists never interleave.
    writer: futures::lock::Mutex<Writer>,
    compact_min_bytes: Cell<u64>,
    /// Commits accepted since load (replication sends the table when it
    /// moves).
    commits: Cell<u64>,
    #[cfg(test)]
    crash_after: Cell<Option<Step>>,
}

impl ConsumerOffsets {
    /// Reads the snapshot and replays the journals. Start-up only (blocking
    /// std::fs, before the shard serves requests); never fails: what cannot
    /// be read is logged and left out.
    pub fn load(dir: &Path) -> ConsumerOffsets {
        let loaded = match journal::load_dir(dir) {
            Ok(l) => l,
            Err(e) => {
                // Whatever exists stays (the next compaction would delete
                // journals older than its generation, so take one above any
                // name a journal can have without overflowing on `+ 1`).
                log::error!("{}: consumer offsets: {e}; starting without them", dir.display());
                journal::LoadedDir {
                    generation: 10u64.pow(19),
                    ..Default::default()
                }
            }
        };
        let mut table = Table::default();
        for ((g, t, q), o) in loaded.table {
            table.set(&g, &t, q, o);
        }
        // Loaded entries are on disk already.
        for (g, t, q) in std::mem::take(&mut table.dirty) {
            if let Some(e) = table
                .groups
                .get_mut(&g)
                .and_then(|x| x.get_mut(&t))
                .and_then(|x| x.get_mut(&q))
            {
                e.dirty = false;
            }
        }
        ConsumerOffsets {
            dir: dir.to_path_buf(),
            table: RefCell::new(table),
            writer: futures::lock::Mutex::new(Writer {
                generation: loaded.generation,
                end: loaded.append_at,
                older_bytes: loaded.older_bytes,
                file: None,
            }),
            compact_min_bytes: Cell::new(COMPACT_MIN_BYTES),
            commits: Cell::new(0),
            #[cfg(test)]
            crash_after: Cell::new(None),
        }
    }

    pub fn get(&self, group: &str, topic: &str, qid: u32) -> Option<u64> {
        self.table.borrow().get(group, topic, qid).map(|e| e.offset)
    }

    /// Sets an offset; persisted by the next [`Self::persist`]. False when
    /// the entry is new and the table is at [`MAX_ENTRIES`].
    pub fn commit(&self, group: &str, topic: &str, qid: u32, offset: u64) -> bool {
        let mut t = self.table.borrow_mut();
        let ok = t.set(group, topic, qid, offset);
        if ok {
            self.commits.set(self.commits.get() + 1);
        }
        if !ok && t.refused.is_power_of_two() {
            log::error!(
                "consumer offsets table full ({MAX_ENTRIES} entries on this shard): \
                 offset of new queue {topic}/{qid} for group {group} not kept ({} refused so far)",
                t.refused
            );
        }
        ok
    }

    /// Commits accepted so far: moves whenever the table may have changed.
    pub fn commits(&self) -> u64 {
        self.commits.get()
    }

    /// Every (group, topic, queue, offset), for admin and lag metrics.
    pub fn snapshot(&self) -> Vec<(String, String, u32, u64)> {
        self.table
            .borrow()
            .records()
            .into_iter()
            .map(|r| (r.group.to_string(), r.topic.to_string(), r.queue, r.offset))
            .collect()
    }

    /// Makes every commit so far durable: appends the changed entries to
    /// the journal and syncs it, then compacts if the journal is past its
    /// bound. Entries that could not be written stay pending.
    pub async fn persist(&self) -> Result<(), String> {
        let mut w = self.writer.lock().await;
        self.append_changes(&mut w).await?;
        let bound = self.compact_min_bytes.get().max(2 * self.table.borrow().live_bytes);
        if w.end + w.older_bytes > bound {
            self.compact(&mut w).await?;
        }
        Ok(())
    }

    async fn append_changes(&self, w: &mut Writer) -> Result<(), String> {
        let keys = std::mem::take(&mut self.table.borrow_mut().dirty);
        if keys.is_empty() {
            return Ok(());
        }
        // Encoded a chunk at a time, letting other tasks run in between: a
        // whole 100 k-entry table at once holds the shard for ~30 ms. An
        // entry committed again meanwhile is listed dirty again and goes
        // out with the next persist.
        let mut buf = Vec::new();
        for chunk in keys.chunks(ENCODE_CHUNK) {
            self.table.borrow_mut().encode_clean(chunk, &mut buf);
            if keys.len() > ENCODE_CHUNK {
                futures_lite::future::yield_now().await;
            }
        }
        let len = buf.len() as u64;
        match self.append(w, buf).await {
            Ok(()) => {
                w.end += len;
                Ok(())
            }
            Err(e) => {
                self.table.borrow_mut().mark_dirty(keys);
                Err(e)
            }
        }
    }

    /// Writes `buf` at the journal's end and syncs; creates the journal
    /// first if needed. Does not move `w.end`.
    async fn append(&self, w: &mut Writer, buf: Vec<u8>) -> Result<(), String> {
        let path = self.dir.join(journal::journal_name(w.generation));
        let err = |e: glommio::GlommioError<()>| format!("{}: {e}", path.display());
        if w.end == 0 {
            let f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .buffered_open(&path)
                .await
                .map_err(err)?;
            write_all(&f, journal::encode_header(w.generation).to_vec(), 0)
                .await
                .map_err(err)?;
            f.fdatasync().await.map_err(err)?;
            crate::store::segment::sync_dir(&self.dir)
                .await
                .map_err(|e| e.to_string())?;
            w.file = Some(f);
            w.end = HEADER_LEN as u64;
        }
        if w.file.is_none() {
            let f = OpenOptions::new().write(true).buffered_open(&path).await.map_err(err)?;
            w.file = Some(f);
        }
        let f = w.file.as_ref().expect("opened above");
        write_all(f, buf, w.end).await.map_err(err)?;
        f.fdatasync().await.map_err(err)
    }

    /// Captures the table and, on the blocking thread, writes it as the
    /// snapshot of a new journal generation (see `offset_journal`).
    async fn compact(&self, w: &mut Writer) -> Result<(), String> {
        let next = w.generation + 1;
        let entries = self.capture().await;
        let dir = self.dir.clone();
        #[cfg(test)]
        let stop_after = self.crash_after.get();
        #[cfg(not(test))]
        let stop_after = None;
        let (step, result) =
            crate::runtime::blocking::run(move || journal::compact_files(&dir, next, &entries, stop_after)).await;
        if step >= Step::SnapshotRenamed {
            // The snapshot names `next`: records must go there from now on.
            if let Some(f) = w.file.take() {
                let _ = f.close().await;
            }
            w.generation = next;
            w.end = HEADER_LEN as u64;
            w.older_bytes = 0;
        }
        result
    }

    /// The whole table for a snapshot, a group at a time with yields in
    /// between (100 k entries at once hold the shard ~9 ms). Safe although
    /// the table changes meanwhile: every journal record of the current
    /// generation was written before the capture began, so each captured
    /// value is at least as new as that key's records; a commit after its
    /// key was captured is dirty and goes to the next generation.
    async fn capture(&self) -> Vec<Record> {
        let groups: Vec<Arc<str>> = self.table.borrow().groups.keys().cloned().collect();
        let mut out = Vec::with_capacity(self.table.borrow().len);
        let mut since_yield = 0;
        for g in groups {
            since_yield += self.table.borrow().group_records(&g, &mut out);
            if since_yield >= ENCODE_CHUNK {
                since_yield = 0;
                futures_lite::future::yield_now().await;
            }
        }
        out
    }

    /// Journals below this size are not compacted (tests use a small one).
    #[cfg(test)]
    pub(crate) fn set_compact_min_bytes(&self, n: u64) {
        self.compact_min_bytes.set(n);
    }

    /// Makes the next compactions stop after `step`, as a crash would.
    #[cfg(test)]
    pub(crate) fn set_crash_after(&self, step: Option<Step>) {
        self.crash_after.set(step);
    }

    #[cfg(test)]
    pub(crate) fn set_max_entries(&self, n: usize) {
        self.table.borrow_mut().max_entries = n;
    }
}

/// Writes `buf` at `at`. A short write (a full disk) is an error: the
/// caller keeps its entries pending and the next persist rewrites from the
/// same position.
async fn write_all(f: &BufferedFile, buf: Vec<u8>, at: u64) -> Result<(), glommio::GlommioError<()>> {
    let len = buf.len();
    let n = f.write_at(buf, at).await?;
    if n < len {
        return Err(glommio::GlommioError::IoError(std::io::Error::new(
            std::io::ErrorKind::WriteZero,
            format!("short journal write: {n} of {len} bytes"),
        )));
    }
    Ok(())
}
