//! Long-poll pulls are registrations, not running requests: a connection
//! can park more of them than it has request slots, keeps being served
//! while they wait, and each is answered by the message that wakes it.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use common::{pull_req, req, send_v2, Broker, Client};
use shardmq::protocol::codes::{request, response};

/// Per connection and owner shard (shardmq's `MAX_HELD_PER_CONNECTION`).
const SHARE: usize = 1024;

/// 2 200 long-poll pulls pipelined on one main-port connection, over 8
/// queues that 2 shards own 4 and 4: each shard parks the first 1 024 it
/// gets from the connection and answers the other 76 at once
/// (PULL_NOT_FOUND). A request sent behind them on the same connection is
/// answered at once — with the pulls holding request slots (1 024 per
/// connection) it waited for their 15 s timeout. A message sent to queue 3
/// answers exactly the pulls parked on queue 3, and only them.
#[test]
fn parked_pulls_hold_no_request_slots_and_wake_on_their_queue() {
    let dir = common::test_dir();
    let b = Broker::start(dir.path(), 2, &[]);
    b.create_topic("Park", 8);
    let mut c = Client::connect(&b.addr());
    let total = 2 * (SHARE + 76);
    let mut queue_of: HashMap<i32, u32> = HashMap::new();
    for i in 0..total {
        let q = (i % 8) as u32;
        let opaque = c.send(pull_req("Park", q, 0, true, "*"));
        queue_of.insert(opaque, q);
    }
    let probe = c.send(req(
        request::GET_MAX_OFFSET,
        &[("topic", "Park".into()), ("queueId", "0".into())],
    ));
    let t = Instant::now();
    c.set_read_timeout(Duration::from_millis(200));
    let mut probe_answered = None;
    let mut at_once: HashSet<i32> = HashSet::new();
    // Everything answered at once arrives well within 5 s; parked pulls
    // would wait 15 s.
    while t.elapsed() < Duration::from_secs(5) {
        let Some(r) = c.recv() else { continue };
        if r.opaque == probe {
            assert_eq!(r.code, response::SUCCESS);
            probe_answered = Some(t.elapsed());
        } else {
            assert!(queue_of.contains_key(&r.opaque), "unknown reply {}", r.opaque);
            assert_eq!(r.code, response::PULL_NOT_FOUND, "{:?}", r.remark);
            at_once.insert(r.opaque);
        }
        if probe_answered.is_some() && at_once.len() == 2 * 76 {
            break;
        }
    }
    let waited = probe_answered.expect("the request behind 2 200 parked pulls was not answered within 5 s");
    assert!(waited < Duration::from_secs(2), "answered after {waited:?}");
    assert_eq!(at_once.len(), 2 * 76, "pulls answered at once (over the share)");

    // Queue 3 gets a message: exactly its parked pulls are answered with it.
    let mut p = Client::connect(&b.addr());
    let sent = p.call(send_v2("Park", 3, "wake-up", String::new()));
    assert_eq!(sent.code, response::SUCCESS, "{:?}", sent.remark);
    let parked_on_3: HashSet<i32> = queue_of
        .iter()
        .filter(|(o, q)| **q == 3 && !at_once.contains(o))
        .map(|(o, _)| *o)
        .collect();
    assert!(!parked_on_3.is_empty());
    let mut woken: HashSet<i32> = HashSet::new();
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(3) {
        let Some(r) = c.recv() else {
            if woken.len() == parked_on_3.len() {
                // Give stray wrong answers a moment to show, then stop.
                if t.elapsed() > Duration::from_secs(1) {
                    break;
                }
            }
            continue;
        };
        assert!(
            parked_on_3.contains(&r.opaque),
            "a pull not parked on queue 3 was answered (code {}, queue {:?})",
            r.code,
            queue_of.get(&r.opaque)
        );
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
        let msgs = common::decode(&r.body);
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].1, "wake-up");
        assert!(woken.insert(r.opaque), "answered twice");
    }
    assert_eq!(woken.len(), parked_on_3.len(), "parked pulls on queue 3 answered");
}
