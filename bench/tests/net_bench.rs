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

/// A free port whose next `extra` ports are free too.
fn free_ports(extra: u16) -> u16 {
    for _ in 0..200 {
        let p = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind")
            .port();
        if !(1100..=60000).contains(&p) {
            continue;
        }
        if (p - 2..=p + extra).all(|q| TcpListener::bind(("127.0.0.1", q)).is_ok()) {
            return p;
        }
    }
    panic!("no free ports");
}

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
    let (port, shard_base, ns) = (free_ports(2), free_ports(3), free_ports(0));
    let log = dir.join("broker.log");
    let mut child = Command::new(broker_binary())
        .arg("serve")
        .args(["--set", &format!("storePathRootDir={}", dir.join("data").display())])
        .args(["--set", &format!("listenPort={port}")])
        .args(["--set", &format!("namesrvListenPort={ns}")])
        .args(["--set", &format!("shardListenPortBase={shard_base}")])
        .args([
            "--set",
            "shardCount=2",
            "--set",
            "metricsPort=0",
            "--set",
            "brokerIP1=127.0.0.1",
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

/// Runs the bench with `args`, bounded in time, and returns its JSON summary.
fn bench(b: &Broker, dir: &Path, name: &str, args: &[&str]) -> Value {
    let json = dir.join(format!("{name}.json"));
    let mut child = Command::new(BENCH)
        .args(args)
        .args(["--namesrv", &b.namesrv, "--json"])
        .arg(&json)
        .stdout(std::fs::File::create(dir.join(format!("{name}.out"))).expect("out"))
        .stderr(std::fs::File::create(dir.join(format!("{name}.err"))).expect("err"))
        .spawn()
        .expect("spawn shardmq-bench");
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("shardmq-bench {name} did not finish in 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = std::fs::read_to_string(dir.join(format!("{name}.out"))).unwrap_or_default();
    let err = std::fs::read_to_string(dir.join(format!("{name}.err"))).unwrap_or_default();
    assert!(status.success(), "{name} failed: {status}\n{out}\n{err}");
    assert!(out.contains("parameters: {"), "every run prints its parameters:\n{out}");
    assert!(out.contains("summary"), "{out}");
    serde_json::from_str(&std::fs::read_to_string(&json).expect("summary json")).expect("json")
}

#[test]
fn produce_consume_e2e_against_the_real_broker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = start_broker(dir.path());
    let d = dir.path();

    let p = bench(
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
    assert_eq!(p["errors_total"], 0, "{p}");
    assert_eq!(p["produced_total"], 2000, "{p}");
    assert_eq!(p["ops"]["send"]["messages"], 2000);
    assert!(p["ops"]["send"]["latency_us"]["p99"].as_f64().unwrap_or(0.0) > 0.0);

    // Batches: 10 × 64 + one partial of 40 = 680 messages.
    let pb = bench(
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
    assert_eq!(pb["errors_total"], 0, "{pb}");
    assert_eq!(pb["produced_total"], 680, "{pb}");
    assert_eq!(pb["ops"]["send"]["requests"], 11);

    let c = bench(
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
    assert_eq!(c["errors_total"], 0, "{c}");
    assert_eq!(c["consumed_total"], 2680, "{c}");

    let hdr = d.join("e2e.hdr");
    let hdr_s = hdr.to_string_lossy().into_owned();
    let e = bench(
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
    assert_eq!(e["errors_total"], 0, "{e}");
    let produced = e["produced_total"].as_u64().expect("produced");
    assert!(produced > 0, "{e}");
    assert_eq!(e["consumed_total"].as_u64(), Some(produced), "{e}");
    assert!(e["ops"]["e2e"]["latency_samples"].as_u64().unwrap_or(0) > 0, "{e}");
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
