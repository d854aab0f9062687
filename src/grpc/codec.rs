//! gRPC message framing ("Length-Prefixed-Message", grpc/doc/PROTOCOL-HTTP2.md).
//!
//! Every protobuf message in an HTTP/2 DATA stream is preceded by 5 bytes:
//!
//! ```text
//!  byte 0        bytes 1..5                 bytes 5..5+len
//! +-------------+--------------------------+-------------------------+
//! | compressed  | len: u32, big-endian     | message (len bytes)     |
//! | flag: 0 / 1 |                          | protobuf, or gzip of it |
//! +-------------+--------------------------+-------------------------+
//! ```
//!
//! Frames are independent of HTTP/2 DATA frames: one message may span many
//! DATA frames and one DATA frame may hold several messages, so
//! [`FrameDecoder`] reassembles across chunks.
//!
//! Choices:
//! * The length is checked against the limit as soon as the 5-byte prefix
//!   has arrived, before anything is buffered for it; an oversized message
//!   is refused with RESOURCE_EXHAUSTED without reading its body.
//! * Buffered bytes are charged to a per-connection [`Budget`]: a client
//!   cannot make us hold `max_concurrent_streams × max_message` bytes.
//! * Flag 1 is accepted only with `grpc-encoding: gzip` (decompressed with
//!   flate2, output capped at the message limit: a gzip bomb stops at the
//!   cap); any other encoding is UNIMPLEMENTED. We never compress responses.
//! * A flag other than 0/1 or a stream that ends inside a frame is INTERNAL
//!   (a malformed frame), as grpc-go and tonic answer.

use std::cell::Cell;
use std::io::Read;
use std::rc::Rc;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::status::GrpcStatus;

/// Size of the message prefix: 1 flag byte + 4 length bytes.
pub const PREFIX_LEN: usize = 5;
const _: () = assert!(PREFIX_LEN == 1 + std::mem::size_of::<u32>());

/// Encodes one message with its prefix (flag 0: we never compress).
pub fn encode<M: prost::Message>(msg: &M) -> Bytes {
    let len = msg.encoded_len();
    let mut buf = BytesMut::with_capacity(PREFIX_LEN + len);
    buf.put_u8(0);
    // A message over 4 GiB cannot be framed; ours are bounded far below
    // (RocketMQ bodies are a few MiB) — saturate rather than wrap.
    buf.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
    // encode() fails only when the buffer lacks capacity; we reserved it.
    if msg.encode(&mut buf).is_err() {
        debug_assert!(false, "prost encode into a reserved buffer failed");
    }
    buf.freeze()
}

/// The request's `grpc-encoding`: what a flag-1 message is compressed with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// No header or `identity`: a flag-1 message is a protocol error.
    Identity,
    Gzip,
}

impl Compression {
    /// Parses `grpc-encoding`; `None` for an encoding we do not implement.
    pub fn from_header(value: Option<&str>) -> Option<Compression> {
        match value.map(str::trim) {
            None | Some("identity") | Some("") => Some(Compression::Identity),
            Some("gzip") => Some(Compression::Gzip),
            Some(_) => None,
        }
    }
}

/// Bytes a connection may hold in partly received request messages, shared
/// by all decoders of the connection (single thread: a `Cell` suffices).
#[derive(Clone, Debug)]
pub struct Budget {
    left: Rc<Cell<usize>>,
}

impl Budget {
    pub fn new(bytes: usize) -> Self {
        Budget {
            left: Rc::new(Cell::new(bytes)),
        }
    }

    fn take(&self, n: usize) -> bool {
        match self.left.get().checked_sub(n) {
            Some(rest) => {
                self.left.set(rest);
                true
            }
            None => false,
        }
    }

    fn give(&self, n: usize) {
        self.left.set(self.left.get() + n);
    }

    pub fn available(&self) -> usize {
        self.left.get()
    }
}

/// Reassembles length-prefixed messages from DATA chunks.
///
/// Invariant: `buf.len() == charged`, and after [`push`](Self::push) returns
/// `Ok`, `buf` holds at most one chunk plus one message whose declared
/// length is ≤ `max_message` (callers drain with
/// [`next_message`](Self::next_message) after each push).
#[derive(Debug)]
pub struct FrameDecoder {
    buf: BytesMut,
    charged: usize,
    max_message: usize,
    compression: Compression,
    budget: Budget,
}

impl FrameDecoder {
    pub fn new(max_message: usize, compression: Compression, budget: Budget) -> Self {
        FrameDecoder {
            buf: BytesMut::new(),
            charged: 0,
            max_message,
            compression,
            budget,
        }
    }

    /// Appends one DATA chunk; refuses it when the connection's budget is spent.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), GrpcStatus> {
        if !self.budget.take(chunk.len()) {
            return Err(GrpcStatus::resource_exhausted(format!(
                "connection holds too many partly received messages ({} bytes left)",
                self.budget.available()
            )));
        }
        self.charged += chunk.len();
        self.buf.extend_from_slice(chunk);
        // Fail fast on a bad prefix instead of buffering toward it.
        self.check_prefix().map(|_| ())
    }

    /// The next complete message (decompressed), if one has arrived.
    pub fn next_message(&mut self) -> Result<Option<Bytes>, GrpcStatus> {
        let Some(len) = self.check_prefix()?.then(|| self.declared_len()) else {
            return Ok(None);
        };
        if self.buf.len() < PREFIX_LEN + len {
            return Ok(None);
        }
        let compressed = self.buf[0] == 1;
        self.buf.advance(PREFIX_LEN);
        let payload = self.buf.split_to(len).freeze();
        self.refund();
        if compressed {
            self.decompress(&payload).map(Some)
        } else {
            Ok(Some(payload))
        }
    }

    /// True when no partial frame is buffered (a clean end of stream).
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Ok(true) when a full prefix is buffered and acceptable.
    fn check_prefix(&self) -> Result<bool, GrpcStatus> {
        if self.buf.len() < PREFIX_LEN {
            return Ok(false);
        }
        match self.buf[0] {
            0 => {}
            1 if self.compression == Compression::Gzip => {}
            1 => {
                return Err(GrpcStatus::internal(
                    "compressed message without a grpc-encoding header",
                ))
            }
            flag => return Err(GrpcStatus::internal(format!("invalid compressed flag {flag}"))),
        }
        let len = self.declared_len();
        if len > self.max_message {
            return Err(GrpcStatus::resource_exhausted(format!(
                "message of {len} bytes exceeds the limit of {} bytes",
                self.max_message
            )));
        }
        Ok(true)
    }

    fn declared_len(&self) -> usize {
        let be = [self.buf[1], self.buf[2], self.buf[3], self.buf[4]];
        // u32 always fits usize on the 64-bit targets we build for.
        usize::try_from(u32::from_be_bytes(be)).unwrap_or(usize::MAX)
    }

    /// Returns the budget for bytes no longer buffered.
    fn refund(&mut self) {
        let held = self.buf.len();
        debug_assert!(held <= self.charged);
        self.budget.give(self.charged - held);
        self.charged = held;
    }

    fn decompress(&self, payload: &[u8]) -> Result<Bytes, GrpcStatus> {
        let cap = self.max_message;
        let mut out = Vec::with_capacity(payload.len().saturating_mul(4).min(cap));
        // Read one byte past the cap to tell "exactly cap" from "over".
        let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
        flate2::read::GzDecoder::new(payload)
            .take(limit)
            .read_to_end(&mut out)
            .map_err(|e| GrpcStatus::internal(format!("bad gzip message: {e}")))?;
        if out.len() > cap {
            return Err(GrpcStatus::resource_exhausted(format!(
                "decompressed message exceeds the limit of {cap} bytes"
            )));
        }
        Ok(Bytes::from(out))
    }
}

impl Drop for FrameDecoder {
    fn drop(&mut self) {
        self.budget.give(self.charged);
    }
}

/// Decodes a protobuf request; a malformed one is INTERNAL, as in grpc-java
/// and tonic.
pub fn decode<M: prost::Message + Default>(payload: Bytes) -> Result<M, GrpcStatus> {
    M::decode(payload).map_err(|e| GrpcStatus::internal(format!("invalid protobuf message: {e}")))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::grpc::pb;
    use crate::grpc::status::GrpcCode;

    fn decoder(max: usize, budget: &Budget) -> FrameDecoder {
        FrameDecoder::new(max, Compression::Gzip, budget.clone())
    }

    fn sample() -> pb::Resource {
        pb::Resource {
            resource_namespace: "ns".into(),
            name: "TopicA".into(),
        }
    }

    #[test]
    fn messages_split_and_joined_across_chunks_round_trip() {
        let budget = Budget::new(1 << 20);
        let mut d = decoder(1024, &budget);
        let mut wire = encode(&sample()).to_vec();
        wire.extend_from_slice(&encode(&pb::Resource::default()));
        wire.extend_from_slice(&encode(&sample()));
        let mut got = Vec::new();
        for chunk in wire.chunks(3) {
            d.push(chunk).unwrap();
            while let Some(m) = d.next_message().unwrap() {
                got.push(decode::<pb::Resource>(m).unwrap());
            }
        }
        assert_eq!(got, vec![sample(), pb::Resource::default(), sample()]);
        assert!(d.is_empty());
        drop(d);
        assert_eq!(budget.available(), 1 << 20, "every byte refunded");
    }

    #[test]
    fn oversized_prefix_is_refused_before_the_body_arrives() {
        let budget = Budget::new(1 << 20);
        let mut d = decoder(100, &budget);
        let err = d.push(&[0, 0, 0, 0, 101]).unwrap_err();
        assert_eq!(err.code(), GrpcCode::ResourceExhausted);
        let mut d = decoder(100, &budget);
        d.push(&[0, 0, 0, 0, 100]).unwrap();
        assert_eq!(d.next_message().unwrap(), None);
    }

    #[test]
    fn bad_flags_are_internal_errors() {
        let budget = Budget::new(1 << 20);
        let mut d = decoder(100, &budget);
        assert_eq!(d.push(&[2, 0, 0, 0, 1]).unwrap_err().code(), GrpcCode::Internal);
        let mut d = FrameDecoder::new(100, Compression::Identity, budget);
        assert_eq!(d.push(&[1, 0, 0, 0, 1]).unwrap_err().code(), GrpcCode::Internal);
    }

    #[test]
    fn connection_budget_is_shared_and_refunded() {
        let budget = Budget::new(10);
        let mut a = decoder(100, &budget);
        let mut b = decoder(100, &budget);
        a.push(&[0, 0, 0, 0, 50, 1, 2]).unwrap();
        assert_eq!(b.push(&[0; 4]).unwrap_err().code(), GrpcCode::ResourceExhausted);
        drop(a);
        b.push(&[0; 4]).unwrap();
        assert_eq!(budget.available(), 6);
    }

    #[test]
    fn gzip_messages_are_inflated_and_capped() {
        let raw = prost::Message::encode_to_vec(&sample());
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&raw).unwrap();
        let gz = gz.finish().unwrap();
        let mut frame = vec![1u8];
        frame.extend_from_slice(&u32::try_from(gz.len()).unwrap().to_be_bytes());
        frame.extend_from_slice(&gz);

        let budget = Budget::new(1 << 20);
        let mut d = decoder(1024, &budget);
        d.push(&frame).unwrap();
        let m = d.next_message().unwrap().unwrap();
        assert_eq!(decode::<pb::Resource>(m).unwrap(), sample());

        // Inflates past the cap: refused, not buffered without bound.
        let mut bomb = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        bomb.write_all(&vec![0u8; 64 * 1024]).unwrap();
        let bomb = bomb.finish().unwrap();
        let mut frame = vec![1u8];
        frame.extend_from_slice(&u32::try_from(bomb.len()).unwrap().to_be_bytes());
        frame.extend_from_slice(&bomb);
        let mut d = decoder(1024, &budget);
        d.push(&frame).unwrap();
        assert_eq!(d.next_message().unwrap_err().code(), GrpcCode::ResourceExhausted);
    }

    proptest::proptest! {
        /// Arbitrary bytes in arbitrary chunks: no panic, and never more
        /// buffered than one allowed message plus one chunk.
        #[test]
        fn arbitrary_input_never_panics_or_overbuffers(
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4096),
            cuts in proptest::collection::vec(1usize..64, 1..32),
            gzip in proptest::prelude::any::<bool>(),
        ) {
            let budget = Budget::new(1 << 20);
            let compression = if gzip { Compression::Gzip } else { Compression::Identity };
            let mut d = FrameDecoder::new(256, compression, budget.clone());
            let (mut at, mut k) = (0, 0);
            'feed: while at < data.len() {
                let n = cuts[k % cuts.len()].min(data.len() - at);
                k += 1;
                if d.push(&data[at..at + n]).is_err() {
                    break;
                }
                at += n;
                loop {
                    match d.next_message() {
                        Ok(Some(m)) => {
                            let _ = decode::<pb::TelemetryCommand>(m);
                        }
                        Ok(None) => break,
                        Err(_) => break 'feed,
                    }
                }
                proptest::prop_assert!(d.buf.len() <= PREFIX_LEN + 256 + 64);
            }
            drop(d);
            proptest::prop_assert_eq!(budget.available(), 1 << 20);
        }
    }
}
