//! Child process of the kill -9 durability test (`tests/store_kill9.rs`)
//! and of `scripts/soak-store.sh`.
//!
//! Opens a shard store with SYNC_FLUSH in `--dir`, runs `--tasks`
//! concurrent appenders, and prints one line per acknowledged append:
//!
//! ```text
//! A <queue id> <queue offset> <crc32 of body> <run> <task> <seq>
//! ```
//!
//! only after `put` returned Ok, i.e. after the record is durable. The
//! parent kills it with SIGKILL at a random moment, then runs it again
//! with `--verify <acks file>`: that recovers the store and checks that
//! every acknowledged record is there, intact (CRC), in per-task order,
//! and that no message appears twice. Bodies are `run:task:seq:` plus
//! pseudo-random filler of pseudo-random length.

use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use shardmq::store::record::localhost;
use shardmq::store::{FlushMode, MessageInput, MessageStore, PutStatus, StoreConfig};

/// The store settings the parent uses to verify, too.
fn torture_config(dir: &std::path::Path) -> StoreConfig {
    let mut c = StoreConfig::new(dir, 3, localhost(10911));
    c.flush_mode = FlushMode::Sync;
    c.segment_size = 256 * 1024;
    c.max_record_size = 16 * 1024;
    c.tail_cache_bytes = 2 << 20;
    c.cq_entries_per_file = 512;
    c.checkpoint_interval = Duration::from_millis(40);
    c
}

struct Args {
    dir: std::path::PathBuf,
    tasks: usize,
    queues: u32,
    run: u64,
    verify: Option<std::path::PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        dir: ".".into(),
        tasks: 8,
        queues: 4,
        run: 0,
        verify: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().ok_or_else(|| format!("{k} needs a value"))?;
        match k.as_str() {
            "--dir" => a.dir = v.into(),
            "--tasks" => a.tasks = v.parse().map_err(|e| format!("--tasks: {e}"))?,
            "--queues" => a.queues = v.parse().map_err(|e| format!("--queues: {e}"))?,
            "--run" => a.run = v.parse().map_err(|e| format!("--run: {e}"))?,
            "--verify" => a.verify = Some(v.into()),
            _ => return Err(format!("unknown flag {k}")),
        }
    }
    Ok(a)
}

/// xorshift64*: deterministic filler without a dependency.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("store_torture: {e}");
            std::process::exit(2);
        }
    };
    if let Some(acks) = args.verify.clone() {
        let code = shardmq::runtime::run_on_executor("verify", move || async move {
            match verify(&args, &acks).await {
                Ok(summary) => {
                    println!("{summary}");
                    0
                }
                Err(e) => {
                    eprintln!("store_torture: VERIFY FAILED: {e}");
                    1
                }
            }
        });
        std::process::exit(code);
    }
    shardmq::runtime::run_on_executor("torture", move || async move {
        let (store, _) = match MessageStore::open(torture_config(&args.dir)).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("store_torture: open: {e}");
                std::process::exit(1);
            }
        };
        println!("READY");
        let mut tasks = Vec::new();
        for t in 0..args.tasks {
            let store = store.clone();
            let (run, queues) = (args.run, args.queues);
            tasks.push(glommio::spawn_local(async move {
                let mut rng = (run + 1) * 0x9E37_79B9 + t as u64 * 0x1234_5677 + 1;
                let qid = t as u32 % queues;
                for seq in 0u64.. {
                    let mut body = format!("{run}:{t}:{seq}:").into_bytes();
                    let len = 16 + (next(&mut rng) % 3000) as usize;
                    while body.len() < len {
                        body.push(b'a' + (next(&mut rng) % 26) as u8);
                    }
                    let crc = crc32fast::hash(&body);
                    let msg = MessageInput {
                        topic: "Torture".into(),
                        queue_id: qid,
                        flag: 0,
                        body: Bytes::from(body),
                        properties: Bytes::from_static(b"WAIT\x01true\x02"),
                        sys_flag: 0,
                        born_timestamp: 0,
                        born_host: localhost(1),
                        reconsume_times: 0,
                        prepared_transaction_offset: 0,
                        tags_code: 0,
                        mark: None,
                    };
                    let r = store.put(msg).await;
                    match r.status {
                        PutStatus::Ok => {
                            let mut out = std::io::stdout().lock();
                            let _ = writeln!(out, "A {qid} {} {crc} {run} {t} {seq}", r.queue_offset);
                        }
                        PutStatus::Busy => glommio::timer::sleep(Duration::from_millis(1)).await,
                        other => {
                            eprintln!("store_torture: put failed: {other:?}");
                            std::process::exit(1);
                        }
                    }
                }
            }));
        }
        for t in tasks {
            t.await;
        }
    });
}

/// (run, task, seq): who wrote a message.
type MsgId = (u64, u64, u64);

/// One acknowledged append, as printed by the writer.
struct Ack {
    qid: u32,
    offset: u64,
    crc: u32,
    id: MsgId,
}

fn parse_ack(line: &str) -> Option<Ack> {
    let f: Vec<&str> = line.split(' ').collect();
    if f.len() != 7 || f[0] != "A" {
        return None;
    }
    Some(Ack {
        qid: f[1].parse().ok()?,
        offset: f[2].parse().ok()?,
        crc: f[3].parse().ok()?,
        id: (f[4].parse().ok()?, f[5].parse().ok()?, f[6].parse().ok()?),
    })
}

/// Parses `run:task:seq:` at the start of a body.
fn body_id(body: &[u8]) -> Option<MsgId> {
    let s = std::str::from_utf8(body.get(..body.len().min(64))?).ok()?;
    let mut it = s.split(':');
    Some((
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
    ))
}

async fn verify(args: &Args, acks_file: &std::path::Path) -> Result<String, String> {
    use shardmq::store::record::{check_record, RecordCheck};
    use shardmq::store::{GetStatus, TagFilter};
    use std::collections::{HashMap, HashSet};

    let text = std::fs::read_to_string(acks_file).map_err(|e| format!("read {}: {e}", acks_file.display()))?;
    let acks: Vec<Ack> = text.lines().filter_map(parse_ack).collect();
    let (store, report) = MessageStore::open(torture_config(&args.dir))
        .await
        .map_err(|e| format!("open: {e}"))?;
    if let Some(stop) = &report.stop {
        if stop.kind == shardmq::store::recovery::StopKind::MidLogCorruption {
            return Err(format!("recovery found corruption: {stop:?}"));
        }
    }
    // queue -> records in offset order: (crc, message id)
    type Stored = Vec<(u32, MsgId)>;
    let mut stored: HashMap<u32, Stored> = HashMap::new();
    let mut seen = HashSet::new();
    let mut last_seq: HashMap<(u64, u64), u64> = HashMap::new();
    for qid in 0..args.queues {
        let (min, max) = store.offsets("Torture", qid).unwrap_or((0, 0));
        if min != 0 {
            return Err(format!("queue {qid} min offset {min}, expected 0"));
        }
        let mut off = 0;
        let list = stored.entry(qid).or_default();
        while off < max {
            let r = store
                .get_messages("Torture", qid, off, 32, 1 << 20, &TagFilter::All)
                .await
                .map_err(|e| format!("read queue {qid} at {off}: {e}"))?;
            if r.status != GetStatus::Found {
                return Err(format!("queue {qid} offset {off}: {:?}", r.status));
            }
            let mut at = 0;
            while at < r.body.len() {
                let RecordCheck::Record(v) = check_record(&r.body[at..], None, true) else {
                    return Err(format!("queue {qid}: undecodable record near offset {off}"));
                };
                if v.queue_offset != list.len() as u64 {
                    return Err(format!(
                        "queue {qid}: record says offset {}, expected {}",
                        v.queue_offset,
                        list.len()
                    ));
                }
                let id = body_id(v.body).ok_or(format!("queue {qid} offset {}: unparsable body", v.queue_offset))?;
                if !seen.insert(id) {
                    return Err(format!(
                        "message {id:?} stored twice (queue {qid} offset {})",
                        v.queue_offset
                    ));
                }
                let key = (id.0, id.1);
                if let Some(prev) = last_seq.insert(key, id.2) {
                    if id.2 <= prev {
                        return Err(format!(
                            "run {} task {}: seq {} after {prev}: out of order",
                            id.0, id.1, id.2
                        ));
                    }
                }
                list.push((crc32fast::hash(v.body), id));
                at += v.total_size as usize;
            }
            off = r.next_offset;
        }
    }
    for a in &acks {
        let Some(&(crc, id)) = stored.get(&a.qid).and_then(|l| l.get(a.offset as usize)) else {
            return Err(format!(
                "acknowledged message {:?} at queue {} offset {} is LOST",
                a.id, a.qid, a.offset
            ));
        };
        if crc != a.crc || id != a.id {
            return Err(format!(
                "queue {} offset {}: acknowledged {:?} crc {}, found {:?} crc {}",
                a.qid, a.offset, a.id, a.crc, id, crc
            ));
        }
    }
    let total: usize = stored.values().map(|l| l.len()).sum();
    Ok(format!(
        "OK acked={} stored={} recovered_records={}",
        acks.len(),
        total,
        report.records
    ))
}
