//! The real `shardmq` binary over real sockets, driven with the project's
//! own codec: sends, pulls with long polling, the shard-aware port view,
//! bad input, and a kill -9 restart with SYNC_FLUSH.

mod common;

use std::time::{Duration, Instant};

use common::{req, Broker, Client};
use shardmq::protocol::codes::{request, response};
use shardmq::protocol::RemotingCommand;
use shardmq::store::record::{check_record, RecordCheck};

fn send(c: &mut Client, topic: &str, qid: i32, body: &str, tag: &str) -> RemotingCommand {
    let props = format!("TAGS\u{1}{tag}\u{2}KEYS\u{1}k-{body}\u{2}WAIT\u{1}true\u{2}");
    let mut r = req(
        request::SEND_MESSAGE_V2,
        &[
            ("a", "pg".into()),
            ("b", topic.into()),
            ("c", "TBW102".into()),
            ("d", "4".into()),
            ("e", qid.to_string()),
            ("f", "0".into()),
            ("g", "1700000000000".into()),
            ("h", "0".into()),
            ("i", props),
        ],
    );
    r.body = bytes::Bytes::from(body.as_bytes().to_vec());
    c.call(r)
}

fn pull_req(topic: &str, qid: u32, offset: u64, suspend: bool, sub: &str) -> RemotingCommand {
    let flag = 0x4 | if suspend { 0x2 } else { 0 };
    req(
        request::PULL_MESSAGE,
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
fn decode(body: &[u8]) -> Vec<(u64, String, String)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < body.len() {
        match check_record(&body[at..], None, true) {
            RecordCheck::Record(v) => {
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

fn max_offset(c: &mut Client, topic: &str, qid: u32) -> u64 {
    let r = c.call(req(
        request::GET_MAX_OFFSET,
        &[("topic", topic.into()), ("queueId", qid.to_string())],
    ));
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    r.ext_str("offset").and_then(|o| o.parse().ok()).expect("offset")
}

fn pull_all(c: &mut Client, topic: &str, qid: u32, sub: &str) -> Vec<(u64, String, String)> {
    let mut out = Vec::new();
    let mut off = 0;
    loop {
        let r = c.call(pull_req(topic, qid, off, false, sub));
        match r.code {
            response::SUCCESS => {
                out.extend(decode(&r.body));
                off = r.ext_str("nextBeginOffset").and_then(|o| o.parse().ok()).expect("next");
            }
            response::PULL_RETRY_IMMEDIATELY => {
                off = r.ext_str("nextBeginOffset").and_then(|o| o.parse().ok()).expect("next");
            }
            response::PULL_NOT_FOUND => return out,
            other => panic!("pull {topic}/{qid}@{off}: code {other} {:?}", r.remark),
        }
    }
}

#[test]
fn send_pull_long_poll_views_bad_input_and_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut b = Broker::start(dir.path(), 2, &["flushDiskType=SYNC_FLUSH"]);
    let mut c = Client::connect(&b.addr());

    // Auto-created topic, explicit queues, tags.
    for i in 0..40 {
        let tag = if i % 2 == 0 { "TagA" } else { "TagB" };
        let r = send(&mut c, "E2E", i % 4, &format!("m{i}"), tag);
        assert_eq!(r.code, response::SUCCESS, "send {i}: {:?}", r.remark);
        assert_eq!(r.ext_str("queueId"), Some(&*(i % 4).to_string()));
        assert_eq!(r.ext_str("queueOffset"), Some(&*(i / 4).to_string()));
        assert_eq!(r.ext_str("msgId").map(str::len), Some(32));
        assert!(r.ext_str("MSG_REGION").is_some());
    }
    for q in 0..4 {
        assert_eq!(max_offset(&mut c, "E2E", q), 10);
        let got = pull_all(&mut c, "E2E", q, "*");
        let want: Vec<String> = (0..10).map(|j| format!("m{}", j * 4 + q)).collect();
        assert_eq!(got.iter().map(|g| g.1.clone()).collect::<Vec<_>>(), want);
        assert!(got.iter().enumerate().all(|(i, g)| g.0 == i as u64));
        assert!(
            got[0].2.contains("UNIQ_KEY\u{1}"),
            "broker must add UNIQ_KEY: {:?}",
            got[0].2
        );
        // Tag filter on the broker: queue q only holds one tag.
        let only_b = pull_all(&mut c, "E2E", q, "TagB");
        assert_eq!(only_b.len(), if q % 2 == 1 { 10 } else { 0 });
    }

    // Long polling: a held pull is answered as soon as a message arrives,
    // and it does not block other requests on the same connection.
    let held = c.send(pull_req("E2E", 1, 10, true, "*"));
    let t = Instant::now();
    assert_eq!(
        max_offset(&mut c, "E2E", 1),
        10,
        "a held pull must not block the connection"
    );
    let mut p = Client::connect(&b.addr());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(send(&mut p, "E2E", 1, "late", "TagB").code, response::SUCCESS);
    let r = loop {
        let r = c.recv().expect("held pull answered");
        if r.opaque == held {
            break r;
        }
    };
    assert_eq!(r.code, response::SUCCESS);
    assert_eq!(decode(&r.body)[0].1, "late");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "woken by the message, not the timeout"
    );

    // The shard-aware view: shard k's port numbers its own queues from 0.
    let meta_q: Vec<u32> = (0..4).collect();
    for k in 0..2u16 {
        let mut s = Client::connect(&b.shard_addr(k));
        let r = send(&mut s, "E2E", 0, &format!("via-shard-{k}"), "TagA");
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
        assert_eq!(r.ext_str("queueId"), Some("0"), "replies use the entry's own numbering");
        let r = s.call(req(
            request::GET_MAX_OFFSET,
            &[("topic", "E2E".into()), ("queueId", "2".into())],
        ));
        assert_eq!(
            r.code,
            response::INVALID_PARAMETER,
            "shard {k} owns two of the four queues"
        );
    }
    let total: usize = meta_q.iter().map(|q| pull_all(&mut c, "E2E", *q, "*").len()).sum();
    assert_eq!(total, 40 + 1 + 2);

    // Unknown code, oneway, bad header values.
    let r = c.call(req(9999, &[]));
    assert_eq!(r.code, response::REQUEST_CODE_NOT_SUPPORTED);
    assert!(r.remark.unwrap_or_default().contains("9999"));
    let mut oneway = req(
        request::UPDATE_CONSUMER_OFFSET,
        &[("consumerGroup", "cg".into()), ("topic", "E2E".into())],
    );
    oneway = oneway.with_oneway();
    c.send(oneway); // missing queueId: still no reply for a oneway request
    let r = c.call(req(
        request::GET_MAX_OFFSET,
        &[("topic", "E2E".into()), ("queueId", "x".into())],
    ));
    assert_eq!(r.code, response::INVALID_PARAMETER);
    let r = send(&mut c, "bad topic!", 0, "x", "t");
    assert_eq!(r.code, response::INVALID_PARAMETER);

    // A broken frame closes that connection only.
    let mut bad = Client::connect(&b.addr());
    use std::io::Write;
    bad.stream
        .write_all(&[0, 0, 0, 8, 7, 0, 0, 1, 0, 0, 0, 0])
        .expect("write");
    assert!(bad.recv().is_none(), "broken frame must close the connection");
    assert_eq!(max_offset(&mut c, "E2E", 0), 11, "other connections are unaffected");

    // Committed offsets and messages survive kill -9 (SYNC_FLUSH).
    let r = c.call(req(
        request::UPDATE_CONSUMER_OFFSET,
        &[
            ("consumerGroup", "cg".into()),
            ("topic", "E2E".into()),
            ("queueId", "3".into()),
            ("commitOffset", "7".into()),
        ],
    ));
    assert_eq!(r.code, response::SUCCESS);
    std::thread::sleep(Duration::from_millis(5500)); // offsets persist every 5 s
    b.kill9();
    b.spawn();
    let mut c = Client::connect(&b.addr());
    let total: usize = (0..4).map(|q| pull_all(&mut c, "E2E", q, "*").len()).sum();
    assert_eq!(total, 43, "every acknowledged message survives kill -9");
    let r = c.call(req(
        request::QUERY_CONSUMER_OFFSET,
        &[
            ("consumerGroup", "cg".into()),
            ("topic", "E2E".into()),
            ("queueId", "3".into()),
        ],
    ));
    assert_eq!((r.code, r.ext_str("offset")), (response::SUCCESS, Some("7")));
    b.stop();
}
