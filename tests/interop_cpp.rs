//! End-to-end tests with the real C++ client core (rocketmq-client-cpp 2.1.0,
//! through PyPI rocketmq-python-cvs 2.1.0.3 which bundles librocketmq.so)
//! against the real `shardmq serve` (127.0.0.1, free ports, temp data dir,
//! SYNC_FLUSH). Installs the client with scripts/setup-interop.sh on first use.
//! Scenario programs: tests/interop/python/*.py; scenarios: tests/interop/scenarios.rs.

#[path = "interop/harness.rs"]
mod harness;
#[path = "interop/scenarios.rs"]
mod scenarios;

use harness::Client::Cpp;

#[test]
fn cpp_sync_send_then_consume_exactly_those() {
    scenarios::send_and_consume(Cpp);
}

#[test]
fn cpp_tag_filter_tag_a_or_tag_b() {
    scenarios::tag_filter(Cpp);
}

#[test]
fn cpp_two_consumers_split_queues_exactly_once() {
    scenarios::two_consumers_split(Cpp);
}

#[test]
fn cpp_broadcast_every_consumer_gets_everything() {
    scenarios::broadcast(Cpp);
}

#[test]
fn cpp_sharding_key_order_kept() {
    scenarios::ordered(Cpp);
}

#[test]
fn cpp_oneway_send_all_arrive() {
    scenarios::oneway(Cpp);
}

#[test]
fn cpp_batch_send_stores_each_message() {
    scenarios::batch(Cpp);
}

#[test]
fn cpp_broker_sigkill_restart_loses_nothing_and_resumes_offsets() {
    scenarios::restart_keeps_messages_and_offsets(Cpp);
}
