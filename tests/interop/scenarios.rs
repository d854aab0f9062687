//! The interop scenarios, written once and run for each real client
//! (`tests/interop_alions.rs`, `tests/interop_cpp.rs`, `tests/interop_java.rs`).
//! Each starts its own broker (SYNC_FLUSH, 4 queues per topic) and stays well
//! under 60 s.

#![allow(dead_code)] // each test file uses a subset

use crate::harness::*;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const N: u64 = 40;

fn start(client: Client) -> (std::sync::MutexGuard<'static, ()>, Broker) {
    let guard = serial();
    ensure_clients();
    eprintln!("interop [{}]: starting shardmq serve", client.name());
    (guard, Broker::start("SYNC_FLUSH"))
}

/// Runs a consumer until it has `expect` distinct messages (+ linger) and
/// returns what it received; fails clearly when it never gets them.
fn consume(args: Args, expect: u64, ctx: &str) -> (Proc, Vec<Recv>) {
    let mut p = args.arg("expect", expect).spawn();
    p.wait_exit(PROC_TIMEOUT);
    let recv = recv_of(&p.events());
    let timed_out = p.events().iter().any(|e| e["event"] == "timeout");
    if timed_out || p.events_of("done").is_empty() {
        let hint = if recv.is_empty() { FRESH_GROUP_HINT } else { "" };
        panic!(
            "{ctx}: consumer received {} messages ({} distinct) of {expect} within {:?}. {hint}\n{}",
            recv.len(),
            recv.iter().map(|r| &r.key).collect::<BTreeSet<_>>().len(),
            CLIENT_TIMEOUT,
            p.report()
        );
    }
    p.assert_no_error();
    (p, recv)
}

/// ali-ons and Java report the queue of every send: offsets of each queue
/// must be 0, 1, 2, … in send order (no gap, no reuse).
fn assert_send_offsets_contiguous(client: Client, sent: &[Sent]) {
    if !reports_queues(client) {
        return;
    }
    let mut per_q: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for m in sent {
        let q = m
            .queue_id
            .clone()
            .unwrap_or_else(|| panic!("send result of {} has no queueId", m.key));
        per_q.entry(q).or_default().push(m.queue_offset.unwrap_or(-1));
    }
    for (q, offs) in &per_q {
        let want: Vec<i64> = (0..offs.len() as i64).collect();
        assert_eq!(
            offs,
            &want,
            "[{}] queue {q}: send responses gave queue offsets {offs:?}, want {want:?}",
            client.name()
        );
    }
}

/// Per queue, the (queueId, queueOffset) pairs of all delivered messages of a
/// topic must be exactly 0..n-1: true logical offsets, none reused or skipped.
fn assert_queue_offsets_dense(ctx: &str, recv: &[Recv]) {
    let mut per_q: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for r in recv {
        per_q.entry(r.queue_id).or_default().push(r.queue_offset);
    }
    for (q, offs) in per_q.iter_mut() {
        offs.sort_unstable();
        let want: Vec<i64> = (0..offs.len() as i64).collect();
        assert_eq!(
            *offs,
            want,
            "{ctx}: queue {q} delivered queue offsets {offs:?}, want 0..{}",
            want.len()
        );
    }
}

/// Clients whose send results name the queue (`brokerName:queueId`) and
/// whose consumers report their queue set after each rebalance.
fn reports_queues(client: Client) -> bool {
    matches!(client, Client::AliOns | Client::Java)
}

fn check_msg_ids(client: Client, sent: &[Sent], recv: &[Recv]) {
    let by_key: BTreeMap<&str, &Sent> = sent.iter().map(|m| (m.key.as_str(), m)).collect();
    let mut uniq = BTreeSet::new();
    for r in recv {
        let m = by_key[r.key.as_str()];
        match client {
            Client::AliOns => {
                // ali-ons: send msgId = the response's msgId; consumed msgId =
                // hex(STOREHOST + PHYSICALOFFSET) decoded from the record.
                assert_eq!(
                    r.msg_id, m.msg_id,
                    "[ali-ons] {}: send response msgId must be the offset msgId (store host + commit-log offset) \
                     of the stored record (codes.md §2.2)",
                    r.key
                );
                // ali-ons sets no UNIQ_KEY: the broker must add one.
                let u = r.uniq_key.clone().unwrap_or_default();
                assert!(
                    !u.is_empty(),
                    "[ali-ons] {}: broker stored no UNIQ_KEY for a message without one",
                    r.key
                );
                assert!(uniq.insert(u.clone()), "[ali-ons] broker generated UNIQ_KEY {u} twice");
            }
            Client::Java | Client::Java5 => {
                // Java: msgId = the client's UNIQ_KEY on both sides; the
                // broker's offset msgId comes back in the send result and is
                // recomputed by the consumer from the stored record.
                assert_eq!(r.uniq_key, m.msg_id, "[java] {}: UNIQ_KEY property not kept", r.key);
                assert_eq!(
                    r.msg_id, m.msg_id,
                    "[java] {}: consumed msgId differs from the sent one",
                    r.key
                );
                assert_eq!(
                    r.offset_msg_id, m.offset_msg_id,
                    "[java] {}: the send response's offset msgId (store host + commit-log offset) must be the \
                     stored record's (codes.md §2.2)",
                    r.key
                );
            }
            Client::Cpp => {
                // C++: send msgId = the client's UNIQ_KEY; consumed msgId = UNIQ_KEY property.
                assert_eq!(r.uniq_key, m.msg_id, "[cpp] {}: UNIQ_KEY property not kept", r.key);
                assert_eq!(
                    r.msg_id, m.msg_id,
                    "[cpp] {}: consumed msgId differs from the sent one",
                    r.key
                );
            }
        }
    }
}

/// Sync send N messages with keys/tags/properties, then a fresh group
/// consumes exactly those N, intact.
pub fn send_and_consume(client: Client) {
    let (_g, broker) = start(client);
    let topic = "InteropBasic";
    let sent = produce(client, &broker, topic, "m", 0, N);
    assert_send_offsets_contiguous(client, &sent);
    if reports_queues(client) {
        let qs: BTreeSet<String> = sent.iter().filter_map(|m| m.queue_id.clone()).collect();
        assert_eq!(
            qs.len(),
            QUEUES,
            "[{}] round-robin sends should use all {QUEUES} queues, used {qs:?}",
            client.name()
        );
    }
    let ctx = format!("[{}] send {N} + consume", client.name());
    let (_p, recv) = consume(
        client.consumer(&broker, topic, "CG_basic").arg("linger-ms", 3000),
        N,
        &ctx,
    );
    assert_exactly_once(&ctx, &sent, &recv);
    assert_intact(client, topic, &sent, &recv);
    check_msg_ids(client, &sent, &recv);
    assert_queue_offsets_dense(&ctx, &recv);
    broker_ok(broker, &ctx);
}

/// `TagA || TagB` delivers exactly the TagA and TagB messages.
pub fn tag_filter(client: Client) {
    let (_g, broker) = start(client);
    let topic = "InteropTags";
    let sent = produce(client, &broker, topic, "t", 0, 30); // TagA, TagB, TagC cycled
    let want: Vec<Sent> = sent
        .iter()
        .filter(|m| m.tag == "TagA" || m.tag == "TagB")
        .cloned()
        .collect();
    assert_eq!(want.len(), 20);
    let ctx = format!("[{}] subscription \"TagA || TagB\"", client.name());
    let (_p, recv) = consume(
        client
            .consumer(&broker, topic, "CG_tags")
            .arg("sub", "TagA || TagB")
            .arg("linger-ms", 3000),
        20,
        &ctx,
    );
    let wrong: Vec<&Recv> = recv.iter().filter(|r| r.tags != "TagA" && r.tags != "TagB").collect();
    assert!(wrong.is_empty(), "{ctx}: delivered messages with other tags: {wrong:?}");
    assert_exactly_once(&ctx, &want, &recv);
    assert_intact(client, topic, &sent, &recv);
    broker_ok(broker, &ctx);
}

/// Two consumers of one group split the queues and together get every
/// message exactly once.
pub fn two_consumers_split(client: Client) {
    let (_g, broker) = start(client);
    let topic = "InteropSplit";
    let group = "CG_split";
    let ctx = format!("[{}] two consumers in one group", client.name());
    warm_up(client, &broker, topic);
    let mk = |name: &str| {
        let mut a = client.consumer(&broker, topic, group).label(name).arg("linger-ms", 0);
        if client == Client::AliOns {
            // ali-ons ignores NOTIFY_CONSUMER_IDS_CHANGED and rebalances on a timer (10 s default).
            a = a.arg("rebalance-ms", 2000);
        }
        a.spawn()
    };
    let mut c1 = mk("c1");
    c1.wait_event("started", Duration::from_secs(20));
    let mut c2 = mk("c2");
    c2.wait_event("started", Duration::from_secs(20));
    match client {
        Client::AliOns | Client::Java | Client::Java5 => wait_split(&c1, &c2, &ctx),
        Client::Cpp => std::thread::sleep(settle_time()),
    }
    let sent = produce(client, &broker, topic, "s", 0, N);
    wait_union(&[&c1, &c2], N as usize, Duration::from_secs(30), &ctx);
    std::thread::sleep(Duration::from_secs(3)); // let duplicates show up
    c1.stop();
    c2.stop();
    let r1 = recv_of(&c1.events());
    let r2 = recv_of(&c2.events());
    let all: Vec<Recv> = r1.iter().chain(r2.iter()).cloned().collect();
    assert_exactly_once(&ctx, &sent, &all);
    assert_intact(client, topic, &sent, &all);
    let (q1, q2) = (queue_ids(&r1), queue_ids(&r2));
    assert!(
        !r1.is_empty() && !r2.is_empty(),
        "{ctx}: one consumer got everything (c1 {} msgs from queues {q1:?}, c2 {} from {q2:?}): \
         GET_CONSUMER_LIST_BY_GROUP must list both members",
        r1.len(),
        r2.len()
    );
    assert!(
        q1.is_disjoint(&q2),
        "{ctx}: both consumers pulled from the same queue(s): c1 {q1:?}, c2 {q2:?}"
    );
    broker_ok(broker, &ctx);
}

/// ali-ons and Java print their queue set after each rebalance; wait until the two
/// consumers hold disjoint sets covering all queues.
fn wait_split(c1: &Proc, c2: &Proc, ctx: &str) {
    let last = |p: &Proc| -> Option<BTreeSet<String>> {
        p.events_of("queues").last().map(|e| {
            e["queueIds"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let (Some(a), Some(b)) = (last(c1), last(c2)) {
            if a.is_disjoint(&b) && a.len() + b.len() == QUEUES && !a.is_empty() && !b.is_empty() {
                return;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{ctx}: queues not split between the consumers within 30 s (c1 holds {:?}, c2 holds {:?}); \
             GET_CONSUMER_LIST_BY_GROUP must return both clientIds\n{}\n{}",
            last(c1),
            last(c2),
            c1.report(),
            c2.report()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Broadcasting: every consumer gets every message.
pub fn broadcast(client: Client) {
    let (_g, broker) = start(client);
    let topic = "InteropBroadcast";
    let ctx = format!("[{}] broadcasting", client.name());
    warm_up(client, &broker, topic);
    let n = 20;
    let mut procs = Vec::new();
    for name in ["b1", "b2"] {
        let p = client
            .consumer(&broker, topic, "CG_broadcast")
            .label(name)
            .arg("model", "broadcasting")
            .arg("instance", name)
            .arg("expect", n)
            .arg("linger-ms", 3000)
            .spawn();
        procs.push(p);
    }
    for p in &procs {
        // Broadcasting consumers of a new group start at the queue's max offset
        // (clients' default CONSUME_FROM_LAST_OFFSET): wait until they are placed.
        match client {
            Client::Cpp => p.wait_event("started", Duration::from_secs(20)), // start() rebalances synchronously
            Client::AliOns | Client::Java | Client::Java5 => {
                p.wait_for("all queues assigned", Duration::from_secs(20), |ev| {
                    ev.iter()
                        .any(|e| e["event"] == "queues" && e["queueIds"].as_array().map(|a| a.len()) == Some(QUEUES))
                })
            }
        }
    }
    let sent = produce(client, &broker, topic, "b", 0, n);
    for p in procs.iter_mut() {
        p.wait_exit(PROC_TIMEOUT);
        p.assert_no_error();
        let recv = recv_of(&p.events());
        let c = format!("{ctx} ({})", p.label);
        assert_exactly_once(&c, &sent, &recv);
        assert_intact(client, topic, &sent, &recv);
    }
    broker_ok(broker, &ctx);
}

/// Ordered send by sharding key + orderly consume keeps per-key order.
pub fn ordered(client: Client) {
    let (_g, broker) = start(client);
    let topic = "InteropOrdered";
    let ctx = format!("[{}] ordered send + orderly consume", client.name());
    let keys = 4;
    let sent = produce_with(
        client
            .producer(&broker, topic, "PG_ordered")
            .arg("mode", "orderly")
            .arg("order-keys", keys),
        "o",
        0,
        N,
    );
    if reports_queues(client) {
        let mut q_of: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for m in &sent {
            q_of.entry(m.order_key.clone().unwrap())
                .or_default()
                .insert(m.queue_id.clone().unwrap());
        }
        for (k, qs) in &q_of {
            assert_eq!(qs.len(), 1, "{ctx}: sharding key {k} was sent to queues {qs:?}");
        }
    }
    let (_p, recv) = consume(
        client
            .consumer(&broker, topic, "CG_ordered")
            .flag("orderly")
            .arg("linger-ms", 3000),
        N,
        &ctx,
    );
    assert_exactly_once(&ctx, &sent, &recv);
    assert_intact(client, topic, &sent, &recv);
    let mut seqs: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut queues: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    for r in &recv {
        let k = r.props.get("orderKey").cloned().unwrap_or_default();
        seqs.entry(k.clone())
            .or_default()
            .push(r.props["orderSeq"].parse().unwrap());
        queues.entry(k).or_default().insert(r.queue_id);
    }
    assert_eq!(
        seqs.len(),
        keys,
        "{ctx}: expected {keys} order keys, got {:?}",
        seqs.keys()
    );
    for (k, got) in &seqs {
        let want: Vec<i64> = (0..got.len() as i64).collect();
        assert_eq!(got, &want, "{ctx}: messages of sharding key {k} consumed out of order");
        assert_eq!(
            queues[k].len(),
            1,
            "{ctx}: messages of sharding key {k} came from queues {:?}",
            queues[k]
        );
    }
    // Within each queue, delivery must follow queue offsets.
    let mut last: BTreeMap<i64, i64> = BTreeMap::new();
    for r in &recv {
        if let Some(prev) = last.insert(r.queue_id, r.queue_offset) {
            assert!(
                prev < r.queue_offset,
                "{ctx}: queue {} delivered offset {} after {prev}",
                r.queue_id,
                r.queue_offset
            );
        }
    }
    broker_ok(broker, &ctx);
}

/// C++ only: oneway sends (no reply expected) all arrive.
pub fn oneway(client: Client) {
    let (_g, broker) = start(client);
    let topic = "InteropOneway";
    let ctx = format!("[{}] oneway send", client.name());
    let n = 20;
    let sent = produce_with(
        client.producer(&broker, topic, "PG_oneway").arg("mode", "oneway"),
        "ow",
        0,
        n,
    );
    let (_p, recv) = consume(
        client.consumer(&broker, topic, "CG_oneway").arg("linger-ms", 3000),
        n,
        &ctx,
    );
    assert_exactly_once(&ctx, &sent, &recv);
    assert_intact(client, topic, &sent, &recv);
    assert_queue_offsets_dense(&ctx, &recv);
    broker_ok(broker, &ctx);
}

/// C++ only: batch sends store each inner message with its own properties,
/// one batch in one queue at consecutive offsets.
pub fn batch(client: Client) {
    let (_g, broker) = start(client);
    let topic = "InteropBatch";
    let ctx = format!("[{}] batch send", client.name());
    let (n, size) = (30u64, 10u64);
    let sent = produce_with(
        client
            .producer(&broker, topic, "PG_batch")
            .arg("mode", "batch")
            .arg("batch-size", size),
        "bt",
        0,
        n,
    );
    let (_p, recv) = consume(
        client.consumer(&broker, topic, "CG_batch").arg("linger-ms", 3000),
        n,
        &ctx,
    );
    assert_exactly_once(&ctx, &sent, &recv);
    assert_intact(client, topic, &sent, &recv);
    assert_queue_offsets_dense(&ctx, &recv);
    let by_i: BTreeMap<u64, &Recv> = recv.iter().map(|r| (r.props["seq"].parse().unwrap(), r)).collect();
    for b in (0..n).step_by(size as usize) {
        let first = by_i[&b];
        for i in b..b + size {
            let r = by_i[&i];
            assert_eq!(
                (r.queue_id, r.queue_offset),
                (first.queue_id, first.queue_offset + (i - b) as i64),
                "{ctx}: message {i} of the batch starting at {b} is not stored right after its predecessor"
            );
        }
    }
    broker_ok(broker, &ctx);
}

/// SYNC_FLUSH broker SIGKILLed between phases: nothing acknowledged is lost,
/// queue offsets continue, and the group resumes from its committed offsets.
///
/// Phase A: 20 messages, consumed by C1 (group G), which keeps running until
/// ≥ 6 s after its last delivery (both clients commit offsets every 5 s;
/// ali-ons also on close) — so every A offset is committed. The test then
/// waits SHARDMQ_INTEROP_OFFSET_FLUSH_MS (6 s; Java persists offsets every
/// 5 s). Phase B: 20 more, acknowledged (SYNC_FLUSH), then SIGKILL + restart
/// on the same data dir. Phase C: 20 more after the restart. C2 (group G)
/// must then get exactly B ∪ C: no A message again (its offsets were
/// committed and persisted before the crash), nothing of B lost.
pub fn restart_keeps_messages_and_offsets(client: Client) {
    let (_g, mut broker) = start(client);
    let topic = "InteropRestart";
    let group = "CG_restart";
    let ctx = format!("[{}] broker SIGKILL + restart", client.name());
    let n = 20u64;

    let a = produce(client, &broker, topic, "a", 0, n);
    let (_c1, r1) = consume(
        client
            .consumer(&broker, topic, group)
            .label("c1")
            .arg("linger-ms", 1000)
            .arg("commit-wait-ms", 6000),
        n,
        &format!("{ctx}, phase A"),
    );
    assert_exactly_once(&format!("{ctx}, phase A"), &a, &r1);
    std::thread::sleep(offset_flush_wait());

    let b = produce(client, &broker, topic, "b", n, n);
    broker.assert_alive("phase B");
    broker.kill9();
    eprintln!("interop [{}]: broker SIGKILLed, restarting", client.name());
    broker.restart();

    let c = produce(client, &broker, topic, "c", 2 * n, n);
    let mut all_sent = a.clone();
    all_sent.extend(b.iter().cloned());
    all_sent.extend(c.iter().cloned());
    assert_send_offsets_contiguous(client, &all_sent);

    let mut bc = b.clone();
    bc.extend(c.iter().cloned());
    let (_c2, r2) = consume(
        client
            .consumer(&broker, topic, group)
            .label("c2")
            .arg("linger-ms", 4000),
        2 * n,
        &format!("{ctx}, after restart"),
    );
    let again: Vec<&str> = r2
        .iter()
        .filter(|r| r.key.starts_with("a-k"))
        .map(|r| r.key.as_str())
        .collect();
    assert!(
        again.is_empty(),
        "{ctx}: after the restart the group re-consumed {} phase-A messages {again:?} whose offsets were committed \
         (UPDATE_CONSUMER_OFFSET) ≥ {:?} before the SIGKILL: consumer offsets were not persisted or not restored",
        again.len(),
        offset_flush_wait()
    );
    let lost: Vec<&str> = b
        .iter()
        .filter(|m| !r2.iter().any(|r| r.key == m.key))
        .map(|m| m.key.as_str())
        .collect();
    assert!(
        lost.is_empty(),
        "{ctx}: {} messages acknowledged under SYNC_FLUSH before the SIGKILL were lost: {lost:?}",
        lost.len()
    );
    assert_exactly_once(&format!("{ctx}, after restart"), &bc, &r2);
    assert_intact(client, topic, &bc, &r2);
    let mut all_recv = r1.clone();
    all_recv.extend(r2.iter().cloned());
    assert_queue_offsets_dense(&format!("{ctx} (phases A+B+C)"), &all_recv);
    broker_ok(broker, &ctx);
}

fn broker_ok(mut broker: Broker, ctx: &str) {
    broker.assert_alive(ctx);
}

/// Auto-creation through `TBW102` agrees with the route it advertised (Java
/// client, which auto-creates like Java users rely on; the topic is never
/// created first).
///
/// Broker: `shardAwareRoutes` as given, `defaultTopicQueueNums` =
/// `broker_queues` (so TBW102 has that many queues, `broker_queues / SHARDS`
/// per shard entry with shard-aware routes). Producer
/// (`defaultTopicQueueNums` = `client_queues`): a first send to the last
/// queue of the TBW102-derived publish info (creates the topic), two rounds
/// of sends to every queue of that publish info, then one to every queue of
/// the topic's own route. Checks: the TBW102-derived queues and the created
/// topic's route are the same `min(client_queues, TBW102 queues of the
/// entry)` queues per entry; every send result names the queue the client
/// aimed at; a consumer gets every message exactly once from the queue
/// (brokerName + queueId) and at the queue offset the send result named,
/// with the same offset msgId; each entry queue is one stored queue
/// (distinct entry queues never share a stored queue id).
pub fn auto_create_every_queue(client: Client, shard_aware: bool, broker_queues: usize, client_queues: usize) {
    let _g = serial();
    ensure_clients();
    assert!(client.auto_creates(), "{} does not auto-create topics", client.name());
    let ctx = format!(
        "[{}] auto-create (shardAwareRoutes={shard_aware}, broker defaultTopicQueueNums={broker_queues}, \
         client defaultTopicQueueNums={client_queues})",
        client.name()
    );
    eprintln!("interop {ctx}: starting shardmq serve");
    let (aware, bq) = (shard_aware.to_string(), broker_queues.to_string());
    let broker = Broker::start_with(
        "SYNC_FLUSH",
        &[
            ("shardAwareRoutes", aware.as_str()),
            ("defaultTopicQueueNums", bq.as_str()),
        ],
    );
    let topic = format!(
        "AutoCreate{}_{broker_queues}_{client_queues}",
        if shard_aware { "Shards" } else { "Single" }
    );
    let rounds = 2;
    // Kept alive through the checks: a failure prints its output.
    let mut producer = client
        .producer(&broker, &topic, "PG_autocreate")
        .arg("mode", "every-queue")
        .arg("rounds", rounds)
        .arg("default-topic-queue-nums", client_queues)
        .arg("prefix", "ac")
        .spawn();
    producer.close_stdin();
    producer.wait_exit(PROC_TIMEOUT);
    producer.assert_no_error();
    let events = producer.events();
    let queues_of = |source: &str| -> Vec<String> {
        let e = events
            .iter()
            .find(|e| e["event"] == "queues" && e["source"] == source)
            .unwrap_or_else(|| panic!("{ctx}: producer reported no {source} queues: {events:?}"));
        e["queues"]
            .as_array()
            .unwrap()
            .iter()
            .map(|q| q.as_str().unwrap().to_string())
            .collect()
    };
    let (tbw, route) = (queues_of("tbw102"), queues_of("route"));

    // What the TBW102 route makes the client use: per entry min(d, entry's TBW102 write queues).
    let mut want: BTreeSet<String> = BTreeSet::new();
    if shard_aware {
        assert_eq!(
            broker_queues % SHARDS as usize,
            0,
            "pick a defaultTopicQueueNums the shards split evenly"
        );
        for k in 0..SHARDS {
            for q in 0..client_queues.min(broker_queues / SHARDS as usize) {
                want.insert(format!("interop-broker-a-s{k}:{q}"));
            }
        }
    } else {
        for q in 0..client_queues.min(broker_queues) {
            want.insert(format!("interop-broker-a:{q}"));
        }
    }
    let tbw_set: BTreeSet<String> = tbw.iter().cloned().collect();
    let route_set: BTreeSet<String> = route.iter().cloned().collect();
    assert_eq!(tbw_set, want, "{ctx}: queues the client derived from the TBW102 route");
    assert_eq!(
        route_set, tbw_set,
        "{ctx}: the auto-created topic's route must list exactly the queues the client derived from the TBW102 \
         route (auto-create must create min(defaultTopicQueueNums, TBW102 write queues) on each broker entry)"
    );

    let sent = sent_of(&events);
    let total = 1 + rounds * tbw.len() + route.len();
    assert_eq!(sent.len(), total, "{ctx}: producer events {events:?}");
    for m in &sent {
        assert_eq!(
            m.status.as_deref(),
            Some("SEND_OK"),
            "{ctx}: {} sent with status {:?}",
            m.key,
            m.status
        );
        assert_eq!(
            m.queue_id, m.target,
            "{ctx}: {}: the send result (response queueId) names another queue than the client sent to",
            m.key
        );
    }
    assert_eq!(
        sent[0].target.as_deref(),
        tbw.last().map(String::as_str),
        "{ctx}: the first send goes to the last TBW102-derived queue"
    );
    let used: BTreeSet<String> = sent.iter().filter_map(|m| m.queue_id.clone()).collect();
    assert_eq!(used, want, "{ctx}: queues the sends were stored in (per send results)");
    assert_send_offsets_contiguous(client, &sent);

    let (_p, recv) = consume(
        client.consumer(&broker, &topic, "CG_autocreate").arg("linger-ms", 3000),
        total as u64,
        &ctx,
    );
    assert_exactly_once(&ctx, &sent, &recv);
    check_msg_ids(client, &sent, &recv);
    let by_key: BTreeMap<&str, &Sent> = sent.iter().map(|m| (m.key.as_str(), m)).collect();
    let mut stored: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    for r in &recv {
        let m = by_key[r.key.as_str()];
        assert_eq!(
            r.pulled_from, m.queue_id,
            "{ctx}: {} was consumed from another queue than the send result named",
            r.key
        );
        assert_eq!(
            r.queue_offset,
            m.queue_offset.unwrap_or(-1),
            "{ctx}: {} was consumed at another queue offset than the send result named ({:?})",
            r.key,
            m.queue_id
        );
        stored
            .entry(r.pulled_from.clone().unwrap_or_default())
            .or_default()
            .insert(r.queue_id);
    }
    let mut owner: BTreeMap<i64, String> = BTreeMap::new();
    for (q, ids) in &stored {
        assert_eq!(
            ids.len(),
            1,
            "{ctx}: messages of queue {q} were stored in several queues {ids:?}"
        );
        let id = *ids.iter().next().unwrap();
        if let Some(other) = owner.insert(id, q.clone()) {
            panic!("{ctx}: queues {other} and {q} are the same stored queue {id}");
        }
    }
    broker_ok(broker, &ctx);
}
