//! Tests of the typed headers, kept apart so header.rs stays readable.

use super::*;
use crate::protocol::command::RemotingCommand;
use crate::protocol::json_header;
use proptest::prelude::*;

fn decode_json(header: &str) -> RemotingCommand {
    json_header::decode(header.as_bytes()).unwrap()
}

fn sample_send() -> SendMessageRequestHeader {
    SendMessageRequestHeader {
        producer_group: "pg".into(),
        topic: "TopicTest".into(),
        default_topic: "TBW102".into(),
        default_topic_queue_nums: 4,
        queue_id: 1,
        sys_flag: 0,
        born_timestamp: 1_700_000_000_000,
        flag: 0,
        properties: Some("TAGS\u{1}TagA\u{2}WAIT\u{1}true\u{2}".into()),
        reconsume_times: Some(0),
        unit_mode: Some(false),
        batch: None,
        max_reconsume_times: None,
        broker_name: None,
    }
}

#[test]
fn send_v2_from_ali_ons_json_numbers() {
    let cmd = decode_json(
        r#"{"code":310,"language":"JAVA","version":121,"opaque":1,"flag":0,"extFields":{"a":"pg","b":"TopicTest","c":"TBW102","d":4,"e":1,"f":0,"g":1700000000000,"h":0,"i":"TAGS\u0001TagA\u0002WAIT\u0001true\u0002","j":0,"k":false,"l":16}}"#,
    );
    let header = SendMessageRequestHeader::from_ext(&cmd.ext_fields).unwrap();
    let expected = SendMessageRequestHeader {
        max_reconsume_times: Some(16),
        ..sample_send()
    };
    assert_eq!(header, expected);
    assert!(!header.is_batch());
    assert_eq!(SendMessageRequestHeader::from_ext_v2(&header.to_ext_v2()), Ok(header));
}

#[test]
fn send_v1_from_go_with_empty_strings() {
    let cmd = decode_json(
        r#"{"code":10,"language":"GO","version":317,"opaque":1,"flag":0,"remark":"","extFields":{"producerGroup":"pg","topic":"TopicTest","defaultTopic":"TBW102","defaultTopicQueueNums":"4","queueId":"1","sysFlag":"0","bornTimestamp":"1700000000000","flag":"0","properties":"TAGS\u0001TagA\u0002WAIT\u0001true\u0002","reconsumeTimes":"0","unitMode":"false","batch":"false","maxReconsumeTimes":"0","bname":""}}"#,
    );
    let header = SendMessageRequestHeader::from_ext(&cmd.ext_fields).unwrap();
    assert_eq!(
        header,
        SendMessageRequestHeader {
            batch: Some(false),
            max_reconsume_times: Some(0),
            ..sample_send()
        }
    );
    assert_eq!(header.broker_name, None);
    assert_eq!(SendMessageRequestHeader::from_ext(&header.to_ext()), Ok(header));
}

#[test]
fn send_v2_batch_flag_from_java_and_cpp() {
    let mut ext = sample_send().to_ext_v2();
    ext.insert("m", "true");
    ext.insert("n", "broker-a");
    let header = SendMessageRequestHeader::from_ext(&ext).unwrap();
    assert!(header.is_batch());
    assert_eq!(header.broker_name.as_deref(), Some("broker-a"));
    ext.insert("m", "1");
    assert!(SendMessageRequestHeader::from_ext(&ext).unwrap().is_batch());
}

#[test]
fn send_errors_name_the_field() {
    let mut ext = sample_send().to_ext_v2();
    ext.remove("b");
    let err = SendMessageRequestHeader::from_ext_v2(&ext).unwrap_err();
    assert_eq!(err.to_string(), "the custom field <b (topic)> is null");

    let mut ext = sample_send().to_ext_v2();
    ext.insert("e", "one");
    let err = SendMessageRequestHeader::from_ext(&ext).unwrap_err().to_string();
    assert!(err.contains("<e (queueId)>") && err.contains("\"one\""), "{err}");

    let mut ext = sample_send().to_ext();
    ext.insert("bornTimestamp", "");
    assert_eq!(
        SendMessageRequestHeader::from_ext(&ext).unwrap_err(),
        ProtocolError::Header(HeaderError::Missing {
            field: "bornTimestamp".into()
        })
    );
}

#[test]
fn send_optional_junk_is_ignored_like_java() {
    let mut ext = sample_send().to_ext();
    ext.insert("reconsumeTimes", "x");
    ext.insert("unitMode", "maybe");
    let header = SendMessageRequestHeader::from_ext(&ext).unwrap();
    assert_eq!(header.reconsume_times, None);
    assert_eq!(header.unit_mode, None);
}

#[test]
fn send_response_always_carries_region_and_trace() {
    let mut header = SendMessageResponseHeader::new("C0A8010A00002A9F00000000000004D2".into(), 1, 7);
    header.transaction_id = Some("UNIQ".into());
    let ext = header.to_ext();
    assert_eq!(ext.get_str("MSG_REGION"), Some(DEFAULT_REGION));
    assert_eq!(ext.get_str("TRACE_ON"), Some("true"));
    assert_eq!(ext.get_str("queueOffset"), Some("7"));
    assert_eq!(ext.get_raw("batchUniqId"), None);
    assert_eq!(SendMessageResponseHeader::from_ext(&ext), Ok(header.clone()));

    let mut out = bytes::BytesMut::new();
    let req = RemotingCommand::new_request(310).with_opaque(5);
    let rsp = RemotingCommand::response_to(&req, 0, None).with_ext_fields(ext);
    json_header::encode(&rsp, &mut out);
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        r#"{"code":0,"extFields":{"MSG_REGION":"DefaultRegion","TRACE_ON":"true","msgId":"C0A8010A00002A9F00000000000004D2","queueId":"1","queueOffset":"7","transactionId":"UNIQ"},"flag":1,"language":"JAVA","opaque":5,"serializeTypeCurrentRPC":"JSON","version":479}"#
    );
}

#[test]
fn pull_request_from_go_and_cpp() {
    let go = decode_json(
        r#"{"code":11,"language":"GO","version":317,"opaque":1,"flag":0,"remark":"","extFields":{"consumerGroup":"g","topic":"T","queueId":"0","queueOffset":"12","maxMsgNums":"32","sysFlag":"2","commitOffset":"0","suspendTimeoutMillis":"20000","subscription":"","subVersion":"","expressionType":""}}"#,
    );
    let header = PullMessageRequestHeader::from_ext(&go.ext_fields).unwrap();
    assert_eq!(header.queue_offset, 12);
    assert_eq!(header.sub_version, 0);
    assert_eq!(header.subscription, None);
    assert_eq!(header.expression_type, None);
    assert!(header.has_sys_flag(pull_sys_flag::SUSPEND));
    assert!(!header.has_sys_flag(pull_sys_flag::COMMIT_OFFSET));

    let cpp = decode_json(
        r#"{"code":11,"language":"CPP","version":333,"opaque":2,"flag":0,"remark":"","extFields":{"AccessKey":"","Signature":"","OnsChannel":"","consumerGroup":"g","topic":"T","queueId":1,"queueOffset":0,"maxMsgNums":32,"sysFlag":7,"commitOffset":5,"suspendTimeoutMillis":15000,"subscription":"TagA || TagB","subVersion":1700000000000,"maxMsgBytes":"junk"}}"#,
    );
    let header = PullMessageRequestHeader::from_ext(&cpp.ext_fields).unwrap();
    assert_eq!(header.queue_id, 1);
    assert_eq!(header.sub_version, 1_700_000_000_000);
    assert_eq!(header.max_msg_bytes, None);
    assert!(header.has_sys_flag(pull_sys_flag::SUBSCRIPTION));
    assert_eq!(PullMessageRequestHeader::from_ext(&header.to_ext()), Ok(header));
}

#[test]
fn pull_request_requires_offsets() {
    let mut ext = PullMessageRequestHeader {
        consumer_group: "g".into(),
        topic: "T".into(),
        queue_id: 0,
        queue_offset: 0,
        max_msg_nums: 32,
        sys_flag: 0,
        commit_offset: 0,
        suspend_timeout_millis: 15000,
        subscription: None,
        sub_version: 0,
        expression_type: None,
        max_msg_bytes: None,
    }
    .to_ext();
    ext.remove("queueOffset");
    assert_eq!(
        PullMessageRequestHeader::from_ext(&ext).unwrap_err().to_string(),
        "the custom field <queueOffset> is null"
    );
}

#[test]
fn pull_response_requires_its_four_fields() {
    let header = PullMessageResponseHeader {
        next_begin_offset: 10,
        max_offset: 10,
        topic_sys_flag: Some(0),
        group_sys_flag: Some(0),
        ..Default::default()
    };
    let ext = header.to_ext();
    assert_eq!(ext.len(), 6);
    assert_eq!(PullMessageResponseHeader::from_ext(&ext), Ok(header));
    for key in ["suggestWhichBrokerId", "nextBeginOffset", "minOffset", "maxOffset"] {
        let mut partial = ext.clone();
        partial.remove(key);
        assert!(PullMessageResponseHeader::from_ext(&partial).is_err(), "{key}");
    }
}

fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9%_|-]{1,16}"
}

prop_compose! {
    fn arb_send()(
        (producer_group, topic, default_topic) in (text(), text(), text()),
        (default_topic_queue_nums, queue_id, sys_flag, flag) in any::<(i32, i32, i32, i32)>(),
        born_timestamp: i64,
        properties in proptest::option::of("[^\u{2}]{1,20}"),
        (reconsume_times, max_reconsume_times) in any::<(Option<i32>, Option<i32>)>(),
        (unit_mode, batch) in any::<(Option<bool>, Option<bool>)>(),
        broker_name in proptest::option::of(text()),
    ) -> SendMessageRequestHeader {
        SendMessageRequestHeader {
            producer_group, topic, default_topic, default_topic_queue_nums, queue_id,
            sys_flag, born_timestamp, flag, properties, reconsume_times, unit_mode, batch,
            max_reconsume_times, broker_name,
        }
    }
}

proptest! {
    #[test]
    fn send_round_trips_in_both_forms(header in arb_send()) {
        prop_assert_eq!(SendMessageRequestHeader::from_ext(&header.to_ext()), Ok(header.clone()));
        prop_assert_eq!(SendMessageRequestHeader::from_ext(&header.to_ext_v2()), Ok(header));
    }

    #[test]
    fn pull_response_round_trips(
        (a, b, c, d) in any::<(i64, i64, i64, i64)>(),
        offset_delta: Option<i64>,
        (topic_sys_flag, group_sys_flag, forbidden_type) in any::<(Option<i32>, Option<i32>, Option<i32>)>(),
    ) {
        let header = PullMessageResponseHeader {
            suggest_which_broker_id: a, next_begin_offset: b, min_offset: c, max_offset: d,
            offset_delta, topic_sys_flag, group_sys_flag, forbidden_type,
        };
        prop_assert_eq!(PullMessageResponseHeader::from_ext(&header.to_ext()), Ok(header));
    }

    #[test]
    fn arbitrary_ext_never_panics(ext in proptest::collection::btree_map("[a-n]|[a-zA-Z]{1,12}", "\\PC{0,8}", 0..16)) {
        let ext = ExtFields::from(ext);
        let _ = SendMessageRequestHeader::from_ext(&ext);
        let _ = PullMessageRequestHeader::from_ext(&ext);
        let _ = SendMessageResponseHeader::from_ext(&ext);
        let _ = PullMessageResponseHeader::from_ext(&ext);
    }
}
