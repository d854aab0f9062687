//! End-to-end tests with the reference client, Apache RocketMQ Java
//! rocketmq-client 4.9.8, against the real `shardmq serve` (127.0.0.1, free
//! ports, temp data dir, SYNC_FLUSH). scripts/setup-interop.sh builds the
//! scenario programs (tests/interop/java, Maven) into one jar on first use.
//! Scenarios: tests/interop/scenarios.rs.
//!
//! Unlike the ali-ons and C++ scenarios, no topic is created first: the Java
//! producer auto-creates it through the TBW102 route, as Java users rely on.
//! `java_auto_create_*` check that auto-creation agrees with that route, with
//! shard-aware routes (one broker entry per shard) and with a single entry,
//! for several `defaultTopicQueueNums`.

#[path = "interop/harness.rs"]
mod harness;
#[path = "interop/scenarios.rs"]
mod scenarios;

use harness::Client::Java;

#[test]
fn java_sync_send_then_consume_exactly_those() {
    scenarios::send_and_consume(Java);
}

#[test]
fn java_tag_filter_tag_a_or_tag_b() {
    scenarios::tag_filter(Java);
}

#[test]
fn java_two_consumers_split_queues_exactly_once() {
    scenarios::two_consumers_split(Java);
}

#[test]
fn java_sharding_key_order_kept() {
    scenarios::ordered(Java);
}

#[test]
fn java_broker_sigkill_restart_loses_nothing_and_resumes_offsets() {
    scenarios::restart_keeps_messages_and_offsets(Java);
}

/// The reported case: TBW102 with 8 queues per shard entry, client
/// defaultTopicQueueNums 4 → 4 queues on each of the 2 entries.
#[test]
fn java_auto_create_shard_aware_routes_8_per_entry_client_4() {
    scenarios::auto_create_every_queue(Java, true, 16, 4);
}

/// TBW102 with 3 queues per entry (fewer than the client's 4) → 3 per entry.
#[test]
fn java_auto_create_shard_aware_routes_3_per_entry_client_4() {
    scenarios::auto_create_every_queue(Java, true, 6, 4);
}

/// The harness default (defaultTopicQueueNums 4 → 2 per entry), client 4.
#[test]
fn java_auto_create_shard_aware_routes_2_per_entry_client_4() {
    scenarios::auto_create_every_queue(Java, true, 4, 4);
}

/// Single broker entry: min(client 4, broker 8) = 4 queues.
#[test]
fn java_auto_create_single_entry_broker_8_client_4() {
    scenarios::auto_create_every_queue(Java, false, 8, 4);
}

/// Single broker entry, client asks for more than TBW102 has: min(6, 3) = 3.
#[test]
fn java_auto_create_single_entry_broker_3_client_6() {
    scenarios::auto_create_every_queue(Java, false, 3, 6);
}
