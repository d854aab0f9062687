//! `pop`: invisible-time consumption (POP) under load, through real
//! sockets, against any broker that speaks the 5.x remoting POP codes
//! (shardmq, Apache RocketMQ 5.x). Consumes a backlog (fill it first with
//! `shardmq-bench produce --messages N`): `connections` blocking clients,
//! spread over the route's broker entries, each popping up to `batch`
//! messages from any queue of its entry (queue id −1), then acknowledging
//! them — one ACK_MESSAGE per message, pipelined, as the Java 5.x push
//! consumer does (`--ack single`), or one BATCH_ACK_MESSAGE per pop
//! (`--ack batch`). Reports received+acknowledged messages per second and
//! the latency of pops and acks (p50 / p99 / p999 / max).
//!
//! Before it pops, the group is switched to POP mode on every entry
//! (SET_MESSAGE_REQUEST_MODE), which Apache needs for its pop path.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use shardmq::admin::client::{req, Client};
use shardmq::protocol::codes::{request, response};
use shardmq::protocol::RemotingCommand;
use shardmq::store::record::{check_record, RecordCheck};

use crate::net::setup;

#[derive(clap::Args, Debug)]
pub struct PopArgs {
    #[arg(long, default_value = "127.0.0.1:9876")]
    namesrv: String,
    #[arg(long, default_value = "BenchTopic")]
    topic: String,
    #[arg(long, default_value = "bench_pop")]
    group: String,
    /// Stop after this many messages were received and acknowledged.
    #[arg(long, default_value_t = 1_000_000)]
    messages: u64,
    /// Stop after this many seconds at most.
    #[arg(long, default_value_t = 120)]
    duration: u64,
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Messages per pop (at most 32).
    #[arg(long, default_value_t = 32)]
    batch: u32,
    #[arg(long, default_value_t = 60_000)]
    invisible_ms: i64,
    /// `single` (one ACK_MESSAGE per message, pipelined), `batch`, or
    /// `none` (hold every message in flight: the broker's memory per lease).
    #[arg(long, default_value = "single")]
    ack: String,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

struct Shared {
    acked: AtomicU64,
    empty_pops: AtomicU64,
    stop: AtomicBool,
    pop_lat: Mutex<Histogram<u64>>,
    ack_lat: Mutex<Histogram<u64>>,
}

pub(crate) fn hist() -> Result<Histogram<u64>, String> {
    Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())
}

fn pcts(h: &Histogram<u64>) -> String {
    format!(
        "p50 {:.2} ms, p99 {:.2} ms, p999 {:.2} ms, max {:.2} ms ({} samples)",
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.value_at_quantile(0.999) as f64 / 1000.0,
        h.max() as f64 / 1000.0,
        h.len()
    )
}

/// (queue id, queue offset) of each record of a pop reply.
fn popped(body: &[u8]) -> Vec<(u32, u64)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < body.len() {
        let RecordCheck::Record(v) = check_record(&body[at..], None, false) else {
            break;
        };
        out.push((v.queue_id, v.queue_offset));
        at += v.total_size as usize;
    }
    out
}

fn set_pop_mode(addr: &str, topic: &str, group: &str) -> Result<(), String> {
    let mut c = Client::connect(addr)?;
    let mut cmd = req(request::SET_MESSAGE_REQUEST_MODE, &[]);
    cmd.body = bytes::Bytes::from(
        serde_json::json!({"topic": topic, "consumerGroup": group, "mode": "POP", "popShareQueueNum": 0})
            .to_string()
            .into_bytes(),
    );
    let r = c.call(cmd)?;
    if r.code != response::SUCCESS {
        return Err(format!(
            "SET_MESSAGE_REQUEST_MODE at {addr}: code {} {}",
            r.code,
            r.remark.unwrap_or_default()
        ));
    }
    Ok(())
}

pub fn run(a: PopArgs) -> Result<(), String> {
    if !["single", "batch", "none"].contains(&a.ack.as_str()) {
        return Err(format!("--ack {}: single, batch or none", a.ack));
    }
    let route = setup::route(&a.namesrv, &a.topic)?.ok_or_else(|| format!("topic {} has no route", a.topic))?;
    let mut entries: Vec<(String, String)> = setup::targets(&route, false)
        .into_iter()
        .map(|t| (t.broker, t.addr))
        .collect();
    entries.sort();
    entries.dedup();
    if entries.is_empty() {
        return Err("no readable broker entry".into());
    }
    for (_, addr) in &entries {
        set_pop_mode(addr, &a.topic, &a.group)?;
    }
    let shared = Arc::new(Shared {
        acked: AtomicU64::new(0),
        empty_pops: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        pop_lat: Mutex::new(hist()?),
        ack_lat: Mutex::new(hist()?),
    });
    let a = Arc::new(a);
    let t0 = Instant::now();
    let mut threads = Vec::new();
    for i in 0..a.connections {
        let (broker, addr) = entries[i % entries.len()].clone();
        let (a, shared) = (a.clone(), shared.clone());
        threads.push(std::thread::spawn(move || worker(&a, &shared, &broker, &addr)));
    }
    let deadline = t0 + Duration::from_secs(a.duration);
    let mut last = (Instant::now(), 0u64);
    let mut idle_since: Option<Instant> = None;
    while !shared.stop.load(Relaxed) {
        std::thread::sleep(Duration::from_millis(1000));
        let n = shared.acked.load(Relaxed);
        let rate = (n - last.1) as f64 / last.0.elapsed().as_secs_f64();
        println!("{:>6.1}s  done {n:>9}  {rate:>10.0} msgs/s", t0.elapsed().as_secs_f64());
        idle_since = if n == last.1 {
            idle_since.or(Some(Instant::now()))
        } else {
            None
        };
        last = (Instant::now(), n);
        if n >= a.messages
            || Instant::now() > deadline
            || idle_since.is_some_and(|t| t.elapsed() > Duration::from_secs(3))
        {
            shared.stop.store(true, Relaxed);
        }
    }
    let mut errors = Vec::new();
    for t in threads {
        match t.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => errors.push(e),
            Err(_) => errors.push("a worker panicked".into()),
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let n = shared.acked.load(Relaxed);
    println!(
        "pop ({} ack): {n} messages in {secs:.1} s = {:.0} msgs/s over {} connections, {} entries, batch {}",
        a.ack,
        n as f64 / secs,
        a.connections,
        entries.len(),
        a.batch
    );
    println!(
        "pop latency: {}",
        pcts(&*shared.pop_lat.lock().map_err(|_| "poisoned")?)
    );
    println!(
        "ack latency: {}",
        pcts(&*shared.ack_lat.lock().map_err(|_| "poisoned")?)
    );
    println!("empty pops: {}", shared.empty_pops.load(Relaxed));
    if let Some(e) = errors.first() {
        return Err(format!("{} worker(s) failed, first: {e}", errors.len()));
    }
    Ok(())
}

fn worker(a: &PopArgs, shared: &Shared, broker: &str, addr: &str) -> Result<(), String> {
    let mut c = Client::connect(addr)?;
    c.set_read_timeout(Duration::from_secs(30));
    let (mut pop_h, mut ack_h) = (hist()?, hist()?);
    let result = (|| {
        while !shared.stop.load(Relaxed) {
            let t = Instant::now();
            let r = c.call(req(
                request::POP_MESSAGE,
                &[
                    ("consumerGroup", a.group.clone()),
                    ("topic", a.topic.clone()),
                    ("queueId", "-1".into()),
                    ("maxMsgNums", a.batch.to_string()),
                    ("invisibleTime", a.invisible_ms.to_string()),
                    ("pollTime", "1000".into()),
                    ("bornTime", now_ms().to_string()),
                    ("initMode", "0".into()),
                ],
            ))?;
            let _ = pop_h.record(t.elapsed().as_micros().max(1) as u64);
            match r.code {
                response::SUCCESS => {}
                response::POLLING_TIMEOUT | response::PULL_NOT_FOUND | response::NO_MESSAGE => {
                    shared.empty_pops.fetch_add(1, Relaxed);
                    continue;
                }
                code => return Err(format!("{addr}: pop code {code} {}", r.remark.unwrap_or_default())),
            }
            let pop_time = r.ext_str("popTime").unwrap_or("0").to_string();
            let invisible = r.ext_str("invisibleTime").unwrap_or("0").to_string();
            let revive = r.ext_str("reviveQid").unwrap_or("0").to_string();
            let msgs = popped(&r.body);
            if msgs.is_empty() {
                return Err(format!("{addr}: pop SUCCESS without records"));
            }
            let t = Instant::now();
            if a.ack == "none" {
                // Held in flight until the invisible time is up.
            } else if a.ack == "batch" {
                ack_batch(&mut c, a, broker, &pop_time, &revive, &invisible, &msgs)?;
                let _ = ack_h.record(t.elapsed().as_micros().max(1) as u64);
            } else {
                ack_each(&mut c, a, broker, &pop_time, &revive, &invisible, &msgs, &mut ack_h)?;
            }
            shared.acked.fetch_add(msgs.len() as u64, Relaxed);
        }
        Ok(())
    })();
    if let Ok(mut h) = shared.pop_lat.lock() {
        let _ = h.add(&pop_h);
    }
    if let Ok(mut h) = shared.ack_lat.lock() {
        let _ = h.add(&ack_h);
    }
    if result.is_err() {
        shared.stop.store(true, Relaxed);
    }
    result
}

/// Every message's ACK_MESSAGE sent at once, then the answers read.
#[allow(clippy::too_many_arguments)]
fn ack_each(
    c: &mut Client,
    a: &PopArgs,
    broker: &str,
    pop_time: &str,
    revive: &str,
    invisible: &str,
    msgs: &[(u32, u64)],
    h: &mut Histogram<u64>,
) -> Result<(), String> {
    let mut sent: HashMap<i32, Instant> = HashMap::new();
    for (q, off) in msgs {
        let handle = format!("{off} {pop_time} {invisible} {revive} 0 {broker} {q} {off}");
        let cmd: RemotingCommand = req(
            request::ACK_MESSAGE,
            &[
                ("consumerGroup", a.group.clone()),
                ("topic", a.topic.clone()),
                ("queueId", q.to_string()),
                ("extraInfo", handle),
                ("offset", off.to_string()),
            ],
        );
        sent.insert(c.send(cmd)?, Instant::now());
    }
    while !sent.is_empty() {
        let Some(r) = c.recv()? else {
            return Err("the broker closed the connection".into());
        };
        let Some(t) = sent.remove(&r.opaque) else { continue };
        if r.code != response::SUCCESS {
            return Err(format!("ack code {} {}", r.code, r.remark.unwrap_or_default()));
        }
        let _ = h.record(t.elapsed().as_micros().max(1) as u64);
    }
    Ok(())
}

/// One BATCH_ACK_MESSAGE per (queue) of the pop.
fn ack_batch(
    c: &mut Client,
    a: &PopArgs,
    broker: &str,
    pop_time: &str,
    revive: &str,
    invisible: &str,
    msgs: &[(u32, u64)],
) -> Result<(), String> {
    use base64::Engine;
    let mut by_queue: HashMap<u32, Vec<u64>> = HashMap::new();
    for (q, off) in msgs {
        by_queue.entry(*q).or_default().push(*off);
    }
    let acks: Vec<serde_json::Value> = by_queue
        .iter()
        .map(|(q, offs)| {
            let so = offs.iter().copied().min().unwrap_or(0);
            let span = (offs.iter().copied().max().unwrap_or(0) - so) as usize + 1;
            let mut bits = vec![0u8; span.div_ceil(8)];
            for o in offs {
                let i = (o - so) as usize;
                bits[i / 8] |= 1 << (i % 8);
            }
            serde_json::json!({"c": a.group, "t": a.topic, "r": "0", "so": so, "q": q,
                "rq": revive.parse::<i64>().unwrap_or(0), "pt": pop_time.parse::<i64>().unwrap_or(0),
                "it": invisible.parse::<i64>().unwrap_or(0),
                "b": base64::engine::general_purpose::STANDARD.encode(&bits)})
        })
        .collect();
    let mut cmd = req(request::BATCH_ACK_MESSAGE, &[]);
    cmd.body = bytes::Bytes::from(
        serde_json::json!({"brokerName": broker, "acks": acks})
            .to_string()
            .into_bytes(),
    );
    let r = c.call(cmd)?;
    if r.code != response::SUCCESS {
        return Err(format!("batch ack code {} {}", r.code, r.remark.unwrap_or_default()));
    }
    Ok(())
}
