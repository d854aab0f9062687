//! Heavy name-server work must not stall a data shard: the embedded name
//! server runs on its own executor thread, so a broker registering a huge
//! topic table costs shard 0 no more than a share of a CPU. (On shard 0's
//! executor, a registration of 80 000 topics stalled its sends 0.4–1.1 s.)

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{req, Broker, Client};
use shardmq::protocol::bodies::{JsonBody, RegisterBrokerBody, TopicConfig};
use shardmq::protocol::codes::{request, response};
use shardmq::protocol::RemotingCommand;

/// Topics in each hostile REGISTER_BROKER.
const TOPICS: usize = 50_000;
/// Worst send latency on shard 0 allowed while the name server works.
/// Generous for a loaded 2-core machine; the stall it guards against
/// was 0.4–1.1 s.
const BOUND: Duration = Duration::from_millis(200);

/// A REGISTER_BROKER from a (fake) broker listing `TOPICS` topics, with
/// data version `counter` so that every round is processed in full.
fn huge_registration(counter: i64) -> RemotingCommand {
    let mut body = RegisterBrokerBody::default();
    let wrapper = &mut body.topic_config_serialize_wrapper;
    wrapper.data_version.counter = counter;
    wrapper.data_version.timestamp = 1_700_000_000_000 + counter;
    for i in 0..TOPICS {
        let tc = TopicConfig::new(format!("HugeTableTopic-{i:06}"), 8, 6);
        wrapper.topic_config_table.insert(tc.topic_name.clone(), tc);
    }
    let body = body.encode();
    let crc = shardmq::protocol::crc32_masked(&body).to_string();
    let mut r = req(
        request::REGISTER_BROKER,
        &[
            ("brokerName", "hostile-broker".into()),
            ("brokerAddr", "127.0.0.1:1".into()),
            ("clusterName", "DefaultCluster".into()),
            ("haServerAddr", "127.0.0.1:2".into()),
            ("brokerId", "0".into()),
            ("compressed", "false".into()),
            ("bodyCrc32", crc),
        ],
    );
    r.body = bytes::Bytes::from(body);
    r
}

#[test]
fn a_huge_registration_does_not_stall_shard_0_sends() {
    let dir = common::test_dir();
    let b = Broker::start(dir.path(), 2, &[]);
    b.create_topic("Steady", 2);
    let rounds: Vec<RemotingCommand> = (1..=3).map(huge_registration).collect();
    eprintln!(
        "each REGISTER_BROKER: {TOPICS} topics, {} MiB body",
        rounds[0].body.len() >> 20
    );

    // Shard 0's own port numbers its queues from 0: queue 0 is shard 0's.
    let mut sender = Client::connect(&b.shard_addr(0));
    let send = |c: &mut Client| {
        let t = Instant::now();
        let r = c.call(common::send_v2("Steady", 0, "steady", String::new()));
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
        t.elapsed()
    };
    for _ in 0..50 {
        send(&mut sender); // warm up
    }

    let busy = Arc::new(AtomicBool::new(true));
    let ns = b.namesrv_addr();
    let flag = busy.clone();
    let registrar = std::thread::spawn(move || {
        let mut c = Client::connect(&ns);
        let mut took = Vec::new();
        for r in rounds {
            let t = Instant::now();
            let rsp = c.call(r);
            took.push((rsp.code, t.elapsed()));
        }
        flag.store(false, Ordering::SeqCst);
        // The name server took the table (asked on this connection: a
        // broker's routes go when its connection closes).
        let route = c.call(req(
            request::GET_ROUTEINFO_BY_TOPIC,
            &[("topic", format!("HugeTableTopic-{:06}", TOPICS - 1))],
        ));
        (took, route.code, route.remark)
    });
    let mut worst = Duration::ZERO;
    let mut sends = 0u32;
    let deadline = Instant::now() + Duration::from_secs(120);
    while busy.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the registrations did not finish in 120 s");
        worst = worst.max(send(&mut sender));
        sends += 1;
    }
    let (took, route, remark) = registrar.join().expect("registrar");
    eprintln!("registrations took {took:?}; {sends} sends on shard 0 meanwhile, worst {worst:?}");
    for (code, _) in &took {
        assert_eq!(*code, response::SUCCESS, "a registration was refused");
    }
    assert!(
        worst < BOUND,
        "a send to shard 0 waited {worst:?} (bound {BOUND:?}) while the name server registered {TOPICS} topics"
    );
    assert_eq!(route, response::SUCCESS, "route of the last topic: {remark:?}");
}
