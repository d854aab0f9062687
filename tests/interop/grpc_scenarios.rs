//! What the 5.x gRPC scenario programs (Java `grpc` of tests/interop/java5,
//! Python tests/interop/python5/grpc_scenario.py, Node.js
//! tests/interop/node5/grpc_scenario.js) must show, shared by
//! tests/interop_java_grpc.rs, tests/interop_python_grpc.rs and
//! tests/interop_node_grpc.rs; the runners of the Python and Node programs.

#![allow(dead_code)] // each test file uses a part

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::harness::{free_port, interop_dir, Broker, Ports};

pub const TOPIC: &str = "GrpcT";

fn s(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or("").to_string()
}

fn n(v: &Value, k: &str) -> i64 {
    v[k].as_i64().unwrap_or(-1)
}

/// A SYNC_FLUSH broker with gRPC on free ports and the scenario topic;
/// returns it and the access point.
pub fn start() -> (Broker, String) {
    start_with(&[])
}

/// [`start`] with more broker settings.
pub fn start_with(extra: &[(&str, &str)]) -> (Broker, String) {
    // A block of free ports for the shards' gRPC ports (one per shard), as
    // the harness picks the remoting shard ports.
    let (access, shard_base) = (free_port(), Ports::pick().shards);
    let (access_s, base_s) = (access.to_string(), shard_base.to_string());
    let mut settings = vec![
        ("grpcListenPort", access_s.as_str()),
        ("grpcShardPortBase", base_s.as_str()),
        // Open transactions are checked 3 s after their send, then
        // every 2 s: orphans are recovered within the scenario.
        ("transactionTimeOut", "3000"),
        ("transactionCheckInterval", "2000"),
    ];
    settings.extend_from_slice(extra);
    let broker = Broker::start_with("SYNC_FLUSH", &settings);
    broker.create_topic(TOPIC);
    (broker, format!("127.0.0.1:{access}"))
}

/// Runs the Python scenario program to its end (bounded by `timeout`) and
/// returns its events.
pub fn run_python(endpoint: &str, group: &str, count: u32, timeout: Duration) -> Vec<Value> {
    let mut cmd = Command::new(interop_dir().join("venv5").join("bin").join("python"));
    cmd.arg(scenario_dir().join("python5/grpc_scenario.py"));
    // Python 5.1.2 picks a random queue (so a random shard) for every
    // receive: with 2 shards, 5 receives of 5 s in a 30 s linger all miss
    // nack-me's shard about 1 time in 32 (seen in CI: five empty polls
    // after it was due). 60 s makes that about 1 in 2 000.
    run_program("Python", cmd, endpoint, group, count, timeout, 60_000)
}

/// Runs the Node.js scenario program (rocketmq-client-nodejs, installed in
/// target/interop/node5) to its end (bounded by `timeout`) and returns its
/// events.
pub fn run_node(endpoint: &str, group: &str, count: u32, timeout: Duration) -> Vec<Value> {
    let mut cmd = Command::new("node");
    cmd.arg(scenario_dir().join("node5/grpc_scenario.js"));
    cmd.env("NODE_PATH", interop_dir().join("node5").join("node_modules"));
    run_program("Node", cmd, endpoint, group, count, timeout, 30_000)
}

fn scenario_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

/// Runs one scenario program (`cmd`, the options added here) to its end:
/// killed `timeout` + 10 s after its start; it must print `done` and no
/// `error`. Both output pipes are drained while it runs.
fn run_program(
    what: &str,
    mut cmd: Command,
    endpoint: &str,
    group: &str,
    count: u32,
    timeout: Duration,
    linger_ms: u32,
) -> Vec<Value> {
    cmd.args(["--endpoint", endpoint, "--topic", TOPIC, "--group", group])
        .args([
            "--count",
            &count.to_string(),
            "--delay-ms",
            "3000",
            "--linger-ms",
            &linger_ms.to_string(),
        ])
        .args(["--timeout-ms", &timeout.as_millis().to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn the {what} gRPC scenario ({cmd:?}): {e}"));
    let stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| serde_json::from_str::<Value>(&l).ok())
            .collect::<Vec<_>>()
    });
    let mut stderr = child.stderr.take().expect("stderr");
    let err_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = stderr.read_to_end(&mut b);
        String::from_utf8_lossy(&b).into_owned()
    });
    let started = Instant::now();
    let deadline = started + timeout + Duration::from_secs(10);
    let timed_out = loop {
        if let Ok(Some(_)) = child.try_wait() {
            break false;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break true;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let events = reader.join().expect("reader");
    let err = err_reader.join().expect("stderr reader");
    eprintln!("the {what} gRPC scenario ran {:?}", started.elapsed());
    assert!(
        !timed_out,
        "the {what} gRPC scenario did not end within {timeout:?}: {events:?}\nstderr:\n{}",
        tail(&err, 6000)
    );
    assert!(
        events.iter().any(|e| e["event"] == "done") && !events.iter().any(|e| e["event"] == "error"),
        "the {what} gRPC scenario failed: {events:?}\nstderr:\n{}",
        tail(&err, 6000)
    );
    events
}

fn tail(s: &str, max: usize) -> &str {
    let mut start = s.len().saturating_sub(max);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// The scenario's events as the broker must have made them happen.
pub fn check(ctx: &str, events: &[Value], count: usize) {
    // Captured by the test harness: shown only when a check below fails.
    eprintln!("{ctx}: the client's events:");
    for e in events {
        eprintln!("  {e}");
    }
    // The orphaned transactions of the Java program: `check_orphans`.
    let sent: BTreeMap<String, String> = events
        .iter()
        .filter(|e| e["event"] == "sent" && !s(e, "key").starts_with("tx-orphan-"))
        .map(|e| (s(e, "key"), s(e, "id")))
        .collect();
    assert_eq!(
        sent.len(),
        count + 5,
        "{ctx}: every send answered with a message id: {sent:?}"
    );
    let due = events
        .iter()
        .find(|e| e["event"] == "delay")
        .map(|e| n(e, "dueMs"))
        .expect("delay event");
    let mut got: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for e in events
        .iter()
        .filter(|e| e["event"] == "received" && !s(e, "key").starts_with("tx-orphan-"))
    {
        got.entry(s(e, "key")).or_default().push(e);
    }
    // Everything but the rolled-back transaction, each once (nack-me twice).
    for (key, id) in &sent {
        let d = got.get(key).cloned().unwrap_or_default();
        match key.as_str() {
            "tx-rollback" => assert!(d.is_empty(), "{ctx}: a rolled-back message was delivered: {d:?}"),
            "nack-me" => {
                let attempts: Vec<i64> = d.iter().map(|e| n(e, "attempt")).collect();
                assert_eq!(
                    attempts,
                    [1, 2],
                    "{ctx}: nack-me not acked once must come back once, attempt 2"
                );
                let gap = n(d[1], "recvMs") - n(d[0], "recvMs");
                // The client must come back to that shard within its linger:
                // clients take turns over (or pick at random among) the
                // route's queues, long-polling 5 s on each empty one.
                // The lease starts at the pop, before the SYNC_FLUSH the
                // reply waits for: measured at the client it may look up to
                // one flush shorter (2–54 ms seen; a loaded disk: more).
                assert!(
                    (9_500..=65_000).contains(&gap),
                    "{ctx}: nack-me came back {gap} ms after its first delivery (invisible time 10 s)"
                );
            }
            _ => {
                assert_eq!(d.len(), 1, "{ctx}: {key} delivered {} times: {d:?}", d.len());
                assert_eq!(n(d[0], "attempt"), 1);
            }
        }
        for e in &d {
            assert_eq!(&s(e, "id"), id, "{ctx}: {key} received under another message id");
            assert_eq!(s(e, "tag"), "TagA");
        }
    }
    assert_eq!(
        s(got["fifo"][0], "group"),
        "group-1",
        "{ctx}: the message group is kept"
    );
    let at = n(got["delayed"][0], "recvMs");
    assert!(at >= due - 100, "{ctx}: the delayed message came {} ms early", due - at);
    // Receives take turns over the shard entries (and, for some clients,
    // their queues), each long-polling 5 s when it finds nothing.
    assert!(
        at <= due + 25_000,
        "{ctx}: the delayed message came {} ms late",
        at - due
    );
    assert_eq!(s(got["n0"][0], "body"), "body-0");
    let acks = events
        .iter()
        .filter(|e| e["event"] == "acked" && !s(e, "key").starts_with("tx-orphan-"))
        .count();
    assert_eq!(acks, count + 4, "{ctx}: every ack answered OK: {events:?}");
    assert!(
        !events
            .iter()
            .any(|e| e["event"] == "ack-error" || e["event"] == "receive-error"),
        "{ctx}: client errors: {events:?}"
    );
}

/// Transactions the producer left open (`tx-orphan-commit`,
/// `tx-orphan-rollback`): the broker sends RecoverOrphanedTransactionCommand
/// over the producer's Telemetry stream once `transactionTimeOut` (3 s) has
/// passed; the checker's COMMIT delivers the message once, its ROLLBACK
/// never. Each is checked exactly once: the answer resolves it.
pub fn check_orphans(ctx: &str, events: &[Value]) {
    let of = |event: &str, key: &str| -> Vec<&Value> {
        events
            .iter()
            .filter(|e| e["event"] == event && s(e, "key") == key)
            .collect()
    };
    for key in ["tx-orphan-commit", "tx-orphan-rollback"] {
        let sent = of("sent", key);
        assert_eq!(sent.len(), 1, "{ctx}: {key} sent once: {events:?}");
        let checks = of("checked", key);
        assert_eq!(
            checks.len(),
            1,
            "{ctx}: {key} must be checked exactly once over Telemetry: {checks:?}"
        );
        assert_eq!(
            s(checks[0], "id"),
            s(sent[0], "id"),
            "{ctx}: {key} checked under another id"
        );
        let after = n(checks[0], "atMs") - n(sent[0], "atMs");
        assert!(
            // `atMs` is taken after the send's flush, the check counts
            // from the store time: up to one flush earlier.
            (2_500..=12_000).contains(&after),
            "{ctx}: {key} checked {after} ms after its send (transactionTimeOut 3 s, checks every 2 s)"
        );
    }
    let committed = of("received", "tx-orphan-commit");
    assert_eq!(
        committed.len(),
        1,
        "{ctx}: the orphan the checker committed is delivered once: {committed:?}"
    );
    assert_eq!(n(committed[0], "attempt"), 1);
    assert_eq!(s(committed[0], "id"), s(of("sent", "tx-orphan-commit")[0], "id"));
    assert!(
        of("received", "tx-orphan-rollback").is_empty(),
        "{ctx}: the orphan the checker rolled back was delivered"
    );
}
