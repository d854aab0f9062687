//! The key index inside [`MessageStore`]: its background task and queries.

use std::time::Duration;

use super::super::message_store::MessageStore;
use super::super::position::{LogOffset, PhysicalOffset};
use super::super::record::{check_record, RecordCheck};
use super::super::StoreError;
use super::{has_key, key_hash, IndexStats};

/// Candidate records a query reads at most (hash collisions and stale
/// entries cost reads; this bounds them).
const MAX_CANDIDATES: usize = 1024;

/// What a key query found on one shard.
#[derive(Debug, Default)]
pub struct KeyHits {
    /// Whole stored records (opened when sealed), newest first.
    pub records: Vec<Vec<u8>>,
    /// The newest indexed entry's log offset and store time (ms).
    pub last_update: (u64, i64),
}

impl MessageStore {
    /// Records of `topic` found by `key` (a word of KEYS or the UNIQ_KEY)
    /// stored within `[begin_ms, end_ms]`, newest first, at most `max`.
    pub async fn query_key(
        &self,
        topic: &str,
        key: &str,
        begin_ms: i64,
        end_ms: i64,
        max: usize,
    ) -> Result<KeyHits, StoreError> {
        let index = &self.inner.index;
        let mut hits = KeyHits {
            records: Vec::new(),
            last_update: index.last_update(),
        };
        if !index.enabled() || max == 0 || end_ms < begin_ms {
            return Ok(hits);
        }
        let hash = key_hash(topic.as_bytes(), key.as_bytes());
        let log_min = self.log().min_offset();
        let candidates = index
            .lookup(hash, super::store_secs(begin_ms), super::store_secs(end_ms), log_min)
            .await?;
        for e in candidates.into_iter().take(MAX_CANDIDATES) {
            if hits.records.len() >= max {
                break;
            }
            let phys = PhysicalOffset::new(self.shard(), LogOffset(e.pos));
            let Some(rec) = self.read_record_sized(phys, e.size).await? else {
                continue;
            };
            let RecordCheck::Record(v) = check_record(&rec, None, false) else {
                continue;
            };
            if v.topic == topic.as_bytes()
                && (begin_ms..=end_ms).contains(&v.store_timestamp)
                && has_key(v.properties, key)
            {
                hits.records.push(rec);
            }
        }
        Ok(hits)
    }

    pub fn key_index_stats(&self) -> IndexStats {
        self.inner.index.stats()
    }

    /// One pass of the key index's upkeep: indexes the gaps an earlier
    /// run left (from the CommitLog), merges runs, deletes expired ones.
    pub async fn key_index_pass(&self) -> Result<(), StoreError> {
        let index = &self.inner.index;
        let _turn = index
            .upkeep
            .acquire_permit(1)
            .await
            .map_err(|e| StoreError::Glommio(format!("key index upkeep: {e}")))?;
        while let Some((from, to)) = index.next_gap() {
            if self.is_stopping() {
                return Ok(());
            }
            let t = std::time::Instant::now();
            let n = super::catch_up::index_gap(self, index, from, to).await?;
            log::info!(
                "shard {}: key index caught up on log [{from}, {to}): {n} records in {:?}",
                self.shard(),
                t.elapsed()
            );
            if index.next_gap() == Some((from, to)) {
                // Nothing moved (retention took the range): expiry below
                // forgets it.
                break;
            }
        }
        while !self.is_stopping() && index.merge_once().await? {}
        index.expire(self.log().min_offset()).await?;
        Ok(())
    }

    /// Writes the key index's memtable as a run when it is due (size, age)
    /// or `force`d; its entries of records not yet durable stay.
    pub async fn flush_key_index(&self, force: bool) -> Result<(), StoreError> {
        self.inner.index.flush(self.log(), force).await
    }

    /// [`Self::flush_key_index`] every checkpoint interval until the store
    /// stops (shutdown flushes the rest). Apart from the checkpoint: the
    /// index never holds the consume queues' checkpoint back, and what it
    /// loses in a crash is indexed again from the log at the next open.
    pub(in crate::store) async fn run_key_index_flusher(self) {
        while !self.is_stopping() {
            self.sleep_unless_stopping(self.config().checkpoint_interval).await;
            if self.is_stopping() {
                break;
            }
            // Errors are logged (rate-limited) and retried by the index.
            let _ = self.flush_key_index(false).await;
        }
    }

    /// [`Self::key_index_pass`] every second until the store stops.
    pub(in crate::store) async fn run_key_index(self) {
        let mut failing = false;
        while !self.is_stopping() {
            match self.key_index_pass().await {
                Ok(()) => failing = false,
                Err(e) => {
                    if !failing {
                        log::error!("shard {}: key index upkeep failed (retried): {e}", self.shard());
                    }
                    failing = true;
                }
            }
            self.sleep_unless_stopping(Duration::from_secs(1)).await;
        }
    }
}
