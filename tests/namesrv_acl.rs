//! ACL on the name server port (issue 13), on the real `shardmq serve`
//! with `aclEnable=true`: route and cluster queries stay open (as Apache's
//! name server), while a broker registration — the request a route
//! hijack needs — must be signed by an admin account; the broker's own
//! registrations (signed with the account it makes up at start) go
//! through, forged ones are refused and change no route.

mod common;

use std::time::{Duration, Instant};

use common::{req, Broker};
use shardmq::admin::client::{Client, Credentials};
use shardmq::protocol::bodies::route::TopicRouteData;
use shardmq::protocol::bodies::JsonBody;
use shardmq::protocol::codes::{request, response};
use shardmq::protocol::RemotingCommand;

const ADMIN: (&str, &str) = ("NsAdmin01", "ns-admin-secret-1");
const APP: (&str, &str) = ("NsApp0001", "ns-app-secret-22");

fn client(addr: &str, who: Option<(&str, &str)>) -> Client {
    Client::connect(addr)
        .unwrap_or_else(|e| panic!("{e}"))
        .with_credentials(who.map(|(a, s)| Credentials::new(a, s)))
}

fn route(ns: &str, topic: &str) -> Option<TopicRouteData> {
    let r = client(ns, None)
        .call(req(request::GET_ROUTEINFO_BY_TOPIC, &[("topic", topic.into())]))
        .expect("route");
    (r.code == response::SUCCESS).then(|| TopicRouteData::decode(&r.body).expect("route body"))
}

fn forged_registration(addr: &str) -> RemotingCommand {
    let body = br#"{"filterServerList":[],"topicConfigSerializeWrapper":{"dataVersion":{"counter":1,"timestamp":1},"topicConfigTable":{"NsAcl":{"perm":6,"readQueueNums":4,"writeQueueNums":4,"topicName":"NsAcl","order":false,"topicFilterType":"SINGLE_TAG","topicSysFlag":0}}}}"#.to_vec();
    let crc = shardmq::protocol::crc32_masked(&body).to_string();
    let mut cmd = req(
        request::REGISTER_BROKER,
        &[
            ("brokerName", "evil-broker".into()),
            ("brokerAddr", addr.into()),
            ("clusterName", "DefaultCluster".into()),
            ("haServerAddr", addr.into()),
            ("brokerId", "0".into()),
            ("compressed", "false".into()),
            ("bodyCrc32", crc),
        ],
    );
    cmd.body = body.into();
    cmd
}

#[test]
fn registrations_need_an_admin_account_routes_stay_open() {
    let dir = common::test_dir();
    let acl = dir.path().join("plain_acl.yml");
    std::fs::write(
        &acl,
        format!(
            "globalWhiteRemoteAddresses: []\naccounts:\n  - accessKey: {}\n    secretKey: {}\n    admin: true\n  \
             - accessKey: {}\n    secretKey: {}\n    defaultTopicPerm: PUB|SUB\n    defaultGroupPerm: SUB\n",
            ADMIN.0, ADMIN.1, APP.0, APP.1
        ),
    )
    .unwrap();
    let settings = ["aclEnable=true".to_string(), format!("aclFile={}", acl.display())];
    let settings: Vec<&str> = settings.iter().map(String::as_str).collect();
    let b = Broker::start(dir.path(), 1, &settings);
    let ns = b.namesrv_addr();

    // The broker registered itself (with its made-up account): its topic
    // shows up in an unsigned route query.
    let r = client(&b.addr(), Some(ADMIN))
        .call(req(
            request::UPDATE_AND_CREATE_TOPIC,
            &[
                ("topic", "NsAcl".into()),
                ("readQueueNums", "4".into()),
                ("writeQueueNums", "4".into()),
                ("perm", "6".into()),
            ],
        ))
        .expect("create topic");
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let deadline = Instant::now() + Duration::from_secs(15);
    let real = loop {
        if let Some(rt) = route(&ns, "NsAcl") {
            break rt;
        }
        assert!(
            Instant::now() < deadline,
            "the broker's registration never reached its name server"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let addrs = |rt: &TopicRouteData| -> Vec<String> {
        rt.broker_datas
            .iter()
            .flat_map(|bd| bd.broker_addrs.values().cloned())
            .collect()
    };
    assert_eq!(addrs(&real), vec![b.shard_addr(0)], "the shard-aware entry");

    // Forged registrations: unsigned, a non-admin account, a wrong secret.
    for (what, who) in [
        ("unsigned", None),
        ("a non-admin account", Some(APP)),
        ("a wrong secret", Some((ADMIN.0, "not-the-secret"))),
    ] {
        let r = client(&ns, who)
            .call(forged_registration("10.6.6.6:10911"))
            .expect("an answer");
        assert_eq!(r.code, response::NO_PERMISSION, "{what}: {:?}", r.remark);
        let remark = r.remark.unwrap_or_default();
        assert!(!remark.contains(ADMIN.1) && !remark.contains(APP.1), "{remark}");
    }
    let after = route(&ns, "NsAcl").expect("route");
    assert_eq!(addrs(&after), vec![b.shard_addr(0)], "no forged broker in the route");

    // Other admin requests too; the admin account may.
    let kv = || {
        req(
            request::PUT_KV_CONFIG,
            &[("namespace", "ns".into()), ("key", "k".into()), ("value", "v".into())],
        )
    };
    let r = client(&ns, Some(APP)).call(kv()).expect("answer");
    assert_eq!(r.code, response::NO_PERMISSION);
    let r = client(&ns, Some(ADMIN)).call(kv()).expect("answer");
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let r = client(&ns, None)
        .call(req(request::GET_BROKER_CLUSTER_INFO, &[]))
        .expect("answer");
    assert_eq!(r.code, response::SUCCESS, "cluster info stays open");
}
