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
//!   status 3 when it hears it was demoted (`restartWhenDemoted=false`).
//! * A partitioned master: see its test; healed, it starts again in the
//!   same process (the default) and rejoins as a slave.

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
    namesrvs: Vec<Proc>,
    /// The name servers, `;`-separated.
    namesrv: String,
    dir: PathBuf,
    /// The address the controllers, the name server and brokers outside
    /// a namespace use.
    ip: String,
}

impl Cluster {
    fn start(dir: &Path) -> Cluster {
        Cluster::start_on(dir, "127.0.0.1")
    }

    fn start_on(dir: &Path, ip: &str) -> Cluster {
        let ports: Vec<u16> = (0..3).map(|_| common::free_port_block(0)).collect();
        let peers = ports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{}={ip}:{p}", i + 1))
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
            controller_addrs: ports.iter().map(|p| format!("{ip}:{p}")).collect(),
            namesrvs: vec![namesrv],
            namesrv: format!("{ip}:{ns_port}"),
            dir: dir.to_path_buf(),
            ip: ip.to_string(),
        }
    }

    /// Three name servers, each with a controller node embedded
    /// (`shardmq namesrv --controller-id`).
    fn start_embedded(dir: &Path) -> Cluster {
        let ctl_ports: Vec<u16> = (0..3).map(|_| common::free_port_block(0)).collect();
        let ns_ports: Vec<u16> = (0..3).map(|_| common::free_port_block(0)).collect();
        let peers = ctl_ports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{}=127.0.0.1:{p}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let namesrvs = (0..3)
            .map(|i| {
                let d = dir.join(format!("namesrv-{}", i + 1));
                std::fs::create_dir_all(&d).expect("dir");
                let mut p = Proc {
                    child: None,
                    args: vec![
                        "namesrv".into(),
                        "--port".into(),
                        ns_ports[i].to_string(),
                        "--controller-id".into(),
                        (i + 1).to_string(),
                        "--controller-peers".into(),
                        peers.clone(),
                        "--controller-data-dir".into(),
                        d.display().to_string(),
                        "--controller-heartbeat-timeout-ms".into(),
                        HEARTBEAT_TIMEOUT_MS.to_string(),
                    ],
                    log: d.join("namesrv.log"),
                };
                p.spawn();
                p
            })
            .collect();
        Cluster {
            controllers: Vec::new(),
            controller_addrs: ctl_ports.iter().map(|p| format!("127.0.0.1:{p}")).collect(),
            namesrvs,
            namesrv: ns_ports
                .iter()
                .map(|p| format!("127.0.0.1:{p}"))
                .collect::<Vec<_>>()
                .join(";"),
            dir: dir.to_path_buf(),
            ip: "127.0.0.1".into(),
        }
    }

    fn broker(&self, id: u64) -> Broker {
        self.broker_at(id, &self.ip.clone(), None, &[])
    }

    /// Broker `id` advertising `ip`, inside network namespace `netns`,
    /// with `extra` settings.
    fn broker_at(&self, id: u64, ip: &str, netns: Option<&str>, extra: &[&str]) -> Broker {
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
            format!("brokerIP1={ip}"),
        ];
        let mut refs: Vec<&str> = settings.iter().map(String::as_str).collect();
        refs.extend_from_slice(extra);
        Broker::start_in(&d, 2, &refs, netns)
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

/// Every body of the topic on `b`, sorted.
fn bodies(b: &Broker) -> Vec<String> {
    bodies_at(&b.addr())
}

fn bodies_at(addr: &str) -> Vec<String> {
    let mut c = Client::connect(addr);
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

/// Waits (20 s at most) until name server `ns` routes both shard entries
/// of the group to `master` as brokerId 0.
fn wait_routed_to(ns: &str, master: &Broker) {
    let mut nc = Client::connect(ns);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = nc.call(common::req(
            shardmq::protocol::codes::request::GET_ROUTEINFO_BY_TOPIC,
            &[("topic", TOPIC.into())],
        ));
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
        let datas = v["brokerDatas"].as_array().cloned().unwrap_or_default();
        let routed = datas.len() == 2
            && datas.iter().all(|d| {
                let name = d["brokerName"].as_str().unwrap_or("");
                let k: u16 = name.rsplit("-s").next().and_then(|k| k.parse().ok()).unwrap_or(99);
                d["brokerAddrs"]["0"] == master.shard_addr(k).as_str()
            });
        if routed {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{ns} never routed to {} as master: {v}",
            master.addr()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
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
    create_topic_at(&a.addr());
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
    // A delayed message (level 2: 5 s) is due around the failover: the
    // master that holds the timer then delivers it, once.
    let r = c.call(send_v2(
        TOPIC,
        1,
        "delayed",
        "WAIT\u{1}true\u{2}DELAY\u{1}2\u{2}".into(),
    ));
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    acked.push("delayed".into());
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
    wait_routed_to(&cl.namesrv, &b);

    let metrics = common::http_get(b.metrics_port, "/metrics").1;
    assert!(metrics.contains("shardmq_ha_is_master{shard=\"1\"} 1"), "{metrics}");
    assert!(metrics.contains("shardmq_ha_master_epoch{shard=\"0\"} 2"), "{metrics}");

    // The old master returns: a slave now, without the unacknowledged tail.
    a.spawn();
    cl.wait_group("broker 1 back in sync", Duration::from_secs(30), in_sync(&[1, 2]));
    acked.sort();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let on_b = bodies(&b);
        if on_b == acked {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new master should hold exactly the acknowledged messages (the delayed one once): {} of {}",
            on_b.len(),
            acked.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
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
    let ip = cl.ip.clone();
    let mut a = cl.broker_at(1, &ip, None, &["restartWhenDemoted=false"]);
    cl.wait_group("broker 1 master", Duration::from_secs(30), master_is(1, 0));
    create_topic_at(&a.addr());
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
    create_topic_at(&a.addr());
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

/// A network namespace with a veth pair: `host` (10.201.N.1) outside,
/// `inner` (10.201.N.2) inside; removed on drop.
struct Netns {
    name: String,
    host_ip: String,
    inner_ip: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip(8)");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Netns {
    fn new() -> Netns {
        let n = std::process::id() % 200 + 20;
        let name = format!("smq-fo-{n}");
        let (host, inner) = (format!("smqh{n}"), format!("smqn{n}"));
        // Leftovers of an earlier run with the same pid.
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        let _ = Command::new("ip").args(["link", "del", &host]).output();
        let (host_ip, inner_ip) = (format!("10.201.{n}.1"), format!("10.201.{n}.2"));
        ip(&["netns", "add", &name]);
        ip(&["link", "add", &host, "type", "veth", "peer", "name", &inner]);
        ip(&["link", "set", &inner, "netns", &name]);
        ip(&["addr", "add", &format!("{host_ip}/24"), "dev", &host]);
        ip(&["link", "set", &host, "up"]);
        ip(&[
            "netns",
            "exec",
            &name,
            "ip",
            "addr",
            "add",
            &format!("{inner_ip}/24"),
            "dev",
            &inner,
        ]);
        ip(&["netns", "exec", &name, "ip", "link", "set", &inner, "up"]);
        ip(&["netns", "exec", &name, "ip", "link", "set", "lo", "up"]);
        Netns {
            name,
            host_ip,
            inner_ip,
        }
    }

    /// Inside, every packet to the host side is dropped (or let through
    /// again): the namespace's processes can reach nothing outside.
    fn cut(&self, on: bool) {
        let route = format!("{}/32", self.host_ip);
        let verb = if on { "add" } else { "del" };
        ip(&["netns", "exec", &self.name, "ip", "route", verb, "blackhole", &route]);
    }

    /// Runs `f` on a thread inside the namespace (its sockets are there).
    fn thread<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> std::thread::JoinHandle<T> {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).expect("open the netns");
            use std::os::fd::AsRawFd;
            // SAFETY: setns(2) with a valid open namespace fd; it moves only
            // this thread into the namespace, which owns nothing shared.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

/// Creates the topic on the master at `addr`, which may take a moment to
/// apply the role the controller already gave it (NO_PERMISSION until).
fn create_topic_at(addr: &str) {
    let mut c = Client::connect(addr);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = c.call(common::req(
            shardmq::protocol::codes::request::UPDATE_AND_CREATE_TOPIC,
            &[
                ("topic", TOPIC.into()),
                ("readQueueNums", QUEUES.to_string()),
                ("writeQueueNums", QUEUES.to_string()),
                ("perm", "6".into()),
            ],
        ));
        if r.code == response::SUCCESS {
            return;
        }
        assert_eq!(r.code, response::NO_PERMISSION, "{:?}", r.remark);
        assert!(Instant::now() < deadline, "never the master: {:?}", r.remark);
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The old master is cut off from everything (a network namespace whose
/// route to the rest is blackholed) while a client inside the namespace
/// keeps sending to it: the controller elects the slave, the old master
/// acknowledges nothing after that (no split brain), and every message
/// it acknowledged before is on the new master. When the partition heals
/// it hears it was replaced, shuts down and starts again in the same
/// process, and rejoins as a slave with the new master's log.
#[test]
fn a_partitioned_master_acknowledges_nothing_the_new_master_lacks() {
    let dir = common::test_dir();
    let ns = Netns::new();
    let cl = Cluster::start_on(dir.path(), &ns.host_ip);
    let mut a = cl.broker_at(1, &ns.inner_ip.clone(), Some(&ns.name), &[]);
    let a_addr = format!("{}:{}", ns.inner_ip, a.port);
    cl.wait_group("broker 1 master", Duration::from_secs(30), master_is(1, 0));
    create_topic_at(&a_addr);
    let b = cl.broker(2);
    let b_addr = format!("{}:{}", ns.host_ip, b.port);
    cl.wait_group("broker 2 in sync", Duration::from_secs(30), in_sync(&[1, 2]));

    // The client inside the namespace sends until told to stop: (body,
    // code, when).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sender = {
        let (stop, addr) = (stop.clone(), a_addr.clone());
        ns.thread(move || {
            let mut out = Vec::new();
            let mut c = shardmq::admin::client::Client::connect(&addr).expect("connect to the master");
            let mut i = 0u32;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let body = format!("n{i:05}");
                let code = c
                    .call(send_v2(TOPIC, (i % QUEUES).into(), &body, "WAIT\u{1}true\u{2}".into()))
                    .map(|r| r.code)
                    .unwrap_or(-1);
                out.push((body, code, Instant::now()));
                if code == -1 {
                    break; // the old master stopped
                }
                i += 1;
            }
            out
        })
    };
    std::thread::sleep(Duration::from_millis(800));
    ns.cut(true);
    let elected = cl.wait_group("broker 2 elected", Duration::from_secs(30), master_is(2, 1));
    let elected_at = Instant::now();
    assert_eq!(elected.master_epoch, 2);
    let mut acked: Vec<String> = Vec::new();
    let mut bc = Client::connect(&b_addr);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut i = 0u32;
    while acked.len() < 20 {
        assert!(Instant::now() < deadline, "the new master never acknowledged");
        let body = format!("b{i:05}");
        if send(&mut bc, i, &body).0 == response::SUCCESS {
            acked.push(body);
        }
        i += 1;
    }
    // Both sides keep going a while: the old master must stay silent.
    std::thread::sleep(Duration::from_millis(1500));
    ns.cut(false);
    // It hears it was replaced, shuts down and starts again in the same
    // process (restartWhenDemoted, the default): no supervisor here.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&a.log)
        .unwrap_or_default()
        .contains("starting again in place")
    {
        assert!(
            Instant::now() < deadline,
            "the old master did not restart after the partition healed:\n{}",
            common::file_tail(&a.log, 30)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let sent = sender.join().expect("the client thread");
    let from_a: Vec<&(String, i32, Instant)> = sent.iter().filter(|x| x.1 == response::SUCCESS).collect();
    assert!(
        from_a.len() > 10,
        "the old master acknowledged too little before the cut: {}",
        from_a.len()
    );
    let late: Vec<_> = from_a.iter().filter(|x| x.2 > elected_at).collect();
    assert!(
        late.is_empty(),
        "the old master acknowledged after the election: {late:?}"
    );
    acked.extend(from_a.iter().map(|x| x.0.clone()));
    acked.sort();
    let on_b = bodies_at(&b_addr);
    let missing: Vec<_> = acked.iter().filter(|m| on_b.binary_search(m).is_err()).collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not on the new master: {missing:?}"
    );
    eprintln!(
        "partition: {} sends to the old master, {} acknowledged, none after the election; {} on the new master",
        sent.len(),
        from_a.len(),
        on_b.len()
    );
    // Started again, the old master follows the new one and ends up with
    // its log — the same process all along.
    cl.wait_group("broker 1 in sync again", Duration::from_secs(30), in_sync(&[1, 2]));
    let exited = a.child.as_mut().and_then(|ch| ch.try_wait().ok().flatten());
    assert!(exited.is_none(), "the old master's process ended: {exited:?}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while bodies_at(&a_addr) != bodies_at(&b_addr) {
        assert!(
            Instant::now() < deadline,
            "the old master's log differs from the new master's"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Three name servers with the controller embedded (RocketMQ's
/// `enableControllerInNamesrv`): a group fails over, then the name server
/// whose controller node leads the quorum dies, and the group fails over
/// again through the two left; clients find the master through any name
/// server left.
#[test]
fn name_servers_with_embedded_controllers_fail_over_without_their_leader() {
    let dir = common::test_dir();
    let mut cl = Cluster::start_embedded(dir.path());
    let mut a = cl.broker(1);
    cl.wait_group("broker 1 master", Duration::from_secs(30), master_is(1, 0));
    create_topic_at(&a.addr());
    let mut b = cl.broker(2);
    cl.wait_group("broker 2 in sync", Duration::from_secs(30), in_sync(&[1, 2]));
    let mut acked = Vec::new();
    let mut c = Client::connect(&a.addr());
    for i in 0..30 {
        let body = format!("e{i:03}");
        assert_eq!(send(&mut c, i, &body).0, response::SUCCESS);
        acked.push(body);
    }
    a.kill9();
    cl.wait_group("broker 2 elected", Duration::from_secs(30), master_is(2, 1));
    send_until_ok(&b, 0, "f000", Duration::from_secs(30));
    acked.push("f000".into());
    a.spawn();
    cl.wait_group("broker 1 in sync", Duration::from_secs(30), in_sync(&[1, 2]));
    // The name server hosting the Raft leader dies with it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let leader = loop {
        let found = cl.controller_addrs.iter().position(|addr| {
            let mut k = shardmq_controller::client::Client::new(vec![addr.clone()], Duration::from_secs(1));
            k.status(addr).is_ok_and(|s| s.leader_id == Some(s.node_id))
        });
        if let Some(l) = found {
            break l;
        }
        assert!(Instant::now() < deadline, "no controller leader");
        std::thread::sleep(Duration::from_millis(100));
    };
    cl.namesrvs[leader].kill9();
    b.kill9();
    cl.wait_group("broker 1 elected again", Duration::from_secs(30), master_is(1, 2));
    send_until_ok(&a, 1, "g000", Duration::from_secs(30));
    acked.push("g000".into());
    // The name servers left route to broker 1 as master.
    let left: Vec<&str> = cl
        .namesrv
        .split(';')
        .enumerate()
        .filter(|(i, _)| *i != leader)
        .map(|(_, n)| n)
        .collect();
    for ns in left {
        wait_routed_to(ns, &a);
    }
    acked.sort();
    assert_eq!(bodies(&a), acked);
}
