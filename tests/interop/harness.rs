//! Shared harness of the real-client interop tests (`tests/interop_alions.rs`,
//! `tests/interop_cpp.rs`, `tests/interop_java.rs`): installs the clients
//! (scripts/setup-interop.sh, once, under a lock), starts the real
//! `shardmq serve` on 127.0.0.1 with free ports and a temp data dir, runs the
//! scenario programs under `tests/interop/{node,python,java}` and checks what
//! they print (JSON lines).
//!
//! Every wait is bounded; every child process is killed when its handle is
//! dropped (also when an assertion panics). A failing test prints each
//! scenario program's command, stdout events and stderr tail (plus the Java
//! client's log tail) and the broker's log tail; with `SHARDMQ_KEEP=1` (or
//! `SHARDMQ_INTEROP_KEEP=1`) the broker's temp dir is kept.

#![allow(dead_code)]

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const QUEUES: usize = 4;
/// Client-side hard limit handed to every scenario program (`--timeout-ms`).
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(50);
/// Rust-side limit for one scenario program; killed after that.
pub const PROC_TIMEOUT: Duration = Duration::from_secs(55);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn interop_dir() -> PathBuf {
    std::env::var_os("SHARDMQ_INTEROP_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target").join("interop"))
}

/// The broker binary: this build's, or `SHARDMQ_BIN` (e.g. another
/// revision's, to check that a test catches a bug).
pub fn shardmq_bin() -> PathBuf {
    std::env::var_os("SHARDMQ_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_shardmq")))
}

/// `SHARDMQ_KEEP=1` or `SHARDMQ_INTEROP_KEEP=1`: keep a failed test's dir.
fn keep_requested() -> bool {
    ["SHARDMQ_KEEP", "SHARDMQ_INTEROP_KEEP"]
        .iter()
        .any(|k| std::env::var(k).is_ok_and(|v| !v.is_empty() && v != "0"))
}

/// Wall-clock milliseconds, as the scenario programs report times.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

fn env_ms(name: &str, default: u64) -> Duration {
    Duration::from_millis(std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default))
}

// ---------------------------------------------------------------------------
// Serialization and client installation
// ---------------------------------------------------------------------------

/// Scenarios of one test binary run one at a time: each starts its own broker
/// and several client processes, and some rely on timing (rebalance), which a
/// 2-core machine running two such scenarios at once would stretch.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs scripts/setup-interop.sh once per process, under an exclusive lock
/// file so that concurrent test binaries (nextest) do not install at once.
/// The script itself is idempotent and returns at once when everything is in.
pub fn ensure_clients() {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    let res = DONE.get_or_init(|| {
        let dir = interop_dir();
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let lock_path = dir.with_extension("lock");
        let lock = File::create(&lock_path).map_err(|e| format!("create {}: {e}", lock_path.display()))?;
        // SAFETY: flock on a file descriptor we own; released when `lock` is dropped.
        let rc = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) };
        if rc != 0 {
            return Err(format!(
                "flock {}: {}",
                lock_path.display(),
                std::io::Error::last_os_error()
            ));
        }
        let out = Command::new("bash")
            .arg(root().join("scripts").join("setup-interop.sh"))
            .env("SHARDMQ_INTEROP_DIR", &dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("run scripts/setup-interop.sh: {e}"))?;
        eprint!("{}", String::from_utf8_lossy(&out.stdout));
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        drop(lock);
        if !out.status.success() {
            return Err(format!(
                "scripts/setup-interop.sh failed ({}): {}",
                out.status,
                tail(&String::from_utf8_lossy(&out.stderr), 2000)
            ));
        }
        Ok(())
    });
    if let Err(e) = res {
        panic!("interop clients could not be installed: {e}");
    }
}

fn tail(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &s[start..])
}

fn file_tail(p: &Path, max: usize) -> String {
    match std::fs::read(p) {
        Ok(b) => tail(&String::from_utf8_lossy(&b), max),
        Err(e) => format!("(cannot read {}: {e})", p.display()),
    }
}

// ---------------------------------------------------------------------------
// Ports
// ---------------------------------------------------------------------------

#[path = "../common/ports.rs"]
mod ports;

/// A free 127.0.0.1 port `p` such that `p - 2` is free too: RocketMQ
/// brokers also listen on listenPort - 2 (the "VIP channel").
pub fn free_port() -> u16 {
    ports::free_port_block(0)
}

pub struct Ports {
    pub broker: u16,
    pub namesrv: u16,
    /// First of the shard ports (one per shard, consecutive).
    pub shards: u16,
    /// First of the replication ports (`haListenPort`, one per shard).
    pub ha: u16,
}

/// Shards the interop brokers run (one per core on the CI machine).
pub const SHARDS: u16 = 2;

impl Ports {
    pub fn pick() -> Ports {
        Ports {
            broker: free_port(),
            namesrv: free_port(),
            shards: ports::free_port_block(SHARDS - 1),
            ha: ports::free_port_block(SHARDS - 1),
        }
    }
}

// ---------------------------------------------------------------------------
// Broker
// ---------------------------------------------------------------------------

/// One `shardmq serve` process with its own data dir and ports; restartable on
/// the same dir and ports. Killed (SIGKILL) on drop.
pub struct Broker {
    pub dir: tempfile::TempDir,
    pub ports: Ports,
    pub flush: &'static str,
    child: Option<Child>,
    log_path: PathBuf,
    starts: u32,
    /// broker.conf keys added to (or replacing) the harness defaults.
    extra: Vec<(String, String)>,
    /// Name server of an already running peer broker (see [`peer_namesrv`]).
    external: Option<String>,
}

/// `SHARDMQ_INTEROP_PEER_NAMESRV=host:port`: scenarios that support it
/// (tests/interop_java_pop.rs) run against that already running broker, e.g.
/// Apache RocketMQ started by scripts/apache-pop-peer.sh, instead of starting
/// `shardmq serve`, to check the tests against the reference broker. Then
/// [`Broker::kill9`] and [`Broker::restart`] run the shell commands in
/// `SHARDMQ_INTEROP_PEER_KILL` / `SHARDMQ_INTEROP_PEER_RESTART`.
pub fn peer_namesrv() -> Option<String> {
    std::env::var("SHARDMQ_INTEROP_PEER_NAMESRV")
        .ok()
        .filter(|v| !v.is_empty())
}

fn run_peer_cmd(var: &str) {
    let cmd =
        std::env::var(var).unwrap_or_else(|_| panic!("{var} is not set (needed with SHARDMQ_INTEROP_PEER_NAMESRV)"));
    let st = Command::new("bash")
        .arg("-c")
        .arg(&cmd)
        .status()
        .expect("run peer command");
    assert!(st.success(), "{var} ({cmd}) failed: {st}");
}

impl Broker {
    pub fn start(flush: &'static str) -> Broker {
        Broker::start_with(flush, &[])
    }

    /// Like [`Broker::start`], with extra broker.conf keys (a key the harness
    /// sets too, e.g. `defaultTopicQueueNums`, takes the given value).
    pub fn start_with(flush: &'static str, extra: &[(&str, &str)]) -> Broker {
        Broker::start_on(flush, extra, Ports::pick())
    }

    /// Like [`Broker::start_with`], on ports picked before (brokers of one
    /// cluster name each other's name servers and replication ports).
    pub fn start_on(flush: &'static str, extra: &[(&str, &str)], ports: Ports) -> Broker {
        let dir = tempfile::Builder::new()
            .prefix("shardmq-interop-")
            .tempdir()
            .expect("tempdir");
        let mut b = Broker {
            dir,
            ports,
            flush,
            child: None,
            log_path: PathBuf::new(),
            starts: 0,
            extra: extra.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            external: None,
        };
        b.spawn();
        b
    }

    /// The broker of [`peer_namesrv`] if set (extra conf keys are ignored
    /// then), else a fresh `shardmq serve` as [`Broker::start_with`].
    pub fn start_or_peer(flush: &'static str, extra: &[(&str, &str)]) -> Broker {
        let Some(ns) = peer_namesrv() else {
            return Broker::start_with(flush, extra);
        };
        eprintln!("interop: using the running peer broker of name server {ns} (SHARDMQ_INTEROP_PEER_NAMESRV)");
        let dir = tempfile::Builder::new()
            .prefix("shardmq-interop-peer-")
            .tempdir()
            .expect("tempdir");
        let log_path = dir.path().join("broker-1.log");
        Broker {
            dir,
            ports: Ports::pick(),
            flush,
            child: None,
            log_path,
            starts: 1,
            extra: Vec::new(),
            external: Some(ns),
        }
    }

    pub fn namesrv(&self) -> String {
        match &self.external {
            Some(ns) => ns.clone(),
            None => format!("127.0.0.1:{}", self.ports.namesrv),
        }
    }

    /// Creates the topic with [`QUEUES`] queues (UPDATE_AND_CREATE_TOPIC,
    /// as `mqadmin updateTopic` does). ali-ons, like the Aliyun service it
    /// was written for, never falls back to TBW102 auto-creation: a topic
    /// must exist before its first send. Idempotent.
    pub fn create_topic(&self, topic: &str) {
        self.create_topic_queues(topic, QUEUES);
    }

    /// [`Broker::create_topic`] with `queues` queues (spread over the shards).
    pub fn create_topic_queues(&self, topic: &str, queues: usize) {
        use shardmq::protocol::{codes, encode_frame, FrameDecoder, RemotingCommand};
        use std::io::Read;
        let mut cmd = RemotingCommand::new_request(codes::request::UPDATE_AND_CREATE_TOPIC);
        for (k, v) in [
            ("topic", topic.to_string()),
            ("readQueueNums", queues.to_string()),
            ("writeQueueNums", queues.to_string()),
            ("perm", "6".to_string()),
            ("onlyIfAbsent", "true".to_string()),
        ] {
            cmd.ext_fields.insert(k, v);
        }
        let mut out = bytes::BytesMut::new();
        encode_frame(&cmd, &mut out).expect("encode");
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.ports.broker)).expect("connect broker");
        s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        s.write_all(&out).expect("write");
        let mut buf = bytes::BytesMut::new();
        let mut chunk = [0u8; 4096];
        let reply = loop {
            if let Some(r) = FrameDecoder::new().decode(&mut buf).expect("decode") {
                break r;
            }
            let n = s.read(&mut chunk).expect("read create-topic reply");
            assert!(n > 0, "broker closed the connection while creating {topic}");
            buf.extend_from_slice(&chunk[..n]);
        };
        assert_eq!(
            reply.code,
            codes::response::SUCCESS,
            "create topic {topic}: {:?}",
            reply.remark
        );
        // The broker re-registers with the name server right away; give the
        // route a moment to appear.
        std::thread::sleep(Duration::from_millis(200));
    }

    /// Creates or updates the subscription group config of `group` with
    /// the admin CLI (`shardmq admin group create`, which sends
    /// UPDATE_AND_CREATE_SUBSCRIPTIONGROUP as `mqadmin updateSubGroup`
    /// does): its `retryMaxTimes` and `consumeMessageOrderly`.
    pub fn create_group(&self, group: &str, retry_max_times: i32, orderly: bool) {
        let broker = format!("127.0.0.1:{}", self.ports.broker);
        let retry = retry_max_times.to_string();
        let mut args = vec![
            "admin",
            "--broker",
            &broker,
            "group",
            "create",
            group,
            "--retry-max-times",
            &retry,
        ];
        if orderly {
            args.push("--orderly");
        }
        let out = Command::new(shardmq_bin())
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .expect("run shardmq admin");
        assert!(
            out.status.success(),
            "shardmq {args:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The broker's storePathRootDir.
    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// The log of the broker's current run (stdout and stderr).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    pub fn conf_path(&self) -> PathBuf {
        self.dir.path().join("broker.conf")
    }

    /// A scratch directory inside the broker's temp dir (client HOMEs, logs).
    pub fn scratch(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join("clients").join(name);
        std::fs::create_dir_all(&p).expect("create scratch dir");
        p
    }

    fn write_conf(&self) {
        let store = self.dir.path().join("store");
        let mut keys: Vec<(String, String)> = [
            ("brokerClusterName", "InteropCluster".to_string()),
            ("brokerName", "interop-broker-a".to_string()),
            ("brokerIP1", "127.0.0.1".to_string()),
            ("listenPort", self.ports.broker.to_string()),
            ("namesrvListenPort", self.ports.namesrv.to_string()),
            ("storePathRootDir", store.display().to_string()),
            ("flushDiskType", self.flush.to_string()),
            ("autoCreateTopicEnable", "true".to_string()),
            ("defaultTopicQueueNums", QUEUES.to_string()),
            ("shardCount", SHARDS.to_string()),
            ("shardListenPortBase", self.ports.shards.to_string()),
            ("haListenPort", self.ports.ha.to_string()),
            ("metricsPort", "0".to_string()),
            ("grpcListenPort", "0".to_string()),
            ("httpListenPort", "0".to_string()),
            // The tests share the host's disk: refuse writes only at the
            // highest ratio allowed.
            ("diskMaxUsedSpaceRatio", "95".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for (k, v) in &self.extra {
            match keys.iter_mut().find(|(k2, _)| k2 == k) {
                Some(slot) => slot.1 = v.clone(),
                None => keys.push((k.clone(), v.clone())),
            }
        }
        let conf: String = keys.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        std::fs::write(self.conf_path(), conf).expect("write broker.conf");
    }

    /// Starts `shardmq serve`; a start that fails only because a port is
    /// held for a moment (a socket of the previous run of this broker, or a
    /// stray connection's source port) is tried again on the same ports.
    fn spawn(&mut self) {
        for attempt in 1.. {
            match self.try_spawn() {
                Ok(()) => return,
                Err(why) if attempt < 5 && why.contains("Address already in use") => {
                    eprintln!(
                        "interop: broker start #{} found a port in use; trying again",
                        self.starts
                    );
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(why) => panic!("{why}"),
            }
        }
    }

    fn try_spawn(&mut self) -> Result<(), String> {
        self.write_conf();
        self.starts += 1;
        self.log_path = self.dir.path().join(format!("broker-{}.log", self.starts));
        let log = Arc::new(Mutex::new(File::create(&self.log_path).expect("broker log")));
        let mut child = Command::new(shardmq_bin())
            .arg("serve")
            .arg("-c")
            .arg(self.conf_path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn shardmq serve");
        let ready = Arc::new((Mutex::new(false), Condvar::new()));
        let out = child.stdout.take().expect("stdout");
        let err = child.stderr.take().expect("stderr");
        for (stream, tag) in [
            (Box::new(out) as Box<dyn std::io::Read + Send>, "out"),
            (Box::new(err), "err"),
        ] {
            let log = log.clone();
            let ready = ready.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if let Ok(mut f) = log.lock() {
                        let _ = writeln!(f, "[{tag}] {line}");
                    }
                    if line.contains("shardmq ready") {
                        let (m, cv) = &*ready;
                        *m.lock().unwrap() = true;
                        cv.notify_all();
                    }
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let (m, cv) = &*ready;
        let mut ok = m.lock().unwrap();
        while !*ok {
            if let Ok(Some(status)) = child.try_wait() {
                drop(ok);
                std::thread::sleep(Duration::from_millis(100));
                return Err(format!(
                    "`shardmq serve -c {}` exited ({status}) before printing 'shardmq ready' (start #{}).\n\
                     broker.conf:\n{}\nbroker output:\n{}",
                    self.conf_path().display(),
                    self.starts,
                    std::fs::read_to_string(self.conf_path()).unwrap_or_default(),
                    file_tail(&self.log_path, 4000)
                ));
            }
            let now = Instant::now();
            if now >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                drop(ok);
                panic!(
                    "`shardmq serve` printed no 'shardmq ready' within 30 s (start #{}); output:\n{}",
                    self.starts,
                    file_tail(&self.log_path, 4000)
                );
            }
            ok = cv.wait_timeout(ok, Duration::from_millis(100)).unwrap().0;
        }
        drop(ok);
        self.child = Some(child);
        Ok(())
    }

    /// SIGKILL, as a crash would; returns once the process is gone.
    pub fn kill9(&mut self) {
        if self.external.is_some() {
            return run_peer_cmd("SHARDMQ_INTEROP_PEER_KILL");
        }
        if let Some(mut c) = self.child.take() {
            c.kill().expect("SIGKILL broker");
            let st = c.wait().expect("wait broker");
            assert!(!st.success(), "broker must die by SIGKILL, got {st}");
        }
    }

    /// Starts the broker again on the same data dir and ports.
    pub fn restart(&mut self) {
        if self.external.is_some() {
            return run_peer_cmd("SHARDMQ_INTEROP_PEER_RESTART");
        }
        assert!(self.child.is_none(), "restart() after kill9()");
        self.spawn();
    }

    pub fn assert_alive(&mut self, what: &str) {
        if let Some(c) = self.child.as_mut() {
            if let Ok(Some(st)) = c.try_wait() {
                panic!(
                    "broker died ({st}) during {what}; output:\n{}",
                    file_tail(&self.log_path, 4000)
                );
            }
        }
    }

    pub fn log_tail(&self) -> String {
        file_tail(&self.log_path, 3000)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- broker log tail ({}) ---\n{}",
                self.log_path.display(),
                file_tail(&self.log_path, 4000)
            );
            // SHARDMQ_KEEP=1 / SHARDMQ_INTEROP_KEEP=1 leave the dir of a failed
            // test (data, broker.conf, logs, client scratch dirs) for a post-mortem.
            if keep_requested() {
                let kept = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"));
                eprintln!("interop: keeping broker dir {} for inspection", kept.keep().display());
            } else {
                eprintln!("interop: set SHARDMQ_KEEP=1 to keep the broker dir of a failed test");
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Clients and scenario processes
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Client {
    /// ali-ons 3.12.0 (Node).
    AliOns,
    /// Apache rocketmq-client-cpp 2.1.0 core through rocketmq-python-cvs 2.1.0.3.
    Cpp,
    /// Apache rocketmq-client 4.9.x (Java, the reference client), programs in
    /// tests/interop/java built into one jar by scripts/setup-interop.sh.
    Java,
    /// Apache rocketmq-client 5.3.x (Java remoting client, POP consumption),
    /// programs in tests/interop/java5 built into one jar by
    /// scripts/setup-interop.sh; run with [`Client::program`].
    Java5,
}

/// The Java scenario programs' jar (scripts/setup-interop.sh builds it).
pub fn java_jar() -> PathBuf {
    interop_dir()
        .join("java")
        .join("build")
        .join("shardmq-interop-java.jar")
}

/// The Java 5.x POP scenario programs' jar (scripts/setup-interop.sh builds it).
pub fn java5_jar() -> PathBuf {
    interop_dir()
        .join("java5")
        .join("build")
        .join("shardmq-interop-java5.jar")
}

impl Client {
    pub fn name(self) -> &'static str {
        match self {
            Client::AliOns => "ali-ons",
            Client::Cpp => "cpp",
            Client::Java => "java",
            Client::Java5 => "java5",
        }
    }

    fn command(self, script: &str, home: &Path, jvm: &[String]) -> Command {
        let mut cmd = match self {
            Client::AliOns => {
                let mut c = Command::new("node");
                c.arg(root().join("tests/interop/node").join(format!("{script}.js")));
                c.env("NODE_PATH", interop_dir().join("node").join("node_modules"));
                c
            }
            Client::Cpp => {
                let mut c = Command::new(interop_dir().join("venv").join("bin").join("python"));
                c.arg(root().join("tests/interop/python").join(format!("{script}.py")));
                c.arg("--log-dir").arg(home.join("logs"));
                c.env("PYTHONUNBUFFERED", "1");
                c.env("ROCKETMQ_CLIENT_LOG_DIR", home.join("logs"));
                c
            }
            Client::Java | Client::Java5 => {
                let mut c = Command::new("java");
                // Small, quick-starting JVMs: the CI machine has 2 cores.
                c.args(["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xmx256m", "-Xss512k"]);
                // Java takes user.home from the passwd entry, not $HOME: the
                // client's logs and broadcasting offsets go under it.
                c.arg(format!("-Duser.home={}", home.display()));
                c.arg(format!("-Drocketmq.client.logRoot={}", home.join("logs").display()));
                c.args(jvm);
                let jar = if self == Client::Java5 { java5_jar() } else { java_jar() };
                c.arg("-jar").arg(jar).arg(script);
                c
            }
        };
        // Clients write ~/logs, ~/.rocketmq_offsets: keep them in the scratch dir.
        cmd.env("HOME", home);
        cmd
    }

    /// Whether the client creates a topic on its first send (through the
    /// `TBW102` route). ali-ons does not; the C++ client would, but its
    /// scenarios keep creating topics first as they always did; the Java
    /// scenarios rely on auto-creation, as Java users do.
    pub fn auto_creates(self) -> bool {
        matches!(self, Client::Java | Client::Java5)
    }

    pub fn producer(self, broker: &Broker, topic: &str, group: &str) -> Args {
        if !self.auto_creates() {
            broker.create_topic(topic);
        }
        Args::new(self, "producer", broker, topic, group)
    }

    pub fn consumer(self, broker: &Broker, topic: &str, group: &str) -> Args {
        if !self.auto_creates() {
            broker.create_topic(topic);
        }
        Args::new(self, "consumer", broker, topic, group)
    }

    /// Another scenario program of this client (e.g. Java `txproducer`),
    /// with the same common options as [`Client::producer`]; never creates
    /// the topic.
    pub fn program(self, script: &'static str, broker: &Broker, topic: &str, group: &str) -> Args {
        Args::new(self, script, broker, topic, group)
    }
}

/// Builder for one scenario program invocation.
pub struct Args {
    client: Client,
    script: &'static str,
    label: String,
    home: PathBuf,
    args: Vec<String>,
    /// JVM options (`-Dname=value`) of a Java client.
    jvm: Vec<String>,
}

static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Args {
    fn new(client: Client, script: &'static str, broker: &Broker, topic: &str, group: &str) -> Args {
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let label = format!("{}-{script}-{n}", client.name());
        let home = broker.scratch(&label);
        let args = vec![
            "--namesrv".into(),
            broker.namesrv(),
            "--topic".into(),
            topic.into(),
            "--group".into(),
            group.into(),
            "--timeout-ms".into(),
            CLIENT_TIMEOUT.as_millis().to_string(),
        ];
        Args {
            client,
            script,
            label,
            home,
            args,
            jvm: Vec::new(),
        }
    }

    /// A Java system property (e.g. the 4.x client's `tls.enable`).
    pub fn jvm(mut self, name: &str, value: impl ToString) -> Args {
        assert!(
            matches!(self.client, Client::Java | Client::Java5),
            "JVM options are for Java clients"
        );
        self.jvm.push(format!("-D{name}={}", value.to_string()));
        self
    }

    pub fn arg(mut self, name: &str, value: impl ToString) -> Args {
        self.args.push(format!("--{name}"));
        self.args.push(value.to_string());
        self
    }

    pub fn flag(mut self, name: &str) -> Args {
        self.args.push(format!("--{name}"));
        self
    }

    pub fn label(mut self, label: &str) -> Args {
        self.label = format!("{}-{label}", self.label);
        self
    }

    /// Starts the program; its stdin stays open until `close_stdin`.
    pub fn spawn(self) -> Proc {
        let mut cmd = self.client.command(self.script, &self.home, &self.jvm);
        cmd.args(&self.args);
        let stderr_path = self.home.join("stderr.log");
        let stderr = File::create(&stderr_path).expect("stderr file");
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr));
        let cmdline = format!("{cmd:?}");
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmdline}: {e}"));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout");
        let shared = Arc::new((Mutex::new(Output::default()), Condvar::new()));
        let reader = {
            let shared = shared.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let (m, cv) = &*shared;
                    let mut o = m.lock().unwrap();
                    match serde_json::from_str::<Value>(&line) {
                        Ok(v) if v.is_object() => o.events.push(v),
                        _ => o.raw.push(line),
                    }
                    cv.notify_all();
                }
                let (m, cv) = &*shared;
                m.lock().unwrap().eof = true;
                cv.notify_all();
            })
        };
        Proc {
            label: self.label,
            cmdline,
            child: Some(child),
            stdin,
            shared,
            reader: Some(reader),
            stderr_path,
            started: Instant::now(),
        }
    }

    /// Runs the program to its end (bounded) and returns its events; panics
    /// with its output when it fails or reports an error.
    pub fn run(self) -> Vec<Value> {
        let mut p = self.spawn();
        p.close_stdin();
        p.wait_exit(PROC_TIMEOUT);
        p.assert_no_error();
        p.events()
    }
}

#[derive(Default)]
struct Output {
    events: Vec<Value>,
    raw: Vec<String>,
    eof: bool,
}

/// A running scenario program. Killed on drop.
pub struct Proc {
    pub label: String,
    cmdline: String,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    shared: Arc<(Mutex<Output>, Condvar)>,
    reader: Option<JoinHandle<()>>,
    stderr_path: PathBuf,
    started: Instant,
}

impl Proc {
    pub fn events(&self) -> Vec<Value> {
        self.shared.0.lock().unwrap().events.clone()
    }

    pub fn events_of(&self, kind: &str) -> Vec<Value> {
        self.events().into_iter().filter(|e| e["event"] == kind).collect()
    }

    /// The program's scratch dir (its HOME: client logs under `logs/`).
    pub fn home(&self) -> PathBuf {
        self.stderr_path.parent().map(Path::to_path_buf).unwrap_or_default()
    }

    /// Everything needed to understand a failure: command, exit, output.
    pub fn report(&self) -> String {
        // The Java client logs to <user.home>/logs/rocketmq_client.log.
        let client_log = self
            .stderr_path
            .parent()
            .map(|h| h.join("logs").join("rocketmq_client.log"))
            .filter(|p| p.exists())
            .map(|p| format!("client log tail ({}):\n{}\n", p.display(), file_tail(&p, 2500)))
            .unwrap_or_default();
        let o = self.shared.0.lock().unwrap();
        let mut lines: Vec<String> = o.events.iter().map(|e| e.to_string()).collect();
        lines.extend(o.raw.iter().map(|r| format!("(raw) {r}")));
        let n = lines.len();
        let shown = if n > 40 {
            let mut v = lines[..15].to_vec();
            v.push(format!("… {} more lines …", n - 30));
            v.extend_from_slice(&lines[n - 15..]);
            v
        } else {
            lines
        };
        format!(
            "--- {} ({:.1} s) ---\n{}\nstdout:\n  {}\nstderr tail:\n{}\n{client_log}",
            self.label,
            self.started.elapsed().as_secs_f64(),
            self.cmdline,
            shown.join("\n  "),
            file_tail(&self.stderr_path, 2500)
        )
    }

    /// Waits until `pred` holds for the collected events; panics (with the
    /// output) on timeout or if the program ends first.
    pub fn wait_for(&self, what: &str, timeout: Duration, pred: impl Fn(&[Value]) -> bool) {
        let deadline = Instant::now() + timeout;
        let (m, cv) = &*self.shared;
        let mut o = m.lock().unwrap();
        loop {
            if pred(&o.events) {
                return;
            }
            if o.events
                .iter()
                .any(|e| e["event"] == "error" || e["event"] == "timeout")
                || o.eof
            {
                drop(o);
                panic!(
                    "{}: ended or failed while waiting for {what}\n{}",
                    self.label,
                    self.report()
                );
            }
            let now = Instant::now();
            if now >= deadline {
                drop(o);
                panic!("{}: no {what} within {:?}\n{}", self.label, timeout, self.report());
            }
            o = cv
                .wait_timeout(o, (deadline - now).min(Duration::from_millis(200)))
                .unwrap()
                .0;
        }
    }

    pub fn wait_event(&self, kind: &str, timeout: Duration) {
        self.wait_for(&format!("\"{kind}\" event"), timeout, |ev| {
            ev.iter().any(|e| e["event"] == kind)
        });
    }

    /// Writes one line to the program's stdin (a command for programs that
    /// read them, e.g. the Java 5.x `raw` program).
    pub fn send_line(&mut self, line: &str) {
        let Some(stdin) = self.stdin.as_mut() else {
            panic!("{}: stdin already closed\n{}", self.label, self.report());
        };
        if let Err(e) = writeln!(stdin, "{line}").and_then(|_| stdin.flush()) {
            panic!(
                "{}: writing a command to its stdin failed ({e})\n{}",
                self.label,
                self.report()
            );
        }
    }

    /// Tells a consumer to stop (it watches stdin for EOF).
    pub fn close_stdin(&mut self) {
        self.stdin.take();
    }

    /// Waits for the process to exit (kills it after `timeout`) and for its
    /// output to be read.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        let mut status = None;
        if let Some(mut c) = self.child.take() {
            loop {
                if let Ok(Some(st)) = c.try_wait() {
                    status = Some(st);
                    break;
                }
                if Instant::now() >= deadline {
                    let _ = c.kill();
                    let _ = c.wait();
                    if let Some(r) = self.reader.take() {
                        let _ = r.join();
                    }
                    panic!(
                        "{}: still running after {:?}, killed\n{}",
                        self.label,
                        timeout,
                        self.report()
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        status
    }

    /// Stops a consumer: closes stdin and waits for the "done" event and exit.
    pub fn stop(&mut self) {
        self.close_stdin();
        self.wait_exit(Duration::from_secs(20));
        self.assert_no_error();
        assert!(
            !self.events_of("done").is_empty(),
            "{}: consumer did not finish cleanly\n{}",
            self.label,
            self.report()
        );
    }

    pub fn assert_no_error(&self) {
        let bad: Vec<Value> = self
            .events()
            .into_iter()
            .filter(|e| e["event"] == "error" || e["event"] == "timeout")
            .collect();
        assert!(bad.is_empty(), "{}: reported {:?}\n{}", self.label, bad, self.report());
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("{}", self.report());
        }
    }
}

// ---------------------------------------------------------------------------
// Decoded events
// ---------------------------------------------------------------------------

/// What the producer reported for one message ("sent" event).
#[derive(Clone, Debug)]
pub struct Sent {
    pub i: u64,
    pub key: String,
    pub tag: String,
    pub msg_id: Option<String>,
    /// `brokerName:queueId` (a queue id alone is not unique across broker
    /// entries, e.g. the shards of a shard-aware broker).
    pub queue_id: Option<String>,
    pub queue_offset: Option<i64>,
    pub status: Option<String>,
    pub order_key: Option<String>,
    pub order_seq: Option<i64>,
    /// Java: the broker's offset message id (`msgId` is the client's UNIQ_KEY).
    pub offset_msg_id: Option<String>,
    /// Java: the queue the client aimed the send at (`brokerName:queueId`),
    /// when it chose one.
    pub target: Option<String>,
}

/// One delivered message ("msg" event).
#[derive(Clone, Debug)]
pub struct Recv {
    pub topic: String,
    pub key: String,
    pub body: String,
    pub tags: String,
    pub props: BTreeMap<String, String>,
    pub msg_id: Option<String>,
    pub uniq_key: Option<String>,
    pub queue_id: i64,
    pub queue_offset: i64,
    pub reconsume_times: i64,
    /// Java: the broker's offset message id.
    pub offset_msg_id: Option<String>,
    /// Java: the `MessageQueue` the message was pulled from,
    /// `brokerName:queueId` (queue id in that broker entry's numbering).
    pub pulled_from: Option<String>,
}

fn s(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

pub fn sent_of(events: &[Value]) -> Vec<Sent> {
    events
        .iter()
        .filter(|e| e["event"] == "sent")
        .map(|e| Sent {
            i: e["i"].as_u64().expect("sent.i"),
            key: s(&e["key"]).expect("sent.key"),
            tag: s(&e["tag"]).expect("sent.tag"),
            msg_id: s(&e["msgId"]),
            queue_id: s(&e["queueId"]).or_else(|| e["queueId"].as_i64().map(|q| q.to_string())),
            queue_offset: e["queueOffset"].as_i64(),
            status: s(&e["status"]),
            order_key: s(&e["orderKey"]),
            order_seq: e["orderSeq"].as_i64(),
            offset_msg_id: s(&e["offsetMsgId"]),
            target: s(&e["target"]),
        })
        .collect()
}

pub fn recv_of(events: &[Value]) -> Vec<Recv> {
    events
        .iter()
        .filter(|e| e["event"] == "msg")
        .map(|e| Recv {
            topic: s(&e["topic"]).unwrap_or_default(),
            key: s(&e["keys"]).unwrap_or_default(),
            body: s(&e["body"]).unwrap_or_default(),
            tags: s(&e["tags"]).unwrap_or_default(),
            props: e["props"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect()
                })
                .unwrap_or_default(),
            msg_id: s(&e["msgId"]),
            uniq_key: s(&e["uniqKey"]),
            queue_id: e["queueId"].as_i64().unwrap_or(-1),
            queue_offset: e["queueOffset"].as_i64().unwrap_or(-1),
            reconsume_times: e["reconsumeTimes"].as_i64().unwrap_or(0),
            offset_msg_id: s(&e["offsetMsgId"]),
            pulled_from: match (s(&e["brokerName"]), e["mqQueueId"].as_i64()) {
                (Some(b), Some(q)) => Some(format!("{b}:{q}")),
                _ => None,
            },
        })
        .collect()
}

/// Runs a producer to its end and checks it sent `count` messages successfully.
pub fn produce(client: Client, broker: &Broker, topic: &str, prefix: &str, start: u64, count: u64) -> Vec<Sent> {
    produce_with(
        client.producer(broker, topic, &format!("PG_{topic}")),
        prefix,
        start,
        count,
    )
}

pub fn produce_with(args: Args, prefix: &str, start: u64, count: u64) -> Vec<Sent> {
    let events = args.arg("prefix", prefix).arg("start", start).arg("count", count).run();
    let sent = sent_of(&events);
    let done = events.iter().find(|e| e["event"] == "done");
    assert!(
        done.is_some() && sent.len() as u64 == count,
        "producer sent {} of {count} messages (done: {done:?}); events: {events:?}",
        sent.len()
    );
    for m in &sent {
        if let Some(st) = &m.status {
            assert!(
                st == "SEND_OK" || st == "OK",
                "message {} sent with status {st}: with SYNC_FLUSH and no slave the broker must answer SUCCESS",
                m.key
            );
        }
    }
    sent
}

/// Expected body / tag / properties of message `i` (see the producer programs).
pub fn expected_body(prefix: &str, i: u64) -> String {
    format!("{prefix} body #{i} ✓")
}

/// Checks that every delivered message is exactly what was sent: body, keys,
/// tags and user properties intact, and the topic right.
pub fn assert_intact(client: Client, topic: &str, sent: &[Sent], recv: &[Recv]) {
    let by_key: HashMap<&str, &Sent> = sent.iter().map(|m| (m.key.as_str(), m)).collect();
    for r in recv {
        let Some(m) = by_key.get(r.key.as_str()) else {
            panic!(
                "[{}] received a message that was not sent in this phase: {r:?}",
                client.name()
            );
        };
        let prefix = r.key.rsplit_once("-k").map(|(p, _)| p).unwrap_or("");
        assert_eq!(r.topic, topic, "[{}] wrong topic for {}", client.name(), r.key);
        assert_eq!(
            r.body,
            expected_body(prefix, m.i),
            "[{}] body of {} altered",
            client.name(),
            r.key
        );
        assert_eq!(
            r.tags,
            m.tag,
            "[{}] tag of {} altered (TAGS property)",
            client.name(),
            r.key
        );
        let mut want = BTreeMap::new();
        want.insert("seq".to_string(), m.i.to_string());
        want.insert("prefix".to_string(), prefix.to_string());
        want.insert("color".to_string(), "blue green".to_string());
        if let Some(ok) = &m.order_key {
            want.insert("orderKey".to_string(), ok.clone());
            want.insert("orderSeq".to_string(), m.order_seq.unwrap_or(-1).to_string());
        }
        assert_eq!(
            r.props,
            want,
            "[{}] user properties of {} altered",
            client.name(),
            r.key
        );
        assert_eq!(
            r.reconsume_times,
            0,
            "[{}] {} delivered as a retry",
            client.name(),
            r.key
        );
        assert!(
            r.queue_id >= 0 && (r.queue_id as usize) < QUEUES,
            "[{}] bad queueId in {r:?}",
            client.name()
        );
        if let (Some(from), Some(q)) = (&r.pulled_from, &m.queue_id) {
            assert_eq!(
                from,
                q,
                "[{}] {} consumed from another queue than the send response named",
                client.name(),
                r.key
            );
        }
        if let (Some(q), Some(o)) = (&m.queue_id, m.queue_offset) {
            assert_eq!(
                r.queue_offset,
                o,
                "[{}] {} delivered at a different queue offset than the send response said ({q})",
                client.name(),
                r.key
            );
            // A shard entry (`<broker>-s<k>`) numbers its queues from 0; the
            // stored message carries the broker-wide queue id. With a single
            // broker entry both are the same number.
            let (entry, id) = q.rsplit_once(':').unwrap_or(("", q));
            let shard_entry = entry.rsplit_once("-s").is_some_and(|(_, k)| k.parse::<u16>().is_ok());
            if !shard_entry {
                assert_eq!(
                    r.queue_id.to_string(),
                    id,
                    "[{}] {} delivered from a different queue than the send response said",
                    client.name(),
                    r.key
                );
            }
        }
    }
}

/// Every key in `want` delivered exactly once in `recv`, nothing else.
pub fn assert_exactly_once(ctx: &str, want: &[Sent], recv: &[Recv]) {
    let want: Vec<&str> = want.iter().map(|m| m.key.as_str()).collect();
    let got: Vec<(&str, i64)> = recv.iter().map(|r| (r.key.as_str(), r.reconsume_times)).collect();
    assert_keys_once(ctx, &want, &got);
}

/// Every key of `want` exactly once in `got`, nothing else. `got` pairs
/// each delivered key with a number shown for the keys delivered more than
/// once (the delivery's reconsume count or attempt).
pub fn assert_keys_once(ctx: &str, want: &[&str], got: &[(&str, i64)]) {
    let mut counts: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for (k, n) in got {
        counts.entry(k).or_default().push(*n);
    }
    let want_keys: BTreeSet<&str> = want.iter().copied().collect();
    let missing: Vec<&str> = want_keys.iter().copied().filter(|k| !counts.contains_key(k)).collect();
    let dup: Vec<(&str, &Vec<i64>)> = counts
        .iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(k, v)| (*k, v))
        .collect();
    let extra: Vec<&str> = counts.keys().copied().filter(|k| !want_keys.contains(k)).collect();
    assert!(
        missing.is_empty() && dup.is_empty() && extra.is_empty(),
        "{ctx}: expected each of {} keys exactly once; missing {missing:?}, delivered more than once (key: \
         reconsumeTimes or attempt of each delivery) {dup:?}, unexpected {extra:?}",
        want_keys.len()
    );
}

/// Hint appended when a fresh group (client default CONSUME_FROM_LAST_OFFSET)
/// received nothing of what was produced before it started.
pub const FRESH_GROUP_HINT: &str = "hint: a new group with the clients' default CONSUME_FROM_LAST_OFFSET only sees \
     messages stored before it started if QUERY_CONSUMER_OFFSET answers offset 0 (not QUERY_NOT_FOUND) for a queue \
     whose min offset is 0 (Java broker rule, codes.md §14); orderly consumers also need LOCK_BATCH_MQ (41) to \
     lock the queues; also check PULL_MESSAGE and the route of the topic";

/// Warm-up message that creates the topic (auto-create through TBW102) before
/// consumers start; consumers ignore its tag.
pub fn warm_up(client: Client, broker: &Broker, topic: &str) {
    let events = client
        .producer(broker, topic, &format!("PG_{topic}"))
        .arg("tags", "Warmup")
        .arg("prefix", "w")
        .arg("count", 1)
        .run();
    assert_eq!(sent_of(&events).len(), 1, "warm-up send failed: {events:?}");
}

/// Waits for `procs` to have received `n` distinct keys in total.
pub fn wait_union(procs: &[&Proc], n: usize, timeout: Duration, ctx: &str) {
    let deadline = Instant::now() + timeout;
    loop {
        let keys: BTreeSet<String> = procs.iter().flat_map(|p| recv_of(&p.events())).map(|r| r.key).collect();
        if keys.len() >= n {
            return;
        }
        for p in procs {
            let bad = p
                .events()
                .into_iter()
                .any(|e| e["event"] == "error" || e["event"] == "timeout");
            assert!(!bad, "{ctx}: {} failed\n{}", p.label, p.report());
        }
        if Instant::now() >= deadline {
            let reports: Vec<String> = procs.iter().map(|p| p.report()).collect();
            panic!(
                "{ctx}: consumers got {} of {n} distinct messages within {timeout:?}\n{}",
                keys.len(),
                reports.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn queue_ids(recv: &[Recv]) -> BTreeSet<i64> {
    recv.iter().map(|r| r.queue_id).collect()
}

/// Settle time for a clustering group after its members started, for clients
/// that do not report their queue assignment (C++: rebalance every 10 s, or
/// at once on NOTIFY_CONSUMER_IDS_CHANGED).
pub fn settle_time() -> Duration {
    env_ms("SHARDMQ_INTEROP_SETTLE_MS", 12_000)
}

/// How long the test waits after the consumer committed its offsets before it
/// SIGKILLs the broker (Java's broker persists consumer offsets every 5 s,
/// flushConsumerOffsetInterval); override with SHARDMQ_INTEROP_OFFSET_FLUSH_MS.
pub fn offset_flush_wait() -> Duration {
    env_ms("SHARDMQ_INTEROP_OFFSET_FLUSH_MS", 6_000)
}

/// Messages stored in a topic: the sum of the queues' max offsets in the
/// output of `shardmq admin --json topic status`.
pub fn stored_per_topic_status(json: &str) -> i64 {
    let v: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("topic status JSON: {e}: {json}"));
    v["queues"]
        .as_array()
        .expect("queues")
        .iter()
        .map(|q| q["maxOffset"].as_i64().unwrap_or(0))
        .sum()
}
