//! `group create|list`, `consumer-progress`, `offset reset-by-time`.

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::protocol::bodies::{ConsumeStats, JsonBody, ResetOffsetBody};
use crate::protocol::codes::request;

use super::client::req;
use super::output::{print_json, table};
use super::time::{format_ms, parse_time};
use super::Ctx;

#[derive(Subcommand, Debug)]
pub enum GroupCommand {
    /// Create or update a subscription group config.
    Create {
        group: String,
        /// Retries before a message goes to the DLQ.
        #[arg(long, default_value_t = 16)]
        retry_max_times: i32,
        /// Consume orderly.
        #[arg(long)]
        orderly: bool,
        /// Disable consumption.
        #[arg(long)]
        disabled: bool,
    },
    /// Every subscription group config on the broker.
    List,
}

#[derive(Args, Debug)]
pub struct ProgressArgs {
    pub group: String,
    /// Only this topic (default: every topic the group subscribes to or
    /// committed offsets for).
    #[arg(long)]
    pub topic: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum OffsetCommand {
    /// Move a group's committed offsets of a topic to the first message
    /// stored at or after TIME (milliseconds or RFC 3339; -1 = the end).
    ResetByTime {
        group: String,
        topic: String,
        #[arg(allow_hyphen_values = true)]
        time: String,
        /// Only move offsets backwards (keep offsets already before TIME's).
        #[arg(long)]
        no_force: bool,
    },
}

pub fn run(ctx: &Ctx, cmd: GroupCommand) -> Result<(), String> {
    match cmd {
        GroupCommand::Create {
            group,
            retry_max_times,
            orderly,
            disabled,
        } => {
            crate::broker::metadata::validate_group(&group)?;
            let body = json!({
                "groupName": group, "retryMaxTimes": retry_max_times,
                "consumeMessageOrderly": orderly, "consumeEnable": !disabled,
            });
            let cmd = req(request::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, &[]).with_body(body.to_string().into_bytes());
            ctx.broker_call(cmd)?;
            if ctx.json {
                print_json(&json!({ "group": group, "created": true }));
            } else {
                println!(
                    "subscription group {group} created/updated on broker {}",
                    ctx.broker_addr()?
                );
            }
            Ok(())
        }
        GroupCommand::List => {
            let r = ctx.broker_call(req(request::GET_ALL_SUBSCRIPTIONGROUP_CONFIG, &[]))?;
            let v: Value =
                crate::protocol::bodies::fastjson_reader::parse_lenient(&r.body).map_err(|e| e.to_string())?;
            let groups = v
                .get("subscriptionGroupTable")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            if ctx.json {
                print_json(&json!({ "groups": groups.values().collect::<Vec<_>>() }));
                return Ok(());
            }
            let mut t = table(&["group", "consume", "orderly", "broadcast", "retry max times"], 1);
            let flag = |c: &Value, k: &str| match c.get(k).and_then(Value::as_bool) {
                Some(true) => "yes",
                Some(false) => "no",
                None => "-",
            };
            for (name, c) in &groups {
                t.add_row(vec![
                    name.clone(),
                    flag(c, "consumeEnable").into(),
                    flag(c, "consumeMessageOrderly").into(),
                    flag(c, "consumeBroadcastEnable").into(),
                    c.get("retryMaxTimes").map_or("-".into(), Value::to_string),
                ]);
            }
            println!("{t}");
            Ok(())
        }
    }
}

pub fn progress(ctx: &Ctx, a: ProgressArgs) -> Result<(), String> {
    let mut fields = vec![("consumerGroup", a.group.clone())];
    if let Some(t) = &a.topic {
        fields.push(("topic", t.clone()));
    }
    let r = ctx.broker_call(req(request::GET_CONSUME_STATS, &fields))?;
    let stats = ConsumeStats::decode(&r.body).map_err(|e| e.to_string())?;
    let mut rows: Vec<_> = stats.offset_table.0.iter().collect();
    rows.sort_by_key(|(mq, _)| (mq.topic.clone(), mq.broker_name.clone(), mq.queue_id));
    let total: i64 = rows
        .iter()
        .map(|(_, o)| (o.broker_offset - o.consumer_offset).max(0))
        .sum();
    if ctx.json {
        let queues: Vec<Value> = rows
            .iter()
            .map(|(mq, o)| {
                json!({
                    "topic": mq.topic, "brokerName": mq.broker_name, "queueId": mq.queue_id,
                    "brokerOffset": o.broker_offset, "consumerOffset": o.consumer_offset,
                    "diff": (o.broker_offset - o.consumer_offset).max(0), "lastTimestamp": o.last_timestamp
                })
            })
            .collect();
        print_json(&json!({ "group": a.group, "queues": queues, "diffTotal": total }));
        return Ok(());
    }
    let mut t = table(
        &[
            "topic",
            "broker",
            "queue",
            "broker offset",
            "consumer offset",
            "diff",
            "last consumed",
        ],
        2,
    );
    for (mq, o) in &rows {
        t.add_row(vec![
            mq.topic.clone(),
            mq.broker_name.clone(),
            mq.queue_id.to_string(),
            o.broker_offset.to_string(),
            o.consumer_offset.to_string(),
            (o.broker_offset - o.consumer_offset).max(0).to_string(),
            format_ms(o.last_timestamp),
        ]);
    }
    println!("{t}");
    println!("Diff total: {total}");
    Ok(())
}

pub fn offset(ctx: &Ctx, cmd: OffsetCommand) -> Result<(), String> {
    let OffsetCommand::ResetByTime {
        group,
        topic,
        time,
        no_force,
    } = cmd;
    let ts = parse_time(&time)?;
    let r = ctx.broker_call(req(
        request::INVOKE_BROKER_TO_RESET_OFFSET,
        &[
            ("group", group.clone()),
            ("topic", topic.clone()),
            ("timestamp", ts.to_string()),
            ("isForce", (!no_force).to_string()),
        ],
    ))?;
    let body = ResetOffsetBody::decode(&r.body).map_err(|e| e.to_string())?;
    if ctx.json {
        let queues: Vec<Value> = body
            .offset_table
            .0
            .iter()
            .map(|(mq, o)| json!({ "brokerName": mq.broker_name, "queueId": mq.queue_id, "offset": o }))
            .collect();
        print_json(&json!({ "group": group, "topic": topic, "timestamp": ts, "queues": queues }));
        return Ok(());
    }
    println!(
        "offsets of group {group} on topic {topic} reset to time {ts} ({}):",
        format_ms(ts)
    );
    let mut t = table(&["broker", "queue", "new offset"], 1);
    for (mq, o) in &body.offset_table.0 {
        t.add_row(vec![mq.broker_name.clone(), mq.queue_id.to_string(), o.to_string()]);
    }
    println!("{t}");
    Ok(())
}
