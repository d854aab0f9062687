//! Finding messages on the real `shardmq serve` (2 shards): QUERY_MESSAGE
//! by key and by message id across shards, its errors, `shardmq admin
//! message by-key|by-id|show` (with who consumed the message), and the
//! key index rebuilt from the CommitLog after kill -9.

mod common;

use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{decode, req, send_v2, Broker, Client};
use serde_json::Value;
use shardmq::protocol::codes::{request, response};

const TOPIC: &str = "Orders";

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as i64
}

fn query(c: &mut Client, topic: &str, key: &str, max: &str, unique: bool) -> shardmq::protocol::RemotingCommand {
    let mut cmd = req(
        request::QUERY_MESSAGE,
        &[
            ("topic", topic.into()),
            ("key", key.into()),
            ("maxNum", max.into()),
            ("beginTimestamp", "0".into()),
            ("endTimestamp", i64::MAX.to_string()),
        ],
    );
    if unique {
        cmd.ext_fields.insert_display("_UNIQUE_KEY_QUERY", "true");
    }
    c.call(cmd)
}

/// Bodies QUERY_MESSAGE finds (none: empty), checking the answer's code.
fn bodies(c: &mut Client, key: &str, max: &str, unique: bool) -> Vec<String> {
    let r = query(c, TOPIC, key, max, unique);
    match r.code {
        response::SUCCESS => decode(&r.body).into_iter().map(|(_, b, _)| b).collect(),
        response::QUERY_NOT_FOUND => Vec::new(),
        other => panic!("QUERY_MESSAGE {key}: code {other} {:?}", r.remark),
    }
}

fn admin(b: &Broker, args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_shardmq"))
        .args(["admin", "--json", "--timeout", "15", "--namesrv", &b.namesrv_addr()])
        .args(args)
        .output()
        .expect("run shardmq admin");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "admin {args:?} failed: {stdout}{stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("admin {args:?}: {e}: {stdout}"))
}

fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn messages_are_found_by_key_and_id_on_every_shard_and_after_kill9() {
    let dir = common::test_dir();
    let mut b = Broker::start(dir.path(), 2, &["flushDiskType=SYNC_FLUSH", "traceBrokerEvents=true"]);
    b.create_topic(TOPIC, 4);
    let mut c = Client::connect(&b.addr());
    let mut offset_ids = Vec::new();
    for i in 0..40 {
        let props = format!(
            "KEYS\x01order-{} id{i}\x02UNIQ_KEY\x01UK{i:04}\x02TAGS\x01t\x02",
            i % 10
        );
        let r = c.call(send_v2(TOPIC, (i % 4) as i64, &format!("body-{i}"), props));
        assert_eq!(r.code, response::SUCCESS, "send {i}: {:?}", r.remark);
        offset_ids.push(r.ext_str("msgId").expect("msgId").to_owned());
    }

    // By key: the 4 messages of order-3 (queues 3 of 4, on both shards),
    // newest first; maxNum limits; other keys, topics and ids do not match.
    assert_eq!(
        bodies(&mut c, "order-3", "64", false),
        ["body-33", "body-23", "body-13", "body-3"]
    );
    assert_eq!(bodies(&mut c, "order-3", "2", false), ["body-33", "body-23"]);
    assert_eq!(bodies(&mut c, "id17", "64", false), ["body-17"]);
    assert_eq!(bodies(&mut c, "UK0017", "64", true), ["body-17"]);
    assert!(bodies(&mut c, "order-77", "64", false).is_empty());
    let r = query(&mut c, "Other", "order-3", "64", false);
    assert_eq!(r.code, response::QUERY_NOT_FOUND, "{:?}", r.remark);
    // Both shards answered: order-0..3 live on queues 0..3, spread over them.
    let mut from_queues: Vec<u32> = (0..4)
        .flat_map(|k| {
            let r = query(&mut c, TOPIC, &format!("order-{k}"), "64", false);
            assert_eq!(r.code, response::SUCCESS);
            shardmq::admin::message::decode_records(&r.body).expect("records")
        })
        .map(|m| m.queue_id)
        .collect();
    from_queues.sort();
    from_queues.dedup();
    assert_eq!(from_queues, [0, 1, 2, 3]);
    // A time range after the messages finds nothing.
    let mut late = req(
        request::QUERY_MESSAGE,
        &[
            ("topic", TOPIC.into()),
            ("key", "order-3".into()),
            ("maxNum", "64".into()),
            ("beginTimestamp", (now_ms() + 3_600_000).to_string()),
            ("endTimestamp", i64::MAX.to_string()),
        ],
    );
    assert_eq!(c.call(late.clone()).code, response::QUERY_NOT_FOUND);
    // Bad requests get INVALID_PARAMETER with a remark, never a hang.
    late.ext_fields.remove("maxNum");
    let r = c.call(late);
    assert_eq!(r.code, response::INVALID_PARAMETER);
    assert!(r.remark.unwrap_or_default().contains("maxNum"));
    let r = query(&mut c, TOPIC, "order-3", "0", false);
    assert_eq!(r.code, response::INVALID_PARAMETER);

    // The admin tool.
    let found = admin(&b, &["message", "by-key", TOPIC, "order-5"]);
    let ids: Vec<&str> = found
        .as_array()
        .expect("array")
        .iter()
        .map(|m| m["msgId"].as_str().expect("msgId"))
        .collect();
    assert_eq!(ids, ["UK0035", "UK0025", "UK0015", "UK0005"]);
    let one = admin(&b, &["message", "by-id", "UK0012", "--topic", TOPIC]);
    assert_eq!(one[0]["keys"], "order-2 id12");
    assert_eq!(one[0]["offsetMsgId"], offset_ids[12].as_str());
    // An offset id needs no topic.
    let by_offset = admin(&b, &["message", "by-id", &offset_ids[21]]);
    assert_eq!(by_offset[0]["msgId"], "UK0021");

    // Who consumed it: g-done committed past message 12 (queue 0, offset
    // 3), g-behind not.
    for (group, offset) in [("g-done", 4), ("g-behind", 3)] {
        let r = c.call(req(
            request::UPDATE_CONSUMER_OFFSET,
            &[
                ("consumerGroup", group.into()),
                ("topic", TOPIC.into()),
                ("queueId", "0".into()),
                ("commitOffset", offset.to_string()),
            ],
        ));
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    }
    let shown = admin(&b, &["message", "show", "UK0012", "--topic", TOPIC]);
    let m = &shown[0];
    assert_eq!((m["queueId"].as_u64(), m["queueOffset"].as_u64()), (Some(0), Some(3)));
    assert_eq!(m["properties"]["TAGS"], "t");
    assert_eq!(m["bodyPreview"], "body-12");
    let consumed: Vec<(String, bool)> = m["consumedBy"]
        .as_array()
        .expect("consumedBy")
        .iter()
        .map(|g| {
            (
                g["group"].as_str().unwrap_or("").to_owned(),
                g["consumed"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    assert_eq!(consumed, [("g-behind".to_owned(), false), ("g-done".to_owned(), true)]);

    // traceBrokerEvents: the broker's own records of message 12 — stored,
    // pulled by g-done, sent back for a retry — in one timeline.
    let r = c.call(common::pull_req(TOPIC, 0, 3, false, "*"));
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let phys = shardmq::protocol::message_id::OffsetMessageId::decode(&offset_ids[12])
        .expect("offset id")
        .commit_log_offset;
    let r = c.call(req(
        request::CONSUMER_SEND_MSG_BACK,
        &[
            ("offset", phys.to_string()),
            ("group", "cg".into()),
            ("delayLevel", "0".into()),
            ("originMsgId", "UK0012".into()),
        ],
    ));
    assert_eq!(r.code, response::SUCCESS, "send back: {:?}", r.remark);
    let mut kinds = Vec::new();
    eventually("the broker's trace records of UK0012", || {
        let t = admin(&b, &["message", "trace", "UK0012"]);
        kinds = t[0]["events"]
            .as_array()
            .map(|e| e.iter().map(|x| x["type"].as_str().unwrap_or("").to_owned()).collect())
            .unwrap_or_default();
        ["BrokerStored", "BrokerDelivered", "BrokerSendBack"]
            .iter()
            .all(|k| kinds.iter().any(|x| x == k))
    });
    let t = admin(&b, &["message", "trace", "UK0012"]);
    let ev = t[0]["events"].as_array().expect("events");
    let of = |kind: &str| ev.iter().find(|e| e["type"] == kind).expect(kind);
    assert_eq!(of("BrokerStored")["topic"], TOPIC);
    assert_eq!(
        (
            of("BrokerStored")["queueId"].as_i64(),
            of("BrokerStored")["queueOffset"].as_i64()
        ),
        (Some(0), Some(3))
    );
    assert_eq!(of("BrokerDelivered")["group"], "cg");
    assert_eq!(of("BrokerSendBack")["target"], "%RETRY%cg");
    assert_eq!(t[0]["stored"][0]["offsetMsgId"], offset_ids[12].as_str());

    // kill -9: the index's memtable is gone; the restarted broker indexes
    // the log again and finds everything (and what is sent afterwards).
    drop(c);
    b.kill9();
    b.spawn();
    let mut c = Client::connect(&b.addr());
    eventually("the key index caught up after kill -9", || {
        bodies(&mut c, "order-3", "64", false) == ["body-33", "body-23", "body-13", "body-3"]
    });
    assert_eq!(bodies(&mut c, "UK0039", "64", true), ["body-39"]);
    let props = "KEYS\x01order-3\x02UNIQ_KEY\x01UK0040\x02".to_string();
    assert_eq!(c.call(send_v2(TOPIC, 1, "body-40", props)).code, response::SUCCESS);
    assert_eq!(bodies(&mut c, "order-3", "3", false), ["body-40", "body-33", "body-23"]);
    b.stop();
}

/// traceBrokerEvents records how a transaction ended.
#[test]
fn the_broker_traces_a_transaction_commit_and_rollback() {
    let dir = common::test_dir();
    let mut b = Broker::start(dir.path(), 1, &["traceBrokerEvents=true"]);
    b.create_topic("TX", 1);
    let mut c = Client::connect(&b.addr());
    let mut ids = Vec::new();
    for (body, kind) in [("to-commit", 8), ("to-roll-back", 12)] {
        let mut half = send_v2("TX", 0, body, "TRAN_MSG\x01true\x02PGROUP\x01PG\x02".into());
        half.ext_fields.insert("a", "PG");
        half.ext_fields.insert("f", "4");
        let r = c.call(half);
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
        let uniq = r.ext_str("transactionId").expect("transactionId").to_owned();
        let phys = shardmq::protocol::message_id::OffsetMessageId::decode(r.ext_str("msgId").expect("msgId"))
            .expect("offset id")
            .commit_log_offset;
        let r = c.call(req(
            request::END_TRANSACTION,
            &[
                ("producerGroup", "PG".into()),
                (
                    "tranStateTableOffset",
                    r.ext_str("queueOffset").expect("queueOffset").to_owned(),
                ),
                ("commitLogOffset", phys.to_string()),
                ("commitOrRollback", kind.to_string()),
                ("fromTransactionCheck", "false".into()),
                ("msgId", uniq.clone()),
                ("transactionId", uniq.clone()),
            ],
        ));
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
        ids.push(uniq);
    }
    for (id, how) in ids.iter().zip(["COMMIT", "ROLLBACK"]) {
        let mut last = Value::Null;
        eventually("the transaction's end in the trace", || {
            last = admin(&b, &["message", "trace", id]);
            last[0]["events"]
                .as_array()
                .is_some_and(|e| e.iter().any(|x| x["type"] == "BrokerEndTransaction"))
        });
        let ev = last[0]["events"].as_array().expect("events");
        let end = ev.iter().find(|x| x["type"] == "BrokerEndTransaction").expect("end");
        assert_eq!(
            (end["transactionState"].as_str(), end["group"].as_str()),
            (Some(how), Some("PG"))
        );
        assert_eq!(end["topic"], "TX");
    }
    b.stop();
}
