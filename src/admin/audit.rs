//! `audit`: reads the broker's audit log (`<storePathRootDir>/audit`, see
//! `broker::audit`) on this machine, merged over shards and rotated
//! files, in time order, with filters.

use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::Value;

use super::output::{cell, table};
use super::time::parse_time;
use super::Ctx;

#[derive(Args, Debug)]
pub struct AuditArgs {
    /// The broker's storePathRootDir.
    #[arg(long, default_value = "./data")]
    pub store: PathBuf,
    /// Only events at or after TIME (milliseconds or RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// Only events of this access key.
    #[arg(long)]
    pub account: Option<String>,
    /// Only events with this result: ok, error, refused, dropped.
    #[arg(long)]
    pub result: Option<String>,
    /// Only events whose request name contains this (e.g. TOPIC, ACL).
    #[arg(long)]
    pub request: Option<String>,
    /// Only events whose resource contains this (e.g. topic:orders).
    #[arg(long)]
    pub resource: Option<String>,
    /// The newest N events at most.
    #[arg(long, default_value_t = 1000)]
    pub limit: usize,
}

fn files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let rd = std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    Ok(rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("shard-") && n.contains(".log"))
        })
        .collect())
}

pub fn run(ctx: &Ctx, a: AuditArgs) -> Result<(), String> {
    let dir = a.store.join("audit");
    let since = a.since.as_deref().map(parse_time).transpose()?;
    let since = since.map(super::time::format_ms);
    let has = |v: &Value, key: &str, want: &Option<String>, exact: bool| match want {
        None => true,
        Some(w) => {
            let got = v[key].as_str().unwrap_or("");
            if exact {
                got == w
            } else {
                got.contains(w.as_str())
            }
        }
    };
    let mut events: Vec<Value> = Vec::new();
    for f in files(&dir)? {
        let text = std::fs::read_to_string(&f).map_err(|e| format!("cannot read {}: {e}", f.display()))?;
        for line in text.lines() {
            // A torn last line (a crash mid-write) is skipped.
            let Ok(v) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let time = v["time"].as_str().unwrap_or("");
            if since.as_deref().is_some_and(|s| time < s) {
                continue;
            }
            if has(&v, "accessKey", &a.account, true)
                && has(&v, "result", &a.result, true)
                && has(&v, "request", &a.request, false)
                && has(&v, "resource", &a.resource, false)
            {
                events.push(v);
            }
        }
    }
    // RFC 3339 times of one format sort as text.
    events.sort_by(|x, y| x["time"].as_str().cmp(&y["time"].as_str()));
    let skip = events.len().saturating_sub(a.limit);
    let events = &events[skip..];
    if ctx.json {
        for e in events {
            println!("{e}");
        }
        return Ok(());
    }
    const COLUMNS: [(&str, &str); 8] = [
        ("TIME", "time"),
        ("SHARD", "shard"),
        ("CLIENT", "client"),
        ("ACCESS KEY", "accessKey"),
        ("REQUEST", "request"),
        ("RESOURCE", "resource"),
        ("RESULT", "result"),
        ("REMARK", "remark"),
    ];
    let mut t = table(&COLUMNS.map(|(h, _)| h), COLUMNS.len());
    for e in events {
        t.add_row(COLUMNS.iter().map(|(_, k)| cell(&e[*k])).collect::<Vec<_>>());
    }
    println!("{t}");
    Ok(())
}
