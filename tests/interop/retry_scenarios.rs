//! Helpers of the Java retry / dead-letter / delayed-delivery / transaction
//! scenarios (written in `tests/interop_java_retry.rs`): the timing bounds, the extra fields
//! the Java programs print for these scenarios (receive and send wall times,
//! `RETRY_TOPIC`, `ORIGIN_MESSAGE_ID`, broker-set properties), bounded waits
//! on a running consumer, a store audit (a fresh group reading the topic
//! from the first offset, plus `shardmq admin topic status`), and the
//! common run of the transaction scenarios ([`run_tx`]).
//!
//! Time: the Java programs and the test read the same wall clock
//! (`System.currentTimeMillis()` on this machine), so "early" needs no clock
//! skew allowance beyond [`EARLY_MS`].

#![allow(dead_code)] // each scenario uses a subset

use crate::harness::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};

/// Shortened `messageDelayLevel` of these tests (the Java default starts
/// "1s 5s 10s 30s 1m …"). A retry of a message consumed `r` times waits level
/// `3 + r`: retries 1, 2, 3 wait 3 s, 2 s, 3 s. Level 10 is 8 s, level 12 10 s.
pub const LEVELS: &str = "1s 2s 3s 2s 3s 4s 5s 6s 7s 8s 9s 10s 11s 12s 13s 14s 15s 16s";

/// Delay of `level` (1-based) in [`LEVELS`], in ms.
pub fn level_ms(level: usize) -> i64 {
    let s = LEVELS.split(' ').nth(level - 1).expect("level in 1..=18");
    s.trim_end_matches('s').parse::<i64>().expect("seconds") * 1000
}

/// How early a message may arrive: none, apart from millisecond rounding
/// of the two `currentTimeMillis` readings. Both sides read the same clock.
/// (Note: the Java 5.x timer wheel rounds TIMER_* fire times *down* to
/// `timerPrecisionMs` = 1 s, so it would fail this; shardmq must not.)
pub const EARLY_MS: i64 = 50;

/// Client-side share of the lateness allowance: after the broker re-stores a
/// due message into its queue, it must wake the consumer's suspended
/// PULL_MESSAGE (long poll), the Java client hands the message to a consume
/// thread and the listener records `recvMs`; for retries the gap also holds
/// the CONSUMER_SEND_MSG_BACK round trip after the listener returned. That
/// is milliseconds on an idle machine; 500 ms covers a loaded 2-core CI box
/// with two JVMs (C1 only) and the broker sharing it.
pub const CLIENT_SLACK_MS: i64 = 500;

/// Latest acceptable arrival after a delay of `delay_ms` started:
/// delay + 10 % + 1 s (the broker's share: scheduler tick, timer precision)
/// + [`CLIENT_SLACK_MS`].
pub fn late_bound_ms(delay_ms: i64) -> i64 {
    delay_ms + delay_ms / 10 + 1000 + CLIENT_SLACK_MS
}

/// Extra lateness allowed only right after a broker SIGKILL + restart: a
/// Java consumer whose pull failed waits 3 s before it pulls again
/// (`PULL_TIME_DELAY_MILLS_WHEN_EXCEPTION`), and may hit that back-off once
/// more while the broker is coming up.
pub const RECONNECT_SLACK_MS: i64 = 6000;

/// One delivery as the Java consumer printed it ("msg" event).
#[derive(Clone, Debug)]
pub struct Delivery {
    pub key: String,
    pub topic: String,
    pub body: String,
    pub tags: String,
    pub props: BTreeMap<String, String>,
    pub msg_id: String,
    pub offset_msg_id: String,
    /// The UNIQ_KEY property, where the program prints it (`uniqKey`).
    pub uniq_key: Option<String>,
    pub reconsume_times: i64,
    pub recv_ms: i64,
    /// The stored record's timestamp: when the broker made it visible.
    pub store_ms: i64,
    pub retry_topic: Option<String>,
    pub origin_msg_id: Option<String>,
    /// Broker-set properties present on the message (`SYS_PROPS` of ConsumerScenario.java).
    pub sys: BTreeMap<String, String>,
    /// What the listener answered: CONSUME_SUCCESS or RECONSUME_LATER.
    pub status: String,
}

fn str_of(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn map_of(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), str_of(v))).collect())
        .unwrap_or_default()
}

pub fn deliveries(p: &Proc) -> Vec<Delivery> {
    p.events_of("msg")
        .iter()
        .map(|e| Delivery {
            key: str_of(&e["keys"]),
            topic: str_of(&e["topic"]),
            body: str_of(&e["body"]),
            tags: str_of(&e["tags"]),
            props: map_of(&e["props"]),
            msg_id: str_of(&e["msgId"]),
            offset_msg_id: str_of(&e["offsetMsgId"]),
            uniq_key: e["uniqKey"].as_str().map(str::to_string),
            reconsume_times: e["reconsumeTimes"].as_i64().unwrap_or(-1),
            recv_ms: e["recvMs"].as_i64().expect("msg event without recvMs (old jar?)"),
            store_ms: e["storeMs"].as_i64().expect("msg event without storeMs (old jar?)"),
            retry_topic: e["retryTopic"].as_str().map(str::to_string),
            origin_msg_id: e["originMsgId"].as_str().map(str::to_string),
            sys: map_of(&e["sys"]),
            status: str_of(&e["status"]),
        })
        .collect()
}

/// Deliveries per key, each in receive order.
pub fn by_key(d: &[Delivery]) -> BTreeMap<String, Vec<Delivery>> {
    let mut m: BTreeMap<String, Vec<Delivery>> = BTreeMap::new();
    for x in d {
        m.entry(x.key.clone()).or_default().push(x.clone());
    }
    for v in m.values_mut() {
        v.sort_by_key(|x| (x.recv_ms, x.reconsume_times));
    }
    m
}

/// When a message was sent ("sent" event of `producer` / `txproducer`).
#[derive(Clone, Debug)]
pub struct SentAt {
    pub sent: Sent,
    pub start_ms: i64,
    pub end_ms: i64,
    /// TIMER_DELIVER_MS the producer put on the message, if any.
    pub deliver_at_ms: Option<i64>,
    /// txproducer: the outcome, send status and transaction id.
    pub outcome: Option<String>,
    pub local_state: Option<String>,
    pub transaction_id: Option<String>,
}

pub fn sent_at(events: &[Value]) -> Vec<SentAt> {
    let sent = sent_of(events);
    events
        .iter()
        .filter(|e| e["event"] == "sent")
        .zip(sent)
        .map(|(e, sent)| SentAt {
            sent,
            start_ms: e["sendStartMs"].as_i64().expect("sent event without sendStartMs"),
            end_ms: e["sendEndMs"].as_i64().expect("sent event without sendEndMs"),
            deliver_at_ms: e["deliverAtMs"].as_i64(),
            outcome: e["outcome"].as_str().map(str::to_string),
            local_state: e["localTransactionState"].as_str().map(str::to_string),
            transaction_id: e["transactionId"].as_str().map(str::to_string),
        })
        .collect()
}

/// Runs a (delayed) producer to its end; checks every send succeeded.
pub fn produce_timed(args: Args, prefix: &str, count: u64) -> Vec<SentAt> {
    let events = args.arg("prefix", prefix).arg("count", count).run();
    let sent = sent_at(&events);
    assert!(
        events.iter().any(|e| e["event"] == "done") && sent.len() as u64 == count,
        "producer sent {} of {count} messages; events: {events:?}",
        sent.len()
    );
    for m in &sent {
        let st = m.sent.status.as_deref().unwrap_or("?");
        assert_eq!(
            st, "SEND_OK",
            "{} sent with status {st} (SYNC_FLUSH, no slave)",
            m.sent.key
        );
    }
    sent
}

fn ids(e: &Value, field: &str) -> Vec<String> {
    e[field]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
        .unwrap_or_default()
}

/// Waits (≤ 30 s) until the single consumer `c` holds all [`QUEUES`] queues
/// of its topic; with `retry`, also (≤ 15 s more) a queue of its retry topic
/// `%RETRY%<group>`. Returns a note when it holds no retry queue: the Java
/// broker creates the retry topic on the group's first heartbeat and
/// registers it, so the client pulls it from the start; without that the
/// first retries wait for the client's next route poll (30 s) and
/// rebalance (20 s). The note goes into later failure messages.
pub fn wait_queues(c: &Proc, retry: bool, ctx: &str) -> Option<String> {
    let held = |field: &str| c.events_of("queues").last().map(|e| ids(e, field)).unwrap_or_default();
    c.wait_for(
        &format!("{QUEUES} queues of the topic"),
        Duration::from_secs(30),
        |ev| {
            ev.iter()
                .rev()
                .find(|e| e["event"] == "queues")
                .is_some_and(|e| ids(e, "queueIds").len() == QUEUES)
        },
    );
    if !retry {
        return None;
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if !held("retryQueueIds").is_empty() {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let note = format!(
        "note: when the messages were produced the consumer held no queue of its retry topic %RETRY%<group> \
         (queues {:?}); the broker should create %RETRY%<group> on the group's heartbeat and register it \
         with the name server (store.md §6)",
        held("queueIds")
    );
    eprintln!("{ctx}: {note}");
    Some(note)
}

/// Polls `c` until `done(deliveries)` holds or `timeout`; returns whether it
/// held. Fails at once if the consumer reports an error or exits.
pub fn wait_deliveries(c: &Proc, timeout: Duration, done: impl Fn(&[Delivery]) -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done(&deliveries(c)) {
            return true;
        }
        c.assert_no_error();
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Checks one delivery against what was sent: body, keys, tags and user
/// properties (seq / prefix / color) intact. `topic`: the expected topic
/// name as the application sees it.
pub fn assert_same_message(ctx: &str, topic: &str, sent: &Sent, d: &Delivery) {
    let prefix = sent.key.rsplit_once("-k").map(|(p, _)| p).unwrap_or("");
    assert_eq!(d.topic, topic, "{ctx}: {} delivered with topic {}", d.key, d.topic);
    assert_eq!(
        d.body,
        expected_body(prefix, sent.i),
        "{ctx}: body of {} altered",
        d.key
    );
    assert_eq!(d.tags, sent.tag, "{ctx}: tag of {} altered", d.key);
    let want: BTreeMap<String, String> = [
        ("seq", sent.i.to_string()),
        ("prefix", prefix.to_string()),
        ("color", "blue green".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(d.props, want, "{ctx}: user properties of {} altered", d.key);
}

/// `d` arrived no earlier than `due_ms - EARLY_MS` and no later than
/// `latest_ms`; the message explains which bound failed and by how much.
pub fn assert_on_time(ctx: &str, d: &Delivery, due_ms: i64, latest_ms: i64, what: &str) {
    assert!(
        d.recv_ms >= due_ms - EARLY_MS,
        "{ctx}: {} arrived early: {} ms before it was due ({what}; received at {}, due {})",
        d.key,
        due_ms - d.recv_ms,
        d.recv_ms,
        due_ms
    );
    assert!(
        d.recv_ms <= latest_ms,
        "{ctx}: {} arrived late: {} ms after it was due, allowed {} ({what})",
        d.key,
        d.recv_ms - due_ms,
        latest_ms - due_ms
    );
}

/// Like [`assert_on_time`] across a broker restart: never early (received
/// and stored), and *stored* by `latest_ms`. The receive time is not held to
/// it: a Java 4.9 client's long-poll pull on the killed connection is only
/// given up at its 30 s request timeout (the client has no fail-fast on a
/// closed channel), which says nothing about the broker's timer.
pub fn assert_stored_on_time(ctx: &str, d: &Delivery, due_ms: i64, latest_ms: i64, what: &str) {
    assert_on_time(ctx, d, due_ms, i64::MAX, what);
    assert!(
        d.store_ms >= due_ms - EARLY_MS,
        "{ctx}: {} stored early: {} ms before it was due ({what})",
        d.key,
        due_ms - d.store_ms
    );
    assert!(
        d.store_ms <= latest_ms,
        "{ctx}: {} stored late: {} ms after it was due, allowed {} ({what})",
        d.key,
        d.store_ms - due_ms,
        latest_ms - due_ms
    );
}

/// Every key of `want` delivered exactly once in `got`, nothing else (keys
/// of the warm-up are never in `got`: the consumer ignores them).
pub fn assert_once(ctx: &str, want: &[&Sent], got: &[Delivery]) {
    let counts = by_key(got);
    let want_keys: BTreeSet<&str> = want.iter().map(|m| m.key.as_str()).collect();
    let missing: Vec<&str> = want_keys.iter().copied().filter(|k| !counts.contains_key(*k)).collect();
    let dup: Vec<(&String, usize)> = counts
        .iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(k, v)| (k, v.len()))
        .collect();
    let extra: Vec<&String> = counts.keys().filter(|k| !want_keys.contains(k.as_str())).collect();
    assert!(
        missing.is_empty() && dup.is_empty() && extra.is_empty(),
        "{ctx}: expected each of {} messages exactly once; missing {missing:?}, duplicated {dup:?}, \
         unexpected {extra:?}",
        want_keys.len()
    );
}

/// Store audit of `topic` after the fact: a fresh group reads it from the
/// first offset (CONSUME_FROM_FIRST_OFFSET) and must see each of `want`
/// exactly once — a message the broker stored twice (e.g. a delayed message
/// re-delivered after a restart) shows up twice here even when the running
/// consumer's offsets hid it. `stored` records (warm-up included) must be in
/// the topic according to `shardmq admin topic status` (sum of the queues'
/// max offsets).
pub fn audit_topic(broker: &Broker, topic: &str, group: &str, want: &[&Sent], stored: i64, ctx: &str) {
    let mut p = Client::Java
        .consumer(broker, topic, group)
        .label("audit")
        .arg("from", "first")
        .arg("expect", want.len())
        .arg("linger-ms", 3000)
        .arg("timeout-ms", 30_000)
        .spawn();
    p.wait_exit(PROC_TIMEOUT);
    p.assert_no_error();
    assert_once(
        &format!("{ctx} (fresh group {group} from the first offset)"),
        want,
        &deliveries(&p),
    );
    let out = Command::new(shardmq_bin())
        .args(["admin", "--timeout", "15", "--namesrv", &broker.namesrv(), "--json"])
        .args(["topic", "status", topic])
        .output()
        .expect("run shardmq admin");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{ctx}: shardmq admin topic status {topic} failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("admin --json: {e}: {text}"));
    let total: i64 = v["queues"]
        .as_array()
        .expect("queues")
        .iter()
        .map(|q| q["maxOffset"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(
        total, stored,
        "{ctx}: topic {topic} holds {total} records (sum of max offsets), want {stored}: {text}"
    );
}

/// Warm-up through the plain Java producer: creates `topic` (TBW102
/// auto-create) before a consumer subscribes, so it can hold its queues
/// before the scenario's messages are produced.
pub fn warm(broker: &Broker, topic: &str) {
    warm_up(Client::Java, broker, topic);
}

/// Serializes the scenario and starts a SYNC_FLUSH broker with `extra` conf keys.
pub fn start(extra: &[(&str, &str)]) -> (std::sync::MutexGuard<'static, ()>, Broker) {
    let guard = serial();
    ensure_clients();
    (guard, Broker::start_with("SYNC_FLUSH", extra))
}

/// A plain Java consumer of `topic` that runs until stopped, holding all
/// the topic's queues (and, with `retry`, a retry queue) before it returns.
pub fn running_consumer(
    broker: &Broker,
    topic: &str,
    group: &str,
    args: &[(&str, &str)],
    retry: bool,
) -> (Proc, String) {
    let mut a = Client::Java.consumer(broker, topic, group).arg("linger-ms", 0);
    for (k, v) in args {
        a = if v.is_empty() { a.flag(k) } else { a.arg(k, v) };
    }
    let c = a.spawn();
    c.wait_event("started", Duration::from_secs(20));
    let note = wait_queues(&c, retry, group).unwrap_or_default();
    (c, note)
}

// ---------------------------------------------------------------------------
// Transactions
// ---------------------------------------------------------------------------

/// Broker conf of the transaction scenarios: check half messages older than
/// 2 s, every second.
pub const TX_CONF: [(&str, &str); 2] = [("transactionTimeOut", "2000"), ("transactionCheckInterval", "1000")];

/// Runs a transactional producer (`txproducer`, group `PG_<topic>`) with
/// the given outcomes (cycled over the messages) next to a running consumer;
/// waits until the consumer got `want_delivered` of the keys and then
/// `quiet` more; returns (what was sent, deliveries, check events).
pub fn run_tx(topic: &str, outcomes: &str, count: u64, quiet: Duration, want_delivered: &[&str]) -> TxRun {
    let (guard, broker) = start(&TX_CONF);
    warm(&broker, topic);
    let (mut c, _) = running_consumer(&broker, topic, &format!("CG_{topic}"), &[], false);
    let mut p = Client::Java
        .program("txproducer", &broker, topic, &format!("PG_{topic}"))
        .arg("outcome", outcomes)
        .arg("prefix", "x")
        .arg("count", count)
        .spawn();
    p.wait_event("sent_all", Duration::from_secs(30));
    let sent = sent_at(&p.events());
    let want: BTreeSet<String> = sent
        .iter()
        .filter(|m| want_delivered.contains(&m.outcome.as_deref().unwrap_or("")))
        .map(|m| m.sent.key.clone())
        .collect();
    wait_deliveries(&c, Duration::from_secs(20), |d| {
        want.iter().all(|k| d.iter().any(|x| &x.key == k))
    });
    std::thread::sleep(quiet);
    c.stop();
    p.close_stdin();
    p.wait_exit(Duration::from_secs(20));
    p.assert_no_error();
    TxRun {
        checks: p.events_of("check"),
        deliveries: deliveries(&c),
        sent,
        _procs: (c, p),
        broker,
        _guard: guard,
    }
}

/// What [`run_tx`] saw. Fields drop in order: the programs (their reports
/// print on a failure while their scratch dirs still exist), then the
/// broker (removes its temp dir), then the serialization guard.
pub struct TxRun {
    pub sent: Vec<SentAt>,
    pub deliveries: Vec<Delivery>,
    pub checks: Vec<serde_json::Value>,
    _procs: (Proc, Proc),
    pub broker: Broker,
    _guard: std::sync::MutexGuard<'static, ()>,
}

impl TxRun {
    pub fn of(&self, outcome: &str) -> Vec<&Sent> {
        let o = Some(outcome.to_string());
        self.sent.iter().filter(|m| m.outcome == o).map(|m| &m.sent).collect()
    }

    pub fn checks_of(&self, key: &str) -> Vec<&serde_json::Value> {
        self.checks.iter().filter(|e| e["key"] == key).collect()
    }

    /// Send results: SEND_OK, the local state the listener answered, a
    /// transactionId (= the message's UNIQ_KEY = msgId) and the half
    /// record's offsetMsgId. Checked last: a wrong send result is a
    /// detail next to a wrong delivery.
    pub fn assert_sent(&self, ctx: &str) {
        for m in &self.sent {
            let want_state = match m.outcome.as_deref() {
                Some("commit") => "COMMIT_MESSAGE",
                Some("rollback") => "ROLLBACK_MESSAGE",
                _ => "UNKNOW",
            };
            assert_eq!(
                m.sent.status.as_deref(),
                Some("SEND_OK"),
                "{ctx}: half message {}",
                m.sent.key
            );
            assert_eq!(m.local_state.as_deref(), Some(want_state), "{ctx}: {}", m.sent.key);
            // END_TRANSACTION's commitLogOffset is decoded from it (the
            // client falls back to decoding msgId, a UNIQ_KEY, otherwise).
            assert!(
                m.sent.offset_msg_id.is_some(),
                "{ctx}: send result of half message {} has no offsetMsgId (the half record's offset msgId)",
                m.sent.key
            );
            assert!(
                m.transaction_id.is_some() && m.transaction_id == m.sent.msg_id,
                "{ctx}: {}: transactionId {:?} must be the msgId (UNIQ_KEY) {:?}",
                m.sent.key,
                m.transaction_id,
                m.sent.msg_id
            );
        }
    }
}
