//! The replication soak (`scripts/soak-ha.sh`, not in CI): faults injected
//! at random into a running broker group of a SYNC_MASTER and one slave
//! (started by `scripts/cluster.sh`), with sends in between, then a full
//! read of both logs that counts acknowledged-but-lost messages (must be
//! 0) and duplicates.
//!
//! Each cycle sends a burst of messages to the master (one connection,
//! sequential SEND_MESSAGE_V2, bodies `soak-<cycle>-<i>`, on a thread of
//! its own) and records each outcome; 0–150 ms into the burst one fault
//! strikes:
//!
//! * `kill-master` / `kill-slave` — SIGKILL, then start it again on the
//!   same directory (its `broker.conf`);
//! * `pause-master` / `pause-slave` — SIGSTOP for 0.3–3 s, then SIGCONT;
//! * `cut-links` — every established replication connection reset
//!   (`ss -K` on the master's HA ports);
//! * `none`.
//!
//! Verdict, once the slave has caught up: every message the master
//! acknowledged (SUCCESS, FLUSH_SLAVE_TIMEOUT, SLAVE_NOT_AVAILABLE: all
//! mean stored) is on the master; every SUCCESS — which a SYNC_MASTER
//! gives only once the slave holds it durably — and in fact every message
//! of the master is on the slave; no body is stored twice (the soak never
//! resends). Sends that got no answer may or may not be stored: counted,
//! not judged.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shardmq::admin::client::{req, Client};
use shardmq::protocol::codes::{request, response};
use shardmq::protocol::RemotingCommand;

#[path = "soak_common/mod.rs"]
mod soak_common;
use soak_common::{for_each_record, Rng};

const TOPIC: &str = "Soak";
const QUEUES: u32 = 8;

struct Args {
    dir: PathBuf,
    base: u16,
    cycles: u32,
    burst: u32,
    seed: u64,
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
            _ => return Err(format!("unknown option {k} (--dir, --base, --cycles, --burst, --seed)")),
        }
    }
    Ok(a)
}

/// One broker of the group, as `scripts/cluster.sh` left it.
struct Node {
    name: &'static str,
    dir: PathBuf,
    port: u16,
    /// Our own child once we restarted it; before that, the script's pid.
    child: Option<Child>,
    pid: i32,
}

impl Node {
    fn open(root: &Path, name: &'static str, port: u16) -> Result<Node, String> {
        let pid_file = root.join(format!("{name}.pid"));
        let pid = std::fs::read_to_string(&pid_file)
            .map_err(|e| format!("{}: {e} (start the cluster first)", pid_file.display()))?
            .trim()
            .parse()
            .map_err(|_| format!("{}: not a pid", pid_file.display()))?;
        Ok(Node {
            name,
            dir: root.join(name),
            port,
            child: None,
            pid,
        })
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) with a pid we started (or the script did) and a
        // valid signal number; no memory is involved.
        unsafe {
            libc::kill(self.pid, sig);
        }
    }

    fn kill9(&mut self) {
        self.signal(libc::SIGKILL);
        match self.child.take() {
            Some(mut c) => {
                let _ = c.wait();
            }
            None => {
                // Not our child: wait until the pid is gone.
                let deadline = Instant::now() + Duration::from_secs(10);
                // SAFETY: kill(2) with signal 0 only checks the pid.
                while unsafe { libc::kill(self.pid, 0) } == 0 && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }

    fn start(&mut self, bin: &Path) -> Result<(), String> {
        let log = self.dir.join("broker.log");
        let before = std::fs::read_to_string(&log)
            .map(|s| s.matches("shardmq ready").count())
            .unwrap_or(0);
        let out = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&log)
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(bin)
            .arg("serve")
            .arg("-c")
            .arg(self.dir.join("broker.conf"))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("start {}: {e}", self.name))?;
        self.pid = child.id() as i32;
        std::fs::write(self.dir.with_extension("pid"), format!("{}\n", self.pid)).map_err(|e| e.to_string())?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = std::fs::read_to_string(&log)
                .map(|s| s.matches("shardmq ready").count())
                .unwrap_or(0);
            if ready > before {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} did not become ready again (see {})",
                    self.name,
                    log.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn send_req(qid: u32, body: &str) -> RemotingCommand {
    let mut r = req(
        request::SEND_MESSAGE_V2,
        &[
            ("a", "soak-producer".into()),
            ("b", TOPIC.into()),
            ("c", "TBW102".into()),
            ("d", QUEUES.to_string()),
            ("e", qid.to_string()),
            ("f", "0".into()),
            ("g", "0".into()),
            ("h", "0".into()),
            ("i", format!("KEYS\u{1}{body}\u{2}WAIT\u{1}true\u{2}")),
        ],
    );
    r.body = bytes::Bytes::from(body.as_bytes().to_vec());
    r
}

/// Every body stored in `TOPIC` on the broker at `addr`, with its count.
fn read_all(addr: &str) -> Result<HashMap<String, u32>, String> {
    let mut out: HashMap<String, u32> = HashMap::new();
    for_each_record(addr, TOPIC, QUEUES, |_, v| {
        *out.entry(String::from_utf8_lossy(v.body).into_owned()).or_default() += 1;
        Ok(())
    })?;
    Ok(out)
}

fn max_offsets(addr: &str) -> Result<Vec<u64>, String> {
    soak_common::max_offsets(addr, TOPIC, QUEUES)
}

fn run() -> Result<bool, String> {
    let a = parse_args()?;
    let bin = std::env::var_os("SHARDMQ_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/release/shardmq"));
    let mut master = Node::open(&a.dir, "broker-a-0", a.base + 1000)?;
    let mut slave = Node::open(&a.dir, "broker-a-1", a.base + 2000)?;
    let master_addr = format!("127.0.0.1:{}", master.port);
    let mut rng = Rng(a.seed);
    println!("soak: seed {}, {} cycles of {} sends", a.seed, a.cycles, a.burst);
    // body → outcome code (None: no answer).
    let mut outcomes: BTreeMap<String, Option<i32>> = BTreeMap::new();
    let mut faults: BTreeMap<&str, u32> = BTreeMap::new();
    let mut conn: Option<Client> = None;
    for cycle in 0..a.cycles {
        // The burst runs on its own thread while the fault strikes: kills
        // and pauses land under load, mid-send.
        let seeds: Vec<u32> = (0..a.burst).map(|_| rng.below(QUEUES as u64) as u32).collect();
        let (addr, taken) = (master_addr.clone(), conn.take());
        let sender = std::thread::spawn(move || {
            let mut conn = taken;
            let mut got = Vec::with_capacity(seeds.len());
            for (i, qid) in seeds.into_iter().enumerate() {
                let body = format!("soak-{cycle}-{i}");
                if conn.is_none() {
                    conn = Client::connect_with(&addr, Duration::from_secs(1), Duration::from_secs(3)).ok();
                }
                let code = match conn.as_mut().map(|c| c.call(send_req(qid, &body))) {
                    Some(Ok(r)) => Some(r.code),
                    Some(Err(_)) => {
                        conn = None;
                        None
                    }
                    None => None,
                };
                got.push((body, code));
            }
            (got, conn)
        });
        std::thread::sleep(Duration::from_millis(rng.below(150)));
        let fault = match rng.below(6) {
            0 => "kill-master",
            1 => "kill-slave",
            2 => "pause-master",
            3 => "pause-slave",
            4 => "cut-links",
            _ => "none",
        };
        *faults.entry(fault).or_default() += 1;
        match fault {
            "kill-master" => {
                master.kill9();
                master.start(&bin)?;
            }
            "kill-slave" => {
                slave.kill9();
                slave.start(&bin)?;
            }
            "pause-master" | "pause-slave" => {
                let node = if fault == "pause-master" { &master } else { &slave };
                node.signal(libc::SIGSTOP);
                std::thread::sleep(Duration::from_millis(300 + rng.below(2700)));
                node.signal(libc::SIGCONT);
            }
            "cut-links" => {
                let ha = a.base + 1000 + 300;
                let _ = Command::new("ss")
                    .args(["-K", "state", "established"])
                    .arg(format!("( sport >= :{ha} and sport <= :{} )", ha + 255))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
            _ => {}
        }
        let (got, back) = sender.join().map_err(|_| "the sending thread panicked".to_string())?;
        outcomes.extend(got);
        conn = back;
        if cycle % 10 == 9 {
            println!("soak: cycle {} done ({} sends so far)", cycle + 1, outcomes.len());
        }
    }
    // The slave catches up with everything the master has.
    let slave_addr = format!("127.0.0.1:{}", slave.port);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (m, s) = (max_offsets(&master_addr)?, max_offsets(&slave_addr)?);
        if m == s {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the slave did not catch up in 120 s: master {m:?}, slave {s:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let on_master = read_all(&master_addr)?;
    let on_slave = read_all(&slave_addr)?;
    let mut count: BTreeMap<String, u64> = BTreeMap::new();
    let mut lost_master = Vec::new();
    let mut lost_slave = Vec::new();
    for (body, code) in &outcomes {
        let name = match code {
            Some(response::SUCCESS) => "SUCCESS",
            Some(response::FLUSH_SLAVE_TIMEOUT) => "FLUSH_SLAVE_TIMEOUT",
            Some(response::SLAVE_NOT_AVAILABLE) => "SLAVE_NOT_AVAILABLE",
            Some(_) => "refused",
            None => "no answer",
        };
        *count.entry(name.to_string()).or_default() += 1;
        let stored = matches!(
            *code,
            Some(response::SUCCESS) | Some(response::FLUSH_SLAVE_TIMEOUT) | Some(response::SLAVE_NOT_AVAILABLE)
        );
        if stored && !on_master.contains_key(body) {
            lost_master.push(body.clone());
        }
        if *code == Some(response::SUCCESS) && !on_slave.contains_key(body) {
            lost_slave.push(body.clone());
        }
    }
    let dup_master = on_master.values().filter(|&&n| n > 1).count();
    let dup_slave = on_slave.values().filter(|&&n| n > 1).count();
    let master_not_on_slave = on_master.keys().filter(|b| !on_slave.contains_key(*b)).count();
    println!("soak: faults {faults:?}");
    println!("soak: outcomes {count:?}");
    println!(
        "soak: stored on the master {}, on the slave {}; acknowledged-but-lost on the master {}, \
         SUCCESS-but-lost on the slave {}, master messages missing on the slave {master_not_on_slave}, \
         duplicates master {dup_master} slave {dup_slave}",
        on_master.len(),
        on_slave.len(),
        lost_master.len(),
        lost_slave.len()
    );
    for b in lost_master.iter().chain(&lost_slave).take(20) {
        println!("soak: lost {b}");
    }
    Ok(
        lost_master.is_empty()
            && lost_slave.is_empty()
            && dup_master == 0
            && dup_slave == 0
            && master_not_on_slave == 0,
    )
}

fn main() {
    match run() {
        Ok(true) => println!("soak: PASS"),
        Ok(false) => {
            println!("soak: FAIL");
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("soak: {e}");
            std::process::exit(2);
        }
    }
}
