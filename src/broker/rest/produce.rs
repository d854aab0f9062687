//! `POST /v1/topics/{topic}/messages`: one message, or `{"messages": […]}`,
//! each sent as SEND_MESSAGE_V2 through the broker's dispatch — to the
//! topic's write queues in turn (on whichever shard owns each), or with a
//! `message_group` to the group's queue (hash of the group, FIFO like the
//! 5.x clients).
//!
//! A message: `body` (a string, as `body_encoding` `text` — the default —
//! or `base64`; any other JSON value is stored as its JSON text), `tags`,
//! `keys` (a string or an array of strings), `attributes` (string to string,
//! not one of RocketMQ's reserved property names), `delay_seconds` or
//! `deliver_at_ms`, `message_group`. Every message is checked before any is
//! sent; the broker generates the message ids (`UNIQ_KEY`).

use std::cell::RefCell;

use base64::Engine;
use futures::FutureExt;
use http::StatusCode;
use serde_json::{json, Map, Value};

use crate::acl::{Need, Needs};
use crate::protocol::codes::request;
use crate::protocol::message_id::UniqIdGenerator;
use crate::protocol::properties::{keys, Properties};

use super::{json_body, ApiError, ApiResult, Rest};

thread_local! {
    /// Message ids of this shard's REST sends (the process id in them, and a
    /// counter, keep shards and restarts apart).
    static IDS: RefCell<Option<UniqIdGenerator>> = const { RefCell::new(None) };
}

fn next_id(ip: std::net::IpAddr, shard: u16) -> String {
    IDS.with(|g| {
        let mut g = g.borrow_mut();
        let gen = g.get_or_insert_with(|| {
            UniqIdGenerator::with_parts(ip, std::process::id() as u16, 0x5348_0000 | i32::from(shard))
        });
        gen.next_id()
    })
}

/// A message checked and encoded, ready to send.
struct Outgoing {
    body: Vec<u8>,
    properties: Properties,
    group: Option<String>,
}

fn string_field<'a>(m: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, ApiError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::bad_json(format!("{key} must be a string"))),
    }
}

fn parse_message(i: usize, v: &Value, max_delay_ms: i64, now: i64) -> Result<Outgoing, ApiError> {
    let at = |e: ApiError| ApiError {
        message: format!("message {i}: {}", e.message),
        ..e
    };
    let Some(m) = v.as_object() else {
        return Err(at(ApiError::bad_json("a message is a JSON object")));
    };
    let encoding = string_field(m, "body_encoding").map_err(at)?.unwrap_or("text");
    let body = match (m.get("body"), encoding) {
        (None | Some(Value::Null), _) => return Err(at(ApiError::bad_json("body is required"))),
        (Some(Value::String(s)), "text") => s.as_bytes().to_vec(),
        (Some(Value::String(s)), "base64") => base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(|e| at(ApiError::bad_json(format!("body is not base64: {e}"))))?,
        (Some(_), "text" | "base64") if encoding == "base64" => {
            return Err(at(ApiError::bad_json("a base64 body must be a string")))
        }
        (Some(other), "text") => other.to_string().into_bytes(),
        (Some(_), e) => {
            return Err(at(ApiError::bad_json(format!(
                "body_encoding {e:?} is not text or base64"
            ))))
        }
    };
    if body.is_empty() {
        return Err(at(ApiError::bad_json("the body is empty")));
    }
    let mut props = Properties::new();
    let bad = |e: crate::protocol::ProtocolError| at(ApiError::bad_json(e.to_string()));
    if let Some(attrs) = m.get("attributes").filter(|a| !a.is_null()) {
        let Some(attrs) = attrs.as_object() else {
            return Err(at(ApiError::bad_json("attributes must be an object of strings")));
        };
        for (k, v) in attrs {
            let Some(v) = v.as_str() else {
                return Err(at(ApiError::bad_json(format!("attribute {k} must be a string"))));
            };
            if k.is_empty() || crate::broker::grpc::convert::SYSTEM_KEYS.contains(&k.as_str()) {
                return Err(at(ApiError::bad_json(format!(
                    "attribute name {k:?} is empty or reserved by RocketMQ"
                ))));
            }
            props.insert(k.clone(), v).map_err(bad)?;
        }
    }
    if let Some(tags) = string_field(m, "tags").map_err(at)?.filter(|t| !t.is_empty()) {
        if tags.contains("||") {
            return Err(at(ApiError::bad_json("a message has one tag (no ||)")));
        }
        props.insert(keys::TAGS, tags).map_err(bad)?;
    }
    let words: Vec<String> = match m.get("keys") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
        Some(Value::Array(a)) => {
            let mut w = Vec::new();
            for k in a {
                match k.as_str() {
                    Some(s) if !s.is_empty() && !s.contains(char::is_whitespace) => w.push(s.to_string()),
                    _ => return Err(at(ApiError::bad_json("keys are non-empty strings without spaces"))),
                }
            }
            w
        }
        Some(_) => return Err(at(ApiError::bad_json("keys must be a string or an array of strings"))),
    };
    if !words.is_empty() {
        props.insert(keys::KEYS, words.join(" ")).map_err(bad)?;
    }
    let delay = match m.get("delay_seconds") {
        None | Some(Value::Null) => None,
        Some(d) => match d.as_i64() {
            Some(s) if s >= 0 && s.saturating_mul(1000) <= max_delay_ms => Some(now + s * 1000),
            _ => {
                return Err(at(ApiError::bad_json(format!(
                    "delay_seconds must be an integer from 0 to {}",
                    max_delay_ms / 1000
                ))))
            }
        },
    };
    let deliver_at = match m.get("deliver_at_ms") {
        None | Some(Value::Null) => None,
        Some(d) => match d.as_i64() {
            Some(t) if t >= 0 && t <= now.saturating_add(max_delay_ms) => Some(t),
            _ => {
                return Err(at(ApiError::bad_json(
                    "deliver_at_ms must be a time (ms) within timerMaxDelay from now",
                )))
            }
        },
    };
    if delay.is_some() && deliver_at.is_some() {
        return Err(at(ApiError::bad_json("give delay_seconds or deliver_at_ms, not both")));
    }
    if let Some(t) = delay.or(deliver_at).filter(|t| *t > now) {
        props.insert(keys::TIMER_DELIVER_MS, t.to_string()).map_err(bad)?;
    }
    let group = string_field(m, "message_group").map_err(at)?.filter(|g| !g.is_empty());
    if let Some(g) = group {
        props.insert(keys::SHARDING_KEY, g).map_err(bad)?;
    }
    Ok(Outgoing {
        body,
        properties: props,
        group: group.map(str::to_string),
    })
}

pub(super) async fn produce(rest: &Rest, req: &crate::http::Req, topic: &str) -> ApiResult {
    let v = json_body(req)?;
    let batch: Vec<&Value> = match v.get("messages") {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(_) => return Err(ApiError::bad_json("messages must be an array")),
        None => vec![&v],
    };
    let cfg = &rest.shard.cfg;
    if batch.is_empty() {
        return Err(ApiError::bad_json("messages is empty"));
    }
    if batch.len() > cfg.http_max_batch {
        return Err(ApiError::too_large(format!(
            "{} messages in one request: at most {} (httpMaxBatch)",
            batch.len(),
            cfg.http_max_batch
        )));
    }
    let now = crate::runtime::epoch_ms();
    let max_delay = cfg.timer_max_delay.as_millis() as i64;
    let msgs = batch
        .iter()
        .enumerate()
        .map(|(i, m)| parse_message(i, m, max_delay, now))
        .collect::<Result<Vec<_>, _>>()?;
    let client = rest.allowed(req, &Needs::none().topic(topic, Need::Pub))?;
    let Some(info) = rest.shard.topic(topic) else {
        return Err(ApiError::topic_not_found(topic));
    };
    let ip = cfg.broker_ip1;
    let queues = info.write_queue_nums.max(1);
    // The request's messages without a message group go to one queue (in
    // turn per request, as RocketMQ's clients send a batch); a group's to
    // its queue. One SEND_BATCH_MESSAGE per queue: one append, one flush
    // wait, for the whole batch. Delayed messages go one by one.
    let turn = (rest.next_turn() % queues as usize) as u32;
    let mut ids = Vec::with_capacity(msgs.len());
    let mut by_queue: Vec<(u32, Vec<(usize, Outgoing)>)> = Vec::new();
    let mut single: Vec<(usize, u32, Outgoing)> = Vec::new();
    for (i, mut o) in msgs.into_iter().enumerate() {
        let id = next_id(ip, rest.shard.id);
        o.properties
            .insert(keys::UNIQ_KEY, id.clone())
            .map_err(|e| ApiError::bad_json(e.to_string()))?;
        ids.push(id);
        let q = match &o.group {
            Some(g) => (crate::protocol::java_string_hash(g) as u32) % queues,
            None => turn,
        };
        if o.properties.contains_key(keys::TIMER_DELIVER_MS) {
            single.push((i, q, o));
        } else {
            match by_queue.iter_mut().find(|(bq, _)| *bq == q) {
                Some((_, v)) => v.push((i, o)),
                None => by_queue.push((q, vec![(i, o)])),
            }
        }
    }
    let mut sends = Vec::new();
    for (q, batch) in by_queue {
        sends.push(send_to(rest, &client, topic, q, batch, now).boxed_local());
    }
    for (i, q, o) in single {
        sends.push(send_to(rest, &client, topic, q, vec![(i, o)], now).boxed_local());
    }
    let mut results: Vec<Option<Result<Value, ApiError>>> = ids.iter().map(|_| None).collect();
    for done in futures::future::join_all(sends).await {
        for (i, r) in done {
            results[i] =
                Some(r.map(|(queue, offset)| json!({"message_id": ids[i], "queue_id": queue, "queue_offset": offset})));
        }
    }
    let failed = results.iter().flatten().find_map(|r| r.as_ref().err()).cloned();
    let Some(e) = failed else {
        let ok: Vec<Value> = results.into_iter().flatten().filter_map(Result::ok).collect();
        return Ok((StatusCode::OK, json!({ "results": ok })));
    };
    if results.iter().flatten().all(Result::is_err) {
        return Err(e);
    }
    // Some were stored, some not: say which.
    let mut body = e.body();
    body["results"] = Value::Array(
        results
            .into_iter()
            .flatten()
            .map(|r| r.unwrap_or_else(|e| e.body()))
            .collect(),
    );
    body["error"]["message"] = Value::String(format!("{} (other messages were stored: see results)", e.message));
    Ok((e.status, body))
}

/// Sends `batch` (request positions and messages) to queue `q`: one
/// SEND_MESSAGE_V2, or one SEND_BATCH_MESSAGE for several. Each message's
/// (queue, queue offset), or the error, by position.
async fn send_to(
    rest: &Rest,
    client: &crate::runtime::mesh::ClientRef,
    topic: &str,
    q: u32,
    batch: Vec<(usize, Outgoing)>,
    now: i64,
) -> Vec<(usize, Result<(i64, i64), ApiError>)> {
    let positions: Vec<usize> = batch.iter().map(|(i, _)| *i).collect();
    let fail = |e: ApiError| positions.iter().map(|i| (*i, Err(e.clone()))).collect::<Vec<_>>();
    let n = batch.len();
    let (code, properties, body, is_batch) = if n == 1 {
        let (_, o) = batch.into_iter().next().expect("one message");
        (
            request::SEND_MESSAGE_V2,
            o.properties.encode(),
            bytes::Bytes::from(o.body),
            false,
        )
    } else {
        let mut body = bytes::BytesMut::new();
        for (_, o) in &batch {
            if let Err(e) = crate::protocol::batch::encode_batch_entry(0, &o.body, &o.properties.encode(), &mut body) {
                return fail(ApiError::bad_json(e.to_string()));
            }
        }
        (
            request::SEND_BATCH_MESSAGE,
            "WAIT\u{1}true\u{2}".to_string(),
            body.freeze(),
            true,
        )
    };
    let mut fields = vec![
        ("a", "HTTP_PRODUCER".to_string()),
        ("b", topic.to_string()),
        ("c", "TBW102".into()),
        ("d", "4".into()),
        ("e", q.to_string()),
        ("f", "0".into()),
        ("g", now.to_string()),
        ("h", "0".into()),
        ("i", properties),
        ("j", "0".into()),
        ("k", "false".into()),
    ];
    if is_batch {
        fields.push(("m", "true".into()));
    }
    let mut cmd = crate::admin::client::req(code, &fields);
    cmd.body = body;
    match super::admin::run(rest, cmd, client).await {
        Ok(r) => {
            let queue = r.ext_i32("queueId").ok().flatten().map_or(i64::from(q), i64::from);
            let first = r.ext_i64("queueOffset").ok().flatten().unwrap_or(-1);
            positions
                .into_iter()
                .enumerate()
                .map(|(k, i)| (i, Ok((queue, if first < 0 { -1 } else { first + k as i64 }))))
                .collect()
        }
        Err(e) => fail(e),
    }
}
