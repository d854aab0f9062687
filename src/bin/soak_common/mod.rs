//! What the soak binaries (`soak_ha`, `soak_failover`) share: their
//! seeded random numbers and the full read of a topic they end with.
//! (A directory without `main.rs`: cargo does not take it for a binary.)

use shardmq::admin::client::{req, Client};
use shardmq::protocol::codes::{request, response};
use shardmq::store::record::{check_record, RecordCheck, RecordView};

/// xorshift64*: reproducible from `--seed`.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Every record of `topic`'s queues `0..queues` on the broker at `addr`,
/// pulled as the admin tools do (their group, subscription `*`), each
/// given to `f` with its queue.
pub fn for_each_record(
    addr: &str,
    topic: &str,
    queues: u32,
    mut f: impl FnMut(u32, &RecordView<'_>) -> Result<(), String>,
) -> Result<(), String> {
    let mut c = Client::connect(addr)?;
    for q in 0..queues {
        let mut offset = 0u64;
        loop {
            let r = c.call(shardmq::admin::dlq::pull(topic, q, offset))?;
            if r.code != response::SUCCESS {
                break;
            }
            let mut at = 0;
            let mut last = None;
            while at < r.body.len() {
                match check_record(&r.body[at..], None, true) {
                    RecordCheck::Record(v) => {
                        f(q, &v)?;
                        last = Some(v.queue_offset);
                        at += v.total_size as usize;
                    }
                    other => return Err(format!("{addr}: undecodable record in a pull of queue {q}: {other:?}")),
                }
            }
            match last {
                Some(o) => offset = o + 1,
                None => break,
            }
        }
    }
    Ok(())
}

/// The max offset of each of `topic`'s queues `0..queues` on `addr`.
pub fn max_offsets(addr: &str, topic: &str, queues: u32) -> Result<Vec<u64>, String> {
    let mut c = Client::connect(addr)?;
    (0..queues)
        .map(|q| {
            let r = c.call(req(
                request::GET_MAX_OFFSET,
                &[("topic", topic.into()), ("queueId", q.to_string())],
            ))?;
            Ok(r.ext_str("offset").and_then(|o| o.parse().ok()).unwrap_or(0))
        })
        .collect()
}
