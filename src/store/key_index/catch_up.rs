//! Indexing a range of the CommitLog after the fact: the gaps
//! [`KeyIndex::open`] found (the memtable lost in a crash, a corrupt run, an
//! index enabled on an existing store). Runs in the store's background
//! task while the shard serves; reads the log in windows of
//! [`WINDOW`] bytes and writes a run every [`ENTRIES_PER_RUN`] entries, so
//! its memory stays bounded however long the gap.

use super::super::message_store::MessageStore;
use super::super::position::PhysicalOffset;
use super::super::record::{check_record, properties_of, RecordCheck};
use super::super::StoreError;
use super::{IndexEntry, KeyIndex};

const WINDOW: usize = 1 << 20;
const ENTRIES_PER_RUN: usize = 1 << 20;

/// Indexes the gap `[from, to)`; returns the records indexed.
pub async fn index_gap(store: &MessageStore, idx: &KeyIndex, from: u64, to: u64) -> Result<u64, StoreError> {
    let log = store.log();
    let ring = store.config().encryption.clone();
    let shard = store.shard();
    let mut entries: Vec<IndexEntry> = Vec::new();
    let mut opened = Vec::new();
    let mut run_from = from;
    let mut pos = from.max(log.min_offset());
    let mut records = 0u64;
    let mut want = WINDOW;
    'walk: while pos < to && !store.is_stopping() {
        let Some(seg) = log.segment_at(pos) else {
            // Retention deleted it meanwhile: expiry forgets the gap.
            return Ok(records);
        };
        let len = want.min((seg.end() - pos) as usize).min((to - pos) as usize);
        let data = log.read(pos, len).await?;
        let mut off = 0usize;
        while off < data.len() {
            let at = pos + off as u64;
            let phys = PhysicalOffset::new(shard, super::super::position::LogOffset(at)).0;
            match check_record(&data[off..], Some(phys), false) {
                RecordCheck::Record(v) => {
                    let props =
                        properties_of(ring.as_deref(), shard, &v, &mut opened).map_err(|what| StoreError::Corrupt {
                            path: log.dir().to_path_buf(),
                            what,
                        })?;
                    let topic = String::from_utf8_lossy(v.topic);
                    let time_s = super::store_secs(v.store_timestamp);
                    for k in super::keys_of(props) {
                        entries.push(IndexEntry {
                            hash: super::key_hash(topic.as_bytes(), k),
                            pos: at,
                            time_s,
                            size: v.total_size,
                        });
                    }
                    records += 1;
                    off += v.total_size as usize;
                    want = WINDOW;
                }
                RecordCheck::Blank => {
                    pos = seg.end();
                    continue 'walk;
                }
                RecordCheck::NeedMore(n) if n <= store.config().max_record_size && (off > 0 || len == want) => {
                    // The record continues past the window: read again
                    // from it, at least whole.
                    want = n.max(WINDOW);
                    break;
                }
                other => {
                    log::error!(
                        "key index: log offset {at} does not hold a record ({other:?}); \
                         [{at}, {to}) is left unindexed"
                    );
                    break 'walk;
                }
            }
        }
        pos += off as u64;
        if entries.len() >= ENTRIES_PER_RUN {
            idx.fill_gap(run_from, pos, std::mem::take(&mut entries)).await?;
            run_from = pos;
        }
    }
    if !store.is_stopping() {
        idx.fill_gap(run_from, to, entries).await?;
    }
    Ok(records)
}
