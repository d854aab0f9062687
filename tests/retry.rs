//! Retries and dead letters through the real binary over real sockets
//! (SYNC_FLUSH, two shards): CONSUMER_SEND_MSG_BACK with level delays,
//! `reconsumeTimes`, `RETRY_TOPIC` / `ORIGIN_MESSAGE_ID`, the DLQ after the
//! maximum, direct sends to `%RETRY%` topics, and bad requests.

mod common;

use std::time::{Duration, Instant};

use common::{pull_req, req, send_v2, Broker, Client};
use shardmq::protocol::codes::{request, response};
use shardmq::protocol::RemotingCommand;

#[derive(Debug, Clone)]
struct Rec {
    phys: u64,
    reconsume: i32,
    store_ts: i64,
    body: String,
    props: String,
}

fn prop<'a>(props: &'a str, key: &str) -> Option<&'a str> {
    props
        .split('\x02')
        .find_map(|p| p.strip_prefix(key)?.strip_prefix('\x01'))
}

fn records(c: &mut Client, topic: &str, qid: u32) -> Vec<Rec> {
    let mut out = Vec::new();
    let mut off = 0;
    loop {
        let r = c.call(pull_req(topic, qid, off, false, "*"));
        if r.code != response::SUCCESS {
            return out;
        }
        let mut at = 0;
        while at < r.body.len() {
            let shardmq::store::record::RecordCheck::Record(v) =
                shardmq::store::record::check_record(&r.body[at..], None, true)
            else {
                panic!("undecodable record");
            };
            out.push(Rec {
                phys: v.physical_offset,
                reconsume: v.reconsume_times,
                store_ts: v.store_timestamp,
                body: String::from_utf8_lossy(v.body).into_owned(),
                props: String::from_utf8_lossy(v.properties).into_owned(),
            });
            at += v.total_size as usize;
            off = v.queue_offset + 1;
        }
    }
}

/// Waits (bounded) until the queue holds `n` records.
fn wait_records(c: &mut Client, topic: &str, n: usize, within: Duration) -> Vec<Rec> {
    let deadline = Instant::now() + within;
    loop {
        let got = records(c, topic, 0);
        if got.len() >= n || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn send_back(c: &mut Client, offset: &str, group: &str, level: i32, max: Option<i32>) -> RemotingCommand {
    let mut fields = vec![
        ("offset", offset.to_string()),
        ("group", group.to_string()),
        ("delayLevel", level.to_string()),
        ("originMsgId", String::new()),
        ("originTopic", "RT".to_string()),
        ("unitMode", "false".to_string()),
    ];
    if let Some(m) = max {
        fields.push(("maxReconsumeTimes", m.to_string()));
    }
    let mut cmd = req(request::CONSUMER_SEND_MSG_BACK, &fields);
    cmd.version = 399;
    c.call(cmd)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn send_back_retries_with_level_delays_then_dead_letters() {
    let dir = common::test_dir();
    // Level 3 = 1 s, 4 = 2 s (3 + reconsumeTimes for the first two retries).
    let levels = "messageDelayLevel=1s 1s 1s 2s 3s 3s 3s 3s 3s 3s 3s 3s 3s 3s 3s 3s 3s 3s";
    let b = Broker::start(dir.path(), 2, &["flushDiskType=SYNC_FLUSH", levels]);
    b.create_topic("RT", 4);
    let mut c = Client::connect(&b.addr());
    let keys = "KEYS\x01order-1\x02TAGS\x01TagA\x02";
    let r = c.call(send_v2("RT", 3, "payload", keys.to_string()));
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let first = records(&mut c, "RT", 3).pop().expect("the sent message");
    let uniq = prop(&first.props, "UNIQ_KEY").expect("UNIQ_KEY").to_string();

    // Retry 1: level 3 (1 s), reconsumeTimes 1.
    let t = now_ms();
    let r = send_back(&mut c, &first.phys.to_string(), "G", 0, Some(2));
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    assert!(records(&mut c, "%RETRY%G", 0).is_empty(), "not before its delay");
    let got = wait_records(&mut c, "%RETRY%G", 1, Duration::from_secs(10));
    assert_eq!(got.len(), 1, "retry 1 arrived");
    let r1 = got[0].clone();
    assert!(
        r1.store_ts >= t + 1000,
        "retry 1 came {} ms early",
        t + 1000 - r1.store_ts
    );
    assert!(
        r1.store_ts <= t + 3000,
        "retry 1 came {} ms late",
        r1.store_ts - t - 1000
    );
    assert_eq!(r1.reconsume, 1);
    assert_eq!(r1.body, "payload");
    assert_eq!(prop(&r1.props, "RETRY_TOPIC"), Some("RT"));
    assert_eq!(
        prop(&r1.props, "UNIQ_KEY"),
        Some(uniq.as_str()),
        "the client's message id is kept"
    );
    assert_eq!(prop(&r1.props, "KEYS"), Some("order-1"));
    assert!(prop(&r1.props, "ORIGIN_MESSAGE_ID").is_some());

    // Retry 2, from the retry topic's record: level 4 (2 s), reconsumeTimes 2.
    let t = now_ms();
    let r = send_back(&mut c, &r1.phys.to_string(), "G", 0, Some(2));
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let got = wait_records(&mut c, "%RETRY%G", 2, Duration::from_secs(10));
    assert_eq!(got.len(), 2, "retry 2 arrived");
    let r2 = got[1].clone();
    assert!(
        r2.store_ts >= t + 2000,
        "retry 2 came {} ms early",
        t + 2000 - r2.store_ts
    );
    assert_eq!(r2.reconsume, 2);
    assert_eq!(prop(&r2.props, "RETRY_TOPIC"), Some("RT"), "the first origin is kept");
    assert_eq!(
        prop(&r2.props, "ORIGIN_MESSAGE_ID"),
        prop(&r1.props, "ORIGIN_MESSAGE_ID"),
        "the first origin id is kept"
    );

    // Third failure: consumed 2 times = max → the DLQ, at once.
    let r = send_back(&mut c, &r2.phys.to_string(), "G", 0, Some(2));
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let dlq = wait_records(&mut c, "%DLQ%G", 1, Duration::from_secs(2));
    assert_eq!(dlq.len(), 1, "dead-lettered at once");
    assert_eq!(dlq[0].reconsume, 3);
    assert_eq!(dlq[0].body, "payload");
    assert_eq!(prop(&dlq[0].props, "UNIQ_KEY"), Some(uniq.as_str()));
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(records(&mut c, "%RETRY%G", 0).len(), 2, "no third retry");

    // delayLevel -1: straight to the DLQ whatever the count.
    let r = send_back(&mut c, &first.phys.to_string(), "G", -1, Some(16));
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    assert_eq!(wait_records(&mut c, "%DLQ%G", 2, Duration::from_secs(2)).len(), 2);

    // The retry and DLQ topics are registered with the name server.
    let mut ns = Client::connect(&b.namesrv_addr());
    for t in ["%RETRY%G", "%DLQ%G"] {
        let r = ns.call(req(request::GET_ROUTEINFO_BY_TOPIC, &[("topic", t.to_string())]));
        assert_eq!(r.code, response::SUCCESS, "route of {t}: {:?}", r.remark);
    }
}

#[test]
fn bad_send_backs_and_direct_retry_sends() {
    let dir = common::test_dir();
    let b = Broker::start(dir.path(), 2, &["flushDiskType=SYNC_FLUSH"]);
    b.create_topic("BT", 2);
    let mut c = Client::connect(&b.addr());
    let r = c.call(send_v2("BT", 0, "m", String::new()));
    assert_eq!(r.code, response::SUCCESS);
    let m = records(&mut c, "BT", 0).pop().expect("message");

    for (offset, why) in [
        ("-1".to_string(), "negative"),
        ("999999999".to_string(), "past the end"),
        (((1u64 << 48) + 5).to_string(), "another shard, nothing there"),
        ((m.phys + 1).to_string(), "inside a record"),
    ] {
        let r = send_back(&mut c, &offset, "G", 0, None);
        assert_eq!(r.code, response::SYSTEM_ERROR, "{why}: {:?}", r.remark);
        assert!(
            r.remark
                .as_deref()
                .unwrap_or("")
                .contains("look message by offset failed"),
            "{why}: {:?}",
            r.remark
        );
    }
    let r = send_back(&mut c, "abc", "G", 0, None);
    assert_eq!(r.code, response::INVALID_PARAMETER, "{:?}", r.remark);
    let r = c.call(req(request::CONSUMER_SEND_MSG_BACK, &[("offset", m.phys.to_string())]));
    assert_eq!(r.code, response::INVALID_PARAMETER, "no group: {:?}", r.remark);

    // Another group's retry message cannot be sent back by G.
    let r = send_back(&mut c, &m.phys.to_string(), "H", 1, None);
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let h = wait_records(&mut c, "%RETRY%H", 1, Duration::from_secs(5));
    assert_eq!(h.len(), 1);
    let r = send_back(&mut c, &h[0].phys.to_string(), "G", 0, None);
    assert_eq!(r.code, response::NO_PERMISSION, "{:?}", r.remark);
    assert!(r.remark.as_deref().unwrap_or("").contains("%RETRY%H"), "{:?}", r.remark);

    // Direct sends to %RETRY%G (the client's fallback): within the maximum
    // they are retried with their DELAY; above it they are dead letters.
    let mut direct = |reconsume: i32, max: i32, body: &str| {
        let mut cmd = send_v2("%RETRY%G", -1, body, "DELAY\x011\x02RETRY_TOPIC\x01BT\x02".into());
        cmd.ext_fields.insert("j", reconsume.to_string());
        cmd.ext_fields.insert("l", max.to_string());
        let r = c.call(cmd);
        assert_eq!(r.code, response::SUCCESS, "{body}: {:?}", r.remark);
    };
    direct(1, 3, "retry-me");
    direct(4, 3, "dead");
    let mut c = Client::connect(&b.addr());
    let dlq = wait_records(&mut c, "%DLQ%G", 1, Duration::from_secs(2));
    assert_eq!(dlq.iter().map(|r| r.body.as_str()).collect::<Vec<_>>(), vec!["dead"]);
    assert_eq!(prop(&dlq[0].props, "DELAY"), None, "no delay in the DLQ");
    let retry = wait_records(&mut c, "%RETRY%G", 1, Duration::from_secs(5));
    assert_eq!(
        retry.iter().map(|r| r.body.as_str()).collect::<Vec<_>>(),
        vec!["retry-me"]
    );
    assert_eq!(retry[0].reconsume, 1);
}

fn admin(b: &Broker, args: &[&str]) -> serde_json::Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_shardmq"))
        .arg("admin")
        .args(["--namesrv", &b.namesrv_addr(), "--json"])
        .args(args)
        .output()
        .expect("run shardmq admin");
    assert!(
        out.status.success(),
        "admin {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("admin {args:?}: {e}"))
}

#[test]
fn admin_lists_and_resends_dead_letters_and_shows_the_schedule() {
    let dir = common::test_dir();
    let b = Broker::start(dir.path(), 2, &["flushDiskType=SYNC_FLUSH"]);
    b.create_topic("AT", 2);
    let mut c = Client::connect(&b.addr());
    for (i, key) in ["k1", "k2", "k3"].iter().enumerate() {
        let r = c.call(send_v2("AT", 0, &format!("dead-{i}"), format!("KEYS\x01{key}\x02")));
        assert_eq!(r.code, response::SUCCESS);
    }
    for m in records(&mut c, "AT", 0) {
        let r = send_back(&mut c, &m.phys.to_string(), "G", -1, None);
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    }
    let listed = admin(&b, &["dlq", "list", "--group", "G"]);
    let listed = listed.as_array().expect("a list");
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert!(listed.iter().all(|d| d["originTopic"] == "AT"));
    let k2_id = listed.iter().find(|d| d["keys"] == "k2").expect("k2")["msgId"]
        .as_str()
        .unwrap()
        .to_string();
    // By id, then by key: each lands back in AT once, reconsumeTimes 0,
    // same message id.
    let r = admin(&b, &["dlq", "resend", "--group", "G", "--id", &k2_id]);
    assert_eq!(r["resent"].as_array().map(Vec::len), Some(1), "{r}");
    let r = admin(&b, &["dlq", "resend", "--group", "G", "--key", "k3", "--dry-run"]);
    assert_eq!(r["resent"].as_array().map(Vec::len), Some(1), "{r}");
    let r = admin(&b, &["dlq", "resend", "--group", "G", "--key", "k3"]);
    assert_eq!(r["resent"].as_array().map(Vec::len), Some(1), "{r}");
    let back: Vec<Rec> = (0..2).flat_map(|q| records(&mut c, "AT", q)).collect();
    let again: Vec<&Rec> = back
        .iter()
        .filter(|r| prop(&r.props, "RETRY_TOPIC").is_none() && r.reconsume == 0)
        .collect();
    assert_eq!(back.len(), 5, "3 originals + 2 resent: {back:?}");
    let resent: Vec<&&Rec> = again
        .iter()
        .filter(|r| prop(&r.props, "ORIGIN_MESSAGE_ID").is_some())
        .collect();
    assert_eq!(resent.len(), 2, "{back:?}");
    assert!(resent
        .iter()
        .any(|r| prop(&r.props, "UNIQ_KEY") == Some(k2_id.as_str())));
    let no_choice = std::process::Command::new(env!("CARGO_BIN_EXE_shardmq"))
        .args(["admin", "--namesrv", &b.namesrv_addr(), "dlq", "resend", "--group", "G"])
        .output()
        .unwrap();
    assert!(!no_choice.status.success(), "resend without a choice must refuse");

    // The schedule: two delayed messages to AT, due in an hour.
    for _ in 0..2 {
        let r = c.call(send_v2("AT", 1, "later", "TIMER_DELAY_SEC\x013600\x02".into()));
        assert_eq!(r.code, response::SUCCESS);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let s = admin(&b, &["schedule"]);
        if s["topics"]["AT"] == 2 {
            let next = s["nextDueMs"].as_i64().expect("next due");
            assert!(next > now_ms() + 3_500_000, "{s}");
            break;
        }
        assert!(Instant::now() < deadline, "schedule never showed 2 for AT: {s}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A retry scheduled just before a kill -9 arrives once, not early.
#[test]
fn a_scheduled_retry_survives_kill9_once() {
    let dir = common::test_dir();
    let levels = "messageDelayLevel=1s 1s 3s 3s 3s 3s 3s 3s 3s 3s 3s 3s 3s 3s 3s 3s 3s 3s";
    let mut b = Broker::start(dir.path(), 2, &["flushDiskType=SYNC_FLUSH", levels]);
    b.create_topic("KT", 2);
    let mut c = Client::connect(&b.addr());
    for i in 0..5 {
        let r = c.call(send_v2("KT", 1, &format!("k{i}"), String::new()));
        assert_eq!(r.code, response::SUCCESS);
    }
    let t = now_ms();
    for m in records(&mut c, "KT", 1) {
        let r = send_back(&mut c, &m.phys.to_string(), "G", 0, None);
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    }
    drop(c);
    b.kill9();
    b.spawn();
    let mut c = Client::connect(&b.addr());
    let got = wait_records(&mut c, "%RETRY%G", 5, Duration::from_secs(15));
    std::thread::sleep(Duration::from_millis(1500));
    let got_later = records(&mut c, "%RETRY%G", 0);
    assert_eq!(got.len(), 5, "every retry arrived: {got:?}");
    assert_eq!(got_later.len(), 5, "none twice: {got_later:?}");
    let mut bodies: Vec<&str> = got_later.iter().map(|r| r.body.as_str()).collect();
    bodies.sort();
    assert_eq!(bodies, vec!["k0", "k1", "k2", "k3", "k4"]);
    for r in &got_later {
        assert!(
            r.store_ts >= t + 3000,
            "{} came {} ms early",
            r.body,
            t + 3000 - r.store_ts
        );
        assert_eq!(r.reconsume, 1);
    }
}
