//! `topic create|update|delete|list|route|status`.

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::protocol::bodies::{JsonBody, TopicList, TopicRouteData, TopicStatsTable};
use crate::protocol::codes::request;

use super::client::req;
use super::output::{print_json, table};
use super::time::format_ms;
use super::Ctx;

#[derive(Subcommand, Debug)]
pub enum TopicCommand {
    /// Create a topic on the broker (fails if it exists).
    Create(TopicSpec),
    /// Change an existing topic's queue numbers or permissions.
    Update(TopicSpec),
    /// Delete a topic from the broker and the name server.
    Delete { topic: String },
    /// Every topic the name server knows.
    List,
    /// The topic's route: broker entries and their queues.
    Route { topic: String },
    /// Min/max offset and last store time of every queue.
    Status { topic: String },
}

#[derive(Args, Debug)]
pub struct TopicSpec {
    pub topic: String,
    /// Read and write queue number (create default 8).
    #[arg(long)]
    pub queues: Option<u32>,
    #[arg(long)]
    pub read_queues: Option<u32>,
    #[arg(long)]
    pub write_queues: Option<u32>,
    /// Permission bits: 2 write, 4 read, 6 both (create default 6).
    #[arg(long)]
    pub perm: Option<i32>,
    /// On every master of this cluster (as `mqadmin updateTopic -c`),
    /// found through the name server; slaves follow their masters.
    #[arg(long, conflicts_with = "broker")]
    pub cluster: Option<String>,
}

pub fn run(ctx: &Ctx, cmd: TopicCommand) -> Result<(), String> {
    match cmd {
        TopicCommand::Create(s) => create_or_update(ctx, s, true),
        TopicCommand::Update(s) => create_or_update(ctx, s, false),
        TopicCommand::Delete { topic } => delete(ctx, &topic),
        TopicCommand::List => list(ctx),
        TopicCommand::Route { topic } => route(ctx, &topic),
        TopicCommand::Status { topic } => status(ctx, &topic),
    }
}

fn perm_name(p: i32) -> String {
    let mut s = String::new();
    s.push(if p & 4 != 0 { 'R' } else { '-' });
    s.push(if p & 2 != 0 { 'W' } else { '-' });
    format!("{s} ({p})")
}

/// The broker's config of `topic`, if it has one.
fn topic_config(ctx: &Ctx, topic: &str) -> Result<Option<Value>, String> {
    let r = ctx.broker_call(req(request::GET_ALL_TOPIC_CONFIG, &[]))?;
    let v: Value = crate::protocol::bodies::fastjson_reader::parse_lenient(&r.body).map_err(|e| e.to_string())?;
    Ok(v.pointer("/topicConfigTable").and_then(|t| t.get(topic)).cloned())
}

fn create_or_update(ctx: &Ctx, s: TopicSpec, create: bool) -> Result<(), String> {
    let Some(cluster) = &s.cluster else {
        return create_or_update_one(ctx, &s, create);
    };
    let masters = super::cluster_masters(ctx, cluster)?;
    for addr in masters {
        let on = Ctx {
            broker: Some(addr),
            ..ctx.clone()
        };
        create_or_update_one(&on, &s, create)?;
    }
    Ok(())
}

fn create_or_update_one(ctx: &Ctx, s: &TopicSpec, create: bool) -> Result<(), String> {
    crate::broker::metadata::validate_topic(&s.topic)?;
    let existing = topic_config(ctx, &s.topic)?;
    let field = |k: &str, d: i64| {
        existing
            .as_ref()
            .and_then(|c| c.get(k))
            .and_then(Value::as_i64)
            .unwrap_or(d)
    };
    match (&existing, create) {
        (Some(_), true) => {
            return Err(format!(
                "topic {} already exists (change it with `topic update`)",
                s.topic
            ))
        }
        (None, false) => {
            return Err(format!(
                "topic {} does not exist (create it with `topic create`)",
                s.topic
            ))
        }
        _ => {}
    }
    let read = s
        .read_queues
        .or(s.queues)
        .map_or_else(|| field("readQueueNums", 8), i64::from);
    let write = s
        .write_queues
        .or(s.queues)
        .map_or_else(|| field("writeQueueNums", 8), i64::from);
    let perm = s.perm.map_or_else(|| field("perm", 6), i64::from);
    let cmd = req(
        request::UPDATE_AND_CREATE_TOPIC,
        &[
            ("topic", s.topic.clone()),
            ("defaultTopic", "TBW102".into()),
            ("readQueueNums", read.to_string()),
            ("writeQueueNums", write.to_string()),
            ("perm", perm.to_string()),
            ("topicFilterType", "SINGLE_TAG".into()),
            ("topicSysFlag", "0".into()),
            ("order", "false".into()),
        ],
    );
    ctx.broker_call(cmd)?;
    let broker = ctx.broker_addr()?;
    if ctx.json {
        print_json(&json!({
            "topic": s.topic, "broker": broker, "created": create,
            "readQueueNums": read, "writeQueueNums": write, "perm": perm
        }));
    } else {
        println!(
            "topic {} {} on broker {broker}: {read} read / {write} write queues, perm {}",
            s.topic,
            if create { "created" } else { "updated" },
            perm_name(perm as i32)
        );
    }
    Ok(())
}

fn delete(ctx: &Ctx, topic: &str) -> Result<(), String> {
    ctx.broker_call(req(request::DELETE_TOPIC_IN_BROKER, &[("topic", topic.to_string())]))?;
    ctx.namesrv_call(req(request::DELETE_TOPIC_IN_NAMESRV, &[("topic", topic.to_string())]))
        .map_err(|e| format!("topic {topic} was deleted on the broker, but not on the name server: {e}"))?;
    if ctx.json {
        print_json(&json!({ "topic": topic, "deleted": true }));
    } else {
        println!("topic {topic} deleted");
    }
    Ok(())
}

fn list(ctx: &Ctx) -> Result<(), String> {
    let r = ctx.namesrv_call(req(request::GET_ALL_TOPIC_LIST_FROM_NAMESERVER, &[]))?;
    let mut topics = TopicList::decode(&r.body).map_err(|e| e.to_string())?.topic_list;
    topics.sort();
    if ctx.json {
        print_json(&json!({ "topics": topics }));
    } else {
        let mut t = table(&["topic"], 1);
        for name in &topics {
            t.add_row(vec![name]);
        }
        println!("{t}");
    }
    Ok(())
}

fn route(ctx: &Ctx, topic: &str) -> Result<(), String> {
    let r = ctx.namesrv_call(req(request::GET_ROUTEINFO_BY_TOPIC, &[("topic", topic.to_string())]))?;
    let mut route = TopicRouteData::decode(&r.body).map_err(|e| e.to_string())?;
    route.queue_datas.sort_by(|a, b| a.broker_name.cmp(&b.broker_name));
    if ctx.json {
        print_json(&serde_json::to_value(&route).map_err(|e| e.to_string())?);
        return Ok(());
    }
    let mut t = table(&["broker", "address", "read queues", "write queues", "perm"], 2);
    for q in &route.queue_datas {
        let addr = route
            .broker_datas
            .iter()
            .find(|b| b.broker_name == q.broker_name)
            .and_then(|b| b.broker_addrs.get(&0))
            .cloned()
            .unwrap_or_else(|| "-".into());
        t.add_row(vec![
            q.broker_name.clone(),
            addr,
            q.read_queue_nums.to_string(),
            q.write_queue_nums.to_string(),
            perm_name(q.perm),
        ]);
    }
    println!("{t}");
    Ok(())
}

fn status(ctx: &Ctx, topic: &str) -> Result<(), String> {
    let r = ctx.broker_call(req(request::GET_TOPIC_STATS_INFO, &[("topic", topic.to_string())]))?;
    let stats = TopicStatsTable::decode(&r.body).map_err(|e| e.to_string())?;
    if ctx.json {
        let queues: Vec<Value> = stats
            .offset_table
            .0
            .iter()
            .map(|(mq, o)| {
                json!({
                    "brokerName": mq.broker_name, "queueId": mq.queue_id, "minOffset": o.min_offset,
                    "maxOffset": o.max_offset, "lastUpdateTimestamp": o.last_update_timestamp
                })
            })
            .collect();
        print_json(&json!({ "topic": topic, "queues": queues }));
        return Ok(());
    }
    let mut t = table(
        &[
            "broker",
            "queue",
            "min offset",
            "max offset",
            "messages",
            "last updated",
        ],
        1,
    );
    let mut rows: Vec<_> = stats.offset_table.0.iter().collect();
    rows.sort_by_key(|(mq, _)| (mq.broker_name.clone(), mq.queue_id));
    for (mq, o) in rows {
        t.add_row(vec![
            mq.broker_name.clone(),
            mq.queue_id.to_string(),
            o.min_offset.to_string(),
            o.max_offset.to_string(),
            (o.max_offset - o.min_offset).max(0).to_string(),
            format_ms(o.last_update_timestamp),
        ]);
    }
    println!("{t}");
    Ok(())
}
