//! Receiving and acknowledging over REST: `GET
//! /v1/topics/{t}/groups/{g}/messages` pops from every shard that owns
//! queues of the topic, in turn (one shard's queues first, then the next,
//! until `max`), long-polling on all of them at once when none has
//! anything; `POST …/ack` settles each handle on the shard that owns its
//! queue. See the module docs of [`super`] for the semantics.

use std::time::{Duration, Instant};

use base64::Engine;
use futures::future::{select_all, FutureExt, LocalBoxFuture};
use http::StatusCode;
use serde_json::{json, Map, Value};

use crate::acl::{Need, Needs};
use crate::protocol::codes::response;
use crate::protocol::properties::{keys, Properties};
use crate::protocol::OffsetMessageId;
use crate::runtime::mesh::ClientRef;
use crate::store::record::{check_record, RecordCheck};

use super::{json_body, ApiError, ApiResult, Rest};
use crate::broker::mesh::{Reply, Request};
use crate::broker::metadata::validate_group;
use crate::broker::pop::engine::{self, PopBatch, PopRequest, Refusal};
use crate::broker::pop::remoting::{ack_on, change_on, MAX_INVISIBLE_MS};
use crate::broker::pop::state::Outcome;

const MIN_INVISIBLE_MS: i64 = 10_000;
const DEFAULT_INVISIBLE_MS: i64 = 30_000;
const MAX_WAIT_MS: u64 = 30_000;
const DEFAULT_MAX: usize = 10;
/// RocketMQ's retry back-off by attempt (delay levels 1 s … 2 h), for
/// `fail`.
const FAIL_BACKOFF_S: [i64; 18] = [
    1, 5, 10, 30, 60, 120, 180, 240, 300, 360, 420, 480, 540, 600, 1200, 1800, 3600, 7200,
];
const DEFAULT_REDELIVER_S: i64 = 30;
/// Largest body a compressed message is inflated to (the broker's own
/// message size bound).
const MAX_INFLATED: u64 = 4 << 20;

/// A delivery's handle: where the message is and which delivery it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Handle {
    shard: u16,
    queue: u32,
    offset: u64,
    pop_time: i64,
    attempt: i32,
}

impl Handle {
    fn encode(&self) -> String {
        format!(
            "r1.{}.{}.{}.{}.{}",
            self.shard, self.queue, self.offset, self.pop_time, self.attempt
        )
    }

    fn decode(s: &str) -> Option<Handle> {
        let mut p = s.strip_prefix("r1.")?.split('.');
        let h = Handle {
            shard: p.next()?.parse().ok()?,
            queue: p.next()?.parse().ok()?,
            offset: p.next()?.parse().ok()?,
            pop_time: p.next()?.parse().ok()?,
            attempt: p.next()?.parse().ok()?,
        };
        p.next().is_none().then_some(h)
    }
}

/// `body` and `body_encoding` of a stored body: inflated when the producer
/// compressed it; text when it is UTF-8 (unless `base64` is asked), else
/// base64.
pub(super) fn body_json(body: &[u8], sys_flag: i32, force_base64: bool) -> Value {
    let inflated;
    let mut bytes = body;
    if sys_flag & 0x1 != 0 {
        use std::io::Read;
        let mut out = Vec::new();
        let d = flate2::read::ZlibDecoder::new(body);
        if d.take(MAX_INFLATED).read_to_end(&mut out).is_ok() {
            inflated = out;
            bytes = &inflated;
        }
    }
    match std::str::from_utf8(bytes) {
        Ok(s) if !force_base64 => json!({"body": s, "body_encoding": "text"}),
        _ => json!({"body": base64::engine::general_purpose::STANDARD.encode(bytes), "body_encoding": "base64"}),
    }
}

pub(super) fn message_json(
    v: &crate::store::record::RecordView<'_>,
    topic: &str,
    store_host: std::net::SocketAddr,
    force_base64: bool,
) -> Value {
    let props = Properties::parse_bytes(v.properties);
    let id = props.get(keys::UNIQ_KEY).map(str::to_string).unwrap_or_else(|| {
        OffsetMessageId {
            ip: store_host.ip(),
            port: store_host.port(),
            commit_log_offset: v.physical_offset as i64,
        }
        .encode()
    });
    let attributes: Map<String, Value> = props
        .iter()
        .filter(|(k, _)| !crate::broker::grpc::convert::SYSTEM_KEYS.contains(k))
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect();
    let mut m = body_json(v.body, v.sys_flag, force_base64);
    let extra = json!({
        "message_id": id, "topic": topic, "queue_id": v.queue_id, "queue_offset": v.queue_offset,
        "tags": props.get(keys::TAGS).unwrap_or(""),
        "keys": props.get(keys::KEYS).unwrap_or("").split(' ').filter(|k| !k.is_empty()).collect::<Vec<_>>(),
        "attributes": attributes, "born_time_ms": v.born_timestamp, "store_time_ms": v.store_timestamp,
        "reconsume_times": v.reconsume_times,
    });
    if let (Some(m), Some(e)) = (m.as_object_mut(), extra.as_object()) {
        m.extend(e.clone());
    }
    m
}

fn query_num<T: std::str::FromStr + PartialOrd + Copy + std::fmt::Display>(
    req: &crate::http::Req,
    key: &str,
    default: T,
    min: T,
    max: T,
) -> Result<T, ApiError> {
    match req.query(key) {
        None => Ok(default),
        Some(s) => s
            .parse::<T>()
            .ok()
            .filter(|n| *n >= min && *n <= max)
            .ok_or_else(|| ApiError::bad_request(format!("{key} must be a number from {min} to {max}"))),
    }
}

fn query_bool(req: &crate::http::Req, key: &str) -> Result<bool, ApiError> {
    match req.query(key).as_deref() {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") | Some("") => Ok(true),
        Some(_) => Err(ApiError::bad_request(format!("{key} must be true or false"))),
    }
}

/// Pops on shard `k` (here or through the mesh).
async fn pop_on(rest: &Rest, k: u16, req: &PopRequest) -> Result<PopBatch, Refusal> {
    if k == rest.shard.id {
        return engine::pop(&rest.shard, req).await;
    }
    match rest.shard.ask(k, Request::Pop { req: req.clone() }).await {
        Some(Reply::Popped(r)) => r,
        Some(_) => Err((response::SYSTEM_ERROR, crate::broker::mesh::unexpected("Pop"))),
        None => Err((response::SYSTEM_ERROR, format!("shard {k} did not answer"))),
    }
}

/// Waits until any of `owners` may have something for `topic`, at most
/// `left`.
async fn wait_any(rest: &Rest, owners: &[u16], client: &ClientRef, topic: &str, left: Duration) {
    let mut waits: Vec<LocalBoxFuture<'_, ()>> = Vec::with_capacity(owners.len() + 1);
    for &k in owners {
        let (client, topic) = (client.clone(), topic.to_string());
        if k == rest.shard.id {
            waits.push(
                async move {
                    let _ = crate::broker::dispatch::pop_wait(&rest.shard, client, topic, left).await;
                }
                .boxed_local(),
            );
        } else {
            let wait_ms = left.as_millis() as u64;
            waits.push(
                async move {
                    let _ = rest.shard.ask(k, Request::PopWait { client, topic, wait_ms }).await;
                }
                .boxed_local(),
            );
        }
    }
    waits.push(glommio::timer::sleep(left).boxed_local());
    let _ = select_all(waits).await;
}

pub(super) async fn receive(rest: &Rest, req: &crate::http::Req, topic: &str, group: &str) -> ApiResult {
    validate_group(group).map_err(ApiError::bad_request)?;
    let max = query_num(req, "max", DEFAULT_MAX, 1, engine::MAX_POP)?;
    let wait = query_num(req, "wait", 0u64, 0, MAX_WAIT_MS)?;
    let invisible = query_num(
        req,
        "invisible",
        DEFAULT_INVISIBLE_MS,
        MIN_INVISIBLE_MS,
        MAX_INVISIBLE_MS,
    )?;
    let auto_ack = query_bool(req, "auto_ack")?;
    let force_base64 = match req.query("encoding").as_deref() {
        None | Some("auto") => false,
        Some("base64") => true,
        Some(e) => return Err(ApiError::bad_request(format!("encoding {e:?} is not auto or base64"))),
    };
    let filter = match req.query("tags") {
        None => crate::store::TagFilter::All,
        Some(t) => crate::broker::metadata::tag_filter(&t),
    };
    let broadcast = match req.query("mode").as_deref() {
        None | Some("cluster") => false,
        Some("broadcast") => true,
        Some(m) => return Err(ApiError::bad_request(format!("mode {m:?} is not cluster or broadcast"))),
    };
    let from = req.query("from");
    let pop_group = if broadcast {
        let Some(id) = req.query("consumer_id").filter(|c| !c.is_empty()) else {
            return Err(ApiError::bad_request("mode=broadcast needs a consumer_id"));
        };
        let g = format!("{group}-BC-{id}");
        validate_group(&g).map_err(|e| ApiError::bad_request(format!("consumer_id: {e}")))?;
        g
    } else {
        group.to_string()
    };
    let client = rest.allowed(req, &Needs::none().topic(topic, Need::Sub).group(group))?;
    let Some(info) = rest.shard.topic(topic) else {
        return Err(ApiError::topic_not_found(topic));
    };
    match from.as_deref() {
        None | Some("stored") => {}
        Some("earliest") => {
            crate::broker::admin::reset_all(&rest.shard, &pop_group, topic, 0, None, true).await?;
        }
        Some("latest") => {
            crate::broker::admin::reset_all(&rest.shard, &pop_group, topic, -1, None, true).await?;
        }
        Some(f) => {
            return Err(ApiError::bad_request(format!(
                "from {f:?} is not stored, earliest or latest"
            )))
        }
    }
    let orderly = crate::broker::admin::group_info(&rest.shard, group).await.orderly;
    let owners: Vec<u16> = (0..rest.shard.shard_count())
        .filter(|s| info.owned_by(*s).next().is_some())
        .collect();
    if owners.is_empty() {
        return Ok((StatusCode::OK, json!({"messages": []})));
    }
    let deadline = Instant::now() + Duration::from_millis(wait);
    let store_host = rest.shard.store.config().store_host;
    let mut out = Vec::new();
    let mut settle = Vec::new();
    loop {
        let first = rest.next_turn();
        for i in 0..owners.len() {
            if out.len() >= max {
                break;
            }
            let k = owners[(first + i) % owners.len()];
            let pop = PopRequest {
                group: pop_group.clone(),
                topic: topic.to_string(),
                queue: None,
                max: max - out.len(),
                invisible_ms: invisible,
                filter: filter.clone(),
                init_max: false,
                order: orderly,
                attempt_id: String::new(),
            };
            let batch = pop_on(rest, k, &pop).await.map_err(ApiError::from)?;
            for m in &batch.msgs {
                let RecordCheck::Record(v) = check_record(&m.record, None, false) else {
                    continue;
                };
                let h = Handle {
                    shard: k,
                    queue: m.queue,
                    offset: m.offset,
                    pop_time: batch.pop_time,
                    attempt: m.reconsume_times,
                };
                let mut j = message_json(&v, topic, store_host, force_base64);
                j["handle"] = Value::String(h.encode());
                j["invisible_until_ms"] = json!(batch.pop_time + batch.invisible_ms);
                out.push(j);
                settle.push(h);
            }
        }
        if !out.is_empty() {
            break;
        }
        let Some(left) = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) else {
            break;
        };
        wait_any(rest, &owners, &client, topic, left).await;
    }
    if auto_ack {
        // At most once: an ack that fails leaves the message to come back.
        let items: Vec<Value> = settle.iter().map(|h| json!({"handle": h.encode()})).collect();
        settle_all(rest, &pop_group, topic, &items).await;
    }
    Ok((StatusCode::OK, json!({ "messages": out })))
}

/// What to do with one handle: acknowledge it, or make it visible again
/// after some seconds.
enum Settle {
    Ack(Handle),
    Later(Handle, i64),
}

fn stale() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "stale_handle",
        response::NO_MESSAGE,
        "the handle is stale: the message was delivered again, or already settled",
    )
}

/// One ack item checked: its handle and what to do, or why not.
fn parse_settle(rest: &Rest, item: &Value) -> Result<Settle, ApiError> {
    let handle = item.get("handle").and_then(Value::as_str).unwrap_or("");
    let invalid = |why: &str| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_handle",
            response::INVALID_PARAMETER,
            why,
        )
    };
    let h = Handle::decode(handle).ok_or_else(|| invalid("not a handle of this broker"))?;
    if h.shard >= rest.shard.shard_count() {
        return Err(invalid("the handle names no shard of this broker"));
    }
    match item.get("status").and_then(Value::as_str).unwrap_or("success") {
        "success" => Ok(Settle::Ack(h)),
        "fail" => Ok(Settle::Later(
            h,
            FAIL_BACKOFF_S[(h.attempt.max(0) as usize).min(FAIL_BACKOFF_S.len() - 1)],
        )),
        "redeliver" => match item.get("delay_seconds") {
            None | Some(Value::Null) => Ok(Settle::Later(h, DEFAULT_REDELIVER_S)),
            Some(d) => match d.as_i64() {
                Some(s) if (0..=MAX_INVISIBLE_MS / 1000).contains(&s) => Ok(Settle::Later(h, s)),
                _ => Err(ApiError::bad_json(format!(
                    "delay_seconds must be an integer from 0 to {}",
                    MAX_INVISIBLE_MS / 1000
                ))),
            },
        },
        _ => Err(ApiError::bad_json("status must be success, fail or redeliver")),
    }
}

/// A queue: (shard, queue id).
type QueueKey = (u16, u32);
/// An ack of a queue: (item position, queue offset, pop time of the handle).
type AckItem = (usize, u64, i64);

/// Settles `items`: the acks of one queue in one ack (one op record, one
/// flush wait), queues and invisible-time changes concurrently. A result
/// per item, in order.
async fn settle_all(rest: &Rest, group: &str, topic: &str, items: &[Value]) -> Vec<Value> {
    let parsed: Vec<Result<Settle, ApiError>> = items.iter().map(|i| parse_settle(rest, i)).collect();
    let mut outcome: Vec<Option<ApiError>> = parsed.iter().map(|p| p.as_ref().err().cloned()).collect();
    let mut acks: Vec<(QueueKey, Vec<AckItem>)> = Vec::new();
    let mut later = Vec::new();
    for (i, p) in parsed.iter().enumerate() {
        match p {
            Ok(Settle::Ack(h)) => {
                let key = (h.shard, h.queue);
                match acks.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, v)) => v.push((i, h.offset, h.pop_time)),
                    None => acks.push((key, vec![(i, h.offset, h.pop_time)])),
                }
            }
            Ok(Settle::Later(h, s)) => later.push((i, *h, *s)),
            Err(_) => {}
        }
    }
    let ack_calls = acks.into_iter().map(|((shard, queue), v)| async move {
        let pairs: Vec<(u64, i64)> = v.iter().map(|(_, o, t)| (*o, *t)).collect();
        let r = ack_on(&rest.shard, shard, group.to_string(), topic.to_string(), queue, pairs).await;
        v.into_iter()
            .enumerate()
            .map(|(k, (i, ..))| {
                let e = match &r {
                    Ok(out) if out.get(k) == Some(&Outcome::Done) => None,
                    Ok(_) => Some(stale()),
                    Err(e) => Some(ApiError::from(e.clone())),
                };
                (i, e)
            })
            .collect::<Vec<_>>()
    });
    let change_calls = later.into_iter().map(|(i, h, s)| async move {
        let changed = change_on(
            &rest.shard,
            h.shard,
            group.to_string(),
            topic.to_string(),
            h.queue,
            h.offset,
            h.pop_time,
            s * 1000,
        )
        .await;
        let e = match changed.map(|(o, _)| o) {
            Ok(Outcome::Done) => None,
            Ok(_) => Some(stale()),
            Err(r) => Some(ApiError::from(r)),
        };
        vec![(i, e)]
    });
    let (a, c) = futures::future::join(
        futures::future::join_all(ack_calls),
        futures::future::join_all(change_calls),
    )
    .await;
    for (i, e) in a.into_iter().chain(c).flatten() {
        outcome[i] = e;
    }
    items
        .iter()
        .zip(outcome)
        .map(|(item, e)| {
            let handle = item.get("handle").and_then(Value::as_str).unwrap_or("");
            let status = item.get("status").and_then(Value::as_str).unwrap_or("success");
            match e {
                None => json!({"handle": handle, "result": "ok", "status": status}),
                Some(e) => json!({"handle": handle, "result": e.code, "status": status, "message": e.message}),
            }
        })
        .collect()
}

/// Most handles one ack request settles.
const MAX_ACKS: usize = 256;

pub(super) async fn ack(rest: &Rest, req: &crate::http::Req, topic: &str, group: &str) -> ApiResult {
    validate_group(group).map_err(ApiError::bad_request)?;
    let v = json_body(req)?;
    let items: Vec<Value> = match v.get("acks") {
        Some(Value::Array(a)) => a.clone(),
        Some(_) => return Err(ApiError::bad_json("acks must be an array")),
        None if v.get("handle").is_some() => vec![v.clone()],
        None => return Err(ApiError::bad_json("acks (an array of {handle, status}) is required")),
    };
    if items.is_empty() {
        return Err(ApiError::bad_json("acks is empty"));
    }
    if items.len() > MAX_ACKS {
        return Err(ApiError::bad_json(format!(
            "{} acks in one request: at most {MAX_ACKS}",
            items.len()
        )));
    }
    if items
        .iter()
        .any(|i| !i.is_object() || !i.get("handle").is_some_and(Value::is_string))
    {
        return Err(ApiError::bad_json("every ack is an object with a handle (string)"));
    }
    let pop_group = match req.query("consumer_id").filter(|c| !c.is_empty()) {
        Some(id) => {
            let g = format!("{group}-BC-{id}");
            validate_group(&g).map_err(|e| ApiError::bad_request(format!("consumer_id: {e}")))?;
            g
        }
        None => group.to_string(),
    };
    rest.allowed(req, &Needs::none().topic(topic, Need::Sub).group(group))?;
    if rest.shard.topic(topic).is_none() {
        return Err(ApiError::topic_not_found(topic));
    }
    let results = settle_all(rest, &pop_group, topic, &items).await;
    Ok((StatusCode::OK, json!({ "results": results })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_round_trip_and_reject_garbage() {
        let h = Handle {
            shard: 1,
            queue: 7,
            offset: 42,
            pop_time: 1_700_000_000_123,
            attempt: 3,
        };
        assert_eq!(Handle::decode(&h.encode()), Some(h));
        for bad in [
            "",
            "r1.",
            "r1.1.2.3.4",
            "r1.1.2.3.4.5.6",
            "smq1.1.2.3.4.5",
            "r1.x.2.3.4.5",
        ] {
            assert_eq!(Handle::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn bodies_are_text_when_utf8_and_inflated_when_compressed() {
        assert_eq!(body_json(b"hi", 0, false)["body_encoding"], "text");
        assert_eq!(body_json(&[0xff, 0xfe], 0, false)["body"], "//4=");
        assert_eq!(body_json(b"hi", 0, true)["body"], "aGk=");
        use std::io::Write;
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(b"squeezed").expect("write");
        let packed = z.finish().expect("finish");
        assert_eq!(body_json(&packed, 0x1, false)["body"], "squeezed");
    }
}
