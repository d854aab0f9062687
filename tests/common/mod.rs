//! Helpers for end-to-end tests: start the real `shardmq` binary on free
//! loopback ports, and a blocking remoting client built on the project's
//! codec.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shardmq::protocol::RemotingCommand;

mod ports;
pub use ports::free_port_block;

/// A test's scratch directory. When the test fails it is kept if
/// `SHARDMQ_KEEP=1` is set (its path is printed), for a post-mortem.
pub struct TestDir(Option<tempfile::TempDir>);

pub fn test_dir() -> TestDir {
    TestDir(Some(
        tempfile::Builder::new()
            .prefix("shardmq-test-")
            .tempdir()
            .expect("tempdir"),
    ))
}

impl TestDir {
    pub fn path(&self) -> &Path {
        self.0.as_ref().expect("live test dir").path()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(d) = self.0.take() {
                if keep_requested() {
                    eprintln!("SHARDMQ_KEEP: test dir kept at {}", d.keep().display());
                } else {
                    eprintln!("(set SHARDMQ_KEEP=1 to keep the test dir of a failed test)");
                }
            }
        }
    }
}

pub fn keep_requested() -> bool {
    std::env::var("SHARDMQ_KEEP").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The last `lines` lines of a file, for failure messages.
pub fn file_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| format!("<cannot read {}: {e}>", path.display()));
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

pub struct Broker {
    pub child: Option<Child>,
    pub dir: PathBuf,
    pub port: u16,
    pub namesrv_port: u16,
    pub metrics_port: u16,
    pub shard_base: u16,
    pub shards: u16,
    /// First replication port (`haListenPort`).
    pub ha_base: u16,
    pub extra: Vec<String>,
    pub log: PathBuf,
    /// Run inside this network namespace (`ip netns exec`).
    pub netns: Option<String>,
}

impl Broker {
    /// Starts a broker with `shards` shards on fresh ports in `dir`.
    pub fn start(dir: &Path, shards: u16, extra: &[&str]) -> Broker {
        Broker::start_in(dir, shards, extra, None)
    }

    /// [`Broker::start`] inside network namespace `netns` (when given).
    pub fn start_in(dir: &Path, shards: u16, extra: &[&str], netns: Option<&str>) -> Broker {
        // Ports are chosen free, but another test's client socket can take
        // one before the broker binds it: a start refused for a port is
        // retried on fresh ports.
        for attempt in 1.. {
            let port = free_port_block(2);
            let shard_base = free_port_block(shards + 1);
            let ha_base = free_port_block(shards);
            let namesrv_port = free_port_block(0);
            let metrics_port = free_port_block(0);
            let mut b = Broker {
                child: None,
                dir: dir.to_path_buf(),
                port,
                namesrv_port,
                metrics_port,
                shard_base,
                shards,
                ha_base,
                extra: extra.iter().map(|s| s.to_string()).collect(),
                log: dir.join("broker.log"),
                netns: netns.map(String::from),
            };
            match b.try_spawn() {
                Ok(()) => return b,
                Err(log) if attempt < 5 && log.contains("cannot listen on") => {
                    let _ = std::fs::remove_dir_all(dir.join("data"));
                    let _ = std::fs::remove_file(&b.log);
                }
                Err(log) => panic!("broker did not become ready; log:\n{log}"),
            }
        }
        unreachable!()
    }

    /// Starts the broker again on its ports. A port held for a moment by
    /// another socket (ports come from the ephemeral range: an outgoing
    /// connection may have it as its source) is tried again.
    pub fn spawn(&mut self) {
        for attempt in 1.. {
            match self.try_spawn() {
                Ok(()) => return,
                Err(log) if attempt < 5 && log.contains("Address already in use") => {
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(log) => panic!("broker did not become ready; log:\n{log}"),
            }
        }
    }

    /// Starts the broker; the log if it does not become ready.
    pub fn try_spawn(&mut self) -> Result<(), String> {
        let data = self.dir.join("data");
        let mut cmd = match &self.netns {
            None => Command::new(env!("CARGO_BIN_EXE_shardmq")),
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, env!("CARGO_BIN_EXE_shardmq")]);
                c
            }
        };
        cmd.arg("serve")
            .args(["--set", &format!("storePathRootDir={}", data.display())])
            .args(["--set", &format!("listenPort={}", self.port)])
            .args(["--set", &format!("namesrvListenPort={}", self.namesrv_port)])
            .args(["--set", &format!("shardListenPortBase={}", self.shard_base)])
            .args(["--set", &format!("haListenPort={}", self.ha_base)])
            .args(["--set", &format!("shardCount={}", self.shards)])
            .args(["--set", &format!("metricsPort={}", self.metrics_port)])
            .args(["--set", "brokerIP1=127.0.0.1"])
            .args(["--set", "mapedFileSizeCommitLog=67108864"])
            .args(["--set", "tailCacheBytes=33554432"])
            // The tests share the host's disk: refuse writes only at the
            // highest ratio allowed (tests/disk_full.rs uses its own
            // filesystem and the default).
            .args(["--set", "diskMaxUsedSpaceRatio=95"])
            // gRPC and REST off unless a test asks for them (extra settings
            // come after).
            .args(["--set", "grpcListenPort=0"])
            .args(["--set", "httpListenPort=0"]);
        for e in &self.extra {
            cmd.args(["--set", e]);
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let mut child = cmd.stdout(Stdio::piped()).stderr(log).spawn().expect("spawn shardmq");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.contains("shardmq ready") {
                    let _ = tx.send(line);
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(_) => {}
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(std::fs::read_to_string(&self.log).unwrap_or_default());
            }
        }
        self.child = Some(child);
        Ok(())
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            panic!("broker did not stop on SIGTERM");
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn shard_addr(&self, k: u16) -> String {
        format!("127.0.0.1:{}", self.shard_base + k)
    }

    pub fn namesrv_addr(&self) -> String {
        format!("127.0.0.1:{}", self.namesrv_port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!(
                "---- broker log ({}), last 150 lines ----\n{}\n---- end of broker log ----",
                self.log.display(),
                file_tail(&self.log, 150)
            );
        }
    }
}

/// The library's blocking client, panicking on errors (tests only).
pub struct Client(pub shardmq::admin::client::Client);

pub use shardmq::admin::client::req;

impl Client {
    pub fn connect(addr: &str) -> Client {
        let c = shardmq::admin::client::Client::connect(addr).unwrap_or_else(|e| panic!("{e}"));
        c.set_read_timeout(Duration::from_secs(40));
        Client(c)
    }

    /// Sends a request and returns its opaque.
    pub fn send(&mut self, cmd: RemotingCommand) -> i32 {
        self.0.send(cmd).expect("write")
    }

    /// Reads the next frame (None on EOF or a read error).
    pub fn recv(&mut self) -> Option<RemotingCommand> {
        self.0.recv().ok().flatten()
    }

    /// Sends and waits for the matching response (skipping server pushes).
    pub fn call(&mut self, cmd: RemotingCommand) -> RemotingCommand {
        self.0.call(cmd).unwrap_or_else(|e| panic!("{e}"))
    }
}

impl std::ops::Deref for Client {
    type Target = shardmq::admin::client::Client;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Client {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Broker {
    /// UPDATE_AND_CREATE_TOPIC with `queues` read and write queues, RW.
    pub fn create_topic(&self, topic: &str, queues: u32) {
        let mut c = Client::connect(&self.addr());
        let r = c.call(req(
            shardmq::protocol::codes::request::UPDATE_AND_CREATE_TOPIC,
            &[
                ("topic", topic.into()),
                ("readQueueNums", queues.to_string()),
                ("writeQueueNums", queues.to_string()),
                ("perm", "6".into()),
            ],
        ));
        assert_eq!(
            r.code,
            shardmq::protocol::codes::response::SUCCESS,
            "create topic {topic}: {:?}",
            r.remark
        );
    }
}

/// GET `path` from the broker's metrics endpoint: (status line, body).
pub fn http_get(port: u16, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect metrics");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.lines().next().unwrap_or("").to_string(), body.to_string())
}

/// A SEND_MESSAGE_V2 request (Java's single-message send, short header
/// names) with the given encoded properties.
pub fn send_v2(topic: &str, qid: i64, body: &str, properties: String) -> RemotingCommand {
    let mut r = req(
        shardmq::protocol::codes::request::SEND_MESSAGE_V2,
        &[
            ("a", "pg".into()),
            ("b", topic.into()),
            ("c", "TBW102".into()),
            ("d", "4".into()),
            ("e", qid.to_string()),
            ("f", "0".into()),
            ("g", "1700000000000".into()),
            ("h", "0".into()),
            ("i", properties),
        ],
    );
    r.body = bytes::Bytes::from(body.as_bytes().to_vec());
    r
}

/// A PULL_MESSAGE request (queue id as the port's view numbers it).
pub fn pull_req(topic: &str, qid: u32, offset: u64, suspend: bool, sub: &str) -> RemotingCommand {
    let flag = 0x4 | if suspend { 0x2 } else { 0 };
    req(
        shardmq::protocol::codes::request::PULL_MESSAGE,
        &[
            ("consumerGroup", "cg".into()),
            ("topic", topic.into()),
            ("queueId", qid.to_string()),
            ("queueOffset", offset.to_string()),
            ("maxMsgNums", "32".into()),
            ("sysFlag", flag.to_string()),
            ("commitOffset", "0".into()),
            ("suspendTimeoutMillis", "15000".into()),
            ("subscription", sub.into()),
            ("subVersion", "0".into()),
        ],
    )
}

/// (queue offset, body, properties) of each record in a pull body.
pub fn decode(body: &[u8]) -> Vec<(u64, String, String)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < body.len() {
        match shardmq::store::record::check_record(&body[at..], None, true) {
            shardmq::store::record::RecordCheck::Record(v) => {
                out.push((
                    v.queue_offset,
                    String::from_utf8_lossy(v.body).into_owned(),
                    String::from_utf8_lossy(v.properties).into_owned(),
                ));
                at += v.total_size as usize;
            }
            other => panic!("undecodable record at {at}: {other:?}"),
        }
    }
    out
}

pub fn max_offset(c: &mut Client, topic: &str, qid: u32) -> u64 {
    let r = c.call(req(
        shardmq::protocol::codes::request::GET_MAX_OFFSET,
        &[("topic", topic.into()), ("queueId", qid.to_string())],
    ));
    assert_eq!(r.code, shardmq::protocol::codes::response::SUCCESS, "{:?}", r.remark);
    r.ext_str("offset").and_then(|o| o.parse().ok()).expect("offset")
}

pub fn pull_all(c: &mut Client, topic: &str, qid: u32, sub: &str) -> Vec<(u64, String, String)> {
    let mut out = Vec::new();
    let mut off = 0;
    loop {
        let r = c.call(pull_req(topic, qid, off, false, sub));
        match r.code {
            shardmq::protocol::codes::response::SUCCESS => {
                out.extend(decode(&r.body));
                off = r.ext_str("nextBeginOffset").and_then(|o| o.parse().ok()).expect("next");
            }
            shardmq::protocol::codes::response::PULL_RETRY_IMMEDIATELY => {
                off = r.ext_str("nextBeginOffset").and_then(|o| o.parse().ok()).expect("next");
            }
            shardmq::protocol::codes::response::PULL_NOT_FOUND => return out,
            other => panic!("pull {topic}/{qid}@{off}: code {other} {:?}", r.remark),
        }
    }
}
