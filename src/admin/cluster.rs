//! `cluster list`: the name server's cluster info plus each broker entry's
//! runtime info (GET_BROKER_RUNTIME_INFO).

use clap::Subcommand;
use serde_json::{json, Value};

use crate::protocol::bodies::{ClusterInfo, JsonBody, KvTable};
use crate::protocol::codes::request;

use super::client::req;
use super::output::{print_json, table};
use super::Ctx;

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Every broker entry of every cluster, with its runtime info.
    List,
}

fn runtime(ctx: &Ctx, addr: &str) -> Result<KvTable, String> {
    let mut c = ctx.connect(addr)?;
    let r = c.call(req(request::GET_BROKER_RUNTIME_INFO, &[]))?;
    if r.code != 0 {
        return Err(r.remark.unwrap_or_else(|| format!("code {}", r.code)));
    }
    KvTable::decode(&r.body).map_err(|e| e.to_string())
}

/// `1d2h`, `3h4m`, `5m6s`, `7s` since a boot timestamp (ms).
fn uptime(boot: &str) -> String {
    let Ok(boot) = boot.parse::<u128>() else {
        return "-".into();
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let s = (now.saturating_sub(boot) / 1000) as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{}m", s / 3600, s / 60 % 60),
        _ => format!("{}d{}h", s / 86_400, s / 3600 % 24),
    }
}

pub fn run(ctx: &Ctx, cmd: ClusterCommand) -> Result<(), String> {
    let ClusterCommand::List = cmd;
    let r = ctx.namesrv_call(req(request::GET_BROKER_CLUSTER_INFO, &[]))?;
    let info = ClusterInfo::decode(&r.body).map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    for (cluster, names) in &info.cluster_addr_table {
        for name in names {
            let Some(b) = info.broker_addr_table.get(name) else {
                continue;
            };
            for (id, addr) in &b.broker_addrs {
                let rt = runtime(ctx, addr);
                rows.push((cluster.clone(), name.clone(), *id, addr.clone(), rt));
            }
        }
    }
    if ctx.json {
        let out: Vec<Value> = rows
            .iter()
            .map(|(c, n, id, a, rt)| {
                let (runtime, error) = match rt {
                    Ok(kv) => (json!(kv.table), Value::Null),
                    Err(e) => (Value::Null, json!(e)),
                };
                json!({ "cluster": c, "brokerName": n, "brokerId": id, "address": a, "runtime": runtime, "error": error })
            })
            .collect();
        print_json(&json!({ "brokers": out }));
        return Ok(());
    }
    let mut t = table(
        &[
            "cluster",
            "broker",
            "id",
            "address",
            "shard",
            "version",
            "put total",
            "get total",
            "up",
        ],
        2,
    );
    for (c, n, id, a, rt) in &rows {
        let get = |k: &str| match rt {
            Ok(kv) => kv.table.get(k).cloned().unwrap_or_else(|| "-".into()),
            Err(_) => "-".into(),
        };
        t.add_row(vec![
            c.clone(),
            n.clone(),
            id.to_string(),
            a.clone(),
            get("shardScope"),
            match rt {
                Ok(_) => get("brokerVersionDesc"),
                Err(e) => format!("unreachable: {e}"),
            },
            get("msgPutTotalTodayNow"),
            get("msgGetTotalTodayNow"),
            uptime(&get("bootTimestamp")),
        ]);
    }
    println!("{t}");
    Ok(())
}
