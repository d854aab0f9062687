//! Scenario tests: realistic requests through [`NameServer::handle`].
//!
//! Topology used throughout (cluster `DefaultCluster`):
//!
//! ```text
//!   broker-a  id 0  192.168.1.10:10911  conn 1   TopicTest(4) TBW102(8, perm 7) %RETRY%G(1)
//!   broker-a  id 1  192.168.1.11:10911  conn 2   (slave, same topics)
//!   broker-b  id 0  192.168.1.20:10911  conn 3   TopicB(2) TBW102(8, perm 7) %RETRY%G(1)
//! ```

use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;
use crate::protocol::bodies::{
    ClusterInfo, DataVersion, JsonBody, KvTable, QueueData, RegisterBrokerBody, TopicConfig, TopicList, TopicRouteData,
};
use crate::protocol::{crc32_masked, version, SerializeType};

const CLUSTER: &str = "DefaultCluster";
const A0: &str = "192.168.1.10:10911";
const A1: &str = "192.168.1.11:10911";
const B0: &str = "192.168.1.20:10911";

/// json.md §2, both dialects: exactly what `TopicTest` must look like.
const ROUTE_OLD: &str = r#"{"brokerDatas":[{"brokerAddrs":{0:"192.168.1.10:10911",1:"192.168.1.11:10911"},"brokerName":"broker-a","cluster":"DefaultCluster","enableActingMaster":false}],"filterServerTable":{},"queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":4}]}"#;
const ROUTE_NEW: &str = r#"{"brokerDatas":[{"brokerAddrs":{"0":"192.168.1.10:10911","1":"192.168.1.11:10911"},"brokerName":"broker-a","cluster":"DefaultCluster","enableActingMaster":false}],"filterServerTable":{},"queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":4}]}"#;

fn dv(counter: i64) -> DataVersion {
    DataVersion {
        counter,
        state_version: 0,
        timestamp: 1_700_000_000_000 + counter,
    }
}

fn topics_a() -> Vec<TopicConfig> {
    vec![
        TopicConfig::new("TopicTest", 4, 6),
        TopicConfig::new("TBW102", 8, 7),
        TopicConfig::new("%RETRY%G", 1, 6),
    ]
}

fn topics_b() -> Vec<TopicConfig> {
    vec![
        TopicConfig::new("TopicB", 2, 6),
        TopicConfig::new("TBW102", 8, 7),
        TopicConfig::new("%RETRY%G", 1, 6),
    ]
}

fn body_of(topics: Vec<TopicConfig>, version: DataVersion) -> RegisterBrokerBody {
    let mut body = RegisterBrokerBody::default();
    body.topic_config_serialize_wrapper.data_version = version;
    for tc in topics {
        body.topic_config_serialize_wrapper
            .topic_config_table
            .insert(tc.topic_name.clone(), tc);
    }
    body
}

/// A 5.x broker's REGISTER_BROKER with a JSON body and its CRC.
fn register(name: &str, addr: &str, id: i64, topics: Vec<TopicConfig>, version: DataVersion) -> RemotingCommand {
    let body = body_of(topics, version).encode();
    let mut req = RemotingCommand::new_request(request::REGISTER_BROKER).with_opaque(100 + id as i32);
    for (k, v) in [
        ("brokerName", name),
        ("brokerAddr", addr),
        ("clusterName", CLUSTER),
        ("haServerAddr", &addr.replace("10911", "10912")),
        ("brokerId", &id.to_string()),
        ("enableActingMaster", "false"),
        ("compressed", "false"),
        ("bodyCrc32", &crc32_masked(&body).to_string()),
    ] {
        req.ext_fields.insert(k, v);
    }
    req.with_body(body)
}

fn route_req(topic: &str, client_version: i32) -> RemotingCommand {
    let mut req = RemotingCommand::new_request(request::GET_ROUTEINFO_BY_TOPIC).with_opaque(7);
    req.version = client_version;
    req.ext_fields.insert("topic", topic);
    req
}

fn simple(code: i32, fields: &[(&str, &str)]) -> RemotingCommand {
    let mut req = RemotingCommand::new_request(code).with_opaque(9);
    for (k, v) in fields {
        req.ext_fields.insert(*k, *v);
    }
    req
}

struct Fixture {
    ns: NameServer,
    t0: Instant,
}

impl Fixture {
    /// The three brokers of the module docs, registered at `t0`.
    fn new() -> Self {
        let mut f = Fixture {
            ns: NameServer::default(),
            t0: Instant::now(),
        };
        for (conn, req) in [
            (1, register("broker-a", A0, 0, topics_a(), dv(1))),
            (2, register("broker-a", A1, 1, topics_a(), dv(1))),
            (3, register("broker-b", B0, 0, topics_b(), dv(1))),
        ] {
            let rsp = f.call(conn, &req);
            assert_eq!(rsp.code, response::SUCCESS, "{:?}", rsp.remark);
        }
        f
    }

    fn call_at(&mut self, conn: u64, req: &RemotingCommand, at: Duration) -> RemotingCommand {
        let rsp = self.ns.handle(ConnId(conn), req, self.t0 + at).expect("a response");
        self.ns.route_table().debug_check();
        rsp
    }

    fn call(&mut self, conn: u64, req: &RemotingCommand) -> RemotingCommand {
        self.call_at(conn, req, Duration::ZERO)
    }

    fn route(&mut self, topic: &str) -> Result<TopicRouteData, String> {
        let rsp = self.call(9, &route_req(topic, version::CURRENT));
        match rsp.code {
            response::SUCCESS => Ok(TopicRouteData::decode(&rsp.body).unwrap()),
            _ => Err(rsp.remark.unwrap_or_default()),
        }
    }
}

fn body_text(rsp: &RemotingCommand) -> &str {
    std::str::from_utf8(&rsp.body).unwrap()
}

#[test]
fn registration_responses_and_slave_master_info() {
    let mut f = Fixture {
        ns: NameServer::default(),
        t0: Instant::now(),
    };
    let mut master = register("broker-a", A0, 0, topics_a(), dv(1));
    master.serialize_type = SerializeType::RocketMq;
    let rsp = f.call(1, &master);
    assert_eq!(rsp.code, response::SUCCESS);
    assert!(rsp.is_response() && !rsp.is_oneway());
    assert_eq!(rsp.opaque, master.opaque);
    assert_eq!(rsp.serialize_type, SerializeType::RocketMq);
    assert!(rsp.ext_fields.is_empty(), "a master gets no master info");
    assert!(rsp.body.is_empty(), "no ORDER_TOPIC_CONFIG entries, no body");

    let rsp = f.call(2, &register("broker-a", A1, 1, topics_a(), dv(1)));
    assert_eq!(rsp.ext_str("masterAddr"), Some(A0));
    assert_eq!(rsp.ext_str("haServerAddr"), Some("192.168.1.10:10912"));

    // With order topic config, registering brokers get the KV table.
    let put = simple(
        request::PUT_KV_CONFIG,
        &[
            ("namespace", NAMESPACE_ORDER_TOPIC_CONFIG),
            ("key", "TopicTest"),
            ("value", "broker-a:4"),
        ],
    );
    assert_eq!(f.call(9, &put).code, response::SUCCESS);
    let rsp = f.call(1, &master);
    assert_eq!(body_text(&rsp), r#"{"table":{"TopicTest":"broker-a:4"}}"#);
}

#[test]
fn route_in_both_dialects_matches_json_md() {
    let mut f = Fixture::new();
    for (client_version, accept_standard, expected) in [
        (version::V4_5_2, None, ROUTE_OLD),         // Go
        (version::V3_4_9, None, ROUTE_OLD),         // ali-ons
        (version::V4_6_0, Some("true"), ROUTE_NEW), // asks for standard JSON
        (version::V4_9_4, None, ROUTE_NEW),
        (version::V5_3_3, Some("false"), ROUTE_NEW),
    ] {
        let mut req = route_req("TopicTest", client_version);
        if let Some(flag) = accept_standard {
            req.ext_fields.insert("acceptStandardJsonOnly", flag);
        }
        let rsp = f.call(9, &req);
        assert_eq!(rsp.code, response::SUCCESS);
        assert_eq!(rsp.opaque, 7);
        assert_eq!(body_text(&rsp), expected, "client version {client_version}");
    }
}

#[test]
fn shared_topics_list_every_broker_and_only_masters_are_writable() {
    let mut f = Fixture::new();
    let tbw = f.route("TBW102").unwrap();
    let names: Vec<_> = tbw.queue_datas.iter().map(|q| q.broker_name.as_str()).collect();
    assert_eq!(names, ["broker-a", "broker-b"]);
    assert!(tbw.queue_datas.iter().all(|q| q.perm == 7 && q.write_queue_nums == 8));
    assert_eq!(tbw.producer_queues("TBW102").len(), 16);
    let retry = f.route("%RETRY%G").unwrap();
    assert_eq!(retry.consumer_queues("%RETRY%G").len(), 2);

    // broker-b's master leaves; its route data stays only while an address remains.
    let unregister = simple(
        request::UNREGISTER_BROKER,
        &[
            ("brokerName", "broker-b"),
            ("brokerAddr", B0),
            ("clusterName", CLUSTER),
            ("brokerId", "0"),
        ],
    );
    assert_eq!(f.call(3, &unregister).code, response::SUCCESS);
    let err = f.route("TopicB").unwrap_err();
    assert_eq!(err, "No topic route info in name server for the topic: TopicB");
    assert_eq!(f.route("TBW102").unwrap().queue_datas.len(), 1);
}

#[test]
fn unknown_topic_is_topic_not_exist() {
    let mut f = Fixture::new();
    let rsp = f.call(9, &route_req("Nope", version::CURRENT));
    assert_eq!(rsp.code, response::TOPIC_NOT_EXIST);
    assert_eq!(
        rsp.remark.as_deref(),
        Some("No topic route info in name server for the topic: Nope")
    );
    assert!(rsp.body.is_empty());
}

#[test]
fn cluster_info_matches_json_md_shape() {
    let mut f = Fixture::new();
    let rsp = f.call(9, &simple(request::GET_BROKER_CLUSTER_INFO, &[]));
    let expected = concat!(
        r#"{"brokerAddrTable":{"broker-a":{"brokerAddrs":{0:"192.168.1.10:10911",1:"192.168.1.11:10911"},"brokerName":"broker-a","cluster":"DefaultCluster","enableActingMaster":false},"#,
        r#""broker-b":{"brokerAddrs":{0:"192.168.1.20:10911"},"brokerName":"broker-b","cluster":"DefaultCluster","enableActingMaster":false}},"#,
        r#""clusterAddrTable":{"DefaultCluster":["broker-a","broker-b"]}}"#
    );
    assert_eq!(body_text(&rsp), expected);
    assert_eq!(ClusterInfo::decode(&rsp.body).unwrap().broker_addr_table.len(), 2);
}

#[test]
fn topic_lists() {
    let mut f = Fixture::new();
    let all = f.call(9, &simple(request::GET_ALL_TOPIC_LIST_FROM_NAMESERVER, &[]));
    assert_eq!(
        body_text(&all),
        r#"{"topicList":["%RETRY%G","TBW102","TopicB","TopicTest"]}"#
    );
    let by_cluster = f.call(9, &simple(request::GET_TOPICS_BY_CLUSTER, &[("cluster", CLUSTER)]));
    assert_eq!(TopicList::decode(&by_cluster.body).unwrap().topic_list.len(), 4);
    let none = f.call(9, &simple(request::GET_TOPICS_BY_CLUSTER, &[("cluster", "Other")]));
    assert_eq!(body_text(&none), r#"{"topicList":[]}"#);
    let system = f.call(9, &simple(request::GET_SYSTEM_TOPIC_LIST_FROM_NS, &[]));
    assert_eq!(
        body_text(&system),
        r#"{"brokerAddr":"192.168.1.10:10911","topicList":["DefaultCluster","broker-a","broker-b"]}"#
    );
}

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

#[test]
fn queue_datas_follow_the_data_version() {
    let mut f = Fixture::new();
    let mut changed = topics_b();
    changed[0].write_queue_nums = 8;
    // Same DataVersion: the existing QueueData is kept.
    f.call(3, &register("broker-b", B0, 0, changed.clone(), dv(1)));
    assert_eq!(f.route("TopicB").unwrap().queue_datas[0].write_queue_nums, 2);
    // A new topic under the same DataVersion still gets its QueueData.
    let mut more = changed.clone();
    more.push(TopicConfig::new("TopicNew", 3, 6));
    f.call(3, &register("broker-b", B0, 0, more, dv(1)));
    assert_eq!(f.route("TopicNew").unwrap().queue_datas[0].read_queue_nums, 3);
    // New DataVersion: rebuilt.
    f.call(3, &register("broker-b", B0, 0, changed, dv(2)));
    assert_eq!(f.route("TopicB").unwrap().queue_datas[0].write_queue_nums, 8);

    let query = |v: DataVersion| {
        simple(
            request::QUERY_DATA_VERSION,
            &[
                ("brokerName", "broker-b"),
                ("brokerAddr", B0),
                ("clusterName", CLUSTER),
                ("brokerId", "0"),
            ],
        )
        .with_body(v.encode())
    };
    let same = f.call(3, &query(dv(2)));
    assert_eq!(same.ext_str("changed"), Some("false"));
    assert_eq!(DataVersion::decode(&same.body).unwrap(), dv(2));
    assert_eq!(f.call(3, &query(dv(3))).ext_str("changed"), Some("true"));
    assert_eq!(
        f.call(3, &query(dv(2)).with_body("garbage")).ext_str("changed"),
        Some("true")
    );
}

#[test]
fn compressed_registration_and_crc_check() {
    let mut f = Fixture::new();
    let body = body_of(
        vec![TopicConfig::new("TopicZ", 2, 6), TopicConfig::new("TBW102", 8, 7)],
        dv(5),
    );
    let z = body.encode_compressed(version::CURRENT);
    let mut req = register("broker-z", "10.0.0.9:10911", 0, Vec::new(), dv(5)).with_body(z.clone());
    req.ext_fields.insert("compressed", "true");
    req.ext_fields.insert("bodyCrc32", crc32_masked(&z).to_string());
    assert_eq!(f.call(5, &req).code, response::SUCCESS);
    assert_eq!(f.route("TopicZ").unwrap().queue_datas[0].write_queue_nums, 2);

    req.ext_fields.insert("bodyCrc32", "12345");
    let rsp = f.call(5, &req);
    assert_eq!(rsp.code, response::SYSTEM_ERROR);
    assert_eq!(rsp.remark.as_deref(), Some("crc32 not match"));

    // bodyCrc32 = 0 means "don't check"; a corrupt body is then a decode error.
    req.ext_fields.insert("bodyCrc32", "0");
    let rsp = f.call(5, &req.clone().with_body(&b"\x78\x9cjunk"[..]));
    assert_eq!(rsp.code, response::SYSTEM_ERROR);
    assert!(rsp.remark.unwrap().starts_with("Failed to decode RegisterBrokerBody"));
}

#[test]
fn first_registration_with_a_single_topic_is_refused() {
    let mut f = Fixture::new();
    let req = register(
        "broker-n",
        "10.0.0.8:10911",
        0,
        vec![TopicConfig::new("Only", 1, 6)],
        dv(1),
    );
    let rsp = f.call(6, &req);
    assert_eq!(rsp.code, response::SYSTEM_ERROR);
    assert!(rsp.remark.unwrap().starts_with("register broker failed"));
    assert!(!f
        .ns
        .route_table()
        .cluster_info()
        .broker_addr_table
        .contains_key("broker-n"));
    // Once registered, a single-topic registration is fine.
    let single = register("broker-b", B0, 0, vec![TopicConfig::new("TopicC", 1, 6)], dv(9));
    assert_eq!(f.call(3, &single).code, response::SUCCESS);
    assert!(f.route("TopicC").is_ok());
}

#[test]
fn missing_or_bad_header_fields_name_the_field() {
    let mut f = Fixture::new();
    let mut req = register("broker-a", A0, 0, topics_a(), dv(1));
    req.ext_fields.remove("brokerAddr");
    let rsp = f.call(1, &req);
    assert_eq!(rsp.code, response::SYSTEM_ERROR);
    assert_eq!(rsp.remark.as_deref(), Some("the custom field <brokerAddr> is null"));

    req.ext_fields.insert("brokerAddr", A0);
    req.ext_fields.insert("brokerId", "zero");
    let remark = f.call(1, &req).remark.unwrap();
    assert!(remark.contains("<brokerId>") && remark.contains("\"zero\""), "{remark}");

    let rsp = f.call(9, &simple(request::GET_ROUTEINFO_BY_TOPIC, &[]));
    assert_eq!(rsp.remark.as_deref(), Some("the custom field <topic> is null"));
    for code in [
        request::GET_KV_CONFIG,
        request::UNREGISTER_BROKER,
        request::QUERY_DATA_VERSION,
    ] {
        assert_eq!(
            f.call(9, &simple(code, &[])).code,
            response::SYSTEM_ERROR,
            "code {code}"
        );
    }
}

#[test]
fn oneway_requests_are_processed_but_never_answered() {
    let mut f = Fixture::new();
    let req = register("broker-c", "10.0.0.3:10911", 0, topics_b(), dv(1)).with_oneway();
    assert!(f.ns.handle(ConnId(4), &req, f.t0).is_none());
    assert!(f
        .ns
        .route_table()
        .cluster_info()
        .broker_addr_table
        .contains_key("broker-c"));
    // Not even errors.
    let bad = simple(request::GET_ROUTEINFO_BY_TOPIC, &[]).with_oneway();
    assert!(f.ns.handle(ConnId(9), &bad, f.t0).is_none());
    let unknown = simple(9999, &[]).with_oneway();
    assert!(f.ns.handle(ConnId(9), &unknown, f.t0).is_none());
    // A stray response is ignored.
    let stray = RemotingCommand::response_to(&simple(request::GET_BROKER_CLUSTER_INFO, &[]), 0, None);
    assert!(f.ns.handle(ConnId(9), &stray, f.t0).is_none());
}

#[test]
fn unsupported_codes() {
    let mut f = Fixture::new();
    for code in [request::SEND_MESSAGE_V2, request::HEART_BEAT, 9999, -1] {
        let rsp = f.call(9, &simple(code, &[]));
        assert_eq!(rsp.code, response::REQUEST_CODE_NOT_SUPPORTED);
        assert_eq!(rsp.remark, Some(format!(" request type {code} not supported")));
        assert_eq!(rsp.opaque, 9);
    }
}

#[test]
fn kv_config_codes() {
    let mut f = Fixture::new();
    let ns_key = [("namespace", "ns1"), ("key", "k")];
    let rsp = f.call(9, &simple(request::GET_KV_CONFIG, &ns_key));
    assert_eq!(rsp.code, response::QUERY_NOT_FOUND);
    assert_eq!(rsp.remark.as_deref(), Some("No config item, Namespace: ns1 Key: k"));
    let put = simple(
        request::PUT_KV_CONFIG,
        &[("namespace", "ns1"), ("key", "k"), ("value", "v")],
    );
    assert_eq!(f.call(9, &put).code, response::SUCCESS);
    let rsp = f.call(9, &simple(request::GET_KV_CONFIG, &ns_key));
    assert_eq!(rsp.ext_str("value"), Some("v"));
    let list = f.call(9, &simple(request::GET_KVLIST_BY_NAMESPACE, &[("namespace", "ns1")]));
    assert_eq!(KvTable::decode(&list.body).unwrap().table["k"], "v");
    assert_eq!(
        f.call(9, &simple(request::DELETE_KV_CONFIG, &ns_key)).code,
        response::SUCCESS
    );
    assert_eq!(
        f.call(9, &simple(request::GET_KV_CONFIG, &ns_key)).code,
        response::QUERY_NOT_FOUND
    );
    let rsp = f.call(9, &simple(request::GET_KVLIST_BY_NAMESPACE, &[("namespace", "none")]));
    assert_eq!(rsp.code, response::QUERY_NOT_FOUND);
    assert_eq!(rsp.remark.as_deref(), Some("No config item, Namespace: none"));
}

#[test]
fn order_topic_conf_in_routes_when_enabled() {
    let mut f = Fixture::new();
    f.ns.config.order_message_enable = true;
    let put = simple(
        request::PUT_KV_CONFIG,
        &[
            ("namespace", NAMESPACE_ORDER_TOPIC_CONFIG),
            ("key", "TopicTest"),
            ("value", "broker-a:4"),
        ],
    );
    f.call(9, &put);
    assert_eq!(
        f.route("TopicTest").unwrap().order_topic_conf.as_deref(),
        Some("broker-a:4")
    );
    assert_eq!(f.route("TopicB").unwrap().order_topic_conf, None);
}

#[test]
fn delete_and_register_topic() {
    let mut f = Fixture::new();
    let del = simple(
        request::DELETE_TOPIC_IN_NAMESRV,
        &[("topic", "TBW102"), ("clusterName", "Other")],
    );
    assert_eq!(f.call(9, &del).code, response::SUCCESS);
    assert_eq!(f.route("TBW102").unwrap().queue_datas.len(), 2);
    let del = simple(
        request::DELETE_TOPIC_IN_NAMESRV,
        &[("topic", "TBW102"), ("clusterName", CLUSTER)],
    );
    f.call(9, &del);
    assert!(f.route("TBW102").is_err());
    f.call(9, &simple(request::DELETE_TOPIC_IN_NAMESRV, &[("topic", "TopicB")]));
    assert!(f.route("TopicB").is_err());

    let qd = |broker: &str| QueueData {
        broker_name: broker.into(),
        perm: 6,
        read_queue_nums: 2,
        topic_sys_flag: 0,
        write_queue_nums: 2,
    };
    let body = |qds: Vec<QueueData>| {
        TopicRouteData {
            queue_datas: qds,
            ..TopicRouteData::default()
        }
        .encode()
    };
    let reg = simple(request::REGISTER_TOPIC_IN_NAMESRV, &[("topic", "Static")]);
    assert_eq!(
        f.call(9, &reg.clone().with_body(body(vec![qd("broker-x")]))).code,
        response::SUCCESS
    );
    assert!(f.route("Static").is_err(), "unknown broker: nothing registered");
    f.call(9, &reg.clone().with_body(body(vec![qd("broker-a"), qd("broker-b")])));
    assert_eq!(f.route("Static").unwrap().broker_datas.len(), 2);
    assert_eq!(f.call(9, &reg.with_body("{bad")).code, response::SYSTEM_ERROR);
}

#[test]
fn wipe_and_add_write_perm() {
    let mut f = Fixture::new();
    let wipe = f.call(
        9,
        &simple(request::WIPE_WRITE_PERM_OF_BROKER, &[("brokerName", "broker-a")]),
    );
    assert_eq!(wipe.ext_str("wipeTopicCount"), Some("3"));
    let route = f.route("TopicTest").unwrap();
    assert_eq!(route.queue_datas[0].perm, 4);
    assert!(route.producer_queues("TopicTest").is_empty());
    let add = f.call(
        9,
        &simple(request::ADD_WRITE_PERM_OF_BROKER, &[("brokerName", "broker-a")]),
    );
    assert_eq!(add.ext_str("addTopicCount"), Some("3"));
    assert_eq!(f.route("TopicTest").unwrap().queue_datas[0].perm, 6);
}

#[test]
fn slave_promotion_moves_the_address_to_id_zero() {
    let mut f = Fixture::new();
    f.ns.connection_closed(ConnId(1));
    // The old slave comes back as master.
    assert_eq!(
        f.call(2, &register("broker-a", A1, 0, topics_a(), dv(2))).code,
        response::SUCCESS
    );
    let route = f.route("TopicTest").unwrap();
    assert_eq!(route.broker_datas[0].broker_addrs.len(), 1);
    assert_eq!(route.broker_datas[0].master_addr(), Some(A1));
}

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
