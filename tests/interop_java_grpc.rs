//! The RocketMQ 5.x gRPC endpoint with the reference 5.x gRPC client,
//! unmodified: `org.apache.rocketmq:rocketmq-client-java` 5.0.8 (program
//! `grpc` of tests/interop/java5), against the real `shardmq serve` (two
//! shards, SYNC_FLUSH, gRPC on free ports; routes advertise one entry per
//! shard). One program run: a producer sends normal messages, one FIFO
//! message (message group), one delayed by 3 s, and two transactional
//! messages (one committed, one rolled back); a SimpleConsumer receives with
//! a 10 s invisible time and acks all but `nack-me` on its first delivery.
//! Two more transactions stay open: the broker recovers them over the
//! producer's Telemetry stream and the checker commits one, rolls back the
//! other.
//! Checks: tests/interop/grpc_scenarios.rs.

#[path = "interop/grpc_scenarios.rs"]
mod grpc_scenarios;
#[path = "interop/harness.rs"]
mod harness;

use harness::*;

#[test]
fn java_grpc_client_sends_receives_acks_and_resolves_transactions() {
    let _g = serial();
    ensure_clients();
    let (broker, endpoint) = grpc_scenarios::start();
    let events = Client::Java5
        .program("grpc", &broker, grpc_scenarios::TOPIC, "CG_grpc")
        .arg("endpoint", endpoint)
        .arg("count", 8)
        .arg("delay-ms", 3000)
        // nack-me comes back 10 s after its first delivery, on its shard;
        // the client's receives take turns over the shards, long-polling
        // 5 s each: it may find it up to 15 s later.
        .arg("linger-ms", 20_000)
        .run();
    grpc_scenarios::check("[java gRPC 5.0.8]", &events, 8);
    grpc_scenarios::check_orphans("[java gRPC 5.0.8]", &events);
}

/// A PushConsumer receives with `auto_renew` and no invisible time: the
/// broker gives such leases `defaultInvisibleTimeMills` (15 s here) and
/// renews them while the client lives. The listener holds "slow" for 30 s:
/// it must not come back meanwhile (attempt 2) and its ack, under the
/// handle first delivered, must hold — a SimpleConsumer of the group, after
/// the push consumer closed (its leases cut short), gets nothing.
#[test]
fn java_grpc_push_consumer_leases_are_renewed_while_it_lives() {
    let _g = serial();
    ensure_clients();
    let (broker, endpoint) = grpc_scenarios::start_with(&[("defaultInvisibleTimeMills", "15000")]);
    // Longer than the harness's usual client bound: the listener alone
    // takes 30 s.
    let mut p = Client::Java5
        .program("grpc-renew", &broker, grpc_scenarios::TOPIC, "CG_renew")
        .arg("endpoint", endpoint)
        .arg("sleep-ms", 30_000)
        .arg("probe-ms", 8_000)
        .arg("timeout-ms", 100_000)
        .spawn();
    p.close_stdin();
    p.wait_exit(std::time::Duration::from_secs(110));
    p.assert_no_error();
    let events = p.events();
    let of = |kind: &str, key: &str| -> Vec<&serde_json::Value> {
        events
            .iter()
            .filter(|e| e["event"] == kind && e["key"] == key)
            .collect()
    };
    let slow = of("received", "slow");
    assert_eq!(
        slow.len(),
        1,
        "the slow message came back while its consumer held it: {slow:?}"
    );
    assert_eq!(slow[0]["attempt"], 1);
    let held = of("consumed", "slow")[0]["atMs"].as_i64().unwrap_or(0) - slow[0]["atMs"].as_i64().unwrap_or(0);
    assert!(held >= 30_000, "the listener held it {held} ms");
    assert_eq!(of("received", "fast").len(), 1);
    let probed: Vec<_> = events.iter().filter(|e| e["event"] == "probe").collect();
    assert!(probed.is_empty(), "acked messages came back to the group: {probed:?}");
}
