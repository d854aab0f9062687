//! `timers` and `send-back`: the broker's scheduled delivery and its
//! retry path under load, through real sockets (blocking clients, one
//! thread per connection, pipelined requests).
//!
//! * `timers` schedules N messages with `TIMER_DELIVER_MS` spread evenly
//!   over `[start + lead, start + lead + spread]`, then pulls them back (one
//!   long-polling puller per queue) and reports, per message, how late it
//!   was made visible (its store timestamp − due time) and how late it was
//!   received (receipt − due time), as p50 / p99 / p999 / max, plus how many
//!   were early (must be 0) and the broker's RSS with `--broker-pid`.
//! * `send-back` stores N messages, reads their physical offsets back, then
//!   sends CONSUMER_SEND_MSG_BACK for each (delay level -1: straight to the
//!   DLQ; 0: a scheduled retry) and reports the rate and latency.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use shardmq::admin::client::{req, Client};
use shardmq::protocol::codes::{request, response};
use shardmq::protocol::RemotingCommand;
use shardmq::store::record::{check_record, property_of, RecordCheck};

#[derive(clap::Args, Debug)]
pub struct TimerArgs {
    /// Broker address (main port: global queue ids).
    #[arg(long, default_value = "127.0.0.1:10911")]
    broker: String,
    #[arg(long, default_value = "BenchTimers")]
    topic: String,
    #[arg(long, default_value_t = 8)]
    queues: u32,
    #[arg(long, default_value_t = 1_000_000)]
    messages: u64,
    /// Body bytes.
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// Seconds from the start to the first due time (scheduling must finish
    /// before it).
    #[arg(long, default_value_t = 60.0)]
    lead: f64,
    /// Seconds over which the due times are spread.
    #[arg(long, default_value_t = 60.0)]
    spread: f64,
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Requests in flight per connection.
    #[arg(long, default_value_t = 64)]
    window: usize,
    /// The broker's pid: its RSS is sampled (VmRSS, VmHWM).
    #[arg(long)]
    broker_pid: Option<u32>,
    /// Stop after scheduling (memory with many timers pending).
    #[arg(long)]
    schedule_only: bool,
}

#[derive(clap::Args, Debug)]
pub struct SendBackArgs {
    #[arg(long, default_value = "127.0.0.1:10911")]
    broker: String,
    #[arg(long, default_value = "BenchSendBack")]
    topic: String,
    #[arg(long, default_value_t = 8)]
    queues: u32,
    #[arg(long, default_value_t = 100_000)]
    messages: u64,
    #[arg(long, default_value_t = 1024)]
    size: usize,
    #[arg(long, default_value_t = 8)]
    connections: usize,
    #[arg(long, default_value_t = 32)]
    window: usize,
    /// -1: to the DLQ at once; 0: retry at level 3 (scheduled).
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    delay_level: i32,
    #[arg(long, default_value = "BenchSendBackGroup")]
    group: String,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn connect(addr: &str) -> Result<Client, String> {
    let c = Client::connect(addr)?;
    c.set_read_timeout(Duration::from_secs(60));
    Ok(c)
}

fn create_topic(addr: &str, topic: &str, queues: u32) -> Result<(), String> {
    let mut c = connect(addr)?;
    let r = c.call(req(
        request::UPDATE_AND_CREATE_TOPIC,
        &[
            ("topic", topic.into()),
            ("defaultTopic", "TBW102".into()),
            ("readQueueNums", queues.to_string()),
            ("writeQueueNums", queues.to_string()),
            ("perm", "6".into()),
            ("topicFilterType", "SINGLE_TAG".into()),
            ("topicSysFlag", "0".into()),
            ("order", "false".into()),
        ],
    ))?;
    if r.code != response::SUCCESS {
        return Err(format!("create {topic}: {}", r.remark.unwrap_or_default()));
    }
    Ok(())
}

fn send_req(topic: &str, qid: u32, body: &[u8], props: String) -> RemotingCommand {
    let mut r = req(
        request::SEND_MESSAGE_V2,
        &[
            ("a", "bench-timers".into()),
            ("b", topic.into()),
            ("c", "TBW102".into()),
            ("d", "4".into()),
            ("e", qid.to_string()),
            ("f", "0".into()),
            ("g", now_ms().to_string()),
            ("h", "0".into()),
            ("i", props),
        ],
    );
    r.body = bytes::Bytes::copy_from_slice(body);
    r
}

/// SYSTEM_BUSY answers re-sent (all connections of the process).
static BUSY: AtomicU64 = AtomicU64::new(0);

/// Runs `make(i)` for i in `from..to` on one connection with `window`
/// requests in flight; each reply must be SUCCESS (SYSTEM_BUSY is re-sent
/// after 10 ms and counted in [`BUSY`]). Returns the latency of every
/// request in µs, from its first send.
fn pipelined(
    addr: &str,
    from: u64,
    to: u64,
    window: usize,
    make: impl Fn(u64) -> RemotingCommand,
) -> Result<Histogram<u64>, String> {
    let mut c = connect(addr)?;
    let busy = &BUSY;
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())?;
    let mut sent_at = std::collections::HashMap::new();
    let mut next = from;
    while next < to || !sent_at.is_empty() {
        while next < to && sent_at.len() < window {
            let opaque = c.send(make(next))?;
            sent_at.insert(opaque, (next, Instant::now()));
            next += 1;
        }
        let Some(r) = c.recv()? else {
            return Err(format!("{addr} closed the connection"));
        };
        let Some((i, t)) = sent_at.remove(&r.opaque) else {
            continue;
        };
        if r.code == response::SYSTEM_BUSY {
            // Flow control (Apache's TIMEOUT_CLEAN_QUEUE, a full tail
            // cache): send it again a little later, as clients retry.
            busy.fetch_add(1, Relaxed);
            std::thread::sleep(Duration::from_millis(10));
            let opaque = c.send(make(i))?;
            sent_at.insert(opaque, (i, t));
            continue;
        }
        if r.code != response::SUCCESS {
            return Err(format!("{addr}: code {} {}", r.code, r.remark.unwrap_or_default()));
        }
        let _ = hist.record(t.elapsed().as_micros().max(1) as u64);
    }
    Ok(hist)
}

fn spread_over<F>(n: u64, threads: usize, f: F) -> Result<Histogram<u64>, String>
where
    F: Fn(u64, u64) -> Result<Histogram<u64>, String> + Sync,
{
    let threads = threads.max(1) as u64;
    let per = n.div_ceil(threads);
    let results: Vec<Result<Histogram<u64>, String>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                let f = &f;
                s.spawn(move || f(t * per, ((t + 1) * per).min(n)))
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("a thread panicked".into())))
            .collect()
    });
    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())?;
    for r in results {
        all.add(r?).map_err(|e| e.to_string())?;
    }
    Ok(all)
}

fn rss(pid: Option<u32>) -> String {
    let Some(pid) = pid else { return String::new() };
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return String::new();
    };
    let get = |k: &str| {
        s.lines()
            .find(|l| l.starts_with(k))
            .map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_string())
            .unwrap_or_default()
    };
    format!(", broker VmRSS {} KiB, VmHWM {} KiB", get("VmRSS:"), get("VmHWM:"))
}

fn pcts(h: &Histogram<u64>, unit: &str) -> String {
    format!(
        "p50 {} {unit}, p99 {} {unit}, p999 {} {unit}, max {} {unit}",
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max()
    )
}

pub fn timers(a: TimerArgs) -> Result<(), String> {
    create_topic(&a.broker, &a.topic, a.queues)?;
    let start = now_ms();
    let first_due = start + (a.lead * 1000.0) as i64;
    let spread_ms = (a.spread * 1000.0) as i64;
    let n = a.messages;
    let body = vec![b'x'; a.size];
    let t0 = Instant::now();
    let h = spread_over(n, a.connections, |from, to| {
        pipelined(&a.broker, from, to, a.window, |i| {
            let due = first_due + (spread_ms as i128 * i as i128 / n.max(1) as i128) as i64;
            let props = format!("TIMER_DELIVER_MS\x01{due}\x02bench_due\x01{due}\x02");
            send_req(&a.topic, (i % a.queues as u64) as u32, &body, props)
        })
    })?;
    let took = t0.elapsed().as_secs_f64();
    println!(
        "scheduled {n} messages in {took:.1} s ({:.0}/s, {} SYSTEM_BUSY re-sent), send latency {}{}",
        n as f64 / took,
        BUSY.load(Relaxed),
        pcts(&h, "us"),
        rss(a.broker_pid)
    );
    if a.schedule_only {
        return Ok(());
    }
    if now_ms() > first_due {
        println!(
            "WARNING: scheduling ended {} ms after the first due time; raise --lead",
            now_ms() - first_due
        );
    }
    let stored = Mutex::new(Histogram::<u64>::new_with_bounds(1, 3_600_000, 3).map_err(|e| e.to_string())?);
    let received = Mutex::new(Histogram::<u64>::new_with_bounds(1, 3_600_000, 3).map_err(|e| e.to_string())?);
    let early = AtomicU64::new(0);
    let got = AtomicU64::new(0);
    let deadline = Instant::now() + Duration::from_millis((first_due + spread_ms - now_ms()).max(0) as u64 + 120_000);
    let peak_rss = Arc::new(Mutex::new(String::new()));
    std::thread::scope(|s| -> Result<(), String> {
        let sampler = {
            let peak = peak_rss.clone();
            let got = &got;
            s.spawn(move || {
                while got.load(Relaxed) < n && Instant::now() < deadline {
                    *peak.lock().unwrap_or_else(|e| e.into_inner()) = rss(a.broker_pid);
                    std::thread::sleep(Duration::from_secs(1));
                }
            })
        };
        let pullers: Vec<_> = (0..a.queues)
            .map(|q| {
                let (stored, received, early, got, a) = (&stored, &received, &early, &got, &a);
                s.spawn(move || -> Result<(), String> {
                    let mut c = connect(&a.broker)?;
                    let mut off = 0u64;
                    while got.load(Relaxed) < n && Instant::now() < deadline {
                        let r = c.call(pull(&a.topic, q, off))?;
                        if r.code != response::SUCCESS {
                            if let Some(next) = r.ext_str("nextBeginOffset").and_then(|o| o.parse().ok()) {
                                off = next;
                            }
                            continue;
                        }
                        let now = now_ms();
                        let mut at = 0;
                        let (mut st, mut rc) = (Vec::new(), Vec::new());
                        while at < r.body.len() {
                            let RecordCheck::Record(v) = check_record(&r.body[at..], None, false) else {
                                return Err("an undecodable record".into());
                            };
                            let due: i64 = property_of(v.properties, b"bench_due")
                                .and_then(|d| std::str::from_utf8(d).ok())
                                .and_then(|d| d.parse().ok())
                                .ok_or("a message without bench_due")?;
                            if v.store_timestamp < due {
                                early.fetch_add(1, Relaxed);
                            }
                            st.push((v.store_timestamp - due).max(0) as u64);
                            rc.push((now - due).max(0) as u64);
                            off = v.queue_offset + 1;
                            at += v.total_size as usize;
                        }
                        got.fetch_add(st.len() as u64, Relaxed);
                        let mut sh = stored.lock().unwrap_or_else(|e| e.into_inner());
                        st.into_iter().for_each(|v| {
                            let _ = sh.record(v.max(1));
                        });
                        drop(sh);
                        let mut rh = received.lock().unwrap_or_else(|e| e.into_inner());
                        rc.into_iter().for_each(|v| {
                            let _ = rh.record(v.max(1));
                        });
                    }
                    Ok(())
                })
            })
            .collect();
        for p in pullers {
            p.join().unwrap_or_else(|_| Err("a puller panicked".into()))?;
        }
        let _ = sampler.join();
        Ok(())
    })?;
    let stored = stored.into_inner().unwrap_or_else(|e| e.into_inner());
    let received = received.into_inner().unwrap_or_else(|e| e.into_inner());
    println!(
        "delivered {} of {n}; early {} (store time before due)",
        got.load(Relaxed),
        early.load(Relaxed)
    );
    println!(
        "lateness, visible (store time - due; 1 = on time to the ms): {}",
        pcts(&stored, "ms")
    );
    println!("lateness, received (receipt - due): {}", pcts(&received, "ms"));
    println!(
        "broker memory during delivery{}",
        peak_rss.lock().unwrap_or_else(|e| e.into_inner())
    );
    if got.load(Relaxed) < n || early.load(Relaxed) > 0 {
        return Err("not every message was delivered on time".into());
    }
    Ok(())
}

fn pull(topic: &str, qid: u32, offset: u64) -> RemotingCommand {
    req(
        request::PULL_MESSAGE,
        &[
            ("consumerGroup", "bench-timers".into()),
            ("topic", topic.into()),
            ("queueId", qid.to_string()),
            ("queueOffset", offset.to_string()),
            ("maxMsgNums", "32".into()),
            ("sysFlag", "6".into()),
            ("commitOffset", "0".into()),
            ("suspendTimeoutMillis", "5000".into()),
            ("subscription", "*".into()),
            ("subVersion", "0".into()),
        ],
    )
}

pub fn send_back(a: SendBackArgs) -> Result<(), String> {
    create_topic(&a.broker, &a.topic, a.queues)?;
    let n = a.messages;
    let body = vec![b'x'; a.size];
    let t0 = Instant::now();
    spread_over(n, a.connections, |from, to| {
        pipelined(&a.broker, from, to, a.window, |i| {
            send_req(&a.topic, (i % a.queues as u64) as u32, &body, String::new())
        })
    })?;
    println!("stored {n} messages in {:.1} s", t0.elapsed().as_secs_f64());
    // The physical offsets, read back like a consumer.
    let mut offsets = Vec::with_capacity(n as usize);
    let mut c = connect(&a.broker)?;
    for q in 0..a.queues {
        let mut off = 0;
        loop {
            let mut p = pull(&a.topic, q, off);
            p.ext_fields.insert("sysFlag", "4");
            let r = c.call(p)?;
            if r.code != response::SUCCESS {
                break;
            }
            let mut at = 0;
            while at < r.body.len() {
                let RecordCheck::Record(v) = check_record(&r.body[at..], None, false) else {
                    return Err("an undecodable record".into());
                };
                offsets.push(v.physical_offset);
                off = v.queue_offset + 1;
                at += v.total_size as usize;
            }
        }
    }
    let distinct: BTreeSet<u64> = offsets.iter().copied().collect();
    if distinct.len() as u64 != n {
        return Err(format!("read back {} of {n} messages", distinct.len()));
    }
    let t0 = Instant::now();
    let h = spread_over(n, a.connections, |from, to| {
        pipelined(&a.broker, from, to, a.window, |i| {
            let mut r = req(
                request::CONSUMER_SEND_MSG_BACK,
                &[
                    ("offset", offsets[i as usize].to_string()),
                    ("group", a.group.clone()),
                    ("delayLevel", a.delay_level.to_string()),
                    ("originMsgId", String::new()),
                    ("originTopic", a.topic.clone()),
                    ("unitMode", "false".into()),
                    ("maxReconsumeTimes", "16".into()),
                ],
            );
            r.version = 399;
            r
        })
    })?;
    let took = t0.elapsed().as_secs_f64();
    println!(
        "send-back (delayLevel {}): {n} in {took:.2} s = {:.0}/s; latency {}; {} SYSTEM_BUSY re-sent in the whole run",
        a.delay_level,
        n as f64 / took,
        pcts(&h, "us"),
        BUSY.load(Relaxed)
    );
    Ok(())
}
