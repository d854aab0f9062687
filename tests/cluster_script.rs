//! `scripts/cluster.sh` as users run it: a standalone name server and two
//! broker groups of a SYNC_MASTER and a slave (four `shardmq serve`
//! processes); `shardmq admin topic create --cluster` creates the topic on
//! both masters, the route lists every shard entry with its master (id 0)
//! and slave (id 1), sends to each master are acknowledged and found on
//! its slave, and `stop` ends every process.
//!
//! Ports 15000..=19999 (the script's layout from `--base 15000`), below
//! the ephemeral range the other tests' ports come from.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{pull_all, req, send_v2, Client};
use shardmq::protocol::codes::{request, response};

const BASE: u16 = 15000;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/cluster.sh")
}

fn cluster(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("bash")
        .arg(script())
        .args(args)
        .args(["--dir", dir.to_str().expect("utf8"), "--base", &BASE.to_string()])
        .env("SHARDMQ_BIN", env!("CARGO_BIN_EXE_shardmq"))
        .output()
        .expect("run scripts/cluster.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "cluster.sh {args:?} failed:\n{text}");
    text
}

/// Stops the cluster however the test ends.
struct Running<'a>(&'a Path);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .args(["stop", "--dir", self.0.to_str().unwrap_or(".")])
            .status();
        if std::thread::panicking() {
            for log in ["broker-a-0/broker.log", "broker-a-1/broker.log"] {
                eprintln!("---- {log} ----\n{}", common::file_tail(&self.0.join(log), 40));
            }
        }
    }
}

fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not within 20 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn cluster_script_starts_two_groups_of_master_and_slave_that_replicate_and_stops_them() {
    let dir = common::test_dir();
    let d = dir.path().join("cluster");
    let started = cluster(
        &d,
        &[
            "start",
            "--groups",
            "2",
            "--slaves",
            "1",
            "--role",
            "SYNC_MASTER",
            "--segment-mb",
            "64",
        ],
    );
    let _running = Running(&d);
    for b in [
        "broker-a-0 (SYNC_MASTER)",
        "broker-a-1 (SLAVE)",
        "broker-b-0 (SYNC_MASTER)",
        "broker-b-1 (SLAVE)",
    ] {
        assert!(started.contains(b), "{started}");
    }
    let ns = format!("127.0.0.1:{BASE}");
    let out = Command::new(env!("CARGO_BIN_EXE_shardmq"))
        .args(["admin", "--namesrv", &ns, "topic", "create", "Clu", "--queues", "4"])
        .args(["--cluster", "LocalCluster"])
        .output()
        .expect("shardmq admin");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).matches("created").count(), 2);

    let mut nc = Client::connect(&ns);
    eventually("every shard entry routed to its master and slave", || {
        let r = nc.call(req(request::GET_ROUTEINFO_BY_TOPIC, &[("topic", "Clu".into())]));
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
        let datas = v["brokerDatas"].as_array().cloned().unwrap_or_default();
        datas.len() == 4
            && datas
                .iter()
                .all(|d| d["brokerAddrs"]["0"].is_string() && d["brokerAddrs"]["1"].is_string())
    });

    // broker-a's master and slave, then broker-b's: remoting at BASE + 1000 * (j + 1).
    for (master, slave) in [(BASE + 1000, BASE + 2000), (BASE + 3000, BASE + 4000)] {
        let mut mc = Client::connect(&format!("127.0.0.1:{master}"));
        let mut acked = 0;
        let deadline = Instant::now() + Duration::from_secs(20);
        while acked < 20 {
            let r = mc.call(send_v2(
                "Clu",
                (acked % 4).into(),
                &format!("to-{master}-{acked}"),
                String::new(),
            ));
            match r.code {
                response::SUCCESS => acked += 1,
                // The slave is still connecting.
                response::SLAVE_NOT_AVAILABLE if acked == 0 => std::thread::sleep(Duration::from_millis(100)),
                c => panic!("send to {master}: {c} {:?}", r.remark),
            }
            assert!(Instant::now() < deadline, "the slave of {master} never got in sync");
        }
        let mut sc = Client::connect(&format!("127.0.0.1:{slave}"));
        let on_slave: usize = (0..4).map(|q| pull_all(&mut sc, "Clu", q, "*").len()).sum();
        let on_master: usize = (0..4).map(|q| pull_all(&mut mc, "Clu", q, "*").len()).sum();
        assert!(on_master >= 20, "{on_master}");
        assert_eq!(on_slave, on_master, "slave {slave} of master {master}");
    }

    let stopped = cluster(&d, &["stop"]);
    assert!(stopped.contains("stopped 5 process(es)"), "{stopped}");
    let status = cluster(&d, &["status"]);
    assert!(!status.contains("running"), "{status}");
}
