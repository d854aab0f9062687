//! The read side of a shard store: pulls by queue offset, records by
//! physical offset, and searches by store time.

use super::consume_queue::CqEntry;
use super::error::StoreError;
use super::message_store::{Boundary, MessageStore};
use super::position::PhysicalOffset;
use super::record::{check_record, open_record, store_timestamp_of, RecordCheck};

/// Broker-side tag filter (message.md §10): all, or a set of tag hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagFilter {
    All,
    Codes(Vec<i32>),
}

impl TagFilter {
    pub fn matches(&self, tags_code: i64) -> bool {
        match self {
            TagFilter::All => true,
            TagFilter::Codes(c) => c.contains(&(tags_code as i32)),
        }
    }
}

/// RocketMQ's `GetMessageStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetStatus {
    Found,
    NoMatchedMessage,
    NoMatchedLogicQueue,
    NoMessageInQueue,
    OffsetTooSmall,
    OffsetOverflowOne,
    OffsetOverflowBadly,
}

impl GetStatus {
    /// The name of RocketMQ's `GetMessageStatus` enum constant: the Java
    /// broker puts it in a pull response's remark, and clients may log or
    /// check it.
    pub fn java_name(self) -> &'static str {
        match self {
            GetStatus::Found => "FOUND",
            GetStatus::NoMatchedMessage => "NO_MATCHED_MESSAGE",
            GetStatus::NoMatchedLogicQueue => "NO_MATCHED_LOGIC_QUEUE",
            GetStatus::NoMessageInQueue => "NO_MESSAGE_IN_QUEUE",
            GetStatus::OffsetTooSmall => "OFFSET_TOO_SMALL",
            GetStatus::OffsetOverflowOne => "OFFSET_OVERFLOW_ONE",
            GetStatus::OffsetOverflowBadly => "OFFSET_OVERFLOW_BADLY",
        }
    }
}

#[derive(Debug, Clone)]
pub struct GetResult {
    pub status: GetStatus,
    pub next_offset: u64,
    pub min_offset: u64,
    pub max_offset: u64,
    /// Concatenated stored records, ready to be a pull response body.
    pub body: Vec<u8>,
    pub count: usize,
    /// Queue offset of each returned record.
    pub offsets: Vec<u64>,
    /// Some record came from disk, not the CommitLog's tail in memory:
    /// the consumer lags (with `slaveReadEnable`, pulls move to a slave).
    pub from_disk: bool,
}

/// Entries examined per call at most, matched or not (bounds the work a
/// selective tag filter can cause).
const MAX_EXAMINED: usize = 800;
/// Bytes read from disk at once when records of a queue are close by.
const READ_AHEAD: usize = 64 * 1024;

pub(super) async fn get_messages(
    store: &MessageStore,
    topic: &str,
    queue_id: u32,
    offset: u64,
    max_msgs: usize,
    max_bytes: usize,
    filter: &TagFilter,
) -> Result<GetResult, StoreError> {
    let mut r = GetResult {
        status: GetStatus::NoMatchedLogicQueue,
        next_offset: 0,
        min_offset: 0,
        max_offset: 0,
        body: Vec::new(),
        count: 0,
        offsets: Vec::new(),
        from_disk: false,
    };
    let Some((min, max)) = store.offsets(topic, queue_id) else {
        return Ok(r);
    };
    r.min_offset = min;
    r.max_offset = max;
    let (status, next) = if max == 0 {
        (Some(GetStatus::NoMessageInQueue), 0)
    } else if offset < min {
        (Some(GetStatus::OffsetTooSmall), min)
    } else if offset == max {
        (Some(GetStatus::OffsetOverflowOne), offset)
    } else if offset > max {
        (Some(GetStatus::OffsetOverflowBadly), max)
    } else {
        (None, 0)
    };
    if let Some(s) = status {
        r.status = s;
        r.next_offset = next;
        return Ok(r);
    }
    let max_msgs = max_msgs.max(1);
    let examine = MAX_EXAMINED.max(max_msgs).min((max - offset) as usize);
    let entries = store.entries(topic, queue_id, offset, examine).await?;
    let mut next = offset;
    let mut disk = DiskWindow::default();
    let mut sealed = Vec::new();
    for e in entries {
        if r.count >= max_msgs || (r.count > 0 && r.body.len() + e.size as usize > max_bytes) {
            break;
        }
        if e.pos < store.log().min_offset() {
            // Retention deleted the segment (the queue's min offset may be
            // stale, e.g. right after a crash): not an error.
            if next > offset {
                break; // return what precedes it; the next pull lands here
            }
            let qi = store.inner.queues.borrow().find(topic, queue_id);
            let min = match qi {
                Some(i) => super::retention::advance_queue_minimum(store, i).await?,
                None => offset + 1,
            };
            r.status = GetStatus::OffsetTooSmall;
            r.min_offset = min;
            r.next_offset = min.max(offset + 1);
            r.body.clear();
            r.offsets.clear();
            return Ok(r);
        }
        next += 1;
        if !filter.matches(e.tags_code) {
            continue;
        }
        match store.config().encryption.as_deref() {
            None => {
                let start = r.body.len();
                r.body.resize(start + e.size as usize, 0);
                r.from_disk |= read_into(store, &e, &mut disk, &mut r.body[start..]).await?;
                verify_entry(store, &e, &r.body[start..], topic, queue_id, next - 1)?;
            }
            Some(ring) => {
                // Sealed: read into one reused buffer, opened into the
                // body (32 bytes shorter).
                sealed.resize(e.size as usize, 0);
                r.from_disk |= read_into(store, &e, &mut disk, &mut sealed).await?;
                verify_entry(store, &e, &sealed, topic, queue_id, next - 1)?;
                open_record(Some(ring), store.shard(), &sealed, &mut r.body).map_err(|what| StoreError::Corrupt {
                    path: store.log().dir().to_path_buf(),
                    what,
                })?;
            }
        }
        r.offsets.push(next - 1);
        r.count += 1;
    }
    r.next_offset = next;
    r.status = if r.count > 0 {
        GetStatus::Found
    } else {
        GetStatus::NoMatchedMessage
    };
    Ok(r)
}

/// The last disk read, reused while the next records fall inside it.
#[derive(Default)]
struct DiskWindow {
    start: u64,
    data: Vec<u8>,
}

/// Reads one record into `out`; true when it came from disk.
async fn read_into(
    store: &MessageStore,
    e: &CqEntry,
    win: &mut DiskWindow,
    out: &mut [u8],
) -> Result<bool, StoreError> {
    let log = store.log();
    if log.read_cached(e.pos, out) {
        return Ok(false);
    }
    let inside = e.pos >= win.start && e.end() <= win.start + win.data.len() as u64;
    if !inside {
        let seg = log.segment_at(e.pos).ok_or_else(|| StoreError::Corrupt {
            path: log.dir().to_path_buf(),
            what: format!("no segment holds log offset {} (retention raced a read?)", e.pos),
        })?;
        let want = (e.size as usize).max(READ_AHEAD);
        let data = seg.read(e.pos, want).await?;
        if data.len() < e.size as usize {
            return Err(StoreError::Corrupt {
                path: seg.path.clone(),
                what: format!("short read at {}", e.pos),
            });
        }
        win.start = e.pos;
        win.data.clear();
        win.data.extend_from_slice(&data);
    }
    let off = (e.pos - win.start) as usize;
    out.copy_from_slice(&win.data[off..off + out.len()]);
    Ok(true)
}

/// What the consume queue says must match what the log holds: a record at
/// that position, of that size, of this topic and queue, at this offset.
fn verify_entry(
    store: &MessageStore,
    e: &CqEntry,
    rec: &[u8],
    topic: &str,
    queue_id: u32,
    offset: u64,
) -> Result<(), StoreError> {
    let phys = PhysicalOffset::new(store.shard(), super::position::LogOffset(e.pos)).0;
    let why = match check_record(rec, Some(phys), false) {
        RecordCheck::Record(v)
            if v.total_size == e.size
                && v.topic == topic.as_bytes()
                && v.queue_id == queue_id
                && v.queue_offset == offset =>
        {
            return Ok(())
        }
        RecordCheck::Record(v) => format!(
            "holds {}/{} offset {} ({} bytes), expected {topic}/{queue_id} offset {offset} ({} bytes)",
            String::from_utf8_lossy(v.topic),
            v.queue_id,
            v.queue_offset,
            v.total_size,
            e.size
        ),
        other => format!("does not point at a record: {other:?}"),
    };
    Err(StoreError::Corrupt {
        path: store.log().dir().to_path_buf(),
        what: format!("consume-queue entry at log offset {} {why}", e.pos),
    })
}

pub(super) async fn read_record_at(store: &MessageStore, phys: PhysicalOffset) -> Result<Option<Vec<u8>>, StoreError> {
    read_record_sized(store, phys, None).await
}

/// [`read_record_at`] with the record's size known (from a consume-queue
/// entry): one read instead of two. The record is still validated whole.
pub(super) async fn read_record_sized(
    store: &MessageStore,
    phys: PhysicalOffset,
    known: Option<u32>,
) -> Result<Option<Vec<u8>>, StoreError> {
    if phys.shard() != store.shard() {
        return Ok(None);
    }
    let pos = phys.log_offset().0;
    let log = store.log();
    // Only what readers may see: in SYNC_FLUSH mode durable records only.
    let limit = match store.config().flush_mode {
        super::config::FlushMode::Sync => log.flushed(),
        super::config::FlushMode::Async => log.write_pos(),
    };
    if pos < log.min_offset() || pos + 8 > limit {
        return Ok(None);
    }
    let size = match known {
        Some(n) => n as usize,
        None => {
            let Ok(head) = log.read(pos, 8).await else {
                return Ok(None);
            };
            u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize
        }
    };
    if size < super::record::FIXED_SIZE_V4 || size > store.config().max_record_size || pos + size as u64 > limit {
        return Ok(None);
    }
    let rec = log.read(pos, size).await?;
    match check_record(&rec, Some(phys.0), false) {
        RecordCheck::Record(v) if v.total_size as usize == rec.len() => {}
        _ => return Ok(None),
    }
    if crate::store::crypt::key_id_of(super::record::sys_flag_of(&rec)) == 0 {
        return Ok(Some(rec));
    }
    let mut out = Vec::with_capacity(rec.len());
    open_record(store.config().encryption.as_deref(), store.shard(), &rec, &mut out).map_err(|what| {
        StoreError::Corrupt {
            path: store.log().dir().to_path_buf(),
            what,
        }
    })?;
    Ok(Some(out))
}

pub(super) async fn store_time_at(
    store: &MessageStore,
    topic: &str,
    queue_id: u32,
    offset: u64,
) -> Result<Option<i64>, StoreError> {
    let Some(e) = store.entry(topic, queue_id, offset).await? else {
        return Ok(None);
    };
    let head = store.log().read(e.pos, (e.size as usize).min(128)).await?;
    Ok(store_timestamp_of(&head))
}

/// Binary search over the queue by store timestamp (which grows with the
/// queue offset, as records are stamped in append order).
pub(super) async fn search_offset_by_time(
    store: &MessageStore,
    topic: &str,
    queue_id: u32,
    ts: i64,
    b: Boundary,
) -> Result<u64, StoreError> {
    let Some((min, max)) = store.offsets(topic, queue_id) else {
        return Ok(0);
    };
    if min >= max {
        return Ok(max);
    }
    // First offset whose time is > ts (Upper) or >= ts (Lower).
    let (mut lo, mut hi) = (min, max);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let t = store_time_at(store, topic, queue_id, mid).await?.unwrap_or(i64::MAX);
        let before = match b {
            Boundary::Lower => t < ts,
            Boundary::Upper => t <= ts,
        };
        if before {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(match b {
        Boundary::Lower => lo,
        Boundary::Upper => lo.saturating_sub(1).max(min),
    })
}
