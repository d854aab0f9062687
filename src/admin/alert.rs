//! `alert add|list|rm|status`: the broker's alert rules (see
//! `broker::alerts`), kept in its rules file.

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::broker::alerts::rules::{Metric, Rule, RuleSet, Severity};
use crate::broker::alerts::{ALERT_DELETE, ALERT_LIST, ALERT_STATUS, ALERT_UPDATE};
use crate::protocol::RemotingCommand;

use super::client::req;
use super::output::{print_json, table};
use super::time::format_ms;
use super::Ctx;

#[derive(Subcommand, Debug)]
pub enum AlertCommand {
    /// Adds a rule, or replaces the rule of that name.
    Add(AddArgs),
    /// The rules.
    List,
    /// Removes a rule.
    Rm { name: String },
    /// Each rule's state: value, consecutive breaches, firing since; and
    /// the webhook deliveries.
    Status,
}

#[derive(Args, Debug)]
pub struct AddArgs {
    #[arg(long)]
    pub name: String,
    /// groupBacklog, groupLagMs, dlqGrowth, diskUsedPercent or
    /// sendErrorPercent.
    #[arg(long)]
    pub metric: String,
    #[arg(long)]
    pub group: Option<String>,
    #[arg(long)]
    pub topic: Option<String>,
    #[arg(long)]
    pub queue: Option<u32>,
    /// Fires at a value at or above this.
    #[arg(long)]
    pub threshold: f64,
    /// Consecutive periods at or above the threshold before it fires.
    #[arg(long, default_value_t = 1)]
    pub periods: u32,
    #[arg(long, default_value_t = 60)]
    pub period_secs: u64,
    /// critical, important, warning or info.
    #[arg(long, default_value = "important")]
    pub severity: String,
    /// Notify again every this many seconds while it fires (0: never).
    #[arg(long, default_value_t = 0)]
    pub repeat_secs: u64,
    /// Do not notify when it resolves.
    #[arg(long)]
    pub no_recovery: bool,
    /// POST notifications here (else the broker's alertWebhookUrl).
    #[arg(long)]
    pub webhook: Option<String>,
    /// Also store notifications as messages in RMQ_SYS_ALERTS.
    #[arg(long)]
    pub notify_topic: bool,
}

fn parse_enum<T: serde::de::DeserializeOwned>(what: &str, v: &str) -> Result<T, String> {
    serde_json::from_value(Value::String(v.to_owned())).map_err(|_| format!("unknown {what} {v:?}"))
}

pub fn run(ctx: &Ctx, cmd: AlertCommand) -> Result<(), String> {
    match cmd {
        AlertCommand::Add(a) => {
            let rule = Rule {
                name: a.name,
                metric: parse_enum::<Metric>("metric", &a.metric)?,
                group: a.group,
                topic: a.topic,
                queue: a.queue,
                threshold: a.threshold,
                periods: a.periods,
                period_secs: a.period_secs,
                severity: parse_enum::<Severity>("severity", &a.severity)?,
                repeat_secs: a.repeat_secs,
                notify_recovery: !a.no_recovery,
                webhook: a.webhook,
                notify_topic: a.notify_topic,
            };
            rule.validate()?;
            let mut cmd = RemotingCommand::new_request(ALERT_UPDATE);
            cmd.body = serde_json::to_vec(&rule).map_err(|e| e.to_string())?.into();
            ctx.broker_call(cmd)?;
            if ctx.json {
                print_json(&json!({"saved": rule.name}));
            } else {
                println!("alert rule {} saved", rule.name);
            }
            Ok(())
        }
        AlertCommand::List => {
            let r = ctx.broker_call(RemotingCommand::new_request(ALERT_LIST))?;
            let set: RuleSet = serde_json::from_slice(&r.body).map_err(|e| format!("alert rules: {e}"))?;
            if ctx.json {
                print_json(&serde_json::to_value(&set).map_err(|e| e.to_string())?);
                return Ok(());
            }
            let mut t = table(
                &[
                    "name",
                    "metric",
                    "scope",
                    "severity",
                    "threshold",
                    "periods",
                    "period s",
                    "repeat s",
                ],
                4,
            );
            for r in &set.rules {
                let scope = [r.group.as_deref(), r.topic.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" / ");
                t.add_row(vec![
                    r.name.clone(),
                    r.metric.name().into(),
                    match r.queue {
                        Some(q) => format!("{scope} / {q}"),
                        None => scope,
                    },
                    r.severity.name().into(),
                    r.threshold.to_string(),
                    r.periods.to_string(),
                    r.period_secs.to_string(),
                    r.repeat_secs.to_string(),
                ]);
            }
            println!("{t}");
            Ok(())
        }
        AlertCommand::Rm { name } => {
            ctx.broker_call(req(ALERT_DELETE, &[("name", name.clone())]))?;
            if ctx.json {
                print_json(&json!({"removed": name}));
            } else {
                println!("alert rule {name} removed");
            }
            Ok(())
        }
        AlertCommand::Status => {
            let r = ctx.broker_call(RemotingCommand::new_request(ALERT_STATUS))?;
            let v: Value = serde_json::from_slice(&r.body).map_err(|e| format!("alert status: {e}"))?;
            if ctx.json {
                print_json(&v);
                return Ok(());
            }
            let mut t = table(
                &[
                    "name",
                    "metric",
                    "severity",
                    "state",
                    "value",
                    "threshold",
                    "breaches",
                    "since",
                ],
                4,
            );
            for a in v["rules"].as_array().into_iter().flatten() {
                let firing = a["firing"].as_bool().unwrap_or(false);
                t.add_row(vec![
                    a["name"].as_str().unwrap_or("").to_owned(),
                    a["metric"].as_str().unwrap_or("").to_owned(),
                    a["severity"].as_str().unwrap_or("").to_owned(),
                    if firing { "FIRING".into() } else { "ok".to_string() },
                    a["value"].as_f64().map_or("-".into(), |x| x.to_string()),
                    a["threshold"].as_f64().map_or("-".into(), |x| x.to_string()),
                    a["breaches"].to_string(),
                    a["firingSince"].as_i64().map_or(String::new(), format_ms),
                ]);
            }
            println!("{t}");
            let w = &v["webhooks"];
            println!(
                "webhooks: {} delivered, {} failed attempts, {} given up, {} dropped",
                w["delivered"], w["failedAttempts"], w["givenUp"], w["dropped"]
            );
            Ok(())
        }
    }
}
