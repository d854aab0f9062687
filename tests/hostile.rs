//! Hostile and careless clients against the real broker: every resource a
//! connection can make a shard hold has a bound, and the broker keeps
//! serving everyone else. Memory is the broker process's RSS
//! (`/proc/<pid>/status`), so the bounds are loose enough for a noisy
//! machine and far below what the same probes took before the limits
//! (40 stalled 15 MiB frames held ~640 MB; 700 unread 4 MiB pulls 1.3 GB).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{req, Broker, Client};
use shardmq::protocol::codes::{request, response};

const MIB: u64 = 1 << 20;

fn rss_bytes(b: &Broker) -> u64 {
    let pid = b.child.as_ref().expect("broker running").id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    kib * 1024
}

/// True once the server closed `s` (EOF or reset), reading and dropping
/// whatever it still sends; false if it is still open at `deadline`.
fn closed_by_server(s: &mut TcpStream, deadline: Instant) -> bool {
    let mut buf = vec![0u8; 64 * 1024];
    while Instant::now() < deadline {
        let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
    false
}

fn max_offset_call(c: &mut Client, topic: &str) -> i32 {
    c.call(req(
        request::GET_MAX_OFFSET,
        &[("topic", topic.into()), ("queueId", "0".into())],
    ))
    .code
}

/// 40 connections each send 15 MiB of a 16 MiB frame and stall: a frame
/// that large must first take its size from the shard's inbound budget
/// (32 MiB here), so at most two are buffered at once; every stalled frame
/// is closed after `partialFrameTimeoutMillis`; other clients are served
/// throughout.
#[test]
fn stalled_large_frames_are_bounded_by_the_budget_and_closed() {
    let dir = common::test_dir();
    let b = Broker::start(
        dir.path(),
        1,
        &["partialFrameTimeoutMillis=2000", "inboundFrameBudgetBytes=33554432"],
    );
    b.create_topic("Calm", 1);
    let before = rss_bytes(&b);
    let addr = b.addr();
    let writers: Vec<_> = (0..40)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(&addr).expect("connect");
                let _ = s.set_write_timeout(Some(Duration::from_secs(3)));
                let total: u32 = 16 * 1024 * 1024;
                let mut prefix = Vec::new();
                prefix.extend_from_slice(&(total - 4).to_be_bytes());
                prefix.extend_from_slice(&100u32.to_be_bytes());
                if s.write_all(&prefix).is_err() {
                    return s;
                }
                let chunk = vec![b'x'; 256 * 1024];
                for _ in 0..60 {
                    if s.write_all(&chunk).is_err() {
                        break; // the broker stopped reading us (no budget) or closed
                    }
                }
                s
            })
        })
        .collect();
    // While they stall: memory bounded, others served.
    std::thread::sleep(Duration::from_millis(1500));
    let during = rss_bytes(&b);
    let mut c = Client::connect(&b.addr());
    let t = Instant::now();
    assert_eq!(max_offset_call(&mut c, "Calm"), response::SUCCESS);
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "a calm client waited {:?}",
        t.elapsed()
    );
    let grew = during.saturating_sub(before);
    eprintln!(
        "40 stalled 15 MiB frames: RSS {} MiB -> {} MiB (+{} MiB)",
        before / MIB,
        during / MIB,
        grew / MIB
    );
    assert!(grew < 96 * MIB, "RSS grew by {} MiB", grew / MIB);
    let mut socks: Vec<TcpStream> = writers.into_iter().map(|w| w.join().expect("writer")).collect();
    let deadline = Instant::now() + Duration::from_secs(15);
    for (i, s) in socks.iter_mut().enumerate() {
        assert!(closed_by_server(s, deadline), "stalled connection {i} still open");
    }
    assert_eq!(max_offset_call(&mut c, "Calm"), response::SUCCESS);
}

/// With `serverChannelMaxIdleTimeSeconds=2`: a silent connection is closed;
/// one that keeps sending stays; one waiting for a held long-poll pull is
/// not idle.
#[test]
fn idle_connections_are_closed_busy_ones_are_not() {
    let dir = common::test_dir();
    let b = Broker::start(dir.path(), 1, &["serverChannelMaxIdleTimeSeconds=2"]);
    b.create_topic("Idle", 1);
    let mut idle = TcpStream::connect(b.addr()).expect("connect");
    let mut active = Client::connect(&b.addr());
    let mut waiting = Client::connect(&b.addr());
    let pull = req(
        request::PULL_MESSAGE,
        &[
            ("consumerGroup", "cg".into()),
            ("topic", "Idle".into()),
            ("queueId", "0".into()),
            ("queueOffset", "0".into()),
            ("maxMsgNums", "32".into()),
            ("sysFlag", (0x2 | 0x4).to_string()),
            ("commitOffset", "0".into()),
            ("suspendTimeoutMillis", "4000".into()),
            ("subscription", "*".into()),
            ("subVersion", "0".into()),
        ],
    );
    let held = std::thread::spawn(move || {
        let t = Instant::now();
        let r = waiting.call(pull);
        (r.code, t.elapsed())
    });
    for _ in 0..10 {
        assert_eq!(max_offset_call(&mut active, "Idle"), response::SUCCESS);
        std::thread::sleep(Duration::from_millis(500));
    }
    let (code, waited) = held.join().expect("pull thread");
    assert_eq!(code, response::PULL_NOT_FOUND);
    assert!(waited >= Duration::from_secs(3), "the pull was not held ({waited:?})");
    assert!(
        closed_by_server(&mut idle, Instant::now() + Duration::from_secs(5)),
        "an idle connection stayed open"
    );
    assert_eq!(max_offset_call(&mut active, "Idle"), response::SUCCESS);
}

/// `maxConnectionsPerAddress=4`: a fifth connection from the same address
/// is closed at once; when one closes, a new one is admitted.
#[test]
fn connections_over_the_per_address_limit_are_refused() {
    let dir = common::test_dir();
    let b = Broker::start(dir.path(), 1, &["maxConnectionsPerAddress=4"]);
    b.create_topic("Few", 1);
    // Connections closed just before (create_topic's) free their place
    // when the broker has seen them close: retry each of the four briefly.
    let mut open: Vec<shardmq::admin::client::Client> = (0..4).map(|_| admitted(&b, "Few")).collect();
    assert_eq!(open.len(), 4);
    let mut fifth = TcpStream::connect(b.addr()).expect("connect");
    assert!(
        closed_by_server(&mut fifth, Instant::now() + Duration::from_secs(3)),
        "a fifth connection from one address was kept"
    );
    drop(open.pop());
    admitted(&b, "Few");
}

/// A connection that the broker answers, retried for up to 5 s.
fn admitted(b: &Broker, topic: &str) -> shardmq::admin::client::Client {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(mut c) = shardmq::admin::client::Client::connect(&b.addr()) {
            c.set_read_timeout(Duration::from_secs(2));
            let r = c.call(req(
                request::GET_MAX_OFFSET,
                &[("topic", topic.into()), ("queueId", "0".into())],
            ));
            if r.is_ok_and(|r| r.code == response::SUCCESS) {
                return c;
            }
        }
        assert!(Instant::now() < deadline, "no connection admitted within 5 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A client pipelines 300 pulls of 2 MiB each and never reads: the broker
/// stops starting its requests once `outboxMaxBytes` of replies wait,
/// closes it after `writeStallTimeoutMillis`, and memory stays bounded.
#[test]
fn a_client_that_never_reads_its_replies_is_bounded_and_closed() {
    let dir = common::test_dir();
    let b = Broker::start(
        dir.path(),
        1,
        &["outboxMaxBytes=4194304", "writeStallTimeoutMillis=2000"],
    );
    b.create_topic("Unread", 1);
    {
        let mut c = Client::connect(&b.addr());
        let body = "y".repeat(64 * 1024);
        for i in 0..40 {
            let r = c.call(common::send_v2("Unread", 0, &format!("{i}{body}"), String::new()));
            assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
        }
    }
    let before = rss_bytes(&b);
    let mut s = TcpStream::connect(b.addr()).expect("connect");
    let mut frames = Vec::new();
    for i in 0..300 {
        let mut pull = req(
            request::PULL_MESSAGE,
            &[
                ("consumerGroup", "cg".into()),
                ("topic", "Unread".into()),
                ("queueId", "0".into()),
                ("queueOffset", "0".into()),
                ("maxMsgNums", "32".into()),
                ("sysFlag", "4".into()),
                ("commitOffset", "0".into()),
                ("suspendTimeoutMillis", "0".into()),
                ("subscription", "*".into()),
                ("subVersion", "0".into()),
            ],
        );
        pull.opaque = 1000 + i;
        let mut buf = bytes::BytesMut::new();
        shardmq::protocol::encode_frame(&pull, &mut buf).expect("encode");
        frames.extend_from_slice(&buf);
    }
    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
    let _ = s.write_all(&frames);
    std::thread::sleep(Duration::from_millis(1500));
    let during = rss_bytes(&b);
    let grew = during.saturating_sub(before);
    eprintln!(
        "300 unread 2 MiB pulls: RSS {} MiB -> {} MiB (+{} MiB)",
        before / MIB,
        during / MIB,
        grew / MIB
    );
    assert!(grew < 128 * MIB, "RSS grew by {} MiB", grew / MIB);
    // Stop reading is what the client does: the broker gives up on it
    // once its queued and waiting replies pass 4 x outboxMaxBytes, long
    // before the write-stall timeout.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut closed = false;
    while Instant::now() < deadline {
        let log = std::fs::read_to_string(&b.log).unwrap_or_default();
        if log.contains("reads no replies") {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(closed, "a client that reads nothing was not closed");
    let mut c = Client::connect(&b.addr());
    assert_eq!(max_offset_call(&mut c, "Unread"), response::SUCCESS);
}

/// CPU seconds (user + system) the broker process has used.
fn cpu_seconds(b: &Broker) -> f64 {
    let pid = b.child.as_ref().expect("broker running").id();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // Fields after the `(comm)`: state is 3rd, utime 14th, stime 15th.
    let rest = stat.rsplit_once(')').expect("comm").1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime");
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks as f64 / hz
}

/// 16 connections trickle one byte at a time into 16 MiB frames: each
/// byte read must cost the broker a read, not a pass over the frame's
/// buffer (the read path zero-fills a frame's buffer once).
#[test]
fn trickling_into_large_frames_costs_little_cpu() {
    let dir = common::test_dir();
    let b = Broker::start(dir.path(), 1, &[]);
    let mut socks: Vec<TcpStream> = (0..16)
        .map(|_| {
            let mut s = TcpStream::connect(b.addr()).expect("connect");
            s.set_nodelay(true).expect("nodelay");
            let total: u32 = 16 * 1024 * 1024;
            s.write_all(&(total - 4).to_be_bytes()).expect("prefix");
            s.write_all(&100u32.to_be_bytes()).expect("header word");
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let cpu_before = cpu_seconds(&b);
    let started = Instant::now();
    let mut bytes = 0;
    while started.elapsed() < Duration::from_secs(2) {
        for s in &mut socks {
            s.write_all(b"x").expect("trickle");
            bytes += 1;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let cpu = cpu_seconds(&b) - cpu_before;
    let wall = started.elapsed().as_secs_f64();
    eprintln!("{bytes} bytes trickled into 16 frames in {wall:.1} s: broker CPU {cpu:.2} s");
    assert!(cpu < 0.5 * wall, "the broker used {cpu:.2} s of CPU in {wall:.1} s");
    let mut c = Client::connect(&b.addr());
    b.create_topic("Trickle", 1);
    assert_eq!(max_offset_call(&mut c, "Trickle"), response::SUCCESS);
}

/// `requestBudgetBytes=65536`: the bytes of small requests a shard runs at
/// once are bounded over all its connections. Four connections each
/// pipeline 200 sends of 12 KiB (9.6 MiB in all, 150 times the budget):
/// they wait for budget instead of piling up, and every send is answered
/// SUCCESS — back-pressure, never a deadlock.
#[test]
fn small_requests_share_a_bounded_budget_without_deadlock() {
    let dir = common::test_dir();
    let b = Broker::start(dir.path(), 1, &["requestBudgetBytes=65536"]);
    b.create_topic("Budget", 4);
    let body = "b".repeat(12 * 1024);
    let senders: Vec<_> = (0..4)
        .map(|k| {
            let addr = b.addr();
            let body = body.clone();
            std::thread::spawn(move || {
                let mut c = Client::connect(&addr);
                let mut opaques = std::collections::HashSet::new();
                for _ in 0..200 {
                    opaques.insert(c.send(common::send_v2("Budget", k, &body, String::new())));
                }
                let deadline = Instant::now() + Duration::from_secs(30);
                while !opaques.is_empty() && Instant::now() < deadline {
                    let r = c.recv().expect("reply");
                    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
                    assert!(opaques.remove(&r.opaque), "unexpected reply {}", r.opaque);
                }
                opaques.len()
            })
        })
        .collect();
    for s in senders {
        assert_eq!(s.join().expect("sender"), 0, "sends left unanswered");
    }
    let mut c = Client::connect(&b.addr());
    let total: u64 = (0..4).map(|q| common::max_offset(&mut c, "Budget", q)).sum();
    assert_eq!(total, 800);
}
