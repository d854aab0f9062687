//! The RocketMQ 5.x gRPC endpoint with the Node.js 5.x gRPC client,
//! unmodified: `rocketmq-client-nodejs` 1.0.8 (npm, installed into
//! target/interop/node5 by scripts/setup-interop.sh), program
//! tests/interop/node5/grpc_scenario.js — the same scenario and checks as
//! tests/interop_java_grpc.rs (tests/interop/grpc_scenarios.rs), against the
//! real `shardmq serve` (two shards, SYNC_FLUSH, gRPC on free ports),
//! including the two transactions left open that the broker recovers over
//! the producer's Telemetry stream.

#[path = "interop/grpc_scenarios.rs"]
mod grpc_scenarios;
#[path = "interop/harness.rs"]
mod harness;

use std::time::Duration;

use harness::*;

#[test]
fn node_grpc_client_sends_receives_acks_and_resolves_transactions() {
    let _g = serial();
    ensure_clients();
    let (_broker, endpoint) = grpc_scenarios::start();
    let events = grpc_scenarios::run_node(&endpoint, "CG_grpc_node", 8, Duration::from_secs(120));
    grpc_scenarios::check("[node gRPC 1.0.8]", &events, 8);
    grpc_scenarios::check_orphans("[node gRPC 1.0.8]", &events);
}
