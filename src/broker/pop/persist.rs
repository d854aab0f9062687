//! Recovery and checkpoints of the POP state.
//!
//! `<shard dir>/pop/checkpoint` holds the whole state as of op-queue
//! offset `applied` (every op below it is in the snapshot); recovery loads
//! it and replays the op queue ([`super::oplog`]) from `applied` on.
//! Written to `checkpoint.tmp`, fsynced, renamed, directory fsynced — on
//! the blocking thread. Layout (big-endian):
//!
//! ```text
//! magic "SMQPOPC1" | applied u64 | queues u32
//! per queue: group_len u16 | group | topic_len u16 | topic | queue u32 |
//!            next u64 (u64::MAX: none) | attempt_len u16 | attempt |
//!            attempt_n u32 | attempt_n × offset u64 |
//!            leases u32 | leases × (offset u64, pop_time i64,
//!                                   visible_at i64, attempts u32)
//! crc32 u32 of everything before it
//! ```
//!
//! A checkpoint covers only ops that are durable in the log: `applied` is
//! taken with the snapshot, and the file is written only once the log is
//! flushed past the record at `applied - 1` — otherwise a crash could lose
//! log records the snapshot counts, and ops written after the restart
//! would get op-queue offsets below `applied` and be skipped by the next
//! replay. The op records from `applied` on are pinned against retention
//! ([`crate::store::Pin::Pop`]).

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::store::record::{check_record, RecordCheck};
use crate::store::{LogOffset, PhysicalOffset, Pin};

use super::oplog::{Op, POP_TOPIC};
use super::state::{Lease, PopQueue, Tables};
use super::Shard;

const MAGIC: &[u8; 8] = b"SMQPOPC1";
const FILE: &str = "checkpoint";
/// Op records replayed per read.
const REPLAY_CHUNK: usize = 256;

/// Loads the checkpoint and replays the op log after it.
pub async fn recover(shard: &Rc<Shard>) -> Result<(), String> {
    let dir = shard.pops.dir.clone();
    let bytes = crate::runtime::blocking::run(move || load(&dir)).await?;
    let mut from = 0;
    if let Some(b) = bytes {
        let (applied, tables) = decode(&b).map_err(|e| format!("{}: {e}", path(&shard.pops.dir).display()))?;
        *shard.pops.st.borrow_mut() = tables;
        from = applied;
    }
    let end = shard.store.max_offset(POP_TOPIC, 0);
    let min = shard.store.min_offset(POP_TOPIC, 0);
    if from < min {
        log::warn!(
            "shard {}: pop op log starts at {min}, the checkpoint needs {from}: ops in between are lost",
            shard.id
        );
        from = min;
    }
    let mut at = from;
    let (mut replayed, mut bad) = (0u64, 0u64);
    while at < end {
        let entries = shard
            .store
            .queue_entries(POP_TOPIC, 0, at, REPLAY_CHUNK)
            .await
            .map_err(|e| e.to_string())?;
        if entries.is_empty() {
            break;
        }
        for e in &entries {
            let rec = shard
                .store
                .read_record_sized(PhysicalOffset::new(shard.id, LogOffset(e.pos)), e.size)
                .await
                .map_err(|e| e.to_string())?;
            let op = match rec.as_deref().map(|r| check_record(r, None, false)) {
                Some(RecordCheck::Record(v)) => Op::decode(v.body),
                _ => Err("record not readable".to_string()),
            };
            match op {
                Ok(op) => {
                    shard.pops.st.borrow_mut().apply(&op);
                    replayed += 1;
                }
                Err(why) => {
                    bad += 1;
                    log::error!("shard {}: pop op {at} skipped: {why}", shard.id);
                }
            }
            at += 1;
        }
    }
    shard.pops.applied.set(from);
    let st = shard.pops.st.borrow();
    log::info!(
        "shard {}: pop state recovered: {} queues, {} in flight, {replayed} ops replayed from {from}{}",
        shard.id,
        st.queues.len(),
        st.in_flight(),
        if bad > 0 {
            format!(", {bad} unreadable")
        } else {
            String::new()
        }
    );
    Ok(())
}

/// Writes a checkpoint of the current state if ops were applied since the
/// last one; moves the retention pin.
pub async fn checkpoint(shard: &Rc<Shard>) -> Result<(), String> {
    let (applied, bytes, dirty_at_snapshot) = {
        let st = shard.pops.st.borrow();
        if st.dirty == 0 {
            return Ok(());
        }
        let applied = shard.store.max_offset(POP_TOPIC, 0);
        (applied, encode(&st, applied), st.dirty)
    };
    // Only what is durable in the log may be counted (module docs).
    if applied > 0 {
        let last = shard
            .store
            .queue_entries(POP_TOPIC, 0, applied - 1, 1)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(e) = last.first() {
            let deadline = Instant::now() + Duration::from_secs(5);
            while shard.store.flushed_log_offset() < e.end() {
                if Instant::now() > deadline {
                    return Err("the op log was not flushed within 5 s; checkpoint skipped".into());
                }
                glommio::timer::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    let dir = shard.pops.dir.clone();
    crate::runtime::blocking::run(move || write(&dir, &bytes)).await?;
    {
        let mut st = shard.pops.st.borrow_mut();
        st.dirty = st.dirty.saturating_sub(dirty_at_snapshot);
    }
    shard.pops.applied.set(applied);
    // Replay needs the op records from `applied` on.
    let pin = if applied < shard.store.max_offset(POP_TOPIC, 0) {
        shard
            .store
            .queue_entries(POP_TOPIC, 0, applied, 1)
            .await
            .ok()
            .and_then(|v| v.first().map(|e| e.pos))
            .unwrap_or(u64::MAX)
    } else {
        u64::MAX
    };
    shard.store.pin_log(Pin::Pop, pin);
    Ok(())
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

pub fn encode(st: &Tables, applied: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + st.in_flight() * 28);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&applied.to_be_bytes());
    out.extend_from_slice(&(st.queues.len() as u32).to_be_bytes());
    for q in st.iter() {
        put_str(&mut out, &q.group);
        put_str(&mut out, &q.topic);
        out.extend_from_slice(&q.queue.to_be_bytes());
        out.extend_from_slice(&q.next.unwrap_or(u64::MAX).to_be_bytes());
        let (id, offs) = q
            .attempt
            .as_ref()
            .map_or(("", &[][..]), |(a, o)| (a.as_str(), o.as_slice()));
        put_str(&mut out, id);
        out.extend_from_slice(&(offs.len() as u32).to_be_bytes());
        for o in offs {
            out.extend_from_slice(&o.to_be_bytes());
        }
        out.extend_from_slice(&(q.leases.len() as u32).to_be_bytes());
        for (o, l) in &q.leases {
            out.extend_from_slice(&o.to_be_bytes());
            out.extend_from_slice(&l.pop_time.to_be_bytes());
            out.extend_from_slice(&l.visible_at.to_be_bytes());
            out.extend_from_slice(&l.attempts.to_be_bytes());
        }
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

pub fn decode(b: &[u8]) -> Result<(u64, Tables), String> {
    if b.len() < MAGIC.len() + 16 || &b[..8] != MAGIC {
        return Err("not a pop checkpoint".into());
    }
    let (body, crc) = b.split_at(b.len() - 4);
    if crc32fast::hash(body) != u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]) {
        return Err("pop checkpoint fails its CRC".into());
    }
    let mut r = Cursor { b: body, at: 8 };
    let applied = r.u64()?;
    let n = r.u32()?;
    let mut t = Tables::default();
    for _ in 0..n {
        let group = r.str()?;
        let topic = r.str()?;
        let queue = r.u32()?;
        let next = r.u64()?;
        let attempt_id = r.str()?;
        let an = r.u32()? as usize;
        r.need(an.saturating_mul(8))?;
        let attempt_offs = (0..an).map(|_| r.u64()).collect::<Result<Vec<_>, _>>()?;
        let ln = r.u32()? as usize;
        r.need(ln.saturating_mul(28))?;
        let mut leases = Vec::with_capacity(ln);
        for _ in 0..ln {
            let off = r.u64()?;
            let lease = Lease {
                pop_time: r.u64()? as i64,
                visible_at: r.u64()? as i64,
                attempts: r.u32()?,
            };
            leases.push((off, lease));
        }
        let q = PopQueue {
            next: (next != u64::MAX).then_some(next),
            attempt: (!attempt_id.is_empty()).then_some((attempt_id, attempt_offs)),
            ..Default::default()
        };
        t.restore(&group, &topic, queue, q, leases)
            .ok_or_else(|| "pop checkpoint holds more queues than allowed".to_string())?;
    }
    if r.at != body.len() {
        return Err("pop checkpoint has trailing bytes".into());
    }
    t.dirty = 0;
    Ok((applied, t))
}

struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn need(&self, n: usize) -> Result<(), String> {
        if self.b.len() - self.at < n {
            return Err("pop checkpoint truncated".into());
        }
        Ok(())
    }
    fn u32(&mut self) -> Result<u32, String> {
        self.need(4)?;
        let v = u32::from_be_bytes([
            self.b[self.at],
            self.b[self.at + 1],
            self.b[self.at + 2],
            self.b[self.at + 3],
        ]);
        self.at += 4;
        Ok(v)
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(((self.u32()? as u64) << 32) | self.u32()? as u64)
    }
    fn str(&mut self) -> Result<String, String> {
        self.need(2)?;
        let n = u16::from_be_bytes([self.b[self.at], self.b[self.at + 1]]) as usize;
        self.at += 2;
        self.need(n)?;
        let s = std::str::from_utf8(&self.b[self.at..self.at + n]).map_err(|_| "name is not UTF-8".to_string())?;
        self.at += n;
        Ok(s.to_string())
    }
}

fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// Blocking: the checkpoint's bytes, if there is one.
fn load(dir: &Path) -> Result<Option<Vec<u8>>, String> {
    match std::fs::read(path(dir)) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path(dir).display())),
    }
}

/// Blocking: writes the checkpoint atomically and durably.
fn write(dir: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    crate::broker::metadata::write_atomically(dir, FILE, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_round_trips_and_damage_is_refused() {
        let mut t = Tables::default();
        t.apply(&Op::Pop {
            group: "G".into(),
            topic: "T".into(),
            queue: 2,
            pop_time: 10,
            visible_at: 1010,
            next: 7,
            attempt_id: "x".into(),
            offsets: vec![(3, 0), (5, 0)],
        });
        t.apply(&Op::Pop {
            group: "H".into(),
            topic: "T".into(),
            queue: 0,
            pop_time: 11,
            visible_at: 2011,
            next: 1,
            attempt_id: String::new(),
            offsets: vec![(0, 0)],
        });
        let b = encode(&t, 42);
        let (applied, back) = decode(&b).expect("decodes");
        assert_eq!(applied, 42);
        assert_eq!(back.in_flight(), 3);
        assert_eq!(back.next_expiry(), Some(1010));
        let i = back.find("G", "T", 2).expect("queue");
        assert_eq!(back.queue(i).next, Some(7));
        assert_eq!(back.queue(i).attempt, Some(("x".to_string(), vec![3, 5])));
        assert_eq!(back.queue(i).leases[&5].visible_at, 1010);
        for cut in [0, 8, b.len() / 2, b.len() - 1] {
            assert!(decode(&b[..cut]).is_err(), "cut at {cut}");
        }
        let mut flipped = b.clone();
        flipped[20] ^= 1;
        assert!(decode(&flipped).is_err());
    }
}
