//! `rest`: the REST API under load, through real sockets (HTTP/1.1
//! keep-alive, one blocking client per connection, like most HTTP
//! producers). `--mode produce` POSTs batches of `--batch` messages of
//! `--size` bytes to `/v1/topics/{topic}/messages`; `--mode consume`
//! receives (`max=32`, long polling 1 s) and acknowledges every batch in one
//! ack request, until `--messages` were acknowledged or the backlog is
//! empty. Reports messages per second and request latency (p50 / p99 /
//! p999 / max); `--json FILE` writes the summary.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::pop::hist;

#[derive(clap::Args, Debug)]
pub struct RestArgs {
    /// The broker's REST port.
    #[arg(long, default_value = "http://127.0.0.1:8082")]
    url: String,
    #[arg(long, default_value = "BenchTopic")]
    topic: String,
    #[arg(long, default_value = "bench_rest")]
    group: String,
    /// `produce` or `consume`.
    #[arg(long, default_value = "produce")]
    mode: String,
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Body bytes per message.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Messages per produce request.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Measured seconds (after `--warmup`).
    #[arg(long, default_value_t = 10)]
    duration: u64,
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Consume: stop after this many messages.
    #[arg(long, default_value_t = u64::MAX)]
    messages: u64,
    #[arg(long)]
    json: Option<String>,
}

struct Shared {
    msgs: AtomicU64,
    errors: AtomicU64,
    measuring: AtomicBool,
    stop: AtomicBool,
    lat: Mutex<Histogram<u64>>,
    ack_lat: Mutex<Histogram<u64>>,
}

fn summary(h: &Histogram<u64>) -> Value {
    json!({
        "p50_us": h.value_at_quantile(0.5), "p99_us": h.value_at_quantile(0.99),
        "p999_us": h.value_at_quantile(0.999), "max_us": h.max(), "samples": h.len(),
    })
}

/// Adds a connection's histogram into the shared one.
fn merge(into: &Mutex<Histogram<u64>>, local: &Histogram<u64>) -> Result<(), String> {
    into.lock()
        .map_err(|e| e.to_string())?
        .add(local)
        .map_err(|e| e.to_string())
}

fn ms(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

fn post(agent: &ureq::Agent, url: &str, body: &str) -> Result<Value, String> {
    let r = agent
        .post(url)
        .set("content-type", "application/json")
        .send_string(body)
        .map_err(|e| e.to_string())?;
    let text = r.into_string().map_err(|e| e.to_string())?;
    serde_json::from_str(&text).map_err(|e| e.to_string())
}

fn produce(a: &RestArgs, sh: &Shared) -> Result<(), String> {
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build();
    let url = format!("{}/v1/topics/{}/messages", a.url, a.topic);
    let body_text = "x".repeat(a.size);
    let msgs: Vec<Value> = (0..a.batch).map(|_| json!({ "body": body_text })).collect();
    let body = json!({ "messages": msgs }).to_string();
    let mut local = hist()?;
    while !sh.stop.load(Relaxed) {
        let t = Instant::now();
        let ok = post(&agent, &url, &body).is_ok();
        let us = t.elapsed().as_micros() as u64;
        if sh.measuring.load(Relaxed) {
            if ok {
                sh.msgs.fetch_add(a.batch as u64, Relaxed);
                let _ = local.record(us.max(1));
            } else {
                sh.errors.fetch_add(1, Relaxed);
            }
        }
    }
    merge(&sh.lat, &local)
}

fn consume(a: &RestArgs, sh: &Shared) -> Result<(), String> {
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build();
    let get = format!(
        "{}/v1/topics/{}/groups/{}/messages?max=32&wait=1000",
        a.url, a.topic, a.group
    );
    let ack = format!("{}/v1/topics/{}/groups/{}/ack", a.url, a.topic, a.group);
    let (mut local, mut local_ack) = (hist()?, hist()?);
    let mut empty = 0;
    while !sh.stop.load(Relaxed) {
        let t = Instant::now();
        let got: Value = match agent.get(&get).call() {
            Ok(r) => r
                .into_string()
                .ok()
                .and_then(|s| serde_json::from_str(&s).ok())
                .unwrap_or_default(),
            Err(_) => {
                sh.errors.fetch_add(1, Relaxed);
                continue;
            }
        };
        let us = t.elapsed().as_micros() as u64;
        let msgs = got["messages"].as_array().cloned().unwrap_or_default();
        if msgs.is_empty() {
            empty += 1;
            if empty >= 3 {
                return merge(&sh.lat, &local);
            }
            continue;
        }
        empty = 0;
        let acks: Vec<Value> = msgs.iter().map(|m| json!({"handle": m["handle"]})).collect();
        let t = Instant::now();
        let ok = post(&agent, &ack, &json!({ "acks": acks }).to_string()).is_ok();
        let ack_us = t.elapsed().as_micros() as u64;
        if sh.measuring.load(Relaxed) {
            let _ = local.record(us.max(1));
            let _ = local_ack.record(ack_us.max(1));
        }
        if ok {
            if sh.msgs.fetch_add(msgs.len() as u64, Relaxed) + msgs.len() as u64 >= a.messages {
                sh.stop.store(true, Relaxed);
            }
        } else {
            sh.errors.fetch_add(1, Relaxed);
        }
    }
    merge(&sh.lat, &local)?;
    merge(&sh.ack_lat, &local_ack)
}

pub fn run(a: RestArgs) -> Result<(), String> {
    if a.mode != "produce" && a.mode != "consume" {
        return Err(format!("--mode {} is not produce or consume", a.mode));
    }
    let sh = Arc::new(Shared {
        msgs: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        // Consume measures from the start: the backlog is finite.
        measuring: AtomicBool::new(a.mode == "consume"),
        stop: AtomicBool::new(false),
        lat: Mutex::new(hist()?),
        ack_lat: Mutex::new(hist()?),
    });
    let a = Arc::new(a);
    let mut threads = Vec::new();
    for _ in 0..a.connections {
        let (a, sh) = (a.clone(), sh.clone());
        threads.push(std::thread::spawn(move || {
            let r = if a.mode == "produce" {
                produce(&a, &sh)
            } else {
                consume(&a, &sh)
            };
            if let Err(e) = r {
                eprintln!("rest bench connection: {e}");
            }
        }));
    }
    let started;
    if a.mode == "produce" {
        std::thread::sleep(Duration::from_secs(a.warmup));
        sh.msgs.store(0, Relaxed);
        sh.measuring.store(true, Relaxed);
        started = Instant::now();
        std::thread::sleep(Duration::from_secs(a.duration));
        sh.stop.store(true, Relaxed);
    } else {
        started = Instant::now();
        let end = started + Duration::from_secs(a.duration);
        while !sh.stop.load(Relaxed) && Instant::now() < end && threads.iter().any(|t| !t.is_finished()) {
            std::thread::sleep(Duration::from_millis(50));
        }
        sh.stop.store(true, Relaxed);
    }
    let secs = started.elapsed().as_secs_f64();
    for t in threads {
        let _ = t.join();
    }
    let n = sh.msgs.load(Relaxed);
    let lat = sh.lat.lock().map_err(|e| e.to_string())?.clone();
    let ack_lat = sh.ack_lat.lock().map_err(|e| e.to_string())?.clone();
    let rate = n as f64 / secs.max(1e-9);
    println!(
        "rest {}: {n} msgs in {secs:.1} s = {rate:.0} msgs/s ({:.1} MB/s), {} errors, {} connections, batch {}, {} B",
        a.mode,
        rate * a.size as f64 / 1e6,
        sh.errors.load(Relaxed),
        a.connections,
        a.batch,
        a.size
    );
    println!(
        "  {} latency: p50 {}, p99 {}, p999 {}, max {} ({} requests)",
        if a.mode == "produce" { "POST" } else { "receive" },
        ms(lat.value_at_quantile(0.5)),
        ms(lat.value_at_quantile(0.99)),
        ms(lat.value_at_quantile(0.999)),
        ms(lat.max()),
        lat.len()
    );
    if a.mode == "consume" {
        println!(
            "  ack latency: p50 {}, p99 {}, p999 {}, max {}",
            ms(ack_lat.value_at_quantile(0.5)),
            ms(ack_lat.value_at_quantile(0.99)),
            ms(ack_lat.value_at_quantile(0.999)),
            ms(ack_lat.max())
        );
    }
    if let Some(path) = &a.json {
        let v = json!({
            "mode": a.mode, "messages": n, "seconds": secs, "msgs_per_s": rate, "errors": sh.errors.load(Relaxed),
            "connections": a.connections, "batch": a.batch, "size": a.size,
            "latency": summary(&lat), "ack_latency": summary(&ack_lat),
        });
        std::fs::write(path, v.to_string()).map_err(|e| format!("{path}: {e}"))?;
    }
    Ok(())
}
