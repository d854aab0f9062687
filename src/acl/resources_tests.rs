use super::*;
use crate::protocol::codes::request;
use proptest::prelude::*;

fn ext(fields: &[(&str, &str)]) -> ExtFields {
    fields.iter().copied().collect()
}

fn needs(code: i32, fields: &[(&str, &str)]) -> Vec<(Resource<'static>, Need)> {
    let e = ext(fields);
    let out = match required(code, &e) {
        Required::Needs(n) => {
            assert_eq!(n.admin_code(), None, "code {code}");
            n.iter().map(|(r, n)| (r.clone().into_owned(), n)).collect()
        }
        Required::Body(kind) => panic!("code {code} needs its body ({kind:?})"),
    };
    out
}

fn topic(name: &str, need: Need) -> (Resource<'static>, Need) {
    (Resource::Topic(Cow::Owned(name.to_owned())), need)
}

fn group(name: &str) -> (Resource<'static>, Need) {
    (Resource::Group(Cow::Owned(name.to_owned())), Need::Sub)
}

#[test]
fn sends_need_pub_on_their_topic() {
    for code in [
        request::SEND_MESSAGE,
        request::SEND_MESSAGE_V2,
        request::SEND_BATCH_MESSAGE,
    ] {
        assert_eq!(
            needs(code, &[("topic", "T"), ("producerGroup", "pg")]),
            vec![topic("T", Need::Pub)]
        );
        assert_eq!(needs(code, &[("b", "T"), ("a", "pg")]), vec![topic("T", Need::Pub)]);
    }
    // Both spellings present: both are checked.
    assert_eq!(
        needs(request::SEND_MESSAGE_V2, &[("b", "T1"), ("topic", "T2")]),
        vec![topic("T2", Need::Pub), topic("T1", Need::Pub)]
    );
    assert_eq!(
        needs(request::SEND_REPLY_MESSAGE_V2, &[("b", "R")]),
        vec![topic("R", Need::Pub)]
    );
    // No topic: nothing (the handler refuses the request).
    assert!(needs(request::SEND_MESSAGE, &[]).is_empty());
    assert!(needs(request::SEND_MESSAGE, &[("topic", "")]).is_empty());
}

#[test]
fn retry_and_dlq_topics_are_their_group() {
    assert_eq!(
        needs(
            request::SEND_MESSAGE_V2,
            &[("b", "%RETRY%cg"), ("a", "CLIENT_INNER_PRODUCER")]
        ),
        vec![group("cg")]
    );
    assert_eq!(needs(request::SEND_MESSAGE, &[("topic", "%DLQ%cg")]), vec![group("cg")]);
    // A retry-topic pull: the group once (needs are kept without repeats).
    assert_eq!(
        needs(
            request::PULL_MESSAGE,
            &[("topic", "%RETRY%cg"), ("consumerGroup", "cg")]
        ),
        vec![group("cg")]
    );
}

#[test]
fn consumer_requests_need_topic_and_group_sub() {
    let codes = [
        request::PULL_MESSAGE,
        request::LITE_PULL_MESSAGE,
        request::QUERY_CONSUMER_OFFSET,
        request::UPDATE_CONSUMER_OFFSET,
        request::POP_MESSAGE,
        request::ACK_MESSAGE,
        request::PEEK_MESSAGE,
        request::CHANGE_MESSAGE_INVISIBLETIME,
        request::NOTIFICATION,
        request::POLLING_INFO,
    ];
    for code in codes {
        assert_eq!(
            needs(code, &[("topic", "T"), ("consumerGroup", "cg"), ("queueId", "0")]),
            vec![topic("T", Need::Sub), group("cg")],
            "code {code}"
        );
    }
    assert_eq!(
        needs(request::CONSUMER_SEND_MSG_BACK, &[("group", "cg"), ("offset", "7")]),
        vec![group("cg")]
    );
    for code in [request::UNREGISTER_CLIENT, request::GET_CONSUMER_LIST_BY_GROUP] {
        assert_eq!(needs(code, &[("consumerGroup", "cg")]), vec![group("cg")]);
    }
    // A producer unregistering names no consumer group.
    assert!(needs(request::UNREGISTER_CLIENT, &[("producerGroup", "pg")]).is_empty());
}

#[test]
fn queries_and_metadata_reads() {
    assert_eq!(
        needs(request::QUERY_MESSAGE, &[("topic", "T"), ("key", "k")]),
        vec![topic("T", Need::Sub)]
    );
    assert!(needs(request::VIEW_MESSAGE_BY_ID, &[("offset", "1")]).is_empty());
    assert_eq!(
        needs(request::VIEW_MESSAGE_BY_ID, &[("topic", "T")]),
        vec![topic("T", Need::Sub)]
    );
    for code in [
        request::GET_MAX_OFFSET,
        request::GET_MIN_OFFSET,
        request::SEARCH_OFFSET_BY_TIMESTAMP,
        request::GET_EARLIEST_MSG_STORETIME,
    ] {
        assert_eq!(
            needs(code, &[("topic", "T"), ("queueId", "1")]),
            vec![topic("T", Need::Any)]
        );
    }
    assert_eq!(
        needs(request::END_TRANSACTION, &[("topic", "T")]),
        vec![topic("T", Need::Pub)]
    );
    assert!(needs(request::END_TRANSACTION, &[("producerGroup", "pg")]).is_empty());
    assert_eq!(
        needs(request::RECALL_MESSAGE, &[("topic", "T")]),
        vec![topic("T", Need::Pub)]
    );
    for code in [
        request::CHECK_CLIENT_CONFIG,
        request::GET_ROUTEINFO_BY_TOPIC,
        request::GET_BROKER_CLUSTER_INFO,
    ] {
        assert!(needs(code, &[("topic", "T")]).is_empty());
    }
}

#[test]
fn every_other_code_needs_an_admin() {
    let client_codes = [
        request::SEND_MESSAGE,
        request::SEND_MESSAGE_V2,
        request::SEND_BATCH_MESSAGE,
        request::SEND_REPLY_MESSAGE,
        request::SEND_REPLY_MESSAGE_V2,
        request::RECALL_MESSAGE,
        request::END_TRANSACTION,
        request::CONSUMER_SEND_MSG_BACK,
        request::PULL_MESSAGE,
        request::LITE_PULL_MESSAGE,
        request::QUERY_CONSUMER_OFFSET,
        request::UPDATE_CONSUMER_OFFSET,
        request::POP_MESSAGE,
        request::ACK_MESSAGE,
        request::PEEK_MESSAGE,
        request::CHANGE_MESSAGE_INVISIBLETIME,
        request::NOTIFICATION,
        request::POLLING_INFO,
        request::QUERY_MESSAGE,
        request::VIEW_MESSAGE_BY_ID,
        request::GET_MAX_OFFSET,
        request::GET_MIN_OFFSET,
        request::SEARCH_OFFSET_BY_TIMESTAMP,
        request::GET_EARLIEST_MSG_STORETIME,
        request::UNREGISTER_CLIENT,
        request::GET_CONSUMER_LIST_BY_GROUP,
        request::CHECK_CLIENT_CONFIG,
        request::GET_ROUTEINFO_BY_TOPIC,
        request::GET_BROKER_CLUSTER_INFO,
        request::HEART_BEAT,
        request::LOCK_BATCH_MQ,
        request::UNLOCK_BATCH_MQ,
        request::QUERY_ASSIGNMENT,
        request::BATCH_ACK_MESSAGE,
    ];
    let e = ext(&[("topic", "T")]);
    for &code in request::ALL.iter().chain(&[19001, -1, 0, i32::MAX]) {
        let r = required(code, &e);
        let admin = matches!(&r, Required::Needs(n) if n.admin_code() == Some(code));
        assert_eq!(
            admin,
            !client_codes.contains(&code),
            "code {code} {:?}",
            request::name(code)
        );
    }
    for code in [
        request::UPDATE_AND_CREATE_TOPIC,
        request::DELETE_TOPIC_IN_BROKER,
        request::UPDATE_BROKER_CONFIG,
        request::UPDATE_AND_CREATE_ACL_CONFIG,
        request::DELETE_ACL_CONFIG,
        request::GET_BROKER_CLUSTER_ACL_INFO,
        request::UPDATE_GLOBAL_WHITE_ADDRS_CONFIG,
        request::INVOKE_BROKER_TO_RESET_OFFSET,
        request::GET_ALL_TOPIC_CONFIG,
    ] {
        assert!(
            matches!(required(code, &e), Required::Needs(n) if n.admin_code() == Some(code)),
            "{code}"
        );
    }
}

#[test]
fn heartbeat_needs_each_consumer_group_and_topic() {
    let body = br#"{"clientID":"c@1","consumerDataSet":[{"groupName":"cg1","subscriptionDataSet":[{"topic":"TopicTest","subString":"*"},{"topic":"%RETRY%cg1","subString":"*"}]},{"groupName":"cg2","subscriptionDataSet":[]}],"producerDataSet":[{"groupName":"pg"}]}"#;
    assert_eq!(
        required(request::HEART_BEAT, &ext(&[])),
        Required::Body(BodyKind::Heartbeat)
    );
    let n = needs_of_body(BodyKind::Heartbeat, body).unwrap();
    let got: Vec<_> = n.iter().map(|(r, n)| (r.clone().into_owned(), n)).collect();
    assert_eq!(got, vec![group("cg1"), topic("TopicTest", Need::Sub), group("cg2")]);
    // The same from parsed groups and topics.
    let direct = Needs::heartbeat([("cg1", vec!["TopicTest", "%RETRY%cg1"]), ("cg2", vec![])]);
    assert_eq!(direct.into_owned(), n);
    // A producer-only heartbeat needs nothing.
    let n = needs_of_body(
        BodyKind::Heartbeat,
        br#"{"clientID":"c","producerDataSet":[{"groupName":"pg"}]}"#,
    )
    .unwrap();
    assert!(n.is_empty());
    assert!(needs_of_body(BodyKind::Heartbeat, b"{not json").is_err());
}

#[test]
fn other_bodies() {
    let lock = br#"{"clientId":"c","consumerGroup":"cg","mqSet":[{"brokerName":"b","queueId":0,"topic":"T1"},{"brokerName":"b","queueId":1,"topic":"T1"},{"brokerName":"b","queueId":0,"topic":"T2"}]}"#;
    let n = needs_of_body(BodyKind::LockBatch, lock).unwrap();
    let got: Vec<_> = n.iter().map(|(r, n)| (r.clone(), n)).collect();
    assert_eq!(got, vec![group("cg"), topic("T1", Need::Sub), topic("T2", Need::Sub)]);

    let assign =
        br#"{"topic":"T","consumerGroup":"cg","clientId":"c","strategyName":"AVG","messageModel":"CLUSTERING"}"#;
    let n = needs_of_body(BodyKind::QueryAssignment, assign).unwrap();
    assert_eq!(n.len(), 2);

    let acks = br#"{"acks":[{"c":"cg","t":"T","r":"0","so":0,"q":1,"pt":5,"b":"AQ=="},{"c":"cg2","t":"T","so":0,"q":2,"pt":5,"b":"AQ=="}]}"#;
    let n = needs_of_body(BodyKind::BatchAck, acks).unwrap();
    let got: Vec<_> = n.iter().map(|(r, n)| (r.clone(), n)).collect();
    assert_eq!(got, vec![topic("T", Need::Sub), group("cg"), group("cg2")]);
    for kind in [BodyKind::LockBatch, BodyKind::QueryAssignment, BodyKind::BatchAck] {
        assert!(needs_of_body(kind, b"[1,2").is_err(), "{kind:?}");
    }
}

#[test]
fn too_many_resources_overflow() {
    let topics: Vec<String> = (0..MAX_RESOURCES + 5).map(|i| format!("T{i}")).collect();
    let n = Needs::heartbeat([("cg", topics.iter().map(String::as_str))]);
    assert!(n.overflowed());
    assert_eq!(n.len(), MAX_RESOURCES);
}

#[test]
fn resources_display_bounded() {
    assert_eq!(Resource::Topic("T".into()).to_string(), "topic:T");
    assert_eq!(Resource::Group("g".into()).to_string(), "group:g");
    let long = "x".repeat(1000);
    assert_eq!(
        Resource::Topic(long.as_str().into()).to_string().len(),
        "topic:".len() + 128
    );
}

#[test]
fn prefixes_match_the_broker() {
    assert_eq!(
        RETRY_GROUP_TOPIC_PREFIX,
        crate::broker::metadata::RETRY_GROUP_TOPIC_PREFIX
    );
    assert_eq!(DLQ_GROUP_TOPIC_PREFIX, crate::broker::metadata::DLQ_GROUP_TOPIC_PREFIX);
}

proptest! {
    #[test]
    fn any_header_or_body_never_panics(
        code in prop_oneof![proptest::sample::select(request::ALL.to_vec()), any::<i32>()],
        fields in proptest::collection::vec((prop_oneof![Just("topic".to_string()), Just("b".to_string()), Just("consumerGroup".to_string()), Just("group".to_string()), "[a-z]{1,6}".prop_map(String::from)], "\\PC{0,12}"), 0..6),
        body in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let e: ExtFields = fields.into_iter().collect();
        let r = required(code, &e);
        if let Required::Body(kind) = r {
            let _ = needs_of_body(kind, &body);
        }
    }
}
