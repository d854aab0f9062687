//! A new user's first hour, with the real binary: the README's start
//! command (relative default data dir, default ports) keeps every
//! acknowledged message across SIGINT restarts in both flush modes; a
//! second broker on the same ports is refused; a data directory that cannot
//! be written never says ready; a segment that cannot be prepared at run
//! time refuses sends with a reason, resumes by itself, and shuts down
//! cleanly.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{file_tail, pull_all, Broker, Client};
use shardmq::protocol::codes::{request, response};
use shardmq::runtime::ports;

/// A `shardmq` process started the way a user starts it.
struct Serve {
    child: Option<Child>,
    lines: mpsc::Receiver<String>,
    log: PathBuf,
    what: String,
}

impl Serve {
    /// Runs `shardmq ARGS` in `cwd` (optionally through `wrap`, e.g.
    /// setpriv); stdout lines arrive on a channel, stderr goes to `log`.
    fn spawn(cwd: &Path, args: &[&str], log: &Path, wrap: &[&str]) -> Serve {
        let exe = env!("CARGO_BIN_EXE_shardmq");
        let mut cmd = match wrap.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        cmd.args(args).current_dir(cwd);
        let err = std::fs::File::create(log).expect("log file");
        let mut child = cmd.stdout(Stdio::piped()).stderr(err).spawn().expect("spawn shardmq");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Serve {
            child: Some(child),
            lines,
            log: log.to_path_buf(),
            what: format!("shardmq {}", args.join(" ")),
        }
    }

    /// Waits for the ready line; None if the process exited first.
    fn ready(&mut self, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            match self.lines.recv_timeout(Duration::from_millis(100)) {
                Ok(l) if l.starts_with("shardmq ready") => return Some(l),
                Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return None,
            }
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(_)) = c.try_wait() {
                    // Drain what it printed before exiting.
                    while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(200)) {
                        if l.starts_with("shardmq ready") {
                            return Some(l);
                        }
                    }
                    return None;
                }
            }
        }
        panic!(
            "{} neither became ready nor exited within {timeout:?}; log:\n{}",
            self.what,
            file_tail(&self.log, 80)
        );
    }

    fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(c.id() as i32, sig);
            }
        }
    }

    /// Waits for the process to exit; panics (with the log) after `timeout`.
    fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let c = self.child.as_mut().expect("running");
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                self.child = None;
                return st;
            }
            if Instant::now() >= deadline {
                let _ = c.kill();
                let _ = c.wait();
                self.child = None;
                panic!(
                    "{} did not exit within {timeout:?}; log:\n{}",
                    self.what,
                    file_tail(&self.log, 80)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGINT, then a clean exit within the shutdown bound.
    fn interrupt(&mut self) {
        self.signal(libc::SIGINT);
        let st = self.wait(Duration::from_secs(30));
        assert!(
            st.success(),
            "{} exited with {st} after SIGINT; log:\n{}",
            self.what,
            file_tail(&self.log, 80)
        );
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- {} log ({}) ----\n{}\n---- end ----",
                self.what,
                self.log.display(),
                file_tail(&self.log, 150)
            );
        }
    }
}

/// `serve` on fresh free ports (broker `port`, shards `port + 1..`), two
/// shards, no metrics port, data in `data`, plus `extra` settings.
fn serve_args(data: &Path, port: u16, extra: &[&str]) -> Vec<String> {
    let mut settings = vec![
        format!("storePathRootDir={}", data.display()),
        format!("listenPort={port}"),
        format!("shardListenPortBase={}", port + 1),
        format!("namesrvListenPort={}", common::free_port_block(0)),
        format!("haListenPort={}", common::free_port_block(2)),
        "metricsPort=0".into(),
        "grpcListenPort=0".into(),
        "httpListenPort=0".into(),
        "shardCount=2".into(),
        // The tests share the host's disk (the README's own commands keep
        // the default).
        "diskMaxUsedSpaceRatio=95".into(),
    ];
    settings.extend(extra.iter().map(|s| s.to_string()));
    let mut args = vec!["serve".to_string()];
    for s in settings {
        args.push("--set".into());
        args.push(s);
    }
    args
}

fn str_args(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// One acknowledged message: global queue id, queue offset, body.
type Acked = (u32, u64, String);

/// Sends `n` messages round-robin over `queues` queues through `addr`
/// (main port: global queue ids) and returns what was acknowledged.
fn send_some(addr: &str, topic: &str, queues: u32, prefix: &str, n: usize) -> Vec<Acked> {
    let mut c = Client::connect(addr);
    let mut acked = Vec::new();
    for i in 0..n {
        let q = (i as u32) % queues;
        let body = format!("{prefix}-{i}");
        let r = c.call(common::send_v2(topic, q.into(), &body, String::new()));
        assert_eq!(r.code, response::SUCCESS, "send {body}: {:?}", r.remark);
        let off: u64 = r
            .ext_str("queueOffset")
            .and_then(|o| o.parse().ok())
            .expect("queueOffset");
        acked.push((q, off, body));
    }
    acked
}

/// Every acknowledged message is stored at its (queue, offset), intact.
fn assert_all_present(addr: &str, topic: &str, queues: u32, acked: &[Acked]) {
    let mut c = Client::connect(addr);
    let mut stored = std::collections::HashMap::new();
    for q in 0..queues {
        for (off, body, _) in pull_all(&mut c, topic, q, "*") {
            stored.insert((q, off), body);
        }
    }
    let missing: Vec<&Acked> = acked
        .iter()
        .filter(|(q, off, body)| stored.get(&(*q, *off)) != Some(body))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged messages missing or different, first: {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(5)]
    );
}

fn admin(namesrv: &str, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_shardmq"))
        .args(["admin", "--namesrv", namesrv, "--timeout", "15"])
        .args(args)
        .output()
        .expect("run shardmq admin");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "admin {args:?}: {text}");
    text
}

/// The tests that use the default ports (the README's commands) take turns.
static DEFAULT_PORTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn default_ports_free() {
    let wanted: Vec<ports::Wanted> = [9876u16, 10909, 10911, 10921, 10922, 5557]
        .into_iter()
        .map(|p| ports::Wanted {
            addr: std::net::SocketAddr::from(([127, 0, 0, 1], p)),
            what: "a default port the README's commands use".into(),
        })
        .collect();
    if let Err(e) = ports::check_free(&wanted) {
        panic!("{e}: this test runs the README's commands as written; stop whatever holds the port");
    }
}

/// The README's start command, `serve` with no settings: relative `./data`
/// in the working directory, default ports. ASYNC_FLUSH (the default) and
/// SYNC_FLUSH runs each end with SIGINT; a third start finds every
/// acknowledged message.
#[test]
fn readme_start_command_keeps_every_acknowledged_message_across_sigint_restarts() {
    let dir = common::test_dir();
    let cwd = dir.path().join("fresh-clone");
    std::fs::create_dir_all(&cwd).expect("cwd");
    let _turn = DEFAULT_PORTS.lock().unwrap_or_else(|e| e.into_inner());
    default_ports_free();
    let (main, ns) = ("127.0.0.1:10911", "127.0.0.1:9876");
    let topic = "Tour";
    let mut acked = Vec::new();

    let mut s = Serve::spawn(&cwd, &["serve"], &dir.path().join("run1.log"), &[]);
    let line = s
        .ready(Duration::from_secs(60))
        .expect("README start command never became ready");
    let data = cwd.join("data");
    assert!(
        line.contains(&format!("data in {}", data.display())),
        "ready line does not name the absolute data dir: {line}"
    );
    assert!(line.contains("name server embedded on 127.0.0.1:9876"), "{line}");
    admin(ns, &["topic", "create", topic, "--queues", "4"]);
    acked.extend(send_some(main, topic, 4, "async", 300));
    s.interrupt();

    let mut s = Serve::spawn(
        &cwd,
        &["serve", "--set", "flushDiskType=SYNC_FLUSH"],
        &dir.path().join("run2.log"),
        &[],
    );
    s.ready(Duration::from_secs(60))
        .expect("SYNC_FLUSH restart never became ready");
    assert_all_present(main, topic, 4, &acked);
    acked.extend(send_some(main, topic, 4, "sync", 300));
    s.interrupt();

    let mut s = Serve::spawn(&cwd, &["serve"], &dir.path().join("run3.log"), &[]);
    s.ready(Duration::from_secs(60))
        .expect("third start never became ready");
    assert_all_present(main, topic, 4, &acked);
    let status = admin(ns, &["--json", "topic", "status", topic]);
    let v: serde_json::Value = serde_json::from_str(&status).expect("json");
    let total: u64 = v["queues"]
        .as_array()
        .map(|qs| {
            qs.iter()
                .filter_map(|q| Some(q["maxOffset"].as_u64()? - q["minOffset"].as_u64()?))
                .sum()
        })
        .unwrap_or(0);
    assert_eq!(total, 600, "topic status after two restarts: {status}");
    s.interrupt();
    // A clean stop leaves the data where the ready line said it was.
    assert!(data.join("shard-0").join("checkpoint").exists());
}

/// The README's five-minute tour (the `sh` block after `<!-- tour -->`),
/// run as written in a fresh directory, with the binaries of this build in
/// place of `target/release/`.
#[test]
fn readme_tour_runs_as_written() {
    let _turn = DEFAULT_PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README");
    let after = readme
        .split_once("<!-- tour -->")
        .expect("README has no <!-- tour --> marker")
        .1;
    let block = after
        .split_once("```sh\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .expect("no sh block after the tour marker")
        .0;
    // The block's build line runs as written, in the repository (as the
    // user pastes it there); every `target/release/` below then names the
    // binaries it built. The rest runs in a fresh directory.
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut script = String::new();
    for line in block.lines() {
        assert!(!line.trim().is_empty(), "blank line in the tour block");
        if line.starts_with("cargo build") {
            let out = Command::new("timeout")
                .args(["900", "bash", "-e", "-c", line])
                .current_dir(&repo)
                .output()
                .expect("run the tour's build line");
            assert!(
                out.status.success(),
                "the tour's `{line}` failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            continue;
        }
        script.push_str(&line.replace("target/release/", &format!("{}/target/release/", repo.display())));
        script.push('\n');
    }
    default_ports_free();
    let dir = common::test_dir();
    let out = Command::new("timeout")
        .args(["300", "bash", "-e", "-x", "-c", &script])
        .current_dir(dir.path())
        .output()
        .expect("run the tour");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the README tour failed ({}):\n{text}", out.status);
    assert!(text.contains("shardmq ready"), "{text}");
    assert!(
        text.contains("Diff total: 0"),
        "consumer-progress after consuming everything: {text}"
    );
    let messages: u64 = text
        .lines()
        .filter(|l| l.contains("broker-a"))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // topic status rows: | broker queue min max messages time |
            (f.len() == 8 && f[0] == "|").then(|| f[5].parse::<u64>().ok())?
        })
        .sum();
    assert_eq!(messages, 10_000, "topic status after the tour's produce:\n{text}");
}

#[test]
fn a_second_broker_on_the_same_ports_is_refused_naming_the_port_and_holder() {
    let dir = common::test_dir();
    let b = Broker::start(dir.path(), 2, &[]);
    let other = dir.path().join("other-data");
    let args = [
        "serve".to_string(),
        "--set".into(),
        format!("storePathRootDir={}", other.display()),
        "--set".into(),
        format!("listenPort={}", b.port),
        "--set".into(),
        format!("namesrvListenPort={}", b.namesrv_port),
        "--set".into(),
        format!("shardListenPortBase={}", b.shard_base),
        "--set".into(),
        format!("metricsPort={}", b.metrics_port),
        "--set".into(),
        "shardCount=2".into(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let log = dir.path().join("second.log");
    let mut s = Serve::spawn(dir.path(), &args, &log, &[]);
    assert!(
        s.ready(Duration::from_secs(30)).is_none(),
        "a second broker on the same ports said ready"
    );
    let st = s.wait(Duration::from_secs(10));
    assert!(!st.success());
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains(&format!("cannot listen on 127.0.0.1:{}", b.port)) && text.contains("already listened on"),
        "no clear refusal: {text}"
    );
    assert!(text.contains("shardmq"), "holder not named: {text}");
    assert!(!other.exists(), "the refused start left {} behind", other.display());
    // The first broker is untouched and still answers.
    let mut c = Client::connect(&b.namesrv_addr());
    let r = c.call(common::req(request::GET_ALL_TOPIC_LIST_FROM_NAMESERVER, &[]));
    assert_eq!(r.code, response::SUCCESS);
}

/// A data directory the broker cannot write: it never says ready (so it
/// never acknowledges) and exits non-zero naming the directory. Run as
/// `nobody` when the test runs as root, since root writes anywhere.
#[test]
fn an_unwritable_data_dir_never_says_ready() {
    use std::os::unix::fs::PermissionsExt;
    let dir = common::test_dir();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let data = dir.path().join("ro-data");
    std::fs::create_dir(&data).expect("mkdir");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o555)).expect("chmod");
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let wrap: &[&str] = if root {
        &["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    } else {
        &[]
    };
    let port = common::free_port_block(4);
    let log = dir.path().join("ro.log");
    let mut s = Serve::spawn(dir.path(), &str_args(&serve_args(&data, port, &[])), &log, wrap);
    assert!(
        s.ready(Duration::from_secs(30)).is_none(),
        "a broker with an unwritable data dir said ready"
    );
    let st = s.wait(Duration::from_secs(10));
    assert!(!st.success());
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains(&data.display().to_string()),
        "error does not name the data dir: {text}"
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "something listens on the broker port after a failed start"
    );
}

/// A writable data dir where the first CommitLog segment cannot be
/// created: the start fails naming the file, and removes what it created.
#[test]
fn a_start_that_cannot_create_its_first_segment_fails_and_cleans_up() {
    let dir = common::test_dir();
    let data = dir.path().join("data");
    // Where shard 0's first segment must go there is a directory.
    let blocker = data.join("shard-0/commitlog/00000000000000000000");
    std::fs::create_dir_all(&blocker).expect("mkdir");
    let port = common::free_port_block(4);
    let args = serve_args(&data, port, &["mapedFileSizeCommitLog=67108864"]);
    let log = dir.path().join("blocked.log");
    let mut s = Serve::spawn(dir.path(), &str_args(&args), &log, &[]);
    assert!(
        s.ready(Duration::from_secs(30)).is_none(),
        "said ready without a segment"
    );
    assert!(!s.wait(Duration::from_secs(20)).success());
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(text.contains("shard 0 failed to start"), "{text}");
    assert!(
        !data.join("shard-1").exists(),
        "shard-1 (created by the failed start) was left behind"
    );
    assert!(!data.join("config").exists(), "config/ was left behind");
    assert!(blocker.exists(), "what the start did not create must stay");
}

/// A segment that cannot be prepared while the broker runs (its directory
/// gone, as with a full or failing disk): sends into it are refused with
/// SERVICE_NOT_AVAILABLE and the reason, never acknowledged into memory;
/// they resume by themselves when it can be prepared again; SIGINT still
/// stops the broker promptly and every acknowledged message survives.
#[test]
fn a_segment_that_cannot_be_prepared_refuses_sends_then_resumes() {
    let dir = common::test_dir();
    let mut b = Broker::start(
        dir.path(),
        2,
        &["maxMessageSize=65536", "mapedFileSizeCommitLog=1048576"],
    );
    let topic = "Unpreparable";
    let addr = b.shard_addr(0);
    b.create_topic(topic, 2);
    let log_dir = dir.path().join("data/shard-0/commitlog");
    let away = dir.path().join("data/shard-0/commitlog.away");
    // Rename only once the preparer is idle (segment 1 fully allocated):
    // glommio 0.9's DmaFile::open statfs()s the path right after opening
    // it and panics if the path vanished in between.
    let next = log_dir.join("00000000000001048576");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::metadata(&next).is_ok_and(|m| m.len() == 1 << 20) {
        assert!(Instant::now() < deadline, "segment 1 was never prepared");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    std::fs::rename(&log_dir, &away).expect("rename commitlog");
    let mut c = Client::connect(&addr);
    let body = "x".repeat(8000);
    let mut acked: Vec<Acked> = Vec::new();
    let mut refusal = None;
    for i in 0..2000 {
        let r = c.call(common::send_v2(topic, 0, &format!("{i}:{body}"), String::new()));
        match r.code {
            response::SUCCESS => {
                let off = r.ext_str("queueOffset").and_then(|o| o.parse().ok()).expect("offset");
                acked.push((0, off, format!("{i}:{body}")));
            }
            response::SYSTEM_BUSY => std::thread::sleep(Duration::from_millis(20)),
            response::SERVICE_NOT_AVAILABLE => {
                refusal = r.remark;
                break;
            }
            other => panic!("send {i}: code {other} {:?}", r.remark),
        }
    }
    let why = refusal.expect("sends were never refused although no segment can be prepared");
    assert!(why.contains("cannot be prepared"), "remark: {why}");
    // Acknowledged only into the segments that exist (two of 1 MiB).
    assert!(acked.len() * 8000 < 2 << 20, "{} acknowledged", acked.len());
    std::fs::rename(&away, &log_dir).expect("rename back");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let body = format!("after:{body}");
        let r = c.call(common::send_v2(topic, 0, &body, String::new()));
        if r.code == response::SUCCESS {
            let off = r.ext_str("queueOffset").and_then(|o| o.parse().ok()).expect("offset");
            acked.push((0, off, body));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "sends did not resume: {} {:?}",
            r.code,
            r.remark
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(c);
    b.stop();
    b.spawn();
    assert_all_present(&b.shard_addr(0), topic, 1, &acked);
}
