//! The network modes of `shardmq-bench` against the real `shardmq` broker
//! on 127.0.0.1: produce a fixed count, consume it back from the start,
//! then an e2e run, checking the `--json` summaries' counts.
//!
//! The broker binary is the root package's `target/<profile>/shardmq`,
//! next to this package's binary; `cargo test --workspace` builds it. When
//! it is missing the test builds it with cargo.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BENCH: &str = env!("CARGO_BIN_EXE_shardmq-bench");

fn broker_binary() -> PathBuf {
    let dir = Path::new(BENCH).parent().expect("bin dir");
    let bin = dir.join("shardmq");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut cmd = Command::new(cargo);
        cmd.current_dir(&root)
            .args(["build", "-p", "shardmq", "--bin", "shardmq"]);
        if dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let st = cmd.status().expect("run cargo build");
        assert!(st.success(), "cargo build --bin shardmq failed");
    }
    assert!(bin.exists(), "{} missing", bin.display());
    bin
}

#[path = "../../tests/common/ports.rs"]
mod ports;
use ports::free_port_block as free_ports;

struct Broker {
    child: Child,
    namesrv: String,
    log: PathBuf,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_broker(dir: &Path) -> Broker {
    let (port, shard_base, ns, ha) = (free_ports(2), free_ports(3), free_ports(0), free_ports(2));
    let log = dir.join("broker.log");
    let mut child = Command::new(broker_binary())
        .arg("serve")
        .args(["--set", &format!("storePathRootDir={}", dir.join("data").display())])
        .args(["--set", &format!("listenPort={port}")])
        .args(["--set", &format!("namesrvListenPort={ns}")])
        .args(["--set", &format!("shardListenPortBase={shard_base}")])
        .args(["--set", &format!("haListenPort={ha}")])
        .args([
            "--set",
            "shardCount=2",
            "--set",
            "metricsPort=0",
            "--set",
            "grpcListenPort=0",
            "--set",
            "httpListenPort=0",
            "--set",
            "brokerIP1=127.0.0.1",
            // The tests share the host's disk.
            "--set",
            "diskMaxUsedSpaceRatio=95",
        ])
        .args([
            "--set",
            "mapedFileSizeCommitLog=67108864",
            "--set",
            "tailCacheBytes=33554432",
        ])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("spawn shardmq");
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if line.contains("shardmq ready") {
                let _ = tx.send(());
            }
        }
    });
    let b = Broker {
        child,
        namesrv: format!("127.0.0.1:{ns}"),
        log,
    };
    if rx.recv_timeout(Duration::from_secs(30)).is_err() {
        panic!(
            "broker not ready:\n{}",
            std::fs::read_to_string(&b.log).unwrap_or_default()
        );
    }
    b
}

/// The test's directory: removed at the end unless `SHARDMQ_KEEP=1`, in
/// which case its path is printed and it stays for inspection.
struct TestDir(Option<tempfile::TempDir>);

impl TestDir {
    fn new() -> TestDir {
        TestDir(Some(tempfile::tempdir().expect("tempdir")))
    }

    fn path(&self) -> &Path {
        self.0.as_ref().expect("temp dir").path()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let Some(d) = self.0.take() else { return };
        if std::env::var("SHARDMQ_KEEP").is_ok_and(|v| v == "1") {
            eprintln!("SHARDMQ_KEEP=1: kept {}", d.keep().display());
        } else if std::thread::panicking() {
            eprintln!(
                "test dir {} is removed; run with SHARDMQ_KEEP=1 to keep it",
                d.path().display()
            );
        }
    }
}

/// The last `n` lines of a file, for failure messages.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| format!("({}: {e})", path.display()));
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// One finished bench run.
struct Run {
    ok: bool,
    status: String,
    out: String,
    err: String,
}

impl Run {
    /// Everything a failure message needs: the bench's status and output,
    /// the broker log's tail, the test directory.
    fn report(&self, name: &str, dir: &Path, broker_log: Option<&Path>) -> String {
        let mut r = format!(
            "shardmq-bench {name}: {}\n--- stdout ---\n{}\n--- stderr ---\n{}\n",
            self.status, self.out, self.err
        );
        if let Some(log) = broker_log {
            r += &format!("--- broker log (tail) {} ---\n{}\n", log.display(), tail(log, 60));
        }
        r += &format!("--- test dir {} (SHARDMQ_KEEP=1 keeps it) ---", dir.display());
        r
    }
}

/// Runs the bench with `args` and `--namesrv`, killing it after `limit`.
/// A run that does not end panics with its output and the broker log.
fn run_bench(namesrv: &str, dir: &Path, name: &str, args: &[&str], limit: Duration, broker_log: Option<&Path>) -> Run {
    let (out_p, err_p) = (dir.join(format!("{name}.out")), dir.join(format!("{name}.err")));
    let mut child = Command::new(BENCH)
        .args(args)
        .args(["--namesrv", namesrv])
        .stdout(std::fs::File::create(&out_p).expect("out"))
        .stderr(std::fs::File::create(&err_p).expect("err"))
        .spawn()
        .expect("spawn shardmq-bench");
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let run = Run {
        ok: status.is_some_and(|s| s.success()),
        status: status.map_or(format!("did not finish in {} s (killed)", limit.as_secs()), |s| {
            s.to_string()
        }),
        out: std::fs::read_to_string(&out_p).unwrap_or_default(),
        err: std::fs::read_to_string(&err_p).unwrap_or_default(),
    };
    if status.is_none() {
        panic!("{}", run.report(name, dir, broker_log));
    }
    run
}

/// Runs the bench against the broker, expecting success, and returns its
/// JSON summary.
fn bench(b: &Broker, dir: &Path, name: &str, args: &[&str]) -> (Value, String) {
    let json = dir.join(format!("{name}.json"));
    let json_s = json.to_string_lossy().into_owned();
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--json", &json_s]);
    let run = run_bench(&b.namesrv, dir, name, &all, Duration::from_secs(90), Some(&b.log));
    let report = || run.report(name, dir, Some(&b.log));
    assert!(run.ok, "{}", report());
    assert!(
        run.out.contains("parameters: {"),
        "every run prints its parameters:\n{}",
        report()
    );
    assert!(run.out.contains("summary"), "{}", report());
    let text = std::fs::read_to_string(&json).unwrap_or_else(|e| panic!("{json_s}: {e}\n{}", report()));
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{json_s}: {e}\n{}", report()));
    (v, report())
}

/// Runs the bench against the broker, expecting it to fail.
fn bench_fails(b: &Broker, dir: &Path, name: &str, args: &[&str]) -> Run {
    let run = run_bench(&b.namesrv, dir, name, args, Duration::from_secs(90), Some(&b.log));
    assert!(!run.ok, "expected a failure\n{}", run.report(name, dir, Some(&b.log)));
    run
}

#[test]
fn produce_consume_e2e_against_the_real_broker() {
    let dir = TestDir::new();
    let b = start_broker(dir.path());
    let d = dir.path();

    let (p, rep) = bench(
        &b,
        d,
        "produce",
        &[
            "produce",
            "--topic",
            "NB",
            "--messages",
            "2000",
            "--warmup",
            "0",
            "--connections",
            "3",
            "--mode",
            "async",
            "--inflight",
            "8",
        ],
    );
    assert_eq!(p["errors_total"], 0, "{rep}");
    assert_eq!(p["produced_total"], 2000, "{rep}");
    assert_eq!(p["ops"]["send"]["messages"], 2000, "{rep}");
    assert!(
        p["ops"]["send"]["latency_us"]["p99"].as_f64().unwrap_or(0.0) > 0.0,
        "{rep}"
    );

    // Batches: 10 × 64 + one partial of 40 = 680 messages.
    let (pb, rep) = bench(
        &b,
        d,
        "batch",
        &[
            "produce",
            "--topic",
            "NB",
            "--messages",
            "680",
            "--warmup",
            "0",
            "--batch",
            "64",
        ],
    );
    assert_eq!(pb["errors_total"], 0, "{rep}");
    assert_eq!(pb["produced_total"], 680, "{rep}");
    assert_eq!(pb["ops"]["send"]["requests"], 11, "{rep}");

    let (c, rep) = bench(
        &b,
        d,
        "consume",
        &[
            "consume",
            "--topic",
            "NB",
            "--from-start",
            "--messages",
            "2680",
            "--warmup",
            "0",
            "--duration",
            "60",
        ],
    );
    assert_eq!(c["errors_total"], 0, "{rep}");
    assert_eq!(c["consumed_total"], 2680, "{rep}");

    // --messages alone: no warm-up, exactly N in all (issue 7: with the
    // old 1 s warm-up default the budget went to the warm-up and the run
    // never ended).
    let (m, rep) = bench(
        &b,
        d,
        "messages",
        &[
            "produce",
            "--topic",
            "NW",
            "--messages",
            "500",
            "--mode",
            "async",
            "--inflight",
            "4",
        ],
    );
    assert_eq!(m["params"]["resolved"]["warmup_secs"], 0.0, "{rep}");
    assert_eq!(m["produced_total"], 500, "{rep}");
    assert_eq!(m["ops"]["send"]["messages"], 500, "{rep}");

    // With a warm-up: its messages are outside the budget, the measured
    // window has exactly N, and the warm-up second is labelled so.
    let (w, rep) = bench(
        &b,
        d,
        "warmup",
        &[
            "produce",
            "--topic",
            "NW",
            "--messages",
            "300",
            "--warmup",
            "1.2",
            "--connections",
            "2",
            "--mode",
            "async",
            "--inflight",
            "4",
        ],
    );
    assert_eq!(w["errors_total"], 0, "{rep}");
    assert_eq!(w["ops"]["send"]["messages"], 300, "{rep}");
    assert!(w["produced_total"].as_u64().unwrap_or(0) > 300, "{rep}");
    assert_eq!(w["timeline"][0]["phase"], "warm-up", "{rep}");
    let out = std::fs::read_to_string(d.join("warmup.out")).unwrap_or_default();
    assert!(out.contains("s] warm-up |"), "{rep}");

    // A message over the broker's maxMessageSize: the run fails and shows
    // the broker's response code name and remark.
    let big = bench_fails(
        &b,
        d,
        "too-big",
        &["produce", "--topic", "NW", "--size", "5000000", "--messages", "2"],
    );
    let text = format!("{}\n{}", big.out, big.err);
    let remark = text
        .split_once("send code 13 MESSAGE_ILLEGAL: ")
        .map(|(_, rest)| rest.lines().next().unwrap_or("").trim().to_string());
    assert!(
        remark.is_some_and(|r| !r.is_empty()),
        "{}",
        big.report("too-big", d, Some(&b.log))
    );
    assert!(
        text.contains("no request succeeded"),
        "{}",
        big.report("too-big", d, Some(&b.log))
    );

    // A new group with no traffic gets a hint.
    let (h, rep) = bench(
        &b,
        d,
        "hint",
        &[
            "consume",
            "--topic",
            "NW",
            "--group",
            "fresh",
            "--duration",
            "1",
            "--warmup",
            "0",
        ],
    );
    assert_eq!(h["consumed_total"], 0, "{rep}");
    let out = std::fs::read_to_string(d.join("hint.out")).unwrap_or_default();
    assert!(
        out.contains("hint: 0 messages consumed") && out.contains("--from-start"),
        "{rep}"
    );

    let hdr = d.join("e2e.hdr");
    let hdr_s = hdr.to_string_lossy().into_owned();
    let (e, rep) = bench(
        &b,
        d,
        "e2e",
        &[
            "e2e",
            "--topic",
            "NB",
            "--duration",
            "2",
            "--warmup",
            "0.5",
            "--connections",
            "2",
            "--mode",
            "async",
            "--inflight",
            "4",
            "--hdr",
            &hdr_s,
        ],
    );
    assert_eq!(e["errors_total"], 0, "{rep}");
    let produced = e["produced_total"].as_u64().expect("produced");
    assert!(produced > 0, "{rep}");
    assert_eq!(e["consumed_total"].as_u64(), Some(produced), "{rep}");
    assert!(e["ops"]["e2e"]["latency_samples"].as_u64().unwrap_or(0) > 0, "{rep}");
    let log = std::fs::read_to_string(&hdr).expect("hdr log");
    assert!(log.contains("Tag=e2e,") && log.contains("Tag=send,"), "{log}");

    let svg = d.join("runs.svg");
    let st = Command::new(BENCH)
        .args(["plot", "--out"])
        .arg(&svg)
        .arg(d.join("produce.json"))
        .arg(d.join("e2e.json"))
        .status()
        .expect("plot");
    assert!(st.success());
    let text = std::fs::read_to_string(&svg).expect("svg");
    assert!(
        text.contains("<svg") && text.contains("polyline"),
        "{}",
        &text[..text.len().min(500)]
    );
}

/// What the fake broker does with the n-th send (from 1).
#[derive(Clone, Copy)]
enum FakeSend {
    Reply,
    Lose,
    Close,
}

/// A name server and broker on one port that routes every topic to itself
/// (one queue) and treats sends as `plan` says: to check that the bench
/// ends, and counts right, when replies are lost or connections drop.
fn fake_broker(plan: fn(u64) -> FakeSend) -> String {
    use shardmq::protocol::codes::{request, response};
    use shardmq::protocol::{encode_frame, FrameDecoder, RemotingCommand};
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let route = format!(
        r#"{{"brokerDatas":[{{"brokerAddrs":{{"0":"{addr}"}},"brokerName":"fake","cluster":"c","enableActingMaster":false}}],"filterServerTable":{{}},"queueDatas":[{{"brokerName":"fake","perm":6,"readQueueNums":1,"topicSysFlag":0,"writeQueueNums":1}}]}}"#
    );
    let sends = Arc::new(AtomicU64::new(0));
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let (route, sends) = (route.clone(), sends.clone());
            std::thread::spawn(move || {
                let decoder = FrameDecoder::new();
                let mut buf = bytes::BytesMut::new();
                let mut chunk = vec![0u8; 64 * 1024];
                loop {
                    let n = match conn.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    buf.extend_from_slice(&chunk[..n]);
                    while let Ok(Some(req)) = decoder.decode(&mut buf) {
                        let reply = match req.code {
                            request::GET_ROUTEINFO_BY_TOPIC => {
                                RemotingCommand::response_to(&req, response::SUCCESS, None)
                                    .with_body(route.clone().into_bytes())
                            }
                            request::SEND_MESSAGE_V2 | request::SEND_BATCH_MESSAGE => {
                                match plan(sends.fetch_add(1, Ordering::SeqCst) + 1) {
                                    FakeSend::Reply => RemotingCommand::response_to(&req, response::SUCCESS, None),
                                    FakeSend::Lose => continue,
                                    FakeSend::Close => return,
                                }
                            }
                            _ => RemotingCommand::response_to(&req, response::SYSTEM_ERROR, Some("fake".into())),
                        };
                        let mut out = bytes::BytesMut::new();
                        if encode_frame(&reply, &mut out).is_err() || conn.write_all(&out).is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn lost_replies_time_out_and_the_run_still_ends() {
    let dir = TestDir::new();
    let d = dir.path();
    // Every second reply is lost: the run ends after its 10 messages with
    // 5 timeouts, within the error rate allowed.
    let ns = fake_broker(|n| if n % 2 == 1 { FakeSend::Reply } else { FakeSend::Lose });
    let json = d.join("half.json");
    let json_s = json.to_string_lossy().into_owned();
    let started = Instant::now();
    let args = [
        "produce",
        "--topic",
        "F",
        "--messages",
        "10",
        "--mode",
        "async",
        "--inflight",
        "4",
        "--cores",
        "0",
        "--request-timeout",
        "1",
        "--max-error-rate",
        "0.5",
        "--json",
        &json_s,
    ];
    let run = run_bench(&ns, d, "half", &args, Duration::from_secs(60), None);
    let rep = run.report("half", d, None);
    assert!(run.ok, "{rep}");
    assert!(started.elapsed() < Duration::from_secs(30), "{rep}");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("json");
    assert_eq!(v["produced_total"], 5, "{rep}");
    assert_eq!(v["errors_total"], 5, "{rep}");
    assert_eq!(v["errors"]["send timeout"], 5, "{rep}");
    assert!(run.err.contains("send timeout: no reply within 1 s"), "{rep}");

    // Every reply lost: the default threshold fails the run.
    let ns = fake_broker(|_| FakeSend::Lose);
    let run = run_bench(
        &ns,
        d,
        "none",
        &[
            "produce",
            "--topic",
            "F",
            "--messages",
            "3",
            "--cores",
            "0",
            "--request-timeout",
            "1",
        ],
        Duration::from_secs(60),
        None,
    );
    let rep = run.report("none", d, None);
    assert!(!run.ok, "{rep}");
    assert!(
        run.err.contains("3 of 3 requests failed") && run.err.contains("no request succeeded"),
        "{rep}"
    );

    // The broker drops the connection: the producer's outstanding requests
    // fail at once, and with no connection left the run ends early.
    let ns = fake_broker(|_| FakeSend::Close);
    let started = Instant::now();
    let run = run_bench(
        &ns,
        d,
        "closed",
        &[
            "produce",
            "--topic",
            "F",
            "--duration",
            "30",
            "--warmup",
            "0",
            "--cores",
            "0",
        ],
        Duration::from_secs(60),
        None,
    );
    let rep = run.report("closed", d, None);
    assert!(!run.ok, "{rep}");
    assert!(started.elapsed() < Duration::from_secs(15), "{rep}");
    assert!(run.out.contains("send connection closed"), "{rep}");
}
