//! End-to-end tests with the real Node client ali-ons 3.12.0 against the real
//! `shardmq serve` (127.0.0.1, free ports, temp data dir, SYNC_FLUSH).
//! Installs the client with scripts/setup-interop.sh on first use.
//! Scenario programs: tests/interop/node/*.js; scenarios: tests/interop/scenarios.rs.
//! ali-ons has no oneway or batch send API: those run with the C++ client only.

#[path = "interop/harness.rs"]
mod harness;
#[path = "interop/scenarios.rs"]
mod scenarios;

use harness::Client::AliOns;

#[test]
fn alions_sync_send_then_consume_exactly_those() {
    scenarios::send_and_consume(AliOns);
}

#[test]
fn alions_tag_filter_tag_a_or_tag_b() {
    scenarios::tag_filter(AliOns);
}

#[test]
fn alions_two_consumers_split_queues_exactly_once() {
    scenarios::two_consumers_split(AliOns);
}

#[test]
fn alions_broadcast_every_consumer_gets_everything() {
    scenarios::broadcast(AliOns);
}

#[test]
fn alions_sharding_key_order_kept() {
    scenarios::ordered(AliOns);
}

#[test]
fn alions_broker_sigkill_restart_loses_nothing_and_resumes_offsets() {
    scenarios::restart_keeps_messages_and_offsets(AliOns);
}
