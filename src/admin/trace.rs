//! `message trace ID|KEY`: what happened to a message, from the trace
//! records clients with message trace on (Java `enableMsgTrace`) write to
//! `RMQ_SYS_TRACE_TOPIC` (or `--trace-topic`), plus what the broker knows
//! itself: where the message is stored and which groups committed past it.
//!
//! Trace records are messages keyed by the traced message's id and keys,
//! so the broker's key index finds them (QUERY_MESSAGE). Their body is
//! RocketMQ's trace format: records separated by `\x02`, fields by
//! `\x01`, the first field naming the kind:
//!
//! ```text
//! Pub            time region group topic msgId tags keys storeHost bodyLength costMs msgType offsetMsgId success [clientHost]
//! SubBefore      time region group requestId msgId retryTimes keys
//! SubAfter       requestId msgId costMs success keys [contextCode [time]]
//! EndTransaction time region group topic msgId tags keys storeHost msgType transactionId state fromCheck
//! ```
//!
//! and the broker's own (`traceBrokerEvents=true`, see `broker::trace`):
//! `BrokerStored`, `BrokerDelivered`, `BrokerSendBack`,
//! `BrokerEndTransaction`.

use clap::Args;
use serde_json::{json, Value};

use super::message::{by_id, query_in, Found};
use super::output::print_json;
use super::time::format_ms;
use super::Ctx;

#[derive(Args, Debug)]
pub struct TraceArgs {
    /// A message id (UNIQ_KEY) or a business key.
    pub id: String,
    /// The topic the clients write their trace records to.
    #[arg(long, default_value = "RMQ_SYS_TRACE_TOPIC")]
    pub trace_topic: String,
}

/// One trace record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TraceEvent {
    pub kind: String,
    /// ms; for a SubAfter without one, the trace message's store time.
    pub time: i64,
    pub group: String,
    pub topic: String,
    pub msg_id: String,
    pub keys: String,
    pub tags: String,
    pub store_host: String,
    pub cost_ms: Option<i64>,
    pub success: Option<bool>,
    pub retry_times: Option<i64>,
    pub request_id: String,
    pub offset_msg_id: String,
    pub client_host: String,
    pub transaction_state: String,
    /// Broker records: the queue and offset, the retry or DLQ topic.
    pub queue: Option<i64>,
    pub queue_offset: Option<i64>,
    pub target: String,
}

impl TraceEvent {
    fn to_json(&self) -> Value {
        json!({
            "type": self.kind, "time": self.time, "group": self.group, "topic": self.topic,
            "msgId": self.msg_id, "keys": self.keys, "tags": self.tags, "storeHost": self.store_host,
            "costMs": self.cost_ms, "success": self.success, "retryTimes": self.retry_times,
            "requestId": self.request_id, "offsetMsgId": self.offset_msg_id,
            "clientHost": self.client_host, "transactionState": self.transaction_state,
            "queueId": self.queue, "queueOffset": self.queue_offset, "target": self.target,
        })
    }
}

/// Decodes the trace records of one trace message body (RocketMQ's
/// format, see the module docs). Unknown kinds and short records are
/// skipped; `stored_ms` dates records that carry no time.
pub fn decode_trace(body: &str, stored_ms: i64) -> Vec<TraceEvent> {
    let mut out = Vec::new();
    for rec in body.split('\u{2}').filter(|r| !r.is_empty()) {
        let f: Vec<&str> = rec.split('\u{1}').collect();
        let at = |i: usize| f.get(i).copied().unwrap_or("").to_owned();
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<i64>().ok());
        let flag = |i: usize| f.get(i).and_then(|v| v.parse::<bool>().ok());
        // Pub and EndTransaction begin alike: kind time region group topic
        // msgId tags keys storeHost.
        let producer = || TraceEvent {
            kind: f[0].into(),
            time: num(1).unwrap_or(stored_ms),
            group: at(3),
            topic: at(4),
            msg_id: at(5),
            tags: at(6),
            keys: at(7),
            store_host: at(8),
            ..Default::default()
        };
        // The broker's records begin alike: kind time broker group topic msgId.
        let broker = || TraceEvent {
            kind: f[0].into(),
            time: num(1).unwrap_or(stored_ms),
            store_host: at(2),
            group: at(3),
            topic: at(4),
            msg_id: at(5),
            ..Default::default()
        };
        let e = match f[0] {
            "Pub" if f.len() >= 13 => TraceEvent {
                cost_ms: num(10),
                // 13 fields: success last; 14+: offsetMsgId, success.
                success: if f.len() == 13 { flag(12) } else { flag(13) },
                offset_msg_id: if f.len() >= 14 { at(12) } else { String::new() },
                client_host: at(14),
                ..producer()
            },
            "SubBefore" if f.len() >= 8 => TraceEvent {
                kind: "SubBefore".into(),
                time: num(1).unwrap_or(stored_ms),
                group: at(3),
                request_id: at(4),
                msg_id: at(5),
                retry_times: num(6),
                keys: at(7),
                ..Default::default()
            },
            "SubAfter" if f.len() >= 6 => TraceEvent {
                kind: "SubAfter".into(),
                request_id: at(1),
                msg_id: at(2),
                cost_ms: num(3),
                success: flag(4),
                keys: at(5),
                time: num(7).filter(|t| *t > 0).unwrap_or(stored_ms),
                ..Default::default()
            },
            "EndTransaction" if f.len() >= 13 => TraceEvent {
                transaction_state: at(11),
                ..producer()
            },
            "BrokerStored" | "BrokerDelivered" if f.len() >= 9 => TraceEvent {
                queue: num(6),
                queue_offset: num(7),
                client_host: at(8),
                retry_times: num(9),
                ..broker()
            },
            "BrokerEndTransaction" if f.len() >= 7 => TraceEvent {
                transaction_state: at(6),
                ..broker()
            },
            "BrokerSendBack" if f.len() >= 8 => TraceEvent {
                target: at(6),
                retry_times: num(7),
                ..broker()
            },
            _ => continue,
        };
        out.push(e);
    }
    out
}

pub fn run(ctx: &Ctx, a: TraceArgs) -> Result<(), String> {
    // No trace topic yet: nothing was traced.
    let records = query_in(ctx, &a.trace_topic, &a.id, (0, i64::MAX), 64, false)?.unwrap_or_default();
    let mut events: Vec<TraceEvent> = records
        .iter()
        .flat_map(|r| decode_trace(&String::from_utf8_lossy(&r.body), r.store_ms))
        .filter(|e| e.msg_id == a.id || e.keys.split(' ').any(|k| k == a.id))
        .collect();
    // A SubAfter names no group: it is the one of the SubBefore with its
    // request id.
    let groups: Vec<(String, String)> = events
        .iter()
        .filter(|e| e.kind == "SubBefore")
        .map(|e| (e.request_id.clone(), e.group.clone()))
        .collect();
    for e in events.iter_mut().filter(|e| e.kind == "SubAfter") {
        if let Some((_, g)) = groups.iter().find(|(r, _)| *r == e.request_id) {
            e.group = g.clone();
        }
    }
    events.sort_by_key(|e| (e.msg_id.clone(), e.time));
    let mut ids: Vec<String> = events.iter().map(|e| e.msg_id.clone()).collect();
    ids.dedup();
    if ids.is_empty() {
        if ctx.json {
            print_json(&json!([]));
        } else {
            println!("no trace of {} in {}", a.id, a.trace_topic);
        }
        return Ok(());
    }
    let mut out = Vec::new();
    for id in ids {
        let mine: Vec<&TraceEvent> = events.iter().filter(|e| e.msg_id == id).collect();
        let topic = mine.iter().find(|e| !e.topic.is_empty()).map(|e| e.topic.clone());
        let stored: Vec<Found> = match &topic {
            Some(t) => by_id(ctx, &id, Some(t)).unwrap_or_default(),
            None => Vec::new(),
        };
        if !ctx.json {
            println!(
                "message {id}{}",
                topic.as_deref().map(|t| format!(" of {t}")).unwrap_or_default()
            );
            for e in &mine {
                println!("  {}  {}", format_ms(e.time), describe(e));
            }
            for m in &stored {
                println!(
                    "  {}  Stored  {}/{} offset {} on {} ({} bytes, reconsumed {} times)",
                    format_ms(m.store_ms),
                    m.topic,
                    m.queue_id,
                    m.queue_offset,
                    m.store_host,
                    m.body.len(),
                    m.reconsume_times
                );
            }
            println!();
        }
        out.push(json!({
            "msgId": id,
            "topic": topic,
            "events": mine.iter().map(|e| e.to_json()).collect::<Vec<_>>(),
            "stored": stored.iter().map(|m| json!({
                "topic": m.topic, "queueId": m.queue_id, "queueOffset": m.queue_offset,
                "storeTimestamp": m.store_ms, "storeHost": m.store_host, "offsetMsgId": m.offset_id,
            })).collect::<Vec<_>>(),
        }));
    }
    if ctx.json {
        print_json(&Value::Array(out));
    }
    Ok(())
}

fn describe(e: &TraceEvent) -> String {
    let ok = |s: Option<bool>| match s {
        Some(true) => "ok",
        Some(false) => "FAILED",
        None => "?",
    };
    let cost = e.cost_ms.map_or(String::new(), |c| format!(" in {c} ms"));
    match e.kind.as_str() {
        "Pub" => format!(
            "Sent     by producer group {} to {} on {} — {}{cost}",
            e.group,
            e.topic,
            e.store_host,
            ok(e.success)
        ),
        "SubBefore" => format!(
            "Delivered to consumer group {} (attempt {})",
            e.group,
            e.retry_times.unwrap_or(0) + 1
        ),
        "SubAfter" => format!("Consumed by group {} — {}{cost}", e.group, ok(e.success)),
        "BrokerStored" => format!(
            "Stored   by broker {} in {}/{} offset {} (from {}, producer group {})",
            e.store_host,
            e.topic,
            e.queue.unwrap_or(-1),
            e.queue_offset.unwrap_or(-1),
            e.client_host,
            e.group
        ),
        "BrokerDelivered" => format!(
            "Pulled   by {} of group {} from {}/{} (reconsumed {} times)",
            e.client_host,
            e.group,
            e.topic,
            e.queue.unwrap_or(-1),
            e.retry_times.unwrap_or(0)
        ),
        "BrokerSendBack" => format!(
            "Sent back by group {} to {} (consumption {} failed)",
            e.group,
            e.target,
            e.retry_times.unwrap_or(0)
        ),
        "BrokerEndTransaction" => format!(
            "Transaction {} at broker {} (producer group {})",
            e.transaction_state, e.store_host, e.group
        ),
        "EndTransaction" => format!("Transaction {} by producer group {}", e.transaction_state, e.group),
        other => other.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rocketmq_trace_records_decode() {
        let body = "Pub\u{1}1700000000000\u{1}DefaultRegion\u{1}PG\u{1}T\u{1}ID1\u{1}tag\u{1}k1\u{1}10.0.0.1:10911\u{1}12\u{1}3\u{1}0\u{1}OFF1\u{1}true\u{2}\
                    SubBefore\u{1}1700000000100\u{1}DefaultRegion\u{1}CG\u{1}R1\u{1}ID1\u{1}0\u{1}k1\u{2}\
                    SubAfter\u{1}R1\u{1}ID1\u{1}5\u{1}true\u{1}k1\u{1}0\u{1}1700000000105\u{2}\
                    Bogus\u{1}x\u{2}Pub\u{1}short\u{2}";
        let e = decode_trace(body, 42);
        assert_eq!(e.len(), 3);
        assert_eq!(
            (e[0].kind.as_str(), e[0].group.as_str(), e[0].topic.as_str()),
            ("Pub", "PG", "T")
        );
        assert_eq!(
            (e[0].offset_msg_id.as_str(), e[0].success, e[0].cost_ms),
            ("OFF1", Some(true), Some(3))
        );
        assert_eq!(
            (e[1].group.as_str(), e[1].retry_times, e[1].time),
            ("CG", Some(0), 1700000000100)
        );
        assert_eq!(
            (e[2].request_id.as_str(), e[2].success, e[2].time),
            ("R1", Some(true), 1700000000105)
        );
        let b = decode_trace(
            "BrokerStored\u{1}5\u{1}brk\u{1}PG\u{1}T\u{1}ID1\u{1}2\u{1}7\u{1}1.2.3.4:5\u{2}\
             BrokerSendBack\u{1}6\u{1}brk\u{1}CG\u{1}T\u{1}ID1\u{1}%RETRY%CG\u{1}1\u{2}\
             BrokerEndTransaction\u{1}7\u{1}brk\u{1}PG\u{1}T\u{1}ID1\u{1}COMMIT",
            0,
        );
        assert_eq!(
            (b[0].queue, b[0].queue_offset, b[0].client_host.as_str()),
            (Some(2), Some(7), "1.2.3.4:5")
        );
        assert_eq!(
            (b[1].target.as_str(), b[1].retry_times, b[1].group.as_str()),
            ("%RETRY%CG", Some(1), "CG")
        );
        assert_eq!((b[2].transaction_state.as_str(), b[2].time), ("COMMIT", 7));
        // An old SubAfter without a time takes the trace message's.
        let old = decode_trace("SubAfter\u{1}R\u{1}ID\u{1}5\u{1}false\u{1}k", 42);
        assert_eq!((old[0].time, old[0].success), (42, Some(false)));
    }
}
