//! What the web console reads besides topics and groups: the broker's
//! statistics (the data of `shardmq admin stats`), who the caller is, a
//! group's online consumers, and messages found by key or id (the key
//! index through QUERY_MESSAGE, as `shardmq admin message`).

use http::StatusCode;
use serde_json::{json, Value};

use crate::acl::{Need, Needs};
use crate::admin::client::req as remoting;
use crate::protocol::bodies::{ConsumerConnection, JsonBody};
use crate::protocol::codes::{request, response};
use crate::protocol::OffsetMessageId;
use crate::runtime::mesh::Verified;
use crate::store::record::{check_record, RecordCheck};

use super::{ApiError, ApiResult, Rest};
use crate::broker::dispatch;
use crate::broker::metadata::{validate_group, validate_topic};

/// `GET /v1/session`: whether ACL is on, who signed the request, and
/// whether it may administer (the console shows its buttons then).
pub(super) async fn session(rest: &Rest, req: &crate::http::Req) -> ApiResult {
    let client = rest.allowed(req, &Needs::none())?;
    let key = match &client.verified {
        Verified::Account(k) => Value::String(k.to_string()),
        _ => Value::Null,
    };
    Ok((
        StatusCode::OK,
        json!({
            "acl": rest.shard.access.enabled(), "access_key": key, "admin": rest.is_admin(&client),
            "broker": rest.shard.cfg.broker_name, "cluster": rest.shard.cfg.broker_cluster_name,
            "shards": rest.shard.shard_count(),
        }),
    ))
}

/// `GET /v1/stats`: every shard's latency percentiles and histograms,
/// counters and gauges, consumer lag, subscription warnings and alert
/// states — what `shardmq admin stats --json` prints.
pub(super) async fn stats(rest: &Rest, req: &crate::http::Req) -> ApiResult {
    let client = rest.allowed(req, &Needs::none())?;
    let mut s = crate::broker::stats::collect(&rest.shard).await;
    if rest.shard.id != 0 {
        // The alert engine lives on shard 0: ask it (ALERT_STATUS).
        let cmd = remoting(crate::broker::alerts::ALERT_STATUS, &[]);
        if let Some(r) = dispatch::route_counted(&rest.shard, cmd, &client).await {
            let rules = serde_json::from_slice::<Value>(&r.body)
                .ok()
                .and_then(|v| serde_json::from_value(v["rules"].clone()).ok());
            if let (response::SUCCESS, Some(rules)) = (r.code, rules) {
                s.alerts = rules;
            }
        }
    }
    let mut v = serde_json::to_value(&s)
        .map_err(|e| ApiError::from_remoting(response::SYSTEM_ERROR, &format!("stats: {e}")))?;
    // The upper bounds (µs) of the histograms' cumulative buckets.
    v["buckets_us"] = json!(crate::metrics::BUCKETS_US);
    Ok((StatusCode::OK, v))
}

/// `GET /v1/groups/{g}/members`: the group's online consumers and what
/// they subscribe to.
pub(super) async fn members(rest: &Rest, req: &crate::http::Req, group: &str) -> ApiResult {
    validate_group(group).map_err(ApiError::bad_request)?;
    let client = rest.allowed(req, &Needs::none().group(group))?;
    let cmd = remoting(
        request::GET_CONSUMER_CONNECTION_LIST,
        &[("consumerGroup", group.to_string())],
    );
    let r = super::admin::answer(rest, cmd, &client).await?;
    let members = if r.code == response::SUCCESS {
        let cc = ConsumerConnection::decode(&r.body)
            .map_err(|e| ApiError::from_remoting(response::SYSTEM_ERROR, &format!("undecodable answer: {e}")))?;
        let subs: Vec<Value> = cc
            .subscription_table
            .iter()
            .map(|(t, s)| json!({"topic": t, "expression": s.sub_string}))
            .collect();
        json!({
            "online": cc.connection_set.iter().map(|c| json!({
                "client_id": c.client_id, "address": c.client_addr, "language": c.language, "version": c.version,
            })).collect::<Vec<_>>(),
            "subscriptions": subs,
            "message_model": cc.message_model.map(|m| format!("{m:?}")),
        })
    } else {
        // CONSUMER_NOT_ONLINE and the like: nobody is connected.
        json!({"online": [], "subscriptions": [], "message_model": null})
    };
    let mut v = members;
    v["group"] = Value::String(group.to_string());
    Ok((StatusCode::OK, v))
}

/// `GET /v1/messages?topic=T&key=K` or `…&id=ID`: messages found by key
/// (newest first, at most `max`, default 32) or by id (the client's id,
/// or an offset id).
pub(super) async fn find(rest: &Rest, req: &crate::http::Req) -> ApiResult {
    let Some(topic) = req.query("topic") else {
        return Err(ApiError::bad_request("topic is required"));
    };
    validate_topic(&topic).map_err(ApiError::bad_request)?;
    let max = match req.query("max") {
        None => 32,
        Some(m) => m
            .parse::<usize>()
            .ok()
            .filter(|m| (1..=64).contains(m))
            .ok_or_else(|| ApiError::bad_request("max must be an integer from 1 to 64"))?,
    };
    let (key, unique) = match (req.query("key"), req.query("id")) {
        (Some(k), None) if !k.is_empty() => (k, false),
        (None, Some(i)) if !i.is_empty() => (i, true),
        _ => return Err(ApiError::bad_request("give either key or id")),
    };
    let client = rest.allowed(req, &Needs::none().topic(topic.as_str(), Need::Sub))?;
    if rest.shard.topic(&topic).is_none() {
        return Err(ApiError::topic_not_found(&topic));
    }
    let mut cmd = remoting(
        request::QUERY_MESSAGE,
        &[
            ("topic", topic.clone()),
            ("key", key.clone()),
            ("maxNum", max.to_string()),
            ("beginTimestamp", "0".into()),
            ("endTimestamp", i64::MAX.to_string()),
        ],
    );
    if unique {
        cmd.ext_fields.insert_display("_UNIQUE_KEY_QUERY", "true");
    }
    let r = super::admin::answer(rest, cmd, &client).await?;
    let mut body = match r.code {
        response::SUCCESS => r.body.to_vec(),
        response::QUERY_NOT_FOUND => Vec::new(),
        code => return Err(ApiError::from_remoting(code, r.remark.as_deref().unwrap_or(""))),
    };
    if body.is_empty() && unique {
        if let Ok(off) = OffsetMessageId::decode(&key) {
            let cmd = remoting(
                request::VIEW_MESSAGE_BY_ID,
                &[("offset", off.commit_log_offset.to_string())],
            );
            if let Some(r) = dispatch::route_counted(&rest.shard, cmd, &client).await {
                if r.code == response::SUCCESS {
                    body = r.body.to_vec();
                }
            }
        }
    }
    let store_host = rest.shard.store.config().store_host;
    let mut out = Vec::new();
    let mut at = 0;
    while at < body.len() {
        let RecordCheck::Record(v) = check_record(&body[at..], None, true) else {
            break;
        };
        at += v.total_size as usize;
        let t = String::from_utf8_lossy(v.topic);
        if t != topic {
            continue;
        }
        out.push(super::consume::message_json(&v, &t, store_host, false));
    }
    Ok((StatusCode::OK, json!({"topic": topic, "messages": out})))
}
