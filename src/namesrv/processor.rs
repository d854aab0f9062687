//! Request dispatch: one function per request code (Java
//! `DefaultRequestProcessor` + `ClientRequestProcessor`, codes.md §1).
//!
//! Every handler returns the full response or a [`NamesrvError`], which
//! [`NameServer::handle`] turns into the error response. Header fields are
//! read with the shared `extFields` getters, so a missing required field is
//! answered `SYSTEM_ERROR` with `the custom field <x> is null`, like Java.

use std::time::{Duration, Instant};

use crate::protocol::bodies::{DataVersion, JsonBody, RegisterBrokerBody, RouteDialect, TopicRouteData};
use crate::protocol::codes::{request, response};
use crate::protocol::{crc32_masked, RemotingCommand};

use super::kv_config::NAMESPACE_ORDER_TOPIC_CONFIG;
use super::route_table::BrokerRegistration;
use super::{ConnId, NameServer, NamesrvError};

type Outcome = Result<RemotingCommand, NamesrvError>;

pub(super) fn process(ns: &mut NameServer, conn: ConnId, req: &RemotingCommand, now: Instant) -> Outcome {
    match req.code {
        request::PUT_KV_CONFIG => put_kv_config(ns, req),
        request::GET_KV_CONFIG => get_kv_config(ns, req),
        request::DELETE_KV_CONFIG => delete_kv_config(ns, req),
        request::GET_KVLIST_BY_NAMESPACE => get_kv_list_by_namespace(ns, req),
        request::REGISTER_BROKER => register_broker(ns, conn, req, now),
        request::UNREGISTER_BROKER => unregister_broker(ns, conn, req),
        request::GET_ROUTEINFO_BY_TOPIC => get_route_info_by_topic(ns, req),
        request::GET_BROKER_CLUSTER_INFO => Ok(success(req).with_body(ns.routes.cluster_info().encode())),
        request::WIPE_WRITE_PERM_OF_BROKER => set_write_perm(ns, req, false),
        request::ADD_WRITE_PERM_OF_BROKER => set_write_perm(ns, req, true),
        request::GET_ALL_TOPIC_LIST_FROM_NAMESERVER => get_all_topic_list(ns, req),
        request::DELETE_TOPIC_IN_NAMESRV => delete_topic(ns, req),
        request::REGISTER_TOPIC_IN_NAMESRV => register_topic(ns, req),
        request::GET_TOPICS_BY_CLUSTER => get_topics_by_cluster(ns, req),
        request::GET_SYSTEM_TOPIC_LIST_FROM_NS => Ok(success(req).with_body(ns.routes.system_topics().encode())),
        request::QUERY_DATA_VERSION => query_data_version(ns, req, now),
        request::BROKER_HEARTBEAT => broker_heartbeat(ns, req, now),
        code => Err(NamesrvError::RequestCodeNotSupported(code)),
    }
}

fn success(req: &RemotingCommand) -> RemotingCommand {
    RemotingCommand::response_to(req, response::SUCCESS, None)
}

/// An optional boolean header read like Java's `Boolean.parseBoolean`:
/// anything unreadable is `false` rather than an error.
fn lenient_bool(req: &RemotingCommand, key: &str) -> bool {
    req.ext_bool(key).ok().flatten().unwrap_or(false)
}

fn put_kv_config(ns: &mut NameServer, req: &RemotingCommand) -> Outcome {
    let namespace = req.required_str("namespace")?;
    let key = req.required_str("key")?;
    // An empty value is a value (Java's @CFNotNull only rejects null).
    let value = req
        .ext_fields
        .get_raw("value")
        .ok_or_else(|| crate::protocol::HeaderError::Missing { field: "value".into() })?;
    ns.kv.put(namespace, key, value);
    Ok(success(req))
}

fn get_kv_config(ns: &mut NameServer, req: &RemotingCommand) -> Outcome {
    let namespace = req.required_str("namespace")?;
    let key = req.required_str("key")?;
    match ns.kv.get(namespace, key) {
        Some(value) => {
            let mut rsp = success(req);
            rsp.ext_fields.insert("value", value);
            Ok(rsp)
        }
        None => Err(NamesrvError::KvNotFound {
            namespace: namespace.to_owned(),
            key: key.to_owned(),
        }),
    }
}

fn delete_kv_config(ns: &mut NameServer, req: &RemotingCommand) -> Outcome {
    let namespace = req.required_str("namespace")?;
    let key = req.required_str("key")?;
    ns.kv.delete(namespace, key);
    Ok(success(req))
}

fn get_kv_list_by_namespace(ns: &mut NameServer, req: &RemotingCommand) -> Outcome {
    let namespace = req.required_str("namespace")?;
    match ns.kv.list(namespace) {
        Some(table) => Ok(success(req).with_body(table.encode())),
        None => Err(NamesrvError::KvNamespaceNotFound(namespace.to_owned())),
    }
}

/// REGISTER_BROKER (103). Header: brokerName, brokerAddr, clusterName,
/// haServerAddr, brokerId (required); heartbeatTimeoutMillis,
/// enableActingMaster, compressed, bodyCrc32, `__ZONE_NAME` (optional).
fn register_broker(ns: &mut NameServer, conn: ConnId, req: &RemotingCommand, now: Instant) -> Outcome {
    let broker_name = req.required_str("brokerName")?.to_owned();
    let broker_addr = req.required_str("brokerAddr")?.to_owned();
    let cluster_name = req.required_str("clusterName")?.to_owned();
    let ha_server_addr = req.required_str("haServerAddr")?.to_owned();
    let broker_id = req.required_i64("brokerId")?;
    let heartbeat_timeout = req
        .ext_i64("heartbeatTimeoutMillis")?
        .filter(|&ms| ms > 0)
        .map(|ms| Duration::from_millis(ms.unsigned_abs()));
    let enable_acting_master = req.ext_bool("enableActingMaster")?;
    let compressed = req.ext_bool("compressed")?.unwrap_or(false);

    if let Some(expected) = req.ext_i32("bodyCrc32")?.filter(|&crc| crc != 0) {
        // The masked CRC fits in 31 bits.
        let actual = i32::try_from(crc32_masked(&req.body)).unwrap_or(i32::MAX);
        if actual != expected {
            return Err(NamesrvError::CrcMismatch { expected, actual });
        }
    }
    ns.check_owner(conn, &broker_name, broker_id)?;
    if ns.routes.live_conn_of(&broker_name, broker_id).is_none() && ns.routes.broker_count() >= MAX_BROKERS {
        return Err(NamesrvError::TooLarge(format!(
            "the name server already knows {MAX_BROKERS} brokers"
        )));
    }
    let body = RegisterBrokerBody::decode_request(&req.body, compressed, req.version).map_err(|source| {
        NamesrvError::Body {
            what: "RegisterBrokerBody",
            source,
        }
    })?;
    let topics = body.topic_config_serialize_wrapper.topic_config_table.len();
    if topics > MAX_TOPICS_PER_REGISTRATION {
        return Err(NamesrvError::TooLarge(format!(
            "a registration of {topics} topics is over the limit of {MAX_TOPICS_PER_REGISTRATION}"
        )));
    }

    let registration = BrokerRegistration {
        cluster_name,
        broker_name,
        broker_addr,
        ha_server_addr,
        broker_id,
        heartbeat_timeout,
        enable_acting_master,
        zone_name: req.ext_str("__ZONE_NAME").map(str::to_owned),
        topic_config: body.topic_config_serialize_wrapper,
        filter_server_list: body.filter_server_list,
    };
    let mut result = ns.routes.register_broker(registration, conn, now)?;
    if ns.config.return_order_topic_config_to_broker {
        result.kv_table = ns.kv.list(NAMESPACE_ORDER_TOPIC_CONFIG);
    }
    Ok(success(req)
        .with_ext_fields(result.to_ext_fields())
        .with_body(result.body()))
}

/// Broker names one name server keeps at most.
pub const MAX_BROKERS: usize = 4096;
/// Topics one REGISTER_BROKER may carry (a Java broker with its system
/// topics has a few dozen; large deployments have thousands per broker).
pub const MAX_TOPICS_PER_REGISTRATION: usize = 50_000;

/// UNREGISTER_BROKER (104): brokerName, brokerAddr, clusterName, brokerId.
fn unregister_broker(ns: &mut NameServer, conn: ConnId, req: &RemotingCommand) -> Outcome {
    let broker_name = req.required_str("brokerName")?;
    let broker_addr = req.required_str("brokerAddr")?;
    let cluster_name = req.required_str("clusterName")?;
    let broker_id = req.required_i64("brokerId")?;
    ns.check_owner(conn, broker_name, broker_id)?;
    ns.routes.unregister_broker(cluster_name, broker_addr, broker_name);
    Ok(success(req))
}

/// GET_ROUTEINFO_BY_TOPIC (105): topic, acceptStandardJsonOnly. The JSON
/// dialect follows the request's version (json.md §2).
fn get_route_info_by_topic(ns: &mut NameServer, req: &RemotingCommand) -> Outcome {
    let topic = req.required_str("topic")?;
    let Some(mut route) = ns.routes.topic_route(topic) else {
        return Err(NamesrvError::TopicNotExist(topic.to_owned()));
    };
    if ns.config.order_message_enable {
        route.order_topic_conf = ns.kv.get(NAMESPACE_ORDER_TOPIC_CONFIG, topic).map(str::to_owned);
    }
    let dialect = RouteDialect::for_request(req.version, lenient_bool(req, "acceptStandardJsonOnly"));
    Ok(success(req).with_body(route.encode_dialect(dialect)))
}

/// WIPE_WRITE_PERM_OF_BROKER (205) / ADD_WRITE_PERM_OF_BROKER (327).
fn set_write_perm(ns: &mut NameServer, req: &RemotingCommand, writable: bool) -> Outcome {
    let broker_name = req.required_str("brokerName")?;
    let count = ns.routes.set_write_perm(broker_name, writable);
    let mut rsp = success(req);
    let field = if writable { "addTopicCount" } else { "wipeTopicCount" };
    rsp.ext_fields.insert(field, count.to_string());
    Ok(rsp)
}

fn get_all_topic_list(ns: &mut NameServer, req: &RemotingCommand) -> Outcome {
    if !ns.config.enable_all_topic_list {
        return Err(NamesrvError::Disabled);
    }
    Ok(success(req).with_body(ns.routes.all_topics().encode()))
}

/// GET_TOPICS_BY_CLUSTER (224): cluster.
fn get_topics_by_cluster(ns: &mut NameServer, req: &RemotingCommand) -> Outcome {
    if !ns.config.enable_topic_list {
        return Err(NamesrvError::Disabled);
    }
    let cluster = req.required_str("cluster")?;
    Ok(success(req).with_body(ns.routes.topics_of_cluster(cluster).encode()))
}

/// DELETE_TOPIC_IN_NAMESRV (216): topic, optional clusterName.
fn delete_topic(ns: &mut NameServer, req: &RemotingCommand) -> Outcome {
    let topic = req.required_str("topic")?;
    ns.routes.delete_topic(topic, req.ext_str("clusterName"));
    Ok(success(req))
}

/// REGISTER_TOPIC_IN_NAMESRV (217): topic; body TopicRouteData of which
/// only `queueDatas` is used. Like Java, answers SUCCESS even when nothing
/// could be registered (unknown brokerName, no queues).
fn register_topic(ns: &mut NameServer, req: &RemotingCommand) -> Outcome {
    let topic = req.required_str("topic")?;
    if !req.body.is_empty() {
        let route = TopicRouteData::decode(&req.body).map_err(|source| NamesrvError::Body {
            what: "TopicRouteData",
            source,
        })?;
        if !ns.routes.register_topic(topic, route.queue_datas) {
            log::warn!("REGISTER_TOPIC_IN_NAMESRV {topic}: no queues or unknown broker, ignored");
        }
    }
    Ok(success(req))
}

/// QUERY_DATA_VERSION (322): brokerName, brokerAddr, clusterName, brokerId;
/// body the broker's DataVersion. Answers `changed` and the stored version,
/// and counts as a sign of life.
fn query_data_version(ns: &mut NameServer, req: &RemotingCommand, now: Instant) -> Outcome {
    req.required_str("brokerName")?;
    let broker_addr = req.required_str("brokerAddr")?;
    let cluster_name = req.required_str("clusterName")?;
    req.required_i64("brokerId")?;
    // Java decodes an unreadable body to null, which counts as "changed".
    let theirs = DataVersion::decode(&req.body).ok();
    let ours = ns.routes.data_version(cluster_name, broker_addr);
    let changed = ours.is_none() || ours != theirs;
    ns.routes.touch(cluster_name, broker_addr, now);
    let mut rsp = success(req);
    rsp.ext_fields.insert("changed", changed.to_string());
    if let Some(ours) = ours {
        rsp.body = ours.encode().into();
    }
    Ok(rsp)
}

/// BROKER_HEARTBEAT (904): clusterName, brokerAddr, brokerName. Refreshes
/// liveness only.
fn broker_heartbeat(ns: &mut NameServer, req: &RemotingCommand, now: Instant) -> Outcome {
    let cluster_name = req.required_str("clusterName")?;
    let broker_addr = req.required_str("brokerAddr")?;
    req.required_str("brokerName")?;
    if !ns.routes.touch(cluster_name, broker_addr, now) {
        log::debug!("BROKER_HEARTBEAT from unregistered broker {broker_addr} of {cluster_name}");
    }
    Ok(success(req))
}
