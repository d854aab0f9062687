//! Broker-side retries (CONSUMER_SEND_MSG_BACK), dead-letter queues
//! (`%DLQ%<group>`), delayed delivery (`DELAY` levels and the 5.x
//! `TIMER_DELIVER_MS` / `TIMER_DELAY_SEC` properties) and transactional
//! messages, end to end with the reference Java client (rocketmq-client
//! 4.9.8, tests/interop/java) against the real `shardmq serve` (127.0.0.1,
//! free ports, temp data dir, SYNC_FLUSH), one scenario at a time.
//!
//! Timing: every delayed or retried delivery must come no earlier than it is
//! due (minus [`EARLY_MS`] of rounding; the programs and the test share one
//! clock) and no later than [`late_bound_ms`] (delay + 10 % + 1 s for the
//! broker + [`CLIENT_SLACK_MS`] for the client's pull and consume path).
//! Delays are short ([`LEVELS`]) so the file runs in a few minutes.
//! Helpers: tests/interop/retry_scenarios.rs.

#[path = "interop/harness.rs"]
mod harness;
#[path = "interop/retry_scenarios.rs"]
mod retry_scenarios;

use harness::*;
use retry_scenarios::*;
use std::collections::BTreeSet;
use std::time::Duration;

/// RECONSUME_LATER three times, then success: each message is delivered
/// exactly 4 times with reconsumeTimes 0, 1, 2, 3 in that order; retry `r`
/// (1-based) comes `level 3 + r - 1` after the previous delivery (3 s, 2 s,
/// 3 s with [`LEVELS`]): never earlier (the broker stores the retry after the
/// listener saw the message), at most [`late_bound_ms`] later. Retried
/// deliveries carry `RETRY_TOPIC` = the original topic (the client restores
/// the topic name from it), the same `ORIGIN_MESSAGE_ID` (the first
/// record's offset msgId, or the msgId if the client had to re-send it
/// itself) and the same UNIQ_KEY (msgId) as the first delivery; the `DELAY`
/// property used for the back-off is gone.
#[test]
fn java_reconsume_later_redelivers_with_level_delays() {
    let (_g, broker) = start(&[("messageDelayLevel", LEVELS)]);
    let (topic, group) = ("RetryLater", "CG_retry_later");
    let ctx = "[java] RECONSUME_LATER ×3";
    warm(&broker, topic);
    let (mut c, note) = running_consumer(&broker, topic, group, &[("reconsume-later", "3")], true);
    let sent = produce(Client::Java, &broker, topic, "r", 0, 4);
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
        for x in &d {
            assert_same_message(ctx, topic, m, x);
            assert_eq!(
                x.msg_id, d[0].msg_id,
                "{ctx}: {} changed msgId (UNIQ_KEY) on retry",
                m.key
            );
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
                "{ctx}: retry of {} must carry RETRY_TOPIC = {topic}",
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
            o == d[0].offset_msg_id || o == d[0].msg_id,
            "{ctx}: ORIGIN_MESSAGE_ID {o} of {} is neither the first record's offset msgId {} nor its msgId {}",
            m.key,
            d[0].offset_msg_id,
            d[0].msg_id
        );
    }
    broker_alive(broker, ctx);
}

/// Always RECONSUME_LATER with `maxReconsumeTimes` 2: each message is
/// delivered exactly 3 times (reconsumeTimes 0, 1, 2; the third failure has
/// reconsumeTimes ≥ max, so the broker moves it to `%DLQ%<group>` instead of
/// retrying) and not again within the next level's delay + slack. Then
/// another group reading `%DLQ%<group>` from the first offset gets each
/// message exactly once, with the original body, keys, tag, user properties
/// and `RETRY_TOPIC` = the original topic (a DLQ record keeps all
/// properties; the topic name is `%DLQ%<group>`, which the client does not
/// rewrite for another group).
#[test]
fn java_exhausted_retries_land_in_dlq_and_are_consumable() {
    let (_g, broker) = start(&[("messageDelayLevel", LEVELS)]);
    let (topic, group) = ("RetryDlq", "CG_dlq_src");
    let ctx = "[java] retries exhausted → DLQ";
    warm(&broker, topic);
    let args = [("reconsume-later-always", ""), ("max-reconsume-times", "2")];
    let (mut c, note) = running_consumer(&broker, topic, group, &args, true);
    let sent = produce(Client::Java, &broker, topic, "d", 0, 3);
    let budget = Duration::from_millis((late_bound_ms(3000) + late_bound_ms(2000) + 10_000) as u64);
    wait_deliveries(&c, budget, |d| {
        let m = by_key(d);
        m.len() == sent.len() && m.values().all(|v| v.len() >= 3)
    });
    // A fourth delivery would be a retry at level 5 (3 s) after the third.
    std::thread::sleep(Duration::from_millis(late_bound_ms(level_ms(5)) as u64));
    c.stop();
    let got = by_key(&deliveries(&c));
    for m in &sent {
        let d = got.get(&m.key).cloned().unwrap_or_default();
        let times: Vec<i64> = d.iter().map(|x| x.reconsume_times).collect();
        let shown: Vec<i64> = times.iter().copied().take(8).collect();
        assert!(
            times == [0, 1, 2],
            "{ctx}: {} delivered {} times with reconsumeTimes {shown:?}{}, want exactly [0, 1, 2]: with \
             maxReconsumeTimes 2 the failure of delivery reconsumeTimes=2 goes to %DLQ%{group} and never comes \
             back. {note}",
            m.key,
            times.len(),
            if times.len() > 8 { " …" } else { "" }
        );
    }
    let dlq = format!("%DLQ%{group}");
    let mut r = Client::Java
        .consumer(&broker, &dlq, "CG_dlq_reader")
        .arg("from", "first")
        .arg("expect", sent.len())
        .arg("linger-ms", 3000)
        .arg("timeout-ms", 30_000)
        .spawn();
    r.wait_exit(PROC_TIMEOUT);
    r.assert_no_error();
    let d = deliveries(&r);
    let want: Vec<&Sent> = sent.iter().collect();
    assert_once(
        &format!("{ctx}: consumer of {dlq} (group CG_dlq_reader, from first)"),
        &want,
        &d,
    );
    for x in &d {
        let m = sent.iter().find(|m| m.key == x.key).expect("sent");
        assert_same_message(ctx, &dlq, m, x);
        assert_eq!(
            x.retry_topic.as_deref(),
            Some(topic),
            "{ctx}: DLQ record of {} must keep RETRY_TOPIC = {topic}: {:?}",
            x.key,
            x.sys
        );
    }
    broker_alive(broker, ctx);
}

/// `DELAY` level 3 (3 s with [`LEVELS`]): each message arrives once, no
/// earlier than send start + 3 s (minus [`EARLY_MS`]) and no later than send
/// end + [`late_bound_ms`]\(3 s), in its original topic, intact, without the
/// `DELAY` property (a consumer re-sending it would delay it again).
#[test]
fn java_delay_level_arrives_on_time_never_early() {
    let (_g, broker) = start(&[("messageDelayLevel", LEVELS)]);
    let (topic, group) = ("DelayLevel", "CG_delay_level");
    let ctx = "[java] DELAY level 3";
    warm(&broker, topic);
    let (mut c, _) = running_consumer(&broker, topic, group, &[], false);
    let p = Client::Java.producer(&broker, topic, "PG_delay").arg("delay-level", 3);
    let sent = produce_timed(p, "L", 6);
    let delay = level_ms(3);
    wait_deliveries(&c, Duration::from_millis((late_bound_ms(delay) + 15_000) as u64), |d| {
        by_key(d).len() >= sent.len()
    });
    std::thread::sleep(Duration::from_secs(2));
    c.stop();
    let d = deliveries(&c);
    assert_once(ctx, &sent.iter().map(|m| &m.sent).collect::<Vec<_>>(), &d);
    for x in &d {
        let m = sent.iter().find(|m| m.sent.key == x.key).expect("sent");
        let what = format!("DELAY=3 = {delay} ms from the send");
        assert_on_time(ctx, x, m.start_ms + delay, m.end_ms + late_bound_ms(delay), &what);
        assert_same_message(ctx, topic, &m.sent, x);
        assert!(
            !x.sys.contains_key("DELAY"),
            "{ctx}: {} still has DELAY: {:?}",
            x.key,
            x.sys
        );
    }
    broker_alive(broker, ctx);
}

/// 5.x timer properties put on the wire by the 4.9.8 client:
/// `TIMER_DELIVER_MS` = send time + 4 s (due at exactly that instant) and
/// `TIMER_DELAY_SEC` = 3 (due 3 s after the broker stored it, so no earlier
/// than send start + 3 s). Each message arrives once, never early, and no
/// later than due + [`late_bound_ms`]\(delay) − delay (send end for the
/// relative one), intact, in its original topic.
#[test]
fn java_deliver_time_arrives_on_time_never_early() {
    let (_g, broker) = start(&[]);
    let (topic, group) = ("DelayTimer", "CG_delay_timer");
    let ctx = "[java] TIMER_DELIVER_MS / TIMER_DELAY_SEC";
    warm(&broker, topic);
    let (mut c, _) = running_consumer(&broker, topic, group, &[], false);
    let p = Client::Java.producer(&broker, topic, "PG_timer");
    let at = produce_timed(p.arg("deliver-at-ms-from-now", 4000), "at", 4);
    let p = Client::Java.producer(&broker, topic, "PG_timer");
    let sec = produce_timed(p.arg("delay-sec", 3), "sec", 4);
    let all: Vec<&SentAt> = at.iter().chain(sec.iter()).collect();
    wait_deliveries(&c, Duration::from_millis((late_bound_ms(4000) + 15_000) as u64), |d| {
        by_key(d).len() >= all.len()
    });
    std::thread::sleep(Duration::from_secs(2));
    c.stop();
    let d = deliveries(&c);
    assert_once(ctx, &all.iter().map(|m| &m.sent).collect::<Vec<_>>(), &d);
    for x in &d {
        let m = all.iter().find(|m| m.sent.key == x.key).expect("sent");
        match m.deliver_at_ms {
            Some(due) => {
                let what = format!("TIMER_DELIVER_MS={due}, 4000 ms after the send");
                assert_on_time(ctx, x, due, due + late_bound_ms(4000) - 4000, &what);
            }
            None => {
                let what = "TIMER_DELAY_SEC=3 from the send";
                assert_on_time(ctx, x, m.start_ms + 3000, m.end_ms + late_bound_ms(3000), what);
            }
        }
        assert_same_message(ctx, topic, &m.sent, x);
    }
    broker_alive(broker, ctx);
}

/// Delayed messages (level 10 = 8 s) survive a SIGKILL of the broker right
/// after the sends and a restart well before they are due: the running
/// consumer gets each exactly once (it had consumed none of them before the
/// kill, so no lost offset commit can excuse a duplicate), never early, at
/// most [`late_bound_ms`] + [`RECONNECT_SLACK_MS`] late; the store audit
/// finds each stored exactly once in the topic.
#[test]
fn java_delayed_messages_survive_kill9() {
    let (_g, mut broker) = start(&[("messageDelayLevel", LEVELS)]);
    let (topic, group) = ("DelayKill", "CG_delay_kill");
    let ctx = "[java] delayed messages across kill -9";
    warm(&broker, topic);
    let (mut c, _) = running_consumer(&broker, topic, group, &[], false);
    let delay = level_ms(10);
    let p = Client::Java
        .producer(&broker, topic, "PG_delay_kill")
        .arg("delay-level", 10);
    let sent = produce_timed(p, "K", 6);
    broker.kill9();
    broker.restart();
    let first_due = sent.iter().map(|m| m.start_ms).min().unwrap() + delay;
    assert!(
        now_ms() < first_due - 2000,
        "{ctx}: test setup too slow: the broker was back only {} ms before the messages were due",
        first_due - now_ms()
    );
    wait_deliveries(&c, Duration::from_millis((late_bound_ms(delay) + 20_000) as u64), |d| {
        by_key(d).len() >= sent.len()
    });
    std::thread::sleep(Duration::from_secs(2));
    c.stop();
    let d = deliveries(&c);
    let want: Vec<&Sent> = sent.iter().map(|m| &m.sent).collect();
    assert_once(&format!("{ctx}: running consumer"), &want, &d);
    for x in &d {
        let m = sent.iter().find(|m| m.sent.key == x.key).expect("sent");
        let latest = m.end_ms + late_bound_ms(delay) + RECONNECT_SLACK_MS;
        assert_stored_on_time(
            ctx,
            x,
            m.start_ms + delay,
            latest,
            "DELAY=10 = 8 s, broker restarted meanwhile",
        );
    }
    audit_topic(&broker, topic, "CG_delay_kill_audit", &want, 1 + sent.len() as i64, ctx);
    broker_alive(broker, ctx);
}

/// Two batches: A due after 2 s (level 2), B after 10 s (level 12). Once
/// the consumer has all of A (so the broker moved A to the topic), SIGKILL
/// and restart before B is due. The broker must not move A a second time
/// (e.g. because its delay progress was lost): the store audit (a fresh
/// group from the first offset and the topic's max offsets) finds A and B
/// each exactly once. The running consumer must get B exactly once, never
/// early; it may see A again only because its own offset commit was lost
/// with the kill, so A's duplicates are not counted there.
#[test]
fn java_delayed_messages_kill9_after_some_delivered_no_duplicates() {
    let (_g, mut broker) = start(&[("messageDelayLevel", LEVELS)]);
    let (topic, group) = ("DelayKillMid", "CG_delay_kill_mid");
    let ctx = "[java] kill -9 between delayed deliveries";
    warm(&broker, topic);
    let (mut c, _) = running_consumer(&broker, topic, group, &[], false);
    let p = Client::Java.producer(&broker, topic, "PG_delay_kill_mid");
    let a = produce_timed(p.arg("delay-level", 2), "A", 4);
    let p = Client::Java.producer(&broker, topic, "PG_delay_kill_mid");
    let b = produce_timed(p.arg("delay-level", 12), "B", 4);
    let a_keys: BTreeSet<String> = a.iter().map(|m| m.sent.key.clone()).collect();
    let got_a = wait_deliveries(&c, Duration::from_millis(late_bound_ms(2000) as u64 + 5000), |d| {
        d.iter()
            .map(|x| &x.key)
            .filter(|k| a_keys.contains(*k))
            .collect::<BTreeSet<_>>()
            .len()
            == a.len()
    });
    assert!(
        got_a,
        "{ctx}: batch A (2 s) not delivered before the kill\n{}",
        c.report()
    );
    std::thread::sleep(Duration::from_millis(500));
    broker.kill9();
    broker.restart();
    let b_due = b.iter().map(|m| m.start_ms).min().unwrap() + level_ms(12);
    assert!(
        now_ms() < b_due - 2000,
        "{ctx}: test setup too slow: restarted too close to B's due time"
    );
    wait_deliveries(
        &c,
        Duration::from_millis((late_bound_ms(level_ms(12)) + 20_000) as u64),
        |d| {
            let keys: BTreeSet<&String> = d.iter().map(|x| &x.key).collect();
            b.iter().all(|m| keys.contains(&m.sent.key))
        },
    );
    std::thread::sleep(Duration::from_secs(3));
    c.stop();
    let d = deliveries(&c);
    let b_got: Vec<Delivery> = d.iter().filter(|x| !a_keys.contains(&x.key)).cloned().collect();
    assert_once(
        &format!("{ctx}: running consumer, batch B"),
        &b.iter().map(|m| &m.sent).collect::<Vec<_>>(),
        &b_got,
    );
    for x in &d {
        let m = a.iter().chain(b.iter()).find(|m| m.sent.key == x.key).expect("sent");
        let delay = if a_keys.contains(&x.key) {
            level_ms(2)
        } else {
            level_ms(12)
        };
        let latest = m.end_ms + late_bound_ms(delay) + RECONNECT_SLACK_MS;
        // A's redeliveries after the restart are late by design; only "never early" counts for them.
        let latest = if d.iter().filter(|y| y.key == x.key).count() > 1 {
            i64::MAX
        } else {
            latest
        };
        assert_stored_on_time(ctx, x, m.start_ms + delay, latest, "kill -9 between the two batches");
    }
    let want: Vec<&Sent> = a.iter().chain(b.iter()).map(|m| &m.sent).collect();
    audit_topic(
        &broker,
        topic,
        "CG_delay_kill_mid_audit",
        &want,
        1 + want.len() as i64,
        ctx,
    );
    broker_alive(broker, ctx);
}

// ---------------------------------------------------------------------------
// Transactions
// ---------------------------------------------------------------------------

/// Committed transactional messages (executeLocalTransaction answers
/// COMMIT_MESSAGE; END_TRANSACTION commit) are delivered exactly once,
/// intact, in their topic, without `TRAN_MSG`; the broker never checks back
/// a message it was told to commit (quiet time: 2 s timeout + 3 intervals).
#[test]
fn java_tx_commit_delivered_once() {
    let ctx = "[java] transaction commit";
    let run = run_tx("TxCommit", "commit", 4, Duration::from_secs(5), &["commit"]);
    assert_once(ctx, &run.of("commit"), &run.deliveries);
    for x in &run.deliveries {
        let m = run.sent.iter().find(|m| m.sent.key == x.key).expect("sent");
        assert_same_message(ctx, "TxCommit", &m.sent, x);
        assert!(
            !x.sys.contains_key("TRAN_MSG"),
            "{ctx}: {} delivered with TRAN_MSG: {:?}",
            x.key,
            x.sys
        );
    }
    assert!(
        run.checks.is_empty(),
        "{ctx}: broker checked back committed messages: {:?}",
        run.checks
    );
    run.assert_sent(ctx);
    broker_alive(run.broker, ctx);
}

/// Rolled-back messages (ROLLBACK_MESSAGE) never reach a consumer, also not
/// after transactionTimeOut + several check intervals (7 s of quiet after
/// the committed ones of the same run arrived — they prove the consumer
/// works); the committed ones arrive exactly once; no check-backs for either.
#[test]
fn java_tx_rollback_never_delivered() {
    let ctx = "[java] transaction rollback";
    let run = run_tx("TxRollback", "rollback,commit", 6, Duration::from_secs(7), &["commit"]);
    assert_once(
        &format!("{ctx} (only the committed ones)"),
        &run.of("commit"),
        &run.deliveries,
    );
    assert!(
        run.checks.is_empty(),
        "{ctx}: broker checked back resolved messages: {:?}",
        run.checks
    );
    run.assert_sent(ctx);
    broker_alive(run.broker, ctx);
}

/// Local transaction UNKNOW, resolved by the broker's check-back
/// (CHECK_TRANSACTION_STATE) after transactionTimeOut (2 s): unknown→commit
/// messages are delivered exactly once; unknown→rollback and
/// unknown-forever ones never (quiet 6 s after the commits arrived). Every
/// unknown message was checked at least once, none before
/// send + transactionTimeOut (minus [`EARLY_MS`]), each check with the
/// message's transactionId; unknown-forever ones are checked again (≥ 2).
#[test]
fn java_tx_unknown_resolved_by_check_back() {
    let ctx = "[java] transaction check-back";
    let outcomes = "unknown-then-commit,unknown-then-rollback,unknown-forever";
    let run = run_tx("TxCheck", outcomes, 6, Duration::from_secs(6), &["unknown-then-commit"]);
    let checks = &run.checks;
    assert_once(
        &format!("{ctx} (only unknown-then-commit; checks {checks:?})"),
        &run.of("unknown-then-commit"),
        &run.deliveries,
    );
    for m in &run.sent {
        let k = &m.sent.key;
        let c = run.checks_of(k);
        let min = if m.outcome.as_deref() == Some("unknown-forever") {
            2
        } else {
            1
        };
        assert!(
            c.len() >= min,
            "{ctx}: {k} ({:?}) checked {} times, want ≥ {min}",
            m.outcome,
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
                e["transactionId"].as_str(),
                m.transaction_id.as_deref(),
                "{ctx}: check of {k}: {e}"
            );
        }
    }
    for x in &run.deliveries {
        let m = run.sent.iter().find(|m| m.sent.key == x.key).expect("sent");
        assert_same_message(ctx, "TxCheck", &m.sent, x);
    }
    run.assert_sent(ctx);
    broker_alive(run.broker, ctx);
}

fn broker_alive(mut broker: Broker, ctx: &str) {
    broker.assert_alive(ctx);
}
