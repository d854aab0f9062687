//! Replication with the reference client (Apache RocketMQ Java
//! rocketmq-client 4.9.8): a broker group of a SYNC_MASTER and a SLAVE
//! (two `shardmq serve` processes, 2 shards each), both registered with
//! both name servers. The Java producer's sends are acknowledged SEND_OK
//! only once the slave holds them; the master is then killed with SIGKILL
//! and a Java push consumer, routed to the slave by the name server that
//! outlives the master, consumes every acknowledged message exactly once.

#[path = "interop/harness.rs"]
mod harness;

use std::time::{Duration, Instant};

use harness::Client::Java;
use harness::*;

const N: u64 = 60;

#[test]
fn java_clients_keep_every_acknowledged_message_through_a_master_kill9() {
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
        ],
        sp,
    );
    let mut master = Broker::start_on(
        "SYNC_FLUSH",
        &[("brokerRole", "SYNC_MASTER"), ("namesrvAddr", &namesrvs)],
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
    let topic = "JavaHa";
    // Through the slave's name server, which outlives the master.
    let sent = produce_with(Java.producer(&slave, topic, "PG_ha"), "ha", 0, N);
    assert_eq!(sent.len() as u64, N);
    for m in &sent {
        assert_eq!(m.status.as_deref(), Some("SEND_OK"), "{m:?}");
    }
    master.kill9();
    let ctx = "[java] consume from the slave after the master's SIGKILL";
    let mut p = Java
        .consumer(&slave, topic, "CG_ha")
        .arg("linger-ms", 3000)
        .arg("expect", N)
        .spawn();
    p.wait_exit(Duration::from_secs(120));
    let recv = recv_of(&p.events());
    assert!(!p.events_of("done").is_empty(), "{ctx}: {}", p.report());
    assert_exactly_once(ctx, &sent, &recv);
    assert_intact(Java, topic, &sent, &recv);
}
