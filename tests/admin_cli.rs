//! `shardmq admin` against the real `shardmq serve`: topics, status after
//! sends, consumer progress after commits, reset by time, groups, stats,
//! cluster list, JSON output and the errors of a down broker or an unknown
//! topic.

mod common;

use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{free_port_block, req, Broker, Client};
use serde_json::Value;
use shardmq::protocol::bodies::{ConsumerConnection, JsonBody, KvTable, ResetOffsetBody};
use shardmq::protocol::codes::{request, response};

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn admin_raw(args: &[&str]) -> Out {
    let out = Command::new(env!("CARGO_BIN_EXE_shardmq"))
        .arg("admin")
        .args(["--timeout", "15"])
        .args(args)
        .output()
        .expect("run shardmq admin");
    let o = Out {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        !o.stderr.contains("panicked") && !o.stderr.contains("backtrace"),
        "{args:?} panicked: {}",
        o.stderr
    );
    o
}

/// Runs `shardmq admin --namesrv <b's> ARGS` and expects success.
fn admin(b: &Broker, args: &[&str]) -> String {
    let ns = b.namesrv_addr();
    let mut all = vec!["--namesrv", ns.as_str()];
    all.extend_from_slice(args);
    let o = admin_raw(&all);
    assert!(o.ok, "admin {args:?} failed: {}{}", o.stdout, o.stderr);
    o.stdout
}

fn admin_json(b: &Broker, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let text = admin(b, &all);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("admin {args:?} --json: {e}: {text}"))
}

/// Runs and expects failure; returns stderr.
fn admin_fails(b: &Broker, args: &[&str]) -> String {
    let ns = b.namesrv_addr();
    let mut all = vec!["--namesrv", ns.as_str()];
    all.extend_from_slice(args);
    let o = admin_raw(&all);
    assert!(!o.ok, "admin {args:?} should fail: {}", o.stdout);
    o.stderr
}

/// Retries `f` until it returns true (name server registration is async).
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out waiting for {what}");
}

fn send(c: &mut Client, topic: &str, qid: u32, body: &str) {
    let r = c.call(common::send_v2(topic, qid.into(), body, "WAIT\u{1}true\u{2}".into()));
    assert_eq!(r.code, response::SUCCESS, "send: {:?}", r.remark);
}

fn commit(c: &mut Client, group: &str, topic: &str, qid: u32, offset: u64) {
    let r = c.call(req(
        request::UPDATE_CONSUMER_OFFSET,
        &[
            ("consumerGroup", group.into()),
            ("topic", topic.into()),
            ("queueId", qid.to_string()),
            ("commitOffset", offset.to_string()),
        ],
    ));
    assert_eq!(r.code, response::SUCCESS, "commit: {:?}", r.remark);
}

fn committed(c: &mut Client, group: &str, topic: &str, qid: u32) -> i64 {
    let r = c.call(req(
        request::QUERY_CONSUMER_OFFSET,
        &[
            ("consumerGroup", group.into()),
            ("topic", topic.into()),
            ("queueId", qid.to_string()),
        ],
    ));
    assert_eq!(r.code, response::SUCCESS, "query offset: {:?}", r.remark);
    r.ext_str("offset").and_then(|o| o.parse().ok()).expect("offset")
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// (queueId, field) of every queue in a `--json` answer.
fn per_queue(v: &Value, field: &str) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = v["queues"]
        .as_array()
        .expect("queues")
        .iter()
        .map(|q| (q["queueId"].as_i64().unwrap(), q[field].as_i64().unwrap()))
        .collect();
    out.sort();
    out
}

#[test]
fn admin_commands_against_a_real_broker() {
    let dir = common::test_dir();
    let mut b = Broker::start(dir.path(), 2, &["flushDiskType=SYNC_FLUSH"]);

    // topic create → list → route (one entry per shard).
    let out = admin(&b, &["topic", "create", "AdminT", "--queues", "4"]);
    assert!(out.contains("topic AdminT created"), "{out}");
    let err = admin_fails(&b, &["topic", "create", "AdminT"]);
    assert!(err.contains("already exists"), "{err}");
    eventually("topic list to show AdminT", || {
        admin(&b, &["topic", "list"]).contains("AdminT")
    });
    let topics = admin_json(&b, &["topic", "list"]);
    assert!(topics["topics"].as_array().unwrap().iter().any(|t| t == "AdminT"));
    eventually("route with both shard entries", || {
        let r = admin(&b, &["topic", "route", "AdminT"]);
        r.contains("broker-a-s0") && r.contains("broker-a-s1")
    });
    let route = admin_json(&b, &["topic", "route", "AdminT"]);
    let write: i64 = route["queueDatas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["writeQueueNums"].as_i64().unwrap())
        .sum();
    assert_eq!(write, 4, "{route}");

    // Sends: 10 messages per queue, a time mark, 5 more per queue.
    let mut c = Client::connect(&b.addr());
    for q in 0..4 {
        for i in 0..10 {
            send(&mut c, "AdminT", q, &format!("a{q}-{i}"));
        }
    }
    std::thread::sleep(Duration::from_millis(30));
    let mark = now_ms();
    std::thread::sleep(Duration::from_millis(30));
    for q in 0..4 {
        for i in 0..5 {
            send(&mut c, "AdminT", q, &format!("b{q}-{i}"));
        }
    }

    // topic status: every queue 0..15 with a store time.
    let status = admin_json(&b, &["topic", "status", "AdminT"]);
    assert_eq!(
        per_queue(&status, "maxOffset"),
        (0..4).map(|q| (q, 15)).collect::<Vec<_>>()
    );
    assert_eq!(
        per_queue(&status, "minOffset"),
        (0..4).map(|q| (q, 0)).collect::<Vec<_>>()
    );
    for q in status["queues"].as_array().unwrap() {
        assert_eq!(q["brokerName"], "broker-a", "main-view naming: {q}");
        let t = q["lastUpdateTimestamp"].as_i64().unwrap();
        assert!(t > mark && t <= now_ms(), "{q}");
    }
    let text = admin(&b, &["topic", "status", "AdminT"]);
    assert!(text.contains("broker-a") && text.contains("15"), "{text}");
    // The raw body is in fastjson's object-key form.
    let raw = c.call(req(request::GET_TOPIC_STATS_INFO, &[("topic", "AdminT".into())]));
    assert!(
        raw.body
            .starts_with(br#"{"offsetTable":{{"brokerName":"broker-a","queueId":0,"topic":"AdminT"}:"#),
        "{}",
        String::from_utf8_lossy(&raw.body)
    );

    // consumer-progress after commits: diff per queue and in total.
    for q in 0..4 {
        commit(&mut c, "cgA", "AdminT", q, 3 + q as u64);
    }
    let progress = admin_json(&b, &["consumer-progress", "cgA"]);
    assert_eq!(
        per_queue(&progress, "consumerOffset"),
        (0..4).map(|q| (q, 3 + q)).collect::<Vec<_>>()
    );
    assert_eq!(
        per_queue(&progress, "diff"),
        (0..4).map(|q| (q, 12 - q)).collect::<Vec<_>>()
    );
    assert_eq!(progress["diffTotal"], 42);
    for q in progress["queues"].as_array().unwrap() {
        assert!(q["lastTimestamp"].as_i64().unwrap() > 0, "{q}");
    }
    let text = admin(&b, &["consumer-progress", "cgA", "--topic", "AdminT"]);
    assert!(text.contains("Diff total: 42"), "{text}");

    // offset reset-by-time: to the mark (first message after it: 10),
    // then RFC 3339 at the epoch (0).
    let reset = admin_json(&b, &["offset", "reset-by-time", "cgA", "AdminT", &mark.to_string()]);
    assert_eq!(per_queue(&reset, "offset"), (0..4).map(|q| (q, 10)).collect::<Vec<_>>());
    for q in 0..4 {
        assert_eq!(committed(&mut c, "cgA", "AdminT", q), 10);
    }
    let progress = admin_json(&b, &["consumer-progress", "cgA"]);
    assert_eq!(progress["diffTotal"], 20);
    let text = admin(
        &b,
        &["offset", "reset-by-time", "cgA", "AdminT", "1970-01-01T00:00:00Z"],
    );
    assert!(text.contains("reset"), "{text}");
    assert_eq!(committed(&mut c, "cgA", "AdminT", 2), 0);
    let err = admin_fails(&b, &["offset", "reset-by-time", "cgA", "AdminT", "yesterday"]);
    assert!(err.contains("invalid time"), "{err}");

    // Subscription groups.
    let out = admin(&b, &["group", "create", "cgB", "--retry-max-times", "3"]);
    assert!(out.contains("cgB"), "{out}");
    assert!(admin(&b, &["group", "list"]).contains("cgB"));
    let groups = admin_json(&b, &["group", "list"]);
    let cg_b = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["groupName"] == "cgB")
        .expect("cgB listed");
    assert_eq!(cg_b["retryMaxTimes"], 3);
    assert!(dir.path().join("data/config/subscriptionGroup.json").exists());
    // A known group without offsets has progress rows with consumer offset 0.
    let p = admin_json(&b, &["consumer-progress", "cgB", "--topic", "AdminT"]);
    assert_eq!(p["diffTotal"], 60);

    // stats: a row per shard; subscriptions; cluster list.
    let text = admin(&b, &["stats"]);
    assert!(text.contains("Shards") && text.contains("Latency"), "{text}");
    for k in 0..2 {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("| {k} "))),
            "no row for shard {k}:\n{text}"
        );
    }
    assert!(text.contains("cgA"), "consumer lag lists cgA:\n{text}");
    let stats = admin_json(&b, &["stats"]);
    assert_eq!(stats["shards"].as_array().unwrap().len(), 2);
    assert!(admin(&b, &["subscriptions"]).contains("consistently"));
    assert_eq!(
        admin_json(&b, &["subscriptions"])["inconsistentGroups"],
        serde_json::json!([])
    );
    let text = admin(&b, &["cluster", "list"]);
    assert!(text.contains("broker-a-s0") && text.contains("V5_3_3"), "{text}");
    let cl = admin_json(&b, &["cluster", "list"]);
    assert_eq!(cl["brokers"].as_array().unwrap().len(), 2, "{cl}");

    // An explicit --broker (the main port) works the same.
    let addr = b.addr();
    let st = admin_json(&b, &["--broker", &addr, "topic", "status", "AdminT"]);
    assert_eq!(st["queues"].as_array().unwrap().len(), 4);

    // Unknown topic / group: clear errors, non-zero exit.
    let err = admin_fails(&b, &["topic", "status", "NoSuchTopic"]);
    assert!(err.contains("TOPIC_NOT_EXIST") && err.contains("NoSuchTopic"), "{err}");
    let err = admin_fails(&b, &["topic", "route", "NoSuchTopic"]);
    assert!(err.contains("TOPIC_NOT_EXIST"), "{err}");
    let err = admin_fails(&b, &["consumer-progress", "noSuchGroup"]);
    assert!(err.contains("SUBSCRIPTION_GROUP_NOT_EXIST"), "{err}");
    let err = admin_fails(&b, &["offset", "reset-by-time", "cgA", "NoSuchTopic", "0"]);
    assert!(err.contains("TOPIC_NOT_EXIST"), "{err}");

    // A consumer's heartbeat: its connection is listed, its group config
    // auto-created; runtime info answers a KVTable.
    let mut consumer = Client::connect(&b.addr());
    let hb = serde_json::json!({
        "clientID": "127.0.0.1@admin-test",
        "consumerDataSet": [{
            "groupName": "cgC", "consumeType": "CONSUME_PASSIVELY", "messageModel": "CLUSTERING",
            "consumeFromWhere": "CONSUME_FROM_LAST_OFFSET", "unitMode": false,
            "subscriptionDataSet": [{"topic": "AdminT", "subString": "TagA || TagB", "subVersion": 1, "tagsSet": ["TagA", "TagB"], "codeSet": []}]
        }],
        "producerDataSet": []
    });
    let r = consumer.call(req(request::HEART_BEAT, &[]).with_body(hb.to_string().into_bytes()));
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let r = c.call(req(
        request::GET_CONSUMER_CONNECTION_LIST,
        &[("consumerGroup", "cgC".into())],
    ));
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let cc = ConsumerConnection::decode(&r.body).expect("ConsumerConnection");
    assert_eq!(cc.connection_set.len(), 1, "{cc:?}");
    assert_eq!(cc.connection_set[0].client_id, "127.0.0.1@admin-test");
    assert!(cc.connection_set[0].client_addr.starts_with("127.0.0.1:"));
    assert_eq!(cc.subscription_table["AdminT"].tags_set, ["TagA", "TagB"]);
    let r = c.call(req(
        request::GET_CONSUMER_CONNECTION_LIST,
        &[("consumerGroup", "nobody".into())],
    ));
    assert_eq!(r.code, response::CONSUMER_NOT_ONLINE);
    assert!(admin(&b, &["group", "list"]).contains("cgC"));
    let r = c.call(req(request::GET_BROKER_RUNTIME_INFO, &[]));
    let kv = KvTable::decode(&r.body).expect("KVTable");
    assert_eq!(kv.table["brokerVersionDesc"], "V5_3_3");
    assert!(kv.table["msgPutTotalTodayNow"].parse::<u64>().unwrap() >= 60, "{kv:?}");
    // -1 = the end of every queue.
    let reset = admin_json(&b, &["offset", "reset-by-time", "cgC", "AdminT", "-1"]);
    assert_eq!(per_queue(&reset, "offset"), (0..4).map(|q| (q, 15)).collect::<Vec<_>>());
    // The online consumer is told, with queues named both ways.
    let push = loop {
        let m = consumer.recv().expect("RESET_CONSUMER_CLIENT_OFFSET push");
        if m.code == request::RESET_CONSUMER_CLIENT_OFFSET && !m.is_response() {
            break m;
        }
    };
    assert_eq!(push.ext_str("group"), Some("cgC"));
    let body = ResetOffsetBody::decode(&push.body).expect("ResetOffsetBody");
    assert_eq!(body.offset_table.0.len(), 8, "{body:?}");
    assert!(body.offset_table.0.keys().any(|mq| mq.broker_name == "broker-a-s1"));
    assert!(body.offset_table.0.values().all(|o| *o == 15));

    // Delete: gone from the broker.
    assert!(admin(&b, &["topic", "delete", "AdminT"]).contains("deleted"));
    let err = admin_fails(&b, &["topic", "status", "AdminT"]);
    assert!(err.contains("TOPIC_NOT_EXIST"), "{err}");

    // Subscription groups survive a restart.
    drop((c, consumer));
    b.stop();
    b.spawn();
    let groups = admin(&b, &["group", "list"]);
    assert!(groups.contains("cgB") && groups.contains("cgC"), "{groups}");
}

#[test]
fn down_broker_or_name_server_is_a_one_line_error() {
    let port = free_port_block(0);
    let addr = format!("127.0.0.1:{port}");
    let o = admin_raw(&["--broker", &addr, "topic", "status", "T"]);
    assert!(!o.ok);
    assert_eq!(
        o.stderr.trim_end(),
        format!("shardmq admin: cannot connect to {addr}: Connection refused")
    );
    let o = admin_raw(&["--namesrv", &addr, "topic", "list"]);
    assert!(!o.ok);
    assert!(o.stderr.contains(&format!("cannot connect to {addr}")), "{}", o.stderr);
    // No --broker: the name server is asked first, and it is down.
    let o = admin_raw(&["--namesrv", &addr, "--json", "stats"]);
    assert!(!o.ok && o.stdout.is_empty());
    assert_eq!(o.stderr.lines().count(), 1, "{}", o.stderr);
}
