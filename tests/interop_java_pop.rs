//! POP (invisible-time) consumption end to end with the 5.x reference
//! client, Apache rocketmq-client 5.3.3 (remoting; tests/interop/java5),
//! against the real `shardmq serve` (127.0.0.1, free ports, temp data dir,
//! SYNC_FLUSH, 2 shards with shard-aware routes). Messages are produced by
//! the 4.9.8 producer of tests/interop/java (auto-created topics).
//!
//! Two ways in: the POP-mode push consumer (`pop-consume`:
//! DefaultMQPushConsumer with clientRebalance=false after
//! SET_MESSAGE_REQUEST_MODE POP; QUERY_ASSIGNMENT, POP_MESSAGE, ACK_MESSAGE,
//! CHANGE_MESSAGE_INVISIBLETIME) and `raw`, which sends one POP code at a
//! time through the client's MQClientAPIImpl and reports the broker's raw
//! answer. Each scenario was run against Apache RocketMQ 5.5.0
//! (scripts/apache-pop-peer.sh) with the same programs and steps; Apache
//! re-delivers a not-acked message 2-3.5 s after it is due, inside
//! [`REVIVE_SLACK_MS`]. Helpers and timing bounds:
//! tests/interop/pop_scenarios.rs.

#[path = "interop/harness.rs"]
mod harness;
#[path = "interop/pop_scenarios.rs"]
mod pop_scenarios;

use harness::*;
use pop_scenarios::*;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// (a) A POP-mode push consumer whose listener always succeeds receives each
/// message exactly once, intact, with reconsumeTimes 0 and a POP_CK handle
/// naming the broker entry and queue offset the send result named; every
/// delivery is acked (ACK_MESSAGE answered SUCCESS once per message) and none
/// comes back within the invisible time (5 s) + revive slack after the last.
#[test]
fn java5_pop_push_consumer_gets_each_message_exactly_once() {
    let (_g, mut broker) = start();
    let (topic, group) = (name("PopOnce"), name("CG_pop_once"));
    let (topic, group) = (topic.as_str(), group.as_str());
    let ctx = "[java5] POP push consumer, all CONSUME_SUCCESS";
    let sent = produce(Client::Java, &broker, topic, "a", 0, 20);
    let mut c = pop_consumer(&broker, topic, group)
        .arg("invisible-ms", PUSH_INVISIBLE_MS)
        .arg("linger-ms", 0)
        .arg("timeout-ms", 120_000)
        .spawn();
    wait_pop_assigned(&c, topic, ctx);
    let want = keys(&sent);
    let all = wait_pops(&c, Duration::from_secs(40), |d| {
        want.iter().all(|k| d.iter().any(|p| p.key == *k))
    });
    assert!(all, "{ctx}: not every message was popped within 40 s\n{}", c.report());
    // A message whose ack was lost would come back after the invisible time.
    std::thread::sleep(Duration::from_millis((PUSH_INVISIBLE_MS + REVIVE_SLACK_MS) as u64));
    c.stop();
    let got = pop_deliveries(&c);
    assert_each_once(ctx, &want, &got);
    let by_key = sent_by_key(&sent);
    for p in &got {
        assert_same(ctx, topic, &by_key[&p.key], p);
        assert_eq!(
            p.reconsume_times, 0,
            "{ctx}: {} delivered with reconsumeTimes {}",
            p.key, p.reconsume_times
        );
    }
    assert_popped_and_acked(&c, topic, ctx);
    broker.assert_alive(ctx);
}

/// (b) Push consumer: the listener answers RECONSUME_LATER for 2 of 6 keys
/// on their first delivery. The 5.x client answers that with
/// CHANGE_MESSAGE_INVISIBLETIME 10 s (popDelayLevel[0]); those 2 come back
/// exactly once more, with reconsumeTimes 1, the same msgId and body, no
/// earlier than 10 s after the first delivery and at most
/// [`REVIVE_SLACK_MS`] + 1 s later; the other 4 (acked) never come back, nor
/// do the 2 after their second (acked) delivery.
#[test]
fn java5_pop_reconsume_later_comes_back_after_invisible_time() {
    let (_g, mut broker) = start();
    let (topic, group) = (name("PopLater"), name("CG_pop_later"));
    let (topic, group) = (topic.as_str(), group.as_str());
    let ctx = "[java5] POP push consumer, RECONSUME_LATER once";
    let sent = produce(Client::Java, &broker, topic, "b", 0, 6);
    let later: Vec<&str> = vec![sent[0].key.as_str(), sent[3].key.as_str()];
    let mut c = pop_consumer(&broker, topic, group)
        .arg("invisible-ms", PUSH_INVISIBLE_MS)
        .arg("reconsume-later", 1)
        .arg("later-keys", later.join(","))
        .arg("linger-ms", 0)
        .arg("timeout-ms", 150_000)
        .spawn();
    wait_pop_assigned(&c, topic, ctx);
    let want = keys(&sent);
    let budget = Duration::from_millis((RECONSUME_LATER_FIRST_MS + REVIVE_SLACK_MS + 30_000) as u64);
    let done = wait_pops(&c, budget, |d| {
        want.iter().all(|k| {
            let n = d.iter().filter(|p| p.key == *k).count();
            n >= if later.contains(k) { 2 } else { 1 }
        })
    });
    assert!(
        done,
        "{ctx}: within {budget:?} not every key arrived and {later:?} did not come back after RECONSUME_LATER\n{}",
        c.report()
    );
    std::thread::sleep(Duration::from_millis((PUSH_INVISIBLE_MS + REVIVE_SLACK_MS) as u64));
    c.stop();
    let got = pop_deliveries(&c);
    let by_key = sent_by_key(&sent);
    let mut per_key: BTreeMap<&str, Vec<&Popped>> = BTreeMap::new();
    for p in &got {
        per_key.entry(p.key.as_str()).or_default().push(p);
        assert_same(ctx, topic, &by_key[&p.key], p);
    }
    for k in &want {
        let d = per_key.get(k).cloned().unwrap_or_default();
        let times: Vec<i64> = d.iter().map(|p| p.reconsume_times).collect();
        let statuses: Vec<&str> = d.iter().map(|p| p.status.as_str()).collect();
        if later.contains(k) {
            assert_eq!(
                times,
                [0, 1],
                "{ctx}: {k} (RECONSUME_LATER once) delivered with reconsumeTimes {times:?} (listener answers \
                 {statuses:?}), want exactly [0, 1]"
            );
            let gap = d[1].recv_ms - d[0].recv_ms;
            let ok = RECONSUME_LATER_FIRST_MS - EARLY_MS..=RECONSUME_LATER_FIRST_MS + REVIVE_SLACK_MS + 1000;
            assert!(
                ok.contains(&gap),
                "{ctx}: {k} came back {gap} ms after the RECONSUME_LATER delivery; the client set its invisible time \
                 to {RECONSUME_LATER_FIRST_MS} ms (CHANGE_MESSAGE_INVISIBLETIME), so want {ok:?} ms"
            );
            assert_eq!(d[1].msg_id, d[0].msg_id, "{ctx}: {k} changed msgId on re-delivery");
        } else {
            assert_eq!(
                times,
                [0],
                "{ctx}: {k} (acked) delivered with reconsumeTimes {times:?}, want exactly once"
            );
        }
    }
    assert_popped_and_acked(&c, topic, ctx);
    let counts = rpc_counts(&c);
    assert_eq!(
        counts.get("CHANGE_MESSAGE_INVISIBLETIME->0").copied().unwrap_or(0),
        later.len() as i64,
        "{ctx}: one CHANGE_MESSAGE_INVISIBLETIME per RECONSUME_LATER must be answered SUCCESS; rpc counts {counts:?}"
    );
    broker.assert_alive(ctx);
}

/// (b, raw) POP_MESSAGE 8 messages with invisibleTime 6 s, ACK 4 of them:
/// the 4 not acked come back exactly once each, with reconsumeTimes 1, no
/// earlier than their popTime + 6 s and at most [`REVIVE_SLACK_MS`] later;
/// the 4 acked never. A second ACK of an acked handle answers SUCCESS or
/// NO_MESSAGE and resurrects nothing. Once the returned ones are acked with
/// their new handles, nothing comes back for another invisible time + slack.
#[test]
fn java5_pop_raw_unacked_come_back_acked_never() {
    let (_g, mut broker) = start();
    let (topic, group) = (name("PopRaw"), name("CG_pop_raw"));
    let (topic, group) = (topic.as_str(), group.as_str());
    let ctx = "[java5 raw] POP 8, ACK 4";
    const INV: i64 = 6000;
    let sent = produce(Client::Java, &broker, topic, "c", 0, 8);
    let by_key = sent_by_key(&sent);
    let mut r = Raw::start(&broker, topic, group, ctx);
    let first = r.pop_until(sent.len(), INV, Duration::from_secs(20));
    assert_each_once(&format!("{ctx}: first pops"), &keys(&sent), &first);
    let mut first = first;
    first.sort_by(|a, b| a.key.cmp(&b.key));
    for p in &first {
        assert_same(ctx, topic, &by_key[&p.key], p);
        assert_eq!(
            p.reconsume_times, 0,
            "{ctx}: first pop of {} has reconsumeTimes {}",
            p.key, p.reconsume_times
        );
    }
    let (acked, left) = first.split_at(4);
    for p in acked {
        r.ack_ok(p);
    }
    let (code, a) = r.ack(acked[0].handle.as_deref().unwrap_or_default());
    assert!(
        code == Some(SUCCESS) || code == Some(NO_MESSAGE),
        "{ctx}: a second ACK_MESSAGE of {} answered {code:?}; want SUCCESS (Apache 5.5.0) or NO_MESSAGE (208): {a}",
        acked[0].key
    );
    let due: BTreeMap<&str, i64> = left
        .iter()
        .map(|p| (p.key.as_str(), p.ck.as_ref().map(|c| c.pop_time).unwrap_or(0) + INV))
        .collect();
    let deadline_ms = due.values().max().copied().unwrap_or(0) + REVIVE_SLACK_MS + 1000;
    let mut back: Vec<Popped> = Vec::new();
    while now_ms() < deadline_ms {
        for p in r.pop_all(32, INV, 1000) {
            r.ack_ok(&p);
            back.push(p);
        }
    }
    let left_keys: Vec<&str> = left.iter().map(|p| p.key.as_str()).collect();
    assert_each_once(
        &format!(
            "{ctx}: re-deliveries until every due time + {REVIVE_SLACK_MS} ms (only the 4 not acked may come back)"
        ),
        &left_keys,
        &back,
    );
    for p in &back {
        let d = due[p.key.as_str()];
        assert_eq!(
            p.reconsume_times, 1,
            "{ctx}: {} came back with reconsumeTimes {}",
            p.key, p.reconsume_times
        );
        assert!(
            p.recv_ms >= d - EARLY_MS && p.recv_ms <= d + REVIVE_SLACK_MS,
            "{ctx}: {} came back at {} = {:+} ms from its due time (popTime + {INV} ms); want 0..={REVIVE_SLACK_MS}",
            p.key,
            p.recv_ms,
            p.recv_ms - d
        );
        assert_same(ctx, topic, &by_key[&p.key], p);
    }
    // Acked with their new handles: nothing may come back now.
    let quiet_until = now_ms() + INV + REVIVE_SLACK_MS;
    let mut extra = Vec::new();
    while now_ms() < quiet_until {
        extra.extend(r.pop_all(32, INV, 1000));
    }
    let extra_keys: Vec<(String, i64)> = extra.iter().map(|p| (p.key.clone(), p.reconsume_times)).collect();
    assert!(
        extra.is_empty(),
        "{ctx}: after every message was acked, POP still returned {extra_keys:?} (key, reconsumeTimes)"
    );
    r.stop();
    broker.assert_alive(ctx);
}

/// (c) Two groups in POP mode on one topic each get every message exactly
/// once (each group has its own pop offsets and checkpoints).
#[test]
fn java5_pop_two_groups_each_get_everything() {
    let (_g, mut broker) = start();
    let topic = name("PopTwoGroups");
    let topic = topic.as_str();
    let groups = [name("CG_pop_g1"), name("CG_pop_g2")];
    let ctx = "[java5] POP, two groups";
    let sent = produce(Client::Java, &broker, topic, "d", 0, 12);
    let want = keys(&sent);
    let mut cs: Vec<(Proc, &str)> = groups
        .iter()
        .map(|g| {
            (
                pop_consumer(&broker, topic, g)
                    .arg("invisible-ms", PUSH_INVISIBLE_MS)
                    .arg("linger-ms", 0)
                    .arg("timeout-ms", 120_000)
                    .label(g)
                    .spawn(),
                g.as_str(),
            )
        })
        .collect();
    for (c, g) in &cs {
        wait_pop_assigned(c, topic, &format!("{ctx} ({g})"));
    }
    for (c, g) in &cs {
        let all = wait_pops(c, Duration::from_secs(40), |d| {
            want.iter().all(|k| d.iter().any(|p| p.key == *k))
        });
        assert!(
            all,
            "{ctx}: group {g} did not get every message within 40 s\n{}",
            c.report()
        );
    }
    std::thread::sleep(Duration::from_millis((PUSH_INVISIBLE_MS + REVIVE_SLACK_MS) as u64));
    let by_key = sent_by_key(&sent);
    for (c, g) in cs.iter_mut() {
        c.stop();
        let gctx = format!("{ctx}: group {g}");
        let got = pop_deliveries(c);
        assert_each_once(&gctx, &want, &got);
        for p in &got {
            assert_same(&gctx, topic, &by_key[&p.key], p);
        }
        assert_popped_and_acked(c, topic, &gctx);
    }
    broker.assert_alive(ctx);
}

/// (d) CHANGE_MESSAGE_INVISIBLETIME extends: 4 messages popped with
/// invisibleTime 5 s; k0 changed to 15 s (answer SUCCESS with popTime,
/// invisibleTime 15000 and reviveQid; the client builds a new handle from
/// them); k2 changed to 15 s and then acked with its new handle; k3 acked;
/// k1 left alone. k1 comes back after 5 s; k0 not before the change's
/// popTime + 15 s (not at the original 5 s) and at most [`REVIVE_SLACK_MS`]
/// after; k2 and k3 never.
#[test]
fn java5_pop_change_invisible_time_extends() {
    let (_g, mut broker) = start();
    let (topic, group) = (name("PopChange"), name("CG_pop_change"));
    let (topic, group) = (topic.as_str(), group.as_str());
    let ctx = "[java5 raw] CHANGE_MESSAGE_INVISIBLETIME";
    const INV: i64 = 5000;
    const LONGER: i64 = 15_000;
    let sent = produce(Client::Java, &broker, topic, "e", 0, 4);
    let by_key = sent_by_key(&sent);
    let mut r = Raw::start(&broker, topic, group, ctx);
    let mut first = r.pop_until(sent.len(), INV, Duration::from_secs(20));
    assert_each_once(&format!("{ctx}: first pops"), &keys(&sent), &first);
    first.sort_by(|a, b| a.key.cmp(&b.key));
    let h = |p: &Popped| p.handle.clone().unwrap_or_default();
    let mut changed_due = BTreeMap::new();
    let mut new_handles = BTreeMap::new();
    for p in [&first[0], &first[2]] {
        let a = r.change(&h(p), LONGER);
        let code = a["code"].as_i64();
        let ext = &a["ext"];
        let pop_time = ext["popTime"]
            .as_str()
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(-1);
        let (s, rcv) = (a["sentMs"].as_i64().unwrap_or(0), a["recvMs"].as_i64().unwrap_or(0));
        assert!(
            code == Some(SUCCESS)
                && ext["invisibleTime"].as_str() == Some(&LONGER.to_string())
                && pop_time >= s - EARLY_MS
                && pop_time <= rcv + EARLY_MS
                && ext["reviveQid"].as_str().is_some_and(|q| q.parse::<i64>().is_ok())
                && a["newHandle"].is_string(),
            "{ctx}: CHANGE_MESSAGE_INVISIBLETIME (200053) of {} to {LONGER} ms: want SUCCESS with header popTime \
             (now), invisibleTime {LONGER} and reviveQid, from which the client builds the new handle; got {a}\n{}",
            p.key,
            r.p.report()
        );
        changed_due.insert(p.key.clone(), pop_time + LONGER);
        new_handles.insert(p.key.clone(), a["newHandle"].as_str().unwrap_or_default().to_string());
    }
    let (code, a) = r.ack(&new_handles[&first[2].key]);
    assert_eq!(
        code,
        Some(SUCCESS),
        "{ctx}: ACK_MESSAGE of {} with the handle CHANGE_MESSAGE_INVISIBLETIME gave answered {code:?}: {a}",
        first[2].key
    );
    r.ack_ok(&first[3]);
    let k1_due = first[1].ck.as_ref().map(|c| c.pop_time).unwrap_or(0) + INV;
    let k0_due = changed_due[&first[0].key];
    let deadline = k0_due.max(k1_due) + REVIVE_SLACK_MS + 1000;
    let mut back = Vec::new();
    while now_ms() < deadline {
        back.extend(r.pop_all(32, 60_000, 1000));
    }
    let back_keys: Vec<(String, i64, i64)> = back
        .iter()
        .map(|p| (p.key.clone(), p.reconsume_times, p.recv_ms))
        .collect();
    assert_each_once(
        &format!(
            "{ctx}: re-deliveries ({back_keys:?}: key, reconsumeTimes, ms); only {} (not acked) and {} \
                  (changed, not acked) may come back",
            first[1].key, first[0].key
        ),
        &[first[0].key.as_str(), first[1].key.as_str()],
        &back,
    );
    for p in &back {
        let (due, what) = if p.key == first[0].key {
            (k0_due, format!("the change's popTime + {LONGER} ms"))
        } else {
            (k1_due, format!("its popTime + {INV} ms"))
        };
        assert!(
            p.recv_ms >= due - EARLY_MS && p.recv_ms <= due + REVIVE_SLACK_MS,
            "{ctx}: {} came back {:+} ms from {what}; want 0..={REVIVE_SLACK_MS} ms (an early return of the changed \
             message means the new invisible time was not applied)",
            p.key,
            p.recv_ms - due
        );
        assert!(
            p.reconsume_times >= 1,
            "{ctx}: {} came back with reconsumeTimes {}",
            p.key,
            p.reconsume_times
        );
        assert_same(ctx, topic, &by_key[&p.key], p);
    }
    r.stop();
    broker.assert_alive(ctx);
}

/// (e) kill -9 of the broker between pops and re-delivery: 10 messages
/// popped with invisibleTime 15 s, 5 acked; after the broker's offset
/// flush interval the broker is SIGKILLed and restarted on the same data,
/// and 4 new messages are sent. Then: the 5 not acked come back exactly
/// once (reconsumeTimes ≥ 1, no earlier than popTime + 15 s), the 5 acked
/// never, the 4 new ones exactly once with reconsumeTimes 0 (the pop offsets
/// survived: nothing popped before the kill is popped again as new).
#[test]
fn java5_pop_broker_kill9_loses_nothing_redelivers_only_unacked() {
    let (_g, mut broker) = start();
    let (topic, group) = (name("PopKill"), name("CG_pop_kill"));
    let (topic, group) = (topic.as_str(), group.as_str());
    let ctx = "[java5 raw] POP across kill -9";
    const INV: i64 = 15_000;
    let sent = produce(Client::Java, &broker, topic, "f", 0, 10);
    let mut by_key = sent_by_key(&sent);
    let mut r = Raw::start(&broker, topic, group, ctx);
    let mut first = r.pop_until(sent.len(), INV, Duration::from_secs(20));
    assert_each_once(&format!("{ctx}: first pops"), &keys(&sent), &first);
    first.sort_by(|a, b| a.key.cmp(&b.key));
    let (acked, left) = first.split_at(5);
    for p in acked {
        r.ack_ok(p);
    }
    r.stop();
    std::thread::sleep(offset_flush_wait());
    broker.kill9();
    let t_kill = Instant::now();
    broker.restart();
    eprintln!("{ctx}: broker restarted after {:?}", t_kill.elapsed());
    let fresh = produce(Client::Java, &broker, topic, "g", 0, 4);
    by_key.extend(sent_by_key(&fresh));
    let mut r = Raw::start(&broker, topic, group, ctx);
    let due: BTreeMap<&str, i64> = left
        .iter()
        .map(|p| (p.key.as_str(), p.ck.as_ref().map(|c| c.pop_time).unwrap_or(0) + INV))
        .collect();
    let deadline = due.values().max().copied().unwrap_or(0) + REVIVE_SLACK_MS + 2000;
    let mut after = Vec::new();
    while now_ms() < deadline {
        for p in r.pop_all(32, 60_000, 1000) {
            r.ack_ok(&p);
            after.push(p);
        }
    }
    let mut want: Vec<&str> = left.iter().map(|p| p.key.as_str()).collect();
    want.extend(keys(&fresh));
    let got: Vec<(String, i64)> = after.iter().map(|p| (p.key.clone(), p.reconsume_times)).collect();
    assert_each_once(
        &format!(
            "{ctx}: after restart ({got:?}: key, reconsumeTimes); the 5 not acked before the kill and the 4 sent \
             after it, nothing acked"
        ),
        &want,
        &after,
    );
    for p in &after {
        if let Some(d) = due.get(p.key.as_str()) {
            assert!(
                p.reconsume_times >= 1,
                "{ctx}: {} (popped before the kill) came back with reconsumeTimes {}",
                p.key,
                p.reconsume_times
            );
            assert!(
                p.recv_ms >= d - EARLY_MS,
                "{ctx}: {} came back {} ms before its invisible time ended (popTime + {INV} ms)",
                p.key,
                d - p.recv_ms
            );
        } else {
            assert_eq!(
                p.reconsume_times, 0,
                "{ctx}: {} (sent after the restart) has reconsumeTimes {}",
                p.key, p.reconsume_times
            );
        }
        assert_same(ctx, topic, &by_key[&p.key], p);
    }
    r.stop();
    broker.assert_alive(ctx);
}

/// BATCH_ACK_MESSAGE (what MQClientAPIImpl.batchAckMessageAsync sends; the
/// push consumer itself acks one by one): 8 popped with invisibleTime 6 s,
/// 4 acked in one batch per broker entry (answer SUCCESS); exactly the other
/// 4 come back, each once, with reconsumeTimes 1, no earlier than popTime +
/// 6 s and at most [`REVIVE_SLACK_MS`] later.
#[test]
fn java5_pop_batch_ack_acks_exactly_those() {
    let (_g, mut broker) = start();
    let (topic, group) = (name("PopBatchAck"), name("CG_pop_batch"));
    let (topic, group) = (topic.as_str(), group.as_str());
    let ctx = "[java5 raw] BATCH_ACK_MESSAGE";
    const INV: i64 = 6000;
    let sent = produce(Client::Java, &broker, topic, "h", 0, 8);
    let by_key = sent_by_key(&sent);
    let mut r = Raw::start(&broker, topic, group, ctx);
    let mut first = r.pop_until(sent.len(), INV, Duration::from_secs(20));
    assert_each_once(&format!("{ctx}: first pops"), &keys(&sent), &first);
    first.sort_by(|a, b| a.key.cmp(&b.key));
    let (acked, left) = first.split_at(4);
    let mut per_broker: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in acked {
        let b = p.ck.as_ref().map(|c| c.broker_name.clone()).unwrap_or_default();
        per_broker
            .entry(b)
            .or_default()
            .push(p.handle.clone().unwrap_or_default());
    }
    for (b, handles) in &per_broker {
        let a = r.batch_ack(handles);
        assert_eq!(
            a["code"].as_i64(),
            Some(SUCCESS),
            "{ctx}: BATCH_ACK_MESSAGE (200151) of {} handles on {b} answered {} ({}): {a}",
            handles.len(),
            a["code"],
            a["remark"]
        );
    }
    let due: BTreeMap<&str, i64> = left
        .iter()
        .map(|p| (p.key.as_str(), p.ck.as_ref().map(|c| c.pop_time).unwrap_or(0) + INV))
        .collect();
    let deadline = due.values().max().copied().unwrap_or(0) + REVIVE_SLACK_MS + 1000;
    let mut back = Vec::new();
    while now_ms() < deadline {
        back.extend(r.pop_all(32, 60_000, 1000));
    }
    let left_keys: Vec<&str> = left.iter().map(|p| p.key.as_str()).collect();
    assert_each_once(
        &format!("{ctx}: re-deliveries (only the 4 not in the batch ack may come back)"),
        &left_keys,
        &back,
    );
    for p in &back {
        let d = due[p.key.as_str()];
        assert_eq!(
            p.reconsume_times, 1,
            "{ctx}: {} came back with reconsumeTimes {}",
            p.key, p.reconsume_times
        );
        assert!(
            p.recv_ms >= d - EARLY_MS && p.recv_ms <= d + REVIVE_SLACK_MS,
            "{ctx}: {} came back {:+} ms from its due time; want 0..={REVIVE_SLACK_MS}",
            p.key,
            p.recv_ms - d
        );
        assert_same(ctx, topic, &by_key[&p.key], p);
    }
    r.stop();
    broker.assert_alive(ctx);
}

/// Orderly POP (order=true, attemptId; the 5.x orderly consumers of the
/// proxy use it): 6 messages of one sharding key (one queue). A pop of 2
/// returns the first 2 in queue order; while they are not acked the queue
/// gives nothing to another attempt, and the same attemptId gets the same 2
/// again. Acked (with the latest handles), the next pop returns the next 2.
/// Those, not acked, come back — the same 2, before anything after them —
/// no earlier than popTime + 5 s, with reconsumeTimes 1; acked, the last 2
/// follow, then nothing.
#[test]
fn java5_pop_orderly_one_batch_at_a_time_in_queue_order() {
    let (_g, mut broker) = start();
    let (topic, group) = (name("PopOrder"), name("CG_pop_order"));
    let (topic, group) = (topic.as_str(), group.as_str());
    let ctx = "[java5 raw] orderly POP";
    const INV: i64 = 5000;
    let sent = produce_with(
        Client::Java
            .producer(&broker, topic, &format!("PG_{topic}"))
            .arg("mode", "orderly")
            .arg("order-keys", 1),
        "o",
        0,
        6,
    );
    let by_key = sent_by_key(&sent);
    let k = |i: usize| sent[i].key.clone();
    let mut r = Raw::start(&broker, topic, group, ctx);
    let brokers = r.brokers.clone();
    let pop = |r: &mut Raw, attempt: &str| -> Vec<Popped> {
        brokers.iter().flat_map(|b| r.pop_order(b, 2, INV, attempt)).collect()
    };
    let names = |v: &[Popped]| -> Vec<(String, i64)> { v.iter().map(|p| (p.key.clone(), p.reconsume_times)).collect() };
    let p1 = pop(&mut r, "a1");
    assert_eq!(
        names(&p1),
        [(k(0), 0), (k(1), 0)],
        "{ctx}: an orderly pop of 2 must return the first 2 messages of the queue, in order"
    );
    for p in &p1 {
        assert_same(ctx, topic, &by_key[&p.key], p);
    }
    let p2 = pop(&mut r, "a2");
    assert!(
        p2.is_empty(),
        "{ctx}: while {} and {} are popped and not acked, an orderly pop with another attemptId must get nothing \
         from their queue; got {:?}",
        k(0),
        k(1),
        names(&p2)
    );
    let p3 = pop(&mut r, "a1");
    assert_eq!(
        names(&p3),
        [(k(0), 0), (k(1), 0)],
        "{ctx}: an orderly pop repeated with the same attemptId must return the same messages (Apache 5.5.0 does)"
    );
    for p in &p3 {
        r.ack_ok(p);
    }
    let p4 = pop(&mut r, "a3");
    assert_eq!(
        names(&p4),
        [(k(2), 0), (k(3), 0)],
        "{ctx}: after {} and {} were acked the next orderly pop must return the next 2",
        k(0),
        k(1)
    );
    let due = p4[0].ck.as_ref().map(|c| c.pop_time).unwrap_or(0) + INV;
    let deadline = due + REVIVE_SLACK_MS + 1000;
    let mut n = 0;
    let again = loop {
        n += 1;
        let got = pop(&mut r, &format!("wait-{n}"));
        if !got.is_empty() || now_ms() >= deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        names(&again),
        [(k(2), 1), (k(3), 1)],
        "{ctx}: {} and {} (not acked) must come back, the same 2 with reconsumeTimes 1, before anything after them",
        k(2),
        k(3)
    );
    let at = again[0].recv_ms;
    assert!(
        at >= due - EARLY_MS && at <= due + REVIVE_SLACK_MS,
        "{ctx}: the orderly re-delivery came {:+} ms from popTime + {INV} ms; want 0..={REVIVE_SLACK_MS}",
        at - due
    );
    for p in &again {
        r.ack_ok(p);
    }
    let p5 = pop(&mut r, "a5");
    assert_eq!(names(&p5), [(k(4), 0), (k(5), 0)], "{ctx}: then the last 2");
    for p in &p5 {
        r.ack_ok(p);
    }
    let p6 = pop(&mut r, "a6");
    assert!(
        p6.is_empty(),
        "{ctx}: all acked, yet an orderly pop returned {:?}",
        names(&p6)
    );
    r.stop();
    broker.assert_alive(ctx);
}
