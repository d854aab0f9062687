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
        .arg("linger-ms", 14_000)
        .run();
    grpc_scenarios::check("[java gRPC 5.0.8]", &events, 8);
    grpc_scenarios::check_orphans("[java gRPC 5.0.8]", &events);
}
