//! `message by-key|by-id|show`: finding stored messages, like mqadmin's
//! `queryMsgByKey` / `queryMsgById` and the dashboard's message page.
//!
//! * by key: QUERY_MESSAGE to every broker entry of the topic's route (or
//!   just `--broker`), as RocketMQ clients do: a main port answers from
//!   every shard's key index, a shard port from its own shard's.
//! * by id: an offset id (32 or 56 hex chars that decode to a store
//!   address and position) is read with VIEW_MESSAGE_BY_ID; any other id
//!   is a client id (`UNIQ_KEY`, what producers print) and needs
//!   `--topic`: QUERY_MESSAGE with `_UNIQUE_KEY_QUERY=true`. A 32-char
//!   client id also decodes as an offset id (RocketMQ's tools try both):
//!   with `--topic` the client id is tried first.
//! * show: one message in full, and for every group that consumes its
//!   topic (QUERY_TOPIC_CONSUME_BY_WHO) whether its committed offset of
//!   the message's queue lies past the message.

use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use crate::protocol::bodies::{GroupList, JsonBody, TopicRouteData};
use crate::protocol::codes::{request, response};
use crate::protocol::message_id::OffsetMessageId;
use crate::protocol::properties::{keys, Properties};
use crate::protocol::RemotingCommand;
use crate::store::record::{check_record, store_host_of, RecordCheck};

use super::client::req;
use super::output::{print_json, table};
use super::time::{format_ms, parse_time};
use super::Ctx;

#[derive(Subcommand, Debug)]
pub enum MessageCommand {
    /// Messages of a topic by business key (a word of KEYS), newest first.
    ByKey(ByKeyArgs),
    /// A message by id: a client id (UNIQ_KEY; needs --topic) or an
    /// offset id.
    ById(ByIdArgs),
    /// One message in full (headers, properties, body) and which consumer
    /// groups consumed it.
    Show(ByIdArgs),
    /// What happened to a message: the trace records clients wrote
    /// (sent, delivered, consumed), where it is stored.
    Trace(super::trace::TraceArgs),
}

#[derive(Args, Debug)]
pub struct ByKeyArgs {
    pub topic: String,
    pub key: String,
    /// Stored at or after (ms, `yyyy-MM-dd#HH:mm:ss:SSS` or `now`).
    #[arg(long)]
    pub begin: Option<String>,
    /// Stored at or before.
    #[arg(long)]
    pub end: Option<String>,
    /// At most this many (the broker answers at most 64).
    #[arg(long, default_value_t = 32)]
    pub max: usize,
}

#[derive(Args, Debug)]
pub struct ByIdArgs {
    pub id: String,
    /// The message's topic (needed for a client id).
    #[arg(long)]
    pub topic: Option<String>,
    /// Bytes of the body shown (`show`; text, control characters as '.').
    #[arg(long, default_value_t = 256)]
    pub body_bytes: usize,
}

pub fn run(ctx: &Ctx, cmd: MessageCommand) -> Result<(), String> {
    match cmd {
        MessageCommand::ByKey(a) => {
            let begin = a.begin.as_deref().map(parse_time).transpose()?.unwrap_or(0);
            let end = a.end.as_deref().map(parse_time).transpose()?.unwrap_or(i64::MAX);
            let found = query(ctx, &a.topic, &a.key, begin, end, a.max, false)?;
            print_list(ctx, &found);
            Ok(())
        }
        MessageCommand::ById(a) => {
            let found = by_id(ctx, &a.id, a.topic.as_deref())?;
            print_list(ctx, &found);
            Ok(())
        }
        MessageCommand::Trace(a) => super::trace::run(ctx, a),
        MessageCommand::Show(a) => {
            let found = by_id(ctx, &a.id, a.topic.as_deref())?;
            let mut all = Vec::new();
            for m in &found {
                let groups = consumption(ctx, m)?;
                all.push(show_one(ctx, m, &groups, a.body_bytes));
            }
            if ctx.json {
                print_json(&Value::Array(all));
            }
            Ok(())
        }
    }
}

/// A stored message as a query answered it.
#[derive(Debug, Clone)]
pub struct Found {
    pub topic: String,
    pub queue_id: u32,
    pub queue_offset: u64,
    pub offset_id: String,
    pub store_ms: i64,
    pub born_ms: i64,
    pub born_host: String,
    pub store_host: String,
    pub reconsume_times: i32,
    pub sys_flag: i32,
    pub flag: i32,
    pub body: Vec<u8>,
    pub props: Properties,
}

impl Found {
    fn id(&self) -> &str {
        self.props.get(keys::UNIQ_KEY).unwrap_or(&self.offset_id)
    }

    fn summary(&self) -> Value {
        json!({
            "msgId": self.id(), "offsetMsgId": self.offset_id, "topic": self.topic,
            "queueId": self.queue_id, "queueOffset": self.queue_offset,
            "storeTimestamp": self.store_ms,
            "keys": self.props.get(keys::KEYS).unwrap_or(""),
            "tags": self.props.get(keys::TAGS).unwrap_or(""),
            "bodySize": self.body.len(),
        })
    }
}

/// Decodes a QUERY_MESSAGE or VIEW_MESSAGE_BY_ID body.
pub fn decode_records(body: &[u8]) -> Result<Vec<Found>, String> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < body.len() {
        let rec = &body[at..];
        let RecordCheck::Record(v) = check_record(rec, None, true) else {
            return Err(format!("an undecodable record at byte {at} of the answer"));
        };
        let store_host = store_host_of(rec);
        out.push(Found {
            topic: String::from_utf8_lossy(v.topic).into_owned(),
            queue_id: v.queue_id,
            queue_offset: v.queue_offset,
            offset_id: store_host.map_or_else(String::new, |h| {
                OffsetMessageId {
                    ip: h.ip(),
                    port: h.port(),
                    commit_log_offset: v.physical_offset as i64,
                }
                .encode()
            }),
            store_ms: v.store_timestamp,
            born_ms: v.born_timestamp,
            born_host: v.born_host.to_string(),
            store_host: store_host.map_or_else(String::new, |h| h.to_string()),
            reconsume_times: v.reconsume_times,
            sys_flag: v.sys_flag,
            flag: v.flag,
            body: v.body.to_vec(),
            props: Properties::parse_bytes(v.properties),
        });
        at += v.total_size as usize;
    }
    Ok(out)
}

/// QUERY_MESSAGE; none found is an empty list, a topic that does not
/// exist an error.
pub fn query(
    ctx: &Ctx,
    topic: &str,
    key: &str,
    begin: i64,
    end: i64,
    max: usize,
    unique: bool,
) -> Result<Vec<Found>, String> {
    query_in(ctx, topic, key, (begin, end), max, unique)?
        .ok_or_else(|| format!("topic {topic} does not exist (name server {})", ctx.namesrv))
}

/// [`query`]; `None` when the topic does not exist.
pub fn query_in(
    ctx: &Ctx,
    topic: &str,
    key: &str,
    (begin, end): (i64, i64),
    max: usize,
    unique: bool,
) -> Result<Option<Vec<Found>>, String> {
    let mut cmd = req(
        request::QUERY_MESSAGE,
        &[
            ("topic", topic.to_owned()),
            ("key", key.to_owned()),
            ("maxNum", max.clamp(1, 64).to_string()),
            ("beginTimestamp", begin.to_string()),
            ("endTimestamp", end.to_string()),
        ],
    );
    if unique {
        cmd.ext_fields.insert_display("_UNIQUE_KEY_QUERY", "true");
    }
    let Some(addrs) = entries(ctx, topic)? else {
        return Ok(None);
    };
    let mut all = Vec::new();
    for addr in addrs {
        match ctx.connect(&addr)?.call(cmd.clone())? {
            r if r.code == response::SUCCESS => all.extend(decode_records(&r.body)?),
            r if r.code == response::QUERY_NOT_FOUND => {}
            r => return Err(refused(ctx, &r)),
        }
    }
    all.sort_by_key(|m| std::cmp::Reverse(m.store_ms));
    let mut seen = std::collections::HashSet::new();
    all.retain(|m| seen.insert(m.offset_id.clone()));
    all.truncate(max);
    Ok(Some(all))
}

/// The broker entries to ask about `topic`: `--broker`, or the master of
/// every broker entry of its route (`None`: no such topic).
fn entries(ctx: &Ctx, topic: &str) -> Result<Option<Vec<String>>, String> {
    if let Some(b) = &ctx.broker {
        return Ok(Some(vec![b.clone()]));
    }
    let r = ctx
        .connect(&ctx.namesrv)?
        .call(req(request::GET_ROUTEINFO_BY_TOPIC, &[("topic", topic.to_owned())]))?;
    if r.code == response::TOPIC_NOT_EXIST {
        return Ok(None);
    }
    if r.code != response::SUCCESS {
        return Err(format!(
            "name server {}: route of {topic}: {}",
            ctx.namesrv,
            r.remark.unwrap_or_default()
        ));
    }
    let route = TopicRouteData::decode(&r.body).map_err(|e| e.to_string())?;
    Ok(Some(
        route
            .broker_datas
            .iter()
            .filter_map(|b| b.broker_addrs.get(&0).cloned())
            .collect(),
    ))
}

fn call(ctx: &Ctx, cmd: RemotingCommand) -> Result<RemotingCommand, String> {
    let addr = ctx.broker_addr()?;
    ctx.connect(&addr)?.call(cmd)
}

fn refused(ctx: &Ctx, r: &RemotingCommand) -> String {
    format!(
        "broker {} answered {} ({}): {}",
        ctx.broker.as_deref().unwrap_or("(from the name server)"),
        response::name(r.code).unwrap_or("error"),
        r.code,
        r.remark.as_deref().unwrap_or("no remark")
    )
}

/// The message(s) an id names.
pub fn by_id(ctx: &Ctx, id: &str, topic: Option<&str>) -> Result<Vec<Found>, String> {
    if let Some(t) = topic {
        let found = query(ctx, t, id, 0, i64::MAX, 32, true)?;
        if !found.is_empty() {
            return Ok(found);
        }
    }
    if let Ok(off) = OffsetMessageId::decode(id) {
        let r = call(
            ctx,
            req(
                request::VIEW_MESSAGE_BY_ID,
                &[("offset", off.commit_log_offset.to_string())],
            ),
        )?;
        if r.code == response::SUCCESS {
            let found = decode_records(&r.body)?;
            return Ok(found
                .into_iter()
                .filter(|m| topic.is_none_or(|t| t == m.topic))
                .collect());
        }
        if topic.is_none() {
            return Err(refused(ctx, &r));
        }
    }
    match topic {
        Some(_) => Ok(Vec::new()),
        None => Err(format!(
            "{id} is not an offset message id; for a client id (UNIQ_KEY) give its --topic"
        )),
    }
}

fn print_list(ctx: &Ctx, found: &[Found]) {
    if ctx.json {
        print_json(&Value::Array(found.iter().map(Found::summary).collect()));
        return;
    }
    if found.is_empty() {
        println!("no message found");
        return;
    }
    let mut t = table(
        &[
            "msgId",
            "offsetMsgId",
            "queue",
            "offset",
            "stored",
            "keys",
            "tags",
            "bytes",
        ],
        7,
    );
    for m in found {
        t.add_row(vec![
            m.id().to_owned(),
            m.offset_id.clone(),
            format!("{}/{}", m.topic, m.queue_id),
            m.queue_offset.to_string(),
            format_ms(m.store_ms),
            m.props.get(keys::KEYS).unwrap_or("").to_owned(),
            m.props.get(keys::TAGS).unwrap_or("").to_owned(),
            m.body.len().to_string(),
        ]);
    }
    println!("{t}");
}

/// Whether each group consuming the message's topic committed past it:
/// (group, committed offset of its queue, consumed).
fn consumption(ctx: &Ctx, m: &Found) -> Result<Vec<(String, Option<u64>, bool)>, String> {
    let r = call(
        ctx,
        req(request::QUERY_TOPIC_CONSUME_BY_WHO, &[("topic", m.topic.clone())]),
    )?;
    if r.code != response::SUCCESS {
        return Err(refused(ctx, &r));
    }
    let groups = GroupList::decode(&r.body).map_err(|e| e.to_string())?.group_list;
    // The record names its queue by the broker-wide id: ask the store
    // host's main port (a shard port numbers queues its own way).
    let addr = match (&ctx.broker, m.store_host.is_empty()) {
        (None, false) => m.store_host.clone(),
        _ => ctx.broker_addr()?,
    };
    let mut conn = ctx.connect(&addr)?;
    let mut out = Vec::new();
    for g in groups {
        let r = conn.call(req(
            request::QUERY_CONSUMER_OFFSET,
            &[
                ("consumerGroup", g.clone()),
                ("topic", m.topic.clone()),
                ("queueId", m.queue_id.to_string()),
            ],
        ))?;
        let committed = match r.code {
            response::SUCCESS => r.ext_i64("offset").ok().flatten().map(|o| o.max(0) as u64),
            _ => None,
        };
        out.push((g, committed, committed.is_some_and(|c| c > m.queue_offset)));
    }
    Ok(out)
}

fn text_preview(body: &[u8], n: usize) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(n)]);
    let mut s: String = text
        .chars()
        .map(|c| if c.is_control() && c != '\n' { '.' } else { c })
        .collect();
    if body.len() > n {
        s.push('…');
    }
    s
}

fn show_one(ctx: &Ctx, m: &Found, groups: &[(String, Option<u64>, bool)], body_bytes: usize) -> Value {
    let props: Map<String, Value> = m
        .props
        .iter()
        .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
        .collect();
    let consumed: Vec<Value> = groups
        .iter()
        .map(|(g, c, done)| json!({"group": g, "committedOffset": c, "consumed": done}))
        .collect();
    let mut v = m.summary();
    v["bornTimestamp"] = json!(m.born_ms);
    v["bornHost"] = json!(m.born_host);
    v["storeHost"] = json!(m.store_host);
    v["reconsumeTimes"] = json!(m.reconsume_times);
    v["sysFlag"] = json!(m.sys_flag);
    v["flag"] = json!(m.flag);
    v["properties"] = Value::Object(props);
    v["bodyPreview"] = json!(text_preview(&m.body, body_bytes));
    v["consumedBy"] = Value::Array(consumed);
    if ctx.json {
        return v;
    }
    println!("msgId:          {}", m.id());
    println!("offsetMsgId:    {}", m.offset_id);
    println!(
        "topic / queue:  {} / {} at offset {}",
        m.topic, m.queue_id, m.queue_offset
    );
    println!("stored:         {} on {}", format_ms(m.store_ms), m.store_host);
    println!("born:           {} on {}", format_ms(m.born_ms), m.born_host);
    println!(
        "reconsumeTimes: {}   sysFlag: {}   flag: {}",
        m.reconsume_times, m.sys_flag, m.flag
    );
    println!("properties:");
    for (k, val) in m.props.iter() {
        println!("  {k} = {val}");
    }
    println!("body ({} bytes):", m.body.len());
    println!("  {}", text_preview(&m.body, body_bytes));
    if groups.is_empty() {
        println!("consumed by:    no group consumes {}", m.topic);
    } else {
        let mut t = table(&["group", "committed offset", "consumed"], 1);
        for (g, c, done) in groups {
            t.add_row(vec![
                g.clone(),
                c.map_or_else(|| "-".into(), |c| c.to_string()),
                if *done { "yes".into() } else { "no".to_string() },
            ]);
        }
        println!("{t}");
    }
    println!();
    v
}
