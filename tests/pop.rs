//! Invisible-time consumption (POP) through the real binary over real
//! sockets (SYNC_FLUSH, two shards), driven code by code with our own
//! remoting client: pop / ack / change-invisible-time / batch ack, re-delivery
//! after the invisible time with `reconsumeTimes + 1`, stale handles,
//! groups independent, orderly pops (a waiting one woken by the acks of the
//! batch in flight), long polling, the DLQ after the
//! group's maximum, kill -9 in the middle, QUERY_ASSIGNMENT, bad input.
//! The Java 5.x client's POP mode is tested in tests/interop_java_pop.rs.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{req, send_v2, Broker, Client};
use shardmq::protocol::codes::{request, response};
use shardmq::protocol::RemotingCommand;
use shardmq::store::record::{check_record, RecordCheck};

#[derive(Debug, Clone, PartialEq)]
struct Msg {
    queue: u32,
    offset: u64,
    reconsume: i32,
    body: String,
}

struct Popped {
    code: i32,
    remark: String,
    pop_time: i64,
    msgs: Vec<Msg>,
    reply: RemotingCommand,
}

struct Pop<'a> {
    topic: &'a str,
    group: &'a str,
    queue: i32,
    max: u32,
    invisible: i64,
    poll: i64,
    order: Option<&'a str>,
}

impl<'a> Pop<'a> {
    fn new(topic: &'a str, group: &'a str, queue: i32, invisible: i64) -> Pop<'a> {
        Pop {
            topic,
            group,
            queue,
            max: 32,
            invisible,
            poll: 0,
            order: None,
        }
    }

    fn cmd(&self) -> RemotingCommand {
        let mut f = vec![
            ("consumerGroup", self.group.to_string()),
            ("topic", self.topic.to_string()),
            ("queueId", self.queue.to_string()),
            ("maxMsgNums", self.max.to_string()),
            ("invisibleTime", self.invisible.to_string()),
            ("pollTime", self.poll.to_string()),
            ("bornTime", now_ms().to_string()),
            ("initMode", "0".to_string()),
        ];
        if let Some(a) = self.order {
            f.push(("order", "true".to_string()));
            f.push(("attemptId", a.to_string()));
        }
        req(request::POP_MESSAGE, &f)
    }

    fn run(&self, c: &mut Client) -> Popped {
        let reply = c.call(self.cmd());
        let mut msgs = Vec::new();
        if reply.code == response::SUCCESS {
            let mut at = 0;
            while at < reply.body.len() {
                let RecordCheck::Record(v) = check_record(&reply.body[at..], None, true) else {
                    panic!("undecodable record in a pop reply")
                };
                msgs.push(Msg {
                    queue: v.queue_id,
                    offset: v.queue_offset,
                    reconsume: v.reconsume_times,
                    body: String::from_utf8_lossy(v.body).into_owned(),
                });
                at += v.total_size as usize;
            }
        }
        for k in ["popTime", "invisibleTime", "reviveQid", "restNum"] {
            assert!(
                reply.ext_str(k).is_some(),
                "pop reply (code {}) without {k}: the Java client decodes it on every code",
                reply.code
            );
        }
        Popped {
            code: reply.code,
            remark: reply.remark.clone().unwrap_or_default(),
            pop_time: reply.ext_i64("popTime").ok().flatten().unwrap_or(0),
            msgs,
            reply,
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

/// The handle a Java client builds for a message of a pop reply.
fn handle(p: &Popped, m: &Msg) -> String {
    format!(
        "{} {} {} 0 0 broker-a {} {}",
        m.offset,
        p.pop_time,
        p.reply.ext_str("invisibleTime").unwrap_or("0"),
        m.queue,
        m.offset
    )
}

fn ack(c: &mut Client, topic: &str, group: &str, handle: &str, m: &Msg) -> RemotingCommand {
    c.call(req(
        request::ACK_MESSAGE,
        &[
            ("consumerGroup", group.into()),
            ("topic", topic.into()),
            ("queueId", m.queue.to_string()),
            ("extraInfo", handle.into()),
            ("offset", m.offset.to_string()),
        ],
    ))
}

fn change(c: &mut Client, topic: &str, group: &str, handle: &str, m: &Msg, invisible: i64) -> RemotingCommand {
    c.call(req(
        request::CHANGE_MESSAGE_INVISIBLETIME,
        &[
            ("consumerGroup", group.into()),
            ("topic", topic.into()),
            ("queueId", m.queue.to_string()),
            ("extraInfo", handle.into()),
            ("offset", m.offset.to_string()),
            ("invisibleTime", invisible.to_string()),
        ],
    ))
}

fn send(c: &mut Client, topic: &str, queue: i64, body: &str) {
    let r = c.call(send_v2(topic, queue, body, String::new()));
    assert_eq!(r.code, response::SUCCESS, "send: {:?}", r.remark);
}

/// Pops (bounded) until `want` messages arrived or `within` passed.
fn pop_until(c: &mut Client, p: &Pop, want: usize, within: Duration) -> Vec<(Msg, String)> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    while got.len() < want && Instant::now() < deadline {
        let r = p.run(c);
        for m in &r.msgs {
            got.push((m.clone(), handle(&r, m)));
        }
        if r.msgs.is_empty() {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    got
}

fn start(dir: &std::path::Path) -> Broker {
    Broker::start(dir, 2, &["flushDiskType=SYNC_FLUSH", "popMinInvisibleTime=500"])
}

#[test]
fn popped_messages_come_back_after_their_invisible_time_unless_acked() {
    let dir = common::test_dir();
    let b = start(dir.path());
    b.create_topic("PT", 4);
    let mut c = Client::connect(&b.addr());
    for i in 0..8 {
        send(&mut c, "PT", i % 4, &format!("m{i}"));
    }
    // Each shard entry pops its own queues with queue id -1.
    let mut first = Vec::new();
    for k in 0..2 {
        let mut s = Client::connect(&b.shard_addr(k));
        let r = Pop::new("PT", "G", -1, 2000).run(&mut s);
        assert_eq!(r.code, response::SUCCESS, "shard {k}: {}", r.remark);
        assert_eq!(r.reply.ext_str("reviveQid"), Some("0"));
        assert!(r.reply.ext_str("startOffsetInfo").is_some_and(|s| !s.is_empty()));
        for m in &r.msgs {
            assert_eq!(m.reconsume, 0);
            first.push((k, m.clone(), handle(&r, m)));
        }
    }
    let mut bodies: Vec<&str> = first.iter().map(|(_, m, _)| m.body.as_str()).collect();
    bodies.sort();
    assert_eq!(
        bodies,
        ["m0", "m1", "m2", "m3", "m4", "m5", "m6", "m7"],
        "each message once"
    );

    // Ack the even ones; all are invisible now.
    let t0 = now_ms();
    for (k, m, h) in &first {
        if m.body.trim_start_matches('m').parse::<u32>().unwrap_or(1) % 2 == 0 {
            let mut s = Client::connect(&b.shard_addr(*k));
            let r = ack(&mut s, "PT", "G", h, m);
            assert_eq!(r.code, response::SUCCESS, "ack {}: {:?}", m.body, r.remark);
        }
    }
    let again = Pop::new("PT", "G", -1, 2000).run(&mut c);
    assert!(
        again.msgs.is_empty(),
        "invisible messages were popped again: {:?}",
        again.msgs
    );

    // After 2 s the odd ones come back, once each, with reconsumeTimes 1.
    let mut back = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while back.len() < 4 && Instant::now() < deadline {
        for k in 0..2 {
            let mut s = Client::connect(&b.shard_addr(k));
            let r = Pop::new("PT", "G", -1, 5000).run(&mut s);
            for m in &r.msgs {
                back.push((k, m.clone(), handle(&r, m), now_ms()));
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut bodies: Vec<&str> = back.iter().map(|(_, m, _, _)| m.body.as_str()).collect();
    bodies.sort();
    assert_eq!(
        bodies,
        ["m1", "m3", "m5", "m7"],
        "exactly the unacknowledged ones come back"
    );
    for (_, m, _, at) in &back {
        assert_eq!(m.reconsume, 1, "{} is delivery 2", m.body);
        assert!(*at >= t0 + 1900, "{} came back {} ms early", m.body, t0 + 2000 - at);
    }
    // The first handle of a re-delivered message is stale now.
    let (k, m, old) = first.iter().find(|(_, m, _)| m.body == "m1").cloned().expect("m1");
    let mut s = Client::connect(&b.shard_addr(k));
    let r = ack(&mut s, "PT", "G", &old, &m);
    assert_eq!(r.code, response::NO_MESSAGE, "stale handle: {:?}", r.remark);
    assert!(r.remark.unwrap_or_default().contains("stale"));
    // Acking the new handles leaves nothing.
    for (k, m, h, _) in &back {
        let mut s = Client::connect(&b.shard_addr(*k));
        assert_eq!(ack(&mut s, "PT", "G", h, m).code, response::SUCCESS);
    }
    std::thread::sleep(Duration::from_millis(5500));
    for k in 0..2 {
        let mut s = Client::connect(&b.shard_addr(k));
        let r = Pop::new("PT", "G", -1, 2000).run(&mut s);
        assert!(r.msgs.is_empty(), "acked messages delivered again: {:?}", r.msgs);
    }
    // The group's consume progress is the end of each queue.
    for q in 0..4u32 {
        let r = c.call(req(
            request::QUERY_CONSUMER_OFFSET,
            &[
                ("consumerGroup", "G".into()),
                ("topic", "PT".into()),
                ("queueId", q.to_string()),
            ],
        ));
        assert_eq!(r.code, response::SUCCESS, "queue {q}: {:?}", r.remark);
        assert_eq!(r.ext_str("offset"), Some("2"), "queue {q} progress");
    }
}

#[test]
fn groups_are_independent_and_change_invisible_time_renames_the_lease() {
    let dir = common::test_dir();
    let b = start(dir.path());
    b.create_topic("CT", 1);
    let mut c = Client::connect(&b.addr());
    for i in 0..3 {
        send(&mut c, "CT", 0, &format!("c{i}"));
    }
    let a = pop_until(&mut c, &Pop::new("CT", "GA", 0, 60_000), 3, Duration::from_secs(5));
    let bb = pop_until(&mut c, &Pop::new("CT", "GB", 0, 60_000), 3, Duration::from_secs(5));
    assert_eq!(a.len(), 3, "group A gets everything");
    assert_eq!(bb.len(), 3, "group B gets everything too");
    // B acks all; A's are untouched.
    for (m, h) in &bb {
        assert_eq!(ack(&mut c, "CT", "GB", h, m).code, response::SUCCESS);
    }
    // A shortens c0's invisible time to 1 s: it comes back then, not after 60 s.
    let (m0, h0) = a.iter().find(|(m, _)| m.body == "c0").cloned().expect("c0");
    let t = now_ms();
    let r = change(&mut c, "CT", "GA", &h0, &m0, 1000);
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let new_pop_time: i64 = r.ext_i64("popTime").ok().flatten().expect("popTime");
    assert!(new_pop_time >= t);
    assert_eq!(r.ext_str("invisibleTime"), Some("1000"));
    // The old handle no longer names the lease.
    let r = change(&mut c, "CT", "GA", &h0, &m0, 1000);
    assert_eq!(r.code, response::NO_MESSAGE, "stale change: {:?}", r.remark);
    for k in ["popTime", "invisibleTime", "reviveQid"] {
        assert!(r.ext_str(k).is_some(), "a refused change still carries {k}");
    }
    let back = pop_until(&mut c, &Pop::new("CT", "GA", 0, 60_000), 1, Duration::from_secs(5));
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].0.body, "c0");
    assert_eq!(back[0].0.reconsume, 1);
    assert!(now_ms() - t >= 950, "c0 came back before its new time");
    // Nothing for B.
    assert!(Pop::new("CT", "GB", 0, 60_000).run(&mut c).msgs.is_empty());
    // A batch ack (Java's BatchAckMessageRequestBody) of c1, c2.
    use base64::Engine;
    let rest: Vec<&(Msg, String)> = a.iter().filter(|(m, _)| m.body != "c0").collect();
    let so = rest.iter().map(|(m, _)| m.offset).min().expect("two");
    let mut bits = 0u8;
    for (m, _) in &rest {
        bits |= 1 << (m.offset - so);
    }
    let pt: i64 = rest[0]
        .1
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("pop time");
    let body = serde_json::json!({"brokerName": "b", "acks": [{
        "c": "GA", "t": "CT", "r": "0", "so": so, "q": 0, "rq": 0, "pt": pt, "it": 60000,
        "b": base64::engine::general_purpose::STANDARD.encode([bits]),
    }]});
    let mut cmd = req(request::BATCH_ACK_MESSAGE, &[]);
    cmd.body = bytes::Bytes::from(body.to_string().into_bytes());
    let r = c.call(cmd);
    assert_eq!(r.code, response::SUCCESS, "batch ack: {:?}", r.remark);
    // Peek shows nothing left for A beyond c0 (in flight), for B nothing.
    let r = c.call(req(
        request::PEEK_MESSAGE,
        &[
            ("consumerGroup", "GB".into()),
            ("topic", "CT".into()),
            ("queueId", "0".into()),
            ("maxMsgNums", "32".into()),
        ],
    ));
    assert_eq!(r.code, response::PULL_NOT_FOUND, "{:?}", r.remark);
}

#[test]
fn orderly_pops_block_the_queue_and_repeat_an_attempt() {
    let dir = common::test_dir();
    let b = start(dir.path());
    b.create_topic("OT", 1);
    let mut c = Client::connect(&b.addr());
    for i in 0..4 {
        send(&mut c, "OT", 0, &format!("o{i}"));
    }
    let mut p = Pop::new("OT", "GO", 0, 3000);
    p.max = 2;
    p.order = Some("attempt-1");
    let first = p.run(&mut c);
    assert_eq!(first.code, response::SUCCESS, "{}", first.remark);
    assert_eq!(first.reply.ext_str("reviveQid"), Some("999"), "orderly handles");
    assert!(first.reply.ext_str("orderCountInfo").is_some());
    let bodies: Vec<&str> = first.msgs.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["o0", "o1"]);
    // Another attempt: the queue is blocked.
    p.order = Some("attempt-2");
    assert!(p.run(&mut c).msgs.is_empty(), "a blocked queue gave messages");
    // The same attempt: the same batch, the same handle time.
    p.order = Some("attempt-1");
    let again = p.run(&mut c);
    assert_eq!(again.msgs, first.msgs);
    assert_eq!(again.pop_time, first.pop_time);
    // Ack o0 only: still blocked (o1 in flight).
    assert_eq!(
        ack(&mut c, "OT", "GO", &handle(&first, &first.msgs[0]), &first.msgs[0]).code,
        response::SUCCESS
    );
    p.order = Some("attempt-3");
    assert!(p.run(&mut c).msgs.is_empty(), "blocked while o1 is in flight");
    // o1 expires: delivered again first, in order, with reconsumeTimes 1.
    std::thread::sleep(Duration::from_millis(3200));
    let r = p.run(&mut c);
    let got: Vec<(&str, i32)> = r.msgs.iter().map(|m| (m.body.as_str(), m.reconsume)).collect();
    assert_eq!(got, [("o1", 1), ("o2", 0)]);
}

/// An orderly pop that waits on a queue blocked by the batch in flight is
/// answered as soon as that batch is acked, not at the end of its poll.
#[test]
fn an_orderly_long_polling_pop_is_answered_when_the_batch_in_flight_is_acked() {
    let dir = common::test_dir();
    let b = start(dir.path());
    b.create_topic("OW", 1);
    let mut c = Client::connect(&b.addr());
    for i in 0..3 {
        send(&mut c, "OW", 0, &format!("w{i}"));
    }
    let mut p = Pop::new("OW", "GW", 0, 30_000);
    p.max = 2;
    p.order = Some("attempt-1");
    let first = p.run(&mut c);
    assert_eq!(first.msgs.len(), 2, "{}", first.remark);
    p.order = Some("attempt-2");
    p.poll = 8000;
    let mut s = Client::connect(&b.addr());
    let t = Instant::now();
    let id = s.send(p.cmd());
    std::thread::sleep(Duration::from_millis(300));
    for m in &first.msgs {
        assert_eq!(ack(&mut c, "OW", "GW", &handle(&first, m), m).code, response::SUCCESS);
    }
    let r = s.recv().expect("pop reply");
    assert_eq!(r.opaque, id);
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "the waiting orderly pop was answered {:?} after it was sent (poll 8 s)",
        t.elapsed()
    );
}

#[test]
fn a_long_polling_pop_is_answered_when_a_message_arrives() {
    let dir = common::test_dir();
    let b = start(dir.path());
    b.create_topic("LT", 2);
    let mut s = Client::connect(&b.shard_addr(1));
    let mut p = Pop::new("LT", "GL", -1, 5000);
    p.poll = 8000;
    let t = Instant::now();
    let id = s.send(p.cmd());
    std::thread::sleep(Duration::from_millis(300));
    let mut info = Client::connect(&b.shard_addr(1));
    let r = info.call(req(
        request::POLLING_INFO,
        &[
            ("consumerGroup", "GL".into()),
            ("topic", "LT".into()),
            ("queueId", "0".into()),
        ],
    ));
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    assert_eq!(r.ext_str("pollingNum"), Some("1"), "the parked pop is counted");
    let mut c = Client::connect(&b.addr());
    // Every queue: whichever shard 1 owns wakes the poll.
    send(&mut c, "LT", 0, "late0");
    send(&mut c, "LT", 1, "late1");
    let r = s.recv().expect("pop reply");
    assert_eq!(r.opaque, id);
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    assert!(t.elapsed() < Duration::from_secs(3), "answered after {:?}", t.elapsed());
    // A poll with nothing arriving ends with POLLING_TIMEOUT.
    let mut p = Pop::new("LT", "GX", 0, 5000);
    p.poll = 600;
    let mut m = Client::connect(&b.addr());
    m.call(p.cmd()); // takes queue 0's message
    let t = Instant::now();
    let r = p.run(&mut m);
    assert_eq!(r.code, response::POLLING_TIMEOUT, "{}", r.remark);
    assert!(t.elapsed() >= Duration::from_millis(500), "not held: {:?}", t.elapsed());
}

#[test]
fn a_message_over_the_groups_maximum_goes_to_its_dlq() {
    let dir = common::test_dir();
    let b = start(dir.path());
    b.create_topic("DT", 1);
    let mut c = Client::connect(&b.addr());
    let mut cmd = req(request::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, &[]);
    cmd.body = bytes::Bytes::from(r#"{"groupName":"GD","retryMaxTimes":1}"#.as_bytes().to_vec());
    assert_eq!(c.call(cmd).code, response::SUCCESS);
    send(&mut c, "DT", 0, "doomed");
    let p = Pop::new("DT", "GD", 0, 500);
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        for m in p.run(&mut c).msgs {
            seen.push(m.reconsume);
        }
        let r = c.call(common::pull_req("%DLQ%GD", 0, 0, false, "*"));
        let dlq = if r.code == response::SUCCESS {
            common::decode(&r.body)
        } else {
            Vec::new()
        };
        if !dlq.is_empty() {
            assert_eq!(dlq.len(), 1);
            assert_eq!(dlq[0].1, "doomed");
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(seen, [0, 1], "delivered with reconsumeTimes 0 and 1, then dead");
    assert_eq!(common::pull_all(&mut c, "%DLQ%GD", 0, "*").len(), 1, "in the DLQ once");
    std::thread::sleep(Duration::from_millis(700));
    assert!(p.run(&mut c).msgs.is_empty(), "delivered after it went to the DLQ");
}

#[test]
fn pops_and_acks_survive_kill_9() {
    let dir = common::test_dir();
    let mut b = start(dir.path());
    b.create_topic("KT", 1);
    let mut c = Client::connect(&b.addr());
    for i in 0..6 {
        send(&mut c, "KT", 0, &format!("k{i}"));
    }
    let got = pop_until(&mut c, &Pop::new("KT", "GK", 0, 4000), 6, Duration::from_secs(5));
    assert_eq!(got.len(), 6);
    let t0 = now_ms();
    let mut acked = Vec::new();
    for (m, h) in got.iter().take(3) {
        assert_eq!(ack(&mut c, "KT", "GK", h, m).code, response::SUCCESS);
        acked.push(m.body.clone());
    }
    drop(c);
    b.kill9();
    b.spawn();
    let mut c = Client::connect(&b.addr());
    let r = Pop::new("KT", "GK", 0, 4000).run(&mut c);
    if now_ms() < t0 + 3800 {
        assert!(r.msgs.is_empty(), "leases lost in the crash: {:?}", r.msgs);
    }
    let back = pop_until(&mut c, &Pop::new("KT", "GK", 0, 60_000), 3, Duration::from_secs(10));
    let mut bodies: Vec<String> = back.iter().map(|(m, _)| m.body.clone()).collect();
    bodies.extend(r.msgs.iter().map(|m| m.body.clone()));
    bodies.sort();
    assert_eq!(
        bodies,
        ["k3", "k4", "k5"],
        "exactly the unacknowledged ones, after the crash"
    );
    assert!(back.iter().all(|(m, _)| m.reconsume == 1));
    std::thread::sleep(Duration::from_millis(300));
    assert!(Pop::new("KT", "GK", 0, 60_000).run(&mut c).msgs.is_empty());
    // And once more, after a clean stop (checkpoint) and a restart.
    b.stop();
    b.spawn();
    let mut c = Client::connect(&b.addr());
    assert!(
        Pop::new("KT", "GK", 0, 60_000).run(&mut c).msgs.is_empty(),
        "in-flight leases (60 s) or acks lost over a checkpointed restart"
    );
}

#[test]
fn bad_pop_requests_get_clear_errors_and_assignment_follows_the_mode() {
    let dir = common::test_dir();
    let b = start(dir.path());
    b.create_topic("BT", 4);
    let mut c = Client::connect(&b.addr());
    let mut p = Pop::new("BT", "G", 0, 5000);
    p.max = 33;
    let r = p.run(&mut c);
    assert_eq!(r.code, response::INVALID_PARAMETER);
    assert!(r.remark.contains("maxMsgNums"), "{}", r.remark);
    let r = Pop::new("BT", "G", 0, 10).run(&mut c);
    assert_eq!(r.code, response::INVALID_PARAMETER);
    assert!(r.remark.contains("invisibleTime"), "{}", r.remark);
    let r = Pop::new("NoSuchTopic", "G", 0, 5000).run(&mut c);
    assert_eq!(r.code, response::TOPIC_NOT_EXIST, "{}", r.remark);
    let r = Pop::new("BT", "G", 7, 5000).run(&mut c);
    assert_eq!(r.code, response::INVALID_PARAMETER, "{}", r.remark);
    let r = ack(
        &mut c,
        "BT",
        "G",
        "garbage",
        &Msg {
            queue: 0,
            offset: 0,
            reconsume: 0,
            body: String::new(),
        },
    );
    assert_ne!(r.code, response::SUCCESS);
    let mut cmd = req(request::BATCH_ACK_MESSAGE, &[]);
    cmd.body = bytes::Bytes::from_static(b"{not json");
    assert_eq!(c.call(cmd).code, response::INVALID_PARAMETER);

    // QUERY_ASSIGNMENT: PULL by default (allocated queues), POP once set.
    let hb = serde_json::json!({"clientID": "cid-1", "consumerDataSet": [{"groupName": "GQ",
        "consumeType": "CONSUME_PASSIVELY", "messageModel": "CLUSTERING", "consumeFromWhere": "CONSUME_FROM_LAST_OFFSET",
        "subscriptionDataSet": [{"topic": "BT", "subString": "*", "tagsSet": [], "codeSet": [], "subVersion": 1,
        "expressionType": "TAG"}], "unitMode": false}], "producerDataSet": []});
    let mut cmd = req(request::HEART_BEAT, &[]);
    cmd.body = bytes::Bytes::from(hb.to_string().into_bytes());
    assert_eq!(c.call(cmd).code, response::SUCCESS);
    let query = |c: &mut Client| {
        let mut cmd = req(request::QUERY_ASSIGNMENT, &[]);
        cmd.body = bytes::Bytes::from(
            serde_json::json!({"topic": "BT", "consumerGroup": "GQ", "clientId": "cid-1",
                "strategyName": "AVG", "messageModel": "CLUSTERING"})
            .to_string()
            .into_bytes(),
        );
        let r = c.call(cmd);
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
        let mut out: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
        for a in v["messageQueueAssignments"].as_array().expect("assignments") {
            out.entry(a["messageQueue"]["brokerName"].as_str().unwrap_or("").to_string())
                .or_default()
                .push((
                    a["messageQueue"]["queueId"].as_i64().unwrap_or(-9),
                    a["mode"].as_str().unwrap_or("").to_string(),
                ));
        }
        out
    };
    let pull = query(&mut c);
    assert_eq!(pull.len(), 2, "both shard entries: {pull:?}");
    assert!(pull.values().flatten().all(|(q, m)| *q >= 0 && m == "PULL"), "{pull:?}");
    assert_eq!(
        pull.values().map(Vec::len).sum::<usize>(),
        4,
        "one consumer gets all 4 queues"
    );
    let mut cmd = req(request::SET_MESSAGE_REQUEST_MODE, &[]);
    cmd.body = bytes::Bytes::from(
        r#"{"topic":"BT","consumerGroup":"GQ","mode":"POP","popShareQueueNum":0}"#
            .as_bytes()
            .to_vec(),
    );
    let r = c.call(cmd);
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let popm = query(&mut c);
    assert_eq!(popm.len(), 2);
    assert!(popm.values().all(|v| v == &vec![(-1, "POP".to_string())]), "{popm:?}");
}
