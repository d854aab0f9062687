//! The failover soak (`scripts/soak-failover.sh`, not in CI): faults
//! injected at random into a controller-mode cluster started by
//! `scripts/cluster.sh --controllers 3 --groups 1 --slaves 1` (3
//! controllers, one name server, one group of two brokers, SYNC_MASTER),
//! with sends in between, then a full read of both brokers' logs that
//! counts acknowledged-but-lost messages (must be 0) and duplicates.
//!
//! Each cycle sends a burst of messages (sequential SEND_MESSAGE_V2, ids
//! `soak-<cycle>-<i>`, bodies the id padded to `--size` bytes — 4 KiB, so
//! that small segments roll —, on a thread of its own) to the master as the
//! name server routes it — each send to one of the group's shard entries
//! `broker-a-s<k>` and one of its queues, drawn at random — asking the
//! name server again after any failed send (an error or any code but
//! SUCCESS); no body is ever sent twice. The burst goes on past its
//! `--burst` sends, one every 10 ms, until the cycle's fault is over and
//! the group has recovered (a burst of 200 takes only some 60 ms here, so
//! without that the failovers would see no sends). 0–150 ms into the
//! burst one fault strikes somewhere in the cluster:
//!
//! * `kill-master` / `kill-slave` — SIGKILL (cluster.sh's supervisor
//!   shell too), then start it again 0–2 s later on the same directory;
//!   a killed master rejoins as a slave once the other was elected;
//! * `pause-master` / `pause-slave` — SIGSTOP for 0.3–3 s, then SIGCONT;
//!   a master paused past the controller's timeout is replaced and, when
//!   it resumes, starts again in place as a slave (`restartWhenDemoted`;
//!   one that exits with status 3 instead is started again by
//!   cluster.sh's supervisor, or by this program for a broker it started);
//! * `kill-controller` — SIGKILL of one of the three controllers (any,
//!   the Raft leader included), started again 0–2 s later;
//! * `cut-links` — every established replication connection reset
//!   (`ss -K` on both brokers' HA ports: whichever is master);
//! * `none`.
//!
//! After the fault the soak waits up to 60 s for both brokers to be in
//! the in-sync set (the sends going on), then the group must have a
//! master that acknowledges a probe send on each shard within 60 s (the
//! probes are sends like the others: ids `probe-<cycle>-<k>`, judged the
//! same way), so faults do not pile up.
//!
//! Verdict, once both brokers are in the in-sync set and hold the same
//! number of messages per queue: every SUCCESS — which a SYNC_MASTER
//! answers only once every in-sync slave holds the message, so whichever
//! broker the controller elects has it — is on the final master and on
//! the slave; no body is stored twice (the soak never resends); both logs
//! hold the same set of bodies, each intact. Other answers (FLUSH_SLAVE_TIMEOUT,
//! SLAVE_NOT_AVAILABLE: stored on a master that may since have been
//! replaced and truncated; SERVICE_NOT_AVAILABLE; no answer) may or may
//! not be stored: counted, not judged.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use shardmq::admin::client::{req, Client};
use shardmq::protocol::codes::{request, response};
use shardmq::protocol::RemotingCommand;

#[path = "soak_common/mod.rs"]
mod soak_common;
use soak_common::{for_each_record, Rng};

const TOPIC: &str = "SoakFailover";
/// Queues of the topic (global ids, over both shards).
const QUEUES: u32 = 8;
const GROUP: &str = "broker-a";
const SHARDS: usize = 2;
/// Broker ids (controller identities) of the group: broker-a-0 is 1.
const IDS: [u64; 2] = [1, 2];

struct Args {
    dir: PathBuf,
    base: u16,
    cycles: u32,
    burst: u32,
    seed: u64,
    ctl_timeout_ms: u64,
    /// Bytes per message body: large enough that segments roll.
    size: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        dir: PathBuf::from("./cluster"),
        base: 20000,
        cycles: 100,
        burst: 200,
        seed: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
        ctl_timeout_ms: 1500,
        size: 4096,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().ok_or_else(|| format!("{k} needs a value"))?;
        let num = |v: &str| v.parse::<u64>().map_err(|_| format!("{k}: not a number: {v}"));
        match k.as_str() {
            "--dir" => a.dir = PathBuf::from(v),
            "--base" => a.base = num(&v)? as u16,
            "--cycles" => a.cycles = num(&v)? as u32,
            "--burst" => a.burst = num(&v)? as u32,
            "--seed" => a.seed = num(&v)?.max(1),
            "--ctl-timeout-ms" => a.ctl_timeout_ms = num(&v)?,
            "--size" => a.size = num(&v)? as usize,
            _ => {
                return Err(format!(
                    "unknown option {k} (--dir, --base, --cycles, --burst, --seed, --ctl-timeout-ms, --size)"
                ))
            }
        }
    }
    Ok(a)
}

fn read_pid(file: &Path) -> Option<i32> {
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

/// A process exists and is not a zombie.
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "pid (comm) S ...": the state follows the last ')'.
        Ok(s) => s
            .rfind(')')
            .and_then(|i| s[i + 1..].trim_start().chars().next())
            .is_some_and(|c| c != 'Z' && c != 'X'),
        Err(_) => false,
    }
}

fn kill(pid: i32, sig: i32) {
    // SAFETY: kill(2) with a pid of the cluster and a valid signal; no
    // memory is involved.
    unsafe {
        libc::kill(pid, sig);
    }
}

fn ready_count(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .map(|s| s.matches("shardmq ready").count())
        .unwrap_or(0)
}

fn note(log: &Path, line: &str) {
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new().append(true).create(true).open(log) {
        let _ = writeln!(f, "{line}");
    }
}

/// What the thread that runs a broker this program started shares.
#[derive(Default)]
struct Run {
    /// false: a kill is under way, do not start it again.
    want: bool,
    /// Restarts after exit status 3 (demoted).
    demoted_restarts: u32,
    /// Exits other than by our SIGKILL or status 3.
    odd_exits: Vec<String>,
}

/// One broker of the group.
struct Broker {
    id: u64,
    dir: PathBuf,
    port: u16,
    /// cluster.sh's supervisor shell, until our first kill.
    script_pid: Option<i32>,
    run: Arc<Mutex<Run>>,
    thread: Option<JoinHandle<()>>,
}

impl Broker {
    fn open(root: &Path, base: u16, id: u64) -> Result<Broker, String> {
        let dir = root.join(format!("{GROUP}-{}", id - 1));
        let pid_file = dir.with_extension("pid");
        let pid =
            read_pid(&pid_file).ok_or_else(|| format!("{}: no pid (start the cluster first)", pid_file.display()))?;
        Ok(Broker {
            id,
            dir,
            port: base + 1000 * id as u16,
            script_pid: Some(pid),
            run: Arc::default(),
            thread: None,
        })
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn conf(&self) -> PathBuf {
        self.dir.join("broker.conf")
    }

    fn log(&self) -> PathBuf {
        self.dir.join("broker.log")
    }

    fn pattern(&self) -> String {
        format!("serve -c {}", self.conf().display())
    }

    /// The `shardmq serve` processes of this broker's directory.
    fn serve_pids(&self) -> Vec<i32> {
        Command::new("pgrep")
            .args(["-f", &self.pattern()])
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Signals every serve process of the broker; how many there were.
    fn signal(&self, sig: i32) -> usize {
        let pids = self.serve_pids();
        for &p in &pids {
            kill(p, sig);
        }
        pids.len()
    }

    fn kill9(&mut self) -> Result<(), String> {
        {
            let mut run = self.run.lock().map_err(|_| "poisoned")?;
            run.want = false;
            // The supervisor first: it must not start the broker again.
            if let Some(p) = self.script_pid.take() {
                kill(p, libc::SIGKILL);
            }
            let _ = Command::new("pkill").args(["-9", "-f", &self.pattern()]).status();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.serve_pids().is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("broker {} survives SIGKILL", self.id));
            }
            let _ = Command::new("pkill").args(["-9", "-f", &self.pattern()]).status();
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the broker on its directory, on a thread that starts it
    /// again whenever it exits with status 3; returns once it is ready.
    fn start(&mut self, bin: &Path) -> Result<(), String> {
        if !self.serve_pids().is_empty() {
            return Err(format!("broker {} still runs", self.id));
        }
        let log = self.log();
        let before = ready_count(&log);
        self.run.lock().map_err(|_| "poisoned")?.want = true;
        let (run, conf, pid_file, bin, id) = (
            self.run.clone(),
            self.conf(),
            self.dir.with_extension("pid"),
            bin.to_path_buf(),
            self.id,
        );
        let log2 = log.clone();
        let (tx, rx) = std::sync::mpsc::channel::<Result<(), String>>();
        self.thread = Some(std::thread::spawn(move || {
            let mut first = Some(tx);
            loop {
                let mut child: Child = {
                    let Ok(guard) = run.lock() else { return };
                    if !guard.want {
                        return;
                    }
                    let spawned = std::fs::OpenOptions::new()
                        .append(true)
                        .create(true)
                        .open(&log2)
                        .and_then(|out| Ok((out.try_clone()?, out)))
                        .and_then(|(out, err)| {
                            Command::new(&bin)
                                .arg("serve")
                                .arg("-c")
                                .arg(&conf)
                                .stdin(Stdio::null())
                                .stdout(out)
                                .stderr(err)
                                .spawn()
                        });
                    match spawned {
                        Ok(c) => {
                            let _ = std::fs::write(&pid_file, format!("{}\n", c.id()));
                            c
                        }
                        Err(e) => {
                            if let Some(tx) = first.take() {
                                let _ = tx.send(Err(format!("start broker {id}: {e}")));
                            }
                            return;
                        }
                    }
                };
                if let Some(tx) = first.take() {
                    let _ = tx.send(Ok(()));
                }
                let status = child.wait();
                let Ok(mut guard) = run.lock() else { return };
                match status {
                    Ok(s) if s.code() == Some(3) => {
                        guard.demoted_restarts += 1;
                        note(
                            &log2,
                            "soak_failover: demoted (exit status 3); starting again as a slave",
                        );
                    }
                    Ok(s) => {
                        if guard.want {
                            guard.odd_exits.push(format!("broker {id}: {s}"));
                        }
                        return;
                    }
                    Err(e) => {
                        guard.odd_exits.push(format!("broker {id}: wait: {e}"));
                        return;
                    }
                }
            }
        }));
        rx.recv()
            .map_err(|_| format!("broker {}: its thread ended", self.id))??;
        let deadline = Instant::now() + Duration::from_secs(60);
        while ready_count(&log) <= before {
            if Instant::now() > deadline {
                return Err(format!(
                    "broker {} did not become ready again (see {})",
                    self.id,
                    log.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Restarts of a demoted broker: by cluster.sh's supervisor, by us.
    fn demoted_restarts(&self) -> (usize, u32) {
        let by_script = std::fs::read_to_string(self.log())
            .map(|s| s.matches("cluster.sh: demoted").count())
            .unwrap_or(0);
        let ours = self.run.lock().map(|r| r.demoted_restarts).unwrap_or(0);
        (by_script, ours)
    }
}

/// The controllers of `scripts/cluster.sh --controllers 3`.
struct Controllers {
    root: PathBuf,
    base: u16,
    timeout_ms: u64,
    children: [Option<Child>; 3],
}

impl Controllers {
    fn addrs(&self) -> Vec<String> {
        (0..3).map(|i| format!("127.0.0.1:{}", self.base + 100 + i)).collect()
    }

    fn kill9(&mut self, i: usize) -> Result<(), String> {
        let pid_file = self.root.join(format!("controller-{i}.pid"));
        let pid = read_pid(&pid_file).ok_or_else(|| format!("{}: no pid", pid_file.display()))?;
        kill(pid, libc::SIGKILL);
        if let Some(mut c) = self.children[i].take() {
            let _ = c.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while alive(pid) {
            if Instant::now() > deadline {
                return Err(format!("controller {} survives SIGKILL", i + 1));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    fn start(&mut self, bin: &Path, i: usize) -> Result<(), String> {
        let peers: Vec<String> = (0..3)
            .map(|k| format!("{}=127.0.0.1:{}", k + 1, self.base + 100 + k))
            .collect();
        let log = self.root.join(format!("controller-{i}.log"));
        let out = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&log)
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(bin)
            .arg("controller")
            .args(["--id", &(i + 1).to_string()])
            .args(["--peers", &peers.join(",")])
            .arg("--data-dir")
            .arg(self.root.join(format!("controller-{i}")))
            .args(["--heartbeat-timeout-ms", &self.timeout_ms.to_string()])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("start controller {}: {e}", i + 1))?;
        std::fs::write(
            self.root.join(format!("controller-{i}.pid")),
            format!("{}\n", child.id()),
        )
        .map_err(|e| e.to_string())?;
        self.children[i] = Some(child);
        Ok(())
    }
}

fn group(ctl: &[String]) -> Option<shardmq_controller::GroupView> {
    let mut c = shardmq_controller::client::Client::new(ctl.to_vec(), Duration::from_millis(700));
    c.groups().ok()?.into_iter().find(|g| g.broker_name == GROUP)
}

/// Per shard entry `broker-a-s<k>`: the master's address as the name
/// server routes it and the entry's write queues.
fn route(namesrv: &str) -> Option<Vec<Option<(String, u32)>>> {
    let mut c = Client::connect_with(namesrv, Duration::from_millis(500), Duration::from_secs(2)).ok()?;
    let r = c
        .call(req(request::GET_ROUTEINFO_BY_TOPIC, &[("topic", TOPIC.into())]))
        .ok()?;
    if r.code != response::SUCCESS {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
    Some(
        (0..SHARDS)
            .map(|k| {
                let name = format!("{GROUP}-s{k}");
                let addr = v["brokerDatas"]
                    .as_array()?
                    .iter()
                    .find(|d| d["brokerName"] == name.as_str())?["brokerAddrs"]["0"]
                    .as_str()?
                    .to_string();
                let queues = v["queueDatas"]
                    .as_array()?
                    .iter()
                    .find(|d| d["brokerName"] == name.as_str())?["writeQueueNums"]
                    .as_u64()?;
                (queues > 0).then_some((addr, queues as u32))
            })
            .collect(),
    )
}

/// The body of message `id`: `id|` padded with a pattern to `size` bytes.
fn make_body(id: &str, size: usize) -> Vec<u8> {
    let mut b = format!("{id}|").into_bytes();
    let mut k = 0u8;
    while b.len() < size {
        b.push(b'a' + k % 26);
        k = k.wrapping_add(1);
    }
    b
}

fn send_req(qid: u32, id: &str, size: usize) -> RemotingCommand {
    let mut r = req(
        request::SEND_MESSAGE_V2,
        &[
            ("a", "soak-failover-producer".into()),
            ("b", TOPIC.into()),
            ("c", "TBW102".into()),
            ("d", QUEUES.to_string()),
            ("e", qid.to_string()),
            ("f", "0".into()),
            ("g", "0".into()),
            ("h", "0".into()),
            ("i", format!("KEYS\u{1}{id}\u{2}WAIT\u{1}true\u{2}")),
        ],
    );
    r.body = bytes::Bytes::from(make_body(id, size));
    r
}

/// One send and what came of it.
struct Sent {
    /// The message id (`soak-<cycle>-<i>`, `probe-<cycle>-<k>`).
    body: String,
    /// None: no answer (connection lost or timed out).
    code: Option<i32>,
    addr: String,
    cycle: u32,
}

fn code_name(code: Option<i32>) -> String {
    match code {
        Some(response::SUCCESS) => "SUCCESS".into(),
        Some(response::FLUSH_SLAVE_TIMEOUT) => "FLUSH_SLAVE_TIMEOUT".into(),
        Some(response::SLAVE_NOT_AVAILABLE) => "SLAVE_NOT_AVAILABLE".into(),
        Some(response::SERVICE_NOT_AVAILABLE) => "SERVICE_NOT_AVAILABLE".into(),
        Some(response::SYSTEM_ERROR) => "SYSTEM_ERROR".into(),
        Some(response::SYSTEM_BUSY) => "SYSTEM_BUSY".into(),
        Some(c) => format!("code {c}"),
        None => "no answer".into(),
    }
}

/// The producer: one connection per shard entry, to the master the name
/// server names; both dropped after any failed send.
struct Producer {
    namesrv: String,
    size: usize,
    conns: Vec<Option<(Client, u32)>>,
}

impl Producer {
    fn connect(&mut self, shard: usize) -> bool {
        if self.conns[shard].is_some() {
            return true;
        }
        let Some(Some((addr, queues))) = route(&self.namesrv).map(|mut r| r.swap_remove(shard)) else {
            return false;
        };
        // The read timeout is above the master's syncFlushTimeout (5 s).
        match Client::connect_with(&addr, Duration::from_millis(500), Duration::from_secs(10)) {
            Ok(c) => {
                self.conns[shard] = Some((c, queues));
                true
            }
            Err(_) => false,
        }
    }

    /// None: no master to send to (nothing was sent).
    fn send(&mut self, shard: usize, pick: u32, body: &str, cycle: u32) -> Option<Sent> {
        if !self.connect(shard) {
            return None;
        }
        let (c, queues) = self.conns[shard].as_mut()?;
        let addr = c.addr().to_string();
        let code = c.call(send_req(pick % *queues, body, self.size)).ok().map(|r| r.code);
        if code != Some(response::SUCCESS) {
            self.conns.iter_mut().for_each(|c| *c = None);
        }
        Some(Sent {
            body: body.to_string(),
            code,
            addr,
            cycle,
        })
    }
}

/// What a cycle's sending thread did.
struct Burst {
    sends: Vec<Sent>,
    /// Of the first `min`, never sent: no master to send to for `within`.
    unsent: u32,
    /// How long the first `min` sends took.
    burst_ms: u128,
}

/// A cycle's sends: `min` of them back to back (the burst), then one every
/// `pace` until `more` is cleared — so that sends go on through the fault
/// and the failover after it however fast the burst was. Every id is sent
/// once; after a failed send a 50 ms pause (the route is asked again).
fn burst(
    p: &mut Producer,
    cycle: u32,
    seed: u64,
    min: u32,
    more: &AtomicBool,
    pace: Duration,
    within: Duration,
) -> Burst {
    let mut rng = Rng(seed | 1);
    let started = Instant::now();
    let mut b = Burst {
        sends: Vec::with_capacity(min as usize * 2),
        unsent: 0,
        burst_ms: 0,
    };
    let mut i = 0u32;
    'sends: loop {
        if i == min {
            b.burst_ms = started.elapsed().as_millis();
        }
        if i >= min {
            if !more.load(Ordering::SeqCst) {
                break;
            }
            std::thread::sleep(pace);
        }
        let (shard, pick) = (rng.below(SHARDS as u64) as usize, rng.below(1 << 16) as u32);
        let body = format!("soak-{cycle}-{i}");
        let waiting = Instant::now();
        loop {
            match p.send(shard, pick, &body, cycle) {
                Some(s) => {
                    let failed = s.code != Some(response::SUCCESS);
                    b.sends.push(s);
                    i += 1;
                    if failed {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    break;
                }
                None if i >= min && !more.load(Ordering::SeqCst) => break 'sends,
                None if i < min && waiting.elapsed() > within => {
                    b.unsent = min - i;
                    b.burst_ms = started.elapsed().as_millis();
                    break 'sends;
                }
                None => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
    b
}

/// Every message id stored in `TOPIC` on the broker at `addr`, with its
/// count; an id whose body is not the one sent is an error.
fn read_all(addr: &str, size: usize) -> Result<HashMap<String, u32>, String> {
    let mut out: HashMap<String, u32> = HashMap::new();
    for_each_record(addr, TOPIC, QUEUES, |q, v| {
        let id = String::from_utf8_lossy(v.body.split(|&c| c == b'|').next().unwrap_or(&[])).into_owned();
        if v.body != make_body(&id, size).as_slice() {
            return Err(format!(
                "{addr}: queue {q} offset {}: the body of {id} is not the one sent",
                v.queue_offset
            ));
        }
        *out.entry(id).or_default() += 1;
        Ok(())
    })?;
    Ok(out)
}

fn max_offsets(addr: &str) -> Result<Vec<u64>, String> {
    soak_common::max_offsets(addr, TOPIC, QUEUES)
}

/// Group changes seen by the watcher thread.
#[derive(Default)]
struct Watch {
    last: Option<(Option<u64>, u32, Vec<u64>)>,
    /// The last master named (a group without one in between is no change).
    last_master: Option<u64>,
    epoch_changes: u32,
    master_changes: u32,
    /// Changes since the main thread last took them.
    log: Vec<String>,
}

fn watcher(ctl: Vec<String>, w: Arc<Mutex<Watch>>, stop: Arc<AtomicBool>, t0: Instant) {
    while !stop.load(Ordering::SeqCst) {
        if let Some(g) = group(&ctl) {
            let now = (g.master_id, g.master_epoch, g.sync_state_set.clone());
            if let Ok(mut w) = w.lock() {
                if w.last.as_ref() != Some(&now) {
                    if let Some((_, e, _)) = w.last {
                        w.epoch_changes += g.master_epoch.saturating_sub(e);
                    }
                    if let Some(m) = g.master_id {
                        if w.last_master.is_some_and(|l| l != m) {
                            w.master_changes += 1;
                        }
                        w.last_master = Some(m);
                    }
                    let line = format!(
                        "{:.1}s e{} m{} isr{:?}",
                        t0.elapsed().as_secs_f64(),
                        g.master_epoch,
                        g.master_id.map(|m| m.to_string()).unwrap_or_else(|| "-".into()),
                        g.sync_state_set
                    );
                    w.log.push(line);
                    w.last = Some(now);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait_for<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What runs, for an error message.
fn describe(ctl: &[String], brokers: &[Broker]) -> String {
    let g = group(ctl)
        .map(|g| {
            format!(
                "master {:?} epoch {} in-sync {:?} alive {:?}",
                g.master_id,
                g.master_epoch,
                g.sync_state_set,
                g.brokers
                    .iter()
                    .filter(|b| b.alive)
                    .map(|b| b.broker_id)
                    .collect::<Vec<_>>()
            )
        })
        .unwrap_or_else(|| "controllers unreachable".into());
    let procs: Vec<String> = brokers
        .iter()
        .map(|b| format!("broker {} pids {:?}", b.id, b.serve_pids()))
        .collect();
    format!("{g}; {}", procs.join(", "))
}

fn run() -> Result<bool, String> {
    let mut a = parse_args()?;
    a.dir = a.dir.canonicalize().map_err(|e| format!("{}: {e}", a.dir.display()))?;
    let bin = std::env::var_os("SHARDMQ_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/release/shardmq"));
    let bin = bin.canonicalize().map_err(|e| format!("{}: {e}", bin.display()))?;
    let namesrv = format!("127.0.0.1:{}", a.base);
    let mut brokers = IDS
        .iter()
        .map(|&id| Broker::open(&a.dir, a.base, id))
        .collect::<Result<Vec<_>, _>>()?;
    let mut ctls = Controllers {
        root: a.dir.clone(),
        base: a.base,
        timeout_ms: a.ctl_timeout_ms,
        children: [None, None, None],
    };
    let ctl = ctls.addrs();
    let t0 = Instant::now();
    let watch: Arc<Mutex<Watch>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let watch_thread = {
        let (c, w, s) = (ctl.clone(), watch.clone(), stop.clone());
        std::thread::spawn(move || watcher(c, w, s, t0))
    };
    let mut rng = Rng(a.seed);
    println!(
        "soak: seed {}, {} cycles of {} sends of {} bytes, controller timeout {} ms, topic {TOPIC} ({QUEUES} queues, {SHARDS} shards)",
        a.seed, a.cycles, a.burst, a.size, a.ctl_timeout_ms
    );
    let mut sends: Vec<Sent> = Vec::new();
    let mut faults: BTreeMap<&str, u32> = BTreeMap::new();
    let mut fault_of: Vec<String> = Vec::new();
    let mut unsent_total = 0u32;
    let mut not_in_sync_cycles = 0u32;
    let mut producer = Some(Producer {
        namesrv: namesrv.clone(),
        size: a.size,
        conns: (0..SHARDS).map(|_| None).collect(),
    });
    let mut recover_ms: Vec<u128> = Vec::new();
    for cycle in 0..a.cycles {
        // Every draw up front, in a fixed order: a seed replays the run.
        let sender_seed = rng.next();
        let at_ms = rng.below(150);
        let kind = match rng.below(7) {
            0 => "kill-master",
            1 => "kill-slave",
            2 => "pause-master",
            3 => "pause-slave",
            4 => "kill-controller",
            5 => "cut-links",
            _ => "none",
        };
        let restart_ms = rng.below(2001);
        let pause_ms = 300 + rng.below(2701);
        let which_ctl = rng.below(3) as usize;

        let view = group(&ctl);
        let master_id = view.as_ref().and_then(|g| g.master_id);
        let epoch_before = view.as_ref().map(|g| g.master_epoch).unwrap_or(0);
        // Index into `brokers` of the master and of the slave.
        let mi = master_id.and_then(|m| IDS.iter().position(|&i| i == m)).unwrap_or(0);
        let si = 1 - mi;

        let mut p = producer.take().ok_or("no producer")?;
        let more = Arc::new(AtomicBool::new(true));
        let (more2, min) = (more.clone(), a.burst);
        let sender = std::thread::spawn(move || {
            let r = burst(
                &mut p,
                cycle,
                sender_seed,
                min,
                &more2,
                Duration::from_millis(10),
                Duration::from_secs(120),
            );
            (r, p)
        });
        std::thread::sleep(Duration::from_millis(at_ms));
        *faults.entry(kind).or_default() += 1;
        let detail = match kind {
            "kill-master" | "kill-slave" => {
                let b = &mut brokers[if kind == "kill-master" { mi } else { si }];
                b.kill9()?;
                std::thread::sleep(Duration::from_millis(restart_ms));
                b.start(&bin)?;
                format!("broker {}, restarted after {restart_ms} ms", b.id)
            }
            "pause-master" | "pause-slave" => {
                let b = &brokers[if kind == "pause-master" { mi } else { si }];
                let n = b.signal(libc::SIGSTOP);
                std::thread::sleep(Duration::from_millis(pause_ms));
                b.signal(libc::SIGCONT);
                format!("broker {} ({n} process), {pause_ms} ms", b.id)
            }
            "kill-controller" => {
                ctls.kill9(which_ctl)?;
                std::thread::sleep(Duration::from_millis(restart_ms));
                ctls.start(&bin, which_ctl)?;
                format!("controller {}, restarted after {restart_ms} ms", which_ctl + 1)
            }
            "cut-links" => {
                let mut filter = Vec::new();
                for b in &brokers {
                    let ha = b.port + 300;
                    filter.push(format!(
                        "( sport >= :{ha} and sport <= :{} ) or ( dport >= :{ha} and dport <= :{} )",
                        ha + 255,
                        ha + 255
                    ));
                }
                let out = Command::new("ss")
                    .args(["-K", "-H", "-t", "state", "established"])
                    .arg(filter.join(" or "))
                    .stderr(Stdio::null())
                    .output()
                    .map_err(|e| format!("ss: {e}"))?;
                let n = String::from_utf8_lossy(&out.stdout).lines().count();
                format!("{n} sockets reset")
            }
            _ => String::new(),
        };
        let fault_text = format!(
            "{kind} at {at_ms} ms{}",
            if detail.is_empty() {
                String::new()
            } else {
                format!(" ({detail})")
            }
        );
        fault_of.push(fault_text.clone());

        // Recovery, the sender still sending: both brokers in sync (up to
        // 60 s), then a master that acknowledges a probe on every shard (up
        // to 60 s).
        let t = Instant::now();
        let in_sync = wait_for(Duration::from_secs(60), || {
            group(&ctl).filter(|g| g.master_id.is_some() && g.sync_state_set.len() == 2)
        })
        .is_some();
        more.store(false, Ordering::SeqCst);
        let (b, mut p) = sender.join().map_err(|_| "the sending thread panicked".to_string())?;
        unsent_total += b.unsent;
        let unsent = b.unsent;
        let mut counts: BTreeMap<String, u32> = BTreeMap::new();
        for s in &b.sends {
            *counts.entry(code_name(s.code)).or_default() += 1;
        }
        let (n_sent, burst_ms) = (b.sends.len(), b.burst_ms);
        sends.extend(b.sends);
        if !in_sync {
            not_in_sync_cycles += 1;
            println!(
                "soak: cycle {cycle}: the slave not in sync after 60 s: {}",
                describe(&ctl, &brokers)
            );
        }
        let probe_deadline = Instant::now() + Duration::from_secs(60);
        let mut k = 0;
        for shard in 0..SHARDS {
            loop {
                if Instant::now() > probe_deadline {
                    stop.store(true, Ordering::SeqCst);
                    return Err(format!(
                        "cycle {cycle} ({fault_text}): no master acknowledged a send on shard {shard} within 60 s: {}",
                        describe(&ctl, &brokers)
                    ));
                }
                let body = format!("probe-{cycle}-{k}");
                match p.send(shard, cycle, &body, cycle) {
                    Some(s) => {
                        k += 1;
                        let ok = s.code == Some(response::SUCCESS);
                        *counts.entry(format!("probe {}", code_name(s.code))).or_default() += 1;
                        sends.push(s);
                        if ok {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    None => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        }
        recover_ms.push(t.elapsed().as_millis());
        producer = Some(p);
        let changes = watch.lock().map(|mut w| std::mem::take(&mut w.log)).unwrap_or_default();
        let epoch_after = group(&ctl).map(|g| g.master_epoch).unwrap_or(0);
        println!(
            "cycle {cycle}: {fault_text}; {n_sent} sends (first {} in {burst_ms} ms) {counts:?}{}; epoch {epoch_before}->{epoch_after}; recovered in {} ms{}",
            a.burst,
            if unsent > 0 {
                format!(", {unsent} not sent")
            } else {
                String::new()
            },
            t.elapsed().as_millis(),
            if changes.is_empty() {
                String::new()
            } else {
                format!("; [{}]", changes.join(", "))
            }
        );
    }

    // The verdict: both brokers in sync and equal, then both logs read.
    let g = wait_for(Duration::from_secs(120), || {
        group(&ctl).filter(|g| g.master_id.is_some() && g.sync_state_set.len() == 2)
    })
    .ok_or_else(|| {
        format!(
            "the group is not fully in sync after 120 s: {}",
            describe(&ctl, &brokers)
        )
    })?;
    stop.store(true, Ordering::SeqCst);
    let _ = watch_thread.join();
    let master_id = g.master_id.ok_or("no master")?;
    let mi = IDS.iter().position(|&i| i == master_id).ok_or("unknown master id")?;
    let (master_addr, slave_addr) = (brokers[mi].addr(), brokers[1 - mi].addr());
    let mut offsets = (Vec::new(), Vec::new());
    let equal = wait_for(Duration::from_secs(120), || {
        offsets = (max_offsets(&master_addr).ok()?, max_offsets(&slave_addr).ok()?);
        (offsets.0 == offsets.1).then_some(())
    });
    if equal.is_none() {
        println!(
            "soak: queue ends still differ after 120 s: master {:?}, slave {:?}",
            offsets.0, offsets.1
        );
    }
    let on_master = read_all(&master_addr, a.size)?;
    let on_slave = read_all(&slave_addr, a.size)?;

    let mut count: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut lost: Vec<&Sent> = Vec::new();
    let (mut lost_master, mut lost_slave) = (0u64, 0u64);
    for s in &sends {
        let e = count.entry(code_name(s.code)).or_default();
        e.0 += 1;
        if on_master.contains_key(&s.body) {
            e.1 += 1;
        }
        if s.code == Some(response::SUCCESS) {
            let (m, sl) = (on_master.contains_key(&s.body), on_slave.contains_key(&s.body));
            lost_master += u64::from(!m);
            lost_slave += u64::from(!sl);
            if !m || !sl {
                lost.push(s);
            }
        }
    }
    let sent: BTreeSet<&str> = sends.iter().map(|s| s.body.as_str()).collect();
    let strangers = on_master
        .keys()
        .chain(on_slave.keys())
        .filter(|b| !sent.contains(b.as_str()))
        .count();
    let dup_master = on_master.values().filter(|&&n| n > 1).count();
    let dup_slave = on_slave.values().filter(|&&n| n > 1).count();
    let only_master = on_master.keys().filter(|b| !on_slave.contains_key(*b)).count();
    let only_slave = on_slave.keys().filter(|b| !on_master.contains_key(*b)).count();
    let same = only_master == 0 && only_slave == 0 && on_master == on_slave;
    let (w_epochs, w_masters) = watch
        .lock()
        .map(|w| (w.epoch_changes, w.master_changes))
        .unwrap_or((0, 0));
    let demoted: Vec<String> = brokers
        .iter()
        .map(|b| {
            let (s, o) = b.demoted_restarts();
            format!("broker {}: {s} by cluster.sh, {o} by the soak", b.id)
        })
        .collect();
    let odd: Vec<String> = brokers
        .iter()
        .flat_map(|b| b.run.lock().map(|r| r.odd_exits.clone()).unwrap_or_default())
        .collect();
    recover_ms.sort_unstable();
    let pct = |q: usize| {
        recover_ms
            .get((recover_ms.len() * q / 100).min(recover_ms.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };

    println!("soak: faults {faults:?}");
    println!(
        "soak: sends {} ({} bursts of {}, plus probes){}",
        sends.len(),
        a.cycles,
        a.burst,
        if unsent_total > 0 {
            format!(", {unsent_total} never sent (no master for 120 s)")
        } else {
            String::new()
        }
    );
    println!("soak: outcomes (count, of which on the final master) {count:?}");
    println!(
        "soak: failovers observed: {w_epochs} master epoch changes, {w_masters} changes of master (final: broker {master_id}, epoch {})",
        g.master_epoch
    );
    println!("soak: demoted brokers restarted: {}", demoted.join("; "));
    if !odd.is_empty() {
        println!("soak: unexpected broker exits: {odd:?}");
    }
    println!(
        "soak: recovery after a cycle (in sync + probes acknowledged): median {} ms, p90 {} ms, max {} ms; cycles whose slave was not back in sync within 60 s: {not_in_sync_cycles}",
        pct(50),
        pct(90),
        recover_ms.last().copied().unwrap_or(0)
    );
    println!(
        "soak: stored on the master {}, on the slave {}; queue ends equal: {}",
        on_master.len(),
        on_slave.len(),
        equal.is_some()
    );
    println!(
        "soak: ACKNOWLEDGED-BUT-LOST {} (SUCCESS missing on the final master {lost_master}, on the slave {lost_slave})",
        lost.len()
    );
    println!(
        "soak: duplicates master {dup_master}, slave {dup_slave}; bodies never sent {strangers}; \
         logs hold the same set: {same} (only on the master {only_master}, only on the slave {only_slave})"
    );
    for s in lost.iter().take(20) {
        println!(
            "soak: lost {} (SUCCESS from {}, cycle {}: {}; on master {}, on slave {})",
            s.body,
            s.addr,
            s.cycle,
            fault_of.get(s.cycle as usize).map(String::as_str).unwrap_or("?"),
            on_master.contains_key(&s.body),
            on_slave.contains_key(&s.body)
        );
    }
    Ok(lost.is_empty() && same && dup_master == 0 && dup_slave == 0 && strangers == 0)
}

fn main() {
    match run() {
        Ok(true) => println!("soak: PASS"),
        Ok(false) => {
            println!("soak: FAIL");
            std::process::exit(1);
        }
        Err(e) => {
            println!("soak: ERROR {e}");
            eprintln!("soak: {e}");
            std::process::exit(2);
        }
    }
}
