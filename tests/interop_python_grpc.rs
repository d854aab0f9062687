//! The RocketMQ 5.x gRPC endpoint with the Python 5.x gRPC client,
//! unmodified: `rocketmq-python-client` 5.1.2 (PyPI, installed into
//! target/interop/venv5 by scripts/setup-interop.sh), program
//! tests/interop/python5/grpc_scenario.py — the same scenario and checks as
//! tests/interop_java_grpc.rs (tests/interop/grpc_scenarios.rs).

#[path = "interop/grpc_scenarios.rs"]
mod grpc_scenarios;
#[path = "interop/harness.rs"]
mod harness;

use std::time::Duration;

use harness::*;

#[test]
fn python_grpc_client_sends_receives_acks_and_resolves_transactions() {
    let _g = serial();
    ensure_clients();
    let (_broker, endpoint) = grpc_scenarios::start();
    let events = grpc_scenarios::run_python(&endpoint, "CG_grpc_py", 5, Duration::from_secs(150));
    grpc_scenarios::check("[python gRPC 5.1.2]", &events, 5);
}
