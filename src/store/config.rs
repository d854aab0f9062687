//! Settings of one shard's store, validated once at open.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use super::error::StoreError;
use super::faults::DiskFaults;

/// RocketMQ's `flushDiskType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushMode {
    /// Ack after the record is on disk (group commit).
    Sync,
    /// Ack after the record is in memory; flush on an interval / size trigger.
    Async,
}

/// `diskFullPolicy`: what the store does when the disk holding it is used
/// above `diskMaxUsedSpaceRatio`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskFullPolicy {
    /// Refuse appends (SERVICE_NOT_AVAILABLE) until space returns; only
    /// segments past `fileReservedTime` are ever deleted. The default:
    /// nothing acknowledged is deleted before its retention.
    Reject,
    /// Also delete the oldest segments, expired or not, until use is below
    /// the ratio (RocketMQ's forced cleaning). Unconsumed messages are lost;
    /// every deletion is logged as an error and counted.
    DeleteOldest,
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// This shard's own directory (`<storePathRootDir>/shard-<k>`).
    pub dir: PathBuf,
    pub shard_id: u16,
    /// Written into every record's STOREHOST; part of the offset message id.
    pub store_host: SocketAddr,
    pub flush_mode: FlushMode,
    /// `mapedFileSizeCommitLog`: CommitLog segment size (default 1 GiB).
    pub segment_size: u64,
    /// Write zeros into a prepared segment (cheaper fdatasync later, costs
    /// write bandwidth now) rather than only fallocating it.
    pub segment_pre_zero: bool,
    /// `syncFlushTimeout`: an append not durable by then answers
    /// FLUSH_DISK_TIMEOUT (it is still stored).
    pub sync_flush_timeout: Duration,
    /// ASYNC_FLUSH: flush at least this often ...
    pub async_flush_interval: Duration,
    /// ... or as soon as this many bytes are dirty.
    pub async_flush_bytes: usize,
    /// Memory that holds the CommitLog tail: unflushed data plus the most
    /// recent flushed data for tail reads. Appends beyond it answer busy.
    pub tail_cache_bytes: usize,
    /// Largest record accepted (body + headers). Recovery treats a stored
    /// record larger than this as corruption, so never lower it below the
    /// largest record already stored.
    pub max_record_size: usize,
    /// Entries per consume-queue segment file (RocketMQ: 300 000).
    pub cq_entries_per_file: u64,
    /// Consume-queue entries kept in memory per queue after they are
    /// written (tail reads); unwritten entries are always kept.
    pub cq_mem_entries: usize,
    /// How often consume queues are written behind and the checkpoint taken.
    pub checkpoint_interval: Duration,
    /// `fileReservedTime`: delete segments whose newest message is older.
    pub file_reserved_time: Duration,
    /// `diskMaxUsedSpaceRatio` in percent: above it appends are refused and
    /// cleaning is forced.
    pub disk_max_used_ratio: u8,
    /// `diskFullPolicy` (default [`DiskFullPolicy::Reject`]).
    pub disk_full_policy: DiskFullPolicy,
    /// How often retention and disk use are checked.
    pub clean_interval: Duration,
    /// A fault plan consulted at every store I/O point (tests only; see
    /// [`super::faults`]). `None`, the default, costs one branch per call.
    pub faults: Option<Rc<DiskFaults>>,
    /// `storeEncryptionEnable`: seal record bodies and properties with
    /// these keys (see [`super::crypt`]); `None`: plaintext.
    pub encryption: Option<std::sync::Arc<super::crypt::KeyRing>>,
    /// The key index (`messageIndexEnable` and its budgets).
    pub key_index: super::key_index::KeyIndexConfig,
}

impl StoreConfig {
    pub fn new(dir: impl Into<PathBuf>, shard_id: u16, store_host: SocketAddr) -> StoreConfig {
        StoreConfig {
            dir: dir.into(),
            shard_id,
            store_host,
            flush_mode: FlushMode::Async,
            segment_size: 1 << 30,
            segment_pre_zero: false,
            sync_flush_timeout: Duration::from_secs(5),
            async_flush_interval: Duration::from_millis(200),
            async_flush_bytes: 1 << 20,
            tail_cache_bytes: 128 << 20,
            max_record_size: (4 << 20) + 64 * 1024,
            cq_entries_per_file: 300_000,
            cq_mem_entries: 64,
            checkpoint_interval: Duration::from_secs(1),
            file_reserved_time: Duration::from_secs(72 * 3600),
            disk_max_used_ratio: 90,
            disk_full_policy: DiskFullPolicy::Reject,
            clean_interval: Duration::from_secs(10),
            faults: None,
            encryption: None,
            key_index: Default::default(),
        }
    }

    pub fn validate(&self) -> Result<(), StoreError> {
        let bad = |what: String| Err(StoreError::Config(what));
        if self.segment_size % 4096 != 0 || self.segment_size < 64 * 1024 {
            return bad(format!(
                "segment size {} must be a multiple of 4096 and >= 64 KiB",
                self.segment_size
            ));
        }
        if self.segment_size > 1 << 40 {
            return bad(format!("segment size {} is larger than 1 TiB", self.segment_size));
        }
        if self.max_record_size as u64 + super::record::BLANK_SIZE as u64 > self.segment_size {
            return bad(format!(
                "max record size {} does not fit a segment of {} bytes",
                self.max_record_size, self.segment_size
            ));
        }
        if self.tail_cache_bytes < 4 * self.max_record_size {
            return bad(format!(
                "tail cache of {} bytes must hold at least 4 records of the max size {}",
                self.tail_cache_bytes, self.max_record_size
            ));
        }
        if self.cq_entries_per_file == 0 || self.cq_entries_per_file > 10_000_000 {
            return bad(format!(
                "consume-queue entries per file {} out of range",
                self.cq_entries_per_file
            ));
        }
        if !(10..=95).contains(&self.disk_max_used_ratio) {
            return bad(format!(
                "diskMaxUsedSpaceRatio {} must be within 10..=95",
                self.disk_max_used_ratio
            ));
        }
        if self.shard_id > super::position::MAX_SHARD_ID {
            return bad(format!("shard id {} too large", self.shard_id));
        }
        Ok(())
    }
}
