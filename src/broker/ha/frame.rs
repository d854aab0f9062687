//! The replication stream's frames (our own protocol, one TCP connection
//! per master/slave shard pair).
//!
//! ```text
//! frame   | len u32 | kind u8 | payload (len - 1 bytes) |      big-endian
//!
//! HELLO   slave → master, first frame
//!         | version u16 = 2 | shard u16 | shard_count u16 | segment_size u64 |
//!         | broker_id u64 | end u64 | name_len u16 | broker_name |
//!         | epoch u32 | history |
//!         `end`: the slave's log end. `epoch`: the master epoch the
//!         controller named to the slave (0 without a controller): a master
//!         of an older epoch is fenced and refuses. `history`: the slave's
//!         epoch entries (`| count u16 | (epoch u32, start u64)* |`, `epochs.rs`).
//! WELCOME master → slave:
//!         | min_offset u64 | durable_end u64 | epoch u32 | from u64 | history |
//!         `from`: where the logs stop being the same (`epochs::common_end`);
//!         the slave truncates its log there first, and the master streams
//!         from there. When the slave's log ends below `min_offset` (the
//!         master deleted the records between by retention) `from` is
//!         `min_offset`: an empty slave starts its log there
//!         (`MessageStore::start_log_at`), one holding records refuses.
//!         `history`: the master's, which the slave adopts.
//! REFUSE  master → slave: a UTF-8 reason; the master closes.
//! DATA    master → slave: | pos u64 | records… |
//!         whole records of the master's log from `pos`, durable there
//!         (or one BLANK marker); no records = a heartbeat.
//! ACK     slave → master: | durable_end u64 |
//!         everything below is durable on the slave (also a heartbeat).
//! META    master → slave, shard 0's stream only: the master's topics
//!         (with their queue-to-shard assignment) and subscription groups
//!         as one JSON document, sent at the start and whenever they change.
//! OFFSETS master → slave: the shard's consumer offsets as a JSON array of
//!         `[group, topic, queue, offset]`, when they changed, at most every
//!         few seconds (RocketMQ's slaves copy the whole table every 10 s).
//! ```
//!
//! A frame longer than the receiver's limit, a kind out of place or a
//! short payload ends the connection with a logged reason; nothing in a
//! frame is trusted before it is checked.

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub const VERSION: u16 = 2;

pub const HELLO: u8 = 1;
pub const WELCOME: u8 = 2;
pub const REFUSE: u8 = 3;
pub const DATA: u8 = 4;
pub const ACK: u8 = 5;
pub const META: u8 = 6;
pub const OFFSETS: u8 = 7;

/// Largest META frame a slave takes (the metadata of tens of thousands of
/// topics and groups).
pub const MAX_META: usize = 64 << 20;

/// Largest control frame (HELLO, WELCOME, REFUSE, ACK).
pub const MAX_CONTROL: usize = 8192;

/// A received frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: u8,
    pub payload: Vec<u8>,
}

/// Reads one frame of at most `max` payload bytes.
pub async fn read<R: AsyncRead + Unpin>(r: &mut R, max: usize) -> Result<Frame, String> {
    read_with(r, |_| max).await
}

/// Reads one frame of at most `max(kind)` payload bytes.
pub async fn read_with<R: AsyncRead + Unpin>(r: &mut R, max: impl Fn(u8) -> usize) -> Result<Frame, String> {
    let mut head = [0u8; 5];
    r.read_exact(&mut head).await.map_err(|e| format!("read: {e}"))?;
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let max = max(head[4]);
    if len == 0 {
        return Err("a frame of length 0".into());
    }
    if len - 1 > max {
        return Err(format!("a frame of {} bytes is over the limit of {max}", len - 1));
    }
    let mut payload = vec![0u8; len - 1];
    r.read_exact(&mut payload).await.map_err(|e| format!("read: {e}"))?;
    Ok(Frame { kind: head[4], payload })
}

/// Writes one frame: `parts` concatenated are the payload.
pub async fn write<W: AsyncWrite + Unpin>(w: &mut W, kind: u8, parts: &[&[u8]]) -> Result<(), String> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut out = Vec::with_capacity(5 + len);
    out.extend_from_slice(&((len + 1) as u32).to_be_bytes());
    out.push(kind);
    for p in parts {
        out.extend_from_slice(p);
    }
    w.write_all(&out).await.map_err(|e| format!("write: {e}"))?;
    w.flush().await.map_err(|e| format!("write: {e}"))
}

/// The slave's opening frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub version: u16,
    pub shard: u16,
    pub shard_count: u16,
    pub segment_size: u64,
    pub broker_id: u64,
    pub end: u64,
    pub broker_name: String,
    pub epoch: u32,
    pub history: super::epochs::History,
}

impl Hello {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(32 + self.broker_name.len());
        b.extend_from_slice(&self.version.to_be_bytes());
        b.extend_from_slice(&self.shard.to_be_bytes());
        b.extend_from_slice(&self.shard_count.to_be_bytes());
        b.extend_from_slice(&self.segment_size.to_be_bytes());
        b.extend_from_slice(&self.broker_id.to_be_bytes());
        b.extend_from_slice(&self.end.to_be_bytes());
        b.extend_from_slice(&(self.broker_name.len() as u16).to_be_bytes());
        b.extend_from_slice(self.broker_name.as_bytes());
        b.extend_from_slice(&self.epoch.to_be_bytes());
        encode_history(&self.history, &mut b);
        b
    }

    pub fn decode(p: &[u8]) -> Result<Hello, String> {
        let mut c = Cursor(p);
        let h = Hello {
            version: c.u16()?,
            shard: c.u16()?,
            shard_count: c.u16()?,
            segment_size: c.u64()?,
            broker_id: c.u64()?,
            end: c.u64()?,
            broker_name: {
                let n = c.u16()? as usize;
                String::from_utf8(c.take(n)?.to_vec()).map_err(|_| "broker name is not UTF-8".to_string())?
            },
            epoch: c.u32()?,
            history: decode_history(&mut c)?,
        };
        c.done()?;
        Ok(h)
    }
}

/// The master's answer to a HELLO it accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    pub min_offset: u64,
    pub durable_end: u64,
    pub epoch: u32,
    pub from: u64,
    pub history: super::epochs::History,
}

impl Welcome {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(32 + 12 * self.history.len());
        b.extend_from_slice(&self.min_offset.to_be_bytes());
        b.extend_from_slice(&self.durable_end.to_be_bytes());
        b.extend_from_slice(&self.epoch.to_be_bytes());
        b.extend_from_slice(&self.from.to_be_bytes());
        encode_history(&self.history, &mut b);
        b
    }

    pub fn decode(p: &[u8]) -> Result<Welcome, String> {
        let mut c = Cursor(p);
        let w = Welcome {
            min_offset: c.u64()?,
            durable_end: c.u64()?,
            epoch: c.u32()?,
            from: c.u64()?,
            history: decode_history(&mut c)?,
        };
        c.done()?;
        Ok(w)
    }
}

/// An epoch history: `| count u16 | (epoch u32 | start u64) * count |`.
pub fn encode_history(h: &[(u32, u64)], out: &mut Vec<u8>) {
    out.extend_from_slice(&(h.len() as u16).to_be_bytes());
    for (e, s) in h {
        out.extend_from_slice(&e.to_be_bytes());
        out.extend_from_slice(&s.to_be_bytes());
    }
}

pub fn decode_history(c: &mut Cursor<'_>) -> Result<super::epochs::History, String> {
    let n = c.u16()? as usize;
    if n > super::epochs::MAX_ENTRIES {
        return Err(format!("{n} epoch entries (at most {})", super::epochs::MAX_ENTRIES));
    }
    let mut h = Vec::with_capacity(n);
    for _ in 0..n {
        h.push((c.u32()?, c.u64()?));
    }
    super::epochs::validate(&h)?;
    Ok(h)
}

/// Big-endian fields off a payload, every read checked.
pub struct Cursor<'a>(pub &'a [u8]);

impl<'a> Cursor<'a> {
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err(format!("payload short by {} bytes", n - self.0.len()));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }

    pub fn u16(&mut self) -> Result<u16, String> {
        let s = self.take(2)?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }

    pub fn u32(&mut self) -> Result<u32, String> {
        let s = self.take(4)?;
        Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }

    pub fn u64(&mut self) -> Result<u64, String> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_be_bytes(a))
    }

    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.0)
    }

    pub fn done(&self) -> Result<(), String> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(format!("{} unexpected trailing bytes", self.0.len()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_round_trips_and_short_or_long_payloads_are_refused() {
        let h = Hello {
            version: VERSION,
            shard: 3,
            shard_count: 4,
            segment_size: 1 << 30,
            broker_id: 1,
            end: 123_456,
            broker_name: "broker-a".into(),
            epoch: 3,
            history: vec![(1, 0), (3, 4096)],
        };
        let b = h.encode();
        assert_eq!(Hello::decode(&b), Ok(h));
        for n in 0..b.len() {
            assert!(Hello::decode(&b[..n]).is_err(), "{n}");
        }
        let mut long = b.clone();
        long.push(0);
        assert!(Hello::decode(&long).is_err());
        let w = Welcome {
            min_offset: 0,
            durable_end: 9,
            epoch: 3,
            from: 7,
            history: vec![(3, 1)],
        };
        let b = w.encode();
        assert_eq!(Welcome::decode(&b), Ok(w));
        assert!(Welcome::decode(&b[..b.len() - 1]).is_err());
    }

    #[test]
    fn epoch_histories_round_trip_and_disorder_is_refused() {
        let h = vec![(1u32, 0u64), (2, 10), (7, 99)];
        let mut b = Vec::new();
        encode_history(&h, &mut b);
        assert_eq!(decode_history(&mut Cursor(&b)), Ok(h));
        let mut bad = Vec::new();
        encode_history(&[(2, 0), (1, 5)], &mut bad);
        assert!(decode_history(&mut Cursor(&bad)).is_err());
        assert!(decode_history(&mut Cursor(&b[..5])).is_err());
    }

    #[test]
    fn frames_round_trip_and_oversized_or_empty_ones_are_refused() {
        futures_lite::future::block_on(async {
            let mut buf = Vec::new();
            write(&mut buf, DATA, &[&7u64.to_be_bytes(), b"abc"]).await.unwrap();
            let f = read(&mut &buf[..], 64).await.unwrap();
            assert_eq!(f.kind, DATA);
            assert_eq!(&f.payload[8..], b"abc");
            let e = read(&mut &buf[..], 4).await.unwrap_err();
            assert!(e.contains("over the limit"), "{e}");
            let zero = [0u8, 0, 0, 0, 1];
            assert!(read(&mut &zero[..], 64).await.is_err());
            assert!(read(&mut &buf[..6], 64).await.is_err());
        });
    }
}
