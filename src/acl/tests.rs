//! The whole check, from a request and an address to pass or refusal.

use std::net::IpAddr;

use proptest::prelude::*;

use super::signature::{exclusions_for, sign, ACCESS_KEY, SIGNATURE};
use super::*;
use crate::protocol::codes::{request, response};
use crate::protocol::LanguageCode;

const ACL: &str = "\
globalWhiteRemoteAddresses:
  - 10.10.103.*
accounts:
  - accessKey: RocketMQ
    secretKey: 12345678
    defaultTopicPerm: DENY
    defaultGroupPerm: SUB
    topicPerms:
      - topicA=DENY
      - topicB=PUB|SUB
      - topicC=SUB
      - orders-*=PUB
    groupPerms:
      - groupA=DENY
      - groupC=SUB
  - accessKey: rocketmq2
    secretKey: 87654321
    whiteRemoteAddress: 192.168.1.*
    admin: true
  - accessKey: limited1
    secretKey: limited-secret
    admin: true
    topicPerms:
      - topicA=SUB
";

fn acl() -> Acl {
    match Acl::parse(ACL) {
        Ok(a) => a,
        Err(e) => panic!("{e}"),
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const CLIENT: &str = "172.16.0.9";

/// A request signed as a client with `ak`/`secret` signs it.
fn signed(code: i32, fields: &[(&str, &str)], body: &[u8], ak: &str, secret: &str) -> RemotingCommand {
    let mut cmd = RemotingCommand::new_request(code).with_body(body.to_vec());
    for (k, v) in fields {
        cmd.ext_fields.insert(*k, *v);
    }
    cmd.ext_fields.insert(ACCESS_KEY, ak);
    let sig = sign(secret, &cmd.ext_fields, &cmd.body, exclusions_for(&cmd));
    cmd.ext_fields.insert(SIGNATURE, sig);
    cmd
}

fn rocketmq(code: i32, fields: &[(&str, &str)]) -> RemotingCommand {
    signed(code, fields, b"", "RocketMQ", "12345678")
}

fn refusal(r: Result<Identity<'_>, Refusal>) -> Refusal {
    match r {
        Ok(i) => panic!("passed as {i:?}"),
        Err(e) => e,
    }
}

#[test]
fn global_white_list_passes_unsigned_and_unchecked() {
    let a = acl();
    let cmd = RemotingCommand::new_request(request::UPDATE_BROKER_CONFIG);
    assert_eq!(a.check(ip("10.10.103.7"), &cmd), Ok(Identity::WhiteListed));
    assert_eq!(a.check(ip("::ffff:10.10.103.7"), &cmd), Ok(Identity::WhiteListed));
    assert!(matches!(
        refusal(a.check(ip("10.10.104.7"), &cmd)),
        Refusal::Anonymous { .. }
    ));
}

#[test]
fn anonymous_requests_are_refused() {
    let a = acl();
    let mut cmd = RemotingCommand::new_request(request::SEND_MESSAGE);
    cmd.ext_fields.insert("topic", "topicB");
    assert!(matches!(refusal(a.check(ip(CLIENT), &cmd)), Refusal::Anonymous { .. }));
    // The C++ client sends empty credentials even without ACL.
    cmd.ext_fields.insert("AccessKey", "");
    cmd.ext_fields.insert("Signature", "");
    cmd.ext_fields.insert("OnsChannel", "");
    cmd.language = LanguageCode::Cpp;
    let r = refusal(a.check(ip(CLIENT), &cmd));
    assert!(matches!(r, Refusal::Anonymous { .. }) && r.is_authentication_failure());
    assert!(r.remark().contains(CLIENT), "{}", r.remark());
}

#[test]
fn unknown_keys_and_bad_signatures() {
    let a = acl();
    let cmd = signed(
        request::SEND_MESSAGE,
        &[("topic", "topicB")],
        b"",
        "nobody12",
        "12345678",
    );
    let r = refusal(a.check(ip(CLIENT), &cmd));
    assert_eq!(r.remark(), "ACL: no account has accessKey=nobody12");
    let cmd = signed(
        request::SEND_MESSAGE,
        &[("topic", "topicB")],
        b"x",
        "RocketMQ",
        "wrong-secret",
    );
    let r = refusal(a.check(ip(CLIENT), &cmd));
    assert_eq!(r.remark(), "ACL: check signature failed for accessKey=RocketMQ");
    assert!(r.is_authentication_failure());
    assert_eq!(r.response_code(), response::NO_PERMISSION);
    // A body changed after signing.
    let cmd = rocketmq(request::SEND_MESSAGE, &[("topic", "topicB")]).with_body(&b"tampered"[..]);
    assert!(matches!(
        refusal(a.check(ip(CLIENT), &cmd)),
        Refusal::BadSignature { .. }
    ));
    // A long key from the network is cut in the remark.
    let long = "k".repeat(10_000);
    let cmd = signed(request::SEND_MESSAGE, &[], b"", &long, "12345678");
    assert!(refusal(a.check(ip(CLIENT), &cmd)).remark().len() < 200);
}

#[test]
fn white_remote_address_restricts_and_does_not_bypass_the_signature() {
    let a = acl();
    let ok = signed(request::UPDATE_BROKER_CONFIG, &[], b"", "rocketmq2", "87654321");
    assert!(matches!(a.check(ip("192.168.1.20"), &ok), Ok(Identity::Account(acc)) if acc.access_key() == "rocketmq2"));
    let r = refusal(a.check(ip("192.168.2.20"), &ok));
    assert!(matches!(r, Refusal::AddressNotAllowed { .. }), "{r}");
    assert!(r.remark().contains("192.168.2.20"));
    let forged = signed(request::UPDATE_BROKER_CONFIG, &[], b"", "rocketmq2", "guessed-secret");
    assert!(matches!(
        refusal(a.check(ip("192.168.1.20"), &forged)),
        Refusal::BadSignature { .. }
    ));
}

#[test]
fn topic_permissions() {
    let a = acl();
    let c = ip(CLIENT);
    assert!(a
        .check(c, &rocketmq(request::SEND_MESSAGE_V2, &[("b", "topicB"), ("a", "pg")]))
        .is_ok());
    assert!(a
        .check(c, &rocketmq(request::SEND_MESSAGE, &[("topic", "orders-eu")]))
        .is_ok());
    let r = refusal(a.check(c, &rocketmq(request::SEND_MESSAGE_V2, &[("b", "topicA")])));
    assert_eq!(
        r.remark(),
        "ACL: accessKey=RocketMQ has no PUB permission on topic:topicA"
    );
    assert!(!r.is_authentication_failure());
    let r = refusal(a.check(c, &rocketmq(request::SEND_MESSAGE, &[("topic", "topicC")])));
    assert!(r.remark().ends_with("no PUB permission on topic:topicC"), "{r}");
    // Default DENY for unlisted topics.
    let r = refusal(a.check(c, &rocketmq(request::SEND_MESSAGE, &[("topic", "elsewhere")])));
    assert!(r.remark().ends_with("topic:elsewhere"), "{r}");
    // Offsets of a topic one can use at all.
    assert!(a
        .check(c, &rocketmq(request::GET_MAX_OFFSET, &[("topic", "orders-x")]))
        .is_ok());
    assert!(a
        .check(c, &rocketmq(request::GET_MAX_OFFSET, &[("topic", "topicA")]))
        .is_err());
    // Message traces may always be sent.
    assert!(a
        .check(c, &rocketmq(request::SEND_MESSAGE_V2, &[("b", "RMQ_SYS_TRACE_TOPIC")]))
        .is_ok());
}

#[test]
fn group_permissions() {
    let a = acl();
    let c = ip(CLIENT);
    let pull = |t: &str, g: &str| rocketmq(request::PULL_MESSAGE, &[("topic", t), ("consumerGroup", g)]);
    assert!(a.check(c, &pull("topicC", "groupC")).is_ok());
    // groupB is unlisted: the default group permission (SUB).
    assert!(a.check(c, &pull("topicC", "groupB")).is_ok());
    let r = refusal(a.check(c, &pull("topicC", "groupA")));
    assert_eq!(
        r.remark(),
        "ACL: accessKey=RocketMQ has no SUB permission on group:groupA"
    );
    // The retry topic is the group's.
    assert!(a.check(c, &pull("%RETRY%groupC", "groupC")).is_ok());
    assert!(a.check(c, &pull("%RETRY%groupA", "groupC")).is_err());
    let back = rocketmq(request::CONSUMER_SEND_MSG_BACK, &[("group", "groupA"), ("offset", "1")]);
    assert!(a.check(c, &back).is_err());
    let retry_send = rocketmq(
        request::SEND_MESSAGE_V2,
        &[("b", "%RETRY%groupC"), ("a", "CLIENT_INNER_PRODUCER")],
    );
    assert!(a.check(c, &retry_send).is_ok());
}

#[test]
fn admin_codes_and_admin_accounts() {
    let a = acl();
    let c = ip(CLIENT);
    let r = refusal(a.check(c, &rocketmq(request::DELETE_TOPIC_IN_BROKER, &[("topic", "topicB")])));
    assert_eq!(
        r.remark(),
        "ACL: request code 215 (DELETE_TOPIC_IN_BROKER) needs an admin account, and accessKey=RocketMQ is not one"
    );
    let r = refusal(a.check(c, &rocketmq(19001, &[])));
    assert!(r.remark().contains("19001 (unknown)"), "{r}");
    // An admin without entries may do anything, bodies unread.
    let c2 = ip("192.168.1.3");
    let any = signed(request::HEART_BEAT, &[], b"not json at all", "rocketmq2", "87654321");
    assert!(a.check(c2, &any).is_ok());
    let send = signed(
        request::SEND_MESSAGE,
        &[("topic", "anything")],
        b"",
        "rocketmq2",
        "87654321",
    );
    assert!(a.check(c2, &send).is_ok());
    // An admin with entries is checked like any account.
    let limited = |code, t: &str| signed(code, &[("topic", t)], b"", "limited1", "limited-secret");
    assert!(a.check(c, &limited(request::UPDATE_AND_CREATE_TOPIC, "x")).is_ok());
    assert!(a.check(c, &limited(request::QUERY_MESSAGE, "topicA")).is_ok());
    assert!(a.check(c, &limited(request::SEND_MESSAGE, "topicA")).is_err());
    assert!(a.check(c, &limited(request::QUERY_MESSAGE, "topicB")).is_err());
}

#[test]
fn body_needs() {
    let a = acl();
    let c = ip(CLIENT);
    let hb = |topic: &str, group: &str| {
        format!(
            r#"{{"clientID":"c@1","consumerDataSet":[{{"groupName":"{group}","subscriptionDataSet":[{{"topic":"{topic}","subString":"*"}}]}}],"producerDataSet":[]}}"#
        )
    };
    let beat = |body: String| signed(request::HEART_BEAT, &[], body.as_bytes(), "RocketMQ", "12345678");
    assert!(a.check(c, &beat(hb("topicC", "groupC"))).is_ok());
    let r = refusal(a.check(c, &beat(hb("topicA", "groupC"))));
    assert!(r.remark().ends_with("no SUB permission on topic:topicA"), "{r}");
    assert!(a.check(c, &beat(hb("topicC", "groupA"))).is_err());
    let r = refusal(a.check(c, &beat("{broken".to_string())));
    assert!(matches!(r, Refusal::UnreadableBody { .. }), "{r}");
    // A broker that decoded the heartbeat itself: authenticate, then
    // authorize with the parsed groups and topics.
    let cmd = beat(hb("topicA", "groupC"));
    let Ok(Identity::Account(acc)) = a.authenticate(c, &cmd) else {
        panic!("not authenticated");
    };
    let needs = Needs::heartbeat([("groupC", ["topicA"])]);
    assert!(matches!(a.authorize(acc, &needs), Err(Refusal::Denied { .. })));
    assert!(a.authorize(acc, &Needs::heartbeat([("groupC", ["topicC"])])).is_ok());
    // Lock requests name their topics in the body.
    let lock =
        br#"{"clientId":"c","consumerGroup":"groupC","mqSet":[{"brokerName":"b","queueId":0,"topic":"topicA"}]}"#;
    let cmd = signed(request::LOCK_BATCH_MQ, &[], lock, "RocketMQ", "12345678");
    assert!(a.check(c, &cmd).is_err());
}

#[test]
fn remarks_never_hold_a_secret() {
    let a = acl();
    let c = ip(CLIENT);
    let secrets = ["12345678", "87654321", "limited-secret"];
    let requests = [
        rocketmq(request::SEND_MESSAGE, &[("topic", "topicA")]),
        rocketmq(request::UPDATE_BROKER_CONFIG, &[]),
        signed(request::SEND_MESSAGE, &[], b"", "RocketMQ", "87654321"),
        signed(request::SEND_MESSAGE, &[], b"", "rocketmq2", "87654321"),
        signed(request::SEND_MESSAGE, &[], b"", "12345678", "x"),
        rocketmq(request::HEART_BEAT, &[]),
    ];
    for cmd in &requests {
        let remark = refusal(a.check(c, cmd)).remark();
        // The unknown-key case shows the key it was sent, not a secret of ours.
        let shown_as_key = remark.contains("accessKey=12345678");
        for s in secrets {
            assert!(shown_as_key || !remark.contains(s), "{remark}");
        }
        assert!(!format!("{a:?}").contains("87654321"));
    }
}

#[test]
fn limiter_slows_repeated_failures_as_the_broker_would_use_it() {
    let a = acl();
    let mut limiter = Limiter::default();
    let c = ip(CLIENT);
    let t0 = std::time::Instant::now();
    let bad = signed(
        request::SEND_MESSAGE,
        &[("topic", "topicB")],
        b"",
        "RocketMQ",
        "guess-0001",
    );
    let mut now = t0;
    for _ in 0..LimiterConfig::default().free_failures + 1 {
        assert_eq!(limiter.retry_after(c, "", now), None);
        let r = refusal(a.check(c, &bad));
        assert!(r.is_authentication_failure());
        limiter.record_failure(c, "", now);
        now += std::time::Duration::from_millis(1);
    }
    let wait = limiter.retry_after(c, "", now).expect("slowed down");
    let r = Refusal::throttled(c, wait);
    assert!(r.remark().contains("retry in"), "{r}");
    // A permission refusal is not a guess: not counted.
    assert!(!refusal(a.check(c, &rocketmq(request::SEND_MESSAGE, &[("topic", "topicA")]))).is_authentication_failure());
}

proptest! {
    #[test]
    fn any_request_never_panics(
        code in prop_oneof![proptest::sample::select(request::ALL.to_vec()), any::<i32>()],
        fields in proptest::collection::vec(("[a-zA-Z_]{1,12}", "\\PC{0,16}"), 0..8),
        body in proptest::collection::vec(any::<u8>(), 0..96),
        key in prop_oneof![Just("RocketMQ".to_string()), Just("rocketmq2".to_string()), "\\PC{0,12}"],
        addr in any::<[u8; 4]>(),
        sign_it in any::<bool>(),
    ) {
        let a = acl();
        let mut cmd = if sign_it {
            let f: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            signed(code, &f, &body, &key, "12345678")
        } else {
            let mut c = RemotingCommand::new_request(code).with_body(body);
            for (k, v) in &fields {
                c.ext_fields.insert(k, v);
            }
            c
        };
        cmd.version = i32::from(addr[0]) * 2;
        let _ = a.check(IpAddr::from(addr), &cmd).map_err(|r| r.remark());
    }
}
