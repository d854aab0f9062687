//! Delayed and scheduled delivery through the real binary (SYNC_FLUSH, two
//! shards): delay levels, TIMER_* and `__STARTDELIVERTIME` properties;
//! never early, each exactly once, across kill -9; bad values refused.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{pull_all, send_v2, Broker, Client};
use shardmq::protocol::codes::response;

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

fn props(pairs: &[(&str, String)]) -> String {
    pairs.iter().map(|(k, v)| format!("{k}\x01{v}\x02")).collect()
}

/// Every record of a queue: (body, store timestamp, properties).
fn stored(c: &mut Client, topic: &str, qid: u32) -> Vec<(String, i64, String)> {
    let r = pull_all(c, topic, qid, "*");
    // pull_all decodes (offset, body, props); the store time is re-read
    // from the raw records below.
    let mut out = Vec::new();
    let mut off = 0;
    while out.len() < r.len() {
        let resp = c.call(common::pull_req(topic, qid, off, false, "*"));
        assert_eq!(resp.code, response::SUCCESS, "{:?}", resp.remark);
        let mut at = 0;
        while at < resp.body.len() {
            match shardmq::store::record::check_record(&resp.body[at..], None, true) {
                shardmq::store::record::RecordCheck::Record(v) => {
                    out.push((
                        String::from_utf8_lossy(v.body).into_owned(),
                        v.store_timestamp,
                        String::from_utf8_lossy(v.properties).into_owned(),
                    ));
                    at += v.total_size as usize;
                    off = v.queue_offset + 1;
                }
                other => panic!("undecodable record: {other:?}"),
            }
        }
    }
    out
}

fn all_stored(c: &mut Client, topic: &str, queues: u32) -> Vec<(String, i64, String)> {
    (0..queues).flat_map(|q| stored(c, topic, q)).collect()
}

#[test]
fn delayed_messages_arrive_on_time_exactly_once_across_kill9() {
    let dir = common::test_dir();
    let levels = "messageDelayLevel=1s 2s 3s 4s 5s 6s 7s 8s 9s 10s 11s 12s 13s 14s 15s 16s 17s 18s";
    let mut b = Broker::start(dir.path(), 2, &["flushDiskType=SYNC_FLUSH", levels]);
    b.create_topic("DLY", 4);
    let mut c = Client::connect(&b.addr());

    // body → due time (ms) as the sender computed it (a lower bound of the
    // broker's: the broker's clock read comes later).
    let mut due = BTreeMap::new();
    let t0 = now_ms();
    for i in 0..40u32 {
        let (body, p, d) = match i % 5 {
            0 => (format!("level2-{i}"), props(&[("DELAY", "2".into())]), 2000),
            1 => (
                format!("delayms-{i}"),
                props(&[("TIMER_DELAY_MS", "2500".into())]),
                2500,
            ),
            2 => {
                let at = now_ms() + 3000;
                (
                    format!("deliverms-{i}"),
                    props(&[("TIMER_DELIVER_MS", at.to_string())]),
                    3000,
                )
            }
            3 => (format!("delaysec-{i}"), props(&[("TIMER_DELAY_SEC", "7".into())]), 7000),
            _ => {
                let at = now_ms() + 9000;
                (
                    format!("ons-{i}"),
                    props(&[("__STARTDELIVERTIME", at.to_string())]),
                    9000,
                )
            }
        };
        let sent_at = now_ms();
        let r = c.call(send_v2("DLY", (i % 4) as i64, &body, p));
        assert_eq!(r.code, response::SUCCESS, "send {body}: {:?}", r.remark);
        assert_eq!(
            r.ext_str("queueId"),
            Some(&*(i % 4).to_string()),
            "the real queue is reported"
        );
        due.insert(body, sent_at + d);
    }
    // A plain message is visible at once; none of the delayed ones is.
    let r = c.call(send_v2("DLY", 0, "plain", String::new()));
    assert_eq!(r.code, response::SUCCESS);
    let early = all_stored(&mut c, "DLY", 4);
    assert_eq!(
        early.iter().map(|m| m.0.as_str()).collect::<Vec<_>>(),
        vec!["plain"],
        "delayed messages must not be visible before their time"
    );

    // Kill -9 after the 2 s / 2.5 s / 3 s ones are due, before the 7 s / 9 s
    // ones: some were delivered before the crash, some after.
    let wait = Duration::from_millis((t0 + 4500 - now_ms()).max(0) as u64);
    std::thread::sleep(wait);
    let before_kill = all_stored(&mut c, "DLY", 4).len();
    assert!(
        before_kill > 1,
        "the messages due after 2-3 s were delivered before the kill (got {before_kill} records)"
    );
    drop(c);
    b.kill9();
    b.spawn();
    let mut c = Client::connect(&b.addr());

    let deadline = Instant::now() + Duration::from_secs(30);
    let got = loop {
        let got = all_stored(&mut c, "DLY", 4);
        if got.len() > due.len() || Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    // Settle: nothing more may arrive (a duplicate would).
    std::thread::sleep(Duration::from_millis(1500));
    let got_later = all_stored(&mut c, "DLY", 4);
    assert_eq!(
        got.len(),
        got_later.len(),
        "records kept arriving after all were delivered"
    );
    let mut seen = BTreeMap::new();
    for (body, store_ts, p) in &got {
        *seen.entry(body.clone()).or_insert(0) += 1;
        if let Some(d) = due.get(body) {
            assert!(
                *store_ts >= *d - 5,
                "{body} delivered {} ms early (stored {store_ts}, due {d})",
                d - store_ts
            );
            assert!(p.contains("REAL_TOPIC\x01DLY"), "{body}: REAL_TOPIC kept");
            assert!(!p.contains("TIMER_OUT_MS"), "{body}: schedule properties removed");
            assert!(!p.contains("DELAY\x01"), "{body}: DELAY removed");
        }
    }
    for body in due.keys() {
        assert_eq!(seen.get(body), Some(&1), "{body} delivered {:?} times", seen.get(body));
    }
    assert_eq!(seen.get("plain"), Some(&1));
    assert_eq!(seen.len(), due.len() + 1, "nothing else was stored");
}

#[test]
fn bad_delays_and_forged_marks_are_refused_or_stripped() {
    let dir = common::test_dir();
    let b = Broker::start(dir.path(), 2, &["flushDiskType=SYNC_FLUSH", "timerMaxDelaySec=3600"]);
    b.create_topic("BAD", 2);
    let mut c = Client::connect(&b.addr());
    for (p, why) in [
        (props(&[("TIMER_DELAY_SEC", "3601".into())]), "above timerMaxDelaySec"),
        (props(&[("TIMER_DELAY_MS", "-5".into())]), "negative"),
        (props(&[("TIMER_DELIVER_MS", "soon".into())]), "not a number"),
        (props(&[("DELAY", "two".into())]), "not a delay level"),
    ] {
        let r = c.call(send_v2("BAD", 0, "x", p));
        assert_eq!(r.code, response::MESSAGE_ILLEGAL, "{why}: {:?}", r.remark);
        assert!(
            r.remark.as_deref().unwrap_or("").contains("property"),
            "{why}: {:?}",
            r.remark
        );
    }
    // A time in the past is delivered at once, like RocketMQ.
    let r = c.call(send_v2("BAD", 0, "past", props(&[("TIMER_DELIVER_MS", "1000".into())])));
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    // A client cannot plant the timer's mark on its message.
    let r = c.call(send_v2("BAD", 1, "forged", props(&[("__SMQ_MARK", "0:0".into())])));
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let got = all_stored(&mut c, "BAD", 2);
    let bodies: Vec<&str> = got.iter().map(|m| m.0.as_str()).collect();
    assert_eq!(bodies, vec!["past", "forged"]);
    assert!(
        !got[1].2.contains("__SMQ_MARK"),
        "the forged mark was stored: {:?}",
        got[1].2
    );
    // Scheduled messages cannot be batched (the Java client refuses too).
    let mut batch = bytes::BytesMut::new();
    for p in [String::new(), props(&[("DELAY", "1".into())])] {
        shardmq::protocol::batch::encode_batch_entry(0, b"batched", &p, &mut batch).unwrap();
    }
    let mut cmd = send_v2("BAD", 0, "", String::new());
    cmd.code = shardmq::protocol::codes::request::SEND_BATCH_MESSAGE;
    cmd.ext_fields.insert("m", "true");
    cmd.body = batch.freeze();
    let r = c.call(cmd);
    assert_eq!(r.code, response::MESSAGE_ILLEGAL, "{:?}", r.remark);
    assert!(r.remark.as_deref().unwrap_or("").contains("batch"), "{:?}", r.remark);
}
