//! Broker-side retries (CONSUMER_SEND_MSG_BACK), dead-letter queues and
//! delayed delivery end to end with the real Node client ali-ons 3.12.0
//! (tests/interop/node) against the real `shardmq serve` (127.0.0.1, free
//! ports, temp data dir, SYNC_FLUSH), one scenario at a time.
//!
//! What ali-ons does (lib/consumer/mq_push_consumer.js, 3.12.0):
//! * A handler that throws (or, on a first delivery only, returns
//!   `Consumer.ACTION_RETRY`) makes `consumeSingleMsg` call
//!   `sendMessageBack(msg, 0, …)`: CONSUMER_SEND_MSG_BACK with `delayLevel`
//!   0 ("the server controls the retry interval": level 3 + reconsumeTimes)
//!   and `maxReconsumeTimes` = the consumer option (default 16). The
//!   wrapper it subscribes for `%RETRY%<group>` drops the handler's return
//!   value, so only a throw retries a retried message: the scenarios throw.
//! * If the send-back fails, it re-sends the message itself through its
//!   default producer to `%RETRY%<group>` (RECONSUME_TIME and
//!   MAX_RECONSUME_TIMES + 1 in the header, DELAY 0, i.e. no back-off); if
//!   that fails too, it sleeps 5 s and calls the handler again locally.
//! * A delivery with reconsumeTimes > maxReconsumeTimes is dropped by the
//!   client without calling the handler.
//! * Delays: `msg.delayTimeLevel = L` (property DELAY) and
//!   `msg.setStartDeliverTime(ms)` (property `__STARTDELIVERTIME`, absolute
//!   ms, the Aliyun ONS timer). No transactional producer.
//!
//! Timing: the Node programs and the test read the same wall clock, so
//! "early" has no allowance beyond [`EARLY_MS`] of rounding. The late bound
//! is delay + 10 % + 1 s for the broker plus [`CLIENT_SLACK_MS`] (500 ms) for
//! the client: the broker waking ali-ons' suspended PULL_MESSAGE (15 s
//! long poll), ali-ons' consume loop picking the message up from its
//! process queue, and for retries the CONSUMER_SEND_MSG_BACK round trip
//! after the handler threw — milliseconds on an idle machine.
//! Helpers: tests/interop/retry_scenarios.rs.

#[path = "interop/harness.rs"]
mod harness;
#[path = "interop/retry_scenarios.rs"]
mod retry_scenarios;

use harness::Client::AliOns;
use harness::*;
use retry_scenarios::*;
use std::time::Duration;

/// An ali-ons push consumer of `topic` that runs until stopped and holds all
/// of the topic's queues (and, with `retry`, a queue of `%RETRY%<group>`)
/// before it returns. The topic is created first (ali-ons never
/// auto-creates).
///
/// With `retry` the client polls routes and rebalances every second instead
/// of every 30 s / 10 s: the broker creates a fresh group's `%RETRY%<group>`
/// at the group's first heartbeat (as the Java broker does), but ali-ons
/// sends that heartbeat only after its first route lookups (at start its
/// broker table is empty, so the heartbeat in `MQClient.init` goes
/// nowhere), so it learns the retry route at its next name-server poll; with
/// the default 30 s the first retries of a brand-new group would wait up to
/// 30 s for the client, whatever the broker does.
fn alions_consumer(broker: &Broker, topic: &str, group: &str, args: &[(&str, &str)], retry: bool) -> (Proc, String) {
    let mut a = AliOns.consumer(broker, topic, group).arg("linger-ms", 0);
    if retry {
        a = a.arg("poll-ns-ms", 1000).arg("rebalance-ms", 1000);
    }
    for (k, v) in args {
        a = if v.is_empty() { a.flag(k) } else { a.arg(k, v) };
    }
    let c = a.spawn();
    c.wait_event("started", Duration::from_secs(20));
    let note = wait_queues(&c, retry, group).unwrap_or_default();
    (c, note)
}

/// The handler throws while reconsumeTimes < 3, then succeeds: each message
/// is delivered exactly 4 times with reconsumeTimes 0, 1, 2, 3 in that
/// order; retry `r` (1-based) comes level `3 + r - 1` after the previous
/// delivery (3 s, 2 s, 3 s with [`LEVELS`]): never earlier (the broker
/// stores the retry only after the handler saw the message), at most
/// [`late_bound_ms`] later. Every delivery is intact (body, keys, tag, user
/// properties) and shows the original topic (ali-ons restores it from
/// `RETRY_TOPIC`, which retries must carry); retries keep the UNIQ_KEY the
/// broker gave the first record (ali-ons sets none), carry one
/// `ORIGIN_MESSAGE_ID` (the first record's offset msgId or UNIQ_KEY) and no
/// `DELAY` (the back-off level must not survive into the retry record).
#[test]
fn alions_handler_throws_redelivered_with_level_delays() {
    let (_g, broker) = start(&[("messageDelayLevel", LEVELS)]);
    let (topic, group) = ("OnsRetry", "CG_ons_retry");
    let ctx = "[ali-ons] handler throws ×3";
    let (mut c, note) = alions_consumer(&broker, topic, group, &[("fail-times", "3")], true);
    let sent = produce(AliOns, &broker, topic, "r", 0, 4);
    let budget = Duration::from_millis((late_bound_ms(3000) * 2 + late_bound_ms(2000) + 10_000) as u64);
    wait_deliveries(&c, budget, |d| {
        let m = by_key(d);
        m.len() == sent.len() && m.values().all(|v| v.len() >= 4)
    });
    std::thread::sleep(Duration::from_secs(4)); // a fifth delivery would show up by now
    c.stop();
    let got = by_key(&deliveries(&c));
    for m in &sent {
        let d = got.get(&m.key).cloned().unwrap_or_default();
        let times: Vec<i64> = d.iter().map(|x| x.reconsume_times).collect();
        let gaps: Vec<i64> = d.windows(2).map(|w| w[1].recv_ms - w[0].recv_ms).collect();
        assert_eq!(
            times,
            [0, 1, 2, 3],
            "{ctx}: {} delivered with reconsumeTimes {times:?} (gaps {gaps:?} ms), want exactly [0, 1, 2, 3] \
             (CONSUMER_SEND_MSG_BACK must store a retry with reconsumeTimes + 1). {note}",
            m.key
        );
        eprintln!("{ctx}: {} gaps {gaps:?} ms (levels 3 s, 2 s, 3 s)", m.key);
        for (r, w) in d.windows(2).enumerate() {
            let delay = level_ms(3 + r);
            let what = format!(
                "retry {} after level {} = {delay} ms; gaps {gaps:?} {note}",
                r + 1,
                3 + r
            );
            assert_on_time(
                ctx,
                &w[1],
                w[0].recv_ms + delay,
                w[0].recv_ms + late_bound_ms(delay),
                &what,
            );
        }
        let first_uniq = d[0].uniq_key.clone();
        assert!(
            first_uniq.is_some(),
            "{ctx}: {} has no UNIQ_KEY: the broker must set one for ali-ons",
            m.key
        );
        for x in &d {
            assert_same_message(ctx, topic, m, x);
            assert_eq!(x.uniq_key, first_uniq, "{ctx}: {} changed UNIQ_KEY on retry", m.key);
            assert!(
                !x.sys.contains_key("DELAY"),
                "{ctx}: {} still has DELAY: {:?}",
                m.key,
                x.sys
            );
        }
        assert_eq!(
            d[0].retry_topic, None,
            "{ctx}: first delivery of {} has RETRY_TOPIC",
            m.key
        );
        let origin = d[1].origin_msg_id.clone();
        for x in &d[1..] {
            assert_eq!(
                x.retry_topic.as_deref(),
                Some(topic),
                "{ctx}: retry of {} must carry RETRY_TOPIC",
                m.key
            );
            assert!(
                x.origin_msg_id.is_some() && x.origin_msg_id == origin,
                "{ctx}: retries of {} must carry one ORIGIN_MESSAGE_ID, got {:?}",
                m.key,
                d.iter().map(|y| &y.origin_msg_id).collect::<Vec<_>>()
            );
        }
        let o = origin.unwrap_or_default();
        assert!(
            o == d[0].offset_msg_id || Some(&o) == first_uniq.as_ref(),
            "{ctx}: ORIGIN_MESSAGE_ID {o} of {} is neither the first record's offset msgId {} nor its UNIQ_KEY {:?}",
            m.key,
            d[0].offset_msg_id,
            first_uniq
        );
    }
    broker_alive(broker, ctx);
}

/// The handler always throws, with ali-ons `maxReconsumeTimes` 2 (sent in
/// the send-back header): each message is delivered exactly 3 times
/// (reconsumeTimes 0, 1, 2 — the third failure has reconsumeTimes ≥ max, so
/// the broker moves it to `%DLQ%<group>` instead of retrying) and not again
/// within the next level's delay + slack ([`late_bound_ms`] of level 5).
/// Then another ali-ons group reading `%DLQ%<group>` from the first offset
/// gets each message exactly once, intact, with topic `%DLQ%<group>` and
/// `RETRY_TOPIC` = the original topic.
#[test]
fn alions_exhausted_retries_land_in_dlq_and_are_consumable() {
    let (_g, broker) = start(&[("messageDelayLevel", LEVELS)]);
    let (topic, group) = ("OnsDlq", "CG_ons_dlq_src");
    let ctx = "[ali-ons] retries exhausted → DLQ";
    let args = [("fail-always", ""), ("max-reconsume-times", "2")];
    let (mut c, note) = alions_consumer(&broker, topic, group, &args, true);
    let sent = produce(AliOns, &broker, topic, "d", 0, 3);
    let budget = Duration::from_millis((late_bound_ms(3000) + late_bound_ms(2000) + 10_000) as u64);
    wait_deliveries(&c, budget, |d| {
        let m = by_key(d);
        m.len() == sent.len() && m.values().all(|v| v.len() >= 3)
    });
    std::thread::sleep(Duration::from_millis(late_bound_ms(level_ms(5)) as u64));
    c.stop();
    let got = by_key(&deliveries(&c));
    for m in &sent {
        let times: Vec<i64> = got
            .get(&m.key)
            .map(|d| d.iter().map(|x| x.reconsume_times).collect())
            .unwrap_or_default();
        assert_eq!(
            times,
            [0, 1, 2],
            "{ctx}: {} delivered with reconsumeTimes {times:?}, want exactly [0, 1, 2]: with maxReconsumeTimes 2 \
             the failure of delivery reconsumeTimes=2 goes to %DLQ%{group} and never comes back. {note}",
            m.key
        );
    }
    let dlq = format!("%DLQ%{group}");
    let mut r = AliOns
        .consumer(&broker, &dlq, "CG_ons_dlq_reader")
        .arg("from", "first")
        .arg("expect", sent.len())
        .arg("linger-ms", 3000)
        .arg("timeout-ms", 40_000)
        .spawn();
    r.wait_exit(PROC_TIMEOUT);
    r.assert_no_error();
    let d = deliveries(&r);
    let want: Vec<&Sent> = sent.iter().collect();
    assert_once(
        &format!("{ctx}: ali-ons consumer of {dlq} (group CG_ons_dlq_reader, from first)"),
        &want,
        &d,
    );
    for x in &d {
        let m = sent.iter().find(|m| m.key == x.key).expect("sent");
        assert_same_message(ctx, &dlq, m, x);
        assert_eq!(
            x.retry_topic.as_deref(),
            Some(topic),
            "{ctx}: DLQ record of {} must keep RETRY_TOPIC: {:?}",
            x.key,
            x.sys
        );
    }
    broker_alive(broker, ctx);
}

/// `msg.setStartDeliverTime(now + 4000)` (property `__STARTDELIVERTIME`,
/// absolute ms) and `msg.delayTimeLevel = 3` (property DELAY, 3 s with
/// [`LEVELS`]): each message arrives exactly once at the running consumer,
/// never before it is due (deliver time; send start + 3 s for the level),
/// and no later than due + 10 % + 1 s + [`CLIENT_SLACK_MS`] (from the send's
/// end for the level), intact, in its original topic. The store audit (a
/// fresh Java group from the first offset, and the topic's max offsets)
/// finds each stored exactly once — a timer that moved a message twice
/// shows up there even if the running consumer's offsets hid it.
#[test]
fn alions_start_deliver_time_and_delay_level_on_time_exactly_once() {
    let (_g, broker) = start(&[("messageDelayLevel", LEVELS)]);
    let (topic, group) = ("OnsDelay", "CG_ons_delay");
    let ctx = "[ali-ons] __STARTDELIVERTIME / DELAY";
    let (mut c, _) = alions_consumer(&broker, topic, group, &[], false);
    let p = AliOns.producer(&broker, topic, "PG_ons_delay");
    let at = produce_timed(p.arg("deliver-after-ms", 4000), "at", 5);
    let p = AliOns.producer(&broker, topic, "PG_ons_delay");
    let lvl = produce_timed(p.arg("delay-level", 3), "lvl", 5);
    let all: Vec<&SentAt> = at.iter().chain(lvl.iter()).collect();
    wait_deliveries(&c, Duration::from_millis((late_bound_ms(4000) + 15_000) as u64), |d| {
        by_key(d).len() >= all.len()
    });
    std::thread::sleep(Duration::from_secs(2)); // a duplicate would show up by now
    c.stop();
    let d = deliveries(&c);
    let want: Vec<&Sent> = all.iter().map(|m| &m.sent).collect();
    assert_once(&format!("{ctx}: running consumer"), &want, &d);
    for x in &d {
        let m = all.iter().find(|m| m.sent.key == x.key).expect("sent");
        let due = m.deliver_at_ms.unwrap_or(m.start_ms + level_ms(3));
        eprintln!("{ctx}: {} received {} ms after due", x.key, x.recv_ms - due);
        match m.deliver_at_ms {
            Some(due) => {
                let what = format!("__STARTDELIVERTIME={due}, 4000 ms after the send started");
                assert_on_time(ctx, x, due, due + late_bound_ms(4000) - 4000, &what);
            }
            None => {
                let delay = level_ms(3);
                assert_on_time(
                    ctx,
                    x,
                    m.start_ms + delay,
                    m.end_ms + late_bound_ms(delay),
                    "DELAY=3 from the send",
                );
            }
        }
        assert_same_message(ctx, topic, &m.sent, x);
    }
    audit_topic(&broker, topic, "CG_ons_delay_audit", &want, want.len() as i64, ctx);
    broker_alive(broker, ctx);
}

fn broker_alive(mut broker: Broker, ctx: &str) {
    broker.assert_alive(ctx);
}
