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
    // stateVersion: the master epoch in controller mode, as RocketMQ's
    // brokers send it: a name server keeps the registration of the newer
    // epoch when two processes claim the same brokerId.
    let state_version = if cfg.enable_controller_mode {
        shard.role.epoch()
    } else {
        0
    };
    let data_version = json!({ "counter": version, "stateVersion": state_version, "timestamp": now });
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
        // RocketMQ's name server refuses a broker's first registration
        // when it carries exactly one topic (that shape is reserved for
        // registering a single topic of a known broker). A slave before
        // its master's metadata reaches it can have just one: it
        // registers none instead — a slave's topics make no routes while
        // its master is registered — so it is known, and learns where its
        // master is.
        if m.len() == 1 && shard.is_slave_now() {
            m.clear();
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
    cmd.ext_fields
        .insert("brokerId", shard.registered_broker_id().to_string());
    cmd.ext_fields.insert("compressed", "false");
    cmd.ext_fields
        .insert("bodyCrc32", crate::protocol::crc32_masked(&e.body).to_string());
    cmd
}

/// Registers every entry with every name server once; returns how many
/// registrations succeeded, and (a slave without `haMasterAddress`)
/// whether every shard now knows its master's replication address.
/// `sign`: the account registrations are signed with (name servers with
/// `aclEnable`).
pub async fn register_all(
    shard: &Shard,
    clients: &mut [RemotingClient],
    version: u64,
    sign: Option<&crate::admin::client::Credentials>,
) -> (usize, bool) {
    let entries = entries(shard, version);
    let learns = shard.cfg.broker_role == crate::config::BrokerRole::Slave
        && shard.cfg.ha_master_address.is_none()
        && !shard.cfg.enable_controller_mode;
    let mut learned = vec![false; entries.len()];
    let mut ok = 0;
    for c in clients.iter_mut() {
        for (i, e) in entries.iter().enumerate() {
            let mut cmd = register_request(shard, e);
            if let Some(creds) = sign {
                creds.sign(&mut cmd);
            }
            match c.call(cmd, Duration::from_secs(3)).await {
                Ok(r) if r.code == response::SUCCESS => {
                    ok += 1;
                    if let (true, Some(ha)) = (learns, r.ext_str("haServerAddr")) {
                        tell_master(shard, i, entries.len(), ha).await;
                        learned[i] = true;
                    }
                }
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
    (ok, !learns || learned.iter().all(|l| *l))
}

/// A slave learns its master's replication address as RocketMQ's slaves
/// do: the name server answers a slave's registration with the master's
/// `haServerAddr`. With shard-aware routes entry `i` is shard `i`'s, and
/// the address is that master shard's; a single entry gives the master's
/// base port, shard k's being base + k.
async fn tell_master(shard: &Shard, entry: usize, entries: usize, ha: &str) {
    let targets: Vec<(u16, String)> = if entries > 1 || shard.shard_count() == 1 {
        vec![(entry as u16, ha.to_string())]
    } else {
        let per_shard: Result<Vec<_>, _> = (0..shard.shard_count())
            .map(|k| super::ha::slave::master_addr(ha, k).map(|a| (k, a)))
            .collect();
        match per_shard {
            Ok(t) => t,
            Err(e) => {
                log::warn!("the name server gave the master's haServerAddr as {ha:?}: {e}");
                return;
            }
        }
    };
    for (k, addr) in targets {
        if k == shard.id {
            shard.set_ha_master(addr);
        } else {
            shard.mesh.send(k, super::mesh::Event::HaMaster(addr)).await;
        }
    }
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
        let role_seen = (shard.role.get(), shard.role.changed.generation());
        version += 1;
        let (_, masters_known) = register_all(&shard, &mut clients, version, sign.as_ref()).await;
        if let Some(tx) = first_round.take() {
            let _ = tx.send(());
        }
        // A slave still waiting to hear where its master is asks again soon.
        let period = if masters_known {
            shard.cfg.register_namesrv_period
        } else {
            Duration::from_secs(1)
        };
        // A new role registers at once (a promoted slave as brokerId 0).
        let role_changed = async {
            let mut g = role_seen.1;
            loop {
                shard.role.changed.changed_since(g).await;
                g = shard.role.changed.generation();
                if shard.role.get() != role_seen.0 {
                    return;
                }
            }
        };
        future::or(
            ctl.topics_changed.changed_since(seen),
            future::or(role_changed, glommio::timer::sleep(period)),
        )
        .await;
    }
}
