//! Master/slave replication with the real binary: two `shardmq serve`
//! processes of one broker group (2 shards each, their own data
//! directories), the slave following the master shard by shard.
//!
//! * SYNC_MASTER acknowledges only what the slave holds durably: the slave
//!   is killed with SIGKILL right after the last ack and, restarted,
//!   serves every acknowledged message at the master's offsets; a paused
//!   slave (SIGSTOP) gives FLUSH_SLAVE_TIMEOUT, a dead one
//!   SLAVE_NOT_AVAILABLE, and the slave refuses sends itself.
//! * ASYNC_MASTER with small segments (rolls on both sides): a slave
//!   killed mid-stream catches up from its own log end after a restart,
//!   and after the master is killed the slave serves everything.
//! * A slave added after the master's retention deleted its oldest
//!   segments starts its log at the oldest retained one and serves from
//!   there, at the master's offsets.

mod common;

use std::time::{Duration, Instant};

use common::{decode, max_offset, pull_req, req, send_v2, Broker, Client};
use shardmq::protocol::codes::{request, response};

const TOPIC: &str = "HaTopic";
const QUEUES: u32 = 4;

fn master(dir: &std::path::Path, role: &str, extra: &[&str]) -> Broker {
    let mut settings = vec![
        "brokerName=ha-a",
        "flushDiskType=SYNC_FLUSH",
        "syncFlushTimeout=1500",
        "autoCreateTopicEnable=false",
    ];
    let role = format!("brokerRole={role}");
    settings.push(&role);
    settings.extend_from_slice(extra);
    let d = dir.join("master");
    std::fs::create_dir_all(&d).expect("master dir");
    Broker::start(&d, 2, &settings)
}

fn slave(dir: &std::path::Path, m: &Broker, extra: &[&str]) -> Broker {
    let ha = format!("haMasterAddress=127.0.0.1:{}", m.ha_base);
    slave_with(dir, m, &[&[ha.as_str()], extra].concat())
}

/// A slave that learns where its master is from the name server (no
/// `haMasterAddress`), as RocketMQ's slaves do.
fn slave_with(dir: &std::path::Path, m: &Broker, extra: &[&str]) -> Broker {
    let ns = format!("namesrvAddr={}", m.namesrv_addr());
    let mut settings = vec![
        "brokerName=ha-a",
        "brokerRole=SLAVE",
        "brokerId=1",
        "flushDiskType=SYNC_FLUSH",
        "autoCreateTopicEnable=false",
        ns.as_str(),
    ];
    settings.extend_from_slice(extra);
    let d = dir.join("slave");
    std::fs::create_dir_all(&d).expect("slave dir");
    Broker::start(&d, 2, &settings)
}

fn send(c: &mut Client, qid: u32, body: &str) -> (i32, Option<String>) {
    let r = c.call(send_v2(
        TOPIC,
        qid.into(),
        body,
        format!("WAIT\u{1}true\u{2}KEYS\u{1}{body}\u{2}"),
    ));
    (r.code, r.remark)
}

/// Sends until one is acknowledged with SUCCESS (the slave has
/// connected and caught up), within 30 s.
fn until_replicating(c: &mut Client) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, remark) = send(c, 0, "probe");
        if code == response::SUCCESS {
            return;
        }
        assert!(
            code == response::SLAVE_NOT_AVAILABLE || code == response::FLUSH_SLAVE_TIMEOUT,
            "{code} {remark:?}"
        );
        assert!(
            Instant::now() < deadline,
            "the slave never got in sync: {code} {remark:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn min_offset(c: &mut Client, qid: u32) -> u64 {
    let r = c.call(req(
        request::GET_MIN_OFFSET,
        &[("topic", TOPIC.into()), ("queueId", qid.to_string())],
    ));
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    r.ext_str("offset").and_then(|o| o.parse().ok()).expect("offset")
}

/// Every retained (queue offset, body) of queue `qid` on `b`'s main port.
fn bodies(c: &mut Client, qid: u32) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let mut off = min_offset(c, qid);
    loop {
        let r = c.call(pull_req(TOPIC, qid, off, false, "*"));
        if r.code != response::SUCCESS {
            return out;
        }
        let got = decode(&r.body);
        if got.is_empty() {
            return out;
        }
        off = got.last().map(|g| g.0 + 1).unwrap_or(off);
        out.extend(got.into_iter().map(|(o, b, _)| (o, b)));
    }
}

fn signal(b: &Broker, sig: i32) {
    let pid = b.child.as_ref().expect("running").id() as i32;
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
}

#[test]
fn sync_master_acknowledges_only_what_the_slave_holds_and_says_when_it_cannot() {
    let dir = common::test_dir();
    let m = master(dir.path(), "SYNC_MASTER", &[]);
    m.create_topic(TOPIC, QUEUES);
    let mut s = slave(dir.path(), &m, &[]);
    let mut c = Client::connect(&m.addr());
    until_replicating(&mut c);
    let metrics = common::http_get(m.metrics_port, "/metrics").1;
    for k in 0..2 {
        assert!(
            metrics.contains(&format!("shardmq_replica_slaves_in_sync{{shard=\"{k}\"}} 1")),
            "{metrics}"
        );
    }

    // Every acknowledged message is durable on the slave: kill it the
    // moment the last ack arrives, restart it, and find them all there.
    let mut acked: Vec<Vec<(u64, String)>> = vec![Vec::new(); QUEUES as usize];
    for i in 0..200u32 {
        let q = i % QUEUES;
        let body = format!("m{i}");
        let r = c.call(send_v2(TOPIC, q.into(), &body, "WAIT\u{1}true\u{2}".into()));
        assert_eq!(r.code, response::SUCCESS, "send {i}: {:?}", r.remark);
        let off: u64 = r
            .ext_str("queueOffset")
            .and_then(|o| o.parse().ok())
            .expect("queueOffset");
        acked[q as usize].push((off, body));
    }
    s.kill9();
    s.spawn();
    let mut sc = Client::connect(&s.addr());
    let mut mc = Client::connect(&m.addr());
    for q in 0..QUEUES {
        let on_slave = bodies(&mut sc, q);
        for a in &acked[q as usize] {
            assert!(
                on_slave.contains(a),
                "queue {q}: acknowledged {a:?} is not on the slave"
            );
        }
        // Same offsets, same bodies as the master's.
        assert_eq!(on_slave, bodies(&mut mc, q), "queue {q}");
    }

    // The slave refuses writes.
    let r = sc.call(send_v2(TOPIC, 0, "to-the-slave", String::new()));
    assert_eq!(r.code, response::SERVICE_NOT_AVAILABLE, "{:?}", r.remark);
    assert!(r.remark.unwrap_or_default().contains("SLAVE"));
    // And topic changes: its topics are its master's.
    let r = sc.call(req(
        request::UPDATE_AND_CREATE_TOPIC,
        &[
            ("topic", "OnSlave".into()),
            ("readQueueNums", "1".into()),
            ("writeQueueNums", "1".into()),
        ],
    ));
    assert_eq!(r.code, response::NO_PERMISSION, "{:?}", r.remark);

    // A paused slave: stored, but FLUSH_SLAVE_TIMEOUT after syncFlushTimeout.
    until_replicating(&mut c);
    signal(&s, libc::SIGSTOP);
    let t = Instant::now();
    let (code, remark) = send(&mut c, 1, "while-paused");
    signal(&s, libc::SIGCONT);
    assert_eq!(code, response::FLUSH_SLAVE_TIMEOUT, "{remark:?}");
    assert!(t.elapsed() >= Duration::from_millis(1400), "{:?}", t.elapsed());
    // Resumed, it catches up: the paused message reaches it.
    until_replicating(&mut c);
    assert!(bodies(&mut sc, 1).iter().any(|(_, b)| b == "while-paused"));

    // A dead slave: SLAVE_NOT_AVAILABLE at once; the message is stored.
    s.kill9();
    let deadline = Instant::now() + Duration::from_secs(10);
    let before = max_offset(&mut mc, TOPIC, 2);
    loop {
        let (code, remark) = send(&mut c, 2, "slave-dead");
        if code == response::SLAVE_NOT_AVAILABLE {
            break;
        }
        assert!(Instant::now() < deadline, "{code} {remark:?}");
    }
    assert!(max_offset(&mut mc, TOPIC, 2) > before);
    let metrics = common::http_get(m.metrics_port, "/metrics").1;
    assert!(
        metrics.contains("shardmq_replica_slaves_in_sync{shard=\"0\"} 0"),
        "{metrics}"
    );
}

/// Polls `check` every 100 ms until it holds, for at most 15 s.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not within 15 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn committed(c: &mut Client, group: &str, qid: u32) -> Option<u64> {
    let r = c.call(req(
        request::QUERY_CONSUMER_OFFSET,
        &[
            ("consumerGroup", group.into()),
            ("topic", TOPIC.into()),
            ("queueId", qid.to_string()),
        ],
    ));
    (r.code == response::SUCCESS).then(|| r.ext_str("offset").and_then(|o| o.parse().ok()))?
}

/// A slave without `haMasterAddress` finds its master through the name
/// server; topics, subscription groups and consumer offsets follow the
/// master's; the name server routes each shard entry to the master (id 0)
/// and the slave (id 1).
#[test]
fn a_slave_follows_the_masters_topics_groups_offsets_and_is_routed_as_id_1() {
    let dir = common::test_dir();
    let m = master(dir.path(), "ASYNC_MASTER", &[]);
    let s = slave_with(dir.path(), &m, &[]);
    m.create_topic(TOPIC, QUEUES);
    let mut mc = Client::connect(&m.addr());
    let mut sc = Client::connect(&s.addr());
    let mut group = req(request::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, &[]);
    group.body = bytes::Bytes::from_static(br#"{"groupName":"HaGroup","retryMaxTimes":7}"#);
    assert_eq!(mc.call(group).code, response::SUCCESS);
    for q in 0..QUEUES {
        let r = mc.call(req(
            request::UPDATE_CONSUMER_OFFSET,
            &[
                ("consumerGroup", "HaGroup".into()),
                ("topic", TOPIC.into()),
                ("queueId", q.to_string()),
                ("commitOffset", (10 + q).to_string()),
            ],
        ));
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    }
    eventually("the topic on the slave", || {
        let r = sc.call(req(request::GET_ALL_TOPIC_CONFIG, &[]));
        String::from_utf8_lossy(&r.body).contains(TOPIC)
    });
    eventually("the group on the slave", || {
        let r = sc.call(req(request::GET_ALL_SUBSCRIPTIONGROUP_CONFIG, &[]));
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
        v["subscriptionGroupTable"]["HaGroup"]["retryMaxTimes"] == 7
    });
    eventually("the offsets on the slave", || {
        (0..QUEUES).all(|q| committed(&mut sc, "HaGroup", q) == Some(10 + q as u64))
    });
    let mut ns = Client::connect(&m.namesrv_addr());
    eventually("the slave in the route", || {
        let r = ns.call(req(request::GET_ROUTEINFO_BY_TOPIC, &[("topic", TOPIC.into())]));
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
        let datas = v["brokerDatas"].as_array().cloned().unwrap_or_default();
        datas.len() == 2
            && datas.iter().all(|d| {
                let name = d["brokerName"].as_str().unwrap_or("");
                let k: u16 = name.rsplit("-s").next().and_then(|k| k.parse().ok()).unwrap_or(99);
                d["brokerAddrs"]["0"] == m.shard_addr(k).as_str() && d["brokerAddrs"]["1"] == s.shard_addr(k).as_str()
            })
    });
}

/// `slaveReadEnable`: a pull that reads from disk (the consumer lags past
/// the CommitLog tail kept in memory) suggests broker id 1; one that is
/// caught up suggests the master, and without the setting always the
/// master.
#[test]
fn a_lagging_pull_is_sent_to_the_slave_with_slave_read_enable() {
    let dir = common::test_dir();
    let small = [
        "maxMessageSize=65536",
        "tailCacheBytes=1048576",
        "mapedFileSizeCommitLog=4194304",
        "flushDiskType=SYNC_FLUSH",
    ];
    let on = Broker::start(dir.path(), 1, &[&small[..], &["slaveReadEnable=true"]].concat());
    let off_dir = dir.path().join("off");
    std::fs::create_dir_all(&off_dir).unwrap();
    let off = Broker::start(&off_dir, 1, &small);
    for b in [&on, &off] {
        b.create_topic(TOPIC, 1);
        let mut c = Client::connect(&b.addr());
        let pad = "p".repeat(4000);
        for i in 0..1000 {
            let (code, remark) = send(&mut c, 0, &format!("{i}-{pad}"));
            assert_eq!(code, response::SUCCESS, "{remark:?}");
        }
    }
    let suggest = |b: &Broker, offset: u64| {
        let mut c = Client::connect(&b.addr());
        let r = c.call(pull_req(TOPIC, 0, offset, false, "*"));
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
        r.ext_str("suggestWhichBrokerId").and_then(|v| v.parse::<i64>().ok())
    };
    assert_eq!(suggest(&on, 0), Some(1), "a pull from the start reads ~4 MB back");
    assert_eq!(suggest(&on, 999), Some(0), "the newest record is in memory");
    assert_eq!(suggest(&off, 0), Some(0));
}

#[test]
fn a_slave_catches_up_after_a_restart_across_segment_rolls_and_serves_when_the_master_dies() {
    let dir = common::test_dir();
    let small = ["maxMessageSize=65536", "mapedFileSizeCommitLog=1048576"];
    let mut m = master(dir.path(), "ASYNC_MASTER", &small);
    m.create_topic(TOPIC, QUEUES);
    let mut s = slave(dir.path(), &m, &small);
    let mut c = Client::connect(&m.addr());
    let pad = "x".repeat(6000);
    // ~3.6 MB per shard: several 1 MiB segments each.
    for i in 0..1200u32 {
        if i == 500 {
            s.kill9();
        }
        if i == 800 {
            s.spawn();
        }
        let (code, remark) = send(&mut c, i % QUEUES, &format!("{i}-{pad}"));
        assert_eq!(code, response::SUCCESS, "send {i}: {remark:?}");
    }
    let mut mc = Client::connect(&m.addr());
    let want: Vec<u64> = (0..QUEUES).map(|q| max_offset(&mut mc, TOPIC, q)).collect();
    let master_bodies: Vec<Vec<(u64, String)>> = (0..QUEUES).map(|q| bodies(&mut mc, q)).collect();
    let mut sc = Client::connect(&s.addr());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let have: Vec<u64> = (0..QUEUES).map(|q| max_offset(&mut sc, TOPIC, q)).collect();
        if have == want {
            break;
        }
        assert!(Instant::now() < deadline, "slave at {have:?}, master at {want:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    m.kill9();
    for q in 0..QUEUES {
        let on_slave = bodies(&mut sc, q);
        assert_eq!(on_slave.len(), 300, "queue {q}");
        assert_eq!(on_slave, master_bodies[q as usize], "queue {q}");
    }
    // Restarted from its own data, the slave still has it all.
    s.kill9();
    s.spawn();
    let mut sc = Client::connect(&s.addr());
    for q in 0..QUEUES {
        assert_eq!(bodies(&mut sc, q), master_bodies[q as usize], "queue {q} after restart");
    }
}

#[test]
fn a_new_slave_joins_after_retention_deleted_the_masters_oldest_segments() {
    let dir = common::test_dir();
    let small = ["maxMessageSize=65536", "mapedFileSizeCommitLog=1048576"];
    let retention = ["fileReservedTime=0", "cleanResourceInterval=200"];
    let mut m = master(dir.path(), "ASYNC_MASTER", &[&small[..], &retention[..]].concat());
    m.create_topic(TOPIC, QUEUES);
    let mut c = Client::connect(&m.addr());
    let pad = "x".repeat(6000);
    // ~2.4 MB per shard: all but each shard's active segment expire.
    for i in 0..800u32 {
        let (code, remark) = send(&mut c, i % QUEUES, &format!("{i}-{pad}"));
        assert_eq!(code, response::SUCCESS, "send {i}: {remark:?}");
    }
    // Retention deletes a segment at a time (each behind a checkpoint):
    // done once the minimums stay put for a second (5 passes).
    let mut mins = Vec::new();
    let mut still_since = Instant::now();
    eventually("retention deleting the master's oldest segments", || {
        let now: Vec<u64> = (0..QUEUES).map(|q| min_offset(&mut c, q)).collect();
        if now != mins {
            (mins, still_since) = (now, Instant::now());
        }
        mins.iter().all(|&m| m > 0) && still_since.elapsed() >= Duration::from_secs(1)
    });
    let before: Vec<Vec<(u64, String)>> = (0..QUEUES).map(|q| bodies(&mut c, q)).collect();
    let mut s = slave(dir.path(), &m, &small);
    let mut sc = Client::connect(&s.addr());
    // Caught up before the master rolls again (its retention would delete
    // the segment the slave starts from), then following across rolls.
    let catch_up = |sc: &mut Client, c: &mut Client| {
        let want: Vec<u64> = (0..QUEUES).map(|q| max_offset(c, TOPIC, q)).collect();
        eventually("the new slave catching up", || {
            (0..QUEUES).all(|q| max_offset(sc, TOPIC, q) == want[q as usize])
        });
        want
    };
    catch_up(&mut sc, &mut c);
    for i in 800..1000u32 {
        let (code, remark) = send(&mut c, i % QUEUES, &format!("{i}-{pad}"));
        assert_eq!(code, response::SUCCESS, "send {i}: {remark:?}");
    }
    let want = catch_up(&mut sc, &mut c);
    let check = |sc: &mut Client, when: &str| {
        for q in 0..QUEUES {
            let got = bodies(sc, q);
            let first = before[q as usize].first().expect("retained").0;
            assert_eq!(
                min_offset(sc, q),
                first,
                "queue {q} {when}: starts where the master's did"
            );
            assert!(got.starts_with(&before[q as usize]), "queue {q} {when}");
            assert_eq!(got.len() as u64, want[q as usize] - first, "queue {q} {when}");
            for (k, (o, b)) in got.iter().enumerate() {
                assert_eq!(*o, first + k as u64, "queue {q} {when}");
                let n: u32 = b.split('-').next().and_then(|n| n.parse().ok()).expect("numbered body");
                assert_eq!(n % QUEUES, q, "queue {q} {when}");
            }
        }
    };
    check(&mut sc, "on the slave");
    let log = std::fs::read_to_string(&s.log).unwrap_or_default();
    assert!(
        log.contains("oldest retained segment"),
        "{}",
        common::file_tail(&s.log, 30)
    );
    // The master gone, and the slave restarted from its own data.
    m.kill9();
    check(&mut sc, "with the master down");
    s.kill9();
    s.spawn();
    let mut sc = Client::connect(&s.addr());
    check(&mut sc, "after a restart");
}

#[test]
fn a_slave_whose_next_records_retention_deleted_refuses_to_follow_and_keeps_its_data() {
    let dir = common::test_dir();
    let small = ["maxMessageSize=65536", "mapedFileSizeCommitLog=1048576"];
    let retention = ["fileReservedTime=0", "cleanResourceInterval=200"];
    let m = master(dir.path(), "ASYNC_MASTER", &[&small[..], &retention[..]].concat());
    m.create_topic(TOPIC, QUEUES);
    let mut s = slave(dir.path(), &m, &small);
    let mut c = Client::connect(&m.addr());
    let pad = "x".repeat(6000);
    for i in 0..40u32 {
        let (code, remark) = send(&mut c, i % QUEUES, &format!("{i}-{pad}"));
        assert_eq!(code, response::SUCCESS, "send {i}: {remark:?}");
    }
    let held: Vec<u64> = (0..QUEUES).map(|q| max_offset(&mut c, TOPIC, q)).collect();
    let mut sc = Client::connect(&s.addr());
    eventually("the slave catching up", || {
        (0..QUEUES).all(|q| max_offset(&mut sc, TOPIC, q) == held[q as usize])
    });
    let kept: Vec<Vec<(u64, String)>> = (0..QUEUES).map(|q| bodies(&mut sc, q)).collect();
    s.kill9();
    // ~2.4 MB more per shard: the segments after the slave's end expire.
    for i in 40..840u32 {
        let (code, remark) = send(&mut c, i % QUEUES, &format!("{i}-{pad}"));
        assert_eq!(code, response::SUCCESS, "send {i}: {remark:?}");
    }
    eventually("retention passing the slave's end", || {
        (0..QUEUES).all(|q| min_offset(&mut c, q) > held[q as usize])
    });
    s.spawn();
    eventually("the slave saying why it cannot follow", || {
        let log = std::fs::read_to_string(&s.log).unwrap_or_default();
        log.contains("cannot skip them") && log.contains("move its data directory away")
    });
    // Nothing of its own is lost, and nothing past a hole is taken.
    let mut sc = Client::connect(&s.addr());
    for q in 0..QUEUES {
        assert_eq!(bodies(&mut sc, q), kept[q as usize], "queue {q}");
    }
    // The master goes on without it.
    let (code, remark) = send(&mut c, 0, "after");
    assert_eq!(code, response::SUCCESS, "{remark:?}");
}
