//! Frame codec (framing.md §2).
//!
//! ```text
//!  offset  size  field
//!  0       4     frameLength = 4 + headerLength + bodyLength  (excludes itself)
//!  4       4     headerWord  = serializeType << 24 | headerLength
//!  8       H     header      JSON (type 0) or ROCKETMQ binary (type 1)
//!  8+H     B     body        B = frameLength - 4 - H; no length of its own
//! ```
//!
//! Big-endian. The decoder validates the length prefix as soon as its bytes
//! arrive, before waiting for (or sizing anything by) the rest of the frame,
//! so a peer cannot make us buffer more than the configured maximum. Like
//! Java's `LengthFieldBasedFrameDecoder`, the maximum counts the 4-byte
//! length field too.

use bytes::{BufMut, Bytes, BytesMut};

use super::command::{RemotingCommand, SerializeType};
use super::{binary_header, json_header, ProtocolError};

/// Java's default `com.rocketmq.remoting.frameMaxLength`.
pub const DEFAULT_MAX_FRAME_LEN: usize = 16 * 1024 * 1024;
/// `frameLength` + `headerWord`.
pub const PREFIX_LEN: usize = 8;
/// The header length is the low 24 bits of the header word.
pub const MAX_HEADER_LEN: usize = 0x00FF_FFFF;

/// Incremental frame decoder: call [`FrameDecoder::decode`] whenever bytes
/// were appended to the connection's read buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameDecoder {
    max_frame_len: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameDecoder {
    /// A decoder accepting frames up to [`DEFAULT_MAX_FRAME_LEN`].
    pub fn new() -> Self {
        Self::with_max_frame_len(DEFAULT_MAX_FRAME_LEN)
    }

    /// A decoder accepting frames up to `max_frame_len` bytes, length field
    /// included.
    pub fn with_max_frame_len(max_frame_len: usize) -> Self {
        Self { max_frame_len }
    }

    pub fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }

    /// Take one complete frame off the front of `buf` and decode it.
    ///
    /// `Ok(None)`: more bytes are needed; `buf` is untouched. `Err`: the
    /// stream is broken and the connection should be closed (no reply);
    /// if the error is in the header of a complete frame, that frame has
    /// been consumed. The body is a zero-copy slice of `buf`'s storage.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<RemotingCommand>, ProtocolError> {
        let Some(layout) = self.peek(buf)? else {
            return Ok(None);
        };
        let frame = buf.split_to(layout.total_len).freeze();
        let header = &frame[PREFIX_LEN..PREFIX_LEN + layout.header_len];
        let mut cmd = match layout.serialize_type {
            SerializeType::Json => json_header::decode(header)?,
            SerializeType::RocketMq => binary_header::decode(header)?,
        };
        cmd.body = frame.slice(PREFIX_LEN + layout.header_len..);
        Ok(Some(cmd))
    }

    /// Validate the prefix; `Some` once the whole frame is buffered.
    fn peek(&self, buf: &[u8]) -> Result<Option<FrameLayout>, ProtocolError> {
        let Some(len_bytes) = buf.first_chunk::<4>() else {
            return Ok(None);
        };
        let frame_len = i32::from_be_bytes(*len_bytes);
        let frame_len_usize = match usize::try_from(frame_len) {
            Ok(n) if n >= 4 => n,
            _ => return Err(ProtocolError::FrameTooShort(frame_len)),
        };
        let total_len = 4 + frame_len_usize;
        if total_len > self.max_frame_len {
            return Err(ProtocolError::FrameTooLarge {
                len: total_len as u64,
                max: self.max_frame_len,
            });
        }
        let Some(word_bytes) = buf.get(4..PREFIX_LEN) else {
            return Ok(None);
        };
        let mut word = [0u8; 4];
        word.copy_from_slice(word_bytes);
        let word = u32::from_be_bytes(word);
        let type_byte = (word >> 24) as u8;
        let serialize_type = SerializeType::from_u8(type_byte).ok_or(ProtocolError::UnknownSerializeType(type_byte))?;
        let header_len = (word & MAX_HEADER_LEN as u32) as usize;
        if header_len > frame_len_usize - 4 {
            return Err(ProtocolError::HeaderLongerThanFrame {
                header_len,
                frame_len: frame_len_usize,
            });
        }
        if buf.len() < total_len {
            return Ok(None);
        }
        Ok(Some(FrameLayout {
            total_len,
            header_len,
            serialize_type,
        }))
    }
}

struct FrameLayout {
    /// Whole frame including the length field.
    total_len: usize,
    header_len: usize,
    serialize_type: SerializeType,
}

/// Append the whole frame of `cmd` (prefix, header, body) to `dst`.
pub fn encode_frame(cmd: &RemotingCommand, dst: &mut BytesMut) -> Result<(), ProtocolError> {
    encode_frame_head(cmd, dst)?;
    dst.put_slice(&cmd.body);
    Ok(())
}

/// The whole frame of `cmd` as one buffer.
pub fn encode_frame_to_bytes(cmd: &RemotingCommand) -> Result<Bytes, ProtocolError> {
    let mut dst = BytesMut::new();
    encode_frame(cmd, &mut dst)?;
    Ok(dst.freeze())
}

/// Append everything but the body to `dst`, so that a large body (pull
/// results) can be written after it without copying.
///
/// The header is serialized as `cmd.serialize_type` says. On error `dst`
/// is left as it was.
pub fn encode_frame_head(cmd: &RemotingCommand, dst: &mut BytesMut) -> Result<(), ProtocolError> {
    let start = dst.len();
    dst.put_slice(&[0u8; PREFIX_LEN]);
    let encoded = match cmd.serialize_type {
        SerializeType::Json => {
            json_header::encode(cmd, dst);
            Ok(())
        }
        SerializeType::RocketMq => binary_header::encode(cmd, dst),
    };
    let result = encoded.and_then(|()| {
        let header_len = dst.len() - start - PREFIX_LEN;
        if header_len > MAX_HEADER_LEN {
            return Err(ProtocolError::HeaderTooLarge(header_len));
        }
        let frame_len = 4 + header_len + cmd.body.len();
        let frame_len_i32 = i32::try_from(frame_len).map_err(|_| ProtocolError::EncodedFrameTooLarge(frame_len + 4))?;
        let word = u32::from(cmd.serialize_type.as_u8()) << 24 | header_len as u32;
        dst[start..start + 4].copy_from_slice(&frame_len_i32.to_be_bytes());
        dst[start + 4..start + PREFIX_LEN].copy_from_slice(&word.to_be_bytes());
        Ok(())
    });
    if result.is_err() {
        dst.truncate(start);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::command::LanguageCode;
    use crate::protocol::ext_fields::ExtFields;
    use crate::protocol::test_util::from_dump;
    use proptest::prelude::*;

    const JSON_DUMP: &str = "
0000  00 00 00 87 00 00 00 83 7b 22 63 6f 64 65 22 3a  ........{\"code\":
0010  31 30 35 2c 22 65 78 74 46 69 65 6c 64 73 22 3a  105,\"extFields\":
0020  7b 22 74 6f 70 69 63 22 3a 22 54 6f 70 69 63 54  {\"topic\":\"TopicT
0030  65 73 74 22 7d 2c 22 66 6c 61 67 22 3a 30 2c 22  est\"},\"flag\":0,\"
0040  6c 61 6e 67 75 61 67 65 22 3a 22 4a 41 56 41 22  language\":\"JAVA\"
0050  2c 22 6f 70 61 71 75 65 22 3a 37 2c 22 73 65 72  ,\"opaque\":7,\"ser
0060  69 61 6c 69 7a 65 54 79 70 65 43 75 72 72 65 6e  ializeTypeCurren
0070  74 52 50 43 22 3a 22 4a 53 4f 4e 22 2c 22 76 65  tRPC\":\"JSON\",\"ve
0080  72 73 69 6f 6e 22 3a 34 37 39 7d                 rsion\":479}
";

    const BINARY_DUMP: &str = "
0000  00 00 00 2d 01 00 00 29 00 69 00 01 df 00 00 00  ...-...).i......
0010  07 00 00 00 00 00 00 00 00 00 00 00 14 00 05 74  ...............t
0020  6f 70 69 63 00 00 00 09 54 6f 70 69 63 54 65 73  opic....TopicTes
0030  74                                               t
";

    fn example_request(serialize_type: SerializeType) -> RemotingCommand {
        let mut ext = ExtFields::new();
        ext.insert("topic", "TopicTest");
        RemotingCommand::new_request(105)
            .with_opaque(7)
            .with_ext_fields(ext)
            .with_serialize_type(serialize_type)
    }

    #[test]
    fn spec_frames_decode_and_reencode_byte_for_byte() {
        for (dump, st, total) in [
            (JSON_DUMP, SerializeType::Json, 139),
            (BINARY_DUMP, SerializeType::RocketMq, 49),
        ] {
            let bytes = from_dump(dump);
            assert_eq!(bytes.len(), total);
            let mut buf = BytesMut::from(&bytes[..]);
            let cmd = FrameDecoder::new().decode(&mut buf).unwrap().unwrap();
            assert!(buf.is_empty());
            assert_eq!(cmd, example_request(st));
            assert_eq!(&encode_frame_to_bytes(&cmd).unwrap()[..], &bytes[..]);
        }
    }

    #[test]
    fn waits_for_every_byte_then_decodes() {
        let bytes = encode_frame_to_bytes(&example_request(SerializeType::Json).with_body(&b"hello body"[..])).unwrap();
        let decoder = FrameDecoder::new();
        let mut buf = BytesMut::new();
        for (i, byte) in bytes.iter().enumerate() {
            assert_eq!(decoder.decode(&mut buf), Ok(None), "after {i} bytes");
            assert_eq!(buf.len(), i);
            buf.put_u8(*byte);
        }
        let cmd = decoder.decode(&mut buf).unwrap().unwrap();
        assert_eq!(&cmd.body[..], b"hello body");
        assert!(buf.is_empty());
    }

    #[test]
    fn decodes_back_to_back_frames() {
        let a = example_request(SerializeType::Json).with_opaque(1);
        let b = example_request(SerializeType::RocketMq)
            .with_opaque(2)
            .with_body(vec![0u8; 3]);
        let mut buf = BytesMut::new();
        encode_frame(&a, &mut buf).unwrap();
        encode_frame(&b, &mut buf).unwrap();
        buf.put_slice(&[0, 0, 0]); // start of a third frame
        let decoder = FrameDecoder::new();
        assert_eq!(decoder.decode(&mut buf).unwrap(), Some(a));
        assert_eq!(decoder.decode(&mut buf).unwrap(), Some(b));
        assert_eq!(decoder.decode(&mut buf).unwrap(), None);
        assert_eq!(buf.len(), 3);
    }

    #[test]
    fn rejects_broken_prefixes_early() {
        let decoder = FrameDecoder::with_max_frame_len(1024);
        let decode = |bytes: &[u8]| decoder.decode(&mut BytesMut::from(bytes));
        for len in [0i32, 3, -1, i32::MIN] {
            assert_eq!(decode(&len.to_be_bytes()), Err(ProtocolError::FrameTooShort(len)));
        }
        // Too large is detected from the 4 length bytes alone.
        assert_eq!(
            decode(&1021i32.to_be_bytes()),
            Err(ProtocolError::FrameTooLarge { len: 1025, max: 1024 })
        );
        assert_eq!(
            decode(&i32::MAX.to_be_bytes()),
            Err(ProtocolError::FrameTooLarge {
                len: i32::MAX as u64 + 4,
                max: 1024
            })
        );
        // Exactly the maximum is fine (and incomplete here).
        assert_eq!(decode(&1020i32.to_be_bytes()), Ok(None));
        assert_eq!(
            decode(&[0, 0, 0, 10, 2, 0, 0, 0]),
            Err(ProtocolError::UnknownSerializeType(2))
        );
        assert_eq!(
            decode(&[0, 0, 0, 10, 0xff, 0, 0, 0]),
            Err(ProtocolError::UnknownSerializeType(0xff))
        );
        assert_eq!(
            decode(&[0, 0, 0, 10, 0, 0, 0, 7]),
            Err(ProtocolError::HeaderLongerThanFrame {
                header_len: 7,
                frame_len: 10
            })
        );
        // Header exactly filling the frame is fine (and incomplete here).
        assert_eq!(decode(&[0, 0, 0, 10, 0, 0, 0, 6]), Ok(None));
    }

    #[test]
    fn an_announced_large_frame_reserves_nothing() {
        let mut buf = BytesMut::with_capacity(16);
        buf.put_i32((DEFAULT_MAX_FRAME_LEN - 4) as i32);
        buf.put_u32(0x0000_0010);
        let capacity = buf.capacity();
        assert_eq!(FrameDecoder::new().decode(&mut buf), Ok(None));
        assert_eq!(buf.capacity(), capacity);
        assert_eq!(buf.len(), 8);
    }

    #[test]
    fn header_errors_consume_the_frame() {
        let mut buf = BytesMut::from(&[0, 0, 0, 6, 0, 0, 0, 2, b'{', b'}', 9][..]);
        assert!(matches!(
            FrameDecoder::new().decode(&mut buf),
            Err(ProtocolError::JsonHeader(_))
        ));
        assert_eq!(&buf[..], &[9]);
    }

    #[test]
    fn empty_header_frame_is_a_header_error() {
        let mut buf = BytesMut::from(&[0, 0, 0, 4, 1, 0, 0, 0][..]);
        assert!(matches!(
            FrameDecoder::new().decode(&mut buf),
            Err(ProtocolError::Truncated { field: "code", .. })
        ));
    }

    #[test]
    fn encode_errors_leave_dst_untouched() {
        let mut dst = BytesMut::from(&b"keep"[..]);
        let pop = RemotingCommand::new_request(200050).with_serialize_type(SerializeType::RocketMq);
        assert!(encode_frame(&pop, &mut dst).is_err());
        let huge = RemotingCommand::new_request(1).with_remark("x".repeat(MAX_HEADER_LEN));
        assert!(matches!(
            encode_frame(&huge, &mut dst),
            Err(ProtocolError::HeaderTooLarge(_))
        ));
        assert_eq!(&dst[..], b"keep");
    }

    #[test]
    fn head_then_body_equals_whole_frame() {
        let cmd = example_request(SerializeType::Json).with_body(&b"0123456789"[..]);
        let mut head = BytesMut::new();
        encode_frame_head(&cmd, &mut head).unwrap();
        head.put_slice(&cmd.body);
        assert_eq!(head.freeze(), encode_frame_to_bytes(&cmd).unwrap());
    }

    fn arb_command() -> impl Strategy<Value = RemotingCommand> {
        (
            any::<bool>(),
            any::<i16>(),
            0u8..14,
            any::<i16>(),
            any::<i32>(),
            any::<i32>(),
            proptest::option::of("\\PC{1,20}"),
            proptest::collection::btree_map("\\PC{0,8}", "\\PC{0,16}", 0..5),
            proptest::collection::vec(any::<u8>(), 0..64),
        )
            .prop_map(
                |(binary, code, lang, version, opaque, flag, remark, ext, body)| RemotingCommand {
                    code: code.into(),
                    language: LanguageCode::from_u8(lang),
                    version: version.into(),
                    opaque,
                    flag,
                    remark,
                    ext_fields: ext.into(),
                    body: body.into(),
                    serialize_type: if binary {
                        SerializeType::RocketMq
                    } else {
                        SerializeType::Json
                    },
                },
            )
    }

    proptest! {
        // Cheap cases: run more of them than the default 256.
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn round_trip_in_random_chunks(
            cmds in proptest::collection::vec(arb_command(), 1..4),
            chunk in 1usize..64,
        ) {
            let mut wire = BytesMut::new();
            for cmd in &cmds {
                encode_frame(cmd, &mut wire).unwrap();
            }
            let decoder = FrameDecoder::new();
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            for piece in wire.chunks(chunk) {
                buf.put_slice(piece);
                while let Some(cmd) = decoder.decode(&mut buf).unwrap() {
                    out.push(cmd);
                }
            }
            prop_assert!(buf.is_empty());
            prop_assert_eq!(out, cmds);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let decoder = FrameDecoder::with_max_frame_len(256);
            let mut buf = BytesMut::from(&bytes[..]);
            while let Ok(Some(cmd)) = decoder.decode(&mut buf) {
                prop_assert!(cmd.body.len() <= bytes.len());
            }
            prop_assert!(buf.len() <= bytes.len());
        }

        #[test]
        fn valid_prefix_with_random_header_never_panics(
            binary: bool,
            header in proptest::collection::vec(any::<u8>(), 0..128),
            body_len in 0usize..16,
        ) {
            let mut buf = BytesMut::new();
            buf.put_i32((4 + header.len() + body_len) as i32);
            buf.put_u32(u32::from(binary) << 24 | header.len() as u32);
            buf.put_slice(&header);
            buf.put_bytes(7, body_len);
            let _ = FrameDecoder::new().decode(&mut buf);
        }
    }
}
