//! Registration, routes in both dialects, cluster info, topic lists.

use super::*;

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

/// A live broker's registration belongs to the address it came from:
/// another address can neither take its brokerName/brokerId over nor
/// unregister it; the owner can, from a new connection too.
#[test]
fn a_live_broker_cannot_be_hijacked_or_removed_from_another_address() {
    let mut f = Fixture {
        ns: NameServer::default(),
        t0: Instant::now(),
    };
    let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
    f.ns.connection_opened(ConnId(1), ip("192.168.1.10"));
    f.ns.connection_opened(ConnId(7), ip("10.6.6.6"));
    f.ns.connection_opened(ConnId(8), ip("192.168.1.10"));
    let own = register("broker-a", A0, 0, topics_a(), dv(1));
    assert_eq!(f.call(1, &own).code, response::SUCCESS);

    let hijack = register("broker-a", "10.6.6.6:10911", 0, topics_a(), dv(2));
    let r = f.call(7, &hijack);
    assert_eq!(r.code, response::NO_PERMISSION, "{:?}", r.remark);
    assert!(r.remark.unwrap_or_default().contains("192.168.1.10"));
    let unregister = simple(
        request::UNREGISTER_BROKER,
        &[
            ("brokerName", "broker-a"),
            ("brokerAddr", A0),
            ("clusterName", CLUSTER),
            ("brokerId", "0"),
        ],
    );
    assert_eq!(f.call(7, &unregister).code, response::NO_PERMISSION);
    let route = f.route("TopicTest").unwrap();
    assert_eq!(route.broker_datas[0].broker_addrs.get(&0).map(String::as_str), Some(A0));

    // The owner re-registers over a new connection from its address.
    assert_eq!(
        f.call(8, &register("broker-a", A0, 0, topics_a(), dv(2))).code,
        response::SUCCESS
    );
    assert_eq!(f.call(8, &unregister).code, response::SUCCESS);
    assert!(f.route("TopicTest").is_err());
    // Once it is gone, the name is free for anyone.
    assert_eq!(f.call(7, &hijack).code, response::SUCCESS);
}

#[test]
fn a_registration_over_the_topic_limit_is_refused() {
    let mut f = Fixture::new();
    let topics: Vec<TopicConfig> = (0..=super::super::processor::MAX_TOPICS_PER_REGISTRATION)
        .map(|i| TopicConfig::new(format!("T{i}"), 1, 6))
        .collect();
    let r = f.call(4, &register("broker-c", "192.168.1.30:10911", 0, topics, dv(1)));
    assert_eq!(r.code, response::INVALID_PARAMETER, "{:?}", r.remark);
    assert!(f.route("T1").is_err());
}
