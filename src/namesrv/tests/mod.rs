//! Scenario tests: realistic requests through [`NameServer::handle`](super::NameServer::handle).
//!
//! `registration` (register, routes, cluster info, lists), `liveness`
//! (expiry, connection close), `requests` (errors, oneway, KV, admin
//! codes), `fuzz` (arbitrary requests).
//!
//! Topology used throughout (cluster `DefaultCluster`):
//!
//! ```text
//!   broker-a  id 0  192.168.1.10:10911  conn 1   TopicTest(4) TBW102(8, perm 7) %RETRY%G(1)
//!   broker-a  id 1  192.168.1.11:10911  conn 2   (slave, same topics)
//!   broker-b  id 0  192.168.1.20:10911  conn 3   TopicB(2) TBW102(8, perm 7) %RETRY%G(1)
//! ```

use std::time::{Duration, Instant};

use super::*;

mod fuzz;
mod liveness;
mod registration;
mod requests;
use crate::protocol::bodies::{
    ClusterInfo, DataVersion, JsonBody, KvTable, QueueData, RegisterBrokerBody, TopicConfig, TopicList, TopicRouteData,
};
use crate::protocol::{crc32_masked, version, SerializeType};

pub(super) const CLUSTER: &str = "DefaultCluster";
pub(super) const A0: &str = "192.168.1.10:10911";
pub(super) const A1: &str = "192.168.1.11:10911";
pub(super) const B0: &str = "192.168.1.20:10911";

/// json.md §2, both dialects: exactly what `TopicTest` must look like.
pub(super) const ROUTE_OLD: &str = r#"{"brokerDatas":[{"brokerAddrs":{0:"192.168.1.10:10911",1:"192.168.1.11:10911"},"brokerName":"broker-a","cluster":"DefaultCluster","enableActingMaster":false}],"filterServerTable":{},"queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":4}]}"#;
pub(super) const ROUTE_NEW: &str = r#"{"brokerDatas":[{"brokerAddrs":{"0":"192.168.1.10:10911","1":"192.168.1.11:10911"},"brokerName":"broker-a","cluster":"DefaultCluster","enableActingMaster":false}],"filterServerTable":{},"queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":4}]}"#;

pub(super) fn dv(counter: i64) -> DataVersion {
    DataVersion {
        counter,
        state_version: 0,
        timestamp: 1_700_000_000_000 + counter,
    }
}

pub(super) fn topics_a() -> Vec<TopicConfig> {
    vec![
        TopicConfig::new("TopicTest", 4, 6),
        TopicConfig::new("TBW102", 8, 7),
        TopicConfig::new("%RETRY%G", 1, 6),
    ]
}

pub(super) fn topics_b() -> Vec<TopicConfig> {
    vec![
        TopicConfig::new("TopicB", 2, 6),
        TopicConfig::new("TBW102", 8, 7),
        TopicConfig::new("%RETRY%G", 1, 6),
    ]
}

pub(super) fn body_of(topics: Vec<TopicConfig>, version: DataVersion) -> RegisterBrokerBody {
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
pub(super) fn register(
    name: &str,
    addr: &str,
    id: i64,
    topics: Vec<TopicConfig>,
    version: DataVersion,
) -> RemotingCommand {
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

pub(super) fn route_req(topic: &str, client_version: i32) -> RemotingCommand {
    let mut req = RemotingCommand::new_request(request::GET_ROUTEINFO_BY_TOPIC).with_opaque(7);
    req.version = client_version;
    req.ext_fields.insert("topic", topic);
    req
}

pub(super) fn simple(code: i32, fields: &[(&str, &str)]) -> RemotingCommand {
    let mut req = RemotingCommand::new_request(code).with_opaque(9);
    for (k, v) in fields {
        req.ext_fields.insert(*k, *v);
    }
    req
}

pub(super) struct Fixture {
    pub(super) ns: NameServer,
    pub(super) t0: Instant,
}

impl Fixture {
    /// The three brokers of the module docs, registered at `t0`.
    pub(super) fn new() -> Self {
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

    pub(super) fn call_at(&mut self, conn: u64, req: &RemotingCommand, at: Duration) -> RemotingCommand {
        let rsp = self.ns.handle(ConnId(conn), req, self.t0 + at).expect("a response");
        self.ns.route_table().debug_check();
        rsp
    }

    pub(super) fn call(&mut self, conn: u64, req: &RemotingCommand) -> RemotingCommand {
        self.call_at(conn, req, Duration::ZERO)
    }

    pub(super) fn route(&mut self, topic: &str) -> Result<TopicRouteData, String> {
        let rsp = self.call(9, &route_req(topic, version::CURRENT));
        match rsp.code {
            response::SUCCESS => Ok(TopicRouteData::decode(&rsp.body).unwrap()),
            _ => Err(rsp.remark.unwrap_or_default()),
        }
    }
}

pub(super) fn body_text(rsp: &RemotingCommand) -> &str {
    std::str::from_utf8(&rsp.body).unwrap()
}
