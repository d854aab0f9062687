//! Replication with real clients — the reference Java client
//! (rocketmq-client 4.9.8) and the C++ core (rocketmq-client-cpp through
//! its Python binding): a broker group of a SYNC_MASTER and a SLAVE (two
//! `shardmq serve` processes, 2 shards each), both registered with both
//! name servers. The producer's sends are acknowledged OK only once the
//! slave holds them; the master is then killed with SIGKILL and a push
//! consumer, routed to the slave by the name server that outlives the
//! master, consumes every acknowledged message exactly once.

#[path = "interop/harness.rs"]
mod harness;

use std::time::{Duration, Instant};

use harness::Client::{Cpp, Java};
use harness::*;

const N: u64 = 60;
/// 64 MiB segments: each broker zero-fills two per shard ahead.
const SEGMENT: &str = "67108864";

#[test]
fn java_clients_keep_every_acknowledged_message_through_a_master_kill9() {
    through_a_master_kill9(Java, "SEND_OK");
}

#[test]
fn cpp_clients_keep_every_acknowledged_message_through_a_master_kill9() {
    through_a_master_kill9(Cpp, "OK");
}

fn through_a_master_kill9(client: Client, ok: &str) {
    let _g = serial();
    ensure_clients();
    let (mp, sp) = (Ports::pick(), Ports::pick());
    let namesrvs = format!("127.0.0.1:{};127.0.0.1:{}", mp.namesrv, sp.namesrv);
    let master_ha = format!("127.0.0.1:{}", mp.ha);
    // The slave first: the master registers with its name server at once.
    let slave = Broker::start_on(
        "SYNC_FLUSH",
        &[
            ("brokerRole", "SLAVE"),
            ("brokerId", "1"),
            ("haMasterAddress", &master_ha),
            ("namesrvAddr", &namesrvs),
            ("mapedFileSizeCommitLog", SEGMENT),
        ],
        sp,
    );
    let mut master = Broker::start_on(
        "SYNC_FLUSH",
        &[
            ("brokerRole", "SYNC_MASTER"),
            ("namesrvAddr", &namesrvs),
            ("mapedFileSizeCommitLog", SEGMENT),
        ],
        mp,
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while master.log_tail().matches("replicating from log offset").count() < 2 {
        assert!(
            Instant::now() < deadline,
            "the slave's shards never connected:\nmaster:\n{}\nslave:\n{}",
            master.log_tail(),
            slave.log_tail()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let topic = format!("{}Ha", client.name().replace('-', ""));
    let topic = topic.as_str();
    if !client.auto_creates() {
        master.create_topic(topic);
    }
    // Through the slave's name server, which outlives the master (the
    // topic, created on the master, reaches the slave by replication).
    let sent = produce_with(client.program("producer", &slave, topic, "PG_ha"), "ha", 0, N);
    assert_eq!(sent.len() as u64, N);
    for m in &sent {
        assert_eq!(m.status.as_deref(), Some(ok), "{m:?}");
    }
    master.kill9();
    let ctx = format!("[{}] consume from the slave after the master's SIGKILL", client.name());
    let ctx = ctx.as_str();
    let mut p = client
        .program("consumer", &slave, topic, "CG_ha")
        .arg("linger-ms", 3000)
        .arg("expect", N)
        .spawn();
    p.wait_exit(Duration::from_secs(120));
    let recv = recv_of(&p.events());
    assert!(!p.events_of("done").is_empty(), "{ctx}: {}", p.report());
    assert_exactly_once(ctx, &sent, &recv);
    assert_intact(client, topic, &sent, &recv);
}
