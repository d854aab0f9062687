//! Topics, consumer groups and dead letters over REST: each runs the
//! remoting admin request the CLI sends (`shardmq admin topic|group|dlq`)
//! through the broker's own dispatch, and answers its result as JSON.

use http::StatusCode;
use serde_json::{json, Value};

use crate::acl::{Need, Needs};
use crate::admin::client::req as remoting;
use crate::admin::dlq::DeadLetter;
use crate::protocol::bodies::{ConsumeStats, JsonBody, ResetOffsetBody, TopicStatsTable};
use crate::protocol::codes::{request, response};
use crate::protocol::RemotingCommand;
use crate::runtime::mesh::ClientRef;
use crate::store::record::{check_record, RecordCheck};

use super::{json_body, ApiError, ApiResult, Rest};
use crate::broker::dispatch;
use crate::broker::metadata::{validate_group, validate_topic, DLQ_GROUP_TOPIC_PREFIX};

/// Runs `cmd` as `client`: the broker's answer, whatever its code.
pub(super) async fn answer(rest: &Rest, cmd: RemotingCommand, client: &ClientRef) -> Result<RemotingCommand, ApiError> {
    dispatch::route_counted(&rest.shard, cmd, client)
        .await
        .ok_or_else(|| ApiError::from_remoting(response::SYSTEM_ERROR, "the broker gave no answer"))
}

/// Runs `cmd` as `client`; anything but SUCCESS is an error.
pub(super) async fn run(rest: &Rest, cmd: RemotingCommand, client: &ClientRef) -> Result<RemotingCommand, ApiError> {
    let r = answer(rest, cmd, client).await?;
    if r.code != response::SUCCESS {
        return Err(ApiError::from_remoting(r.code, r.remark.as_deref().unwrap_or("")));
    }
    Ok(r)
}

async fn admin_call(rest: &Rest, req: &crate::http::Req, cmd: RemotingCommand) -> Result<RemotingCommand, ApiError> {
    let client = rest.allowed(req, &Needs::admin(cmd.code))?;
    run(rest, cmd, &client).await
}

/// A request that only reads: any account (the console is read-only for
/// the accounts that are not admins).
async fn read_call(rest: &Rest, req: &crate::http::Req, cmd: RemotingCommand) -> Result<RemotingCommand, ApiError> {
    let client = rest.allowed(req, &Needs::none())?;
    run(rest, cmd, &client).await
}

fn json_of(body: &[u8]) -> Result<Value, ApiError> {
    crate::protocol::bodies::fastjson_reader::parse_lenient(body)
        .map_err(|e| ApiError::from_remoting(response::SYSTEM_ERROR, &format!("undecodable answer: {e}")))
}

fn decode<T: JsonBody>(body: &[u8]) -> Result<T, ApiError> {
    T::decode(body).map_err(|e| ApiError::from_remoting(response::SYSTEM_ERROR, &format!("undecodable answer: {e}")))
}

/// What a topic is for: `retry` / `dlq` topics of groups, the broker's
/// `system` topics, or `normal`.
fn kind(topic: &str) -> &'static str {
    if topic.starts_with(crate::broker::metadata::RETRY_GROUP_TOPIC_PREFIX) {
        "retry"
    } else if topic.starts_with(DLQ_GROUP_TOPIC_PREFIX) {
        "dlq"
    } else if topic == "TBW102"
        || crate::broker::metadata::is_not_allowed_send(topic)
        || topic.starts_with("RMQ_SYS_")
        || topic.starts_with("rmq_sys_")
    {
        "system"
    } else {
        "normal"
    }
}

pub(super) async fn list_topics(rest: &Rest, req: &crate::http::Req) -> ApiResult {
    let r = read_call(rest, req, remoting(request::GET_ALL_TOPIC_CONFIG, &[])).await?;
    let v = json_of(&r.body)?;
    let mut topics: Vec<Value> = v
        .pointer("/topicConfigTable")
        .and_then(Value::as_object)
        .map(|t| {
            t.iter()
                .map(|(name, c)| {
                    json!({
                        "name": name,
                        "kind": kind(name),
                        "read_queues": c.get("readQueueNums").and_then(Value::as_i64).unwrap_or(0),
                        "write_queues": c.get("writeQueueNums").and_then(Value::as_i64).unwrap_or(0),
                        "perm": c.get("perm").and_then(Value::as_i64).unwrap_or(0),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    topics.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Ok((StatusCode::OK, json!({ "topics": topics })))
}

fn int_field(v: &Value, key: &str, default: i64, range: std::ops::RangeInclusive<i64>) -> Result<i64, ApiError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(x) => match x.as_i64() {
            Some(n) if range.contains(&n) => Ok(n),
            _ => Err(ApiError::bad_json(format!(
                "{key} must be an integer from {} to {}",
                range.start(),
                range.end()
            ))),
        },
    }
}

fn bool_field(v: &Value, key: &str) -> Result<bool, ApiError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(ApiError::bad_json(format!("{key} must be true or false"))),
    }
}

fn name_field(v: &Value) -> Result<String, ApiError> {
    match v.get("name") {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err(ApiError::bad_json("name (a string) is required")),
    }
}

pub(super) async fn create_topic(rest: &Rest, req: &crate::http::Req) -> ApiResult {
    let v = json_body(req)?;
    if !v.is_object() {
        return Err(ApiError::bad_json("a JSON object is expected"));
    }
    let name = name_field(&v)?;
    validate_topic(&name).map_err(ApiError::bad_request)?;
    let queues = int_field(&v, "queues", 8, 1..=1024)?;
    let perm = int_field(&v, "perm", 6, 0..=7)?;
    let client = rest.allowed(req, &Needs::admin(request::UPDATE_AND_CREATE_TOPIC))?;
    if rest.shard.topic(&name).is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            response::TOPIC_EXIST_ALREADY,
            format!("topic {name} already exists"),
        ));
    }
    let cmd = remoting(
        request::UPDATE_AND_CREATE_TOPIC,
        &[
            ("topic", name.clone()),
            ("defaultTopic", "TBW102".into()),
            ("readQueueNums", queues.to_string()),
            ("writeQueueNums", queues.to_string()),
            ("perm", perm.to_string()),
            ("topicFilterType", "SINGLE_TAG".into()),
            ("topicSysFlag", "0".into()),
            ("order", "false".into()),
        ],
    );
    run(rest, cmd, &client).await?;
    Ok((
        StatusCode::CREATED,
        json!({"name": name, "kind": kind(&name), "read_queues": queues, "write_queues": queues, "perm": perm}),
    ))
}

pub(super) async fn topic_status(rest: &Rest, req: &crate::http::Req, topic: &str) -> ApiResult {
    let client = rest.allowed(req, &Needs::none())?;
    let Some(info) = rest.shard.topic(topic) else {
        return Err(ApiError::topic_not_found(topic));
    };
    let r = run(
        rest,
        remoting(request::GET_TOPIC_STATS_INFO, &[("topic", topic.to_string())]),
        &client,
    )
    .await?;
    let stats: TopicStatsTable = decode(&r.body)?;
    let mut queues: Vec<(i32, Value)> = stats
        .offset_table
        .0
        .iter()
        .map(|(mq, o)| {
            (
                mq.queue_id,
                json!({"queue_id": mq.queue_id, "min_offset": o.min_offset, "max_offset": o.max_offset,
                       "messages": (o.max_offset - o.min_offset).max(0), "last_update_ms": o.last_update_timestamp}),
            )
        })
        .collect();
    queues.sort_by_key(|(q, _)| *q);
    let total: i64 = queues.iter().map(|(_, q)| q["messages"].as_i64().unwrap_or(0)).sum();
    Ok((
        StatusCode::OK,
        json!({
            "name": topic, "kind": kind(topic), "read_queues": info.read_queue_nums,
            "write_queues": info.write_queue_nums, "perm": info.perm, "messages": total,
            "queues": queues.into_iter().map(|(_, q)| q).collect::<Vec<_>>(),
        }),
    ))
}

pub(super) async fn delete_topic(rest: &Rest, req: &crate::http::Req, topic: &str) -> ApiResult {
    let client = rest.allowed(req, &Needs::admin(request::DELETE_TOPIC_IN_BROKER))?;
    if rest.shard.topic(topic).is_none() {
        return Err(ApiError::topic_not_found(topic));
    }
    run(
        rest,
        remoting(request::DELETE_TOPIC_IN_BROKER, &[("topic", topic.to_string())]),
        &client,
    )
    .await?;
    Ok((StatusCode::OK, json!({"name": topic, "deleted": true})))
}

fn groups_of(body: &[u8]) -> Result<serde_json::Map<String, Value>, ApiError> {
    Ok(json_of(body)?
        .get("subscriptionGroupTable")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default())
}

fn group_json(name: &str, c: &Value) -> Value {
    let flag = |k: &str| c.get(k).and_then(Value::as_bool).unwrap_or(false);
    json!({
        "name": name, "consume_enable": c.get("consumeEnable").and_then(Value::as_bool).unwrap_or(true),
        "orderly": flag("consumeMessageOrderly"), "broadcast": flag("consumeBroadcastEnable"),
        "retry_max_times": c.get("retryMaxTimes").and_then(Value::as_i64).unwrap_or(16),
    })
}

pub(super) async fn list_groups(rest: &Rest, req: &crate::http::Req) -> ApiResult {
    let r = read_call(rest, req, remoting(request::GET_ALL_SUBSCRIPTIONGROUP_CONFIG, &[])).await?;
    let groups: Vec<Value> = groups_of(&r.body)?.iter().map(|(n, c)| group_json(n, c)).collect();
    Ok((StatusCode::OK, json!({ "groups": groups })))
}

pub(super) async fn create_group(rest: &Rest, req: &crate::http::Req) -> ApiResult {
    let v = json_body(req)?;
    if !v.is_object() {
        return Err(ApiError::bad_json("a JSON object is expected"));
    }
    let name = name_field(&v)?;
    validate_group(&name).map_err(ApiError::bad_request)?;
    let retry = int_field(&v, "retry_max_times", 16, 0..=64)?;
    let orderly = bool_field(&v, "orderly")?;
    let broadcast = bool_field(&v, "broadcast")?;
    let client = rest.allowed(req, &Needs::admin(request::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP))?;
    let existed = {
        let r = run(rest, remoting(request::GET_ALL_SUBSCRIPTIONGROUP_CONFIG, &[]), &client).await?;
        groups_of(&r.body)?.contains_key(&name)
    };
    let body = json!({
        "groupName": name, "retryMaxTimes": retry, "consumeMessageOrderly": orderly,
        "consumeBroadcastEnable": broadcast, "consumeEnable": true,
    });
    let cmd = remoting(request::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, &[]).with_body(body.to_string().into_bytes());
    run(rest, cmd, &client).await?;
    let status = if existed { StatusCode::OK } else { StatusCode::CREATED };
    Ok((status, group_json(&name, &body)))
}

pub(super) async fn group_progress(rest: &Rest, req: &crate::http::Req, group: &str) -> ApiResult {
    validate_group(group).map_err(ApiError::bad_request)?;
    let mut fields = vec![("consumerGroup", group.to_string())];
    if let Some(t) = req.query("topic") {
        validate_topic(&t).map_err(ApiError::bad_request)?;
        fields.push(("topic", t));
    }
    let r = read_call(rest, req, remoting(request::GET_CONSUME_STATS, &fields)).await?;
    let stats: ConsumeStats = decode(&r.body)?;
    let mut rows: Vec<_> = stats.offset_table.0.iter().collect();
    rows.sort_by_key(|(mq, _)| (mq.topic.clone(), mq.queue_id));
    let lag: i64 = rows
        .iter()
        .map(|(_, o)| (o.broker_offset - o.consumer_offset).max(0))
        .sum();
    let queues: Vec<Value> = rows
        .iter()
        .map(|(mq, o)| {
            json!({
                "topic": mq.topic, "queue_id": mq.queue_id, "broker_offset": o.broker_offset,
                "consumer_offset": o.consumer_offset, "lag": (o.broker_offset - o.consumer_offset).max(0),
                "last_consumed_ms": o.last_timestamp,
            })
        })
        .collect();
    Ok((StatusCode::OK, json!({"group": group, "lag": lag, "queues": queues})))
}

pub(super) async fn reset_group(rest: &Rest, req: &crate::http::Req, group: &str) -> ApiResult {
    validate_group(group).map_err(ApiError::bad_request)?;
    let v = json_body(req)?;
    let topic = match v.get("topic") {
        Some(Value::String(t)) => t.clone(),
        _ => return Err(ApiError::bad_json("topic (a string) is required")),
    };
    let ts = match v.get("timestamp") {
        Some(Value::Number(n)) => n
            .as_i64()
            .filter(|t| *t >= -1)
            .ok_or_else(|| ApiError::bad_json("timestamp must be ms since the epoch, or -1 for the end"))?,
        Some(Value::String(s)) => crate::admin::time::parse_time(s).map_err(ApiError::bad_json)?,
        _ => {
            return Err(ApiError::bad_json(
                "timestamp (ms since the epoch, or a time string) is required",
            ))
        }
    };
    if rest.shard.topic(&topic).is_none() {
        return Err(ApiError::topic_not_found(&topic));
    }
    let r = admin_call(
        rest,
        req,
        remoting(
            request::INVOKE_BROKER_TO_RESET_OFFSET,
            &[
                ("group", group.to_string()),
                ("topic", topic.clone()),
                ("timestamp", ts.to_string()),
                ("isForce", "true".into()),
            ],
        ),
    )
    .await?;
    let body: ResetOffsetBody = decode(&r.body)?;
    let mut queues: Vec<(i32, i64)> = body.offset_table.0.iter().map(|(mq, o)| (mq.queue_id, *o)).collect();
    queues.sort();
    let queues: Vec<Value> = queues
        .into_iter()
        .map(|(q, o)| json!({"queue_id": q, "offset": o}))
        .collect();
    Ok((
        StatusCode::OK,
        json!({"group": group, "topic": topic, "timestamp": ts, "queues": queues}),
    ))
}

/// Most dead letters one request lists or resends.
const MAX_DLQ_READ: usize = 10_000;

/// Up to `limit` dead letters of `group`, oldest first per queue.
async fn read_dlq(rest: &Rest, client: &ClientRef, group: &str, limit: usize) -> Result<Vec<DeadLetter>, ApiError> {
    let topic = format!("{DLQ_GROUP_TOPIC_PREFIX}{group}");
    let Some(info) = rest.shard.topic(&topic) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for qid in 0..info.read_queue_nums {
        let min = run(
            rest,
            remoting(
                request::GET_MIN_OFFSET,
                &[("topic", topic.clone()), ("queueId", qid.to_string())],
            ),
            client,
        )
        .await?;
        let mut off: u64 = min.ext_str("offset").and_then(|o| o.parse().ok()).unwrap_or(0);
        while out.len() < limit {
            let r = answer(rest, crate::admin::dlq::pull(&topic, qid, off), client).await?;
            let next: Option<u64> = r.ext_str("nextBeginOffset").and_then(|o| o.parse().ok());
            match (r.code, next) {
                (response::SUCCESS, Some(n)) => {
                    let mut at = 0;
                    while at < r.body.len() && out.len() < limit {
                        let RecordCheck::Record(v) = check_record(&r.body[at..], None, true) else {
                            return Err(ApiError::from_remoting(
                                response::SYSTEM_ERROR,
                                &format!("an undecodable record in {topic}/{qid} at offset {off}"),
                            ));
                        };
                        out.push(DeadLetter::from_record(qid.to_string(), &v));
                        at += v.total_size as usize;
                    }
                    if n <= off {
                        break;
                    }
                    off = n;
                }
                (response::PULL_RETRY_IMMEDIATELY | response::PULL_OFFSET_MOVED, Some(n)) if n > off => off = n,
                _ => break,
            }
        }
    }
    Ok(out)
}

fn dead_letter_json(d: &DeadLetter) -> Value {
    let mut m = super::consume::body_json(&d.body, d.sys_flag, false);
    let attributes: serde_json::Map<String, Value> = d
        .props
        .iter()
        .filter(|(k, _)| !crate::broker::grpc::convert::SYSTEM_KEYS.contains(k))
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect();
    let extra = json!({
        "message_id": d.id(), "origin_topic": d.origin(),
        "keys": d.keys().split(' ').filter(|k| !k.is_empty()).collect::<Vec<_>>(),
        "tags": d.props.get(crate::protocol::properties::keys::TAGS).unwrap_or(""),
        "attributes": attributes, "queue_id": d.queue.parse::<i64>().unwrap_or(0),
        "queue_offset": d.offset, "store_time_ms": d.store_ms, "born_time_ms": d.born_ms,
        "reconsume_times": d.reconsume_times,
    });
    if let (Some(m), Some(e)) = (m.as_object_mut(), extra.as_object()) {
        m.extend(e.clone());
    }
    m
}

pub(super) async fn list_dlq(rest: &Rest, req: &crate::http::Req, group: &str) -> ApiResult {
    validate_group(group).map_err(ApiError::bad_request)?;
    let max = match req.query("max") {
        None => 100,
        Some(m) => m
            .parse::<usize>()
            .ok()
            .filter(|m| (1..=1000).contains(m))
            .ok_or_else(|| ApiError::bad_request("max must be an integer from 1 to 1000"))?,
    };
    let topic = format!("{DLQ_GROUP_TOPIC_PREFIX}{group}");
    let client = rest.allowed(req, &Needs::none().topic(topic.as_str(), Need::Sub).group(group))?;
    let dead = read_dlq(rest, &client, group, max).await?;
    let messages: Vec<Value> = dead.iter().map(dead_letter_json).collect();
    Ok((
        StatusCode::OK,
        json!({"group": group, "topic": topic, "messages": messages}),
    ))
}

pub(super) async fn resend_dlq(rest: &Rest, req: &crate::http::Req, group: &str) -> ApiResult {
    validate_group(group).map_err(ApiError::bad_request)?;
    let v = json_body(req)?;
    let all = bool_field(&v, "all")?;
    if v.get("all") == Some(&Value::Bool(false)) && v.get("message_ids").is_none() {
        return Err(ApiError::bad_json("all: false names nothing: give message_ids"));
    }
    let ids: Vec<String> = match v.get("message_ids") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => {
            a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()
        }
        Some(_) => return Err(ApiError::bad_json("message_ids must be an array of strings")),
    };
    if !all && ids.is_empty() {
        return Err(ApiError::bad_json("name the dead letters: message_ids, or all: true"));
    }
    let topic = format!("{DLQ_GROUP_TOPIC_PREFIX}{group}");
    let reader = rest.allowed(req, &Needs::none().topic(topic.as_str(), Need::Sub).group(group))?;
    if !rest.is_admin(&reader) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            response::NO_PERMISSION,
            "resending dead letters needs an admin account",
        ));
    }
    let dead = read_dlq(rest, &reader, group, MAX_DLQ_READ).await?;
    let chosen: Vec<&DeadLetter> = dead.iter().filter(|d| all || ids.iter().any(|i| i == d.id())).collect();
    let missing: Vec<&String> = ids.iter().filter(|i| !dead.iter().any(|d| d.id() == *i)).collect();
    let mut resent = Vec::new();
    for d in chosen {
        let origin = d.origin();
        if origin.is_empty() {
            continue; // no RETRY_TOPIC: its origin is unknown
        }
        let client = rest.allowed(req, &Needs::none().topic(origin, Need::Pub))?;
        let r = run(rest, crate::admin::dlq::resend_request(d), &client).await?;
        resent.push(json!({
            "message_id": d.id(), "topic": origin,
            "queue_id": r.ext_i32("queueId").ok().flatten().unwrap_or(-1),
            "queue_offset": r.ext_i64("queueOffset").ok().flatten().unwrap_or(-1),
        }));
    }
    Ok((
        StatusCode::OK,
        json!({"group": group, "resent": resent, "not_found": missing}),
    ))
}
