//! Decoding a stored record: [`check_record`] validates and reads one
//! (never panicking on any input), [`RecordView`] holds its fields, and
//! the single-field readers and [`patch_delivery`] work on the raw bytes.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::{
    body_crc, MessageInput, BORN_HOST_POS, FIXED_SIZE_V4, MAGIC_BLANK, MAGIC_V1, PHYSICAL_OFFSET_POS, QUEUE_ID_POS,
    QUEUE_OFFSET_POS, SYSFLAG_BORNHOST_V6, SYSFLAG_POS, SYSFLAG_STOREHOST_V6,
};
use crate::store::crypt;

/// SYSFLAG of a whole record (0 when too short).
pub fn sys_flag_of(rec: &[u8]) -> i32 {
    be_u32(rec, SYSFLAG_POS).map_or(0, |v| v as i32)
}

/// The fields of a stored record that the store itself needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordView<'a> {
    pub total_size: u32,
    pub queue_id: u32,
    pub queue_offset: u64,
    pub physical_offset: u64,
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub store_timestamp: i64,
    pub flag: i32,
    pub born_host: SocketAddr,
    pub reconsume_times: i32,
    pub prepared_transaction_offset: i64,
    pub body: &'a [u8],
    pub topic: &'a [u8],
    pub properties: &'a [u8],
}

impl<'a> RecordView<'a> {
    /// Where this record's sealed fields live (their nonce and associated
    /// data) in shard `shard`'s log.
    pub fn site(&self, shard: u16) -> crypt::Site<'a> {
        crypt::Site {
            shard,
            physical: self.physical_offset,
            topic: self.topic,
        }
    }

    /// The record as a message to store again (same body, flag, born
    /// information and properties; the store assigns the rest).
    pub fn to_input(&self) -> Option<MessageInput> {
        let topic = std::str::from_utf8(self.topic).ok()?;
        Some(MessageInput {
            topic: topic.to_owned(),
            queue_id: self.queue_id,
            flag: self.flag,
            body: bytes::Bytes::copy_from_slice(self.body),
            properties: bytes::Bytes::copy_from_slice(self.properties),
            sys_flag: self.sys_flag & !(SYSFLAG_BORNHOST_V6 | SYSFLAG_STOREHOST_V6 | crypt::KEY_ID_MASK),
            born_timestamp: self.born_timestamp,
            born_host: self.born_host,
            reconsume_times: self.reconsume_times,
            prepared_transaction_offset: self.prepared_transaction_offset,
            tags_code: 0,
            mark: None,
        })
    }
}

/// A host field (IPv4: 4 + 4 bytes, IPv6: 16 + 4) at `at`.
fn host_at(rec: &[u8], at: usize, v6: bool) -> Option<SocketAddr> {
    if v6 {
        let b: [u8; 16] = rec.get(at..at + 16)?.try_into().ok()?;
        let port = be_u32(rec, at + 16)?;
        Some(SocketAddr::new(IpAddr::V6(std::net::Ipv6Addr::from(b)), port as u16))
    } else {
        let b: [u8; 4] = rec.get(at..at + 4)?.try_into().ok()?;
        let port = be_u32(rec, at + 4)?;
        Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(b)), port as u16))
    }
}

/// What [`check_record`] found at a position.
#[derive(Debug, PartialEq, Eq)]
pub enum RecordCheck<'a> {
    Record(RecordView<'a>),
    /// End-of-segment filler: continue at the next segment.
    Blank,
    /// Fewer bytes than the header says — need more input (only returned
    /// when `buf` is shorter than the declared size).
    NeedMore(usize),
    /// Not a valid record; `why` says which check failed.
    Invalid(&'static str),
}

pub(crate) fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4).map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn be_u64(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at + 8)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_be_bytes(a))
}

/// Validates and decodes the record at the start of `buf`, which was read
/// from `expected_pos`. Never panics on any input.
pub fn check_record(buf: &[u8], expected_pos: Option<u64>, verify_crc: bool) -> RecordCheck<'_> {
    let (Some(total), Some(magic)) = (be_u32(buf, 0), be_u32(buf, 4)) else {
        return RecordCheck::NeedMore(8);
    };
    if magic == MAGIC_BLANK {
        return RecordCheck::Blank;
    }
    if magic != MAGIC_V1 {
        return RecordCheck::Invalid(if total == 0 && magic == 0 {
            "zeroed"
        } else {
            "bad magic"
        });
    }
    let total_usize = total as usize;
    if total_usize < FIXED_SIZE_V4 {
        return RecordCheck::Invalid("size below the fixed header");
    }
    if buf.len() < total_usize {
        return RecordCheck::NeedMore(total_usize);
    }
    let rec = &buf[..total_usize];
    decode_fields(rec, expected_pos, verify_crc)
}

/// Rewrites, in one stored record as a client will read it, the queue id
/// (the client's numbering of the queue) and the reconsume count (a
/// delivery after earlier ones). No checksum covers these fields (the
/// record's CRC is over the body). `false`: not a whole record.
pub fn patch_delivery(rec: &mut [u8], queue_id: Option<u32>, reconsume_times: Option<i32>) -> bool {
    let Some(sys_flag) = be_u32(rec, SYSFLAG_POS).map(|v| v as i32) else {
        return false;
    };
    let born_len = if sys_flag & SYSFLAG_BORNHOST_V6 != 0 { 20 } else { 8 };
    let store_len = if sys_flag & SYSFLAG_STOREHOST_V6 != 0 { 20 } else { 8 };
    let reconsume_pos = BORN_HOST_POS + born_len + 8 + store_len;
    if rec.len() < reconsume_pos + 4 || rec.len() < QUEUE_ID_POS + 4 {
        return false;
    }
    if let Some(q) = queue_id {
        rec[QUEUE_ID_POS..QUEUE_ID_POS + 4].copy_from_slice(&q.to_be_bytes());
    }
    if let Some(r) = reconsume_times {
        rec[reconsume_pos..reconsume_pos + 4].copy_from_slice(&r.to_be_bytes());
    }
    true
}

fn decode_fields(rec: &[u8], expected_pos: Option<u64>, verify_crc: bool) -> RecordCheck<'_> {
    let get32 = |at| be_u32(rec, at);
    let get64 = |at| be_u64(rec, at);
    let Some(sys_flag) = get32(SYSFLAG_POS).map(|v| v as i32) else {
        return RecordCheck::Invalid("truncated header");
    };
    let born_len = if sys_flag & SYSFLAG_BORNHOST_V6 != 0 { 20 } else { 8 };
    let store_len = if sys_flag & SYSFLAG_STOREHOST_V6 != 0 { 20 } else { 8 };
    let store_ts_pos = BORN_HOST_POS + born_len;
    let body_len_pos = store_ts_pos + 8 + store_len + 4 + 8;
    let (Some(queue_id), Some(queue_offset), Some(physical_offset), Some(born_ts), Some(store_ts), Some(body_len)) = (
        get32(QUEUE_ID_POS),
        get64(QUEUE_OFFSET_POS),
        get64(PHYSICAL_OFFSET_POS),
        get64(40),
        get64(store_ts_pos),
        get32(body_len_pos),
    ) else {
        return RecordCheck::Invalid("truncated header");
    };
    let reconsume_pos = store_ts_pos + 8 + store_len;
    let (Some(flag), Some(born_host), Some(reconsume_times), Some(prepared)) = (
        get32(16),
        host_at(rec, BORN_HOST_POS, sys_flag & SYSFLAG_BORNHOST_V6 != 0),
        get32(reconsume_pos),
        get64(reconsume_pos + 4),
    ) else {
        return RecordCheck::Invalid("truncated header");
    };
    if let Some(pos) = expected_pos {
        if physical_offset != pos {
            return RecordCheck::Invalid("physical offset does not match position");
        }
    }
    let body_start = body_len_pos + 4;
    let Some(body_end) = body_start.checked_add(body_len as usize) else {
        return RecordCheck::Invalid("body length overflows");
    };
    let Some(&topic_len) = rec.get(body_end) else {
        return RecordCheck::Invalid("body runs past record");
    };
    let topic_len = topic_len as i8;
    if topic_len <= 0 {
        return RecordCheck::Invalid("topic length not positive");
    }
    let topic_start = body_end + 1;
    let topic_end = topic_start + topic_len as usize;
    let (Some(pl_hi), Some(pl_lo)) = (rec.get(topic_end), rec.get(topic_end + 1)) else {
        return RecordCheck::Invalid("topic runs past record");
    };
    let props_len = i16::from_be_bytes([*pl_hi, *pl_lo]);
    if props_len < 0 {
        return RecordCheck::Invalid("negative properties length");
    }
    let props_start = topic_end + 2;
    let props_end = props_start + props_len as usize;
    if props_end != rec.len() {
        return RecordCheck::Invalid("declared size does not match fields");
    }
    let body = &rec[body_start..body_end];
    if verify_crc {
        let Some(crc) = get32(8) else {
            return RecordCheck::Invalid("truncated header");
        };
        if crc != body_crc(body) {
            return RecordCheck::Invalid("body CRC mismatch");
        }
    }
    RecordCheck::Record(RecordView {
        total_size: rec.len() as u32,
        queue_id,
        queue_offset,
        physical_offset,
        sys_flag,
        born_timestamp: born_ts as i64,
        store_timestamp: store_ts as i64,
        flag: flag as i32,
        born_host,
        reconsume_times: reconsume_times as i32,
        prepared_transaction_offset: prepared as i64,
        body,
        topic: &rec[topic_start..topic_end],
        properties: &rec[props_start..props_end],
    })
}

/// Reads the store timestamp of an encoded record (for searches by time).
pub fn store_timestamp_of(rec: &[u8]) -> Option<i64> {
    let sys_flag = be_u32(rec, SYSFLAG_POS)? as i32;
    let born_len = if sys_flag & SYSFLAG_BORNHOST_V6 != 0 { 20 } else { 8 };
    be_u64(rec, BORN_HOST_POS + born_len).map(|v| v as i64)
}

/// The store host of an encoded record (with its physical offset, the
/// offset message id).
pub fn store_host_of(rec: &[u8]) -> Option<SocketAddr> {
    let sys_flag = be_u32(rec, SYSFLAG_POS)? as i32;
    let born_len = if sys_flag & SYSFLAG_BORNHOST_V6 != 0 { 20 } else { 8 };
    host_at(rec, BORN_HOST_POS + born_len + 8, sys_flag & SYSFLAG_STOREHOST_V6 != 0)
}
