//! Finding messages (issue 12) with the reference Java tools, unmodified:
//! rocketmq-client 4.9.8's `queryMessage` / `viewMessage` (tests/interop/java,
//! program `query`) and mqadmin 4.9.8 (`rocketmq-tools`' MQAdminStartup)
//! `queryMsgByKey` / `queryMsgById`, against the real `shardmq serve` with
//! shard-aware routes (the client asks every shard entry of the route).

#[path = "interop/harness.rs"]
mod harness;

use std::process::{Command, Stdio};

use harness::*;
use serde_json::Value;

const TOPIC: &str = "QueryJava";

/// mqadmin with a RocketMQ home holding the logback config it insists on;
/// (success, stdout + stderr).
fn mqadmin(broker: &Broker, args: &[&str]) -> (bool, String) {
    let home = broker.scratch("mqadmin-home");
    std::fs::create_dir_all(home.join("conf")).expect("conf dir");
    std::fs::write(
        home.join("conf/logback_tools.xml"),
        "<configuration><appender name=\"E\" class=\"ch.qos.logback.core.ConsoleAppender\">\
         <target>System.err</target><encoder><pattern>%d %p %m%n</pattern></encoder></appender>\
         <root level=\"WARN\"><appender-ref ref=\"E\"/></root></configuration>",
    )
    .expect("logback config");
    let out = Command::new("java")
        .arg("-cp")
        .arg(java_jar())
        .arg(format!("-Drocketmq.home.dir={}", home.display()))
        .arg(format!("-Duser.home={}", home.display()))
        .arg("org.apache.rocketmq.tools.command.MQAdminStartup")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run mqadmin");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn event<'a>(events: &'a [Value], kind: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["event"] == kind)
        .unwrap_or_else(|| panic!("no {kind} event in {events:?}"))
}

#[test]
fn java_client_and_mqadmin_find_messages_by_key_and_by_id() {
    let _serial = serial();
    ensure_clients();
    let broker = Broker::start("SYNC_FLUSH");
    broker.create_topic(TOPIC);
    let events = Client::Java
        .program("query", &broker, TOPIC, "PG_query")
        .arg("count", 20)
        .arg("prefix", "q")
        .arg("view", 3)
        .run();
    let sent: Vec<&Value> = events.iter().filter(|e| e["event"] == "sent").collect();
    assert_eq!(sent.len(), 20);

    // queryMessage: each order key finds exactly its 4 messages, once each
    // (the client asks both shard entries; each answers its own).
    for j in 0..5 {
        let key = format!("q-order-{j}");
        let got = events
            .iter()
            .find(|e| e["event"] == "queried" && e["key"] == key.as_str())
            .unwrap_or_else(|| panic!("no result for {key}"));
        let mut want: Vec<String> = (0..20).filter(|i| i % 5 == j).map(|i| format!("q body #{i}")).collect();
        want.sort();
        assert_eq!(got["bodies"], serde_json::json!(want), "queryMessage {key}");
    }
    // viewMessage by the client's message id and by the offset id.
    let uniq = event(&events, "viewed-uniq");
    assert_eq!(uniq["body"], "q body #3");
    assert_eq!(uniq["keys"], "q-order-3 q-k3");
    assert_eq!(uniq["msgId"], sent[3]["msgId"]);
    assert_eq!(event(&events, "viewed-offset")["body"], "q body #3");
    let empty = event(&events, "query-empty");
    assert_eq!(empty["found"], 0);
    assert!(
        empty["error"].as_str().unwrap_or("").contains("no message"),
        "a key nobody sent: {empty}"
    );

    // mqadmin queryMsgByKey lists the 4 ids of q-order-2.
    let ns = broker.namesrv();
    let (ok, out) = mqadmin(&broker, &["queryMsgByKey", "-n", &ns, "-t", TOPIC, "-k", "q-order-2"]);
    assert!(ok, "mqadmin queryMsgByKey failed: {out}");
    for i in [2, 7, 12, 17] {
        let id = sent[i]["msgId"].as_str().expect("msgId");
        assert!(
            out.contains(id),
            "queryMsgByKey q-order-2 lacks message {i} ({id}):\n{out}"
        );
    }
    let listed = out
        .lines()
        .filter(|l| l.contains(TOPIC) || l.starts_with(|c: char| c.is_ascii_hexdigit()))
        .count();
    assert_eq!(listed, 4, "exactly 4 rows:\n{out}");
    // mqadmin queryMsgById shows message 7 in full from its offset id.
    let oid = sent[7]["offsetMsgId"].as_str().expect("offsetMsgId");
    let (ok, out) = mqadmin(&broker, &["queryMsgById", "-n", &ns, "-i", oid]);
    assert!(ok, "mqadmin queryMsgById failed: {out}");
    assert!(out.contains(&format!("Topic:               {TOPIC}")), "{out}");
    assert!(out.contains("Keys:                [q-order-2 q-k7]"), "{out}");
    assert!(out.contains(sent[7]["msgId"].as_str().expect("msgId")), "{out}");
}

/// `shardmq admin message trace` over the trace records of the Java
/// client's own trace dispatcher (producer and push consumer built with
/// enableMsgTrace = true) and the broker's (traceBrokerEvents=true): sent,
/// stored, pulled, delivered, consumed, and where it is stored.
#[test]
fn java_message_trace_shows_sent_delivered_consumed_and_stored() {
    let _serial = serial();
    ensure_clients();
    let broker = Broker::start_with("SYNC_FLUSH", &[("traceBrokerEvents", "true")]);
    broker.create_topic("TraceJava");
    let events = Client::Java
        .program("trace", &broker, "TraceJava", "CG_trace")
        .arg("count", 3)
        .arg("prefix", "t")
        .run();
    let sent: Vec<&Value> = events.iter().filter(|e| e["event"] == "sent").collect();
    assert_eq!(sent.len(), 3);
    assert_eq!(event(&events, "done")["received"], 3, "every message consumed");
    let id = sent[1]["msgId"].as_str().expect("msgId");
    let admin = |args: &[&str]| -> Value {
        let out = Command::new(shardmq_bin())
            .args(["admin", "--json", "--namesrv", &broker.namesrv(), "message", "trace"])
            .args(args)
            .output()
            .expect("run shardmq admin");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "admin trace: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("admin trace: {e}: {text}"))
    };
    // The trace records may reach the broker a little after the client
    // returned (its dispatcher sends asynchronously): retry briefly.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let timeline = loop {
        let t = admin(&[id]);
        let kinds: Vec<String> = t[0]["events"]
            .as_array()
            .map(|e| e.iter().map(|x| x["type"].as_str().unwrap_or("").to_owned()).collect())
            .unwrap_or_default();
        if ["Pub", "SubBefore", "SubAfter"]
            .iter()
            .all(|k| kinds.iter().any(|x| x == k))
            || std::time::Instant::now() > deadline
        {
            break t;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    let m = &timeline[0];
    assert_eq!(m["msgId"], id, "{timeline}");
    assert_eq!(m["topic"], "TraceJava");
    let ev = m["events"].as_array().expect("events");
    let of = |kind: &str| {
        ev.iter()
            .find(|e| e["type"] == kind)
            .unwrap_or_else(|| panic!("no {kind} in {timeline}"))
    };
    assert_eq!(of("Pub")["group"], "PCG_trace");
    assert_eq!(of("Pub")["success"], true);
    assert_eq!(of("Pub")["keys"], "t-k1");
    assert_eq!(of("SubBefore")["group"], "CG_trace");
    assert_eq!(of("SubBefore")["retryTimes"], 0);
    assert_eq!(of("SubAfter")["group"], "CG_trace");
    assert_eq!(of("SubAfter")["success"], true);
    // The broker's own records (traceBrokerEvents=true).
    assert_eq!(of("BrokerStored")["group"], "PCG_trace");
    assert_eq!(of("BrokerStored")["topic"], "TraceJava");
    assert_eq!(of("BrokerDelivered")["group"], "CG_trace");
    let t = |e: &Value| e["time"].as_i64().unwrap_or(0);
    assert!(t(of("Pub")) <= t(of("SubBefore")) && t(of("SubBefore")) <= t(of("SubAfter")) + 1000);
    let stored = &m["stored"][0];
    assert_eq!(stored["topic"], "TraceJava");
    assert_eq!(stored["offsetMsgId"], sent[1]["offsetMsgId"]);
    // By business key too.
    let by_key = admin(&["t-k2"]);
    assert_eq!(by_key[0]["msgId"], sent[2]["msgId"], "{by_key}");
}
