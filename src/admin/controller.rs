//! `controller status|groups`: the failover controller quorum
//! (`shardmq controller`) as it sees itself and the broker groups.

use clap::Subcommand;
use serde_json::json;
use shardmq_controller::client::Client;

use super::output::{print_json, table};
use super::Ctx;

#[derive(Subcommand, Debug)]
pub enum ControllerCommand {
    /// Each controller node: its Raft leader, term, last applied entry.
    Status {
        /// The controllers, host:port;host:port;...
        #[arg(long)]
        controllers: String,
    },
    /// Each broker group: master, master epoch, in-sync set, members.
    Groups {
        #[arg(long)]
        controllers: String,
    },
}

fn addrs(s: &str) -> Vec<String> {
    s.split([';', ','])
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(String::from)
        .collect()
}

pub fn run(ctx: &Ctx, cmd: ControllerCommand) -> Result<(), String> {
    match cmd {
        ControllerCommand::Status { controllers } => {
            let list = addrs(&controllers);
            let mut rows = Vec::new();
            for a in &list {
                let mut c = Client::new(vec![a.clone()], ctx.timeout);
                rows.push((a.clone(), c.status(a).map_err(|e| e.to_string())));
            }
            if ctx.json {
                let out: Vec<_> = rows
                    .iter()
                    .map(|(a, s)| match s {
                        Ok(s) => json!({ "address": a, "status": s }),
                        Err(e) => json!({ "address": a, "error": e }),
                    })
                    .collect();
                print_json(&json!({ "controllers": out }));
                return Ok(());
            }
            let mut t = table(&["address", "node", "leader", "term", "applied", "members"], 1);
            for (a, s) in rows {
                match s {
                    Ok(s) => t.add_row(vec![
                        a,
                        s.node_id.to_string(),
                        s.leader_id.map_or("-".into(), |l| l.to_string()),
                        s.term.to_string(),
                        s.last_applied.map_or("-".into(), |l| l.to_string()),
                        format!("{:?}", s.members),
                    ]),
                    Err(e) => t.add_row(vec![a, format!("unreachable: {e}")]),
                };
            }
            println!("{t}");
            Ok(())
        }
        ControllerCommand::Groups { controllers } => {
            let mut c = Client::new(addrs(&controllers), ctx.timeout);
            let groups = c.groups().map_err(|e| e.to_string())?;
            if ctx.json {
                print_json(&json!({ "groups": groups }));
                return Ok(());
            }
            let mut t = table(&["cluster", "broker", "master", "epoch", "in sync", "members"], 2);
            for g in groups {
                let members: Vec<String> = g
                    .brokers
                    .iter()
                    .map(|b| format!("{}@{}{}", b.broker_id, b.addr, if b.alive { "" } else { " (down)" }))
                    .collect();
                t.add_row(vec![
                    g.cluster,
                    g.broker_name,
                    g.master_id.map_or("none".into(), |m| m.to_string()),
                    g.master_epoch.to_string(),
                    format!("{:?}", g.sync_state_set),
                    members.join(" "),
                ]);
            }
            println!("{t}");
            Ok(())
        }
    }
}
