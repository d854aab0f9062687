//! Alert rules evaluated in the broker (issue 12): a group's backlog or
//! lag, dead letters, disk use, send errors — firing after N consecutive
//! periods at or above a threshold, repeating while they fire, and
//! resolving when the value drops below it.
//!
//! The engine runs on shard 0 (which also serves `/metrics`). Every second
//! it re-reads the rules file if it changed and evaluates the rules whose
//! period has come. Values come from the same sources as `admin stats`
//! and `consumerProgress`: the shards' backlog rows and counters over the
//! mesh, the store's filesystem (`statvfs`, on the blocking thread).
//!
//! A state change is logged (firing: warn, resolved: info), shown by
//! `shardmq admin alert status` (ALERT_STATUS) and as Prometheus gauges
//! (`shardmq_alert_firing`, `shardmq_alert_value`), and notified:
//! * a webhook POST (the rule's `webhook`, else `alertWebhookUrl`) of
//!   `{"alert","status":"firing"|"resolved","repeat","severity","metric",
//!   "group","topic","queue","value","threshold","periods","firingSince",
//!   "at","broker"}` from its own thread ([`notify`]);
//! * with `notifyTopic`, the same JSON as a message in `RMQ_SYS_ALERTS`
//!   (keys = the rule name, tag = the status), which any consumer reads.
//!
//! Requests (shardmq's own codes, admin accounts when ACL is on, run on
//! shard 0 wherever they arrive): ALERT_LIST (the rules file), ALERT_UPDATE
//! (body: one rule as JSON; added or replaced), ALERT_DELETE (`name`),
//! ALERT_STATUS (JSON array of [`AlertStatus`]).

pub mod notify;
pub mod rules;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;

use crate::metrics::{AlertStatus, BrokerStats};
use crate::protocol::codes::response;
use crate::protocol::RemotingCommand;
use crate::runtime::epoch_ms;
use crate::runtime::mesh::View;

use super::reply::error;
use super::shard::Shard;
use notify::Notifier;
use rules::{Metric, Rule, RuleSet};

pub const ALERT_LIST: i32 = 19010;
pub const ALERT_UPDATE: i32 = 19011;
pub const ALERT_DELETE: i32 = 19012;
pub const ALERT_STATUS: i32 = 19013;

/// The topic alert messages go to (`notifyTopic`).
pub const ALERT_TOPIC: &str = "RMQ_SYS_ALERTS";

thread_local! {
    /// The engine, on shard 0's thread (set once at start).
    static ENGINE: std::cell::OnceCell<Rc<Engine>> = const { std::cell::OnceCell::new() };
}

/// Puts `engine` in force on this thread (shard 0's) and starts it.
pub fn start(engine: Rc<Engine>, shard: Rc<Shard>) {
    ENGINE.with(|e| {
        let _ = e.set(engine.clone());
    });
    engine.publish_status(&shard);
    glommio::spawn_local(engine.run(shard)).detach();
}

fn engine() -> Option<Rc<Engine>> {
    ENGINE.with(|e| e.get().cloned())
}

pub fn is_alert_code(code: i32) -> bool {
    matches!(code, ALERT_LIST | ALERT_UPDATE | ALERT_DELETE | ALERT_STATUS)
}

#[derive(Default)]
struct RuleState {
    last_eval: Option<Instant>,
    last_eval_ms: Option<i64>,
    value: Option<f64>,
    breaches: u32,
    firing_since: Option<i64>,
    last_notified: Option<Instant>,
    notifications: u64,
    /// The running total a delta metric compares with (dead letters; sends
    /// and failed sends).
    previous: Option<(f64, f64)>,
}

pub struct Engine {
    path: PathBuf,
    set: RefCell<RuleSet>,
    state: RefCell<HashMap<String, RuleState>>,
    /// The file's (mtime, length) when last read or written.
    stamp: Cell<Option<(SystemTime, u64)>>,
    notifier: Notifier,
    default_webhook: Option<String>,
}

fn stamp_of(path: &std::path::Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

impl Engine {
    /// Reads the rules file (none yet: no rules) and starts the webhook
    /// thread. A file that does not parse fails the start.
    pub fn open(
        path: PathBuf,
        default_webhook: Option<String>,
        tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    ) -> Result<Engine, String> {
        let set = match std::fs::read(&path) {
            Ok(bytes) => RuleSet::parse(&bytes).map_err(|e| format!("{}: {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => RuleSet::default(),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        if !set.rules.is_empty() {
            log::info!("{} alert rule(s) from {}", set.rules.len(), path.display());
        }
        Ok(Engine {
            stamp: Cell::new(stamp_of(&path)),
            path,
            set: RefCell::new(set),
            state: RefCell::new(HashMap::new()),
            notifier: Notifier::start(tls)?,
            default_webhook,
        })
    }

    /// Evaluates due rules every second, forever (shard 0's task).
    async fn run(self: Rc<Self>, shard: Rc<Shard>) {
        loop {
            glommio::timer::sleep(Duration::from_secs(1)).await;
            self.reload_if_changed().await;
            self.tick(&shard).await;
            self.publish_status(&shard);
        }
    }

    /// Copies the rules' state to the shard (`/metrics`, stats).
    fn publish_status(&self, shard: &Shard) {
        *shard.alert_status.borrow_mut() = self.status();
    }

    async fn reload_if_changed(&self) {
        let path = self.path.clone();
        let (stamp, bytes) = crate::runtime::blocking::run(move || {
            let s = stamp_of(&path);
            (s, s.and_then(|_| std::fs::read(&path).ok()))
        })
        .await;
        if stamp == self.stamp.get() {
            return;
        }
        self.stamp.set(stamp);
        let set = match bytes {
            None => RuleSet::default(),
            Some(b) => match RuleSet::parse(&b) {
                Ok(s) => s,
                Err(e) => {
                    log::error!("{}: {e}; the rules in force stay", self.path.display());
                    return;
                }
            },
        };
        log::info!(
            "alert rules reloaded from {}: {} rule(s)",
            self.path.display(),
            set.rules.len()
        );
        self.install(set);
    }

    /// Puts `set` in force; rules that changed start over.
    fn install(&self, set: RuleSet) {
        let old = std::mem::replace(&mut *self.set.borrow_mut(), set);
        let set = self.set.borrow();
        let mut state = self.state.borrow_mut();
        state.retain(|name, _| {
            let now = set.rules.iter().find(|r| &r.name == name);
            let before = old.rules.iter().find(|r| &r.name == name);
            now.is_some() && now == before
        });
    }

    async fn tick(&self, shard: &Rc<Shard>) {
        let now = Instant::now();
        let due: Vec<Rule> = {
            let state = self.state.borrow();
            self.set
                .borrow()
                .rules
                .iter()
                .filter(|r| {
                    state
                        .get(&r.name)
                        .and_then(|s| s.last_eval)
                        .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(r.period_secs))
                })
                .cloned()
                .collect()
        };
        if due.is_empty() {
            return;
        }
        let needs_stats = due
            .iter()
            .any(|r| matches!(r.metric, Metric::GroupBacklog | Metric::SendErrorPercent));
        let stats = if needs_stats {
            Some(super::stats::collect(shard).await)
        } else {
            None
        };
        for rule in due {
            let previous = self.state.borrow().get(&rule.name).and_then(|s| s.previous);
            match measure(shard, &rule, stats.as_ref(), previous).await {
                Ok((value, running)) => self.judge(shard, &rule, value, running).await,
                Err(e) => log::warn!("alert {}: cannot evaluate {}: {e}", rule.name, rule.metric.name()),
            }
        }
    }

    /// Updates a rule's state with a new value and notifies on a change.
    async fn judge(&self, shard: &Rc<Shard>, rule: &Rule, value: f64, running: Option<(f64, f64)>) {
        let now_ms = epoch_ms();
        let event = {
            let mut states = self.state.borrow_mut();
            let st = states.entry(rule.name.clone()).or_default();
            st.last_eval = Some(Instant::now());
            st.last_eval_ms = Some(now_ms);
            st.value = Some(value);
            st.previous = running;
            let breached = value >= rule.threshold;
            st.breaches = if breached { st.breaches.saturating_add(1) } else { 0 };
            let repeat_due = rule.repeat_secs > 0
                && st
                    .last_notified
                    .is_some_and(|t| t.elapsed() >= Duration::from_secs(rule.repeat_secs));
            let event = match (st.firing_since, breached) {
                (None, true) if st.breaches >= rule.periods => {
                    st.firing_since = Some(now_ms);
                    Some(("firing", false))
                }
                (Some(_), true) if repeat_due => Some(("firing", true)),
                (Some(_), false) => {
                    st.firing_since = None;
                    rule.notify_recovery.then_some(("resolved", false))
                }
                _ => None,
            };
            if event.is_some() {
                st.last_notified = Some(Instant::now());
                st.notifications += 1;
            }
            event.map(|(status, repeat)| (status, repeat, st.firing_since))
        };
        let Some((status, repeat, since)) = event else {
            return;
        };
        let body = json!({
            "alert": rule.name, "status": status, "repeat": repeat,
            "severity": rule.severity.name(), "metric": rule.metric.name(),
            "group": rule.group, "topic": rule.topic, "queue": rule.queue,
            "value": value, "threshold": rule.threshold, "periods": rule.periods,
            "firingSince": since, "at": now_ms, "broker": shard.cfg.broker_name,
        })
        .to_string();
        if status == "firing" {
            log::warn!(
                "ALERT {} firing{}: {} = {value} >= {} ({}; {})",
                rule.name,
                if repeat { " (repeat)" } else { "" },
                rule.metric.name(),
                rule.threshold,
                rule.severity.name(),
                scope(rule)
            );
        } else {
            log::info!(
                "ALERT {} resolved: {} = {value} < {} ({})",
                rule.name,
                rule.metric.name(),
                rule.threshold,
                scope(rule)
            );
        }
        if let Some(url) = rule.webhook.as_ref().or(self.default_webhook.as_ref()) {
            self.notifier.post(url, body.clone());
        }
        if rule.notify_topic {
            if let Err(e) = publish(shard, &rule.name, status, body).await {
                log::error!(
                    "alert {}: cannot store the notification in {ALERT_TOPIC}: {e}",
                    rule.name
                );
            }
        }
    }

    pub fn status(&self) -> Vec<AlertStatus> {
        let state = self.state.borrow();
        self.set
            .borrow()
            .rules
            .iter()
            .map(|r| {
                let st = state.get(&r.name);
                AlertStatus {
                    name: r.name.clone(),
                    metric: r.metric.name().into(),
                    severity: r.severity.name().into(),
                    threshold: r.threshold,
                    value: st.and_then(|s| s.value),
                    breaches: st.map_or(0, |s| s.breaches),
                    firing: st.is_some_and(|s| s.firing_since.is_some()),
                    firing_since: st.and_then(|s| s.firing_since),
                    last_evaluated: st.and_then(|s| s.last_eval_ms),
                    notifications: st.map_or(0, |s| s.notifications),
                }
            })
            .collect()
    }

    async fn save(&self, set: RuleSet) -> Result<(), String> {
        let bytes = serde_json::to_vec_pretty(&set).map_err(|e| e.to_string())?;
        let dir = self
            .path
            .parent()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| format!("{} names no file", self.path.display()))?;
        let path = self.path.clone();
        let stamp = crate::runtime::blocking::run(move || {
            super::metadata::write_atomically(&dir, &name, &bytes).map(|()| stamp_of(&path))
        })
        .await?;
        self.stamp.set(stamp);
        self.install(set);
        Ok(())
    }
}

fn scope(rule: &Rule) -> String {
    let mut parts = Vec::new();
    if let Some(g) = &rule.group {
        parts.push(format!("group {g}"));
    }
    if let Some(t) = &rule.topic {
        parts.push(format!("topic {t}"));
    }
    if let Some(q) = rule.queue {
        parts.push(format!("queue {q}"));
    }
    if parts.is_empty() {
        "broker".into()
    } else {
        parts.join(", ")
    }
}

/// The rule's value now, and the running totals a delta metric keeps.
async fn measure(
    shard: &Rc<Shard>,
    rule: &Rule,
    stats: Option<&BrokerStats>,
    previous: Option<(f64, f64)>,
) -> Result<(f64, Option<(f64, f64)>), String> {
    let group = rule.group.as_deref().unwrap_or("");
    let in_scope = |topic: &str, queue: u32| {
        rule.topic.as_deref().is_none_or(|t| t == topic) && rule.queue.is_none_or(|q| q == queue)
    };
    match rule.metric {
        Metric::GroupBacklog => {
            let stats = stats.ok_or("no statistics")?;
            let sum: u64 = stats
                .lag
                .iter()
                .filter(|l| l.group == group && in_scope(&l.topic, l.queue_id))
                .map(|l| l.lag())
                .sum();
            Ok((sum as f64, None))
        }
        Metric::GroupLagMs => {
            let topics: Vec<String> = rule.topic.iter().cloned().collect();
            let rows = super::admin::fan_out(shard, &topics, Some(group), true).await?;
            let now = epoch_ms();
            let oldest = rows
                .iter()
                .filter(|r| in_scope(&r.topic, r.queue_id))
                .filter(|r| r.consumer_offset.is_some_and(|c| c < r.max) && r.next_timestamp > 0)
                .map(|r| (now - r.next_timestamp).max(0))
                .max()
                .unwrap_or(0);
            Ok((oldest as f64, None))
        }
        Metric::DlqGrowth => {
            let dlq = format!("{}{group}", super::metadata::DLQ_GROUP_TOPIC_PREFIX);
            let rows = super::admin::fan_out(shard, std::slice::from_ref(&dlq), None, false).await?;
            let total = rows.iter().map(|r| r.max).sum::<u64>() as f64;
            let grown = previous.map_or(0.0, |(before, _)| (total - before).max(0.0));
            Ok((grown, Some((total, 0.0))))
        }
        Metric::DiskUsedPercent => {
            let root = shard.cfg.store_path_root_dir.clone();
            let used = crate::runtime::blocking::run(move || {
                use crate::store::retention::DiskUsage;
                crate::store::retention::StatVfs::new(root).used_percent()
            })
            .await
            .map_err(|e| e.to_string())?;
            Ok((used as f64, None))
        }
        Metric::SendErrorPercent => {
            let stats = stats.ok_or("no statistics")?;
            let sends = stats.shards.iter().map(|s| s.counters.sends).sum::<u64>() as f64;
            let errors = stats.shards.iter().map(|s| s.counters.send_errors).sum::<u64>() as f64;
            let pct = match previous {
                Some((s0, e0)) if sends > s0 => ((errors - e0).max(0.0) / (sends - s0)) * 100.0,
                _ => 0.0,
            };
            Ok((pct, Some((sends, errors))))
        }
    }
}

/// Stores a notification in [`ALERT_TOPIC`] (created with one queue on
/// first use).
async fn publish(shard: &Rc<Shard>, name: &str, status: &str, body: String) -> Result<(), String> {
    let info = match shard.topic(ALERT_TOPIC) {
        Some(i) => i,
        None => shard
            .auto_create_topic(ALERT_TOPIC, 1, View::Main)
            .await
            .map_err(|(_, e)| e)?,
    };
    let owner = info.owner(0).unwrap_or(shard.id);
    let uniq = shard.uniq.borrow_mut().next_id();
    let props = format!("KEYS\x01{name}\x02TAGS\x01{status}\x02UNIQ_KEY\x01{uniq}\x02");
    let msg = super::retry::broker_message(shard, ALERT_TOPIC, 0, body, props);
    super::retry::store_on(shard, owner, msg, None)
        .await
        .map(|_| ())
        .map_err(|(_, e)| e)
}

/// Saves and installs `set`, and answers `cmd`.
async fn save_reply(engine: &Engine, cmd: &RemotingCommand, set: RuleSet) -> Option<RemotingCommand> {
    match engine.save(set).await {
        Ok(()) => Some(RemotingCommand::response_to(cmd, response::SUCCESS, None)),
        Err(e) => error(cmd, response::SYSTEM_ERROR, format!("cannot save the alert rules: {e}")),
    }
}

/// ALERT_LIST / UPDATE / DELETE / STATUS, on shard 0.
pub async fn handle(shard: &Rc<Shard>, cmd: RemotingCommand) -> Option<RemotingCommand> {
    let Some(engine) = engine() else {
        return error(&cmd, response::SYSTEM_ERROR, "the alert engine runs on shard 0 only");
    };
    let ok = |body: Vec<u8>| Some(RemotingCommand::response_to(&cmd, response::SUCCESS, None).with_body(body));
    match cmd.code {
        ALERT_LIST => ok(serde_json::to_vec(&*engine.set.borrow()).unwrap_or_default()),
        ALERT_STATUS => {
            let mut status = serde_json::to_value(engine.status()).unwrap_or_default();
            let c = &engine.notifier.counters;
            let webhooks = json!({
                "delivered": c.delivered.load(Ordering::Relaxed),
                "failedAttempts": c.failed_attempts.load(Ordering::Relaxed),
                "givenUp": c.given_up.load(Ordering::Relaxed),
                "dropped": c.dropped.load(Ordering::Relaxed),
            });
            status = json!({"rules": status, "webhooks": webhooks});
            ok(status.to_string().into_bytes())
        }
        ALERT_UPDATE => {
            let rule: Rule = match serde_json::from_slice(&cmd.body) {
                Ok(r) => r,
                Err(e) => return error(&cmd, response::INVALID_PARAMETER, format!("alert rule: {e}")),
            };
            let mut set = engine.set.borrow().clone();
            if let Err(e) = set.upsert(rule) {
                return error(&cmd, response::INVALID_PARAMETER, e);
            }
            let reply = save_reply(&engine, &cmd, set).await;
            engine.publish_status(shard);
            reply
        }
        ALERT_DELETE => {
            let name = match cmd.required_str("name") {
                Ok(n) => n.to_owned(),
                Err(e) => return error(&cmd, response::INVALID_PARAMETER, e.to_string()),
            };
            let mut set = engine.set.borrow().clone();
            let before = set.rules.len();
            set.rules.retain(|r| r.name != name);
            if set.rules.len() == before {
                return error(&cmd, response::INVALID_PARAMETER, format!("no alert rule named {name}"));
            }
            let reply = save_reply(&engine, &cmd, set).await;
            engine.publish_status(shard);
            reply
        }
        _ => super::reply::not_supported(&cmd),
    }
}
