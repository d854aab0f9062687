//! The stored message record: RocketMQ's `MessageExt` layout, magic v1,
//! byte-exact, so that a pull response is a plain concatenation of stored
//! records (message.md §4).
//!
//! ```text
//! off  size  field                      (IPv4 hosts; +12 per IPv6 host)
//!   0     4  TOTALSIZE                  whole record, this field included
//!   4     4  MAGICCODE                  0xDAA320A7 (v1)
//!   8     4  BODYCRC                    crc32(body) & 0x7FFFFFFF
//!  12     4  QUEUEID
//!  16     4  FLAG
//!  20     8  QUEUEOFFSET                logical offset in the queue
//!  28     8  PHYSICALOFFSET             [`PhysicalOffset`] of this record
//!  36     4  SYSFLAG                    bit 4/5: born/store host is IPv6
//!  40     8  BORNTIMESTAMP
//!  48   8|20 BORNHOST                   ip + port(int)
//!  56     8  STORETIMESTAMP
//!  64   8|20 STOREHOST
//!  72     4  RECONSUMETIMES
//!  76     8  PREPARED_TRANSACTION_OFFSET
//!  84     4  BODYLEN
//!  88     n  BODY
//!         1  TOPICLEN                   signed byte: topic <= 127 bytes
//!         t  TOPIC
//!         2  PROPERTIESLEN              signed short: <= 32767 bytes
//!         p  PROPERTIES
//! ```
//! Total (IPv4) = 91 + n + t + p.
//!
//! End of segment: a BLANK marker `TOTALSIZE = bytes left, MAGIC =
//! 0xCBD43194` fills the tail of a segment that cannot hold the next record.
//!
//! With encryption at rest (`storeEncryptionEnable`) BODY and PROPERTIES
//! are sealed (each 16 bytes longer), SYSFLAG bits 24..=30 name the key and
//! BODYCRC covers the sealed body: see [`super::crypt`]. Readers get the
//! record opened ([`open_record`]).
//!
//! Recovery validates a record with [`check_record`]: magic, declared vs
//! computed size, PHYSICALOFFSET equal to where it was found, and the body
//! CRC. A torn write or a zeroed block fails one of those.
//!
//! * `encode.rs` — [`MessageInput`] and the encoder (plain or sealed), the
//!   BLANK marker.
//! * `decode.rs` — [`check_record`], [`RecordView`] and the field readers
//!   and patchers of a stored record.
//! * `sealed.rs` — sealed records opened for readers.

mod decode;
mod encode;
mod sealed;
#[cfg(test)]
mod tests;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

pub(crate) use decode::be_u32;
pub use decode::{
    check_record, patch_delivery, store_host_of, store_timestamp_of, sys_flag_of, RecordCheck, RecordView,
};
pub use encode::{encode_blank, encode_record, encode_sealed, MessageInput, StoreStamp};
pub use sealed::{open_record, properties_of};

pub const MAGIC_V1: u32 = 0xDAA3_20A7;
pub const MAGIC_V2: u32 = 0xDAA3_20AB;
pub const MAGIC_BLANK: u32 = 0xCBD4_3194;
/// Fixed part of a v1 record with IPv4 hosts (everything but body, topic,
/// properties).
pub const FIXED_SIZE_V4: usize = 91;
/// Size of the BLANK marker written at the end of a segment.
pub const BLANK_SIZE: usize = 8;
pub const MAX_TOPIC_LEN: usize = 127;
pub const MAX_PROPERTIES_LEN: usize = i16::MAX as usize;

pub const SYSFLAG_BORNHOST_V6: i32 = 0x10;
pub const SYSFLAG_STOREHOST_V6: i32 = 0x20;

pub const QUEUE_ID_POS: usize = 12;
pub const QUEUE_OFFSET_POS: usize = 20;
pub const PHYSICAL_OFFSET_POS: usize = 28;
pub const SYSFLAG_POS: usize = 36;
const BORN_HOST_POS: usize = 48;

const _: () = assert!(FIXED_SIZE_V4 == 4 + 4 + 4 + 4 + 4 + 8 + 8 + 4 + 8 + 8 + 8 + 8 + 4 + 8 + 4 + 1 + 2);

/// Internal topic whose queues hold the *marks*: a second consume-queue
/// entry for a record, dispatched with it (at put and at recovery) and
/// pointing at it, with `tags_code` = the mark's value.
///
/// A mark makes "this record exists" and "this event happened" one fact:
/// the broker's timer writes a due message with a mark naming the
/// scheduled entry it delivers, so after a crash the delivered set is
/// exactly the mark queue (no record without its mark, no mark without its
/// record). Mark queue ids name the subsystem ([`MARK_QUEUE_TIMER`]).
pub const MARK_TOPIC: &str = "rmq_sys_SHARDMQ_MARK";
/// Property carrying a record's mark: `"<queue>:<value>"`.
pub const MARK_PROPERTY: &str = "__SMQ_MARK";
/// Mark queue of the timer: value = offset of the delivered entry in the
/// schedule queue.
pub const MARK_QUEUE_TIMER: u32 = 0;
/// Mark queue of transactions: value = queue offset of the resolved half
/// message.
pub const MARK_QUEUE_TRANSACTION: u32 = 1;

/// Internal topic of scheduled (delayed) messages: queue 0 of each shard's
/// store, one entry per scheduled record, `tags_code` = due time in ms
/// (property `TIMER_OUT_MS`, re-read at recovery).
pub const SCHEDULE_TOPIC: &str = "SCHEDULE_TOPIC_XXXX";
/// Property holding a scheduled record's due time (ms since the epoch).
pub const DUE_PROPERTY: &str = "TIMER_OUT_MS";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    pub queue: u32,
    pub value: i64,
}

impl Mark {
    /// The property pair (without separators) that carries this mark.
    pub fn property(&self) -> String {
        format!("{}:{}", self.queue, self.value)
    }

    /// The mark a stored property string carries, if any.
    pub fn of_properties(props: &[u8]) -> Option<Mark> {
        let v = property_of(props, MARK_PROPERTY.as_bytes())?;
        let v = std::str::from_utf8(v).ok()?;
        let (q, val) = v.split_once(':')?;
        Some(Mark {
            queue: q.parse().ok()?,
            value: val.parse().ok()?,
        })
    }
}

/// The value of `key` in an encoded property string (message.md §2).
pub fn property_of<'a>(props: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    for pair in props.split(|&b| b == 2) {
        if let Some(sep) = pair.iter().position(|&b| b == 1) {
            if &pair[..sep] == key {
                return Some(&pair[sep + 1..]);
            }
        }
    }
    None
}

/// RocketMQ's `UtilAll.crc32`: IEEE CRC-32 masked to 31 bits.
pub fn body_crc(body: &[u8]) -> u32 {
    crc32fast::hash(body) & 0x7FFF_FFFF
}

/// A loopback store host, for tests and tools.
pub fn localhost(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
}
