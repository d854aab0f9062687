//! ROCKETMQ binary header (serialize type 1; framing.md §6,
//! Java `RocketMQSerializable`).
//!
//! ```text
//!  size  field
//!  2     code        i16 (POP codes > 32767 cannot be represented)
//!  1     language    LanguageCode byte
//!  2     version     i16
//!  4     opaque      i32
//!  4     flag        i32
//!  4     remarkLen   i32, 0 => no remark
//!  n     remark      UTF-8
//!  4     extLen      i32, byte length of the map, 0 => no extFields
//!  ...   extFields   repeated until extLen bytes are consumed:
//!          2  keyLen  i16
//!          k  key     UTF-8
//!          4  valLen  i32
//!          v  value   UTF-8
//! ```
//!
//! All big-endian. A zero-length string decodes as absent: a remark becomes
//! `None`, a map value becomes `""` (which the getters treat as absent).
//! Strings are decoded like Java (invalid UTF-8 becomes U+FFFD). Every
//! length is checked against the bytes left before it is used, so a
//! truncated or hostile header is an error, never a panic or a large
//! allocation. Bytes after the map are ignored, as in Java.

use bytes::{BufMut, Bytes, BytesMut};

use super::command::{LanguageCode, RemotingCommand, SerializeType};
use super::ext_fields::ExtFields;
use super::ProtocolError;

/// code + language + version + opaque + flag + remarkLen + extLen.
pub const FIXED_LEN: usize = 2 + 1 + 2 + 4 + 4 + 4 + 4;
const _: () = assert!(FIXED_LEN == 21);

/// Decode a binary header into a command with an empty body.
pub fn decode(header: &[u8]) -> Result<RemotingCommand, ProtocolError> {
    let mut r = Reader { buf: header };
    let code = i32::from(r.i16("code")?);
    let language = LanguageCode::from_u8(r.u8("language")?);
    let version = i32::from(r.i16("version")?);
    let opaque = r.i32("opaque")?;
    let flag = r.i32("flag")?;

    let remark_len = r.len_i32("remarkLen", header.len())?;
    let remark = (remark_len > 0).then(|| r.string("remark", remark_len)).transpose()?;

    let ext_len = r.len_i32("extLen", header.len())?;
    let mut ext = Reader {
        buf: r.take("extFields", ext_len)?,
    };
    let mut ext_fields = ExtFields::new();
    while !ext.buf.is_empty() {
        let key_len = ext.i16("keyLen")?;
        let key_len = usize::try_from(key_len).map_err(|_| ProtocolError::InvalidLength {
            field: "keyLen",
            len: key_len.into(),
        })?;
        let key = ext.string("key", key_len)?;
        let value_len = ext.len_i32("valLen", ext_len)?;
        let value = ext.string("value", value_len)?;
        ext_fields.insert(key, value);
    }

    Ok(RemotingCommand {
        code,
        language,
        version,
        opaque,
        flag,
        remark,
        ext_fields,
        body: Bytes::new(),
        serialize_type: SerializeType::RocketMq,
    })
}

/// Append the binary header of `cmd` to `dst`.
///
/// Fails if `code` or `version` does not fit 16 bits or a string is too
/// long for its length field; `dst` is left unchanged then.
pub fn encode(cmd: &RemotingCommand, dst: &mut BytesMut) -> Result<(), ProtocolError> {
    let code = i16::try_from(cmd.code).map_err(|_| ProtocolError::NotRepresentable {
        field: "code",
        value: cmd.code.into(),
    })?;
    let version = i16::try_from(cmd.version).map_err(|_| ProtocolError::NotRepresentable {
        field: "version",
        value: cmd.version.into(),
    })?;
    let remark = cmd.remark.as_deref().unwrap_or("");
    let remark_len = len_i32("remark", remark.len())?;
    let mut ext_len = 0usize;
    for (key, value) in cmd.ext_fields.iter() {
        if i16::try_from(key.len()).is_err() {
            return Err(ProtocolError::NotRepresentable {
                field: "extFields key length",
                value: key.len() as i64,
            });
        }
        len_i32("extFields value", value.len())?;
        ext_len += 2 + key.len() + 4 + value.len();
    }
    let ext_len_i32 = len_i32("extFields", ext_len)?;

    dst.reserve(FIXED_LEN + remark.len() + ext_len);
    dst.put_i16(code);
    dst.put_u8(cmd.language.as_u8());
    dst.put_i16(version);
    dst.put_i32(cmd.opaque);
    dst.put_i32(cmd.flag);
    dst.put_i32(remark_len);
    dst.put_slice(remark.as_bytes());
    dst.put_i32(ext_len_i32);
    for (key, value) in cmd.ext_fields.iter() {
        dst.put_i16(key.len() as i16); // checked above
        dst.put_slice(key.as_bytes());
        dst.put_i32(value.len() as i32); // checked above
        dst.put_slice(value.as_bytes());
    }
    Ok(())
}

fn len_i32(field: &'static str, len: usize) -> Result<i32, ProtocolError> {
    i32::try_from(len).map_err(|_| ProtocolError::NotRepresentable {
        field,
        value: i64::try_from(len).unwrap_or(i64::MAX),
    })
}

/// A bounds-checked big-endian cursor.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, field: &'static str, n: usize) -> Result<&'a [u8], ProtocolError> {
        if n > self.buf.len() {
            return Err(ProtocolError::Truncated {
                field,
                needed: n,
                available: self.buf.len(),
            });
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], ProtocolError> {
        let bytes = self.take(field, N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, ProtocolError> {
        Ok(self.array::<1>(field)?[0])
    }

    fn i16(&mut self, field: &'static str) -> Result<i16, ProtocolError> {
        Ok(i16::from_be_bytes(self.array(field)?))
    }

    fn i32(&mut self, field: &'static str) -> Result<i32, ProtocolError> {
        Ok(i32::from_be_bytes(self.array(field)?))
    }

    /// An `i32` length that must be ≥ 0 and ≤ `limit` (Java checks lengths
    /// against the header length).
    fn len_i32(&mut self, field: &'static str, limit: usize) -> Result<usize, ProtocolError> {
        let len = self.i32(field)?;
        match usize::try_from(len) {
            Ok(n) if n <= limit => Ok(n),
            _ => Err(ProtocolError::InvalidLength { field, len: len.into() }),
        }
    }

    fn string(&mut self, field: &'static str, n: usize) -> Result<String, ProtocolError> {
        Ok(String::from_utf8_lossy(self.take(field, n)?).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::version;
    use proptest::prelude::*;

    /// framing.md §6 example header (after the 8-byte frame prefix).
    const EXAMPLE: &[u8] = &[
        0x00, 0x69, 0x00, 0x01, 0xdf, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x14, 0x00, 0x05, b't', b'o', b'p', b'i', b'c', 0x00, 0x00, 0x00, 0x09, b'T', b'o', b'p', b'i',
        b'c', b'T', b'e', b's', b't',
    ];

    #[test]
    fn decodes_and_reencodes_the_spec_example() {
        let cmd = decode(EXAMPLE).unwrap();
        assert_eq!(cmd.code, 105);
        assert_eq!(cmd.language, LanguageCode::Java);
        assert_eq!(cmd.version, version::V5_3_3);
        assert_eq!(cmd.opaque, 7);
        assert_eq!(cmd.flag, 0);
        assert_eq!(cmd.remark, None);
        assert_eq!(cmd.ext_str("topic"), Some("TopicTest"));
        assert_eq!(cmd.ext_fields.len(), 1);
        assert_eq!(cmd.serialize_type, SerializeType::RocketMq);

        let mut out = BytesMut::new();
        encode(&cmd, &mut out).unwrap();
        assert_eq!(&out[..], EXAMPLE);
    }

    #[test]
    fn remark_negative_code_and_empty_value() {
        let mut cmd = RemotingCommand::new_request(-2).with_remark("héllo");
        cmd.language = LanguageCode::Go;
        cmd.flag = 3;
        cmd.ext_fields.insert("empty", "");
        cmd.ext_fields.insert("", "keyless");
        let mut out = BytesMut::new();
        encode(&cmd, &mut out).unwrap();
        let back = decode(&out).unwrap();
        assert_eq!(back.code, -2);
        assert_eq!(back.remark.as_deref(), Some("héllo"));
        assert_eq!(back.language, LanguageCode::Go);
        assert_eq!(back.ext_fields.get_raw("empty"), Some(""));
        assert_eq!(back.ext_str("empty"), None);
        assert_eq!(back.ext_fields.get_raw(""), Some("keyless"));
    }

    #[test]
    fn unknown_language_byte_is_other_and_trailing_bytes_ignored() {
        let mut bytes = EXAMPLE.to_vec();
        bytes[2] = 200;
        bytes.extend_from_slice(b"trailing");
        let cmd = decode(&bytes).unwrap();
        assert_eq!(cmd.language, LanguageCode::Other);
        assert_eq!(cmd.ext_str("topic"), Some("TopicTest"));
    }

    #[test]
    fn pop_codes_and_big_versions_are_not_representable() {
        let mut out = BytesMut::new();
        let pop = RemotingCommand::new_request(200050);
        assert!(matches!(
            encode(&pop, &mut out),
            Err(ProtocolError::NotRepresentable { field: "code", .. })
        ));
        let mut cmd = RemotingCommand::new_request(10);
        cmd.version = 40_000;
        assert!(encode(&cmd, &mut out).is_err());
        assert!(out.is_empty());
    }

    #[test]
    fn every_truncation_is_an_error() {
        for len in 0..EXAMPLE.len() {
            assert!(decode(&EXAMPLE[..len]).is_err(), "prefix of {len} bytes");
        }
    }

    #[test]
    fn hostile_lengths_are_rejected() {
        let set_i32 = |at: usize, v: i32| {
            let mut b = EXAMPLE.to_vec();
            b[at..at + 4].copy_from_slice(&v.to_be_bytes());
            decode(&b)
        };
        // remarkLen at 13, extLen at 17, valLen at 28.
        assert!(matches!(
            set_i32(13, -1),
            Err(ProtocolError::InvalidLength { field: "remarkLen", .. })
        ));
        assert!(set_i32(13, i32::MAX).is_err());
        assert!(set_i32(17, -5).is_err());
        assert!(set_i32(17, 21).is_err()); // one byte past the header
        assert!(set_i32(28, 10).is_err()); // value overruns the map
        assert!(set_i32(28, -1).is_err());
        let mut b = EXAMPLE.to_vec();
        b[21..23].copy_from_slice(&(-1i16).to_be_bytes());
        assert!(matches!(
            decode(&b),
            Err(ProtocolError::InvalidLength { field: "keyLen", .. })
        ));
        // An entry that stops inside the map is truncated, not read past it.
        assert!(set_i32(17, 19).is_err());
    }

    fn arb_command() -> impl Strategy<Value = RemotingCommand> {
        (
            any::<i16>(),
            0u8..14,
            any::<i16>(),
            any::<i32>(),
            any::<i32>(),
            proptest::option::of("\\PC{1,20}"),
            proptest::collection::btree_map("\\PC{0,8}", "\\PC{0,16}", 0..6),
        )
            .prop_map(|(code, lang, version, opaque, flag, remark, ext)| RemotingCommand {
                code: code.into(),
                language: LanguageCode::from_u8(lang),
                version: version.into(),
                opaque,
                flag,
                remark,
                ext_fields: ext.into(),
                body: Bytes::new(),
                serialize_type: SerializeType::RocketMq,
            })
    }

    proptest! {
        // Cheap cases: run more of them than the default 256.
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn round_trip(cmd in arb_command()) {
            let mut out = BytesMut::new();
            encode(&cmd, &mut out).unwrap();
            prop_assert_eq!(decode(&out).unwrap(), cmd);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(cmd) = decode(&bytes) {
                // Decoded strings are bounded by the input (lossy UTF-8 at
                // most triples a byte).
                let text: usize = cmd.remark.as_ref().map_or(0, String::len)
                    + cmd.ext_fields.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
                prop_assert!(text <= 3 * bytes.len());
            }
        }

        #[test]
        fn mutated_example_never_panics(at in 0..EXAMPLE.len(), byte: u8) {
            let mut b = EXAMPLE.to_vec();
            b[at] = byte;
            let _ = decode(&b);
        }
    }
}
