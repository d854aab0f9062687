//! Automatic failover with the real binaries: three `shardmq controller`
//! processes (a Raft quorum), a standalone name server, and one broker
//! group of two `shardmq serve` processes in controller mode (SYNC_MASTER
//! acknowledgement, SYNC_FLUSH, 2 shards each).
//!
//! * The controller names the first broker master; the second follows it
//!   and joins the in-sync set.
//! * A slave killed, then the master killed right after sends that timed
//!   out waiting for it (FLUSH_SLAVE_TIMEOUT: not acknowledged): the slave
//!   restarts, is elected (it is in the in-sync set), and serves and
//!   takes writes as brokerId 0 in the routes. The old master restarts as
//!   a slave and truncates the tail it wrote but never replicated; both
//!   logs then hold exactly the acknowledged messages.
//! * The controllers' Raft leader is killed, then the new master: the
//!   two controllers left elect a leader and fail the group over again,
//!   with every acknowledged message on the new master.
//! * A paused master (SIGSTOP past the controller's timeout) is replaced;
//!   resumed, it acknowledges nothing (its lease lapsed) and stops with
//!   status 3 when it hears it was demoted.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{decode, pull_req, send_v2, Broker, Client};
use shardmq::protocol::codes::response;
use shardmq_controller::GroupView;

const TOPIC: &str = "FoTopic";
const QUEUES: u32 = 4;
const GROUP: &str = "fo-a";
/// The controllers fail a master over after this long without a heartbeat.
const HEARTBEAT_TIMEOUT_MS: u64 = 1500;

struct Proc {
    child: Option<Child>,
    args: Vec<String>,
    log: PathBuf,
}

impl Proc {
    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_shardmq"))
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn");
        self.child = Some(child);
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!("---- {} ----\n{}", self.log.display(), common::file_tail(&self.log, 60));
        }
    }
}

struct Cluster {
    controllers: Vec<Proc>,
    controller_addrs: Vec<String>,
    _namesrv: Proc,
    namesrv: String,
    dir: PathBuf,
}

impl Cluster {
    fn start(dir: &Path) -> Cluster {
        let ports: Vec<u16> = (0..3).map(|_| common::free_port_block(0)).collect();
        let peers = ports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{}=127.0.0.1:{p}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let controllers = (0..3)
            .map(|i| {
                let d = dir.join(format!("controller-{}", i + 1));
                std::fs::create_dir_all(&d).expect("dir");
                let mut p = Proc {
                    child: None,
                    args: vec![
                        "controller".into(),
                        "--id".into(),
                        (i + 1).to_string(),
                        "--peers".into(),
                        peers.clone(),
                        "--data-dir".into(),
                        d.display().to_string(),
                        "--heartbeat-timeout-ms".into(),
                        HEARTBEAT_TIMEOUT_MS.to_string(),
                    ],
                    log: d.join("controller.log"),
                };
                p.spawn();
                p
            })
            .collect();
        let ns_port = common::free_port_block(0);
        let mut namesrv = Proc {
            child: None,
            args: vec!["namesrv".into(), "--port".into(), ns_port.to_string()],
            log: dir.join("namesrv.log"),
        };
        namesrv.spawn();
        Cluster {
            controllers,
            controller_addrs: ports.iter().map(|p| format!("127.0.0.1:{p}")).collect(),
            _namesrv: namesrv,
            namesrv: format!("127.0.0.1:{ns_port}"),
            dir: dir.to_path_buf(),
        }
    }

    fn broker(&self, id: u64) -> Broker {
        let d = self.dir.join(format!("broker-{id}"));
        std::fs::create_dir_all(&d).expect("dir");
        let settings = [
            "enableControllerMode=true".to_string(),
            format!("controllerAddr={}", self.controller_addrs.join(";")),
            format!("brokerId={id}"),
            format!("brokerName={GROUP}"),
            "brokerRole=SYNC_MASTER".into(),
            "flushDiskType=SYNC_FLUSH".into(),
            "syncFlushTimeout=800".into(),
            "embeddedNamesrvEnable=false".into(),
            format!("namesrvAddr={}", self.namesrv),
            "brokerHeartbeatInterval=250".into(),
            "masterLeaseMillis=1000".into(),
            "haMaxTimeSlaveNotCatchup=6000".into(),
            "autoCreateTopicEnable=false".into(),
        ];
        let refs: Vec<&str> = settings.iter().map(String::as_str).collect();
        Broker::start(&d, 2, &refs)
    }

    fn group(&self) -> Option<GroupView> {
        let mut c = shardmq_controller::client::Client::new(self.controller_addrs.clone(), Duration::from_secs(1));
        c.groups().ok()?.into_iter().find(|g| g.broker_name == GROUP)
    }

    /// Waits (at most `within`) for the group to satisfy `ok`.
    fn wait_group(&self, what: &str, within: Duration, ok: impl Fn(&GroupView) -> bool) -> GroupView {
        let deadline = Instant::now() + within;
        let mut last = None;
        while Instant::now() < deadline {
            if let Some(g) = self.group() {
                if ok(&g) {
                    return g;
                }
                last = Some(g);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("{what}: not within {within:?}; the group: {last:?}");
    }

    /// The controller node that is the Raft leader now.
    fn leader(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            for (i, a) in self.controller_addrs.iter().enumerate() {
                if self.controllers[i].child.is_none() {
                    continue;
                }
                let mut c = shardmq_controller::client::Client::new(vec![a.clone()], Duration::from_secs(1));
                if let Ok(s) = c.status(a) {
                    if s.leader_id == Some(s.node_id) {
                        return i;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("no controller leader");
    }
}

fn send(c: &mut Client, i: u32, body: &str) -> (i32, Option<String>) {
    let r = c.call(send_v2(TOPIC, (i % QUEUES).into(), body, "WAIT\u{1}true\u{2}".into()));
    (r.code, r.remark)
}

/// Sends `body` to `b` until SUCCESS (within `within`); the time it took.
fn send_until_ok(b: &Broker, i: u32, body: &str, within: Duration) -> Duration {
    let start = Instant::now();
    let mut last = None;
    while start.elapsed() < within {
        if let Ok(mut c) = std::panic::catch_unwind(|| Client::connect(&b.addr())) {
            let (code, remark) = send(&mut c, i, body);
            if code == response::SUCCESS {
                return start.elapsed();
            }
            last = Some((code, remark));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no SUCCESS from {} within {within:?}: {last:?}", b.addr());
}

/// Every body of the topic on `b`, in queue order.
fn bodies(b: &Broker) -> Vec<String> {
    let mut c = Client::connect(&b.addr());
    let mut out = Vec::new();
    for q in 0..QUEUES {
        let mut off = 0;
        loop {
            let r = c.call(pull_req(TOPIC, q, off, false, "*"));
            if r.code != response::SUCCESS {
                break;
            }
            let got = decode(&r.body);
            if got.is_empty() {
                break;
            }
            off = got.last().map(|g| g.0 + 1).unwrap_or(off);
            out.extend(got.into_iter().map(|(_, b, _)| b));
        }
    }
    out.sort();
    out
}

fn signal(b: &Broker, sig: i32) {
    let pid = b.child.as_ref().expect("running").id() as i32;
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
}

fn master_is(id: u64, epoch_above: u32) -> impl Fn(&GroupView) -> bool {
    move |g| g.master_id == Some(id) && g.master_epoch > epoch_above
}

fn in_sync(ids: &[u64]) -> impl Fn(&GroupView) -> bool + '_ {
    move |g| {
        let mut s = g.sync_state_set.clone();
        s.sort();
        s == ids
    }
}

#[test]
fn a_dead_master_fails_over_to_its_in_sync_slave_and_returns_as_a_slave_without_its_unacknowledged_tail() {
    let dir = common::test_dir();
    let cl = Cluster::start(dir.path());
    let mut a = cl.broker(1);
    let g = cl.wait_group("broker 1 master", Duration::from_secs(30), master_is(1, 0));
    assert_eq!(g.master_epoch, 1);
    a.create_topic(TOPIC, QUEUES);
    let mut b = cl.broker(2);
    cl.wait_group("broker 2 in sync", Duration::from_secs(30), in_sync(&[1, 2]));

    let mut acked = Vec::new();
    let mut c = Client::connect(&a.addr());
    for i in 0..100 {
        let body = format!("a{i:03}");
        let (code, remark) = send(&mut c, i, &body);
        assert_eq!(code, response::SUCCESS, "{remark:?}");
        acked.push(body);
    }
    // The slave dies; the master's next sends wait for it (it is still in
    // the in-sync set) and time out: stored on the master, acknowledged
    // nowhere.
    b.kill9();
    for i in 0..3 {
        let (code, remark) = send(&mut c, i, &format!("unacked{i}"));
        assert_eq!(code, response::FLUSH_SLAVE_TIMEOUT, "{remark:?}");
    }
    a.kill9();
    let killed = Instant::now();
    b.spawn();
    let g = cl.wait_group("broker 2 elected", Duration::from_secs(30), master_is(2, 1));
    assert_eq!(g.master_epoch, 2);
    let first_ack = send_until_ok(&b, 0, "b000", Duration::from_secs(30));
    acked.push("b000".into());
    eprintln!(
        "failover: the old master killed -> the new master's first ack: {:?}",
        killed.elapsed()
    );
    assert!(first_ack < Duration::from_secs(30));
    let mut c = Client::connect(&b.addr());
    for i in 1..50 {
        let body = format!("b{i:03}");
        let (code, remark) = send(&mut c, i, &body);
        assert_eq!(code, response::SUCCESS, "{remark:?}");
        acked.push(body);
    }
    // The name server routes writes to the new master.
    let mut ns = Client::connect(&cl.namesrv);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = ns.call(common::req(
            shardmq::protocol::codes::request::GET_ROUTEINFO_BY_TOPIC,
            &[("topic", TOPIC.into())],
        ));
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
        let datas = v["brokerDatas"].as_array().cloned().unwrap_or_default();
        let promoted = datas.len() == 2
            && datas.iter().all(|d| {
                let name = d["brokerName"].as_str().unwrap_or("");
                let k: u16 = name.rsplit("-s").next().and_then(|k| k.parse().ok()).unwrap_or(99);
                d["brokerAddrs"]["0"] == b.shard_addr(k).as_str()
            });
        if promoted {
            break;
        }
        assert!(Instant::now() < deadline, "routes never named broker 2 master: {v}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // The old master returns: a slave now, without the unacknowledged tail.
    a.spawn();
    cl.wait_group("broker 1 back in sync", Duration::from_secs(30), in_sync(&[1, 2]));
    acked.sort();
    let on_b = bodies(&b);
    assert_eq!(on_b, acked, "the new master holds exactly the acknowledged messages");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let on_a = bodies(&a);
        if on_a == acked {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the returned old master's log differs: {} messages, unacked ones: {:?}",
            on_a.len(),
            on_a.iter().filter(|m| m.starts_with("unacked")).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = std::fs::read_to_string(&a.log).unwrap_or_default();
    assert!(log.contains("truncated the log"), "no truncation logged");

    // The controllers' leader dies, then the master: the two controllers
    // left fail the group over once more.
    let mut cl = cl;
    let l = cl.leader();
    cl.controllers[l].kill9();
    b.kill9();
    let g = cl.wait_group("broker 1 elected again", Duration::from_secs(30), master_is(1, 2));
    assert_eq!(g.master_epoch, 3);
    send_until_ok(&a, 1, "c000", Duration::from_secs(30));
    acked.push("c000".into());
    acked.sort();
    assert_eq!(bodies(&a), acked);
}

#[test]
fn a_paused_master_is_replaced_acknowledges_nothing_when_resumed_and_stops() {
    let dir = common::test_dir();
    let cl = Cluster::start(dir.path());
    let mut a = cl.broker(1);
    cl.wait_group("broker 1 master", Duration::from_secs(30), master_is(1, 0));
    a.create_topic(TOPIC, QUEUES);
    let b = cl.broker(2);
    cl.wait_group("broker 2 in sync", Duration::from_secs(30), in_sync(&[1, 2]));
    let mut acked = Vec::new();
    let mut c = Client::connect(&a.addr());
    for i in 0..40 {
        let body = format!("p{i:03}");
        assert_eq!(send(&mut c, i, &body).0, response::SUCCESS);
        acked.push(body);
    }
    signal(&a, libc::SIGSTOP);
    cl.wait_group("broker 2 elected", Duration::from_secs(30), master_is(2, 1));
    send_until_ok(&b, 0, "q000", Duration::from_secs(30));
    acked.push("q000".into());
    signal(&a, libc::SIGCONT);
    // Resumed, the old master acknowledges nothing, and stops.
    for i in 0..5 {
        let (code, _) = send(&mut c, i, &format!("split{i}"));
        if code == -1 {
            break; // the connection closed: it stopped
        }
        assert_ne!(code, response::SUCCESS, "a demoted master acknowledged a send");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = a.child.as_mut().and_then(|ch| ch.try_wait().ok().flatten()) {
            break s;
        }
        assert!(Instant::now() < deadline, "the demoted master did not stop");
        std::thread::sleep(Duration::from_millis(100));
    };
    a.child = None;
    assert_eq!(status.code(), Some(3), "exit status of a demoted master");
    a.spawn();
    cl.wait_group("broker 1 in sync again", Duration::from_secs(30), in_sync(&[1, 2]));
    acked.sort();
    assert_eq!(bodies(&b), acked);
    let deadline = Instant::now() + Duration::from_secs(20);
    while bodies(&a) != acked {
        assert!(Instant::now() < deadline, "the old master's log differs");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_master_cut_off_from_the_controllers_stops_acknowledging_within_its_lease() {
    let dir = common::test_dir();
    let mut cl = Cluster::start(dir.path());
    let a = cl.broker(1);
    cl.wait_group("broker 1 master", Duration::from_secs(30), master_is(1, 0));
    a.create_topic(TOPIC, QUEUES);
    let mut c = Client::connect(&a.addr());
    assert_eq!(send(&mut c, 0, "x").0, response::SUCCESS);
    for p in &mut cl.controllers {
        p.kill9();
    }
    std::thread::sleep(Duration::from_millis(1500));
    let (code, remark) = send(&mut c, 1, "y");
    assert_eq!(code, response::SERVICE_NOT_AVAILABLE, "{remark:?}");
    assert!(remark.unwrap_or_default().contains("controller"));
    for p in &mut cl.controllers {
        p.spawn();
    }
    // The controllers recover their state from disk and confirm it again.
    send_until_ok(&a, 2, "z", Duration::from_secs(30));
}
