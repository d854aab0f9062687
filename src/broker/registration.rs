//! Registration with the name servers (REGISTER_BROKER, 103): at start,
//! every `registerNameServerPeriod` (30 s), and right after topics change.
//!
//! With shard-aware routes each shard is registered as its own broker
//! entry `<brokerName>-s<k>` whose master address is the shard's own port
//! and whose topics list only the queues that shard owns (numbered from 0
//! in that entry). Otherwise one entry `<brokerName>` on the main port
//! lists every queue and the main port forwards across shards.
//!
//! `TBW102` (the auto-create template) is listed like any topic: entry
//! `-s<k>` advertises the template queues shard `k` owns, and a topic
//! auto-created through the template gets `min(defaultTopicQueueNums of the
//! send, that count)` queues on each entry — the count the client derived
//! from this route ([`super::metadata::auto_create_assignment`]).

use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_lite::future;
use serde_json::{json, Map, Value};

use crate::protocol::codes::{request, response};
use crate::protocol::RemotingCommand;
use crate::runtime::client::RemotingClient;

use super::shard::Shard;

/// One broker entry as the name server sees it.
pub struct Entry {
    pub broker_name: String,
    pub addr: String,
    /// Where this entry's slaves replicate from (a master's HA port).
    pub ha_addr: String,
    pub body: Vec<u8>,
}

/// The entries this broker registers, with their topic tables.
pub fn entries(shard: &Shard, version: u64) -> Vec<Entry> {
    let cfg = &shard.cfg;
    let Some(ctl) = &shard.controller else {
        return Vec::new();
    };
    let topics = ctl.topics();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let data_version = json!({ "counter": version, "stateVersion": 0, "timestamp": now });
    let table = |view: Option<u16>| -> Value {
        let mut m = Map::new();
        for (name, t) in &topics {
            let (read, write) = match view {
                None => (t.read_queue_nums, t.write_queue_nums),
                Some(k) => t.shard_view(k),
            };
            if read == 0 && write == 0 {
                continue;
            }
            m.insert(
                name.clone(),
                json!({
                    "attributes": {}, "order": t.order, "perm": t.perm, "readQueueNums": read,
                    "topicFilterType": "SINGLE_TAG", "topicName": name, "topicSysFlag": t.topic_sys_flag,
                    "writeQueueNums": write
                }),
            );
        }
        Value::Object(m)
    };
    let body = |view| {
        json!({
            "filterServerList": [],
            "topicConfigSerializeWrapper": { "dataVersion": data_version.clone(), "topicConfigTable": table(view) }
        })
        .to_string()
        .into_bytes()
    };
    if cfg.shard_aware_routes {
        (0..shard.shard_count())
            .map(|k| Entry {
                broker_name: format!("{}-s{k}", cfg.broker_name),
                addr: format!("{}:{}", cfg.broker_ip1, cfg.shard_port(k as usize)),
                ha_addr: format!("{}:{}", cfg.broker_ip1, cfg.ha_port(k as usize)),
                body: body(Some(k)),
            })
            .collect()
    } else {
        vec![Entry {
            broker_name: cfg.broker_name.clone(),
            addr: cfg.broker_addr(),
            ha_addr: format!("{}:{}", cfg.broker_ip1, cfg.ha_port(0)),
            body: body(None),
        }]
    }
}

fn register_request(shard: &Shard, e: &Entry) -> RemotingCommand {
    let cfg = &shard.cfg;
    let mut cmd = RemotingCommand::new_request(request::REGISTER_BROKER).with_body(e.body.clone());
    cmd.ext_fields.insert("brokerName", e.broker_name.as_str());
    cmd.ext_fields.insert("brokerAddr", e.addr.as_str());
    cmd.ext_fields.insert("clusterName", cfg.broker_cluster_name.as_str());
    cmd.ext_fields.insert("haServerAddr", e.ha_addr.as_str());
    cmd.ext_fields.insert("brokerId", cfg.broker_id.to_string());
    cmd.ext_fields.insert("compressed", "false");
    cmd.ext_fields
        .insert("bodyCrc32", crate::protocol::crc32_masked(&e.body).to_string());
    cmd
}

/// Registers every entry with every name server once; returns how many
/// registrations succeeded.
/// `sign`: the account registrations are signed with (name servers with
/// `aclEnable`).
pub async fn register_all(
    shard: &Shard,
    clients: &mut [RemotingClient],
    version: u64,
    sign: Option<&crate::admin::client::Credentials>,
) -> usize {
    let entries = entries(shard, version);
    let mut ok = 0;
    for c in clients.iter_mut() {
        for e in &entries {
            let mut cmd = register_request(shard, e);
            if let Some(creds) = sign {
                creds.sign(&mut cmd);
            }
            match c.call(cmd, Duration::from_secs(3)).await {
                Ok(r) if r.code == response::SUCCESS => ok += 1,
                Ok(r) => log::warn!(
                    "register {} with {}: code {} {:?}",
                    e.broker_name,
                    c.addr(),
                    r.code,
                    r.remark
                ),
                Err(e2) => log::warn!("register {} with {}: {e2}", e.broker_name, c.addr()),
            }
        }
    }
    ok
}

/// The registration loop of shard 0.
///
/// `first_round` is told when the first round of registrations has been
/// tried (whatever its outcome), so that start-up can report ready only
/// once clients can find the broker through the name servers that answer.
/// With `tls` (`tlsEnable`), the connections to name servers use TLS;
/// with `sign`, registrations are signed with that account.
pub async fn run(
    shard: Rc<Shard>,
    first_round: futures::channel::oneshot::Sender<()>,
    tls: Option<crate::runtime::tls::ClientTls>,
    sign: Option<crate::admin::client::Credentials>,
) {
    let Some(ctl) = &shard.controller else { return };
    let mut clients: Vec<RemotingClient> = shard
        .cfg
        .namesrv_addrs
        .iter()
        .map(|a| RemotingClient::new(a).with_tls(tls.clone()))
        .collect();
    let mut version = 1u64;
    let mut first_round = Some(first_round);
    loop {
        let seen = ctl.topics_changed.generation();
        version += 1;
        register_all(&shard, &mut clients, version, sign.as_ref()).await;
        if let Some(tx) = first_round.take() {
            let _ = tx.send(());
        }
        let period = shard.cfg.register_namesrv_period;
        future::or(ctl.topics_changed.changed_since(seen), glommio::timer::sleep(period)).await;
    }
}
