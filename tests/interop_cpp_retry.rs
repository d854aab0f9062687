//! Delayed delivery (`DELAY` levels) and transactional messages end to end
//! with the real C++ client core 2.1.0 (librocketmq.so bundled by PyPI
//! rocketmq-python-cvs 2.1.0.3; programs in tests/interop/python) against
//! the real `shardmq serve` (127.0.0.1, free ports, temp data dir,
//! SYNC_FLUSH), one scenario at a time.
//!
//! What the binding exposes (rocketmq/client.py of rocketmq-python-cvs
//! 2.1.0.3, `__all__` = SendStatus, Message, RecvMessage, Producer,
//! PushConsumer, PullConsumer):
//! * `Message.set_delay_time_level(L)` → C `SetDelayTimeLevel` (property
//!   DELAY). No deliver-time / timer property setter beyond
//!   `set_property`, so the 5.x TIMER_* properties are not a C++ 2.1.0 feature.
//! * No transactional producer class. The bundled core exports the C API
//!   `CreateTransactionProducer` / `SendMessageTransaction` (2.1.0
//!   include/CProducer.h); tests/interop/python/txproducer.py drives it
//!   through ctypes with the signatures the official rocketmq-client-python
//!   2.0.0 `TransactionMQProducer` uses. The C++ core does the protocol:
//!   SEND_MESSAGE with TRAN_MSG, END_TRANSACTION, answering
//!   CHECK_TRANSACTION_STATE with a oneway END_TRANSACTION.
//!
//! Timing: programs and test read the same wall clock ([`EARLY_MS`] of
//! rounding only). Late bound: delay + 10 % + 1 s for the broker plus
//! [`CLIENT_SLACK_MS`] (500 ms) for the C++ push consumer (the broker waking
//! its suspended PULL_MESSAGE, the client's consume thread pool, the ctypes
//! callback into Python) — milliseconds on an idle machine.
//! Helpers: tests/interop/retry_scenarios.rs.

#[path = "interop/harness.rs"]
mod harness;
#[path = "interop/retry_scenarios.rs"]
mod retry_scenarios;

use harness::Client::Cpp;
use harness::*;
use retry_scenarios::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

/// A C++ push consumer of `topic` that runs until stopped. A single C++
/// consumer has rebalanced (holds every queue) when start() returned, i.e.
/// at its "started" event.
fn cpp_consumer(broker: &Broker, topic: &str, group: &str) -> Proc {
    let c = Cpp.consumer(broker, topic, group).arg("linger-ms", 0).spawn();
    c.wait_event("started", Duration::from_secs(20));
    c
}

/// Runs a C++ producer to its end; every send must succeed (C++ names
/// SEND_OK "OK").
fn produce_cpp(args: Args, prefix: &str, count: u64) -> Vec<SentAt> {
    let events = args.arg("prefix", prefix).arg("count", count).run();
    let sent = sent_at(&events);
    assert!(
        events.iter().any(|e| e["event"] == "done") && sent.len() as u64 == count,
        "producer sent {} of {count} messages; events: {events:?}",
        sent.len()
    );
    for m in &sent {
        assert_eq!(
            m.sent.status.as_deref(),
            Some("OK"),
            "{} (SYNC_FLUSH, no slave)",
            m.sent.key
        );
    }
    sent
}

/// `set_delay_time_level(3)` and `(2)` (3 s and 2 s with [`LEVELS`]) from
/// the C++ producer: the running C++ consumer gets each message exactly
/// once, no earlier than send start + the level's delay (minus
/// [`EARLY_MS`]) and no later than send end + [`late_bound_ms`]\(delay),
/// intact, in its original topic, without the `DELAY` property. The store
/// audit (a fresh Java group from the first offset, and the topic's max
/// offsets) finds each stored exactly once.
#[test]
fn cpp_delay_level_arrives_on_time_exactly_once() {
    let (_g, broker) = start(&[("messageDelayLevel", LEVELS)]);
    let (topic, group) = ("CppDelay", "CG_cpp_delay");
    let ctx = "[cpp] DELAY levels 3 and 2";
    let mut c = cpp_consumer(&broker, topic, group);
    let l3 = produce_cpp(
        Cpp.producer(&broker, topic, "PG_cpp_delay").arg("delay-level", 3),
        "L3",
        5,
    );
    let l2 = produce_cpp(
        Cpp.producer(&broker, topic, "PG_cpp_delay").arg("delay-level", 2),
        "L2",
        5,
    );
    let all: Vec<(&SentAt, i64)> = l3
        .iter()
        .map(|m| (m, level_ms(3)))
        .chain(l2.iter().map(|m| (m, level_ms(2))))
        .collect();
    wait_deliveries(&c, Duration::from_millis((late_bound_ms(3000) + 15_000) as u64), |d| {
        by_key(d).len() >= all.len()
    });
    std::thread::sleep(Duration::from_secs(2)); // a duplicate would show up by now
    c.stop();
    let d = deliveries(&c);
    let want: Vec<&Sent> = all.iter().map(|(m, _)| &m.sent).collect();
    assert_once(&format!("{ctx}: running consumer"), &want, &d);
    for x in &d {
        let (m, delay) = all.iter().find(|(m, _)| m.sent.key == x.key).expect("sent");
        eprintln!(
            "{ctx}: {} received {} ms after due",
            x.key,
            x.recv_ms - m.start_ms - delay
        );
        let what = format!("DELAY level of {delay} ms from the send");
        assert_on_time(ctx, x, m.start_ms + delay, m.end_ms + late_bound_ms(*delay), &what);
        assert_same_message(ctx, topic, &m.sent, x);
        assert!(
            !x.sys.contains_key("DELAY"),
            "{ctx}: {} still has DELAY: {:?}",
            x.key,
            x.sys
        );
    }
    audit_topic(&broker, topic, "CG_cpp_delay_audit", &want, want.len() as i64, ctx);
    broker_alive(broker, ctx);
}

// ---------------------------------------------------------------------------
// Transactions
// ---------------------------------------------------------------------------

/// What one transaction run saw. Fields drop in order: the programs (their
/// reports print on a failure while their scratch dirs exist), the broker,
/// then the serialization guard.
struct CppTx {
    sent: Vec<SentAt>,
    outcome: Vec<String>,
    deliveries: Vec<Delivery>,
    checks: Vec<Value>,
    _procs: (Proc, Proc),
    broker: Broker,
    _guard: std::sync::MutexGuard<'static, ()>,
}

impl CppTx {
    fn of(&self, outcome: &str) -> Vec<&Sent> {
        self.sent
            .iter()
            .zip(&self.outcome)
            .filter(|(_, o)| *o == outcome)
            .map(|(m, _)| &m.sent)
            .collect()
    }
}

/// Broker with [`TX_CONF`] (check half messages older than 2 s, every
/// second); a running C++ consumer; `txproducer.py` sends `count` messages
/// with `outcomes` (cycled); waits until the consumer has every message of
/// the `delivered` outcomes, then `quiet` more.
fn run_cpp_tx(topic: &str, outcomes: &str, count: u64, quiet: Duration, delivered: &[&str]) -> CppTx {
    let (guard, broker) = start(&TX_CONF);
    let mut c = cpp_consumer(&broker, topic, &format!("CG_{topic}"));
    let mut p = Cpp
        .program("txproducer", &broker, topic, &format!("PG_{topic}"))
        .arg("outcome", outcomes)
        .arg("prefix", "x")
        .arg("count", count)
        .spawn();
    p.wait_event("sent_all", Duration::from_secs(30));
    let events = p.events();
    let sent = sent_at(&events);
    let outcome: Vec<String> = events
        .iter()
        .filter(|e| e["event"] == "sent")
        .map(|e| e["outcome"].as_str().unwrap_or("").to_string())
        .collect();
    let want: BTreeSet<String> = sent
        .iter()
        .zip(&outcome)
        .filter(|(_, o)| delivered.contains(&o.as_str()))
        .map(|(m, _)| m.sent.key.clone())
        .collect();
    wait_deliveries(&c, Duration::from_secs(20), |d| {
        want.iter().all(|k| d.iter().any(|x| &x.key == k))
    });
    std::thread::sleep(quiet);
    c.stop();
    p.close_stdin();
    p.wait_exit(Duration::from_secs(20));
    p.assert_no_error();
    for m in &sent {
        assert_eq!(
            m.sent.status.as_deref(),
            Some("OK"),
            "[cpp] half message {}",
            m.sent.key
        );
        assert!(
            m.sent.msg_id.as_deref().is_some_and(|s| !s.is_empty()),
            "[cpp] {}: no msgId",
            m.sent.key
        );
    }
    CppTx {
        checks: p.events_of("check"),
        deliveries: deliveries(&c),
        sent,
        outcome,
        _procs: (c, p),
        broker,
        _guard: guard,
    }
}

/// Local transaction COMMIT or ROLLBACK (END_TRANSACTION right after the
/// half message): committed messages are delivered exactly once, intact,
/// without `TRAN_MSG`; rolled-back ones never, also not after
/// transactionTimeOut + several check intervals (7 s of quiet after the
/// committed ones arrived); the broker checks back neither kind.
#[test]
fn cpp_tx_commit_delivered_rollback_never() {
    let ctx = "[cpp] transaction commit / rollback";
    let run = run_cpp_tx("CppTxEnd", "commit,rollback", 6, Duration::from_secs(7), &["commit"]);
    assert_once(
        &format!("{ctx} (only the committed ones)"),
        &run.of("commit"),
        &run.deliveries,
    );
    for x in &run.deliveries {
        let m = run.sent.iter().find(|m| m.sent.key == x.key).expect("sent");
        assert_same_message(ctx, "CppTxEnd", &m.sent, x);
        assert!(
            !x.sys.contains_key("TRAN_MSG"),
            "{ctx}: {} delivered with TRAN_MSG: {:?}",
            x.key,
            x.sys
        );
    }
    assert!(
        run.checks.is_empty(),
        "{ctx}: broker checked back resolved messages: {:?}",
        run.checks
    );
    broker_alive(run.broker, ctx);
}

/// Local transaction UNKNOWN (END_TRANSACTION with TransactionNotType),
/// resolved by the broker's CHECK_TRANSACTION_STATE to the C++ producer's
/// connection after transactionTimeOut (2 s): unknown→commit messages are
/// delivered exactly once, intact; unknown→rollback and unknown-forever
/// never (6 s of quiet after the commits arrived). Every unknown message is
/// checked at least once (unknown-forever at least twice: an UNKNOWN answer
/// leaves it open), never before send start + transactionTimeOut (minus
/// [`EARLY_MS`]), and the checked message carries the UNIQ_KEY the send
/// returned as msgId (that is how the client finds its transaction).
#[test]
fn cpp_tx_unknown_resolved_by_check_back() {
    let ctx = "[cpp] transaction check-back";
    let outcomes = "unknown-then-commit,unknown-then-rollback,unknown-forever";
    let run = run_cpp_tx(
        "CppTxCheck",
        outcomes,
        6,
        Duration::from_secs(6),
        &["unknown-then-commit"],
    );
    let checks = &run.checks;
    assert_once(
        &format!("{ctx} (only unknown-then-commit; checks {checks:?})"),
        &run.of("unknown-then-commit"),
        &run.deliveries,
    );
    for (m, outcome) in run.sent.iter().zip(&run.outcome) {
        let k = &m.sent.key;
        let c: Vec<&Value> = checks.iter().filter(|e| e["key"] == k.as_str()).collect();
        let first = c.first().and_then(|e| e["time"].as_i64()).map(|t| t - m.start_ms);
        eprintln!(
            "{ctx}: {k} ({outcome}) checked {} times, first {first:?} ms after the send",
            c.len()
        );
        let min = if outcome == "unknown-forever" { 2 } else { 1 };
        assert!(
            c.len() >= min,
            "{ctx}: {k} ({outcome}) checked {} times, want ≥ {min}; checks {checks:?}",
            c.len()
        );
        for e in &c {
            let t = e["time"].as_i64().unwrap_or(0);
            assert!(
                t >= m.start_ms + 2000 - EARLY_MS,
                "{ctx}: {k} checked {} ms after the send",
                t - m.start_ms
            );
            assert_eq!(
                e["uniqKey"].as_str(),
                m.sent.msg_id.as_deref(),
                "{ctx}: check of {k}: {e}"
            );
        }
    }
    for x in &run.deliveries {
        let m = run.sent.iter().find(|m| m.sent.key == x.key).expect("sent");
        assert_same_message(ctx, "CppTxCheck", &m.sent, x);
        assert!(
            !x.sys.contains_key("TRAN_MSG"),
            "{ctx}: {} delivered with TRAN_MSG: {:?}",
            x.key,
            x.sys
        );
    }
    broker_alive(run.broker, ctx);
}

fn broker_alive(mut broker: Broker, ctx: &str) {
    broker.assert_alive(ctx);
}
