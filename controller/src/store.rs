//! Durable Raft storage: log, vote, committed/purged ids and snapshots.
//!
//! # On-disk format (under the node's data dir)
//!
//! - `raft.log`: an append-only journal of records, each
//!   `u32 BE length | u32 BE crc32 (IEEE) of the body | JSON body`, the body a
//!   [`Record`]: `{"Entry":openraft Entry}`, `{"Truncate":index}` (drop entries
//!   with index >= it), `{"Purge":LogId}` (drop entries up to it, remember it as
//!   last purged) or `{"Committed":LogId|null}`. Replaying the journal in
//!   order rebuilds the log. A record is fsynced (`File::sync_data`) before
//!   openraft is told it is written. A short or CRC-failing last record (a
//!   crash in the middle of a write) is cut off on open; a CRC-valid record
//!   that does not parse is an error. After a purge (which follows each
//!   snapshot) the journal is rewritten with only the live state: written to
//!   `raft.log.tmp`, fsynced, renamed over `raft.log`, directory fsynced.
//! - `vote.json`: the vote (openraft `Vote` JSON), replaced atomically
//!   (tmp + fsync + rename + fsync dir).
//! - `snapshot.json`: the last snapshot, `{"meta":openraft SnapshotMeta,"state":SmData}`,
//!   replaced atomically the same way. The state machine itself lives in
//!   memory; on restart it is the snapshot plus the committed log replayed by openraft.
//!
//! All file I/O runs on `tokio::task::spawn_blocking` threads.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{Cursor, Read, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, RaftLogStorage, RaftStateMachine};
use openraft::{
    BasicNode, Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, LogState, RaftLogReader, RaftSnapshotBuilder,
    Snapshot, SnapshotMeta, StorageError, StoredMembership, Vote,
};
use serde::{Deserialize, Serialize};

use crate::sm::{Groups, Outcome};
use crate::TypeConfig;

type SErr = StorageError<u64>;

/// Largest journal record accepted on replay.
const MAX_RECORD: usize = 16 * 1024 * 1024;

/// One journal record of `raft.log`.
#[derive(Debug, Serialize, Deserialize)]
pub enum Record {
    Entry(Entry<TypeConfig>),
    Truncate(u64),
    Purge(LogId<u64>),
    Committed(Option<LogId<u64>>),
}

// ---------------------------------------------------------------- crc32

/// CRC-32 (IEEE 802.3, as zlib's crc32), the broker's crate for it.
pub fn crc32(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

// ---------------------------------------------------------------- helpers

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves consistent data (every
    // critical section is a plain map update), so poisoning is ignored.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn other(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Write `bytes` to `path` atomically and durably (tmp + fsync + rename + fsync dir).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().ok_or_else(|| other("path without parent"))?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_data()?;
    }
    std::fs::rename(&tmp, path)?;
    sync_dir(dir)
}

fn read_optional(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

async fn blocking<T, F>(subject: ErrorSubject<u64>, verb: ErrorVerb, f: F) -> Result<T, SErr>
where
    F: FnOnce() -> std::io::Result<T> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(StorageError::from_io_error(subject, verb, e)),
        Err(e) => Err(StorageError::from_io_error(subject, verb, other(e))),
    }
}

fn encode_record(rec: &Record, out: &mut Vec<u8>) -> std::io::Result<()> {
    let body = serde_json::to_vec(rec).map_err(other)?;
    if body.len() > MAX_RECORD {
        return Err(other(format!("record of {} bytes exceeds {MAX_RECORD}", body.len())));
    }
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32(&body).to_be_bytes());
    out.extend_from_slice(&body);
    Ok(())
}

/// Parse a journal image: the records and the length of its valid prefix
/// (shorter than `buf` when the tail is torn).
pub fn parse_journal(buf: &[u8]) -> std::io::Result<(Vec<Record>, usize)> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < buf.len() {
        let rest = &buf[pos..];
        if rest.len() < 8 {
            break;
        }
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let crc = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]);
        if len > MAX_RECORD || rest.len() < 8 + len {
            break;
        }
        let body = &rest[8..8 + len];
        if crc32(body) != crc {
            break;
        }
        let rec: Record =
            serde_json::from_slice(body).map_err(|e| other(format!("journal record at byte {pos}: {e}")))?;
        out.push(rec);
        pos += 8 + len;
    }
    Ok((out, pos))
}

// ---------------------------------------------------------------- log store

#[derive(Default)]
struct LogMeta {
    last_purged: Option<LogId<u64>>,
    committed: Option<LogId<u64>>,
}

struct LogShared {
    dir: PathBuf,
    entries: Mutex<BTreeMap<u64, Entry<TypeConfig>>>,
    meta: Mutex<LogMeta>,
    vote: Mutex<Option<Vote<u64>>>,
    /// The journal opened for appending.
    journal: Mutex<File>,
}

impl LogShared {
    fn log_path(&self) -> PathBuf {
        self.dir.join("raft.log")
    }

    /// Append records to the journal and fsync.
    fn write_records(&self, recs: &[Record]) -> std::io::Result<()> {
        let mut buf = Vec::new();
        for r in recs {
            encode_record(r, &mut buf)?;
        }
        let mut f = lock(&self.journal);
        f.write_all(&buf)?;
        f.sync_data()
    }

    /// Rewrite the journal with the live state only.
    fn compact(&self) -> std::io::Result<()> {
        let mut buf = Vec::new();
        {
            let meta = lock(&self.meta);
            if let Some(p) = meta.last_purged {
                encode_record(&Record::Purge(p), &mut buf)?;
            }
            encode_record(&Record::Committed(meta.committed), &mut buf)?;
        }
        for e in lock(&self.entries).values() {
            encode_record(&Record::Entry(e.clone()), &mut buf)?;
        }
        let mut f = lock(&self.journal);
        write_atomic(&self.log_path(), &buf)?;
        *f = OpenOptions::new().append(true).open(self.log_path())?;
        Ok(())
    }
}

/// The Raft log + vote storage.
#[derive(Clone)]
pub struct LogStore {
    shared: Arc<LogShared>,
}

impl LogStore {
    /// Open (or create) the log under `dir`, recovering journal and vote.
    pub fn open(dir: &Path) -> std::io::Result<LogStore> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("raft.log");
        let mut file = OpenOptions::new().read(true).append(true).create(true).open(&path)?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)?;
        let (records, valid) = parse_journal(&buf)?;
        if valid < buf.len() {
            log::warn!(
                "{}: cutting a torn tail of {} bytes at offset {valid}",
                path.display(),
                buf.len() - valid
            );
            file.set_len(valid as u64)?;
            file.sync_data()?;
        }
        let mut entries = BTreeMap::new();
        let mut meta = LogMeta::default();
        for r in records {
            match r {
                Record::Entry(e) => {
                    entries.insert(e.log_id.index, e);
                }
                Record::Truncate(i) => {
                    entries.split_off(&i);
                }
                Record::Purge(id) => {
                    entries = entries.split_off(&(id.index + 1));
                    meta.last_purged = Some(id);
                }
                Record::Committed(c) => meta.committed = c,
            }
        }
        sync_dir(dir)?;
        let vote = match read_optional(&dir.join("vote.json"))? {
            Some(b) => Some(serde_json::from_slice(&b).map_err(|e| other(format!("vote.json: {e}")))?),
            None => None,
        };
        Ok(LogStore {
            shared: Arc::new(LogShared {
                dir: dir.to_path_buf(),
                entries: Mutex::new(entries),
                meta: Mutex::new(meta),
                vote: Mutex::new(vote),
                journal: Mutex::new(file),
            }),
        })
    }

    fn entries_in<RB: RangeBounds<u64>>(&self, range: RB) -> Vec<Entry<TypeConfig>> {
        lock(&self.shared.entries)
            .range(range)
            .map(|(_, e)| e.clone())
            .collect()
    }

    fn log_state(&self) -> LogState<TypeConfig> {
        let last_purged = lock(&self.shared.meta).last_purged;
        let last = lock(&self.shared.entries)
            .values()
            .next_back()
            .map(|e| e.log_id)
            .or(last_purged);
        LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, SErr> {
        Ok(self.entries_in(range))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, SErr> {
        Ok(self.log_state())
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), SErr> {
        let bytes = serde_json::to_vec(vote)
            .map_err(|e| StorageError::from_io_error(ErrorSubject::Vote, ErrorVerb::Write, other(e)))?;
        let path = self.shared.dir.join("vote.json");
        blocking(ErrorSubject::Vote, ErrorVerb::Write, move || {
            write_atomic(&path, &bytes)
        })
        .await?;
        *lock(&self.shared.vote) = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, SErr> {
        Ok(*lock(&self.shared.vote))
    }

    async fn save_committed(&mut self, committed: Option<LogId<u64>>) -> Result<(), SErr> {
        let shared = self.shared.clone();
        blocking(ErrorSubject::Store, ErrorVerb::Write, move || {
            shared.write_records(&[Record::Committed(committed)])?;
            lock(&shared.meta).committed = committed;
            Ok(())
        })
        .await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, SErr> {
        Ok(lock(&self.shared.meta).committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), SErr>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry<TypeConfig>> = entries.into_iter().collect();
        {
            // Visible to readers at once; durable (and acknowledged) below.
            let mut map = lock(&self.shared.entries);
            for e in &entries {
                map.insert(e.log_id.index, e.clone());
            }
        }
        let shared = self.shared.clone();
        let res = tokio::task::spawn_blocking(move || {
            let recs: Vec<Record> = entries.into_iter().map(Record::Entry).collect();
            shared.write_records(&recs)
        })
        .await
        .unwrap_or_else(|e| Err(other(e)));
        match res {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::new(e.kind(), e.to_string())));
                Err(StorageError::from_io_error(ErrorSubject::Logs, ErrorVerb::Write, e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), SErr> {
        let shared = self.shared.clone();
        blocking(ErrorSubject::Logs, ErrorVerb::Delete, move || {
            lock(&shared.entries).split_off(&log_id.index);
            shared.write_records(&[Record::Truncate(log_id.index)])
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), SErr> {
        let shared = self.shared.clone();
        blocking(ErrorSubject::Logs, ErrorVerb::Delete, move || {
            shared.write_records(&[Record::Purge(log_id)])?;
            lock(&shared.meta).last_purged = Some(log_id);
            {
                let mut map = lock(&shared.entries);
                let keep = map.split_off(&(log_id.index + 1));
                *map = keep;
            }
            shared.compact()
        })
        .await
    }
}

// ---------------------------------------------------------------- state machine

/// The state machine's whole state (its JSON is a snapshot's data).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SmData {
    pub last_applied: Option<LogId<u64>>,
    pub last_membership: StoredMembership<u64, BasicNode>,
    pub groups: Groups,
}

/// `snapshot.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta<u64, BasicNode>,
    state: SmData,
}

/// A snapshot held in memory: its meta and the serialized [`SmData`].
type HeldSnapshot = (SnapshotMeta<u64, BasicNode>, Vec<u8>);

struct SmShared {
    dir: PathBuf,
    state: Mutex<SmData>,
    /// The current snapshot: meta and the serialized [`SmData`].
    snapshot: Mutex<Option<HeldSnapshot>>,
    counter: AtomicU64,
}

/// The state machine storage (also its snapshot builder).
#[derive(Clone)]
pub struct SmStore {
    shared: Arc<SmShared>,
}

impl SmStore {
    /// Open under `dir`, loading `snapshot.json` if present.
    pub fn open(dir: &Path) -> std::io::Result<SmStore> {
        std::fs::create_dir_all(dir)?;
        let (state, snapshot) = match read_optional(&dir.join("snapshot.json"))? {
            Some(b) => {
                let f: SnapshotFile = serde_json::from_slice(&b).map_err(|e| other(format!("snapshot.json: {e}")))?;
                let data = serde_json::to_vec(&f.state).map_err(other)?;
                (f.state, Some((f.meta, data)))
            }
            None => (SmData::default(), None),
        };
        Ok(SmStore {
            shared: Arc::new(SmShared {
                dir: dir.to_path_buf(),
                state: Mutex::new(state),
                snapshot: Mutex::new(snapshot),
                counter: AtomicU64::new(0),
            }),
        })
    }

    /// Run `f` on the current groups.
    pub fn read<T>(&self, f: impl FnOnce(&SmData) -> T) -> T {
        f(&lock(&self.shared.state))
    }

    async fn persist_snapshot(&self, meta: SnapshotMeta<u64, BasicNode>, state: SmData) -> Result<(), SErr> {
        let sig = Some(meta.signature());
        let file = SnapshotFile { meta, state };
        let bytes = serde_json::to_vec(&file).map_err(|e| {
            StorageError::from_io_error(ErrorSubject::Snapshot(sig.clone()), ErrorVerb::Write, other(e))
        })?;
        let path = self.shared.dir.join("snapshot.json");
        blocking(ErrorSubject::Snapshot(sig), ErrorVerb::Write, move || {
            write_atomic(&path, &bytes)
        })
        .await
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SmStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, SErr> {
        let state = lock(&self.shared.state).clone();
        let data = serde_json::to_vec(&state)
            .map_err(|e| StorageError::from_io_error(ErrorSubject::StateMachine, ErrorVerb::Read, other(e)))?;
        let n = self.shared.counter.fetch_add(1, Ordering::Relaxed);
        let snapshot_id = match state.last_applied {
            Some(l) => format!("{}-{}-{}", l.leader_id, l.index, n),
            None => format!("none-{n}"),
        };
        let meta = SnapshotMeta {
            last_log_id: state.last_applied,
            last_membership: state.last_membership.clone(),
            snapshot_id,
        };
        self.persist_snapshot(meta.clone(), state).await?;
        *lock(&self.shared.snapshot) = Some((meta.clone(), data.clone()));
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for SmStore {
    type SnapshotBuilder = SmStore;

    async fn applied_state(&mut self) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>), SErr> {
        let s = lock(&self.shared.state);
        Ok((s.last_applied, s.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Outcome>, SErr>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut s = lock(&self.shared.state);
        let mut out = Vec::new();
        for e in entries {
            s.last_applied = Some(e.log_id);
            out.push(match e.payload {
                EntryPayload::Blank => Outcome::None,
                EntryPayload::Normal(cmd) => s.groups.apply(&cmd),
                EntryPayload::Membership(m) => {
                    s.last_membership = StoredMembership::new(Some(e.log_id), m);
                    Outcome::None
                }
            });
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, SErr> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), SErr> {
        let data = snapshot.into_inner();
        let mut state: SmData = serde_json::from_slice(&data).map_err(|e| {
            StorageError::from_io_error(
                ErrorSubject::Snapshot(Some(meta.signature())),
                ErrorVerb::Read,
                other(e),
            )
        })?;
        state.last_applied = meta.last_log_id;
        state.last_membership = meta.last_membership.clone();
        self.persist_snapshot(meta.clone(), state.clone()).await?;
        *lock(&self.shared.state) = state;
        *lock(&self.shared.snapshot) = Some((meta.clone(), data));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, SErr> {
        Ok(lock(&self.shared.snapshot).as_ref().map(|(meta, data)| Snapshot {
            meta: meta.clone(),
            snapshot: Box::new(Cursor::new(data.clone())),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, Membership};

    use crate::sm::Command;

    fn lid(term: u64, index: u64) -> LogId<u64> {
        LogId::new(CommittedLeaderId::new(term, 1), index)
    }

    fn entry(term: u64, index: u64) -> Entry<TypeConfig> {
        Entry {
            log_id: lid(term, index),
            payload: EntryPayload::Normal(Command::RegisterBroker {
                cluster: "c".into(),
                broker_name: "b".into(),
                broker_id: index,
                addr: format!("a{index}"),
                ha_addr: format!("h{index}"),
            }),
        }
    }

    /// Append without a real LogFlushed callback (that needs a running Raft):
    /// the same path as `append` minus the callback.
    fn append(s: &LogStore, es: Vec<Entry<TypeConfig>>) {
        {
            let mut map = lock(&s.shared.entries);
            for e in &es {
                map.insert(e.log_id.index, e.clone());
            }
        }
        let recs: Vec<Record> = es.into_iter().map(Record::Entry).collect();
        s.shared.write_records(&recs).unwrap_or_else(|e| panic!("write: {e}"));
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("rt: {e}"))
    }

    fn indexes(s: &LogStore) -> Vec<u64> {
        s.entries_in(..).iter().map(|e| e.log_id.index).collect()
    }

    #[test]
    fn crc32_known_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn log_append_reopen_truncate_purge() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let rt = rt();
        {
            let mut s = LogStore::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
            append(&s, (1..=5).map(|i| entry(1, i)).collect());
            rt.block_on(s.save_committed(Some(lid(1, 4))))
                .unwrap_or_else(|e| panic!("{e}"));
            rt.block_on(s.truncate(lid(1, 5))).unwrap_or_else(|e| panic!("{e}"));
            append(&s, vec![entry(2, 5), entry(2, 6)]);
        }
        let mut s = LogStore::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(indexes(&s), vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(s.entries_in(5..6)[0].log_id, lid(2, 5));
        assert_eq!(rt.block_on(s.read_committed()).ok().flatten(), Some(lid(1, 4)));
        rt.block_on(s.purge(lid(1, 3))).unwrap_or_else(|e| panic!("{e}"));
        drop(s);
        let mut s = LogStore::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(indexes(&s), vec![4, 5, 6]);
        let st = rt.block_on(s.get_log_state()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(st.last_purged_log_id, Some(lid(1, 3)));
        assert_eq!(st.last_log_id, Some(lid(2, 6)));
        assert_eq!(rt.block_on(s.read_committed()).ok().flatten(), Some(lid(1, 4)));
    }

    #[test]
    fn torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        {
            let s = LogStore::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
            append(&s, (1..=3).map(|i| entry(1, i)).collect());
        }
        let path = dir.path().join("raft.log");
        let full = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        // A fourth record cut in the middle.
        let mut rec = Vec::new();
        encode_record(&Record::Entry(entry(1, 4)), &mut rec).unwrap_or_else(|e| panic!("{e}"));
        let mut f = OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("{e}"));
        f.write_all(&rec[..rec.len() / 2]).unwrap_or_else(|e| panic!("{e}"));
        drop(f);
        let s = LogStore::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(indexes(&s), vec![1, 2, 3]);
        assert_eq!(
            std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
            full,
            "tail cut on disk"
        );
        // The log goes on after the cut.
        append(&s, vec![entry(1, 4)]);
        drop(s);
        // A complete record with a bad CRC is cut too.
        let mut bytes = std::fs::read(&path).unwrap_or_default();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xFF;
        std::fs::write(&path, &bytes).unwrap_or_else(|e| panic!("{e}"));
        let s = LogStore::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(indexes(&s), vec![1, 2, 3]);
    }

    #[test]
    fn vote_persisted() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let rt = rt();
        let v = Vote::new_committed(3, 2);
        {
            let mut s = LogStore::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(rt.block_on(s.read_vote()).ok().flatten(), None);
            rt.block_on(s.save_vote(&v)).unwrap_or_else(|e| panic!("{e}"));
        }
        let mut s = LogStore::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rt.block_on(s.read_vote()).ok().flatten(), Some(v));
    }

    #[test]
    fn snapshot_build_reopen_install() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let rt = rt();
        let membership = Membership::new(vec![std::collections::BTreeSet::from([1u64])], None);
        {
            let mut sm = SmStore::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
            let es = vec![
                Entry {
                    log_id: lid(1, 1),
                    payload: EntryPayload::Membership(membership.clone()),
                },
                entry(1, 2),
                entry(1, 3),
            ];
            let out = rt.block_on(sm.apply(es)).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(out.len(), 3);
            assert!(matches!(&out[1], Outcome::Ok(g) if g.master_id == Some(2)));
            let snap = rt.block_on(sm.build_snapshot()).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(snap.meta.last_log_id, Some(lid(1, 3)));
        }
        let mut sm = SmStore::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let (applied, m) = rt.block_on(sm.applied_state()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(applied, Some(lid(1, 3)));
        assert_eq!(m.log_id(), &Some(lid(1, 1)));
        let g = sm
            .read(|s| s.groups.get("c", "b").cloned())
            .unwrap_or_else(|| panic!("group"));
        assert_eq!(g.brokers.len(), 2);
        assert_eq!(g.master_id, Some(2));
        let snap = rt
            .block_on(sm.get_current_snapshot())
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("snapshot"));

        // Install it on a fresh node.
        let dir2 = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut sm2 = SmStore::open(dir2.path()).unwrap_or_else(|e| panic!("{e}"));
        rt.block_on(sm2.install_snapshot(&snap.meta, snap.snapshot))
            .unwrap_or_else(|e| panic!("{e}"));
        drop(sm2);
        let sm2 = SmStore::open(dir2.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            sm2.read(|s| (s.last_applied, s.groups.clone())),
            (Some(lid(1, 3)), sm.read(|s| s.groups.clone()))
        );
    }
}
