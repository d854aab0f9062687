//! Failover time (`scripts/bench-failover.sh`, not in CI): against a
//! cluster started by `scripts/cluster.sh --controllers 3 --groups 1
//! --slaves 1`, a producer thread sends 1 KiB messages one after another
//! to the master of `broker-a`'s shard-0 entry as the name server routes
//! it (it asks again after every failed send, as RocketMQ's clients do
//! once a broker is gone), while the main thread kills the group's master
//! with SIGKILL, waits for the producer's first acknowledgement from the
//! new master, starts the killed broker again (it rejoins as a slave) and
//! waits until both are in the in-sync set — `rounds` times.
//!
//! Failover time of a round = first SUCCESS from the new master − last
//! SUCCESS from the old one. It adds up the controller's heartbeat
//! timeout, its scan, the broker's heartbeat interval, the promotion, the
//! name server registration and the producer's route lookups.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shardmq::admin::client::{req, Client};
use shardmq::protocol::codes::{request, response};

const TOPIC: &str = "FailoverTime";
const GROUP: &str = "broker-a";

struct Args {
    dir: PathBuf,
    base: u16,
    rounds: u32,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        dir: PathBuf::from("./cluster"),
        base: 20000,
        rounds: 20,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().ok_or_else(|| format!("{k} needs a value"))?;
        match k.as_str() {
            "--dir" => a.dir = PathBuf::from(v),
            "--base" => a.base = v.parse().map_err(|_| "--base: a port")?,
            "--rounds" => a.rounds = v.parse().map_err(|_| "--rounds: a number")?,
            _ => return Err(format!("unknown option {k} (--dir, --base, --rounds)")),
        }
    }
    Ok(a)
}

/// The address the name server gives as master of `broker-a-s0`.
fn route_master(namesrv: &str) -> Option<String> {
    let mut c = Client::connect_with(namesrv, Duration::from_secs(1), Duration::from_secs(2)).ok()?;
    let r = c
        .call(req(request::GET_ROUTEINFO_BY_TOPIC, &[("topic", TOPIC.into())]))
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
    v["brokerDatas"]
        .as_array()?
        .iter()
        .find(|d| d["brokerName"] == format!("{GROUP}-s0").as_str())?["brokerAddrs"]["0"]
        .as_str()
        .map(String::from)
}

fn send_req(body: &[u8]) -> shardmq::protocol::RemotingCommand {
    let mut r = req(
        request::SEND_MESSAGE_V2,
        &[
            ("a", "failover-producer".into()),
            ("b", TOPIC.into()),
            ("c", "TBW102".into()),
            ("d", "4".into()),
            ("e", "0".into()),
            ("f", "0".into()),
            ("g", "0".into()),
            ("h", "0".into()),
            ("i", "WAIT\u{1}true\u{2}".into()),
        ],
    );
    r.body = bytes::Bytes::from(body.to_vec());
    r
}

/// (when, which address) of every SUCCESS.
type Acks = Arc<Mutex<Vec<(Instant, String)>>>;

fn producer(namesrv: String, acks: Acks, stop: Arc<AtomicBool>) {
    let body = vec![b'x'; 1024];
    let mut conn: Option<Client> = None;
    while !stop.load(Ordering::SeqCst) {
        if conn.is_none() {
            conn = route_master(&namesrv)
                .and_then(|a| Client::connect_with(&a, Duration::from_millis(500), Duration::from_secs(3)).ok());
            if conn.is_none() {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        match c.call(send_req(&body)) {
            Ok(r) if r.code == response::SUCCESS => {
                let addr = c.addr().to_string();
                if let Ok(mut a) = acks.lock() {
                    a.push((Instant::now(), addr));
                }
            }
            _ => {
                conn = None;
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

fn groups(ctl: &[String]) -> Option<shardmq_controller::GroupView> {
    let mut c = shardmq_controller::client::Client::new(ctl.to_vec(), Duration::from_secs(1));
    c.groups().ok()?.into_iter().find(|g| g.broker_name == GROUP)
}

fn wait_for<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> Result<T, String> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(v) = f() {
            return Ok(v);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!("{what}: not within {within:?}"))
}

/// Broker id m (1, 2) of the group is `broker-a-{m-1}` of cluster.sh.
fn broker_dir(dir: &std::path::Path, id: u64) -> PathBuf {
    dir.join(format!("{GROUP}-{}", id - 1))
}

fn kill9(pid_file: &std::path::Path) -> Result<(), String> {
    let pid: i32 = std::fs::read_to_string(pid_file)
        .map_err(|e| format!("{}: {e}", pid_file.display()))?
        .trim()
        .parse()
        .map_err(|_| format!("{}: not a pid", pid_file.display()))?;
    // cluster.sh's supervisor (a shell) or a broker started here: kill
    // the serve processes of that directory, then the supervisor.
    let conf = pid_file.with_extension("").join("broker.conf");
    let _ = Command::new("pkill")
        .args(["-9", "-f", &format!("serve -c {}", conf.display())])
        .status();
    // SAFETY: kill(2) with a pid from the cluster's pid file; no memory.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    Ok(())
}

fn start(bin: &str, dir: &std::path::Path) -> Result<(), String> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("broker.log"))
        .map_err(|e| e.to_string())?;
    let child = Command::new(bin)
        .args(["serve", "-c"])
        .arg(dir.join("broker.conf"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("start {}: {e}", dir.display()))?;
    std::fs::write(dir.with_extension("pid"), format!("{}\n", child.id())).map_err(|e| e.to_string())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("failover_time: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let mut a = parse_args()?;
    // cluster.sh starts brokers with absolute paths.
    a.dir = a.dir.canonicalize().map_err(|e| format!("{}: {e}", a.dir.display()))?;
    let bin = std::env::var("SHARDMQ_BIN").unwrap_or_else(|_| "target/release/shardmq".into());
    let namesrv = format!("127.0.0.1:{}", a.base);
    let ctl: Vec<String> = (0..3).map(|i| format!("127.0.0.1:{}", a.base + 100 + i)).collect();
    let acks: Acks = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let p = {
        let (n, acks, stop) = (namesrv.clone(), acks.clone(), stop.clone());
        std::thread::spawn(move || producer(n, acks, stop))
    };
    let mut times = Vec::new();
    for round in 1..=a.rounds {
        let g = wait_for("both brokers in sync", Duration::from_secs(60), || {
            groups(&ctl).filter(|g| g.sync_state_set.len() == 2 && g.master_id.is_some())
        })?;
        let master = g.master_id.ok_or("no master")?;
        let before = acks.lock().map(|v| v.len()).unwrap_or(0);
        wait_for("acks from the master", Duration::from_secs(30), || {
            (acks.lock().map(|v| v.len()).unwrap_or(0) > before + 50).then_some(())
        })?;
        let dir = broker_dir(&a.dir, master);
        kill9(&dir.with_extension("pid"))?;
        let killed_at = Instant::now();
        let old_addr = acks
            .lock()
            .ok()
            .and_then(|v| v.last().map(|x| x.1.clone()))
            .ok_or("no ack")?;
        let (last_old, first_new) = wait_for("an ack from the new master", Duration::from_secs(60), || {
            let v = acks.lock().ok()?;
            let last_old = v.iter().rev().find(|x| x.1 == old_addr)?.0;
            let first_new = v.iter().find(|x| x.0 > killed_at && x.1 != old_addr)?.0;
            Some((last_old, first_new))
        })?;
        let t = first_new.duration_since(last_old);
        println!(
            "round {round}: broker {master} killed; failover {} ms (kill -> first new ack {} ms)",
            t.as_millis(),
            first_new.duration_since(killed_at).as_millis()
        );
        times.push(t);
        start(&bin, &dir)?;
    }
    stop.store(true, Ordering::SeqCst);
    let _ = p.join();
    times.sort();
    let ms = |d: Duration| d.as_millis();
    let n = times.len();
    if n > 0 {
        println!(
            "failovers: {n}; min {} ms, median {} ms, p90 {} ms, max {} ms; total acks {}",
            ms(times[0]),
            ms(times[n / 2]),
            ms(times[(n * 9 / 10).min(n - 1)]),
            ms(times[n - 1]),
            acks.lock().map(|v| v.len()).unwrap_or(0)
        );
    }
    Ok(())
}
