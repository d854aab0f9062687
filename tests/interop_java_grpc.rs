//! The RocketMQ 5.x gRPC endpoint with the reference 5.x gRPC client,
//! unmodified: `org.apache.rocketmq:rocketmq-client-java` 5.0.8 (program
//! `grpc` of tests/interop/java5), against the real `shardmq serve` (two
//! shards, SYNC_FLUSH, gRPC on free ports; routes advertise one entry per
//! shard). One program run: a producer sends normal messages, one FIFO
//! message (message group), one delayed by 3 s, and two transactional
//! messages (one committed, one rolled back); a SimpleConsumer receives with
//! a 10 s invisible time, acks all but `nack-me` on its first delivery.

#[path = "interop/harness.rs"]
mod harness;

use std::collections::BTreeMap;

use harness::*;
use serde_json::Value;

fn s(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or("").to_string()
}

fn n(v: &Value, k: &str) -> i64 {
    v[k].as_i64().unwrap_or(-1)
}

#[test]
fn java_grpc_client_sends_receives_acks_and_resolves_transactions() {
    let _g = serial();
    ensure_clients();
    let (access, shard_base) = (free_port(), free_port());
    let broker = Broker::start_with(
        "SYNC_FLUSH",
        &[
            ("grpcListenPort", &access.to_string()),
            ("grpcShardPortBase", &shard_base.to_string()),
        ],
    );
    let topic = "GrpcT";
    broker.create_topic(topic);
    let ctx = "[java gRPC 5.0.8]";
    let events = Client::Java5
        .program("grpc", &broker, topic, "CG_grpc")
        .arg("endpoint", format!("127.0.0.1:{access}"))
        .arg("count", 8)
        .arg("delay-ms", 3000)
        .arg("linger-ms", 14_000)
        .run();
    let sent: BTreeMap<String, String> = events
        .iter()
        .filter(|e| e["event"] == "sent")
        .map(|e| (s(e, "key"), s(e, "id")))
        .collect();
    assert_eq!(sent.len(), 13, "{ctx}: every send answered with a message id: {sent:?}");
    let due = events
        .iter()
        .find(|e| e["event"] == "delay")
        .map(|e| n(e, "dueMs"))
        .expect("delay event");
    let mut got: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for e in events.iter().filter(|e| e["event"] == "received") {
        got.entry(s(e, "key")).or_default().push(e);
    }
    // Everything but the rolled-back transaction, each once (nack-me twice).
    for (key, id) in &sent {
        let d = got.get(key).cloned().unwrap_or_default();
        match key.as_str() {
            "tx-rollback" => assert!(d.is_empty(), "{ctx}: a rolled-back message was delivered: {d:?}"),
            "nack-me" => {
                let attempts: Vec<i64> = d.iter().map(|e| n(e, "attempt")).collect();
                assert_eq!(
                    attempts,
                    [1, 2],
                    "{ctx}: nack-me not acked once must come back once, attempt 2"
                );
                let gap = n(d[1], "recvMs") - n(d[0], "recvMs");
                assert!(
                    (9_900..=20_000).contains(&gap),
                    "{ctx}: nack-me came back {gap} ms after its first delivery (invisible time 10 s)"
                );
            }
            _ => {
                assert_eq!(d.len(), 1, "{ctx}: {key} delivered {} times: {d:?}", d.len());
                assert_eq!(n(d[0], "attempt"), 1);
            }
        }
        for e in &d {
            assert_eq!(&s(e, "id"), id, "{ctx}: {key} received under another message id");
            assert_eq!(s(e, "tag"), "TagA");
        }
    }
    let fifo = &got["fifo"][0];
    assert_eq!(s(fifo, "group"), "group-1", "{ctx}: the message group is kept");
    let delayed = &got["delayed"][0];
    let at = n(delayed, "recvMs");
    assert!(at >= due - 100, "{ctx}: the delayed message came {} ms early", due - at);
    // Receives take turns over the two shard entries, each long-polling 5 s.
    assert!(
        at <= due + 12_000,
        "{ctx}: the delayed message came {} ms late",
        at - due
    );
    assert_eq!(s(got["n3"][0], "body"), "body-3");
    let acks = events.iter().filter(|e| e["event"] == "acked").count();
    assert_eq!(acks, 12, "{ctx}: every ack answered OK: {events:?}");
    assert!(
        !events
            .iter()
            .any(|e| e["event"] == "ack-error" || e["event"] == "receive-error"),
        "{ctx}: client errors: {events:?}"
    );
}
