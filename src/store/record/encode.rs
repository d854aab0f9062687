//! Encoding a stored record (the layout in the module docs), plain or
//! with BODY and PROPERTIES sealed, and the end-of-segment BLANK marker.

use std::net::{IpAddr, SocketAddr};

use super::{
    body_crc, Mark, BLANK_SIZE, FIXED_SIZE_V4, MAGIC_BLANK, MAGIC_V1, MAX_PROPERTIES_LEN, MAX_TOPIC_LEN,
    SYSFLAG_BORNHOST_V6, SYSFLAG_STOREHOST_V6,
};
use crate::store::crypt::{self, Field, KeyRing};
use crate::store::position::PhysicalOffset;

/// What a producer hands the store. The store fills in queue offset,
/// physical offset, store timestamp, store host and body CRC.
#[derive(Debug, Clone)]
pub struct MessageInput {
    pub topic: String,
    pub queue_id: u32,
    pub flag: i32,
    pub body: bytes::Bytes,
    /// Encoded properties string (message.md §2), stored as given.
    pub properties: bytes::Bytes,
    /// Client sysFlag bits (compression, transaction type). Host IPv6 bits
    /// are set by the store from the actual addresses.
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub born_host: SocketAddr,
    pub reconsume_times: i32,
    pub prepared_transaction_offset: i64,
    /// `javaStringHashCode(TAGS)` or 0 (message.md §8); kept in the
    /// consume-queue entry for broker-side tag filtering.
    pub tags_code: i64,
    /// A second consume-queue entry for this record, in an internal queue
    /// ([`Mark`]). The properties must carry the same mark
    /// ([`Mark::property`]) so that recovery re-dispatches it.
    pub mark: Option<Mark>,
}

impl MessageInput {
    /// Encoded size of this message as a stored record.
    pub fn record_size(&self, store_host: &SocketAddr) -> usize {
        FIXED_SIZE_V4
            + host_extra(&self.born_host)
            + host_extra(store_host)
            + self.body.len()
            + self.topic.len()
            + self.properties.len()
    }

    /// Shape checks that do not depend on the store's state.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.topic.is_empty() || self.topic.len() > MAX_TOPIC_LEN {
            return Err("topic length must be 1..=127 bytes");
        }
        if self.properties.len() > MAX_PROPERTIES_LEN {
            return Err("properties longer than 32767 bytes");
        }
        if self.body.len() > i32::MAX as usize {
            return Err("body too large");
        }
        Ok(())
    }
}

fn host_extra(addr: &SocketAddr) -> usize {
    if addr.is_ipv6() {
        12
    } else {
        0
    }
}

/// Fields assigned by the store at append time.
#[derive(Debug, Clone, Copy)]
pub struct StoreStamp {
    pub queue_offset: u64,
    pub physical_offset: PhysicalOffset,
    pub store_timestamp: i64,
}

/// Appends the encoded record to `out`. `out` grows by exactly
/// `msg.record_size(store_host)` bytes.
pub fn encode_record(msg: &MessageInput, stamp: &StoreStamp, store_host: &SocketAddr, out: &mut Vec<u8>) {
    encode(msg, stamp, store_host, None, out);
}

/// [`encode_record`] with BODY and PROPERTIES sealed by `ring`'s active key
/// (see `crypt`): `out` grows by `record_size + crypt::OVERHEAD` bytes.
pub fn encode_sealed(
    msg: &MessageInput,
    stamp: &StoreStamp,
    store_host: &SocketAddr,
    ring: &KeyRing,
    shard: u16,
    out: &mut Vec<u8>,
) {
    encode(msg, stamp, store_host, Some((ring, shard)), out);
}

fn encode(
    msg: &MessageInput,
    stamp: &StoreStamp,
    store_host: &SocketAddr,
    seal: Option<(&KeyRing, u16)>,
    out: &mut Vec<u8>,
) {
    // Where the sealed fields live: their nonce and associated data.
    let seal = seal.map(|(ring, shard)| {
        let site = crypt::Site {
            shard,
            physical: stamp.physical_offset.0,
            topic: msg.topic.as_bytes(),
        };
        (ring, site)
    });
    let overhead = if seal.is_some() { crypt::OVERHEAD } else { 0 };
    let size = msg.record_size(store_host) + overhead;
    let start = out.len();
    out.reserve(size);
    // Bits 24..=30 name the sealing key: never a client's to set.
    let mut sys_flag = msg.sys_flag & !(SYSFLAG_BORNHOST_V6 | SYSFLAG_STOREHOST_V6 | crypt::KEY_ID_MASK);
    if msg.born_host.is_ipv6() {
        sys_flag |= SYSFLAG_BORNHOST_V6;
    }
    if store_host.is_ipv6() {
        sys_flag |= SYSFLAG_STOREHOST_V6;
    }
    if let Some((ring, _)) = seal {
        sys_flag |= (ring.active() as i32) << crypt::KEY_ID_SHIFT;
    }
    out.extend_from_slice(&(size as u32).to_be_bytes());
    out.extend_from_slice(&MAGIC_V1.to_be_bytes());
    let crc_at = out.len();
    // Sealed: the CRC of the stored bytes, patched in once they exist.
    let crc = if seal.is_some() { 0 } else { body_crc(&msg.body) };
    out.extend_from_slice(&crc.to_be_bytes());
    out.extend_from_slice(&msg.queue_id.to_be_bytes());
    out.extend_from_slice(&msg.flag.to_be_bytes());
    out.extend_from_slice(&stamp.queue_offset.to_be_bytes());
    out.extend_from_slice(&stamp.physical_offset.0.to_be_bytes());
    out.extend_from_slice(&sys_flag.to_be_bytes());
    out.extend_from_slice(&msg.born_timestamp.to_be_bytes());
    put_host(out, &msg.born_host);
    out.extend_from_slice(&stamp.store_timestamp.to_be_bytes());
    put_host(out, store_host);
    out.extend_from_slice(&msg.reconsume_times.to_be_bytes());
    out.extend_from_slice(&msg.prepared_transaction_offset.to_be_bytes());
    let tag = if seal.is_some() { crypt::TAG_LEN } else { 0 };
    out.extend_from_slice(&((msg.body.len() + tag) as u32).to_be_bytes());
    let body_at = out.len();
    out.extend_from_slice(&msg.body);
    if let Some((ring, site)) = seal {
        ring.seal(Field::Body, site, out, body_at);
        // The CRC covers what is stored, so recovery checks without the key.
        let crc = body_crc(&out[body_at..]);
        out[crc_at..crc_at + 4].copy_from_slice(&crc.to_be_bytes());
    }
    out.push(msg.topic.len() as u8);
    out.extend_from_slice(msg.topic.as_bytes());
    out.extend_from_slice(&((msg.properties.len() + tag) as u16).to_be_bytes());
    let props_at = out.len();
    out.extend_from_slice(&msg.properties);
    if let Some((ring, site)) = seal {
        ring.seal(Field::Properties, site, out, props_at);
    }
    debug_assert_eq!(out.len() - start, size);
}

fn put_host(out: &mut Vec<u8>, addr: &SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
    }
    out.extend_from_slice(&(addr.port() as i32).to_be_bytes());
}

/// Encodes the end-of-segment BLANK marker.
pub fn encode_blank(remaining: u32) -> [u8; BLANK_SIZE] {
    let mut b = [0u8; BLANK_SIZE];
    b[..4].copy_from_slice(&remaining.to_be_bytes());
    b[4..].copy_from_slice(&MAGIC_BLANK.to_be_bytes());
    b
}
