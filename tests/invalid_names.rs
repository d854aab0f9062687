//! Names are checked where they enter, against the real binary: topics in
//! sends and topic creation, and a group in every request that carries
//! one (header or body) — refused with INVALID_PARAMETER and a remark
//! naming the group and the rule (`^[%|a-zA-Z0-9_-]+$`, at most 120
//! characters so that `%RETRY%<group>` fits a topic name).

mod common;

use common::{req, Broker, Client};
use shardmq::protocol::codes::{request, response};
use shardmq::protocol::RemotingCommand;

const RULE: &str = "^[%|a-zA-Z0-9_-]+$";

/// Names are checked where they enter: a group with a path in it, a topic
/// with a space, a retry topic too long to be stored.
#[test]
fn invalid_names_are_refused_with_invalid_parameter() {
    let dir = common::test_dir();
    let b = Broker::start(dir.path(), 2, &[]);
    let mut c = Client::connect(&b.addr());
    let create = |topic: &str| {
        req(
            request::UPDATE_AND_CREATE_TOPIC,
            &[
                ("topic", topic.into()),
                ("readQueueNums", "1".into()),
                ("writeQueueNums", "1".into()),
                ("perm", "6".into()),
            ],
        )
    };
    assert_eq!(c.call(create("Named")).code, response::SUCCESS);
    let long_retry = format!("%RETRY%{}", "g".repeat(200));
    for bad in ["bad topic", long_retry.as_str()] {
        let r = c.call(create(bad));
        assert_ne!(r.code, response::SUCCESS, "created topic {bad:?}");
    }
    for (code, group) in [
        (request::UPDATE_CONSUMER_OFFSET, "../../g"),
        (request::QUERY_CONSUMER_OFFSET, "../../g"),
        (request::UPDATE_CONSUMER_OFFSET, "g@x"),
    ] {
        let r = c.call(req(
            code,
            &[
                ("consumerGroup", group.into()),
                ("topic", "Named".into()),
                ("queueId", "0".into()),
                ("commitOffset", "1".into()),
            ],
        ));
        assert_eq!(
            r.code,
            response::INVALID_PARAMETER,
            "code {code} group {group:?}: {:?}",
            r.remark
        );
        assert!(r.remark.is_some_and(|m| m.contains("not valid")));
    }
    let topics = std::fs::read_to_string(dir.path().join("data/config/topics.json")).expect("topics.json");
    assert!(
        !topics.contains("%RETRY%ggg"),
        "an unstorable retry topic was persisted"
    );
}

/// Asserts `r` is INVALID_PARAMETER naming `group` and the rule.
fn assert_refused(what: &str, group: &str, r: &RemotingCommand) {
    let remark = r.remark.clone().unwrap_or_default();
    assert_eq!(r.code, response::INVALID_PARAMETER, "{what}: {remark}");
    assert!(
        remark.contains(&format!("{group:?}")) && remark.contains(RULE),
        "{what}: the remark does not name the group {group:?} and the rule: {remark}"
    );
}

fn with_body(code: i32, fields: &[(&str, String)], body: serde_json::Value) -> RemotingCommand {
    req(code, fields).with_body(body.to_string().into_bytes())
}

/// One probe per request code that carries a group, each with a group
/// the rule refuses (a space, a path, too long, empty); a valid group
/// in the same request still works.
#[test]
fn every_request_carrying_a_group_refuses_an_invalid_one() {
    let dir = common::test_dir();
    let b = Broker::start(dir.path(), 2, &[]);
    b.create_topic("Named", 2);
    let mut c = Client::connect(&b.addr());
    let long = "g".repeat(121);
    let heartbeat = |consumer: &str, producer: &str| {
        with_body(
            request::HEART_BEAT,
            &[],
            serde_json::json!({
                "clientID": "127.0.0.1@probe",
                "producerDataSet": [{"groupName": producer}],
                "consumerDataSet": [{"groupName": consumer, "consumeType": "CONSUME_PASSIVELY",
                    "messageModel": "CLUSTERING", "consumeFromWhere": "CONSUME_FROM_LAST_OFFSET",
                    "subscriptionDataSet": [{"topic": "Named", "subString": "*", "subVersion": 1}],
                    "unitMode": false}]
            }),
        )
    };
    let lock = |code: i32, group: &str| {
        with_body(
            code,
            &[],
            serde_json::json!({"consumerGroup": group, "clientId": "127.0.0.1@probe",
                "mqSet": [{"topic": "Named", "brokerName": "broker-a", "queueId": 0}]}),
        )
    };
    let header = |code: i32, key: &str, group: &str| {
        req(
            code,
            &[
                (key, group.to_string()),
                ("topic", "Named".into()),
                ("timestamp", "0".into()),
                ("isForce", "true".into()),
                ("clientID", "127.0.0.1@probe".into()),
            ],
        )
    };
    let probes: Vec<(&str, &str, RemotingCommand)> = vec![
        ("HEART_BEAT consumer", "bad group", heartbeat("bad group", "pg")),
        ("HEART_BEAT producer", "p/../g", heartbeat("cg", "p/../g")),
        ("LOCK_BATCH_MQ", "../../g", lock(request::LOCK_BATCH_MQ, "../../g")),
        ("UNLOCK_BATCH_MQ", &long, lock(request::UNLOCK_BATCH_MQ, &long)),
        (
            "GET_CONSUMER_LIST_BY_GROUP",
            "g@x",
            header(request::GET_CONSUMER_LIST_BY_GROUP, "consumerGroup", "g@x"),
        ),
        (
            "GET_CONSUMER_CONNECTION_LIST",
            "g x",
            header(request::GET_CONSUMER_CONNECTION_LIST, "consumerGroup", "g x"),
        ),
        (
            "GET_CONSUME_STATS",
            &long,
            header(request::GET_CONSUME_STATS, "consumerGroup", &long),
        ),
        (
            "INVOKE_BROKER_TO_RESET_OFFSET",
            "g.x",
            header(request::INVOKE_BROKER_TO_RESET_OFFSET, "group", "g.x"),
        ),
        (
            "UNREGISTER_CLIENT consumer",
            "c:g",
            header(request::UNREGISTER_CLIENT, "consumerGroup", "c:g"),
        ),
        (
            "UNREGISTER_CLIENT producer",
            "p g",
            header(request::UNREGISTER_CLIENT, "producerGroup", "p g"),
        ),
    ];
    for (what, group, cmd) in probes {
        assert_refused(what, group, &c.call(cmd));
    }
    // Retry and DLQ topics are valid topic names whose group is not.
    for (topic, group) in [("%RETRY%".to_string(), ""), (format!("%DLQ%{long}"), long.as_str())] {
        for addr in [b.addr(), b.shard_addr(1)] {
            let mut s = Client::connect(&addr);
            let r = s.call(common::send_v2(&topic, 0, "to a bad group", String::new()));
            assert_refused(&format!("send to {topic} on {addr}"), group, &r);
        }
    }
    // The refused heartbeat recorded nothing; a valid one is accepted.
    let r = c.call(header(request::GET_CONSUMER_CONNECTION_LIST, "consumerGroup", "cg"));
    assert_ne!(r.code, response::SUCCESS, "the refused heartbeat registered group cg");
    assert_eq!(c.call(heartbeat("cg", "pg")).code, response::SUCCESS);
    let r = c.call(header(request::GET_CONSUMER_LIST_BY_GROUP, "consumerGroup", "cg"));
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let topics = std::fs::read_to_string(dir.path().join("data/config/topics.json")).expect("topics.json");
    assert!(
        !topics.contains("bad group") && !topics.contains("%DLQ%ggg") && !topics.contains("\"%RETRY%\""),
        "a topic of an invalid group was created: {topics}"
    );
}
