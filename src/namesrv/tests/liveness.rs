//! Broker expiry by silence and by connection close.

use std::time::Duration;

use super::*;

#[test]
fn silent_broker_expires_while_heartbeating_one_stays() {
    let mut f = Fixture::new();
    let heartbeat = simple(
        request::BROKER_HEARTBEAT,
        &[
            ("clusterName", CLUSTER),
            ("brokerAddr", A0),
            ("brokerName", "broker-a"),
            ("brokerId", "0"),
        ],
    );
    assert_eq!(
        f.call_at(1, &heartbeat, Duration::from_secs(100)).code,
        response::SUCCESS
    );
    // The slave re-registers (unchanged DataVersion) — also a sign of life.
    let slave = register("broker-a", A1, 1, topics_a(), dv(1));
    assert_eq!(f.call_at(2, &slave, Duration::from_secs(100)).code, response::SUCCESS);

    assert!(
        f.ns.scan_expired(f.t0 + Duration::from_secs(120)).is_empty(),
        "120 s is not yet expired"
    );
    let closed = f.ns.scan_expired(f.t0 + Duration::from_secs(121));
    assert_eq!(closed, vec![ConnId(3)]);
    f.ns.route_table().debug_check();
    assert!(f.route("TopicB").is_err());
    assert_eq!(f.route("TBW102").unwrap().broker_datas.len(), 1);
    assert_eq!(f.route("TopicTest").unwrap().broker_datas[0].broker_addrs.len(), 2);
}

#[test]
fn heartbeat_timeout_millis_overrides_the_default() {
    let mut f = Fixture::new();
    let mut req = register("broker-c", "10.0.0.3:10911", 0, topics_b(), dv(1));
    req.ext_fields.insert("heartbeatTimeoutMillis", "10000");
    assert_eq!(f.call(4, &req).code, response::SUCCESS);
    assert_eq!(f.ns.scan_expired(f.t0 + Duration::from_secs(11)), vec![ConnId(4)]);
    let info = f.ns.route_table().cluster_info();
    assert!(!info.broker_addr_table.contains_key("broker-c"));
}

#[test]
fn closed_connection_drops_its_broker_at_once() {
    let mut f = Fixture::new();
    f.ns.connection_closed(ConnId(2));
    f.ns.route_table().debug_check();
    let route = f.route("TopicTest").unwrap();
    assert_eq!(route.broker_datas[0].broker_addrs.len(), 1);
    assert_eq!(route.broker_datas[0].master_addr(), Some(A0));
    f.ns.connection_closed(ConnId(1));
    assert!(f.route("TopicTest").is_err());
    assert!(f.route("TBW102").is_ok(), "broker-b still serves TBW102");
    // An unknown connection is a no-op.
    f.ns.connection_closed(ConnId(77));
}

#[test]
fn a_reregistration_over_a_new_connection_survives_the_old_one_closing() {
    let mut f = Fixture::new();
    assert_eq!(
        f.call(10, &register("broker-b", B0, 0, topics_b(), dv(1))).code,
        response::SUCCESS
    );
    f.ns.connection_closed(ConnId(3));
    assert!(f.route("TopicB").is_ok());
}
