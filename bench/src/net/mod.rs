//! `shardmq-bench produce | consume | e2e`: a thread-per-core network load
//! generator speaking the RocketMQ remoting protocol (the project's codec)
//! to any broker found through a name server.
//!
//! One glommio executor per selected CPU, pinned; connections are spread
//! round-robin over the executors and never leave theirs. Each executor
//! counts into its own counters and histograms and merges them into the
//! shared ones every 100 ms; the main thread prints a progress line per
//! second, writes the HDR interval log and, at the end, the summary.

pub mod load;
pub mod setup;
pub mod stats;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Args;
use glommio::{LocalExecutorBuilder, Placement};
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2Serializer;
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{json, Value};

use load::{ConnPlan, RunCfg, SendMode};
use setup::Target;
use stats::{new_hist, Op, Shared, OPS};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Produce,
    Consume,
    E2e,
}

#[derive(Args, Debug, Clone, Serialize)]
pub struct NetArgs {
    /// Name server address.
    #[arg(long, default_value = "127.0.0.1:9876")]
    pub namesrv: String,
    #[arg(long, default_value = "BenchTopic")]
    pub topic: String,
    /// Create the topic through TBW102's brokers when it does not exist.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub create_topic: bool,
    /// Queues per broker of a topic this tool creates.
    #[arg(long, default_value_t = 8)]
    pub topic_queues: u32,
    /// Use only the first N of the route's queues (spread over brokers).
    #[arg(long)]
    pub queues: Option<usize>,
    /// Producer connections (and at most this many consumer connections),
    /// spread over the brokers of the chosen queues.
    #[arg(long, default_value_t = 1)]
    pub connections: usize,
    /// Requests outstanding per producer connection (default: 1 for sync,
    /// 128 for async; oneway: requests per write).
    #[arg(long)]
    pub inflight: Option<usize>,
    /// Message body bytes.
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Messages per request (> 1: SEND_BATCH_MESSAGE).
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    #[arg(long, value_enum, default_value_t = SendMode::Sync)]
    pub mode: SendMode,
    /// Measured seconds, after the warm-up (default 10 unless --messages
    /// is given; with both, whichever ends first).
    #[arg(long)]
    pub duration: Option<f64>,
    /// produce, e2e: send exactly N measured messages, then stop. Only
    /// messages sent after the warm-up count and take from N; with a
    /// warm-up, the broker receives its messages on top of N.
    /// consume: stop once N messages arrived after the warm-up (pulls in
    /// flight may add a few); without --duration it waits as long as that
    /// takes.
    #[arg(long)]
    pub messages: Option<u64>,
    /// Seconds of load before measuring (default 1, or 0 with --messages,
    /// so that `--messages N` alone sends exactly N messages in all).
    #[arg(long)]
    pub warmup: Option<f64>,
    /// Seconds a request waits for its reply (and a connect for its
    /// connection) before it counts as an error ("timeout"); pulls wait
    /// this on top of the 15 s long-poll time.
    #[arg(long, default_value_t = 10.0)]
    pub request_timeout: f64,
    /// Fail (exit status 1, after the summary) when failed requests /
    /// (failed + successful requests) exceeds this fraction, e.g. 0.01;
    /// 0 fails on any error. Default: fail only when there were errors
    /// and no request succeeded.
    #[arg(long)]
    pub max_error_rate: Option<f64>,
    /// A setting of the run the bench cannot see, as key=value, recorded in
    /// the JSON and shown in plot titles, e.g. `--tag flush=SYNC_FLUSH`
    /// (repeatable).
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    pub tags: Vec<String>,
    /// Open loop: messages/s in total, on a fixed schedule; latency counts
    /// from each request's intended send time (coordinated omission corrected).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Consumer group (pulls commit their offset with the commitOffset bit).
    #[arg(long, default_value = "shardmq-bench")]
    pub group: String,
    #[arg(long, default_value = "shardmq-bench-producer")]
    pub producer_group: String,
    /// Consume from each queue's oldest message. Without it consume starts
    /// at each queue's current end (whatever --group committed before),
    /// so it only sees messages sent while it runs.
    #[arg(long)]
    pub from_start: bool,
    /// Every connection (set-up and load) over TLS, for a broker with
    /// tlsServerMode permissive or enforcing; the server's certificate is
    /// not checked.
    #[arg(long)]
    pub tls: bool,
    /// maxMsgNums of each pull.
    #[arg(long, default_value_t = 32)]
    pub pull_batch: i32,
    /// e2e: seconds to wait after the producers stop for the consumers to catch up.
    #[arg(long, default_value_t = 5.0)]
    pub drain: f64,
    /// CPUs to run executors on, e.g. `1` or `0,1` or `0-1` (default: all).
    #[arg(long)]
    pub cores: Option<String>,
    /// Write the summary as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write an HDR histogram interval log (V2, one interval per second per operation).
    #[arg(long)]
    pub hdr: Option<PathBuf>,
    /// Draw latency by percentile and throughput over time (SVG).
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

fn parse_cores(s: Option<&str>) -> Result<Vec<usize>, String> {
    let Some(s) = s else {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        return Ok((0..n).collect());
    };
    let mut out = Vec::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let bad = || format!("bad --cores {s:?}");
        if let Some((a, b)) = part.split_once('-') {
            let (a, b): (usize, usize) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
            out.extend(a..=b);
        } else {
            out.push(part.parse().map_err(|_| bad())?);
        }
    }
    if out.is_empty() {
        return Err(format!("--cores {s:?} names no CPU"));
    }
    Ok(out)
}

fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Distinct broker addresses in order of first appearance.
fn addrs_of(ts: &[Target]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in ts {
        if !out.contains(&t.addr) {
            out.push(t.addr.clone());
        }
    }
    out
}

fn producer_plans(targets: &[Target], connections: usize) -> Vec<ConnPlan> {
    let addrs = addrs_of(targets);
    let n = connections.max(addrs.len());
    (0..n)
        .map(|k| {
            let addr = addrs[k % addrs.len()].clone();
            let queues = targets.iter().filter(|t| t.addr == addr).cloned().collect();
            ConnPlan::Produce { addr, queues }
        })
        .collect()
}

fn consumer_plans(targets: &[(Target, i64)], connections: usize) -> Vec<ConnPlan> {
    let plain: Vec<Target> = targets.iter().map(|t| t.0.clone()).collect();
    let addrs = addrs_of(&plain);
    let n = connections.min(targets.len()).max(addrs.len());
    let mut plans = Vec::new();
    for (b, addr) in addrs.iter().enumerate() {
        let conns = (0..n).filter(|k| k % addrs.len() == b).count().max(1);
        let mine: Vec<&(Target, i64)> = targets.iter().filter(|t| &t.0.addr == addr).collect();
        for c in 0..conns {
            let queues: Vec<(Target, i64)> = mine.iter().skip(c).step_by(conns).map(|t| (*t).clone()).collect();
            if !queues.is_empty() {
                plans.push(ConnPlan::Consume {
                    addr: addr.clone(),
                    queues,
                });
            }
        }
    }
    plans
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

fn fmt_lat(h: &Histogram<u64>, q: f64) -> String {
    if h.is_empty() {
        "-".into()
    } else {
        let v = h.value_at_quantile(q);
        if v >= 1_000_000 {
            format!("{:.2} ms", v as f64 / 1e6)
        } else {
            format!("{:.0} µs", us(v))
        }
    }
}

/// Latency by percentile, for plots: points at 0, 90, 99, 99.9 … % in
/// tenths of a "nine", then the maximum.
fn curve(h: &Histogram<u64>) -> Vec<[f64; 2]> {
    let mut out = Vec::new();
    if h.is_empty() {
        return out;
    }
    let max_nines = (h.len() as f64).log10();
    for k in 0..=80 {
        let nines = k as f64 / 10.0;
        if nines >= max_nines {
            break;
        }
        let q = 1.0 - 10f64.powf(-nines);
        out.push([q * 100.0, us(h.value_at_quantile(q))]);
    }
    out.push([100.0 * (1.0 - 10f64.powf(-max_nines.max(0.1))), us(h.max())]);
    out
}

fn op_summary(h: &Histogram<u64>, msgs: u64, bytes: u64, reqs: u64, secs: f64) -> Value {
    let secs = secs.max(1e-9);
    let p = |q: f64| {
        if h.is_empty() {
            Value::Null
        } else {
            json!(us(h.value_at_quantile(q)))
        }
    };
    json!({
        "messages": msgs,
        "requests": reqs,
        "seconds": secs,
        "msgs_per_sec": msgs as f64 / secs,
        "mb_per_sec": bytes as f64 / secs / 1e6,
        "latency_samples": h.len(),
        "latency_us": {
            "mean": if h.is_empty() { Value::Null } else { json!(h.mean() / 1000.0) },
            "p50": p(0.5), "p90": p(0.9), "p99": p(0.99), "p999": p(0.999), "p9999": p(0.9999),
            "max": if h.is_empty() { Value::Null } else { json!(us(h.max())) },
        },
        "curve": curve(h),
    })
}

/// `--tag key=value` settings.
fn parse_tags(tags: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for t in tags {
        match t.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                out.insert(k.trim().to_string(), v.trim().to_string());
            }
            _ => return Err(format!("--tag {t:?}: expected KEY=VALUE")),
        }
    }
    Ok(out)
}

/// The run's verdict on its errors: `errors` failed requests against `ok`
/// successful ones. Without `max_rate` only "errors and no success" fails.
pub fn error_verdict(errors: u64, ok: u64, max_rate: Option<f64>) -> Result<(), String> {
    if errors == 0 {
        return Ok(());
    }
    let rate = errors as f64 / (errors + ok) as f64;
    let what = format!("{errors} of {} requests failed ({:.3}%)", errors + ok, rate * 100.0);
    match max_rate {
        None if ok == 0 => Err(format!("{what}: no request succeeded")),
        None => Ok(()),
        Some(max) if rate > max => Err(format!("{what}: more than --max-error-rate {max}")),
        Some(_) => Ok(()),
    }
}

/// What the second ending at `now` mostly was.
fn phase_of(last: Instant, now: Instant, measure_start: Option<Instant>, drain_start: Option<Instant>) -> &'static str {
    let mid = last + (now - last) / 2;
    match (measure_start, drain_start) {
        (None, _) => "warm-up",
        (Some(ms), _) if ms > mid => "warm-up",
        (_, Some(ds)) if ds <= mid => "drain",
        _ => "measure",
    }
}

/// Printed when a consume run received nothing.
fn consume_hint(args: &NetArgs) -> String {
    if args.from_start {
        format!(
            "hint: 0 messages consumed: the queues of {} hold no message from their oldest offset on; \
             produce to it (shardmq-bench produce --topic {}) or check --topic",
            args.topic, args.topic
        )
    } else {
        format!(
            "hint: 0 messages consumed: consume starts at the current end of each queue of {} \
             (whatever group {} committed before), so it only sees messages sent while it runs; \
             pass --from-start to read what is stored, or produce while consuming (or run e2e)",
            args.topic, args.group
        )
    }
}

fn secs_arg(name: &str, v: f64, zero_ok: bool) -> Result<f64, String> {
    if !v.is_finite() || v < 0.0 || (!zero_ok && v == 0.0) {
        return Err(format!(
            "--{name} {v}: must be a finite number of seconds{}",
            if zero_ok { " ≥ 0" } else { " > 0" }
        ));
    }
    Ok(v)
}

/// Seconds of warm-up: as given, else 1, or 0 with `--messages` (so that
/// `--messages N` alone is exactly N messages).
fn warmup_secs(args: &NetArgs) -> Result<f64, String> {
    let default = if args.messages.is_some() { 0.0 } else { 1.0 };
    secs_arg("warmup", args.warmup.unwrap_or(default), true)
}

pub fn run(kind: Kind, args: NetArgs) -> Result<(), String> {
    if args.size < 16 && kind == Kind::E2e {
        eprintln!("note: --size < 16: e2e latency uses the broker's millisecond bornTimestamp");
    }
    if args.batch == 0 || args.connections == 0 {
        return Err("--batch and --connections must be at least 1".into());
    }
    if let Some(r) = args.max_error_rate {
        if !(0.0..=1.0).contains(&r) {
            return Err(format!("--max-error-rate {r}: a fraction from 0 to 1"));
        }
    }
    let tags = parse_tags(&args.tags)?;
    let request_timeout = Duration::from_secs_f64(secs_arg("request-timeout", args.request_timeout, false)?);
    let warmup_secs = warmup_secs(&args)?;
    if let Some(d) = args.duration {
        secs_arg("duration", d, false)?;
    }
    shardmq::runtime::ensure_memlock()?;
    if args.tls {
        setup::enable_tls()?;
    }
    let cores = parse_cores(args.cores.as_deref())?;
    let duration = match (args.duration, args.messages) {
        (None, None) => Some(10.0),
        (d, _) => d,
    };
    let inflight = args.inflight.unwrap_or(match args.mode {
        SendMode::Sync => 1,
        _ => 128,
    });
    let has_send = kind != Kind::Consume;
    let has_pull = kind != Kind::Produce;

    let route = setup::resolve(&args.namesrv, &args.topic, args.create_topic, args.topic_queues)?;
    let mut plans = Vec::new();
    let mut send_targets = Vec::new();
    if has_send {
        send_targets = setup::targets(&route, true);
        send_targets.truncate(args.queues.unwrap_or(usize::MAX));
        if send_targets.is_empty() {
            return Err(format!("topic {} has no writable queue with a master", args.topic));
        }
    }
    let mut pull_targets = Vec::new();
    if has_pull {
        let mut ts = setup::targets(&route, false);
        ts.truncate(args.queues.unwrap_or(usize::MAX));
        if ts.is_empty() {
            return Err(format!("topic {} has no readable queue with a master", args.topic));
        }
        for t in ts {
            let off = setup::queue_offset(&t, &args.topic, !args.from_start)?;
            pull_targets.push((t, off));
        }
        plans.extend(consumer_plans(&pull_targets, args.connections));
    }
    let n_pull_loops: usize = plans
        .iter()
        .map(|p| match p {
            ConnPlan::Consume { queues, .. } => queues.len(),
            ConnPlan::Produce { .. } => 0,
        })
        .sum();
    let producer = if has_send {
        producer_plans(&send_targets, args.connections)
    } else {
        Vec::new()
    };
    let n_producers = producer.len();
    // Consumers first so that with two cores and one connection each, the
    // producer and the consumer get an executor each.
    plans.extend(producer);

    let cfg = Arc::new(RunCfg {
        topic: args.topic.clone(),
        producer_group: args.producer_group.clone(),
        group: args.group.clone(),
        size: args.size,
        batch: args.batch,
        mode: args.mode,
        inflight: inflight.max(1),
        rate_per_conn: args.rate.map(|r| r / n_producers.max(1) as f64),
        pull_batch: args.pull_batch,
        e2e: kind == Kind::E2e,
        request_timeout,
    });
    let budget = match (has_send, args.messages) {
        (true, Some(n)) => i64::try_from(n).unwrap_or(i64::MAX - 1),
        _ => i64::MAX,
    };
    let shared = Arc::new(Shared::new(budget));
    if let (Kind::Consume, Some(n)) = (kind, args.messages) {
        shared
            .pull_budget
            .store(i64::try_from(n).unwrap_or(i64::MAX - 1), Relaxed);
    }
    shared.producers_alive.store(n_producers, Relaxed);
    shared.pullers_alive.store(n_pull_loops, Relaxed);

    let brokers = addrs_of(
        &send_targets
            .iter()
            .chain(pull_targets.iter().map(|t| &t.0))
            .cloned()
            .collect::<Vec<_>>(),
    );
    let params = json!({
        "kind": kind,
        "args": &args,
        "resolved": {
            "duration_secs": duration,
            "warmup_secs": warmup_secs,
            "request_timeout_secs": request_timeout.as_secs_f64(),
            "inflight": inflight,
            "cores": &cores,
            "brokers": brokers,
            "send_queues": send_targets.len(),
            "pull_queues": pull_targets.len(),
            "producer_connections": n_producers,
            "consumer_connections": plans.len() - n_producers,
            "header": "JSON",
            "send_code": if args.batch > 1 { "SEND_BATCH_MESSAGE" } else { "SEND_MESSAGE_V2" },
            "tags": tags,
        },
        "version": env!("CARGO_PKG_VERSION"),
    });
    println!("parameters: {params}");

    // HDR interval log.
    let wall0 = SystemTime::now();
    let mut hdr_file = match &args.hdr {
        Some(p) => Some(std::fs::File::create(p).map_err(|e| format!("create {}: {e}", p.display()))?),
        None => None,
    };
    let mut ser = V2Serializer::new();
    let mut hdr_log = match hdr_file.as_mut() {
        Some(f) => Some(
            IntervalLogWriterBuilder::new()
                .add_comment("shardmq-bench network run; values in ns")
                .with_base_time(wall0)
                .with_start_time(wall0)
                .begin_log_with(f, &mut ser)
                .map_err(|e| format!("hdr log: {e}"))?,
        ),
        None => None,
    };

    let t0 = Instant::now();
    let warmup = Duration::from_secs_f64(warmup_secs);
    let mut measure_start: Option<Instant> = None;
    let start_measuring = |at: &mut Option<Instant>, now: Instant| {
        *at = Some(now);
        shared.measure_start_wall_ns.store(wall_ns(), Relaxed);
        shared.measuring.store(true, Relaxed);
    };
    if warmup.is_zero() {
        // Measure from the first request: set before any executor runs, so
        // that no message is sent (or answered) outside the measured window.
        start_measuring(&mut measure_start, t0);
    }

    let mut per_exec: Vec<Vec<ConnPlan>> = cores.iter().map(|_| Vec::new()).collect();
    for (i, p) in plans.into_iter().enumerate() {
        per_exec[i % cores.len()].push(p);
    }
    let mut handles = Vec::new();
    for (i, (cpu, plans)) in cores.iter().zip(per_exec).enumerate() {
        if plans.is_empty() {
            continue;
        }
        let (s, c) = (shared.clone(), cfg.clone());
        let spawned = LocalExecutorBuilder::new(Placement::Fixed(*cpu))
            .name(&format!("bench-{i}"))
            .spawn(move || load::executor_main(s, c, plans));
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => {
                shared.stop.store(true, Relaxed);
                for h in handles {
                    let _ = h.join();
                }
                return Err(format!("cannot start an executor on CPU {cpu}: {e}"));
            }
        }
    }

    let mut send_end: Option<Instant> = None;
    let mut next_report = t0 + Duration::from_secs(1);
    let mut last_report = t0;
    let mut last_counts = [(0u64, 0u64); 3];
    let mut timeline: Vec<Value> = Vec::new();
    let mut errors_shown: BTreeSet<String> = BTreeSet::new();
    let mut hinted = false;
    let mut pullers_gone = false;
    let drain = Duration::from_secs_f64(args.drain.max(0.0));
    let end;
    loop {
        std::thread::sleep(Duration::from_millis(5));
        let now = Instant::now();
        if now >= next_report {
            // Before this iteration's change of phase: the line describes
            // the second that just ended.
            let drain_start = if has_pull { send_end } else { None };
            let phase = phase_of(last_report, now, measure_start, drain_start);
            let line = progress(&shared, now - t0, now - last_report, &mut last_counts, phase);
            println!("{}", line.0);
            timeline.push(line.1);
            let mut agg = shared.agg.lock().expect("stats lock");
            for op in OPS {
                let h = std::mem::replace(&mut agg.interval[op as usize], new_hist());
                if let (Some(log), false) = (hdr_log.as_mut(), h.is_empty()) {
                    let _ = log.write_histogram(&h, last_report - t0, now - last_report, Tag::new(op.name()));
                }
            }
            for k in agg.errors.keys() {
                if errors_shown.insert(k.clone()) {
                    eprintln!("error: {}", error_line(k, agg.error_remarks.get(k)));
                }
            }
            drop(agg);
            if kind == Kind::Consume
                && !hinted
                && now - t0 >= Duration::from_secs(5)
                && shared.ops[Op::Pull as usize].msgs_all.load(Relaxed) == 0
            {
                hinted = true;
                eprintln!("{}", consume_hint(&args));
            }
            last_report = now;
            next_report += Duration::from_secs(1);
        }
        if measure_start.is_none() && now >= t0 + warmup {
            start_measuring(&mut measure_start, now);
        }
        if has_send && send_end.is_none() && shared.producers_alive.load(Relaxed) == 0 {
            // Every producer connection has ended: normally because the
            // budget is spent (the counts arrive with the next flush),
            // otherwise because they failed.
            if shared.budget.load(Relaxed) > 0 {
                eprintln!("every producer connection has ended (see the errors): the send phase ends early");
            }
            if measure_start.is_none() {
                start_measuring(&mut measure_start, now);
            }
            shared.stop_send.store(true, Relaxed);
            send_end = Some(now);
        }
        if has_pull && !pullers_gone && shared.pullers_alive.load(Relaxed) == 0 {
            pullers_gone = true;
            eprintln!("every consumer connection has ended (see the errors)");
            if measure_start.is_none() {
                start_measuring(&mut measure_start, now);
            }
        }
        let Some(ms) = measure_start else { continue };
        let timed_out = duration.is_some_and(|d| now >= ms + Duration::from_secs_f64(d));
        if has_send && send_end.is_none() {
            let counted = args.messages.is_some_and(|n| shared.send_done.load(Relaxed) >= n);
            if timed_out || counted {
                shared.stop_send.store(true, Relaxed);
                send_end = Some(now);
            }
        }
        if !has_send {
            let counted = args.messages.is_some() && shared.pull_budget.load(Relaxed) <= 0;
            if timed_out || counted || pullers_gone {
                end = now;
                break;
            }
        } else if let Some(se) = send_end {
            if !has_pull || pullers_gone {
                end = now;
                break;
            }
            let sent = shared.ops[Op::Send as usize].msgs_all.load(Relaxed);
            let got = shared.ops[Op::Pull as usize].msgs_all.load(Relaxed);
            if (now >= se + Duration::from_millis(300) && got >= sent) || now >= se + drain {
                end = now;
                break;
            }
        }
    }
    shared.stop.store(true, Relaxed);
    for h in handles {
        h.join().map_err(|e| format!("executor failed: {e}"))?;
    }
    if let Some(log) = hdr_log.as_mut() {
        let now = Instant::now();
        let mut agg = shared.agg.lock().expect("stats lock");
        for op in OPS {
            let h = std::mem::replace(&mut agg.interval[op as usize], new_hist());
            if !h.is_empty() {
                let _ = log.write_histogram(&h, last_report - t0, now - last_report, Tag::new(op.name()));
            }
        }
    }
    drop(hdr_log);

    let ms = measure_start.unwrap_or(t0);
    let send_secs = (send_end.unwrap_or(end) - ms).as_secs_f64();
    let pull_secs = (end - ms).as_secs_f64();
    let agg = shared.agg.lock().expect("stats lock");
    let mut ops = serde_json::Map::new();
    for op in OPS {
        let c = &shared.ops[op as usize];
        let secs = if op == Op::Send { send_secs } else { pull_secs };
        let (mut m, b, r) = (c.msgs.load(Relaxed), c.bytes.load(Relaxed), c.reqs.load(Relaxed));
        if op == Op::E2e {
            m = agg.total[op as usize].len();
        }
        let used = match op {
            Op::Send => has_send,
            Op::Pull => has_pull,
            Op::E2e => kind == Kind::E2e,
        };
        if used {
            ops.insert(op.name().into(), op_summary(&agg.total[op as usize], m, b, r, secs));
        }
    }
    let produced = shared.ops[Op::Send as usize].msgs_all.load(Relaxed);
    let consumed = shared.ops[Op::Pull as usize].msgs_all.load(Relaxed);
    let errors_total = shared.errors.load(Relaxed);
    let ok_requests = shared.ok_requests();
    let errors: BTreeMap<String, u64> = agg.errors.clone();
    let summary = json!({
        "params": params,
        "warmup_secs": (ms - t0).as_secs_f64(),
        "measured_secs": pull_secs,
        "ops": ops,
        "produced_total": produced,
        "consumed_total": consumed,
        "requests_ok_total": ok_requests,
        "errors_total": errors_total,
        "error_rate": if errors_total + ok_requests == 0 { 0.0 } else { errors_total as f64 / (errors_total + ok_requests) as f64 },
        "errors": errors,
        "error_remarks": agg.error_remarks.clone(),
        "timeline": timeline,
    });
    drop(agg);
    print_summary(&summary);
    if kind == Kind::Consume && consumed == 0 {
        println!("{}", consume_hint(&args));
    }
    if let Some(p) = &args.json {
        let text = serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())?;
        std::fs::write(p, text + "\n").map_err(|e| format!("write {}: {e}", p.display()))?;
    }
    if let Some(p) = &args.plot {
        crate::plot::draw(p, &[(String::new(), summary.clone())])?;
        println!("plot: {}", p.display());
    }
    error_verdict(errors_total, ok_requests, args.max_error_rate)
}

/// `send code 13 MESSAGE_ILLEGAL: <the broker's remark>`.
fn error_line(kind: &str, remark: Option<&String>) -> String {
    match remark {
        Some(r) => format!("{kind}: {r}"),
        None => kind.to_string(),
    }
}

/// One progress line and its timeline entry.
fn progress(
    shared: &Shared,
    since_start: Duration,
    interval: Duration,
    last: &mut [(u64, u64); 3],
    phase: &str,
) -> (String, Value) {
    let secs = interval.as_secs_f64().max(1e-9);
    let agg = shared.agg.lock().expect("stats lock");
    let mut parts = Vec::new();
    let mut entry = serde_json::Map::new();
    entry.insert("t".into(), json!(since_start.as_secs_f64()));
    entry.insert("phase".into(), json!(phase));
    for op in [Op::Send, Op::Pull] {
        let c = &shared.ops[op as usize];
        let (m, b) = (c.msgs_all.load(Relaxed), c.bytes_all.load(Relaxed));
        let (lm, lb) = last[op as usize];
        last[op as usize] = (m, b);
        if m == 0 && agg.total[op as usize].is_empty() {
            continue;
        }
        let rate = m.saturating_sub(lm) as f64 / secs;
        let mbs = b.saturating_sub(lb) as f64 / secs / 1e6;
        let h = &agg.total[op as usize];
        parts.push(format!(
            "{} {:>9.0} msg/s {:>8.1} MB/s p99 {}",
            op.name(),
            rate,
            mbs,
            fmt_lat(h, 0.99)
        ));
        entry.insert(format!("{}_msgs_per_sec", op.name()), json!(rate));
        entry.insert(format!("{}_mb_per_sec", op.name()), json!(mbs));
    }
    let e2e = &agg.total[Op::E2e as usize];
    if !e2e.is_empty() {
        parts.push(format!("e2e p99 {}", fmt_lat(e2e, 0.99)));
    }
    let line = format!(
        "[{:>6.1}s] {:<7} | {} | errors {}",
        since_start.as_secs_f64(),
        phase,
        if parts.is_empty() {
            if shared.errors.load(Relaxed) > 0 {
                "no successful request yet".to_string()
            } else {
                "no traffic yet".to_string()
            }
        } else {
            parts.join(" | ")
        },
        shared.errors.load(Relaxed)
    );
    (line, Value::Object(entry))
}

fn print_summary(s: &Value) {
    println!(
        "summary (measured {:.2} s after {:.2} s of warm-up):",
        s["measured_secs"].as_f64().unwrap_or(0.0),
        s["warmup_secs"].as_f64().unwrap_or(0.0)
    );
    if let Some(ops) = s["ops"].as_object() {
        println!(
            "  {:<5} {:>12} {:>12} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "op", "msgs/s", "MB/s", "p50 µs", "p90 µs", "p99 µs", "p999 µs", "p9999 µs", "max µs", "messages"
        );
        for (name, o) in ops {
            let l = &o["latency_us"];
            let f = |v: &Value| v.as_f64().map_or("-".to_string(), |x| format!("{x:.1}"));
            println!(
                "  {:<5} {:>12.0} {:>12.1} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
                name,
                o["msgs_per_sec"].as_f64().unwrap_or(0.0),
                o["mb_per_sec"].as_f64().unwrap_or(0.0),
                f(&l["p50"]),
                f(&l["p90"]),
                f(&l["p99"]),
                f(&l["p999"]),
                f(&l["p9999"]),
                f(&l["max"]),
                o["messages"]
            );
        }
    }
    println!(
        "  produced (all phases) {}  consumed (all phases) {}  errors {}",
        s["produced_total"], s["consumed_total"], s["errors_total"]
    );
    if let Some(errs) = s["errors"].as_object() {
        for (k, v) in errs {
            let remark = s["error_remarks"][k].as_str().map(str::to_string);
            println!("    {v} × {}", error_line(k, remark.as_ref()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_verdict_fails_only_without_any_success() {
        assert!(error_verdict(0, 0, None).is_ok());
        assert!(error_verdict(5, 1, None).is_ok());
        let e = error_verdict(3, 0, None).expect_err("all failed");
        assert!(
            e.contains("3 of 3 requests failed") && e.contains("no request succeeded"),
            "{e}"
        );
    }

    #[test]
    fn max_error_rate_is_a_fraction_of_requests() {
        assert!(error_verdict(1, 99, Some(0.01)).is_ok());
        let e = error_verdict(2, 98, Some(0.01)).expect_err("2 %");
        assert!(e.contains("2.000%") && e.contains("--max-error-rate 0.01"), "{e}");
        assert!(error_verdict(1, 1_000_000, Some(0.0)).is_err());
        assert!(error_verdict(0, 10, Some(0.0)).is_ok());
    }

    #[test]
    fn the_second_that_ends_the_warm_up_is_labelled_warm_up() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        // Warm-up of 1 s: the first line is printed before measuring starts.
        assert_eq!(phase_of(t0, t0 + s, None, None), "warm-up");
        // Measuring started at 1.0 s: the next second is measured.
        assert_eq!(phase_of(t0 + s, t0 + 2 * s, Some(t0 + s), None), "measure");
        // A warm-up of 1.8 s: the second from 1 to 2 s is mostly warm-up.
        let ms = t0 + Duration::from_millis(1800);
        assert_eq!(phase_of(t0 + s, t0 + 2 * s, Some(ms), None), "warm-up");
        assert_eq!(phase_of(t0 + 2 * s, t0 + 3 * s, Some(ms), Some(t0 + 2 * s)), "drain");
    }

    #[test]
    fn tags_are_key_value() {
        let t = parse_tags(&["flush=SYNC_FLUSH".into(), " host = a=b ".into()]).expect("tags");
        assert_eq!(t["flush"], "SYNC_FLUSH");
        assert_eq!(t["host"], "a=b");
        assert!(parse_tags(&["noequals".into()]).is_err());
        assert!(parse_tags(&["=v".into()]).is_err());
    }

    #[test]
    fn warm_up_defaults_to_zero_with_messages() {
        use clap::Parser;
        #[derive(Parser)]
        struct P {
            #[command(flatten)]
            a: NetArgs,
        }
        let w = |argv: &[&str]| warmup_secs(&P::parse_from(argv).a);
        assert_eq!(w(&["x"]), Ok(1.0));
        assert_eq!(w(&["x", "--messages", "1000"]), Ok(0.0));
        assert_eq!(w(&["x", "--messages", "1000", "--warmup", "2"]), Ok(2.0));
        assert!(w(&["x", "--warmup=-1"]).is_err());
        assert_eq!(P::parse_from(["x"]).a.request_timeout, 10.0);
    }
}
