//! Offsets with different meanings get different types.
//!
//! * [`LogOffset`] — a byte offset inside one shard's CommitLog (0-based,
//!   grows forever; segment files are named by the `LogOffset` they start at).
//! * [`PhysicalOffset`] — what the outside world sees as a message's
//!   "commit-log offset" (`PHYSICALOFFSET` in the stored record, the offset
//!   part of a message id). It carries the owning shard in its high bits so
//!   that a message id decodes to exactly one record on one shard:
//!
//! ```text
//!  63      62 ........ 48 47 ................................. 0
//! +-------+--------------+-------------------------------------+
//! |   0   |  shard (15)  |          LogOffset (48 bits)        |
//! +-------+--------------+-------------------------------------+
//! ```
//!
//! Bit 63 stays clear so the value is a non-negative Java `long`. 48 bits
//! give each shard 256 TiB of log before wrapping, far past any retention.
//! * Queue offsets (logical, dense, per queue) are plain `u64` named
//!   `queue_offset` everywhere.

/// Number of low bits that hold the shard-local log offset.
pub const LOG_OFFSET_BITS: u32 = 48;
/// Largest shard id representable in a [`PhysicalOffset`].
pub const MAX_SHARD_ID: u16 = (1 << 15) - 1;
const LOG_MASK: u64 = (1 << LOG_OFFSET_BITS) - 1;

/// Byte offset inside one shard's CommitLog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LogOffset(pub u64);

/// A globally unique stored position: shard id + log offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PhysicalOffset(pub u64);

impl PhysicalOffset {
    pub fn new(shard: u16, log: LogOffset) -> PhysicalOffset {
        debug_assert!(shard <= MAX_SHARD_ID);
        debug_assert!(log.0 <= LOG_MASK);
        PhysicalOffset(((shard as u64) << LOG_OFFSET_BITS) | (log.0 & LOG_MASK))
    }

    /// Splits a value that came from outside (a message id, a client
    /// header). Returns `None` when it cannot be a shardmq position.
    pub fn decode(raw: i64) -> Option<PhysicalOffset> {
        if raw < 0 {
            return None;
        }
        Some(PhysicalOffset(raw as u64))
    }

    pub fn shard(self) -> u16 {
        (self.0 >> LOG_OFFSET_BITS) as u16
    }

    pub fn log_offset(self) -> LogOffset {
        LogOffset(self.0 & LOG_MASK)
    }
}

/// Name of a segment file: its start offset, zero-padded to 20 digits
/// (RocketMQ's `UtilAll.offset2FileName`).
pub fn segment_file_name(start: u64) -> String {
    format!("{start:020}")
}

/// Parses a segment file name back; `None` for anything else in the folder.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    if name.len() != 20 || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn physical_offset_round_trips_shard_and_log_offset() {
        let p = PhysicalOffset::new(3, LogOffset(1234));
        assert_eq!(p.shard(), 3);
        assert_eq!(p.log_offset(), LogOffset(1234));
        assert!(p.0 as i64 > 0);
        let max = PhysicalOffset::new(MAX_SHARD_ID, LogOffset(LOG_MASK));
        assert_eq!(max.shard(), MAX_SHARD_ID);
        assert!(max.0 as i64 > 0, "must stay a non-negative java long");
        assert_eq!(PhysicalOffset::decode(max.0 as i64), Some(max));
        assert_eq!(PhysicalOffset::decode(-1), None);
    }

    #[test]
    fn segment_names_are_twenty_digits() {
        assert_eq!(segment_file_name(1073741824), "00000000001073741824");
        assert_eq!(parse_segment_file_name("00000000001073741824"), Some(1073741824));
        assert_eq!(parse_segment_file_name("0000000000107374182x"), None);
        assert_eq!(parse_segment_file_name("123"), None);
    }
}
