//! `shardmq admin`: an mqadmin-like command line tool speaking the remoting
//! protocol to a name server and a broker (one module per command family).
//!
//! * Name server requests (`topic list|route`, `cluster list`) go to
//!   `--namesrv` (default `127.0.0.1:9876`).
//! * Broker requests go to `--broker HOST:PORT`; without it the broker is
//!   found in the name server's cluster info. With shard-aware routes the
//!   name server lists one entry per shard, `<brokerName>-s<k>`, each on its
//!   shard port; every port of a broker accepts every request and forwards
//!   it across shards, so the tool takes a main (non-shard) entry if there
//!   is one and otherwise the first shard entry. Several distinct brokers
//!   registered: pass `--broker`.
//!
//! Output is a human-readable table, or JSON with `--json`. Errors are one
//! line on stderr and a non-zero exit code.

pub mod acl;
pub mod alert;
pub mod audit;
pub mod client;
pub mod cluster;
pub mod controller;
pub mod dlq;
pub mod group;
pub mod message;
pub mod output;
pub mod stats;
pub mod time;
pub mod topic;
pub mod trace;

use std::time::Duration;

use clap::{Args, Subcommand};

use crate::protocol::bodies::{ClusterInfo, JsonBody};
use crate::protocol::codes::{request, response};
use crate::protocol::RemotingCommand;

use client::{Client, Credentials};

#[derive(Args, Debug)]
pub struct AdminArgs {
    /// Name server address.
    #[arg(long, global = true, default_value = "127.0.0.1:9876")]
    pub namesrv: String,
    /// Broker address (HOST:PORT); default: found through the name server.
    #[arg(long, global = true)]
    pub broker: Option<String>,
    /// JSON output for scripts.
    #[arg(long, global = true)]
    pub json: bool,
    /// Seconds to wait for each answer.
    #[arg(long, global = true, default_value_t = 10)]
    pub timeout: u64,
    /// Sign requests as this ACL account (a broker with aclEnable=true);
    /// the secret key comes from --secret-key or SHARDMQ_SECRET_KEY.
    #[arg(long, global = true)]
    pub access_key: Option<String>,
    /// The account's secret key (prefer SHARDMQ_SECRET_KEY: a command
    /// line is visible to every user of the machine).
    #[arg(long, global = true)]
    pub secret_key: Option<String>,
    /// Connect with TLS (a broker or name server with tlsServerMode
    /// permissive or enforcing). The server's certificate is not checked
    /// unless --tls-trust names its CA.
    #[arg(long, global = true)]
    pub tls: bool,
    /// Verify the server's certificate against these PEM CA certificates
    /// (implies --tls).
    #[arg(long, global = true, value_name = "PEM")]
    pub tls_trust: Option<std::path::PathBuf>,
    /// Our certificate and key, for a server that asks for one
    /// (tlsServerNeedClientAuth); implies --tls.
    #[arg(long, global = true, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    #[arg(long, global = true, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Topics: create, update, delete, list, route, status.
    #[command(subcommand)]
    Topic(topic::TopicCommand),
    /// Subscription groups: create, list.
    #[command(subcommand)]
    Group(group::GroupCommand),
    /// Per-queue progress of a consumer group (broker offset, consumer
    /// offset, diff), like mqadmin consumerProgress.
    ConsumerProgress(group::ProgressArgs),
    /// Consumer offsets.
    #[command(subcommand)]
    Offset(group::OffsetCommand),
    /// Clusters and brokers registered with the name server.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// The failover controller quorum: status of its nodes, the broker
    /// groups' masters, epochs and in-sync sets.
    #[command(subcommand)]
    Controller(controller::ControllerCommand),
    /// Per-shard latency percentiles, counters and consumer lag.
    Stats(stats::StatsArgs),
    /// Consumer groups whose members subscribe differently.
    Subscriptions,
    /// Dead letters of a consumer group: list, resend to the original topic.
    #[command(subcommand)]
    Dlq(dlq::DlqCommand),
    /// Alert rules evaluated in the broker: add, list, rm, status.
    #[command(subcommand)]
    Alert(alert::AlertCommand),
    /// Stored messages: by key, by id, in full with who consumed them.
    #[command(subcommand)]
    Message(message::MessageCommand),
    /// Delayed and scheduled messages waiting: per shard, per topic, next due.
    Schedule,
    /// Open transactions: producer group, age, checks so far.
    Transactions {
        /// Only this producer group.
        #[arg(long)]
        group: Option<String>,
    },
    /// ACL accounts and the global white list (aclEnable=true brokers).
    #[command(subcommand)]
    Acl(acl::AclCommand),
    /// The audit log (admin changes, ACL refusals) of a broker on this
    /// machine, read from its data directory.
    Audit(audit::AuditArgs),
}

/// Connection settings shared by the commands.
#[derive(Clone)]
pub struct Ctx {
    pub namesrv: String,
    pub broker: Option<String>,
    pub json: bool,
    pub timeout: Duration,
    pub credentials: Option<Credentials>,
    /// TLS for every connection (`--tls`).
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

impl Ctx {
    /// A connection to `addr` with the command's credentials and TLS.
    pub fn connect(&self, addr: &str) -> Result<Client, String> {
        Ok(
            Client::connect_with(addr, Duration::from_secs(5).min(self.timeout), self.timeout)?
                .with_tls(self.tls.clone())?
                .with_credentials(self.credentials.clone()),
        )
    }

    /// Calls the name server; a non-SUCCESS answer is an error.
    pub fn namesrv_call(&self, cmd: RemotingCommand) -> Result<RemotingCommand, String> {
        let mut c = self.connect(&self.namesrv)?;
        let r = c.call(cmd)?;
        check("name server", &self.namesrv, r)
    }

    /// The broker address: `--broker`, or the one the name server knows.
    pub fn broker_addr(&self) -> Result<String, String> {
        if let Some(b) = &self.broker {
            return Ok(b.clone());
        }
        let r = self.namesrv_call(RemotingCommand::new_request(request::GET_BROKER_CLUSTER_INFO))?;
        let info = ClusterInfo::decode(&r.body).map_err(|e| format!("name server {}: {e}", self.namesrv))?;
        pick_broker(&info).map_err(|e| format!("{e} (name server {})", self.namesrv))
    }

    /// Calls the broker; a non-SUCCESS answer is an error.
    pub fn broker_call(&self, cmd: RemotingCommand) -> Result<RemotingCommand, String> {
        let addr = self.broker_addr()?;
        let mut c = self.connect(&addr)?;
        let r = c.call(cmd)?;
        check("broker", &addr, r)
    }
}

/// One master address of each broker group of `cluster` (any of its shard
/// entries: a shard port takes admin requests for the whole broker).
pub fn cluster_masters(ctx: &Ctx, cluster: &str) -> Result<Vec<String>, String> {
    let r = ctx.namesrv_call(RemotingCommand::new_request(request::GET_BROKER_CLUSTER_INFO))?;
    let info = ClusterInfo::decode(&r.body).map_err(|e| format!("name server {}: {e}", ctx.namesrv))?;
    let names = info
        .cluster_addr_table
        .get(cluster)
        .ok_or_else(|| format!("cluster {cluster} is not registered with name server {}", ctx.namesrv))?;
    let mut by_group: std::collections::BTreeMap<&str, String> = std::collections::BTreeMap::new();
    for n in names {
        if let Some(addr) = info.broker_addr_table.get(n).and_then(|b| b.broker_addrs.get(&0)) {
            by_group.entry(base_broker_name(n)).or_insert_with(|| addr.clone());
        }
    }
    if by_group.is_empty() {
        return Err(format!("cluster {cluster} has no live master"));
    }
    Ok(by_group.into_values().collect())
}

/// `<name>-s<k>` → `<name>`.
pub fn base_broker_name(name: &str) -> &str {
    match name.rsplit_once("-s") {
        Some((base, k)) if !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()) => base,
        _ => name,
    }
}

/// The master address of the single broker in `info` (main entry first).
pub fn pick_broker(info: &ClusterInfo) -> Result<String, String> {
    let bases: std::collections::BTreeSet<&str> = info.broker_addr_table.keys().map(|n| base_broker_name(n)).collect();
    if bases.len() > 1 {
        let names: Vec<&str> = bases.into_iter().collect();
        return Err(format!(
            "several brokers are registered ({}): choose one with --broker HOST:PORT",
            names.join(", ")
        ));
    }
    let master = |name: &String| {
        info.broker_addr_table
            .get(name)
            .and_then(|b| b.broker_addrs.get(&0))
            .cloned()
    };
    let main = info
        .broker_addr_table
        .keys()
        .filter(|n| base_broker_name(n) == n.as_str())
        .find_map(master);
    main.or_else(|| info.broker_addr_table.keys().find_map(master))
        .ok_or_else(|| "no broker is registered with the name server".to_string())
}

fn check(what: &str, addr: &str, r: RemotingCommand) -> Result<RemotingCommand, String> {
    if r.code == response::SUCCESS {
        return Ok(r);
    }
    let name = response::name(r.code).unwrap_or("error");
    Err(format!(
        "{what} {addr} answered {name} ({}): {}",
        r.code,
        r.remark.as_deref().unwrap_or("no remark")
    ))
}

/// Runs one `shardmq admin` command.
pub fn run(args: AdminArgs) -> Result<(), String> {
    let secret_given = args.secret_key.is_some();
    let secret = args.secret_key.or_else(|| std::env::var("SHARDMQ_SECRET_KEY").ok());
    let credentials = match (args.access_key, secret) {
        (Some(ak), Some(sk)) => Some(Credentials::new(ak, sk)),
        (Some(_), None) => return Err("--access-key needs a secret key: --secret-key or SHARDMQ_SECRET_KEY".into()),
        (None, Some(_)) if secret_given => return Err("--secret-key needs --access-key".into()),
        (None, _) => None,
    };
    let tls = if args.tls || args.tls_trust.is_some() || args.tls_cert.is_some() {
        let settings = crate::runtime::tls::ClientSettings {
            verify_server: args.tls_trust.is_some(),
            trust: args.tls_trust,
            cert: args.tls_cert,
            key: args.tls_key,
        };
        Some(crate::runtime::tls::client_config(&settings)?)
    } else {
        None
    };
    let ctx = Ctx {
        namesrv: args.namesrv,
        broker: args.broker,
        json: args.json,
        timeout: Duration::from_secs(args.timeout.max(1)),
        credentials,
        tls,
    };
    match args.command {
        AdminCommand::Topic(c) => topic::run(&ctx, c),
        AdminCommand::Group(c) => group::run(&ctx, c),
        AdminCommand::ConsumerProgress(a) => group::progress(&ctx, a),
        AdminCommand::Offset(c) => group::offset(&ctx, c),
        AdminCommand::Cluster(c) => cluster::run(&ctx, c),
        AdminCommand::Controller(c) => controller::run(&ctx, c),
        AdminCommand::Stats(a) => stats::stats(&ctx, a),
        AdminCommand::Subscriptions => stats::subscriptions(&ctx),
        AdminCommand::Dlq(c) => dlq::run(&ctx, c),
        AdminCommand::Message(c) => message::run(&ctx, c),
        AdminCommand::Alert(c) => alert::run(&ctx, c),
        AdminCommand::Schedule => stats::schedule(&ctx),
        AdminCommand::Transactions { group } => stats::transactions(&ctx, group.as_deref()),
        AdminCommand::Acl(c) => acl::run(&ctx, c),
        AdminCommand::Audit(a) => audit::run(&ctx, a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::bodies::BrokerData;

    fn info(entries: &[(&str, &str)]) -> ClusterInfo {
        let mut i = ClusterInfo::default();
        for (name, addr) in entries {
            i.broker_addr_table.insert(
                name.to_string(),
                BrokerData {
                    broker_addrs: [(0, addr.to_string())].into(),
                    broker_name: name.to_string(),
                    ..BrokerData::default()
                },
            );
        }
        i
    }

    #[test]
    fn broker_is_picked_main_entry_first() {
        assert_eq!(base_broker_name("broker-a-s12"), "broker-a");
        assert_eq!(base_broker_name("broker-a"), "broker-a");
        assert_eq!(base_broker_name("my-svc"), "my-svc");
        let shards = info(&[("broker-a-s1", "h:2"), ("broker-a-s0", "h:1")]);
        assert_eq!(pick_broker(&shards).unwrap(), "h:1");
        let main = info(&[("broker-a-s0", "h:1"), ("broker-a", "h:0")]);
        assert_eq!(pick_broker(&main).unwrap(), "h:0");
        let two = info(&[("broker-a", "h:0"), ("broker-b-s0", "h:9")]);
        assert!(pick_broker(&two).unwrap_err().contains("broker-a, broker-b"));
        assert!(pick_broker(&ClusterInfo::default()).is_err());
    }
}
