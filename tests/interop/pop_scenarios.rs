//! Helpers of the POP scenarios (`tests/interop_java_pop.rs`): the Java 5.x
//! programs of tests/interop/java5 (rocketmq-client 5.3.3, remoting):
//! `pop-consume`, a POP-mode push consumer, and `raw`, which sends one POP
//! code at a time (POP_MESSAGE, ACK_MESSAGE, CHANGE_MESSAGE_INVISIBLETIME,
//! BATCH_ACK_MESSAGE, SET_MESSAGE_REQUEST_MODE) through the client's own
//! MQClientAPIImpl and prints the broker's raw answer (code, remark, header
//! fields) next to what the client made of it (PopResult, POP_CK handles).
//!
//! Timing: the programs, the broker and the test read one clock. A message
//! popped (or changed) at broker time `popTime` with invisible time `T`
//! must not be delivered again before `popTime + T` (minus [`EARLY_MS`] of
//! rounding) and must be again by `popTime + T + REVIVE_SLACK_MS` (plus the
//! client's own poll delays where a push consumer is involved). Apache
//! RocketMQ 5.5.0 re-delivered 2.1 to 3.5 s after the due time in the
//! reference runs (its revive service scans the revive topic every second
//! and buffers checkpoints); the slack allows for that and a loaded CI box.

#![allow(dead_code)] // each scenario uses a subset

use crate::harness::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How early a re-delivery may come (ms rounding of the two clock readings).
pub const EARLY_MS: i64 = 100;
/// How late after its due time a not-acked message may come back.
pub const REVIVE_SLACK_MS: i64 = 8000;
/// The push consumer's invisible time in the scenarios: the client's minimum
/// (it uses 60 s for anything below 5 s), so that a lost ack shows up as a
/// re-delivery within the test.
pub const PUSH_INVISIBLE_MS: i64 = 5000;
/// CHANGE_MESSAGE_INVISIBLETIME the 5.x push consumer sends for a message its
/// listener answered RECONSUME_LATER at reconsumeTimes 0:
/// popDelayLevel[0] = 10 s (DefaultMQPushConsumerImpl.popDelayLevel).
pub const RECONSUME_LATER_FIRST_MS: i64 = 10_000;

/// Response codes (codes.md §13).
pub const SUCCESS: i64 = 0;
pub const PULL_NOT_FOUND: i64 = 19;
pub const NO_MESSAGE: i64 = 208;
pub const POLLING_FULL: i64 = 209;
pub const POLLING_TIMEOUT: i64 = 210;

/// Serializes the scenario and starts a SYNC_FLUSH broker (harness defaults:
/// 2 shards, shard-aware routes, 4 queues per new topic), or uses the peer
/// broker of `SHARDMQ_INTEROP_PEER_NAMESRV` ([`peer_namesrv`]).
pub fn start() -> (std::sync::MutexGuard<'static, ()>, Broker) {
    let guard = serial();
    ensure_clients();
    (guard, Broker::start_or_peer("SYNC_FLUSH", &[]))
}

/// A topic or group name: `base`, with a per-run suffix against a peer
/// broker (which keeps the topics and groups of earlier runs).
pub fn name(base: &str) -> String {
    match peer_namesrv() {
        Some(_) => format!("{base}_{}", now_ms() % 100_000_000),
        None => base.to_string(),
    }
}

fn num(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

/// A POP_CK handle's fields as the client parsed them (`ExtraInfoUtil`).
#[derive(Clone, Debug, Default)]
pub struct Ck {
    pub ck_queue_offset: i64,
    pub pop_time: i64,
    pub invisible_time: i64,
    pub revive_qid: i64,
    pub retry: String,
    pub broker_name: String,
    pub queue_id: i64,
    pub queue_offset: i64,
}

/// One popped message (raw "pop" answer or pop-consume "msg" event).
#[derive(Clone, Debug)]
pub struct Popped {
    pub key: String,
    pub topic: String,
    pub body: String,
    pub tags: String,
    pub props: BTreeMap<String, String>,
    pub msg_id: String,
    pub queue_id: i64,
    pub queue_offset: i64,
    pub reconsume_times: i64,
    /// The POP_CK handle (None if the client set none: the answer lacked it).
    pub handle: Option<String>,
    pub ck: Option<Ck>,
    /// pop-consume: when the listener got it; raw: when the pop answer arrived.
    pub recv_ms: i64,
    /// pop-consume: what the listener answered.
    pub status: String,
}

fn str_of(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

pub fn popped_of(m: &Value, recv_ms: i64) -> Popped {
    let ck = m["ck"]
        .as_object()
        .filter(|o| !o.contains_key("parseError"))
        .map(|_| Ck {
            ck_queue_offset: num(&m["ck"]["ckQueueOffset"]).unwrap_or(-1),
            pop_time: num(&m["ck"]["popTime"]).unwrap_or(-1),
            invisible_time: num(&m["ck"]["invisibleTime"]).unwrap_or(-1),
            revive_qid: num(&m["ck"]["reviveQid"]).unwrap_or(-1),
            retry: str_of(&m["ck"]["retry"]),
            broker_name: str_of(&m["ck"]["brokerName"]),
            queue_id: num(&m["ck"]["queueId"]).unwrap_or(-1),
            queue_offset: num(&m["ck"]["queueOffset"]).unwrap_or(-1),
        });
    Popped {
        key: str_of(&m["keys"]),
        topic: str_of(&m["topic"]),
        body: str_of(&m["body"]),
        tags: str_of(&m["tags"]),
        props: m["props"]
            .as_object()
            .map(|o| o.iter().map(|(k, v)| (k.clone(), str_of(v))).collect())
            .unwrap_or_default(),
        msg_id: str_of(&m["msgId"]),
        queue_id: m["queueId"].as_i64().unwrap_or(-1),
        queue_offset: m["queueOffset"].as_i64().unwrap_or(-1),
        reconsume_times: m["reconsumeTimes"].as_i64().unwrap_or(-1),
        handle: m["popCk"].as_str().map(str::to_string),
        ck,
        recv_ms: m["recvMs"].as_i64().unwrap_or(recv_ms),
        status: str_of(&m["status"]),
    }
}

/// Checks that a popped message is the one sent: body, tag, user properties,
/// msgId (UNIQ_KEY) and, for a first delivery (from the topic's own queue),
/// the queue offset of the send result and a handle naming the broker entry
/// the send went to and that offset.
pub fn assert_same(ctx: &str, topic: &str, sent: &Sent, p: &Popped) {
    let prefix = sent.key.rsplit_once("-k").map(|(p, _)| p).unwrap_or("");
    assert_eq!(p.topic, topic, "{ctx}: {} popped with topic {}", p.key, p.topic);
    assert_eq!(
        p.body,
        expected_body(prefix, sent.i),
        "{ctx}: body of {} altered",
        p.key
    );
    assert_eq!(p.tags, sent.tag, "{ctx}: tag of {} altered", p.key);
    assert_eq!(
        p.props.get("seq").map(String::as_str),
        Some(sent.i.to_string().as_str()),
        "{ctx}: user properties of {} altered: {:?}",
        p.key,
        p.props
    );
    assert_eq!(
        Some(&p.msg_id),
        sent.msg_id.as_ref(),
        "{ctx}: msgId (UNIQ_KEY) of {} differs from the sent one",
        p.key
    );
    let Some(ck) = &p.ck else {
        panic!(
            "{ctx}: {} has no POP_CK handle ({:?}): the client builds it from the POP_MESSAGE answer's \
             popTime/invisibleTime/reviveQid and startOffsetInfo/msgOffsetInfo (codes.md §3)",
            p.key, p.handle
        );
    };
    assert_eq!(
        ck.queue_offset, p.queue_offset,
        "{ctx}: {}: handle offset {} is not the message's queue offset {} (handle {:?})",
        p.key, ck.queue_offset, p.queue_offset, p.handle
    );
    if p.reconsume_times == 0 {
        assert_eq!(
            ck.retry, "0",
            "{ctx}: first delivery of {} comes from a retry topic (handle {:?})",
            p.key, p.handle
        );
        assert_eq!(
            Some(p.queue_offset),
            sent.queue_offset,
            "{ctx}: {} popped at queue offset {} but the send result said {:?}",
            p.key,
            p.queue_offset,
            sent.queue_offset
        );
        if let Some(q) = &sent.queue_id {
            let entry = q.rsplit_once(':').map(|(b, _)| b).unwrap_or("");
            assert_eq!(
                ck.broker_name, entry,
                "{ctx}: {} was sent to broker entry {entry} ({q}) but its handle names {} (handle {:?}): acks \
                 go to the broker the handle names",
                p.key, ck.broker_name, p.handle
            );
        }
    }
}

/// Every key of `want` exactly once in `got`, nothing else.
pub fn assert_each_once(ctx: &str, want: &[&str], got: &[Popped]) {
    let got: Vec<(&str, i64)> = got.iter().map(|p| (p.key.as_str(), p.reconsume_times)).collect();
    assert_keys_once(ctx, want, &got);
}

// ---------------------------------------------------------------------------
// pop-consume: the POP-mode push consumer
// ---------------------------------------------------------------------------

pub fn pop_consumer(broker: &Broker, topic: &str, group: &str) -> Args {
    Client::Java5.program("pop-consume", broker, topic, group)
}

/// Waits until the consumer switched the group to POP mode
/// (SET_MESSAGE_REQUEST_MODE on every broker entry answered SUCCESS) and
/// the broker assigned it POP queues of `topic` (QUERY_ASSIGNMENT) and no
/// PULL queue of `topic`. Panics with what the broker answered otherwise.
pub fn wait_pop_assigned(c: &Proc, topic: &str, ctx: &str) {
    c.wait_event("mode", Duration::from_secs(30));
    let mode = c.events_of("mode").remove(0);
    let results = mode["results"].as_array().cloned().unwrap_or_default();
    let bad: Vec<&Value> = results
        .iter()
        .filter(|r| r["ok"] != true || num(&r["code"]) != Some(SUCCESS))
        .collect();
    assert!(
        !results.is_empty() && bad.is_empty(),
        "{ctx}: SET_MESSAGE_REQUEST_MODE (401) → POP for group/topic was not accepted by every broker entry of \
         the route: {results:?}. The 5.x push consumer with clientRebalance=false pops only queues the broker \
         assigns in mode POP (QUERY_ASSIGNMENT 400), and a group gets POP mode through this request \
         (mqadmin setConsumeMode); see codes.md §3\n{}",
        c.report()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let last = c.events_of("queues").pop();
        if let Some(q) = &last {
            let names = |k: &str| -> Vec<String> {
                q[k].as_array()
                    .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
                    .unwrap_or_default()
            };
            let mine = |n: &String| n.starts_with(&format!("{topic}@"));
            let (pop, pull) = (names("pop"), names("pull"));
            assert!(
                !pull.iter().any(mine),
                "{ctx}: the broker assigned PULL queues of {topic} after SET_MESSAGE_REQUEST_MODE POP: pull {pull:?}, \
                 pop {pop:?} (QUERY_ASSIGNMENT must answer mode POP for this group and topic)\n{}",
                c.report()
            );
            if pop.iter().any(mine) {
                return;
            }
        }
        c.assert_no_error();
        if Instant::now() >= deadline {
            let qa: Vec<Value> = c
                .events_of("rpc")
                .into_iter()
                .filter(|e| e["name"] == "QUERY_ASSIGNMENT")
                .collect();
            panic!(
                "{ctx}: the POP consumer got no POP queue of {topic} within 30 s (last queues event {last:?}); \
                 QUERY_ASSIGNMENT (400) round trips: {qa:?}\n{}",
                c.report()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Deliveries of a pop-consume program ("msg" events), in arrival order.
pub fn pop_deliveries(c: &Proc) -> Vec<Popped> {
    c.events_of("msg").iter().map(|e| popped_of(e, 0)).collect()
}

/// The "rpcCounts" of the program's "done" event (`NAME` = requests sent,
/// `NAME->code` = answers with that code).
pub fn rpc_counts(c: &Proc) -> BTreeMap<String, i64> {
    c.events_of("done")
        .last()
        .and_then(|d| d["rpcCounts"].as_object().cloned())
        .map(|o| o.into_iter().map(|(k, v)| (k, v.as_i64().unwrap_or(0))).collect())
        .unwrap_or_default()
}

/// Waits (bounded) until `done` holds for the consumer's deliveries.
pub fn wait_pops(c: &Proc, timeout: Duration, done: impl Fn(&[Popped]) -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done(&pop_deliveries(c)) {
            return true;
        }
        c.assert_no_error();
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Checks the consumer really consumed in POP mode: POP_MESSAGE answered
/// SUCCESS, no PULL_MESSAGE of the topic (its "queues" events never held a
/// pull queue of it), and one ACK_MESSAGE answered SUCCESS per message the
/// listener answered CONSUME_SUCCESS (the 5.3 push consumer acks each
/// message on its own; it never sends BATCH_ACK_MESSAGE).
pub fn assert_popped_and_acked(c: &Proc, topic: &str, ctx: &str) {
    let counts = rpc_counts(c);
    let get = |k: &str| counts.get(k).copied().unwrap_or(0);
    assert!(
        get("POP_MESSAGE->0") > 0,
        "{ctx}: no POP_MESSAGE answered SUCCESS; rpc counts {counts:?}\n{}",
        c.report()
    );
    let successes = pop_deliveries(c)
        .iter()
        .filter(|d| d.status == "CONSUME_SUCCESS")
        .count() as i64;
    assert_eq!(
        get("ACK_MESSAGE->0"),
        successes,
        "{ctx}: {successes} deliveries answered CONSUME_SUCCESS, so as many ACK_MESSAGE must be answered SUCCESS; \
         rpc counts {counts:?}\n{}",
        c.report()
    );
    assert_eq!(
        get("ACK_MESSAGE"),
        get("ACK_MESSAGE->0"),
        "{ctx}: some ACK_MESSAGE failed; rpc counts {counts:?}\n{}",
        c.report()
    );
    for q in c.events_of("queues") {
        let pulls: Vec<&Value> = q["pull"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|v| v.as_str().is_some_and(|s| s.starts_with(&format!("{topic}@"))))
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            pulls.is_empty(),
            "{ctx}: the consumer pulled {topic} (PULL queues {pulls:?}) instead of popping it\n{}",
            c.report()
        );
    }
}

// ---------------------------------------------------------------------------
// raw: one POP code at a time
// ---------------------------------------------------------------------------

/// The `raw` program: one JSON command in, one JSON answer out.
pub struct Raw {
    pub p: Proc,
    n: u64,
    pub brokers: Vec<String>,
    ctx: String,
}

impl Raw {
    pub fn start(broker: &Broker, topic: &str, group: &str, ctx: &str) -> Raw {
        let p = Client::Java5
            .program("raw", broker, topic, group)
            .arg("timeout-ms", 240_000)
            .spawn();
        p.wait_event("started", Duration::from_secs(30));
        let mut r = Raw {
            p,
            n: 0,
            brokers: Vec::new(),
            ctx: ctx.to_string(),
        };
        let route = r.cmd(json!({"op": "route"}), Duration::from_secs(15));
        r.brokers = route["brokers"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|b| b["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            !r.brokers.is_empty(),
            "{ctx}: the route of {topic} has no broker entry with a master: {route}"
        );
        r
    }

    /// Sends one command and returns its answer (bounded by `timeout`).
    pub fn cmd(&mut self, c: Value, timeout: Duration) -> Value {
        self.n += 1;
        let n = self.n;
        self.p.send_line(&c.to_string());
        self.p.wait_for(&format!("answer #{n} to {c}"), timeout, |ev| {
            ev.iter().any(|e| e["seq"].as_u64() == Some(n))
        });
        self.p
            .events()
            .into_iter()
            .find(|e| e["seq"].as_u64() == Some(n))
            .expect("answer")
    }

    /// POP_MESSAGE on one broker entry, queueId -1 (any queue). Asserts the
    /// answer is SUCCESS with messages, or POLLING_TIMEOUT / PULL_NOT_FOUND
    /// without, and that the answer's header fields and the handles the
    /// client built agree with the request. Returns the messages.
    pub fn pop(&mut self, broker: &str, max: u32, invisible_ms: i64, poll_ms: i64) -> Vec<Popped> {
        self.pop_with(broker, max, invisible_ms, poll_ms, None)
    }

    /// Orderly POP_MESSAGE (order=true, attemptId) on one broker entry.
    pub fn pop_order(&mut self, broker: &str, max: u32, invisible_ms: i64, attempt: &str) -> Vec<Popped> {
        self.pop_with(broker, max, invisible_ms, 0, Some(attempt))
    }

    fn pop_with(
        &mut self,
        broker: &str,
        max: u32,
        invisible_ms: i64,
        poll_ms: i64,
        attempt: Option<&str>,
    ) -> Vec<Popped> {
        let ctx = self.ctx.clone();
        let timeout = Duration::from_millis((poll_ms + 20_000) as u64);
        let mut c = json!({"op": "pop", "broker": broker, "max": max, "invisibleMs": invisible_ms, "pollMs": poll_ms});
        if let Some(id) = attempt {
            c["order"] = json!(true);
            c["attemptId"] = json!(id);
        }
        let a = self.cmd(c, timeout);
        let code = num(&a["code"]);
        let msgs: Vec<Popped> = a["msgs"]
            .as_array()
            .map(|v| {
                v.iter()
                    .map(|m| popped_of(m, a["recvMs"].as_i64().unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default();
        match code {
            Some(SUCCESS) => {
                assert!(
                    !msgs.is_empty() && a["status"] == "FOUND",
                    "{ctx}: POP_MESSAGE (200050) on {broker} answered SUCCESS but the client found no message \
                     (status {}, clientError {}); answer {a}",
                    a["status"],
                    a["clientError"]
                );
                let ext = &a["ext"];
                let pop_time = num(&ext["popTime"]).unwrap_or(-1);
                let (sent, recv) = (a["sentMs"].as_i64().unwrap_or(0), a["recvMs"].as_i64().unwrap_or(0));
                assert!(
                    pop_time >= sent - EARLY_MS && pop_time <= recv + EARLY_MS,
                    "{ctx}: POP_MESSAGE answer popTime {pop_time} is not between the request ({sent}) and the \
                     answer ({recv}); answer header {ext}"
                );
                assert_eq!(
                    num(&ext["invisibleTime"]),
                    Some(invisible_ms),
                    "{ctx}: POP_MESSAGE answer invisibleTime differs from the request's; header {ext}"
                );
                assert!(
                    num(&ext["reviveQid"]).is_some() && num(&ext["restNum"]).is_some(),
                    "{ctx}: POP_MESSAGE answer lacks reviveQid / restNum; header {ext}"
                );
                for m in &msgs {
                    let Some(ck) = &m.ck else {
                        panic!("{ctx}: popped {} without a POP_CK handle; answer {a}", m.key)
                    };
                    assert!(
                        ck.pop_time == pop_time && ck.invisible_time == invisible_ms && ck.broker_name == broker,
                        "{ctx}: handle {:?} of {} disagrees with the answer (popTime {pop_time}, invisibleTime \
                         {invisible_ms}, broker {broker})",
                        m.handle,
                        m.key
                    );
                }
            }
            Some(POLLING_TIMEOUT) | Some(PULL_NOT_FOUND) => {
                assert!(
                    msgs.is_empty(),
                    "{ctx}: POP_MESSAGE answered {code:?} with messages: {a}"
                );
            }
            _ => panic!(
                "{ctx}: POP_MESSAGE (200050) to {broker} answered code {code:?} (remark {}), client status {} \
                 ({}); want SUCCESS with messages, or POLLING_TIMEOUT (210) / PULL_NOT_FOUND (19) without \
                 (codes.md §3)\n{}",
                a["remark"],
                a["status"],
                a["clientError"],
                self.p.report()
            ),
        }
        msgs
    }

    /// One POP_MESSAGE on every broker entry of the route.
    pub fn pop_all(&mut self, max: u32, invisible_ms: i64, poll_ms: i64) -> Vec<Popped> {
        let brokers = self.brokers.clone();
        brokers
            .iter()
            .flat_map(|b| self.pop(b, max, invisible_ms, poll_ms))
            .collect()
    }

    /// Pops every broker entry until `want` keys were popped or `timeout` passed.
    pub fn pop_until(&mut self, want: usize, invisible_ms: i64, timeout: Duration) -> Vec<Popped> {
        let deadline = Instant::now() + timeout;
        let mut got: Vec<Popped> = Vec::new();
        while got.len() < want && Instant::now() < deadline {
            let mut more = self.pop_all(32, invisible_ms, 0);
            if more.is_empty() {
                std::thread::sleep(Duration::from_millis(200));
            }
            got.append(&mut more);
        }
        got
    }

    /// ACK_MESSAGE with `handle`; returns (code, answer).
    pub fn ack(&mut self, handle: &str) -> (Option<i64>, Value) {
        let a = self.cmd(json!({"op": "ack", "handle": handle}), Duration::from_secs(15));
        (num(&a["code"]), a)
    }

    /// ACK_MESSAGE that must answer SUCCESS.
    pub fn ack_ok(&mut self, p: &Popped) {
        let h = p.handle.clone().unwrap_or_default();
        let (code, a) = self.ack(&h);
        assert_eq!(
            code,
            Some(SUCCESS),
            "{}: ACK_MESSAGE (200051) of {} with its fresh handle {h:?} answered {code:?} (remark {}); answer {a}\n{}",
            self.ctx,
            p.key,
            a["remark"],
            self.p.report()
        );
    }

    /// CHANGE_MESSAGE_INVISIBLETIME; returns the answer.
    pub fn change(&mut self, handle: &str, invisible_ms: i64) -> Value {
        self.cmd(
            json!({"op": "change", "handle": handle, "invisibleMs": invisible_ms}),
            Duration::from_secs(15),
        )
    }

    pub fn batch_ack(&mut self, handles: &[String]) -> Value {
        self.cmd(json!({"op": "batch-ack", "handles": handles}), Duration::from_secs(15))
    }

    pub fn stop(&mut self) {
        self.p.close_stdin();
        self.p.wait_exit(Duration::from_secs(20));
        self.p.assert_no_error();
    }
}

/// Keys of `sent`, as &str.
pub fn keys(sent: &[Sent]) -> Vec<&str> {
    sent.iter().map(|m| m.key.as_str()).collect()
}

pub fn sent_by_key(sent: &[Sent]) -> BTreeMap<String, Sent> {
    sent.iter().map(|m| (m.key.clone(), m.clone())).collect()
}
