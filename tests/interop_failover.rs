//! Automatic failover with real clients — the reference Java client
//! (rocketmq-client 4.9.8) and the C++ core (rocketmq-client-cpp 2.1.0
//! through its Python binding) — against a cluster of two broker groups,
//! each a master and a slave (four `shardmq serve` processes in controller
//! mode, 2 shards each, SYNC_FLUSH, SYNC_MASTER acknowledgement), three
//! `shardmq controller` processes (a Raft quorum) and a standalone
//! `shardmq namesrv`.
//!
//! A producer of the client sends continuously (`--mode continuous`: one
//! message at a time, a failed send reported and the next one sent) while
//! the test SIGKILLs the master of group A, waits for the controllers to
//! elect its in-sync slave, restarts the killed broker (it rejoins as a
//! slave and returns to the in-sync set), then does the same to group B and
//! once more to group A. A consumer of the same client then reads the topic
//! from the cluster (the name server now routes to the promoted masters):
//!
//! * every message the client reported sent OK (Java `SEND_OK`, C++ `OK`)
//!   is consumed — acknowledged-but-lost must be 0 — with its body, tag and
//!   properties intact;
//! * nothing is consumed that the producer never tried to send;
//! * a message is consumed more than once only if the client put it on the
//!   wire more than once or never saw it acknowledged. The Java producer
//!   counts its attempts per message (a send hook), so this is checked per
//!   message; the C++ core retries inside one call, up to 5 times, without
//!   telling the caller, so for it the number of duplicated messages is
//!   bounded by the failed attempts its log reports.
//!
//! After each election the client must follow the failover: the promoted
//! master acknowledges its sends. The Java producer refreshes its routes
//! every second (`pollNameServerInterval`) and is checked by the store host
//! in the broker's offset message id of its acknowledgements; the C++ core
//! refreshes its routes every 30 s (not configurable in 2.1.0) and does not
//! report which broker stored a message, so the promoted master's store
//! must grow within 45 s. Until then its sends fail (its cached routes name
//! the dead master, or the returned old master, now a slave that refuses
//! writes); failed sends are allowed.

#[path = "interop/harness.rs"]
mod harness;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use harness::Client::{Cpp, Java};
use harness::*;
use serde_json::Value;
use shardmq_controller::GroupView;

/// 64 MiB segments: each broker zero-fills two per shard ahead.
const SEGMENT: &str = "67108864";
/// The controllers fail a master over after this long without a heartbeat.
const HEARTBEAT_TIMEOUT_MS: u64 = 1500;
const GROUPS: [&str; 2] = ["fo-a", "fo-b"];
/// The faults, by group index: A, B, then A again.
const FAULTS: [usize; 3] = [0, 1, 0];
/// Pause between two sends of the producer.
const INTERVAL_MS: u64 = 25;
/// Upper bound of messages the producer tries (it stops when told first).
const MAX_MESSAGES: u64 = 20_000;

#[test]
fn java_clients_lose_no_acknowledged_message_through_repeated_master_failovers() {
    through_repeated_failovers(Java, "SEND_OK");
}

#[test]
fn cpp_clients_lose_no_acknowledged_message_through_repeated_master_failovers() {
    through_repeated_failovers(Cpp, "OK");
}

/// A `shardmq controller` or `shardmq namesrv` process; SIGKILLed on drop.
struct Daemon {
    child: Option<Child>,
    log: PathBuf,
}

impl Daemon {
    fn spawn(args: &[String], log: PathBuf) -> Daemon {
        let f = std::fs::File::create(&log).expect("log file");
        let child = Command::new(shardmq_bin())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(f)
            .spawn()
            .expect("spawn shardmq");
        Daemon {
            child: Some(child),
            log,
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(30);
            eprintln!("---- {} ----\n{}", self.log.display(), lines[from..].join("\n"));
        }
    }
}

/// The controllers and the name server.
struct Control {
    _daemons: Vec<Daemon>,
    controller_addrs: Vec<String>,
    namesrv: String,
    _dir: tempfile::TempDir,
}

impl Control {
    fn start() -> Control {
        let dir = tempfile::Builder::new()
            .prefix("shardmq-interop-fo-")
            .tempdir()
            .expect("tempdir");
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let peers = ports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{}=127.0.0.1:{p}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let mut daemons = Vec::new();
        for i in 0..3 {
            let d = dir.path().join(format!("controller-{}", i + 1));
            std::fs::create_dir_all(&d).expect("dir");
            let args = [
                "controller".to_string(),
                "--id".into(),
                (i + 1).to_string(),
                "--peers".into(),
                peers.clone(),
                "--data-dir".into(),
                d.display().to_string(),
                "--heartbeat-timeout-ms".into(),
                HEARTBEAT_TIMEOUT_MS.to_string(),
            ];
            daemons.push(Daemon::spawn(&args, d.join("controller.log")));
        }
        let ns_port = free_port();
        daemons.push(Daemon::spawn(
            &["namesrv".into(), "--port".into(), ns_port.to_string()],
            dir.path().join("namesrv.log"),
        ));
        Control {
            _daemons: daemons,
            controller_addrs: ports.iter().map(|p| format!("127.0.0.1:{p}")).collect(),
            namesrv: format!("127.0.0.1:{ns_port}"),
            _dir: dir,
        }
    }

    /// Broker `id` (1 or 2) of `group`, on fresh ports and a fresh dir.
    fn broker(&self, group: &str, id: u64) -> Broker {
        let controllers = self.controller_addrs.join(";");
        let id = id.to_string();
        Broker::start_on(
            "SYNC_FLUSH",
            &[
                ("brokerName", group),
                ("brokerId", &id),
                ("enableControllerMode", "true"),
                ("controllerAddr", &controllers),
                ("brokerRole", "SYNC_MASTER"),
                ("syncFlushTimeout", "2000"),
                ("embeddedNamesrvEnable", "false"),
                ("namesrvAddr", &self.namesrv),
                ("brokerHeartbeatInterval", "250"),
                ("masterLeaseMillis", "1000"),
                ("haMaxTimeSlaveNotCatchup", "6000"),
                ("autoCreateTopicEnable", "false"),
                ("mapedFileSizeCommitLog", SEGMENT),
            ],
            Ports::pick(),
        )
    }

    fn group(&self, name: &str) -> Option<GroupView> {
        let mut c = shardmq_controller::client::Client::new(self.controller_addrs.clone(), Duration::from_secs(1));
        c.groups().ok()?.into_iter().find(|g| g.broker_name == name)
    }

    /// Waits (at most `within`) for `group` to satisfy `ok`.
    fn wait_group(&self, group: &str, what: &str, within: Duration, ok: impl Fn(&GroupView) -> bool) -> GroupView {
        let deadline = Instant::now() + within;
        let mut last = None;
        while Instant::now() < deadline {
            if let Some(g) = self.group(group) {
                if ok(&g) {
                    return g;
                }
                last = Some(g);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("{group}: {what}: not within {within:?}; the group: {last:?}");
    }

    /// The topic's route from the name server: broker entry name -> the
    /// address of its brokerId 0, for the entries that have one.
    fn masters_in_route(&self, topic: &str) -> BTreeMap<String, String> {
        use shardmq::protocol::{codes, encode_frame, FrameDecoder, RemotingCommand};
        use std::io::{Read, Write};
        let mut cmd = RemotingCommand::new_request(codes::request::GET_ROUTEINFO_BY_TOPIC);
        cmd.ext_fields.insert("topic", topic);
        let mut out = bytes::BytesMut::new();
        encode_frame(&cmd, &mut out).expect("encode");
        let Ok(mut s) = std::net::TcpStream::connect(&self.namesrv) else {
            return BTreeMap::new();
        };
        s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        s.write_all(&out).expect("write");
        let mut buf = bytes::BytesMut::new();
        let mut chunk = [0u8; 8192];
        let reply = loop {
            if let Some(r) = FrameDecoder::new().decode(&mut buf).expect("decode") {
                break r;
            }
            match s.read(&mut chunk) {
                Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                _ => return BTreeMap::new(),
            }
        };
        let v: Value = serde_json::from_slice(&reply.body).unwrap_or_default();
        v["brokerDatas"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter_map(|d| {
                let name = d["brokerName"].as_str()?.to_string();
                let addr = d["brokerAddrs"]["0"].as_str()?.to_string();
                Some((name, addr))
            })
            .collect()
    }
}

fn master_is(id: u64, epoch_above: u32) -> impl Fn(&GroupView) -> bool {
    move |g| g.master_id == Some(id) && g.master_epoch > epoch_above
}

fn both_in_sync(g: &GroupView) -> bool {
    let mut s = g.sync_state_set.clone();
    s.sort();
    s == [1, 2] && g.master_id.is_some()
}

/// The addresses a broker serves on: its main port and its shards' ports.
fn serves_on(b: &Broker) -> BTreeSet<String> {
    std::iter::once(b.ports.broker)
        .chain((0..SHARDS).map(|k| b.ports.shards + k))
        .map(|p| format!("127.0.0.1:{p}"))
        .collect()
}

/// The store host (`ip:port`) of a broker's offset message id (Java
/// `MessageDecoder.createMessageId`: 4 bytes IPv4, 4 bytes port, 8 bytes
/// commit log offset, in hex).
fn store_host(offset_msg_id: &str) -> Option<String> {
    if offset_msg_id.len() < 32 {
        return None;
    }
    let b = |i: usize| u8::from_str_radix(offset_msg_id.get(i * 2..i * 2 + 2)?, 16).ok();
    let port = u32::from_str_radix(offset_msg_id.get(8..16)?, 16).ok()?;
    Some(format!("{}.{}.{}.{}:{port}", b(0)?, b(1)?, b(2)?, b(3)?))
}

/// What the producer reported so far.
#[derive(Default)]
struct Outcome {
    /// Acknowledged (status OK): key -> the "sent" event.
    acked: BTreeMap<String, Value>,
    /// Sent with another status (e.g. FLUSH_SLAVE_TIMEOUT): key -> status.
    not_ok: BTreeMap<String, String>,
    /// The send failed (an exception): key -> error.
    failed: BTreeMap<String, String>,
    /// Attempts per key (Java only).
    attempts: BTreeMap<String, u64>,
}

/// The "sent" events with status `ok`.
fn acked<'a>(events: &'a [Value], ok: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    events.iter().filter(move |e| e["event"] == "sent" && e["status"] == ok)
}

fn outcome(events: &[Value], ok: &str) -> Outcome {
    let mut o = Outcome::default();
    for e in events {
        let key = e["key"].as_str().unwrap_or_default().to_string();
        if let Some(a) = e["attempts"].as_u64() {
            o.attempts.insert(key.clone(), a);
        }
        if e["event"] == "sent" {
            let status = e["status"].as_str().unwrap_or_default();
            if status == ok {
                o.acked.insert(key, e.clone());
            } else {
                o.not_ok.insert(key, status.to_string());
            }
        } else if e["event"] == "send_failed" {
            o.failed
                .insert(key, e["error"].as_str().unwrap_or_default().to_string());
        }
    }
    o
}

fn through_repeated_failovers(client: Client, ok: &str) {
    let _g = serial();
    ensure_clients();
    let started = Instant::now();
    let ctl = Control::start();
    // The first broker of each group to register becomes its master.
    let mut brokers: Vec<Vec<Broker>> = Vec::new();
    for group in GROUPS {
        brokers.push(vec![ctl.broker(group, 1)]);
        ctl.wait_group(group, "broker 1 master", Duration::from_secs(30), master_is(1, 0));
    }
    for (gi, group) in GROUPS.iter().enumerate() {
        brokers[gi].push(ctl.broker(group, 2));
    }
    for group in GROUPS {
        ctl.wait_group(group, "both brokers in sync", Duration::from_secs(30), both_in_sync);
    }
    let topic = format!("{}Failover", client.name().replace('-', ""));
    let topic = topic.as_str();
    for group in &brokers {
        group[0].create_topic(topic);
    }
    // Every shard entry of both groups routed to its master.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let masters = ctl.masters_in_route(topic);
        let want: BTreeSet<String> = brokers.iter().flat_map(|g| serves_on(&g[0])).collect();
        if masters.len() == GROUPS.len() * SHARDS as usize && masters.values().all(|a| want.contains(a)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the route of {topic} never named every shard's master: {masters:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("[{}] cluster up in {:?}", client.name(), started.elapsed());

    let mut args = client
        .program("producer", &brokers[0][0], topic, "PG_failover")
        .arg("namesrv", &ctl.namesrv)
        .arg("mode", "continuous")
        .arg("prefix", "fo")
        .arg("count", MAX_MESSAGES)
        .arg("interval-ms", INTERVAL_MS)
        .arg("send-timeout-ms", 3000)
        .arg("timeout-ms", 240_000);
    if client == Java {
        args = args.arg("poll-namesrv-ms", 1000).arg("retry-times", 2);
    }
    let mut producer = args.spawn();
    let acked_now = |p: &Proc| acked(&p.events(), ok).count();
    // Waits for `n` more acknowledgements than `from`.
    let wait_acks = |p: &Proc, from: usize, n: usize, what: &str| {
        p.wait_for(
            &format!("{n} acknowledged sends {what} (had {from})"),
            Duration::from_secs(30),
            |ev| acked(ev, ok).count() >= from + n,
        );
    };
    wait_acks(&producer, 0, 100, "before the first fault");

    let mut timings = Vec::new();
    for (round, &gi) in FAULTS.iter().enumerate() {
        let group = GROUPS[gi];
        let view = ctl.wait_group(group, "a master, both in sync", Duration::from_secs(30), both_in_sync);
        let old = view.master_id.expect("master");
        let new = 3 - old;
        let before = acked_now(&producer);
        let t0 = Instant::now();
        let killed_ms = now_ms();
        brokers[gi][(old - 1) as usize].kill9();
        let elected = ctl.wait_group(
            group,
            &format!("broker {new} elected after broker {old}'s SIGKILL"),
            Duration::from_secs(30),
            master_is(new, view.master_epoch),
        );
        let elected_in = t0.elapsed();
        // The producer keeps getting sends acknowledged.
        wait_acks(&producer, before, 40, &format!("after {group}'s master was killed"));
        // The client follows the failover: the promoted master acknowledges
        // sends. Java refreshes its routes every second and tells which
        // broker stored a message (the store host in its offset message
        // id); the C++ core refreshes its routes every 30 s and does not:
        // the promoted master's store grows while the producer gets acks.
        let promoted = &brokers[gi][(new - 1) as usize];
        if client == Java {
            let hosts = serves_on(promoted);
            producer.wait_for(
                &format!("a send acknowledged by {group}'s promoted master (broker {new}, {hosts:?})"),
                Duration::from_secs(30),
                |ev| {
                    acked(ev, ok).any(|e| {
                        e["sendStartMs"].as_i64().is_some_and(|t| t >= killed_ms)
                            && e["offsetMsgId"]
                                .as_str()
                                .and_then(store_host)
                                .is_some_and(|h| hosts.contains(&h))
                    })
                },
            );
        } else {
            let stored = stored_on(promoted, topic);
            let deadline = Instant::now() + Duration::from_secs(45);
            while stored_on(promoted, topic) <= stored {
                assert!(
                    Instant::now() < deadline,
                    "{group}'s promoted master (broker {new}) stored nothing new within 45 s: the client never \
                     followed the failover\n{}",
                    producer.report()
                );
                std::thread::sleep(Duration::from_millis(250));
            }
        }
        let followed_in = t0.elapsed();
        // The killed broker returns as a slave and catches up.
        let b = &mut brokers[gi][(old - 1) as usize];
        b.restart();
        let back = ctl.wait_group(
            group,
            &format!("broker {old} back in sync"),
            Duration::from_secs(40),
            |g| both_in_sync(g) && g.master_id == Some(new),
        );
        b.assert_alive(&format!("rejoining {group} as a slave"));
        let rejoined_in = t0.elapsed();
        wait_acks(
            &producer,
            acked_now(&producer),
            150,
            &format!("after {group}'s old master rejoined"),
        );
        eprintln!(
            "[{}] fault {}: {group} master {old} killed; {new} elected (epoch {}) in {elected_in:?}, promoted master \
             acknowledging at {followed_in:?}, {old} back in sync (epoch {}) at {rejoined_in:?}",
            client.name(),
            round + 1,
            elected.master_epoch,
            back.sync_state_set_epoch
        );
        timings.push(elected_in);
    }
    producer.close_stdin();
    producer.wait_exit(Duration::from_secs(30));
    producer.wait_event("done", Duration::from_secs(1));
    let events = producer.events();
    let out = outcome(&events, ok);
    let tried = events
        .iter()
        .filter(|e| e["event"] == "sent" || e["event"] == "send_failed")
        .count();
    for b in brokers.iter_mut().flatten() {
        b.assert_alive("the faults");
    }

    // Consume everything the cluster holds, through the promoted masters.
    let mut consumer = client
        .program("consumer", &brokers[0][0], topic, "CG_failover")
        .arg("namesrv", &ctl.namesrv)
        .arg("from", "first")
        .arg("timeout-ms", 150_000)
        .spawn();
    let want: BTreeSet<String> = out.acked.keys().cloned().collect();
    let missing_now = |ev: &[Value]| {
        let got: BTreeSet<&str> = ev
            .iter()
            .filter(|e| e["event"] == "msg")
            .filter_map(|e| e["keys"].as_str())
            .collect();
        want.iter().filter(|k| !got.contains(k.as_str())).count()
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut last_progress = (usize::MAX, Instant::now());
    loop {
        let ev = consumer.events();
        let missing = missing_now(&ev);
        if missing == 0 {
            break;
        }
        if missing != last_progress.0 {
            last_progress = (missing, Instant::now());
        }
        if ev.iter().any(|e| e["event"] == "error" || e["event"] == "timeout") {
            break;
        }
        // Nothing new for 20 s: what is missing is not coming.
        if Instant::now() >= deadline || last_progress.1.elapsed() > Duration::from_secs(20) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // A little longer, for duplicates and stragglers.
    std::thread::sleep(Duration::from_secs(3));
    consumer.close_stdin();
    consumer.wait_exit(Duration::from_secs(30));
    let recv = recv_of(&consumer.events());

    let mut deliveries: BTreeMap<&str, Vec<&Recv>> = BTreeMap::new();
    for r in &recv {
        deliveries.entry(r.key.as_str()).or_default().push(r);
    }
    let lost: Vec<&String> = out
        .acked
        .keys()
        .filter(|k| !deliveries.contains_key(k.as_str()))
        .collect();
    let attempted: BTreeSet<&str> = events
        .iter()
        .filter(|e| e["event"] == "sent" || e["event"] == "send_failed")
        .filter_map(|e| e["key"].as_str())
        .collect();
    let unknown: Vec<&str> = deliveries.keys().copied().filter(|k| !attempted.contains(k)).collect();
    let dups: BTreeMap<&str, usize> = deliveries
        .iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(k, v)| (*k, v.len()))
        .collect();
    let unacked_delivered = deliveries
        .keys()
        .filter(|k| !out.acked.contains_key(**k) && attempted.contains(**k))
        .count();
    eprintln!(
        "[{}] {tried} sends tried in {:?}: {} acknowledged, {} with another status {:?}, {} failed; consumed {} \
         deliveries of {} distinct messages: acknowledged-but-lost {}, duplicated {} {:?}, unacknowledged but \
         stored {}; elections took {timings:?}",
        client.name(),
        started.elapsed(),
        out.acked.len(),
        out.not_ok.len(),
        out.not_ok.values().collect::<BTreeSet<_>>(),
        out.failed.len(),
        recv.len(),
        deliveries.len(),
        lost.len(),
        dups.len(),
        dups,
        unacked_delivered,
    );
    let mut errors: BTreeMap<&str, usize> = BTreeMap::new();
    for e in out.failed.values() {
        *errors.entry(e.as_str()).or_default() += 1;
    }
    let mut attempts: BTreeMap<u64, usize> = BTreeMap::new();
    for a in out.attempts.values() {
        *attempts.entry(*a).or_default() += 1;
    }
    let slowest = events
        .iter()
        .filter_map(|e| Some(e["sendEndMs"].as_i64()? - e["sendStartMs"].as_i64()?))
        .max()
        .unwrap_or(0);
    let logged_failures = client_log_count(&producer, "send failed of times");
    eprintln!(
        "[{}] send errors {errors:?}; attempts per message (Java) {attempts:?}; failed attempts in the C++ \
         core's log {logged_failures}; slowest send {slowest} ms",
        client.name()
    );
    let ctx = format!("[{}] consume after repeated failovers", client.name());
    assert!(
        lost.is_empty(),
        "{ctx}: {} acknowledged messages were never consumed: {:?}\n{}",
        lost.len(),
        lost.iter().take(30).collect::<Vec<_>>(),
        consumer.report()
    );
    assert!(unknown.is_empty(), "{ctx}: consumed messages never sent: {unknown:?}");
    assert!(
        out.acked.len() >= 300,
        "{ctx}: only {} sends acknowledged: the producer made too little progress\n{}",
        out.acked.len(),
        producer.report()
    );

    // Each delivery intact; each acknowledged message delivered at the
    // queue offset its send result named.
    for r in &recv {
        let i: u64 = r
            .key
            .rsplit_once("-k")
            .and_then(|(_, i)| i.parse().ok())
            .unwrap_or_else(|| panic!("{ctx}: bad key {r:?}"));
        assert_eq!(r.topic, topic, "{ctx}: {r:?}");
        assert_eq!(r.body, expected_body("fo", i), "{ctx}: body of {} altered", r.key);
        assert_eq!(r.reconsume_times, 0, "{ctx}: {} delivered as a retry", r.key);
        let want_props: BTreeMap<String, String> = [
            ("seq".to_string(), i.to_string()),
            ("prefix".to_string(), "fo".to_string()),
            ("color".to_string(), "blue green".to_string()),
        ]
        .into_iter()
        .collect();
        assert_eq!(r.props, want_props, "{ctx}: properties of {} altered", r.key);
    }
    for (key, sent) in &out.acked {
        let Some(offset) = sent["queueOffset"].as_i64() else {
            continue;
        };
        let queue = sent["queueId"].as_str();
        let at = deliveries[key.as_str()].iter().any(|r| {
            r.queue_offset == offset
                && (queue.is_none() || r.pulled_from.is_none() || r.pulled_from.as_deref() == queue)
        });
        assert!(
            at,
            "{ctx}: {key} acknowledged at {queue:?}@{offset}, delivered at {:?}",
            deliveries[key.as_str()]
                .iter()
                .map(|r| (r.pulled_from.clone(), r.queue_id, r.queue_offset))
                .collect::<Vec<_>>()
        );
    }

    // Duplicates only where the client itself may have stored a message
    // twice: it put it on the wire more than once, or never saw it
    // acknowledged.
    if client == Java {
        let unexplained: Vec<(&str, usize, Option<u64>)> = dups
            .iter()
            .filter(|(k, _)| out.acked.contains_key(**k) && out.attempts.get(**k).copied().unwrap_or(0) <= 1)
            .map(|(k, n)| (*k, *n, out.attempts.get(*k).copied()))
            .collect();
        assert!(
            unexplained.is_empty(),
            "{ctx}: acknowledged messages sent once but delivered more than once (key, deliveries, attempts): \
             {unexplained:?}"
        );
    } else {
        assert!(
            dups.len() <= logged_failures + out.failed.len(),
            "{ctx}: {} messages delivered more than once, but the C++ core logged only {logged_failures} failed \
             attempts (and {} sends failed): {dups:?}",
            dups.len(),
            out.failed.len()
        );
    }
    eprintln!("[{}] done in {:?}", client.name(), started.elapsed());
}

/// Messages of `topic` stored on broker `b` (the sum of its queues' max
/// offsets, `shardmq admin topic status`).
fn stored_on(b: &Broker, topic: &str) -> i64 {
    let out = Command::new(shardmq_bin())
        .args(["admin", "--json", "--broker", &format!("127.0.0.1:{}", b.ports.broker)])
        .args(["topic", "status", topic])
        .stdin(Stdio::null())
        .output()
        .expect("shardmq admin");
    assert!(
        out.status.success(),
        "topic status of {topic}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stored_per_topic_status(&String::from_utf8_lossy(&out.stdout))
}

/// How often `needle` occurs in the client logs under the program's scratch
/// dir (`<home>/logs`).
fn client_log_count(p: &Proc, needle: &str) -> usize {
    let home = p.home();
    let mut n = 0;
    let mut stack = vec![home.join("logs")];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(b) = std::fs::read(&path) {
                n += String::from_utf8_lossy(&b).matches(needle).count();
            }
        }
    }
    n
}
