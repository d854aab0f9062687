//! Batch message bodies (`SEND_BATCH_MESSAGE`, or a send with
//! `batch=true`; message.md §6, Java `MessageDecoder.encodeMessage`).
//!
//! The body is a concatenation of entries:
//!
//! ```text
//!  size  field
//!  4     TOTALSIZE      = 20 + bodyLen + 2 + propertiesLen
//!  4     MAGICCODE      client writes 0; ignored
//!  4     BODYCRC        client writes 0; ignored (the broker computes it)
//!  4     FLAG           user flag
//!  4     BODYLEN
//!  n     BODY
//!  2     PROPERTIESLEN  i16
//!  p     PROPERTIES     the entry's own property string (properties.rs)
//! ```
//!
//! Java reads the entries without checking TOTALSIZE; the decoder here is
//! strict: every length must be non-negative, fit the bytes left, and add
//! up to TOTALSIZE exactly. Anything else is a clear error naming the entry
//! offset, so a handler can answer `MESSAGE_ILLEGAL`.

use bytes::{BufMut, Bytes, BytesMut};

use super::ProtocolError;

/// TOTALSIZE + MAGICCODE + BODYCRC + FLAG + BODYLEN.
pub const ENTRY_FIXED_LEN: usize = 4 + 4 + 4 + 4 + 4;
/// Smallest possible entry: no body, no properties.
pub const MIN_ENTRY_LEN: usize = ENTRY_FIXED_LEN + 2;
const _: () = assert!(MIN_ENTRY_LEN == 22);

/// One inner message; `body` and `properties` are slices of the batch body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchEntry {
    pub flag: i32,
    pub body: Bytes,
    /// Raw property string; parse with [`super::Properties::parse_bytes`].
    pub properties: Bytes,
}

/// Iterates the entries of a batch body; stops after the first error.
#[derive(Debug, Clone)]
pub struct BatchIter {
    rest: Bytes,
    offset: usize,
    failed: bool,
}

impl BatchIter {
    pub fn new(body: Bytes) -> Self {
        Self {
            rest: body,
            offset: 0,
            failed: false,
        }
    }

    fn entry(&mut self) -> Result<BatchEntry, ProtocolError> {
        let fail = |reason: String| ProtocolError::Batch {
            offset: self.offset,
            reason,
        };
        let rest = &self.rest[..];
        if rest.len() < MIN_ENTRY_LEN {
            return Err(fail(format!(
                "{} trailing bytes, an entry needs at least {MIN_ENTRY_LEN}",
                rest.len()
            )));
        }
        let int_at = |at: usize| i32::from_be_bytes([rest[at], rest[at + 1], rest[at + 2], rest[at + 3]]);
        let total = int_at(0);
        let flag = int_at(12);
        let body_len = int_at(16);
        let total = match usize::try_from(total) {
            Ok(n) if (MIN_ENTRY_LEN..=rest.len()).contains(&n) => n,
            _ => {
                return Err(fail(format!(
                    "TOTALSIZE {total} outside {MIN_ENTRY_LEN}..={}",
                    rest.len()
                )))
            }
        };
        let body_len = match usize::try_from(body_len) {
            Ok(n) if n <= total - MIN_ENTRY_LEN => n,
            _ => return Err(fail(format!("BODYLEN {body_len} does not fit TOTALSIZE {total}"))),
        };
        let props_at = ENTRY_FIXED_LEN + body_len;
        let props_len = i16::from_be_bytes([rest[props_at], rest[props_at + 1]]);
        let expected = usize::try_from(props_len).map(|p| props_at + 2 + p);
        if expected != Ok(total) {
            return Err(fail(format!(
                "PROPERTIESLEN {props_len} with BODYLEN {body_len} does not add up to TOTALSIZE {total}"
            )));
        }
        let entry = self.rest.split_to(total);
        self.offset += total;
        Ok(BatchEntry {
            flag,
            body: entry.slice(ENTRY_FIXED_LEN..props_at),
            properties: entry.slice(props_at + 2..),
        })
    }
}

impl Iterator for BatchIter {
    type Item = Result<BatchEntry, ProtocolError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let entry = self.entry();
        self.failed = entry.is_err();
        Some(entry)
    }
}

/// Decode a whole batch body. An empty body gives no entries (the send
/// handler decides whether that is legal).
pub fn decode_batch(body: &Bytes) -> Result<Vec<BatchEntry>, ProtocolError> {
    BatchIter::new(body.clone()).collect()
}

/// Append one entry as the Java client encodes it (magic and CRC 0).
pub fn encode_batch_entry(flag: i32, body: &[u8], properties: &str, dst: &mut BytesMut) -> Result<(), ProtocolError> {
    let props_len = i16::try_from(properties.len()).map_err(|_| ProtocolError::NotRepresentable {
        field: "PROPERTIESLEN",
        value: properties.len() as i64,
    })?;
    let total = MIN_ENTRY_LEN + body.len() + properties.len();
    let total_i32 = i32::try_from(total).map_err(|_| ProtocolError::NotRepresentable {
        field: "TOTALSIZE",
        value: total as i64,
    })?;
    dst.reserve(total);
    dst.put_i32(total_i32);
    dst.put_i32(0);
    dst.put_i32(0);
    dst.put_i32(flag);
    dst.put_i32(body.len() as i32); // < total, which fits
    dst.put_slice(body);
    dst.put_i16(props_len);
    dst.put_slice(properties.as_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::properties::Properties;
    use proptest::prelude::*;

    fn batch(entries: &[(i32, &[u8], &str)]) -> Bytes {
        let mut dst = BytesMut::new();
        for (flag, body, props) in entries {
            encode_batch_entry(*flag, body, props, &mut dst).unwrap();
        }
        dst.freeze()
    }

    #[test]
    fn decodes_entries_in_order() {
        let body = batch(&[
            (0, b"Hello", "TAGS\x01TagA\x02WAIT\x01true\x02"),
            (7, b"", ""),
            (-1, b"World!", "KEYS\x01k1 k2\x02"),
        ]);
        // First entry: 22 + 5 + 20 = 47 bytes.
        assert_eq!(&body[..4], &47i32.to_be_bytes());
        let entries = decode_batch(&body).unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].flag, 0);
        assert_eq!(&entries[0].body[..], b"Hello");
        let props = Properties::parse_bytes(&entries[0].properties);
        assert_eq!(props.get("TAGS"), Some("TagA"));
        assert_eq!(entries[1].flag, 7);
        assert!(entries[1].body.is_empty() && entries[1].properties.is_empty());
        assert_eq!(entries[2].flag, -1);
        assert_eq!(&entries[2].body[..], b"World!");
    }

    #[test]
    fn empty_body_is_no_entries() {
        assert_eq!(decode_batch(&Bytes::new()), Ok(vec![]));
    }

    #[test]
    fn inconsistencies_are_errors_with_the_entry_offset() {
        let good = batch(&[(0, b"ab", "k\x01v\x02"), (0, b"cd", "")]);
        let second = 22 + 2 + 4;
        let patched = |at: usize, bytes: &[u8]| {
            let mut b = good.to_vec();
            b[at..at + bytes.len()].copy_from_slice(bytes);
            decode_batch(&Bytes::from(b))
        };
        let offset_of = |r: Result<Vec<BatchEntry>, ProtocolError>| match r {
            Err(ProtocolError::Batch { offset, .. }) => offset,
            other => panic!("expected a batch error, got {other:?}"),
        };
        // TOTALSIZE too small, negative, past the end, or not matching.
        assert_eq!(offset_of(patched(0, &21i32.to_be_bytes())), 0);
        assert_eq!(offset_of(patched(0, &(-1i32).to_be_bytes())), 0);
        assert_eq!(offset_of(patched(second, &1000i32.to_be_bytes())), second);
        assert_eq!(offset_of(patched(0, &29i32.to_be_bytes())), 0);
        // BODYLEN negative or overrunning.
        assert_eq!(offset_of(patched(16, &(-2i32).to_be_bytes())), 0);
        assert_eq!(offset_of(patched(16, &7i32.to_be_bytes())), 0);
        // PROPERTIESLEN negative or off by one.
        assert_eq!(offset_of(patched(22, &(-1i16).to_be_bytes())), 0);
        assert_eq!(offset_of(patched(22, &3i16.to_be_bytes())), 0);
        // Trailing garbage shorter than an entry.
        let mut tail = good.to_vec();
        tail.extend_from_slice(&[0; 5]);
        assert_eq!(offset_of(decode_batch(&Bytes::from(tail))), good.len());
        // Every truncation fails.
        for len in 1..good.len() {
            if len != second {
                assert!(decode_batch(&good.slice(..len)).is_err(), "{len}");
            }
        }
    }

    #[test]
    fn iterator_stops_after_an_error() {
        let mut body = batch(&[(1, b"x", "")]).to_vec();
        body.extend_from_slice(&[0xff; 30]);
        let mut iter = BatchIter::new(Bytes::from(body));
        assert!(iter.next().unwrap().is_ok());
        assert!(iter.next().unwrap().is_err());
        assert!(iter.next().is_none());
    }

    #[test]
    fn encode_rejects_oversized_properties() {
        let mut dst = BytesMut::new();
        let props = "x".repeat(32768);
        assert!(encode_batch_entry(0, b"", &props, &mut dst).is_err());
        assert!(dst.is_empty());
    }

    proptest! {
        // Cheap cases: run more of them than the default 256.
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn round_trip(entries in proptest::collection::vec(
            (any::<i32>(), proptest::collection::vec(any::<u8>(), 0..40), "[a-z\x01\x02]{0,30}"),
            0..6,
        )) {
            let mut dst = BytesMut::new();
            for (flag, body, props) in &entries {
                encode_batch_entry(*flag, body, props, &mut dst).unwrap();
            }
            let decoded = decode_batch(&dst.freeze()).unwrap();
            prop_assert_eq!(decoded.len(), entries.len());
            for (got, (flag, body, props)) in decoded.iter().zip(&entries) {
                prop_assert_eq!(got.flag, *flag);
                prop_assert_eq!(&got.body[..], &body[..]);
                prop_assert_eq!(&got.properties[..], props.as_bytes());
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let input = Bytes::from(bytes);
            let mut seen = 0;
            for entry in BatchIter::new(input.clone()) {
                let Ok(entry) = entry else { break };
                seen += MIN_ENTRY_LEN + entry.body.len() + entry.properties.len();
            }
            prop_assert!(seen <= input.len());
        }

        #[test]
        fn mutated_batch_never_panics(at in 0usize..60, byte: u8) {
            let mut b = batch(&[(0, b"Hello", "TAGS\x01A\x02"), (1, b"xy", "")]).to_vec();
            let at = at % b.len();
            b[at] = byte;
            let _ = decode_batch(&Bytes::from(b));
        }
    }
}
