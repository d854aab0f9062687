//! `dlq list|resend`: a consumer group's dead letters (`%DLQ%<group>`), and
//! sending chosen ones back to the topic they came from, as the DMS console
//! and the RocketMQ dashboard do.
//!
//! The tool reads the DLQ like a client: the route from the name server,
//! then PULL_MESSAGE on every queue of every broker entry from its min
//! offset (with the subscription in the request, so no group has to be
//! registered). A resend is an ordinary SEND_MESSAGE_V2 to the original
//! topic (`RETRY_TOPIC`) with the same body, flag and user properties — the
//! client's message id (`UNIQ_KEY`) included, so consumers see the same
//! id — and reconsumeTimes 0; the dead letter itself stays in the DLQ
//! until its retention.

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::protocol::bodies::{JsonBody, TopicRouteData};
use crate::protocol::codes::{request, response};
use crate::protocol::properties::{keys, Properties};
use crate::protocol::RemotingCommand;
use crate::store::record::{check_record, RecordCheck};

use super::client::req;
use super::output::{print_json, table};
use super::time::{format_ms, parse_time};
use super::Ctx;

#[derive(Subcommand, Debug)]
pub enum DlqCommand {
    /// The group's dead letters, oldest first.
    List(ListArgs),
    /// Sends chosen dead letters back to their original topic.
    Resend(ResendArgs),
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[arg(long)]
    pub group: String,
    /// At most this many messages.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
}

#[derive(Args, Debug)]
pub struct ResendArgs {
    #[arg(long)]
    pub group: String,
    /// Message ids (UNIQ_KEY, as clients show them) to resend; repeatable.
    #[arg(long = "id")]
    pub ids: Vec<String>,
    /// Messages with this key (KEYS).
    #[arg(long)]
    pub key: Option<String>,
    /// Messages dead-lettered at or after this time (ms, or
    /// `yyyy-MM-dd#HH:mm:ss:SSS`, or `now`).
    #[arg(long)]
    pub since: Option<String>,
    /// ... and at or before this time.
    #[arg(long)]
    pub until: Option<String>,
    /// Every dead letter of the group.
    #[arg(long)]
    pub all: bool,
    /// Show what would be resent, send nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// One dead letter as read from the DLQ.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub queue: String,
    pub offset: u64,
    pub store_ms: i64,
    pub reconsume_times: i32,
    pub flag: i32,
    pub sys_flag: i32,
    pub born_ms: i64,
    pub body: Vec<u8>,
    pub props: Properties,
}

impl DeadLetter {
    /// The dead letter a stored record of queue `queue` is.
    pub fn from_record(queue: String, v: &crate::store::record::RecordView<'_>) -> DeadLetter {
        DeadLetter {
            queue,
            offset: v.queue_offset,
            store_ms: v.store_timestamp,
            reconsume_times: v.reconsume_times,
            flag: v.flag,
            sys_flag: v.sys_flag,
            born_ms: v.born_timestamp,
            body: v.body.to_vec(),
            props: Properties::parse_bytes(v.properties),
        }
    }

    pub fn id(&self) -> &str {
        self.props.get(keys::UNIQ_KEY).unwrap_or("")
    }

    pub fn origin(&self) -> &str {
        self.props.get(keys::RETRY_TOPIC).unwrap_or("")
    }

    pub fn keys(&self) -> &str {
        self.props.get(keys::KEYS).unwrap_or("")
    }

    fn to_json(&self) -> Value {
        json!({
            "msgId": self.id(), "originTopic": self.origin(), "keys": self.keys(),
            "tags": self.props.get(keys::TAGS).unwrap_or(""),
            "reconsumeTimes": self.reconsume_times, "storeTimestamp": self.store_ms,
            "queue": self.queue, "queueOffset": self.offset,
            "bodyPreview": preview(&self.body),
        })
    }
}

fn preview(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(60)]);
    let mut s: String = text.chars().map(|c| if c.is_control() { '.' } else { c }).collect();
    if body.len() > 60 {
        s.push('…');
    }
    s
}

pub fn run(ctx: &Ctx, cmd: DlqCommand) -> Result<(), String> {
    match cmd {
        DlqCommand::List(a) => list(ctx, a),
        DlqCommand::Resend(a) => resend(ctx, a),
    }
}

fn dlq_topic(group: &str) -> Result<String, String> {
    crate::broker::metadata::validate_group(group)?;
    Ok(format!("{}{group}", crate::broker::metadata::DLQ_GROUP_TOPIC_PREFIX))
}

/// Reads up to `limit` dead letters of the group, oldest offset first per
/// queue. A group that never dead-lettered anything has no DLQ route.
pub fn read_dlq(ctx: &Ctx, group: &str, limit: usize) -> Result<Vec<DeadLetter>, String> {
    let topic = dlq_topic(group)?;
    let r = ctx
        .connect(&ctx.namesrv)?
        .call(req(request::GET_ROUTEINFO_BY_TOPIC, &[("topic", topic.clone())]))?;
    if r.code == response::TOPIC_NOT_EXIST {
        return Ok(Vec::new());
    }
    if r.code != response::SUCCESS {
        return Err(format!(
            "name server {}: route of {topic}: {}",
            ctx.namesrv,
            r.remark.unwrap_or_default()
        ));
    }
    let route = TopicRouteData::decode(&r.body).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for q in &route.queue_datas {
        let Some(addr) = route
            .broker_datas
            .iter()
            .find(|b| b.broker_name == q.broker_name)
            .and_then(|b| b.broker_addrs.get(&0))
        else {
            continue;
        };
        let mut c = ctx.connect(addr)?;
        for qid in 0..q.read_queue_nums.max(0) as u32 {
            let min = offset_of(&mut c, request::GET_MIN_OFFSET, &topic, qid)?;
            let mut off = min;
            while out.len() < limit {
                let r = c.call(pull(&topic, qid, off))?;
                match r.code {
                    response::SUCCESS => {}
                    response::PULL_RETRY_IMMEDIATELY | response::PULL_OFFSET_MOVED => {
                        off = next_offset(&r)?;
                        continue;
                    }
                    _ => break,
                }
                let mut at = 0;
                while at < r.body.len() && out.len() < limit {
                    let RecordCheck::Record(v) = check_record(&r.body[at..], None, true) else {
                        return Err(format!(
                            "{addr}: an undecodable record in {topic}/{qid} at offset {off}"
                        ));
                    };
                    out.push(DeadLetter::from_record(format!("{}/{qid}", q.broker_name), &v));
                    at += v.total_size as usize;
                }
                off = next_offset(&r)?;
            }
        }
    }
    Ok(out)
}

pub fn pull(topic: &str, qid: u32, offset: u64) -> RemotingCommand {
    req(
        request::PULL_MESSAGE,
        &[
            ("consumerGroup", "TOOLS_CONSUMER".into()),
            ("topic", topic.into()),
            ("queueId", qid.to_string()),
            ("queueOffset", offset.to_string()),
            ("maxMsgNums", "32".into()),
            ("sysFlag", "4".into()),
            ("commitOffset", "0".into()),
            ("suspendTimeoutMillis", "0".into()),
            ("subscription", "*".into()),
            ("subVersion", "0".into()),
        ],
    )
}

fn next_offset(r: &RemotingCommand) -> Result<u64, String> {
    r.ext_str("nextBeginOffset")
        .and_then(|o| o.parse().ok())
        .ok_or_else(|| "a pull answer without nextBeginOffset".to_string())
}

fn offset_of(c: &mut super::client::Client, code: i32, topic: &str, qid: u32) -> Result<u64, String> {
    let r = c.call(req(code, &[("topic", topic.into()), ("queueId", qid.to_string())]))?;
    if r.code != response::SUCCESS {
        return Err(format!("offset of {topic}/{qid}: {}", r.remark.unwrap_or_default()));
    }
    r.ext_str("offset")
        .and_then(|o| o.parse().ok())
        .ok_or_else(|| "an offset answer without offset".to_string())
}

fn list(ctx: &Ctx, a: ListArgs) -> Result<(), String> {
    let dead = read_dlq(ctx, &a.group, a.limit)?;
    if ctx.json {
        print_json(&Value::Array(dead.iter().map(DeadLetter::to_json).collect()));
        return Ok(());
    }
    if dead.is_empty() {
        println!("no dead letters for group {}", a.group);
        return Ok(());
    }
    let mut t = table(&["msg id", "origin topic", "keys", "dead since", "consumed", "body"], 4);
    for d in &dead {
        t.add_row(vec![
            d.id().to_string(),
            d.origin().to_string(),
            d.keys().to_string(),
            format_ms(d.store_ms),
            d.reconsume_times.to_string(),
            preview(&d.body),
        ]);
    }
    println!("{t}");
    Ok(())
}

fn resend(ctx: &Ctx, a: ResendArgs) -> Result<(), String> {
    if !a.all && a.ids.is_empty() && a.key.is_none() && a.since.is_none() && a.until.is_none() {
        return Err("choose what to resend: --id, --key, --since/--until or --all".into());
    }
    let since = a.since.as_deref().map(parse_time).transpose()?;
    let until = a.until.as_deref().map(parse_time).transpose()?;
    let dead = read_dlq(ctx, &a.group, usize::MAX)?;
    let chosen: Vec<&DeadLetter> = dead
        .iter()
        .filter(|d| a.all || a.ids.is_empty() || a.ids.iter().any(|i| i == d.id()))
        .filter(|d| a.key.as_deref().is_none_or(|k| d.keys().split(' ').any(|w| w == k)))
        .filter(|d| since.is_none_or(|s| d.store_ms >= s) && until.is_none_or(|u| d.store_ms <= u))
        .collect();
    let mut sent = Vec::new();
    for d in &chosen {
        if d.origin().is_empty() {
            return Err(format!(
                "dead letter {} has no RETRY_TOPIC: its origin is unknown",
                d.id()
            ));
        }
        if !a.dry_run {
            let addr = ctx.broker_addr()?;
            let mut c = ctx.connect(&addr)?;
            let r = c.call(resend_request(d))?;
            if r.code != response::SUCCESS {
                return Err(format!(
                    "resend of {} to {} failed after {} sent: {}",
                    d.id(),
                    d.origin(),
                    sent.len(),
                    r.remark.unwrap_or_default()
                ));
            }
        }
        sent.push(json!({"msgId": d.id(), "topic": d.origin(), "keys": d.keys()}));
    }
    if ctx.json {
        print_json(&json!({"dryRun": a.dry_run, "resent": sent}));
    } else {
        let verb = if a.dry_run { "would resend" } else { "resent" };
        println!(
            "{verb} {} of {} dead letter(s) of group {}",
            sent.len(),
            dead.len(),
            a.group
        );
        for s in &sent {
            println!(
                "  {} -> {}",
                s["msgId"].as_str().unwrap_or(""),
                s["topic"].as_str().unwrap_or("")
            );
        }
    }
    Ok(())
}

/// SEND_MESSAGE_V2 of a dead letter to its original topic: the broker
/// picks the queue; retry bookkeeping, delays and broker-set properties
/// are dropped.
pub fn resend_request(d: &DeadLetter) -> RemotingCommand {
    let mut p = d.props.clone();
    for k in [
        keys::RETRY_TOPIC,
        keys::DELAY,
        keys::REAL_TOPIC,
        keys::REAL_QUEUE_ID,
        keys::CLUSTER,
        keys::TIMER_DELIVER_MS,
        keys::TIMER_DELAY_SEC,
        keys::TIMER_DELAY_MS,
        keys::TIMER_OUT_MS,
        keys::TRANSACTION_PREPARED,
        crate::store::MARK_PROPERTY,
    ] {
        p.remove(k);
    }
    let sys_flag = d.sys_flag & !(0xC | 0x10 | 0x20);
    let mut r = req(
        request::SEND_MESSAGE_V2,
        &[
            ("a", "TOOLS_DLQ_RESEND".into()),
            ("b", d.origin().into()),
            ("c", "TBW102".into()),
            ("d", "4".into()),
            ("e", "-1".into()),
            ("f", sys_flag.to_string()),
            ("g", d.born_ms.to_string()),
            ("h", d.flag.to_string()),
            ("i", p.encode()),
            ("j", "0".into()),
        ],
    );
    r.body = bytes::Bytes::from(d.body.clone());
    r
}
