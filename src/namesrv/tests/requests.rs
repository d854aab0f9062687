//! Error answers, oneway, KV config and the admin codes.

use super::*;

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
