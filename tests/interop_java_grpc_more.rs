//! More of the 5.x gRPC endpoint with the reference 5.x gRPC client,
//! unmodified `org.apache.rocketmq:rocketmq-client-java` 5.0.8 (programs
//! `grpc-send`, `grpc-simple`, `grpc-push` of tests/interop/java5,
//! GrpcMoreScenarios.java), against the real `shardmq serve` (two shards,
//! SYNC_FLUSH, gRPC on free ports, one route entry per shard):
//!
//! * FIFO: the order of each message group, with a group whose subscription
//!   group config says `consumeMessageOrderly` (the broker's Telemetry
//!   settings tell the client `fifo`), for a SimpleConsumer (a message not
//!   acked blocks its group) and a PushConsumer (retries in place, then the
//!   DLQ);
//! * two consumer groups on one topic, each getting everything;
//! * a PushConsumer whose listener fails: retried after the backoff the
//!   broker's settings name, and after the group's `retryMaxTimes` into
//!   `%DLQ%<group>`, readable there;
//! * kill -9 of the broker between sends, receives and acks.
//!
//! Timing bounds: a message not acked comes back after its invisible time,
//! not before ([`EARLY_MS`] for the time between the broker's pop and the
//! client's clock reading) and not much later ([`LATE_MS`]: a SimpleConsumer
//! takes turns over the route's queues, long-polling [`AWAIT_MS`] on each).

#[path = "interop/grpc_scenarios.rs"]
mod grpc_scenarios;
#[path = "interop/harness.rs"]
mod harness;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use harness::*;
use serde_json::Value;

/// Invisible time of the SimpleConsumers' receives (the least the broker
/// accepts, as Apache's proxy).
const INVISIBLE_MS: i64 = 10_000;
/// A re-delivery may be seen this much before popTime + invisible time.
const EARLY_MS: i64 = 300;
/// … and at most this much after it: each receive of a SimpleConsumer
/// names one queue of the route in turn and long-polls [`AWAIT_MS`] when
/// it finds nothing, so it may try the other 3 (empty) queues first.
const LATE_MS: i64 = (QUEUES as i64 - 1) * AWAIT_MS + 2_000;
/// What a FIFO PushConsumer may spend on 60 messages beside its retries.
const FIFO_SLACK_MS: i64 = 6_000;
/// Long poll of a SimpleConsumer's receive.
const AWAIT_MS: i64 = 5_000;

/// A message as `grpc-send` reported it.
#[derive(Clone, Debug)]
struct SentMsg {
    key: String,
    id: String,
    mgroup: String,
}

/// One delivery: `received` of grpc-simple or `consumed` of grpc-push.
#[derive(Clone, Debug)]
struct Got {
    key: String,
    id: String,
    attempt: i64,
    recv_ms: i64,
    /// grpc-simple: the receive call that returned it.
    batch: i64,
    mgroup: String,
    body: String,
    topic: String,
    /// grpc-push: the listener's answer.
    result: String,
}

fn text(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or_default().to_string()
}

fn num(v: &Value, k: &str) -> i64 {
    v[k].as_i64().unwrap_or(-1)
}

fn got_of(events: &[Value], kind: &str) -> Vec<Got> {
    events
        .iter()
        .filter(|e| e["event"] == kind)
        .map(|e| Got {
            key: text(e, "key"),
            id: text(e, "id"),
            attempt: num(e, "attempt"),
            recv_ms: num(e, "recvMs"),
            batch: num(e, "batch"),
            mgroup: text(e, "mgroup"),
            body: text(e, "body"),
            topic: text(e, "topic"),
            result: text(e, "result"),
        })
        .collect()
}

/// Keys of the events of one kind (`acked`, `unacked`), in order.
fn keys_of(events: &[Value], kind: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["event"] == kind)
        .map(|e| text(e, "key"))
        .collect()
}

fn pairs(got: &[Got]) -> Vec<(&str, i64)> {
    got.iter().map(|g| (g.key.as_str(), g.attempt)).collect()
}

/// The keys sent, in send order.
fn keys(sent: &[SentMsg]) -> Vec<&str> {
    sent.iter().map(|m| m.key.as_str()).collect()
}

/// The keys sent per message group, in send order.
fn by_message_group(sent: &[SentMsg]) -> BTreeMap<&str, Vec<&str>> {
    let mut of: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for m in sent {
        of.entry(m.mgroup.as_str()).or_default().push(m.key.as_str());
    }
    of
}

/// `grpc-send`: `count` messages, FIFO in `groups` interleaved message
/// groups when `groups` > 0; all must be answered with a message id.
fn send(broker: &Broker, endpoint: &str, topic: &str, prefix: &str, count: usize, groups: usize) -> Vec<SentMsg> {
    let events = Client::Java5
        .program("grpc-send", broker, topic, "")
        .arg("endpoint", endpoint)
        .arg("prefix", prefix)
        .arg("count", count)
        .arg("message-groups", groups)
        .run();
    let sent: Vec<SentMsg> = events
        .iter()
        .filter(|e| e["event"] == "sent")
        .map(|e| SentMsg {
            key: text(e, "key"),
            id: text(e, "id"),
            mgroup: text(e, "mgroup"),
        })
        .collect();
    assert!(
        sent.len() == count && sent.iter().all(|m| !m.id.is_empty()),
        "grpc-send: {} of {count} sends answered with a message id: {events:?}",
        sent.len()
    );
    sent
}

fn simple(broker: &Broker, endpoint: &str, topic: &str, group: &str) -> Args {
    Client::Java5
        .program("grpc-simple", broker, topic, group)
        .arg("endpoint", endpoint)
        .arg("invisible-ms", INVISIBLE_MS)
        .arg("await-ms", AWAIT_MS)
}

/// Every delivery is a message that was sent, intact: same message id,
/// body, message group and topic.
fn assert_intact(ctx: &str, topic: &str, sent: &[SentMsg], got: &[Got]) {
    let by_key: BTreeMap<&str, &SentMsg> = sent.iter().map(|m| (m.key.as_str(), m)).collect();
    for g in got {
        let m = by_key
            .get(g.key.as_str())
            .unwrap_or_else(|| panic!("{ctx}: delivered a message that was not sent: {g:?}"));
        assert_eq!(g.id, m.id, "{ctx}: {} delivered under another message id", g.key);
        assert_eq!(g.body, format!("body of {}", g.key), "{ctx}: body of {} altered", g.key);
        assert_eq!(g.mgroup, m.mgroup, "{ctx}: message group of {} altered", g.key);
        assert_eq!(g.topic, topic, "{ctx}: {} delivered with topic {}", g.key, g.topic);
    }
}

/// The gap between a message's first delivery and its next one is its
/// invisible time, within [`EARLY_MS`] / [`LATE_MS`].
fn assert_came_back_after(ctx: &str, key: &str, first: &Got, again: &Got, invisible_ms: i64) {
    let gap = again.recv_ms - first.recv_ms;
    assert!(
        (invisible_ms - EARLY_MS..=invisible_ms + LATE_MS).contains(&gap),
        "{ctx}: {key} came back {gap} ms after its delivery; invisible time {invisible_ms} ms"
    );
}

/// Waits for a program started with [`Args::spawn`] to end by itself
/// (bounded) and checks it reported no error.
fn finish(p: &mut Proc, timeout: Duration) -> Vec<Value> {
    p.wait_exit(timeout);
    p.assert_no_error();
    p.events()
}

/// `grpc-push` of `group` on `topic`: the listener fails `fail_once` on
/// its first delivery and `fail_always` every time.
fn push(broker: &Broker, endpoint: &str, topic: &str, group: &str, fail_once: &str, fail_always: &str) -> Proc {
    Client::Java5
        .program("grpc-push", broker, topic, group)
        .arg("endpoint", endpoint)
        .arg("fail-once", fail_once)
        .arg("fail-always", fail_always)
        .spawn()
}

/// Stops a `grpc-push` program and checks what the client made of the
/// broker's settings: FIFO or not, and max attempts.
fn stop_push(ctx: &str, c: &mut Proc, fifo: bool, max_attempts: i64) -> Vec<Value> {
    c.close_stdin();
    let events = finish(c, Duration::from_secs(20));
    let done = events
        .iter()
        .find(|e| e["event"] == "done")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (done["fifo"].as_bool(), done["maxAttempts"].as_i64()),
        (Some(fifo), Some(max_attempts)),
        "{ctx}: the client's settings from the broker's Telemetry answer: want fifo = consumeMessageOrderly of \
         the group ({fifo}) and max attempts = retryMaxTimes + 1 ({max_attempts}): {done}"
    );
    events
}

/// The listener's answers per delivery, (attempt, result).
fn answers(d: &[&Got]) -> Vec<(i64, String)> {
    d.iter().map(|g| (g.attempt, g.result.clone())).collect()
}

/// The deliveries `a` → `b` are `backoff` ms apart (the retry backoff of
/// the broker's settings: 1 s after attempt 1, 5 s after attempt 2).
fn assert_backoff(ctx: &str, a: &Got, b: &Got, backoff: i64) {
    let gap = b.recv_ms - a.recv_ms;
    assert!(
        (backoff - 50..=backoff + 3000).contains(&gap),
        "{ctx}: {} attempt {} came {gap} ms after attempt {}; the backoff is {backoff} ms",
        b.key,
        b.attempt,
        a.attempt
    );
}

/// `%DLQ%<group>` holds exactly the messages `keys` (same message id and
/// body as sent), read by a SimpleConsumer of another group.
fn assert_dead_letters(broker: &Broker, endpoint: &str, group: &str, sent: &[SentMsg], keys: &[&str], ctx: &str) {
    let dlq = format!("%DLQ%{group}");
    let ctx = format!("{ctx}: {dlq}");
    let events = simple(broker, endpoint, &dlq, &format!("CG_read_{group}"))
        .arg("until-acked", keys.len())
        .arg("linger-ms", 1000)
        .run();
    let dead = got_of(&events, "received");
    assert_keys_once(&ctx, keys, &pairs(&dead));
    for g in &dead {
        let m = sent.iter().find(|m| m.key == g.key).unwrap();
        assert_eq!(
            (g.id.as_str(), g.body.clone(), g.topic.as_str()),
            (m.id.as_str(), format!("body of {}", g.key), dlq.as_str()),
            "{ctx}: the dead letter is the message that failed, in the DLQ topic"
        );
    }
}

/// (1) FIFO. 3 message groups × 30 messages, sent interleaved (g0-0, g1-0,
/// g2-0, g0-1, …), to a topic consumed by a group whose config says
/// `consumeMessageOrderly`. A SimpleConsumer receives (batches of 16,
/// invisible time 10 s) and acks each message at once, except the first
/// delivery of `f-g1-5`: that one and whatever of its message group came in
/// the same receive after it stay un-acked, as a FIFO consumer that failed
/// f-g1-5 must do.
/// Checks: per message group the acks are exactly the send order, each
/// message once; g0 and g2 are delivered exactly in send order, once each,
/// attempt 1; g1 is delivered g1-0 … g1-5 and its followers of that
/// receive, then nothing of g1 until g1-5 comes back (attempt 2, after the
/// invisible time), then the followers again (attempt 2) and the rest in
/// order, attempt 1 (with later messages of g1 left after that receive: a
/// broker that does not block the group hands them out before g1-5 comes
/// back). Nothing comes back in the 11 s after the last ack.
#[test]
fn java_grpc_fifo_keeps_each_message_group_in_order() {
    let _g = serial();
    ensure_clients();
    let (mut broker, endpoint) = grpc_scenarios::start();
    let (topic, group) = ("GrpcFifo", "CG_grpc_fifo");
    let ctx = "[java gRPC 5.0.8] FIFO SimpleConsumer";
    // One queue per shard entry: the consumer takes turns over the two,
    // so it comes back to the held group's queue within one long poll,
    // well inside the invisible time.
    broker.create_topic_queues(topic, 2);
    broker.create_group(group, 16, true);
    let (groups, per_group) = (3, 30);
    let sent = send(&broker, &endpoint, topic, "f", groups * per_group, groups);
    let hold = "f-g1-5";
    let events = simple(&broker, &endpoint, topic, group)
        .arg("batch", 16)
        .arg("hold-key", hold)
        .arg("until-acked", groups * per_group)
        .arg("linger-ms", INVISIBLE_MS + 1000)
        .run();
    let got = got_of(&events, "received");
    assert_intact(ctx, topic, &sent, &got);
    let acked = keys_of(&events, "acked");
    let acked: Vec<&str> = acked.iter().map(String::as_str).collect();
    let unacked = keys_of(&events, "unacked");
    let all = keys(&sent);
    assert_keys_once(
        &format!("{ctx}: acks"),
        &all,
        &acked.iter().map(|k| (*k, 0)).collect::<Vec<_>>(),
    );
    let want_of = by_message_group(&sent);
    assert_eq!(want_of.len(), groups, "{ctx}: message groups sent");
    let hold_group = sent.iter().find(|m| m.key == hold).map(|m| m.mgroup.as_str()).unwrap();
    for (mg, want) in &want_of {
        let group_of = |k: &&str| want.contains(k);
        let acks: Vec<&str> = acked.iter().copied().filter(group_of).collect();
        assert_eq!(
            &acks, want,
            "{ctx}: message group {mg} acked out of send order (the consumer acks in delivery order)"
        );
        let d: Vec<&Got> = got.iter().filter(|g| g.mgroup == *mg).collect();
        let keys: Vec<&str> = d.iter().map(|g| g.key.as_str()).collect();
        let attempts: Vec<i64> = d.iter().map(|g| g.attempt).collect();
        if mg != &hold_group {
            assert_eq!(&keys, want, "{ctx}: message group {mg} delivered out of send order");
            assert!(
                attempts.iter().all(|a| *a == 1),
                "{ctx}: message group {mg} (all acked) delivered again: attempts {attempts:?}"
            );
            continue;
        }
        // The held key's first delivery and the rest of that receive's
        // messages of its group (not acked), then all of them again.
        let h = want.iter().position(|k| *k == hold).unwrap();
        assert!(d.len() > h, "{ctx}: message group {mg} delivered only {keys:?}");
        let first_batch = d.get(h).map(|g| g.batch).unwrap_or(-1);
        let held = d[h..].iter().take_while(|g| g.batch == first_batch).count();
        assert!(
            h + held < want.len(),
            "{ctx}: the receive of {hold} (batch of 16) had every later message of {mg}: nothing left to show the \
             group blocked"
        );
        let mut expect: Vec<&str> = want[..h + held].to_vec();
        expect.extend_from_slice(&want[h..]);
        assert_eq!(
            keys,
            expect,
            "{ctx}: message group {mg}: {hold} not acked on its first delivery (with {} more of its group in that \
             receive) must block its group until it comes back; want that order",
            held - 1
        );
        assert_eq!(
            unacked.iter().filter(|k| want.contains(&k.as_str())).count(),
            held,
            "{ctx}: un-acked deliveries of {mg}"
        );
        let mut want_attempts = vec![1; h + held];
        want_attempts.extend(vec![2; held]);
        want_attempts.extend(vec![1; want.len() - h - held]);
        assert_eq!(
            attempts, want_attempts,
            "{ctx}: delivery attempts of message group {mg} ({keys:?})"
        );
        assert_came_back_after(ctx, hold, d[h], d[h + held], INVISIBLE_MS);
    }
    assert!(
        !events
            .iter()
            .any(|e| e["event"] == "ack-error" || e["event"] == "receive-error"),
        "{ctx}: client errors: {events:?}"
    );
    broker.assert_alive(ctx);
}

/// (1b) FIFO with a PushConsumer: a group with `consumeMessageOrderly` and
/// `retryMaxTimes` 2; 3 message groups × 20 messages sent interleaved to 2
/// queues (one per shard entry; a queue has two groups, 40 messages); the
/// listener fails `q-g2-3` once and `q-g0-4` always. A FIFO push consumer
/// retries a failed message itself, in place (after the backoff of the
/// settings: 1 s, then 5 s), and after max attempts forwards it to the DLQ
/// (ForwardMessageToDeadLetterQueue) and goes on with its group. Checks:
/// the client took fifo = true and max attempts 3 from the broker's
/// settings; per message group, the listener saw exactly the send order,
/// with q-g2-3 twice (FAILURE, SUCCESS) and q-g0-4 three times (FAILURE)
/// in place, nothing else twice; all of it within the 6 s of retries +
/// [`FIFO_SLACK_MS`]; `%DLQ%<group>` holds exactly q-g0-4.
#[test]
fn java_grpc_fifo_push_consumer_retries_in_place_then_dead_letters() {
    let _g = serial();
    ensure_clients();
    let (mut broker, endpoint) = grpc_scenarios::start();
    let (topic, group) = ("GrpcFifoPush", "CG_grpc_fifo_push");
    let ctx = "[java gRPC 5.0.8] FIFO PushConsumer";
    broker.create_topic_queues(topic, 2);
    broker.create_group(group, 2, true);
    let sent = send(&broker, &endpoint, topic, "q", 60, 3);
    let (once, always) = ("q-g2-3", "q-g0-4");
    let mut c = push(&broker, &endpoint, topic, group, once, always);
    let consumed = |ev: &[Value]| got_of(ev, "consumed");
    c.wait_for(
        "every message consumed, the last of each message group too",
        Duration::from_secs(40),
        |ev| {
            let d = consumed(ev);
            ["q-g0-19", "q-g1-19", "q-g2-19"]
                .iter()
                .all(|k| d.iter().any(|g| g.key == *k))
        },
    );
    let events = stop_push(ctx, &mut c, true, 3);
    let d = consumed(&events);
    assert_intact(ctx, topic, &sent, &d);
    let want_of = by_message_group(&sent);
    for (mg, want) in &want_of {
        let mut expect: Vec<(String, i64, String)> = Vec::new();
        for k in want {
            let tries = [(*k == once, 2), (*k == always, 3)]
                .iter()
                .find(|(hit, _)| *hit)
                .map_or(1, |(_, n)| *n);
            for attempt in 1..=tries {
                let ok = *k != always && attempt == tries;
                expect.push((
                    k.to_string(),
                    attempt,
                    if ok { "SUCCESS" } else { "FAILURE" }.to_string(),
                ));
            }
        }
        let seen: Vec<(String, i64, String)> = d
            .iter()
            .filter(|g| g.mgroup == *mg)
            .map(|g| (g.key.clone(), g.attempt, g.result.clone()))
            .collect();
        assert_eq!(
            seen, expect,
            "{ctx}: message group {mg}: the listener must see the send order, each failed message retried in place"
        );
    }
    let of = |k: &str| d.iter().filter(|g| g.key == k).collect::<Vec<_>>();
    let (o, a) = (of(once), of(always));
    assert_backoff(ctx, o[0], o[1], 1000);
    assert_backoff(ctx, a[0], a[1], 1000);
    assert_backoff(ctx, a[1], a[2], 5000);
    // Some queue holds two message groups, 40 messages: more than one
    // receive (32 at most). The next orderly receive of that queue waits
    // while the first batch is in flight and must go on once it is acked,
    // not at the end of its long poll (20 s).
    let span = d.iter().map(|g| g.recv_ms).max().unwrap_or(0) - d.iter().map(|g| g.recv_ms).min().unwrap_or(0);
    assert!(
        span <= 6000 + FIFO_SLACK_MS,
        "{ctx}: consuming took {span} ms: the retries take 6 s, the rest should take well under \
         {FIFO_SLACK_MS} ms (a receive waiting on a queue blocked by the batch in flight must be woken by the acks)"
    );
    assert_dead_letters(&broker, &endpoint, group, &sent, &[always], ctx);
    broker.assert_alive(ctx);
}

/// (2) Two consumer groups on one topic, at the same time: each receives
/// every message exactly once and acks it, independently of the other.
/// Group B leaves two messages un-acked on their first delivery: they come
/// back to B (attempt 2, after the invisible time) and never to A, which
/// keeps receiving for an invisible time after its last ack and gets
/// nothing more.
#[test]
fn java_grpc_two_groups_each_get_every_message() {
    let _g = serial();
    ensure_clients();
    let (mut broker, endpoint) = grpc_scenarios::start();
    let topic = "GrpcTwoGroups";
    let ctx = "[java gRPC 5.0.8] two groups";
    broker.create_topic(topic);
    let n = 30;
    let sent = send(&broker, &endpoint, topic, "t", n, 0);
    let nack = ["t-3", "t-17"];
    let mut a = simple(&broker, &endpoint, topic, "CG_grpc_two_a")
        .arg("until-acked", n)
        .arg("linger-ms", INVISIBLE_MS + 1000)
        .label("a")
        .spawn();
    let mut b = simple(&broker, &endpoint, topic, "CG_grpc_two_b")
        .arg("nack-keys", nack.join(","))
        .arg("until-acked", n)
        .arg("linger-ms", 2000)
        .label("b")
        .spawn();
    let all = keys(&sent);
    for (p, name) in [(&mut a, "A"), (&mut b, "B")] {
        let events = finish(p, PROC_TIMEOUT);
        let gctx = format!("{ctx}: group {name}");
        let got = got_of(&events, "received");
        assert_intact(&gctx, topic, &sent, &got);
        let acked = keys_of(&events, "acked");
        assert_keys_once(
            &format!("{gctx}: acks"),
            &all,
            &acked.iter().map(|k| (k.as_str(), 0)).collect::<Vec<_>>(),
        );
        let (again, once): (Vec<Got>, Vec<Got>) = got
            .iter()
            .cloned()
            .partition(|g| name == "B" && nack.contains(&g.key.as_str()));
        let once_keys: Vec<&str> = all
            .iter()
            .copied()
            .filter(|k| name == "A" || !nack.contains(k))
            .collect();
        assert_keys_once(&format!("{gctx}: deliveries"), &once_keys, &pairs(&once));
        assert!(
            once.iter().all(|g| g.attempt == 1),
            "{gctx}: attempts {:?}",
            pairs(&once)
        );
        for k in nack.iter().filter(|_| name == "B") {
            let d: Vec<&Got> = again.iter().filter(|g| g.key == *k).collect();
            let attempts: Vec<i64> = d.iter().map(|g| g.attempt).collect();
            assert_eq!(
                attempts,
                [1, 2],
                "{gctx}: {k}, not acked once, must come back exactly once"
            );
            assert_came_back_after(&gctx, k, d[0], d[1], INVISIBLE_MS);
        }
    }
    broker.assert_alive(ctx);
}

/// (3) A PushConsumer (receives with auto_renew and no invisible duration:
/// 60 s leases; its listener answers at once, so no renewal is needed) of a
/// group with `retryMaxTimes` 2, whose listener answers FAILURE for `p-2`
/// on its first delivery and for `p-5` always. The client answers FAILURE
/// with ChangeInvisibleDuration by the backoff of the broker's Telemetry
/// settings (1 s, 5 s, 10 s, …). Checks: the client took max attempts =
/// retryMaxTimes + 1 = 3 and fifo = false from the settings; every other
/// message is consumed once, attempt 1; p-2 twice (attempt 2 about 1 s after
/// attempt 1); p-5 exactly 3 times (attempts 1, 2, 3, about 1 s and 5 s
/// apart), never a 4th: when its last lease runs out (10 s) the broker puts
/// it in `%DLQ%<group>`, where a SimpleConsumer of another group reads it
/// (same message id, key, body).
#[test]
fn java_grpc_push_consumer_failures_retry_then_dead_letter() {
    let _g = serial();
    ensure_clients();
    let (mut broker, endpoint) = grpc_scenarios::start();
    let (topic, group) = ("GrpcPushRetry", "CG_grpc_push");
    let ctx = "[java gRPC 5.0.8] PushConsumer FAILURE → retry → DLQ";
    broker.create_topic(topic);
    broker.create_group(group, 2, false);
    let sent = send(&broker, &endpoint, topic, "p", 10, 0);
    let (once, always) = ("p-2", "p-5");
    let mut c = push(&broker, &endpoint, topic, group, once, always);
    let all = keys(&sent);
    let consumed = |ev: &[Value]| got_of(ev, "consumed");
    // Backoff 1 s + 5 s between the attempts, and slack for the client.
    c.wait_for(
        "every message consumed, p-2 twice, p-5 three times",
        Duration::from_secs(40),
        |ev| {
            let d = consumed(ev);
            let n = |k: &str| d.iter().filter(|g| g.key == k).count();
            all.iter().all(|k| n(k) >= 1) && n(once) >= 2 && n(always) >= 3
        },
    );
    let third = consumed(&c.events())
        .iter()
        .filter(|g| g.key == always)
        .nth(2)
        .map(|g| g.recv_ms)
        .unwrap();
    // The 3rd failure set its invisible time to 10 s (the backoff after
    // attempt 3); then the broker moves it to the DLQ instead of delivering
    // it a 4th time. Watch a while longer for a 4th delivery.
    std::thread::sleep(Duration::from_millis((third + 10_000 + 3000 - now_ms()).max(0) as u64));
    let events = stop_push(ctx, &mut c, false, 3);
    let d = consumed(&events);
    assert_intact(ctx, topic, &sent, &d);
    let of = |k: &str| d.iter().filter(|g| g.key == k).collect::<Vec<_>>();
    let plain: Vec<Got> = d.iter().filter(|g| g.key != once && g.key != always).cloned().collect();
    let plain_keys: Vec<&str> = all.iter().copied().filter(|k| *k != once && *k != always).collect();
    assert_keys_once(&format!("{ctx}: listener SUCCESS"), &plain_keys, &pairs(&plain));
    assert!(
        plain.iter().all(|g| g.attempt == 1 && g.result == "SUCCESS"),
        "{ctx}: {plain:?}"
    );
    let (o, a) = (of(once), of(always));
    assert_eq!(
        answers(&o),
        [(1, "FAILURE".to_string()), (2, "SUCCESS".to_string())],
        "{ctx}: {once} fails once, then succeeds"
    );
    assert_eq!(
        answers(&a),
        (1..=3).map(|n| (n, "FAILURE".to_string())).collect::<Vec<_>>(),
        "{ctx}: {always} always fails: delivered max attempts (3) times, then never again"
    );
    assert_backoff(ctx, o[0], o[1], 1000);
    assert_backoff(ctx, a[0], a[1], 1000);
    assert_backoff(ctx, a[1], a[2], 5000);
    assert_dead_letters(&broker, &endpoint, group, &sent, &[always], ctx);
    broker.assert_alive(ctx);
}

/// (4) kill -9 of a SYNC_FLUSH broker. 20 messages sent (each send answered
/// OK); a SimpleConsumer receives 12 (batches of 4, invisible time 10 s),
/// acks the first 8 and leaves 4 un-acked; the broker is SIGKILLed at once
/// and restarted on the same data dir and ports; 5 more are sent; a new
/// SimpleConsumer of the group receives until it acked 17. Checks: every
/// message sent before the kill (OK) and after it is delivered; the 8 acked
/// never again; the 4 un-acked exactly once more (attempt 2, no earlier than
/// their invisible time after the first delivery); the other 8 and the 5 new
/// exactly once, attempt 1.
#[test]
fn java_grpc_broker_kill9_loses_nothing_redelivers_only_unacked() {
    let _g = serial();
    ensure_clients();
    let (mut broker, endpoint) = grpc_scenarios::start();
    let (topic, group) = ("GrpcKill", "CG_grpc_kill");
    let ctx = "[java gRPC 5.0.8] kill -9";
    broker.create_topic(topic);
    let mut sent = send(&broker, &endpoint, topic, "k", 20, 0);
    let before = simple(&broker, &endpoint, topic, group)
        .arg("batch", 4)
        .arg("ack-limit", 8)
        .arg("until-received", 12)
        .run();
    broker.kill9();
    let t_kill = Instant::now();
    broker.restart();
    eprintln!("{ctx}: broker restarted after {:?}", t_kill.elapsed());
    sent.extend(send(&broker, &endpoint, topic, "n", 5, 0));
    let first = got_of(&before, "received");
    let acked = keys_of(&before, "acked");
    let unacked = keys_of(&before, "unacked");
    assert!(
        first.len() > 8,
        "{ctx}: before the kill: received only {:?}",
        pairs(&first)
    );
    assert_eq!(
        (acked.len(), first.len(), unacked.len()),
        (8, first.len(), first.len() - 8),
        "{ctx}: before the kill: 8 acked, the rest of the {} received not",
        first.len()
    );
    let first_keys: Vec<&str> = first.iter().map(|g| g.key.as_str()).collect();
    assert_keys_once(&format!("{ctx}: before the kill"), &first_keys, &pairs(&first));
    assert!(
        first.iter().all(|g| g.attempt == 1),
        "{ctx}: before the kill: {:?}",
        pairs(&first)
    );
    let after = simple(&broker, &endpoint, topic, group)
        .arg("until-acked", sent.len() - acked.len())
        .arg("linger-ms", 2000)
        .run();
    let got = got_of(&after, "received");
    assert_intact(ctx, topic, &sent, &first);
    assert_intact(ctx, topic, &sent, &got);
    let want: Vec<&str> = sent
        .iter()
        .map(|m| m.key.as_str())
        .filter(|k| !acked.iter().any(|a| a == k))
        .collect();
    assert_keys_once(
        &format!(
            "{ctx}: after the restart, everything but the {} acked before the kill",
            acked.len()
        ),
        &want,
        &pairs(&got),
    );
    for g in &got {
        match first.iter().find(|f| f.key == g.key) {
            Some(f) => {
                assert_eq!(
                    g.attempt, 2,
                    "{ctx}: {} (not acked before the kill) came back as attempt {}",
                    g.key, g.attempt
                );
                assert!(
                    g.recv_ms >= f.recv_ms + INVISIBLE_MS - EARLY_MS,
                    "{ctx}: {} came back {} ms after its first delivery, before its invisible time ({INVISIBLE_MS} ms)",
                    g.key,
                    g.recv_ms - f.recv_ms
                );
            }
            None => assert_eq!(
                g.attempt, 1,
                "{ctx}: {} never received before, delivered as attempt {}",
                g.key, g.attempt
            ),
        }
    }
    broker.assert_alive(ctx);
}
