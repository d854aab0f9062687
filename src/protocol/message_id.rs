//! Message ids (message.md §7), the Java string hash used for tags (§8) and
//! the masked CRC32 (§9).
//!
//! Offset message id (broker-generated; send response `msgId`):
//!
//! ```text
//!  IPv4:  storeIp(4)  | storePort(4, int) | commitLogOffset(8)  -> 32 hex chars
//!  IPv6:  storeIp(16) | storePort(4, int) | commitLogOffset(8)  -> 56 hex chars
//! ```
//!
//! Client unique id (`UNIQ_KEY`, Java `MessageClientIDSetter`):
//!
//! ```text
//!  ip(4|16) | pid(2) | classLoader hash(4) | ms since month start(4) | counter(2)
//!  \________ fixed per process __________/
//! ```
//!
//! Hex is uppercase (`UtilAll.bytes2string`).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use super::ProtocolError;

const IPV4_ID_LEN: usize = 32;
const IPV6_ID_LEN: usize = 56;
const _: () = assert!(IPV4_ID_LEN == 2 * (4 + 4 + 8));
const _: () = assert!(IPV6_ID_LEN == 2 * (16 + 4 + 8));

/// The address and commit-log position a stored message's offset id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetMessageId {
    pub ip: IpAddr,
    pub port: u16,
    pub commit_log_offset: i64,
}

impl OffsetMessageId {
    /// 32 (IPv4) or 56 (IPv6) uppercase hex chars.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(56);
        self.encode_into(&mut out);
        out
    }

    /// [`Self::encode`], appended to `out`.
    pub fn encode_into(&self, out: &mut String) {
        match self.ip {
            IpAddr::V4(ip) => push_hex(out, &ip.octets()),
            IpAddr::V6(ip) => push_hex(out, &ip.octets()),
        }
        push_hex(out, &i32::from(self.port).to_be_bytes());
        push_hex(out, &self.commit_log_offset.to_be_bytes());
    }

    /// Decode by length (32 ⇒ IPv4, 56 ⇒ IPv6, like
    /// `MessageDecoder.decodeMessageId`). Hex of either case is accepted.
    pub fn decode(id: &str) -> Result<Self, ProtocolError> {
        let invalid = |reason| ProtocolError::InvalidMessageId {
            id: id.chars().take(64).collect(),
            reason,
        };
        let ip_len = match id.len() {
            IPV4_ID_LEN => 4,
            IPV6_ID_LEN => 16,
            _ => return Err(invalid("length is neither 32 nor 56")),
        };
        let bytes = unhex(id).ok_or_else(|| invalid("not hexadecimal"))?;
        let (ip_bytes, rest) = bytes.split_at(ip_len);
        let ip = match <[u8; 4]>::try_from(ip_bytes) {
            Ok(v4) => IpAddr::V4(Ipv4Addr::from(v4)),
            Err(_) => {
                let v6 = <[u8; 16]>::try_from(ip_bytes).map_err(|_| invalid("bad address"))?;
                IpAddr::V6(Ipv6Addr::from(v6))
            }
        };
        let (port, offset) = rest.split_at(4);
        let port = i32::from_be_bytes(port.try_into().map_err(|_| invalid("bad port"))?);
        let port = u16::try_from(port).map_err(|_| invalid("port out of range"))?;
        let commit_log_offset = i64::from_be_bytes(offset.try_into().map_err(|_| invalid("bad offset"))?);
        Ok(Self {
            ip,
            port,
            commit_log_offset,
        })
    }
}

/// Generates `UNIQ_KEY` ids for messages that arrive without one.
///
/// The 4-byte "classloader hash" is random once per process, and the
/// 16-bit counter is shared by every generator in the process (as Java's
/// static `AtomicInteger`), so shards creating ids in the same millisecond
/// still get distinct ids. The month window is computed in UTC.
#[derive(Debug, Clone)]
pub struct UniqIdGenerator {
    /// Uppercase hex of ip | pid | hash.
    prefix: String,
    month_start_ms: i64,
    next_month_start_ms: i64,
}

static COUNTER: AtomicU16 = AtomicU16::new(0);

/// 9999-12-31T23:59:59.999Z.
const MAX_TIME_MS: i64 = 253_402_300_799_999;

impl UniqIdGenerator {
    /// A generator for this process, advertising `ip`.
    pub fn new(ip: IpAddr) -> Self {
        Self::with_parts(ip, std::process::id() as u16, process_hash())
    }

    /// A generator with explicit fixed parts (tests, tools).
    pub fn with_parts(ip: IpAddr, pid: u16, class_loader_hash: i32) -> Self {
        let mut fixed = Vec::with_capacity(22);
        match ip {
            IpAddr::V4(ip) => fixed.extend_from_slice(&ip.octets()),
            IpAddr::V6(ip) => fixed.extend_from_slice(&ip.octets()),
        }
        fixed.extend_from_slice(&pid.to_be_bytes());
        fixed.extend_from_slice(&class_loader_hash.to_be_bytes());
        Self {
            prefix: hex_upper(&fixed),
            month_start_ms: 0,
            next_month_start_ms: 0,
        }
    }

    /// A new id for the current wall-clock time.
    pub fn next_id(&mut self) -> String {
        self.next_id_at(now_ms())
    }

    /// A new id for `now_ms` (ms since the Unix epoch).
    pub fn next_id_at(&mut self, now_ms: i64) -> String {
        let mut id = String::with_capacity(self.id_len());
        self.next_id_at_into(now_ms, &mut id);
        id
    }

    /// Length of every id this generator makes.
    pub fn id_len(&self) -> usize {
        self.prefix.len() + 12
    }

    /// A new id for the current time, appended to `out` (no allocation
    /// beyond `out`'s growth).
    pub fn next_id_into(&mut self, out: &mut String) {
        self.next_id_at_into(now_ms(), out);
    }

    fn next_id_at_into(&mut self, now_ms: i64, out: &mut String) {
        // Keep the calendar arithmetic far from overflow: 1970..=9999.
        let now_ms = now_ms.clamp(0, MAX_TIME_MS);
        if now_ms >= self.next_month_start_ms || now_ms < self.month_start_ms {
            (self.month_start_ms, self.next_month_start_ms) = utc_month_window(now_ms);
        }
        // Less than 31 days of ms: fits in 32 bits.
        let since_month = (now_ms - self.month_start_ms) as u32;
        let counter = COUNTER.fetch_add(1, Ordering::Relaxed);
        self.push_id(out, since_month, counter);
    }

    fn push_id(&self, out: &mut String, since_month: u32, counter: u16) {
        out.push_str(&self.prefix);
        push_hex(out, &since_month.to_be_bytes());
        push_hex(out, &counter.to_be_bytes());
    }
}

/// Wall-clock ms since the Unix epoch.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The per-process stand-in for Java's classloader `hashCode()`.
fn process_hash() -> i32 {
    static HASH: OnceLock<i32> = OnceLock::new();
    *HASH.get_or_init(|| {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        hasher.write_u128(now);
        hasher.finish() as i32
    })
}

/// `[start of the UTC month containing now_ms, start of the next month)`.
fn utc_month_window(now_ms: i64) -> (i64, i64) {
    const DAY_MS: i64 = 86_400_000;
    let (year, month, _) = civil_from_days(now_ms.div_euclid(DAY_MS));
    let start = days_from_civil(year, month, 1) * DAY_MS;
    let (next_year, next_month) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
    (start, days_from_civil(next_year, next_month, 1) * DAY_MS)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant).
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`].
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Java `String.hashCode()`: `h = 31*h + c` over UTF-16 code units, wrapping.
/// Drives the consume-queue `tagsCode`.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, unit| h.wrapping_mul(31).wrapping_add(i32::from(unit)))
}

/// `UtilAll.crc32`: IEEE CRC-32 masked to 31 bits (BODYCRC, `bodyCrc32`).
pub fn crc32_masked(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes) & 0x7FFF_FFFF
}

fn hex_upper(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    push_hex(&mut out, bytes);
    out
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xF)]));
    }
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| char::from(c).to_digit(16).map(|d| d as u8);
    text.as_bytes()
        .chunks(2)
        .map(|pair| match pair {
            [hi, lo] => Some(digit(*hi)? << 4 | digit(*lo)?),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn offset_id_spec_example() {
        let id = OffsetMessageId {
            ip: "192.168.1.10".parse().unwrap(),
            port: 10911,
            commit_log_offset: 1234,
        };
        assert_eq!(id.encode(), "C0A8010A00002A9F00000000000004D2");
        assert_eq!(OffsetMessageId::decode("C0A8010A00002A9F00000000000004D2"), Ok(id));
        assert_eq!(OffsetMessageId::decode("c0a8010a00002a9f00000000000004d2"), Ok(id));
    }

    #[test]
    fn offset_id_ipv6() {
        let id = OffsetMessageId {
            ip: "fe80::1".parse().unwrap(),
            port: 10911,
            commit_log_offset: i64::MAX,
        };
        let text = id.encode();
        assert_eq!(text.len(), 56);
        assert_eq!(
            text,
            "FE800000000000000000000000000001_00002A9F_7FFFFFFFFFFFFFFF".replace('_', "")
        );
        assert_eq!(OffsetMessageId::decode(&text), Ok(id));
    }

    #[test]
    fn offset_id_rejects_garbage() {
        for bad in [
            "",
            "C0A8010A00002A9F00000000000004D",
            "C0A8010A00002A9F00000000000004DZ",
            "C0A8010AFFFFFFFF00000000000004D2", // port -1
            "C0A8010A00012A9F00000000000004D2", // port > 65535
            "ÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄ",                 // 32 bytes, not hex
        ] {
            assert!(OffsetMessageId::decode(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn java_hash_vectors() {
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("TagA"), 2598919);
        assert_eq!(java_string_hash("TagB"), 2598920);
        assert_eq!(java_string_hash("*"), 42);
        assert_eq!(java_string_hash("订单"), 1129459);
        assert_eq!(java_string_hash("😀"), 1772899);
        // Wraps like Java: "polygenelubricants".hashCode() == i32::MIN.
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
    }

    #[test]
    fn crc32_is_masked_ieee() {
        assert_eq!(crc32_masked(b""), 0);
        // crc32("123456789") = 0xCBF43926.
        assert_eq!(crc32_masked(b"123456789"), 0xCBF4_3926 & 0x7FFF_FFFF);
        assert_eq!(crc32_masked(b"Hello"), 0xF7D1_8982 & 0x7FFF_FFFF);
    }

    #[test]
    fn stored_record_example_body_crc() {
        // message.md §4 example: BODYCRC of "Hello" is 0x77d18982.
        assert_eq!(crc32_masked(b"Hello"), 0x77D1_8982);
    }

    /// message.md §4 example record (IPv4, v1): the fields this module
    /// derives from a stored record agree with the spec's dump.
    #[test]
    fn message_md_record_example() {
        let record = crate::protocol::test_util::from_dump(
            "
0000  00 00 00 7d da a3 20 a7 77 d1 89 82 00 00 00 01  ...}.. .w.......
0010  00 00 00 00 00 00 00 00 00 00 00 07 00 00 00 00  ................
0020  00 00 04 d2 00 00 00 00 00 00 01 8b cf e5 68 00  ..............h.
0030  c0 a8 01 14 00 00 d0 ae 00 00 01 8b cf e5 68 05  ..............h.
0040  c0 a8 01 0a 00 00 2a 9f 00 00 00 00 00 00 00 00  ......*.........
0050  00 00 00 00 00 00 00 05 48 65 6c 6c 6f 09 54 6f  ........Hello.To
0060  70 69 63 54 65 73 74 00 14 54 41 47 53 01 54 61  picTest..TAGS.Ta
0070  67 41 02 57 41 49 54 01 74 72 75 65 02           gA.WAIT.true.
",
        );
        assert_eq!(record.len(), 125);
        let be_u32 = |at: usize| u32::from_be_bytes(record[at..at + 4].try_into().unwrap());
        let be_i64 = |at: usize| i64::from_be_bytes(record[at..at + 8].try_into().unwrap());
        // BODYCRC covers the body.
        assert_eq!(&record[88..93], b"Hello");
        assert_eq!(be_u32(8), crc32_masked(b"Hello"));
        // Offset msgId = STOREHOST ip + port + PHYSICALOFFSET.
        let id = OffsetMessageId {
            ip: IpAddr::V4(Ipv4Addr::from(be_u32(64))),
            port: u16::try_from(be_u32(68)).unwrap(),
            commit_log_offset: be_i64(28),
        };
        assert_eq!(id.encode(), "C0A8010A00002A9F00000000000004D2");
        assert_eq!(hex_upper(&record[64..72]), "C0A8010A00002A9F");
        // PROPERTIES (after topic) parse to TAGS/WAIT, and re-encode exactly.
        let props = crate::protocol::Properties::parse_bytes(&record[105..]);
        assert_eq!(props.get("TAGS"), Some("TagA"));
        assert_eq!(props.encode().as_bytes(), &record[105..]);
        assert_eq!(java_string_hash(props.get("TAGS").unwrap()), 2598919);
    }

    #[test]
    fn uniq_id_layout() {
        let mut generator = UniqIdGenerator::with_parts("192.168.1.10".parse().unwrap(), 0x1234, 0x0BADCAFE);
        // 2024-02-29T12:00:00.123Z; month starts 2024-02-01T00:00:00Z.
        let now = 1_709_208_000_123;
        let since_month = now - 1_706_745_600_000;
        let a = generator.next_id_at(now);
        let b = generator.next_id_at(now);
        assert_eq!(a.len(), 32);
        assert_eq!(&a[..20], "C0A8010A12340BADCAFE");
        assert_eq!(&a[20..28], format!("{since_month:08X}"));
        assert_eq!(&a[..28], &b[..28]);
        assert_ne!(a[28..], b[28..], "counter must advance");
        assert!(a.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()));
    }

    #[test]
    fn uniq_id_ipv6_and_month_rollover() {
        let mut generator = UniqIdGenerator::with_parts("::1".parse().unwrap(), 1, -1);
        let jan_end = 1_706_745_599_999; // 2024-01-31T23:59:59.999Z
        let feb_start = jan_end + 1;
        let a = generator.next_id_at(jan_end);
        assert_eq!(a.len(), 56);
        assert_eq!(&a[32..44], "0001FFFFFFFF");
        assert_eq!(&a[44..52], format!("{:08X}", 31u32 * 86_400_000 - 1));
        let b = generator.next_id_at(feb_start);
        assert_eq!(&b[44..52], "00000000");
        // Clock stepping back into the previous month recomputes the window.
        let c = generator.next_id_at(jan_end);
        assert_eq!(&c[44..52], &a[44..52]);
    }

    #[test]
    fn uniq_id_with_process_parts() {
        let mut generator = UniqIdGenerator::new("10.0.0.1".parse().unwrap());
        let id = generator.next_id();
        assert_eq!(id.len(), 32);
        let pid = std::process::id() as u16;
        assert_eq!(&id[..12], format!("0A000001{pid:04X}"));
    }

    #[test]
    fn absurd_clocks_are_clamped_not_overflowed() {
        let mut generator = UniqIdGenerator::with_parts("10.0.0.1".parse().unwrap(), 1, 1);
        assert_eq!(generator.next_id_at(i64::MAX).len(), 32);
        let before_epoch = generator.next_id_at(i64::MIN);
        assert_eq!(&before_epoch[20..28], "00000000");
    }

    #[test]
    fn month_windows() {
        const DAY: i64 = 86_400_000;
        // 1970-01-15 -> [1970-01-01, 1970-02-01)
        assert_eq!(utc_month_window(14 * DAY), (0, 31 * DAY));
        // 1969-12-31T23:59:59.999Z -> [1969-12-01, 1970-01-01)
        assert_eq!(utc_month_window(-1), (-31 * DAY, 0));
        // 2023-12-25 -> December 2023.
        let (start, end) = utc_month_window(1_703_462_400_000);
        assert_eq!(start, 1_701_388_800_000);
        assert_eq!(end, 1_704_067_200_000);
    }

    proptest! {
        #[test]
        fn offset_id_round_trip(v4 in any::<bool>(), raw in any::<[u8; 16]>(), port: u16, offset: i64) {
            let ip = if v4 {
                IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]))
            } else {
                IpAddr::V6(Ipv6Addr::from(raw))
            };
            let id = OffsetMessageId { ip, port, commit_log_offset: offset };
            prop_assert_eq!(OffsetMessageId::decode(&id.encode()), Ok(id));
        }

        #[test]
        fn offset_id_decode_never_panics(text in "\\PC{0,60}") {
            let _ = OffsetMessageId::decode(&text);
        }

        #[test]
        fn civil_round_trip(days in -1_000_000i64..1_000_000) {
            let (y, m, d) = civil_from_days(days);
            prop_assert_eq!(days_from_civil(y, m, d), days);
            let (start, end) = utc_month_window(days * 86_400_000);
            prop_assert!(start <= days * 86_400_000 && days * 86_400_000 < end);
            prop_assert!((28 * 86_400_000..=31 * 86_400_000).contains(&(end - start)));
        }
    }
}
