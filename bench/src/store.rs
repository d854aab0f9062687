//! `shardmq-bench store`: N appender tasks on one pinned executor, each
//! looping `store.put(msg).await`, with per-append latency in an HDR
//! histogram, one progress line per second and a summary (text and JSON).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Args, ValueEnum};
use glommio::{LocalExecutorBuilder, Placement};
use hdrhistogram::Histogram;
use serde_json::json;
use shardmq::store::{FlushMode, MessageInput, MessageStore, PutStatus, StoreConfig};

const TOPIC: &str = "BenchTopic";
const MIB: f64 = 1024.0 * 1024.0;
/// Pause of an appender after a refused put (busy or error).
const BACKOFF: Duration = Duration::from_micros(100);

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Flush {
    Sync,
    Async,
}

#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    /// Parent directory for the store (its `shard-0` subdirectory must not
    /// exist). Default: a fresh directory under /tmp.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep the store's files afterwards.
    #[arg(long)]
    keep: bool,
    /// Message body size in bytes.
    #[arg(long, default_value_t = 1024)]
    record_size: usize,
    /// Concurrent appender tasks.
    #[arg(long, default_value_t = 16)]
    appenders: usize,
    #[arg(long, value_enum, default_value_t = Flush::Sync)]
    flush: Flush,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Appenders are spread round-robin over this many queues of one topic.
    #[arg(long, default_value_t = 4)]
    queues: u32,
    /// CommitLog segment size in bytes (store default 1 GiB).
    #[arg(long, default_value_t = 1 << 30)]
    segment_size: u64,
    /// Zero-fill prepared segments (segment_pre_zero) instead of fallocate only.
    #[arg(long)]
    pre_zero: bool,
    /// Tail cache in MiB (store default 128).
    #[arg(long, default_value_t = 128)]
    tail_cache_mib: usize,
    /// CPU to pin the executor to.
    #[arg(long, default_value_t = 0)]
    cpu: usize,
    /// Do not pin the executor.
    #[arg(long)]
    unpinned: bool,
    /// glommio spin_before_park in microseconds (0: park at once).
    #[arg(long, default_value_t = 0)]
    spin_us: u64,
    /// glommio preempt_timer in microseconds (0: glommio's default, 100 ms).
    #[arg(long, default_value_t = 0)]
    preempt_us: u64,
    /// Let the executor's io_uring workers (fdatasync) run on every CPU
    /// instead of only its own (runtime::iowq; the broker's
    /// shardIoWorkersOnAllCpus).
    #[arg(long)]
    iowq_all_cpus: bool,
    /// Encryption at rest (storeEncryptionEnable) with a fresh random key.
    #[arg(long)]
    encrypt: bool,
    /// Turn the key index off (messageIndexEnable=false).
    #[arg(long)]
    no_index: bool,
    /// Give every message its own UNIQ_KEY (as producers do) instead of one
    /// shared id.
    #[arg(long)]
    unique_ids: bool,
    /// Business keys (words of KEYS) per message, each unique.
    #[arg(long, default_value_t = 0)]
    keys: usize,
    /// After the run, look up this many random stored messages by key
    /// (the first KEYS word, else the UNIQ_KEY; needs --unique-ids or
    /// --keys) and report the latency.
    #[arg(long, default_value_t = 0)]
    query_samples: usize,
    /// Write the summary as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Counters shared by the appenders and the reporter (one executor: no locks).
#[derive(Default)]
struct Stats {
    measuring: Cell<bool>,
    stop: Cell<bool>,
    /// Appends acknowledged Ok, any phase (progress lines).
    acked_total: Cell<u64>,
    /// In the measured window.
    acked: Cell<u64>,
    busy: Cell<u64>,
    errors: RefCell<BTreeMap<String, u64>>,
    hist: RefCell<Option<Histogram<u64>>>,
    /// Number of the next message built (its ids and keys).
    next_seq: Cell<u64>,
}

impl Stats {
    fn new() -> Stats {
        let s = Stats::default();
        *s.hist.borrow_mut() = Some(new_hist());
        s
    }
}

fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000_000, 3).expect("histogram bounds")
}

fn status_kind(s: &PutStatus) -> &'static str {
    match s {
        PutStatus::Ok => "Ok",
        PutStatus::FlushDiskTimeout => "FlushDiskTimeout",
        PutStatus::MessageIllegal(_) => "MessageIllegal",
        PutStatus::ServiceNotAvailable(_) => "ServiceNotAvailable",
        PutStatus::Busy => "Busy",
        PutStatus::FlushFailed(_) => "FlushFailed",
        PutStatus::FlushSlaveTimeout => "FlushSlaveTimeout",
        PutStatus::SlaveNotAvailable => "SlaveNotAvailable",
    }
}

/// A typical producer's properties: UNIQ_KEY, WAIT, TAGS.
const PROPS: &[u8] = b"UNIQ_KEY\x017F0000010001A2B3C4D5E6F7A8B9C0D1E2\x02WAIT\x01true\x02TAGS\x01TagA\x02";

/// The UNIQ_KEY of message `seq` (with --unique-ids).
fn uniq_id(seq: u64) -> String {
    format!("7F0000010001A2B3{seq:016X}")
}

/// The `j`-th business key of message `seq`.
fn business_key(seq: u64, j: usize) -> String {
    format!("order-{seq}-{j}")
}

/// Properties of message `seq`: [`PROPS`], or its own UNIQ_KEY and `keys`
/// business keys.
fn properties(args: &StoreArgs, seq: u64) -> Bytes {
    if !args.unique_ids && args.keys == 0 {
        return Bytes::from_static(PROPS);
    }
    let mut p = String::with_capacity(96 + 24 * args.keys);
    if args.keys > 0 {
        p.push_str("KEYS\x01");
        for j in 0..args.keys {
            if j > 0 {
                p.push(' ');
            }
            p.push_str(&business_key(seq, j));
        }
        p.push('\x02');
    }
    if args.unique_ids {
        p.push_str(&format!(
            "UNIQ_KEY\x01{}\x02WAIT\x01true\x02TAGS\x01TagA\x02",
            uniq_id(seq)
        ));
    } else {
        p.push_str(std::str::from_utf8(PROPS).unwrap_or(""));
    }
    Bytes::from(p)
}

fn message(body: &Bytes, queue_id: u32, properties: Bytes) -> MessageInput {
    MessageInput {
        topic: TOPIC.into(),
        queue_id,
        flag: 0,
        body: body.clone(),
        properties,
        sys_flag: 0,
        born_timestamp: 1,
        born_host: std::net::SocketAddr::from(([127, 0, 0, 1], 5555)),
        reconsume_times: 0,
        prepared_transaction_offset: 0,
        tags_code: 2598919, // javaStringHashCode("TagA")
        mark: None,
    }
}

async fn appender(store: MessageStore, stats: Rc<Stats>, queue_id: u32, body: Bytes, args: Rc<StoreArgs>) {
    while !stats.stop.get() {
        let t0 = Instant::now();
        let seq = stats.next_seq.get();
        stats.next_seq.set(seq + 1);
        let props = properties(&args, seq);
        loop {
            let r = store.put(message(&body, queue_id, props.clone())).await;
            match r.status {
                PutStatus::Ok => {
                    let ns = t0.elapsed().as_nanos() as u64;
                    stats.acked_total.set(stats.acked_total.get() + 1);
                    if stats.measuring.get() && !stats.stop.get() {
                        stats.acked.set(stats.acked.get() + 1);
                    }
                    if !stats.stop.get() {
                        if let Some(h) = stats.hist.borrow_mut().as_mut() {
                            h.saturating_record(ns.max(1));
                        }
                    }
                    break;
                }
                PutStatus::Busy => {
                    if stats.measuring.get() {
                        stats.busy.set(stats.busy.get() + 1);
                    }
                    glommio::timer::sleep(BACKOFF).await;
                    if stats.stop.get() {
                        return;
                    }
                }
                other => {
                    if stats.measuring.get() {
                        *stats.errors.borrow_mut().entry(status_kind(&other).into()).or_default() += 1;
                    }
                    glommio::timer::sleep(BACKOFF).await;
                    break;
                }
            }
        }
        // In ASYNC mode a put never awaits: let the flusher, the timers and
        // the other appenders run when the executor asks for it.
        glommio::yield_if_needed().await;
    }
}

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// (busy, total) jiffies of all CPUs from /proc/stat; busy excludes idle
/// and iowait. Used to see how much CPU other processes took meanwhile.
fn machine_jiffies() -> (u64, u64) {
    let Ok(text) = std::fs::read_to_string("/proc/stat") else {
        return (0, 0);
    };
    let v: Vec<u64> = text
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

fn percentile_us(v: &mut [u32], q: f64) -> Option<u32> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
    Some(v[i])
}

pub fn run(args: StoreArgs) -> Result<(), String> {
    if args.appenders == 0 || args.queues == 0 {
        return Err("--appenders and --queues must be at least 1".into());
    }
    if args.duration <= 0.0 || args.warmup < 0.0 {
        return Err("--duration must be > 0 and --warmup >= 0".into());
    }
    shardmq::runtime::ensure_memlock()?;
    let (parent, fresh) = match &args.dir {
        Some(d) => (d.clone(), false),
        None => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            (
                std::env::temp_dir().join(format!("shardmq-bench-{}-{nanos}", std::process::id())),
                true,
            )
        }
    };
    let shard_dir = parent.join("shard-0");
    if shard_dir.exists() {
        return Err(format!("{} exists; give an empty --dir", shard_dir.display()));
    }
    std::fs::create_dir_all(&shard_dir).map_err(|e| format!("create {}: {e}", shard_dir.display()))?;

    let placement = if args.unpinned {
        Placement::Unbound
    } else {
        Placement::Fixed(args.cpu)
    };
    let mut builder = LocalExecutorBuilder::new(placement).name("bench-store");
    if args.spin_us > 0 {
        builder = builder.spin_before_park(Duration::from_micros(args.spin_us));
    }
    if args.preempt_us > 0 {
        builder = builder.preempt_timer(Duration::from_micros(args.preempt_us));
    }
    let a = args.clone();
    let dir = shard_dir.clone();
    let res = builder
        .spawn(move || async move { bench(a, dir).await })
        .map_err(|e| format!("cannot start executor: {e}"))?
        .join()
        .map_err(|e| format!("executor failed: {e}"))?;

    if !args.keep {
        let target = if fresh { &parent } else { &shard_dir };
        if let Err(e) = std::fs::remove_dir_all(target) {
            eprintln!("warning: cannot remove {}: {e}", target.display());
        }
    }
    let summary = res?;
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n").map_err(|e| format!("write {}: {e}", path.display()))?;
    }
    Ok(())
}

async fn bench(args: StoreArgs, dir: PathBuf) -> Result<serde_json::Value, String> {
    let mut cfg = StoreConfig::new(&dir, 0, "127.0.0.1:10911".parse().expect("addr"));
    cfg.flush_mode = match args.flush {
        Flush::Sync => FlushMode::Sync,
        Flush::Async => FlushMode::Async,
    };
    cfg.segment_size = args.segment_size;
    cfg.segment_pre_zero = args.pre_zero;
    cfg.tail_cache_bytes = args.tail_cache_mib << 20;
    // Keep the limit sane for small segments: the largest record must fit.
    cfg.max_record_size = cfg
        .max_record_size
        .min(args.segment_size as usize / 2)
        .max(args.record_size + 1024);
    cfg.key_index.enabled = !args.no_index;
    if args.encrypt {
        let hex = shardmq::runtime::random_hex(32)?;
        let ring = shardmq::store::crypt::KeyRing::parse(&format!("1 {hex}"))?;
        cfg.encryption = Some(std::sync::Arc::new(ring));
    }
    let store_host = cfg.store_host;
    if args.iowq_all_cpus {
        shardmq::runtime::iowq::set_worker_cpus(None).map_err(|e| format!("io-wq affinity: {e}"))?;
    }
    let (store, _report) = MessageStore::open(cfg).await.map_err(|e| format!("open store: {e}"))?;

    let body = Bytes::from((0..args.record_size).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let record_bytes = message(&body, 0, properties(&args, 0)).record_size(&store_host) as u64;
    print_params(&args, &dir, record_bytes);

    let stats = Rc::new(Stats::new());
    let shared_args = Rc::new(args.clone());
    let tasks: Vec<_> = (0..args.appenders)
        .map(|i| {
            glommio::spawn_local(appender(
                store.clone(),
                stats.clone(),
                (i as u32) % args.queues,
                body.clone(),
                shared_args.clone(),
            ))
        })
        .collect();

    // Progress, warm-up and measured window, driven by this task.
    let t_start = Instant::now();
    let warm_end = t_start + Duration::from_secs_f64(args.warmup);
    let end = warm_end + Duration::from_secs_f64(args.duration);
    let mut window: Option<(Instant, f64, shardmq::store::commit_log::FlushProbe, (u64, u64))> = None;
    let mut last = (Instant::now(), 0u64);
    let mut next_tick = t_start + Duration::from_secs(1);
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        if now >= next_tick {
            let acked = stats.acked_total.get();
            let dt = now.duration_since(last.0).as_secs_f64();
            let rate = (acked - last.1) as f64 / dt;
            let p99 = stats.hist.borrow().as_ref().map_or(0, |h| h.value_at_quantile(0.99));
            let ix = store.key_index_stats();
            println!(
                "{:>5.1}s {} {:>10.0} appends/s {:>9.1} MiB/s  p99 so far {:>9.1} us  busy {}  index runs {} mem {}",
                now.duration_since(t_start).as_secs_f64(),
                if stats.measuring.get() { "     " } else { "[warm]" },
                rate,
                rate * args.record_size as f64 / MIB,
                p99 as f64 / 1000.0,
                stats.busy.get(),
                ix.runs,
                ix.mem_entries,
            );
            last = (now, acked);
            next_tick += Duration::from_secs(1);
        }
        if window.is_none() && now >= warm_end {
            *stats.hist.borrow_mut() = Some(new_hist());
            stats.measuring.set(true);
            window = Some((now, cpu_seconds(), store.flush_stats(), machine_jiffies()));
        }
        let wake = next_tick.min(end).min(if window.is_none() { warm_end } else { end });
        glommio::timer::sleep(wake.saturating_duration_since(Instant::now())).await;
    }
    let t_end = Instant::now();
    stats.stop.set(true);
    let cpu_end = cpu_seconds();
    let probe_end = store.flush_stats();
    let jiffies_end = machine_jiffies();
    let (t_win, cpu_win, probe_win, jiffies_win) = window.expect("window started");
    let secs = t_end.duration_since(t_win).as_secs_f64();
    for t in tasks {
        t.await;
    }
    let queries = query_phase(&args, &store, stats.next_seq.get()).await?;
    store.shutdown().await.map_err(|e| format!("shutdown: {e}"))?;

    let hist = stats.hist.borrow_mut().take().expect("histogram");
    let acked = stats.acked.get();
    let rate = acked as f64 / secs;
    let flushes = probe_end.flushes - probe_win.flushes;
    let written = probe_end.bytes_written - probe_win.bytes_written;
    let mut syncs: Vec<u32> = probe_end.sync_micros[probe_win.sync_micros.len()..].to_vec();
    let sync_samples = syncs.len();
    let sync_p50 = percentile_us(&mut syncs, 0.50);
    let sync_p99 = percentile_us(&mut syncs, 0.99);
    let us = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    let errors = stats.errors.borrow().clone();
    let cpu = (cpu_end - cpu_win) / secs;
    // Not available_parallelism(): on this pinned thread that answers 1.
    // SAFETY: sysconf has no preconditions.
    let ncpu = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as f64;
    let total_j = (jiffies_end.1 - jiffies_win.1).max(1) as f64;
    let machine_busy = (jiffies_end.0 - jiffies_win.0) as f64 / total_j * ncpu;
    let foreign = (machine_busy - cpu).max(0.0);

    println!("--- summary ({secs:.2} s measured) ---");
    println!(
        "appends/s {:.0}   body MiB/s {:.1}   record MiB/s {:.1}   (record {} B stored for a {} B body)",
        rate,
        rate * args.record_size as f64 / MIB,
        rate * record_bytes as f64 / MIB,
        record_bytes,
        args.record_size
    );
    println!(
        "latency us: p50 {:.1}  p99 {:.1}  p999 {:.1}  max {:.1}  (mean {:.1}, n {})",
        us(0.5),
        us(0.99),
        us(0.999),
        hist.max() as f64 / 1000.0,
        hist.mean() / 1000.0,
        hist.len()
    );
    println!(
        "flush rounds (fdatasync) {}  = {:.0}/s, {:.1} appends each; written {:.1} MiB ({:.2}x record bytes); \
         fdatasync us p50 {}  p99 {} (n {})",
        flushes,
        flushes as f64 / secs,
        if flushes > 0 {
            acked as f64 / flushes as f64
        } else {
            0.0
        },
        written as f64 / MIB,
        if acked > 0 {
            written as f64 / (acked * record_bytes) as f64
        } else {
            0.0
        },
        sync_p50.map_or("-".into(), |v| v.to_string()),
        sync_p99.map_or("-".into(), |v| v.to_string()),
        sync_samples
    );
    println!(
        "busy {}  errors {:?}  process CPU {:.2} cores; machine busy {:.2} of {} cores (others {:.2})",
        stats.busy.get(),
        errors,
        cpu,
        machine_busy,
        ncpu,
        foreign
    );

    Ok(json!({
        "params": params_json(&args, &dir, record_bytes),
        "measured_secs": secs,
        "appends": acked,
        "appends_per_sec": rate,
        "body_mib_per_sec": rate * args.record_size as f64 / MIB,
        "record_mib_per_sec": rate * record_bytes as f64 / MIB,
        "latency_us": {
            "p50": us(0.5), "p99": us(0.99), "p999": us(0.999),
            "max": hist.max() as f64 / 1000.0, "mean": hist.mean() / 1000.0,
        },
        "busy": stats.busy.get(),
        "errors": errors,
        "flush_rounds": flushes,
        "flush_bytes_written": written,
        "fdatasync_us": { "p50": sync_p50, "p99": sync_p99, "samples": sync_samples },
        "process_cpu_cores": cpu,
        "machine_busy_cores": machine_busy,
        "online_cpus": ncpu,
        "other_processes_cpu_cores": foreign,
        "queries": queries,
    }))
}

/// `--query-samples`: random stored messages looked up by key once the
/// index has written its runs (a checkpoint, then its merges).
async fn query_phase(args: &StoreArgs, store: &MessageStore, messages: u64) -> Result<serde_json::Value, String> {
    let s = store.key_index_stats();
    println!(
        "key index: {} entries in {} runs, {} in memory; {} keys left to the log catch-up, {} log bytes pending",
        s.run_entries, s.runs, s.mem_entries, s.deferred, s.pending_bytes
    );
    if args.query_samples == 0 || messages == 0 || (args.keys == 0 && !args.unique_ids) {
        return Ok(serde_json::Value::Null);
    }
    let t = Instant::now();
    store
        .flush_key_index(true)
        .await
        .map_err(|e| format!("index flush: {e}"))?;
    store.key_index_pass().await.map_err(|e| format!("index upkeep: {e}"))?;
    let s = store.key_index_stats();
    println!(
        "after a checkpoint and merges ({:.1} s): {} entries in {} runs, {} in memory",
        t.elapsed().as_secs_f64(),
        s.run_entries,
        s.runs,
        s.mem_entries
    );
    let mut hist = new_hist();
    let mut misses = 0u64;
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ messages;
    for _ in 0..args.query_samples {
        // xorshift64*: a random message number.
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let seq = x.wrapping_mul(0x2545_F491_4F6C_DD1D) % messages;
        let key = if args.keys > 0 {
            business_key(seq, 0)
        } else {
            uniq_id(seq)
        };
        let t0 = Instant::now();
        let hits = store
            .query_key(TOPIC, &key, 0, i64::MAX, 32)
            .await
            .map_err(|e| format!("query {key}: {e}"))?;
        hist.saturating_record((t0.elapsed().as_nanos() as u64).max(1));
        if hits.records.len() != 1 {
            misses += 1;
        }
    }
    let us = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "query by key ({} samples over {} messages, {} keys): p50 {:.1} us  p99 {:.1} us  p999 {:.1} us  max {:.1} us; \
         not found exactly once: {}",
        args.query_samples,
        messages,
        s.run_entries + s.mem_entries,
        us(0.5),
        us(0.99),
        us(0.999),
        hist.max() as f64 / 1000.0,
        misses
    );
    Ok(json!({
        "samples": args.query_samples, "messages": messages, "index_entries": s.run_entries + s.mem_entries,
        "runs": s.runs, "misses": misses,
        "latency_us": {"p50": us(0.5), "p99": us(0.99), "p999": us(0.999), "max": hist.max() as f64 / 1000.0},
    }))
}

fn params_json(args: &StoreArgs, dir: &Path, record_bytes: u64) -> serde_json::Value {
    json!({
        "dir": dir.display().to_string(),
        "record_size": args.record_size,
        "stored_record_bytes": record_bytes,
        "appenders": args.appenders,
        "flush": format!("{:?}", args.flush).to_uppercase(),
        "duration": args.duration,
        "warmup": args.warmup,
        "queues": args.queues,
        "segment_size": args.segment_size,
        "pre_zero": args.pre_zero,
        "tail_cache_mib": args.tail_cache_mib,
        "cpu": if args.unpinned { None } else { Some(args.cpu) },
        "spin_us": args.spin_us,
        "preempt_us": args.preempt_us,
        "encrypt": args.encrypt,
        "index": !args.no_index,
        "unique_ids": args.unique_ids,
        "keys": args.keys,
    })
}

fn print_params(args: &StoreArgs, dir: &Path, record_bytes: u64) {
    println!(
        "store bench: dir {} flush {:?} body {} B (record {} B) appenders {} queues {} segment {} MiB \
         pre_zero {} encrypt {} tail_cache {} MiB cpu {} spin {} us preempt {} us; warm-up {} s, measure {} s",
        dir.display(),
        args.flush,
        args.record_size,
        record_bytes,
        args.appenders,
        args.queues,
        args.segment_size >> 20,
        args.pre_zero,
        args.encrypt,
        args.tail_cache_mib,
        if args.unpinned {
            "unpinned".to_string()
        } else {
            args.cpu.to_string()
        },
        args.spin_us,
        args.preempt_us,
        args.warmup,
        args.duration
    );
}
