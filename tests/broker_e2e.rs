//! The real `shardmq` binary over real sockets, driven with the project's
//! own codec: sends, pulls with long polling, the shard-aware port view,
//! bad input, and a kill -9 restart with SYNC_FLUSH.

mod common;

use std::time::{Duration, Instant};

use common::{decode, max_offset, pull_all, pull_req, req, Broker, Client};
use shardmq::protocol::codes::{request, response};
use shardmq::protocol::RemotingCommand;

fn send(c: &mut Client, topic: &str, qid: i32, body: &str, tag: &str) -> RemotingCommand {
    let props = format!("TAGS\u{1}{tag}\u{2}KEYS\u{1}k-{body}\u{2}WAIT\u{1}true\u{2}");
    c.call(common::send_v2(topic, qid.into(), body, props))
}

#[test]
fn send_pull_long_poll_views_bad_input_and_restart() {
    let dir = common::test_dir();
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
    // A message id resolves on the main port and on every shard port.
    let r = send(&mut c, "E2E", 2, "by-id", "TagA");
    let id = shardmq::protocol::OffsetMessageId::decode(r.ext_str("msgId").expect("msgId")).expect("offset id");
    for addr in [b.addr(), b.shard_addr(0), b.shard_addr(1)] {
        let mut v = Client::connect(&addr);
        let r = v.call(req(
            request::VIEW_MESSAGE_BY_ID,
            &[("offset", id.commit_log_offset.to_string())],
        ));
        assert_eq!(r.code, response::SUCCESS, "{addr}: {:?}", r.remark);
        assert_eq!(decode(&r.body)[0].1, "by-id");
    }
    let r = c.call(req(request::VIEW_MESSAGE_BY_ID, &[("offset", "123456789".into())]));
    assert_eq!(r.code, response::SYSTEM_ERROR);
    for q in 0..4 {
        assert_eq!(max_offset(&mut c, "E2E", q), if q == 2 { 11 } else { 10 });
        let got = pull_all(&mut c, "E2E", q, "*");
        let mut want: Vec<String> = (0..10).map(|j| format!("m{}", j * 4 + q)).collect();
        if q == 2 {
            want.push("by-id".into());
        }
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
    assert_eq!(total, 40 + 1 + 1 + 2);

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
    assert!(max_offset(&mut c, "E2E", 0) >= 10, "other connections are unaffected");

    // Per-shard histograms and counters, over the remoting protocol and
    // the Prometheus endpoint.
    let r = c.call(req(shardmq::broker::stats::GET_BROKER_STATS, &[]));
    assert_eq!(r.code, response::SUCCESS);
    let stats: shardmq::metrics::BrokerStats = serde_json::from_slice(&r.body).expect("stats json");
    assert_eq!(stats.shards.len(), 2);
    let sends: u64 = stats
        .shards
        .iter()
        .flat_map(|s| &s.ops)
        .filter(|o| o.op == "send")
        .map(|o| o.count)
        .sum();
    assert!(sends >= 44, "every send is in a histogram: {sends}");
    assert!(stats
        .shards
        .iter()
        .flat_map(|s| &s.ops)
        .any(|o| o.op == "flush" && o.count > 0));
    let (status, text) = common::http_get(b.metrics_port, "/metrics");
    assert!(status.contains("200"), "{status}");
    assert!(
        text.contains("shardmq_latency_seconds_count{shard=\"0\",op=\"send\"}"),
        "{text}"
    );
    assert!(text.contains("shardmq_requests_total{shard="));
    assert!(common::http_get(b.metrics_port, "/nope").0.contains("404"));

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
    assert_eq!(total, 44, "every acknowledged message survives kill -9");
    let r = c.call(req(
        request::QUERY_CONSUMER_OFFSET,
        &[
            ("consumerGroup", "cg".into()),
            ("topic", "E2E".into()),
            ("queueId", "3".into()),
        ],
    ));
    assert_eq!((r.code, r.ext_str("offset")), (response::SUCCESS, Some("7")));
    // The backlog of that group on that queue: everything stored past 7.
    let max3 = max_offset(&mut c, "E2E", 3);
    let r = c.call(req(shardmq::broker::stats::GET_BROKER_STATS, &[]));
    let stats: shardmq::metrics::BrokerStats = serde_json::from_slice(&r.body).expect("stats json");
    let lag = stats
        .lag
        .iter()
        .find(|l| l.group == "cg" && l.topic == "E2E" && l.queue_id == 3)
        .expect("lag entry");
    assert_eq!((lag.broker_offset, lag.consumer_offset, lag.lag()), (max3, 7, max3 - 7));
    b.stop();
}

/// Garbage and truncated frames on many connections: each is closed or
/// answered, the broker stays up and serves everyone else.
#[test]
fn garbage_frames_never_take_the_broker_down() {
    use std::io::Write;
    let dir = common::test_dir();
    let b = Broker::start(dir.path(), 2, &[]);
    let mut seed: u64 = 0x1234_5678_9abc_def0;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..200 {
        let mut c = Client::connect(&b.addr());
        c.stream
            .socket()
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let len = (next() % 300) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        match round % 4 {
            // A plausible prefix with an absurd header length.
            0 if len >= 8 => bytes[..8].copy_from_slice(&[0, 0, 0, 16, 0, 0xFF, 0xFF, 0xFF]),
            // A huge announced frame length.
            1 if len >= 4 => bytes[..4].copy_from_slice(&[0x7F, 0xFF, 0xFF, 0xFF]),
            // A JSON header that is not JSON.
            2 if len >= 8 => {
                let body_len = (len - 4) as u32;
                bytes[..4].copy_from_slice(&body_len.to_be_bytes());
                bytes[4..8].copy_from_slice(&((len - 8) as u32).to_be_bytes());
            }
            _ => {}
        }
        let _ = c.stream.write_all(&bytes);
        let _ = c.recv();
    }
    // Valid JSON header, wrong types everywhere.
    let mut c = Client::connect(&b.addr());
    let r = c.call(req(
        request::PULL_MESSAGE,
        &[("topic", "T".into()), ("queueId", "zero".into())],
    ));
    assert_eq!(r.code, response::INVALID_PARAMETER);
    let r = c.call(req(request::HEART_BEAT, &[]).with_body(b"{not json".to_vec()));
    assert_eq!(r.code, response::SYSTEM_ERROR);
    // A request in the binary (ROCKETMQ) serialization is answered in it.
    let bin = req(
        request::GET_MAX_OFFSET,
        &[("topic", "TBW102".into()), ("queueId", "0".into())],
    )
    .with_serialize_type(shardmq::protocol::SerializeType::RocketMq);
    let r = c.call(bin);
    assert_eq!(r.code, response::SUCCESS);
    assert_eq!(r.serialize_type, shardmq::protocol::SerializeType::RocketMq);
    assert_eq!(max_offset(&mut c, "TBW102", 0), 0);
}

#[test]
fn invalid_configuration_fails_at_start_with_the_key_named() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_shardmq"))
        .args(["serve", "--set", "flushDiskType=SOMETIMES"])
        .output()
        .expect("run shardmq");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("flushDiskType"), "{err}");
}

/// Members of one group that subscribe differently are detected, and the
/// group is reported (stats body, Prometheus gauge) until they agree.
#[test]
fn inconsistent_subscriptions_in_a_group_are_reported() {
    let dir = common::test_dir();
    let b = Broker::start(dir.path(), 2, &[]);
    let heartbeat = |c: &mut Client, client_id: &str, expr: &str| {
        let body = format!(
            r#"{{"clientID":"{client_id}","consumerDataSet":[{{"consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","consumeType":"CONSUME_PASSIVELY","groupName":"G1","messageModel":"CLUSTERING","subscriptionDataSet":[{{"classFilterMode":false,"codeSet":[],"expressionType":"TAG","subString":"{expr}","subVersion":1,"tagsSet":[],"topic":"T1"}}],"unitMode":false}}],"producerDataSet":[]}}"#
        );
        let r = c.call(req(request::HEART_BEAT, &[]).with_body(body.into_bytes()));
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    };
    let inconsistent = |c: &mut Client| -> Vec<String> {
        let r = c.call(req(shardmq::broker::stats::GET_BROKER_STATS, &[]));
        let s: shardmq::metrics::BrokerStats = serde_json::from_slice(&r.body).expect("stats");
        s.inconsistent_groups
    };
    let mut a = Client::connect(&b.addr());
    let mut bb = Client::connect(&b.addr());
    heartbeat(&mut a, "10.0.0.1@a", "TagA");
    heartbeat(&mut bb, "10.0.0.2@b", "TagA");
    assert!(inconsistent(&mut a).is_empty());
    heartbeat(&mut bb, "10.0.0.2@b", "TagB");
    assert_eq!(inconsistent(&mut a), vec!["G1".to_string()]);
    let (_, text) = common::http_get(b.metrics_port, "/metrics");
    assert!(text.contains("shardmq_inconsistent_subscription_groups 1"), "{text}");
    // Consumer list of the group has both members.
    let r = a.call(req(
        request::GET_CONSUMER_LIST_BY_GROUP,
        &[("consumerGroup", "G1".into())],
    ));
    let ids: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    assert_eq!(ids["consumerIdList"].as_array().map(|a| a.len()), Some(2));
    heartbeat(&mut bb, "10.0.0.2@b", "TagA");
    assert!(inconsistent(&mut a).is_empty(), "agreement clears the report");
    // A member leaving by closing its connection leaves the list at once.
    drop(bb);
    std::thread::sleep(Duration::from_millis(300));
    let r = a.call(req(
        request::GET_CONSUMER_LIST_BY_GROUP,
        &[("consumerGroup", "G1".into())],
    ));
    let ids: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    assert_eq!(ids["consumerIdList"], serde_json::json!(["10.0.0.1@a"]));
}

/// A queue keeps one identity whichever view names it: an offset committed
/// through a shard port (entry-local id) is the offset of the global queue
/// after a restart with shardAwareRoutes=false.
#[test]
fn switching_shard_aware_routes_keeps_consumer_offsets() {
    let dir = common::test_dir();
    let mut b = Broker::start(dir.path(), 2, &["flushDiskType=SYNC_FLUSH"]);
    let mut main = Client::connect(&b.addr());
    for i in 0..8 {
        assert_eq!(
            send(&mut main, "Views", i % 4, &format!("v{i}"), "T").code,
            response::SUCCESS
        );
    }
    // Shard 1's local queue 0 is some global queue g.
    let mut s1 = Client::connect(&b.shard_addr(1));
    let r = send(&mut s1, "Views", 0, "via-s1", "T");
    assert_eq!(r.code, response::SUCCESS);
    let r = s1.call(req(
        request::UPDATE_CONSUMER_OFFSET,
        &[
            ("consumerGroup", "gv".into()),
            ("topic", "Views".into()),
            ("queueId", "0".into()),
            ("commitOffset", "2".into()),
        ],
    ));
    assert_eq!(r.code, response::SUCCESS);
    let global: Vec<u32> = (0..4)
        .filter(|q| {
            let r = main.call(req(
                request::QUERY_CONSUMER_OFFSET,
                &[
                    ("consumerGroup", "gv".into()),
                    ("topic", "Views".into()),
                    ("queueId", q.to_string()),
                    ("setZeroIfNotFound", "false".into()),
                ],
            ));
            r.code == response::SUCCESS && r.ext_str("offset") == Some("2")
        })
        .collect();
    assert_eq!(
        global.len(),
        1,
        "exactly one global queue carries the offset: {global:?}"
    );
    b.stop();
    b.extra.push("shardAwareRoutes=false".into());
    b.spawn();
    let mut main = Client::connect(&b.addr());
    let r = main.call(req(
        request::QUERY_CONSUMER_OFFSET,
        &[
            ("consumerGroup", "gv".into()),
            ("topic", "Views".into()),
            ("queueId", global[0].to_string()),
        ],
    ));
    assert_eq!((r.code, r.ext_str("offset")), (response::SUCCESS, Some("2")));
    assert_eq!(
        max_offset(&mut main, "Views", global[0]),
        3,
        "2 from the main port + 1 via shard 1"
    );
    b.stop();
}

/// Shard-to-shard request codes are not reachable from a socket, on the
/// main port or a shard port; the public stats request still is.
#[test]
fn internal_request_codes_are_refused_from_sockets() {
    let dir = common::test_dir();
    let b = Broker::start(dir.path(), 2, &[]);
    for addr in [b.addr(), b.shard_addr(0), b.shard_addr(1)] {
        let mut c = Client::connect(&addr);
        for code in 19002..=19007 {
            let mut cmd = req(code, &[("group", "g".into()), ("topic", "T".into())]);
            cmd.body = bytes::Bytes::from_static(b"[]");
            let r = c.call(cmd);
            assert_eq!(
                r.code,
                response::REQUEST_CODE_NOT_SUPPORTED,
                "code {code} on {addr} answered {} {:?}",
                r.code,
                r.remark
            );
        }
        let r = c.call(req(19001, &[]));
        assert_eq!(r.code, response::SUCCESS, "GET_BROKER_STATS on {addr}: {:?}", r.remark);
    }
}
