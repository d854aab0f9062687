//! Alert rules: what is watched, where, how hard, and who is told.
//!
//! The rules file (`alertRulesFile`, default
//! `<storePathRootDir>/config/alertRules.json`) is JSON, written by
//! `shardmq admin alert add|rm` and editable by hand (re-read when it
//! changes):
//!
//! ```json
//! {"rules": [{
//!   "name": "orders-backlog",       // [A-Za-z0-9_.-], 1..64, unique
//!   "metric": "groupBacklog",       // see Metric
//!   "group": "orders-consumer",     // group metrics: required
//!   "topic": "Orders",              // optional narrowing
//!   "queue": 3,                     // optional (broker-wide queue id)
//!   "threshold": 10000,             // fires at value >= threshold
//!   "periods": 1,                   // consecutive periods at or above it
//!   "periodSecs": 60,               // evaluated every period
//!   "severity": "important",        // critical | important | warning | info
//!   "repeatSecs": 86400,            // re-notify while firing; 0: never
//!   "notifyRecovery": true,         // tell when it resolves
//!   "webhook": "https://…",         // else alertWebhookUrl, if set
//!   "notifyTopic": true             // also a message in RMQ_SYS_ALERTS
//! }]}
//! ```

use serde::{Deserialize, Serialize};

/// Rules a broker keeps at most.
pub const MAX_RULES: usize = 1000;

/// What a rule watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Metric {
    /// Messages stored but not consumed by `group` (sum over its queues).
    GroupBacklog,
    /// Age in ms of the oldest message `group` has not consumed (largest
    /// over its queues with a backlog).
    GroupLagMs,
    /// Dead letters added to `%DLQ%<group>` during the last period.
    DlqGrowth,
    /// Percent of the store's filesystem in use.
    DiskUsedPercent,
    /// Percent of send requests answered with an error during the last
    /// period.
    SendErrorPercent,
}

impl Metric {
    pub fn needs_group(self) -> bool {
        matches!(self, Metric::GroupBacklog | Metric::GroupLagMs | Metric::DlqGrowth)
    }

    pub fn name(self) -> &'static str {
        match self {
            Metric::GroupBacklog => "groupBacklog",
            Metric::GroupLagMs => "groupLagMs",
            Metric::DlqGrowth => "dlqGrowth",
            Metric::DiskUsedPercent => "diskUsedPercent",
            Metric::SendErrorPercent => "sendErrorPercent",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Severity {
    Critical,
    Important,
    Warning,
    Info,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Important => "important",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

fn one() -> u32 {
    1
}

fn sixty() -> u64 {
    60
}

fn yes() -> bool {
    true
}

fn important() -> Severity {
    Severity::Important
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    pub name: String,
    pub metric: Metric,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<u32>,
    pub threshold: f64,
    #[serde(default = "one")]
    pub periods: u32,
    #[serde(default = "sixty")]
    pub period_secs: u64,
    #[serde(default = "important")]
    pub severity: Severity,
    #[serde(default)]
    pub repeat_secs: u64,
    #[serde(default = "yes")]
    pub notify_recovery: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
    #[serde(default)]
    pub notify_topic: bool,
}

impl Rule {
    /// Why the rule cannot be kept, if it cannot.
    pub fn validate(&self) -> Result<(), String> {
        let n = &self.name;
        if n.is_empty() || n.len() > 64 || !n.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)) {
            return Err(format!("rule name {n:?} must be 1..64 of A-Z a-z 0-9 _ . -"));
        }
        let bad = |why: String| Err(format!("rule {n}: {why}"));
        match (&self.group, self.metric.needs_group()) {
            (None, true) => return bad(format!("metric {} needs a group", self.metric.name())),
            (Some(_), false) => return bad(format!("metric {} takes no group", self.metric.name())),
            (Some(g), true) => super::super::metadata::validate_group(g).map_err(|e| format!("rule {n}: {e}"))?,
            (None, false) => {}
        }
        if let Some(t) = &self.topic {
            super::super::metadata::validate_topic(t).map_err(|e| format!("rule {n}: {e}"))?;
        }
        if (self.topic.is_some() || self.queue.is_some())
            && !matches!(self.metric, Metric::GroupBacklog | Metric::GroupLagMs)
        {
            return bad(format!("metric {} takes no topic or queue", self.metric.name()));
        }
        if self.queue.is_some() && self.topic.is_none() {
            return bad("a queue needs its topic".into());
        }
        if !self.threshold.is_finite() || self.threshold < 0.0 {
            return bad(format!("threshold {} must be a number >= 0", self.threshold));
        }
        if !(1..=1000).contains(&self.periods) {
            return bad(format!("periods {} must be within 1..=1000", self.periods));
        }
        if !(1..=86_400).contains(&self.period_secs) {
            return bad(format!("periodSecs {} must be within 1..=86400", self.period_secs));
        }
        if self.repeat_secs > 30 * 86_400 {
            return bad(format!("repeatSecs {} exceeds 30 days", self.repeat_secs));
        }
        if let Some(w) = &self.webhook {
            if w.len() > 2048 || !(w.starts_with("http://") || w.starts_with("https://")) {
                return bad("webhook must be an http:// or https:// URL of at most 2048 bytes".into());
            }
        }
        Ok(())
    }
}

/// The rules file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
}

impl RuleSet {
    /// Parses and checks a rules file: every rule valid, names unique.
    pub fn parse(text: &[u8]) -> Result<RuleSet, String> {
        let set: RuleSet = serde_json::from_slice(text).map_err(|e| format!("alert rules: {e}"))?;
        set.check()?;
        Ok(set)
    }

    pub fn check(&self) -> Result<(), String> {
        if self.rules.len() > MAX_RULES {
            return Err(format!(
                "{} alert rules exceed the limit of {MAX_RULES}",
                self.rules.len()
            ));
        }
        let mut names = std::collections::HashSet::new();
        for r in &self.rules {
            r.validate()?;
            if !names.insert(r.name.as_str()) {
                return Err(format!("alert rule {} is defined twice", r.name));
            }
        }
        Ok(())
    }

    /// Adds or replaces the rule of the same name.
    pub fn upsert(&mut self, rule: Rule) -> Result<(), String> {
        rule.validate()?;
        let full = self.rules.len() >= MAX_RULES;
        match self.rules.iter_mut().find(|r| r.name == rule.name) {
            Some(r) => *r = rule,
            None if full => return Err(format!("{MAX_RULES} alert rules already: remove one first")),
            None => self.rules.push(rule),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_rule_gets_the_defaults_and_bad_ones_say_why() {
        let set = RuleSet::parse(br#"{"rules":[{"name":"b","metric":"groupBacklog","group":"G","threshold":10}]}"#)
            .expect("valid");
        let r = &set.rules[0];
        assert_eq!(
            (r.periods, r.period_secs, r.severity, r.repeat_secs),
            (1, 60, Severity::Important, 0)
        );
        assert!(r.notify_recovery && !r.notify_topic);
        let bad = |json: &str, want: &str| {
            let e = RuleSet::parse(json.as_bytes()).expect_err(json);
            assert!(e.contains(want), "{json}: {e}");
        };
        bad(
            r#"{"rules":[{"name":"b","metric":"groupBacklog","threshold":1}]}"#,
            "needs a group",
        );
        bad(
            r#"{"rules":[{"name":"d","metric":"diskUsedPercent","group":"G","threshold":1}]}"#,
            "takes no group",
        );
        bad(
            r#"{"rules":[{"name":"b b","metric":"diskUsedPercent","threshold":1}]}"#,
            "rule name",
        );
        bad(
            r#"{"rules":[{"name":"b","metric":"diskUsedPercent","threshold":-1}]}"#,
            "threshold",
        );
        bad(
            r#"{"rules":[{"name":"b","metric":"diskUsedPercent","threshold":1,"periodSecs":0}]}"#,
            "periodSecs",
        );
        bad(
            r#"{"rules":[{"name":"b","metric":"nope","threshold":1}]}"#,
            "unknown variant",
        );
        bad(
            r#"{"rules":[{"name":"b","metric":"diskUsedPercent","threshold":1,"webhook":"ftp://x"}]}"#,
            "webhook",
        );
        bad(
            r#"{"rules":[{"name":"b","metric":"diskUsedPercent","threshold":1,"colour":1}]}"#,
            "unknown field",
        );
        bad(
            r#"{"rules":[{"name":"b","metric":"diskUsedPercent","threshold":1},{"name":"b","metric":"diskUsedPercent","threshold":2}]}"#,
            "twice",
        );
        bad(
            r#"{"rules":[{"name":"q","metric":"groupBacklog","group":"G","queue":1,"threshold":1}]}"#,
            "needs its topic",
        );
    }
}
