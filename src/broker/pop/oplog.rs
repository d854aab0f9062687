//! The POP op log: every pop, ack, invisible-time change and reset is a
//! record of the internal topic [`POP_TOPIC`], queue 0 of the shard's own
//! store, written through the CommitLog like any message — so it is
//! durable exactly when a message would be (with SYNC_FLUSH: before the
//! client is answered), rides the same group commit, and is found again by
//! recovery through the topic's consume queue.
//!
//! Record body (big-endian; the record's properties are empty):
//!
//! ```text
//! kind u8 (1 pop, 2 ack, 3 change, 4 reset) | version u8 = 1
//! group_len u16 | group | topic_len u16 | topic | queue u32
//! pop:    pop_time i64 | visible_at i64 | next u64 | attempt_len u16 |
//!         attempt id | n u32 | n × (offset u64, prev_pop_time i64)
//! ack:    n u32 | n × (offset u64, pop_time i64)
//! change: offset u64 | pop_time i64 | new_pop_time i64 | visible_at i64
//! reset:  next u64
//! ```
//!
//! Replay applies the records in queue order with the same
//! [`super::state::Tables::apply`] as the live path; ops are appended in
//! the order they are applied (apply and the store's synchronous append
//! run with no suspension in between), so the replayed state is the state
//! the clients were answered from. A record that does not decode is
//! skipped and logged (it cannot be produced by this code).

use std::net::SocketAddr;

use crate::store::MessageInput;

/// Internal topic of the op log (queue 0 on each shard).
pub const POP_TOPIC: &str = "rmq_sys_SHARDMQ_POP";
const VERSION: u8 = 1;
/// Names are at most 255 (topic) and 120 (group) bytes when valid; a
/// longer one cannot be encoded (the handlers validate names first).
const MAX_NAME: usize = u16::MAX as usize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Pop {
        group: String,
        topic: String,
        queue: u32,
        pop_time: i64,
        visible_at: i64,
        /// The queue's frontier after this pop.
        next: u64,
        /// Orderly pops: the client's attempt id (empty otherwise).
        attempt_id: String,
        /// (offset, pop time of the lease it renews — 0 for a first
        /// delivery). An offset whose lease is not in that state when the
        /// op is applied is not taken (it was acknowledged meanwhile).
        offsets: Vec<(u64, i64)>,
    },
    Ack {
        group: String,
        topic: String,
        queue: u32,
        /// (offset, pop time of the handle).
        items: Vec<(u64, i64)>,
    },
    /// A lease's invisible time changed; `new_pop_time` names it from now
    /// on. A renewal (gRPC `auto_renew`) keeps the name: `new_pop_time ==
    /// pop_time`.
    Change {
        group: String,
        topic: String,
        queue: u32,
        offset: u64,
        pop_time: i64,
        new_pop_time: i64,
        visible_at: i64,
    },
    /// The group's position was reset (admin): leases dropped, frontier set.
    Reset {
        group: String,
        topic: String,
        queue: u32,
        next: u64,
    },
}

impl Op {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        let (kind, group, topic, queue) = match self {
            Op::Pop {
                group, topic, queue, ..
            } => (1u8, group, topic, *queue),
            Op::Ack {
                group, topic, queue, ..
            } => (2, group, topic, *queue),
            Op::Change {
                group, topic, queue, ..
            } => (3, group, topic, *queue),
            Op::Reset {
                group, topic, queue, ..
            } => (4, group, topic, *queue),
        };
        out.push(kind);
        out.push(VERSION);
        put_str(&mut out, group);
        put_str(&mut out, topic);
        out.extend_from_slice(&queue.to_be_bytes());
        match self {
            Op::Pop {
                pop_time,
                visible_at,
                next,
                attempt_id,
                offsets,
                ..
            } => {
                out.extend_from_slice(&pop_time.to_be_bytes());
                out.extend_from_slice(&visible_at.to_be_bytes());
                out.extend_from_slice(&next.to_be_bytes());
                put_str(&mut out, attempt_id);
                out.extend_from_slice(&(offsets.len() as u32).to_be_bytes());
                for (o, prev) in offsets {
                    out.extend_from_slice(&o.to_be_bytes());
                    out.extend_from_slice(&prev.to_be_bytes());
                }
            }
            Op::Ack { items, .. } => {
                out.extend_from_slice(&(items.len() as u32).to_be_bytes());
                for (o, t) in items {
                    out.extend_from_slice(&o.to_be_bytes());
                    out.extend_from_slice(&t.to_be_bytes());
                }
            }
            Op::Change {
                offset,
                pop_time,
                new_pop_time,
                visible_at,
                ..
            } => {
                out.extend_from_slice(&offset.to_be_bytes());
                out.extend_from_slice(&pop_time.to_be_bytes());
                out.extend_from_slice(&new_pop_time.to_be_bytes());
                out.extend_from_slice(&visible_at.to_be_bytes());
            }
            Op::Reset { next, .. } => out.extend_from_slice(&next.to_be_bytes()),
        }
        out
    }

    pub fn decode(b: &[u8]) -> Result<Op, String> {
        let mut r = Reader { b, at: 0 };
        let kind = r.u8()?;
        let version = r.u8()?;
        if version != VERSION {
            return Err(format!("op version {version}, expected {VERSION}"));
        }
        let group = r.str()?;
        let topic = r.str()?;
        let queue = r.u32()?;
        let op = match kind {
            1 => {
                let pop_time = r.i64()?;
                let visible_at = r.i64()?;
                let next = r.u64()?;
                let attempt_id = r.str()?;
                let n = r.u32()? as usize;
                r.need(n.saturating_mul(16))?;
                let offsets = (0..n)
                    .map(|_| Ok((r.u64()?, r.i64()?)))
                    .collect::<Result<_, String>>()?;
                Op::Pop {
                    group,
                    topic,
                    queue,
                    pop_time,
                    visible_at,
                    next,
                    attempt_id,
                    offsets,
                }
            }
            2 => {
                let n = r.u32()? as usize;
                r.need(n.saturating_mul(16))?;
                let items = (0..n)
                    .map(|_| Ok((r.u64()?, r.i64()?)))
                    .collect::<Result<_, String>>()?;
                Op::Ack {
                    group,
                    topic,
                    queue,
                    items,
                }
            }
            3 => Op::Change {
                group,
                topic,
                queue,
                offset: r.u64()?,
                pop_time: r.i64()?,
                new_pop_time: r.i64()?,
                visible_at: r.i64()?,
            },
            4 => Op::Reset {
                group,
                topic,
                queue,
                next: r.u64()?,
            },
            k => return Err(format!("unknown op kind {k}")),
        };
        if r.at != b.len() {
            return Err(format!("{} trailing bytes", b.len() - r.at));
        }
        Ok(op)
    }

    /// The op as a record of the op log.
    pub fn record(&self, born_host: SocketAddr, now: i64) -> MessageInput {
        MessageInput {
            topic: POP_TOPIC.to_string(),
            queue_id: 0,
            flag: 0,
            body: bytes::Bytes::from(self.encode()),
            properties: bytes::Bytes::new(),
            sys_flag: 0,
            born_timestamp: now,
            born_host,
            reconsume_times: 0,
            prepared_transaction_offset: 0,
            tags_code: 0,
            mark: None,
        }
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let s = &s.as_bytes()[..s.len().min(MAX_NAME)];
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn need(&self, n: usize) -> Result<(), String> {
        if self.b.len() - self.at < n {
            return Err(format!("op record truncated at byte {}", self.at));
        }
        Ok(())
    }
    fn take<const N: usize>(&mut self) -> Result<[u8; N], String> {
        self.need(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(&self.b[self.at..self.at + N]);
        self.at += N;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take::<1>()?[0])
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_be_bytes(self.take()?))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_be_bytes(self.take()?))
    }
    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_be_bytes(self.take()?))
    }
    fn str(&mut self) -> Result<String, String> {
        let n = u16::from_be_bytes(self.take()?) as usize;
        self.need(n)?;
        let s = std::str::from_utf8(&self.b[self.at..self.at + n]).map_err(|_| "name is not UTF-8".to_string())?;
        self.at += n;
        Ok(s.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_op_round_trips_and_truncation_is_an_error() {
        let ops = [
            Op::Pop {
                group: "G".into(),
                topic: "T".into(),
                queue: 3,
                pop_time: 17,
                visible_at: 30_017,
                next: 9,
                attempt_id: "a-1".into(),
                offsets: vec![(4, 0), (7, 0), (8, 5)],
            },
            Op::Ack {
                group: "G".into(),
                topic: "T".into(),
                queue: 3,
                items: vec![(4, 17), (8, 17)],
            },
            Op::Change {
                group: "G".into(),
                topic: "T".into(),
                queue: 3,
                offset: 7,
                pop_time: 17,
                new_pop_time: 18,
                visible_at: 99,
            },
            Op::Reset {
                group: "G".into(),
                topic: "T".into(),
                queue: 3,
                next: 0,
            },
        ];
        for op in &ops {
            let b = op.encode();
            assert_eq!(&Op::decode(&b).expect("decodes"), op);
            for cut in 0..b.len() {
                assert!(Op::decode(&b[..cut]).is_err(), "{op:?} cut at {cut}");
            }
        }
        let mut b = ops[1].encode();
        let n_at = b.len() - 36;
        b[n_at] = 0xff; // n = huge: refused without allocating it
        assert!(Op::decode(&b).is_err());
    }
}
