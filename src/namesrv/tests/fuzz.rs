//! Arbitrary requests through `handle`.

use std::time::Duration;

use proptest::prelude::*;

use super::*;

const NS_CODES: &[i32] = &[
    request::PUT_KV_CONFIG,
    request::GET_KV_CONFIG,
    request::DELETE_KV_CONFIG,
    request::REGISTER_BROKER,
    request::UNREGISTER_BROKER,
    request::GET_ROUTEINFO_BY_TOPIC,
    request::GET_BROKER_CLUSTER_INFO,
    request::WIPE_WRITE_PERM_OF_BROKER,
    request::GET_ALL_TOPIC_LIST_FROM_NAMESERVER,
    request::DELETE_TOPIC_IN_NAMESRV,
    request::REGISTER_TOPIC_IN_NAMESRV,
    request::GET_KVLIST_BY_NAMESPACE,
    request::GET_TOPICS_BY_CLUSTER,
    request::GET_SYSTEM_TOPIC_LIST_FROM_NS,
    request::QUERY_DATA_VERSION,
    request::ADD_WRITE_PERM_OF_BROKER,
    request::BROKER_HEARTBEAT,
];

const FIELDS: &[&str] = &[
    "brokerName",
    "brokerAddr",
    "clusterName",
    "haServerAddr",
    "brokerId",
    "topic",
    "namespace",
    "key",
    "value",
    "cluster",
    "compressed",
    "bodyCrc32",
    "heartbeatTimeoutMillis",
    "enableActingMaster",
    "acceptStandardJsonOnly",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Arbitrary headers and bodies on every name server code: always a
    /// well-formed response echoing the opaque, never a panic, and the
    /// table invariants hold afterwards.
    #[test]
    fn handle_never_panics(
        steps in proptest::collection::vec(
            (
                0..NS_CODES.len(),
                proptest::collection::vec((0..FIELDS.len(), "[a-zA-Z0-9:.%_ -]{0,12}"), 0..8),
                proptest::collection::vec(any::<u8>(), 0..64),
                0..300u64,
                any::<i32>(),
            ),
            1..12,
        )
    ) {
        let mut f = Fixture::new();
        for (code, fields, body, secs, client_version) in steps {
            let mut req = RemotingCommand::new_request(NS_CODES[code]).with_opaque(42).with_body(body);
            req.version = client_version;
            for (field, value) in fields {
                req.ext_fields.insert(FIELDS[field], value);
            }
            let now = f.t0 + Duration::from_secs(secs);
            let rsp = f.ns.handle(ConnId(secs % 4), &req, now).expect("not oneway");
            prop_assert_eq!(rsp.opaque, 42);
            prop_assert!(rsp.is_response());
            f.ns.scan_expired(now);
            f.ns.route_table().debug_check();
        }
    }
}
