//! The broker's link to the controller quorum (controller mode), on a
//! thread of its own: the controller client is blocking, and a shard
//! thread must never block.
//!
//! Every `brokerHeartbeatInterval` it sends a heartbeat (the first one a
//! registration) with this broker's identity, its replication address,
//! the epoch it knows and its durable log end summed over the shards (the
//! controller elects the in-sync broker that holds the most). Each answer
//! is the group as the controller has it; shard 0 gets it
//! ([`RoleView`]) and passes it to every shard ([`super::role`]).
//!
//! Two duties besides:
//! * **The write lease** ([`WriteLease`]): an answer naming this broker
//!   master extends it to `sent + masterLeaseMillis` (at most two thirds
//!   of the controller's heartbeat timeout). Any other answer ends it; no
//!   answer lets it lapse. The controller answers only from state a
//!   quorum confirmed, and refuses heartbeats of a group whose election
//!   is in flight, so no answer can extend the lease of a master being
//!   replaced.
//! * **The in-sync set**, while master: a slave is in sync when every
//!   master shard's stream to it caught up with the durable end within
//!   `haMaxTimeSlaveNotCatchup` (each shard publishes that in
//!   [`Shared::caught_up`]); when the set the controller holds differs, the
//!   agent asks it to change (AlterSyncStateSet, fenced by master epoch
//!   and set epoch). A slave outside the set counts as caught up only
//!   once the shards already wait for it (`master.rs`: a candidate), so
//!   it joins holding every acknowledged message. A slave that
//!   disconnects stays in the set until `haMaxTimeSlaveNotCatchup`
//!   passes (a SYNC_MASTER's sends time out meanwhile), as RocketMQ's.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::channel::mpsc::UnboundedSender;
use shardmq_controller::client::Client;
use shardmq_controller::{AlterReq, BrokerReq, GroupView};

use crate::config::BrokerConfig;
use crate::store::replication::WriteLease;

/// What the controller said of the group, as the shards need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleView {
    pub master_id: Option<u64>,
    /// The master's base replication address (shard k: port + k).
    pub master_ha_addr: Option<String>,
    pub epoch: u32,
    /// The in-sync replica set, master included.
    pub sync_state_set: Vec<u64>,
}

/// A master shard's slaves (brokerId) and when each last caught up.
pub type CaughtUp = Vec<(u64, Option<Instant>)>;

/// What the shards tell the agent, and the lease it gives them.
pub struct Shared {
    pub lease: Arc<WriteLease>,
    /// Each shard's durable log end.
    pub durable: Vec<AtomicU64>,
    /// Per master shard: its connected slaves (broker ids) and when each
    /// last caught up with the durable end.
    pub caught_up: Vec<Mutex<CaughtUp>>,
    pub stop: AtomicBool,
}

impl Shared {
    pub fn new(shards: usize) -> Arc<Shared> {
        Arc::new(Shared {
            lease: WriteLease::new(),
            durable: (0..shards).map(|_| AtomicU64::new(0)).collect(),
            caught_up: (0..shards).map(|_| Mutex::new(Vec::new())).collect(),
            stop: AtomicBool::new(false),
        })
    }

    /// Slaves whose every shard caught up within `window`.
    fn in_sync(&self, window: Duration) -> BTreeSet<u64> {
        let mut out: Option<BTreeSet<u64>> = None;
        for m in &self.caught_up {
            let list = match m.lock() {
                Ok(l) => l,
                Err(p) => p.into_inner(),
            };
            let here: BTreeSet<u64> = list
                .iter()
                .filter(|(_, t)| t.is_some_and(|t| t.elapsed() <= window))
                .map(|(id, _)| *id)
                .collect();
            out = Some(match out {
                None => here,
                Some(o) => o.intersection(&here).copied().collect(),
            });
        }
        out.unwrap_or_default()
    }
}

fn view_of(g: &GroupView) -> RoleView {
    RoleView {
        master_id: g.master_id,
        master_ha_addr: g.master_ha_addr.clone(),
        epoch: g.master_epoch,
        sync_state_set: g.sync_state_set.clone(),
    }
}

/// Starts the agent thread; views go to `tx` (shard 0).
pub fn start(cfg: Arc<BrokerConfig>, shared: Arc<Shared>, tx: UnboundedSender<RoleView>) -> Result<(), String> {
    std::thread::Builder::new()
        .name("controller-agent".into())
        .spawn(move || run(&cfg, &shared, &tx))
        .map(|_| ())
        .map_err(|e| format!("cannot start the controller agent: {e}"))
}

fn run(cfg: &BrokerConfig, shared: &Shared, tx: &UnboundedSender<RoleView>) {
    let me = cfg.broker_id;
    let timeout = cfg.broker_heartbeat_interval.max(Duration::from_millis(500));
    let mut client = Client::new(cfg.controller_addrs.clone(), timeout);
    let mut registered = false;
    let mut epoch = 0u32;
    let mut last_error: Option<(String, Instant)> = None;
    while !shared.stop.load(Ordering::SeqCst) && !crate::runtime::shutdown::SHUTDOWN.load(Ordering::SeqCst) {
        let started = Instant::now();
        let req = BrokerReq {
            cluster: cfg.broker_cluster_name.clone(),
            broker_name: cfg.broker_name.clone(),
            broker_id: me,
            addr: cfg.broker_addr(),
            ha_addr: std::net::SocketAddr::new(cfg.broker_ip1, cfg.ha_port(0)).to_string(),
            epoch,
            offset: shared.durable.iter().map(|d| d.load(Ordering::SeqCst)).sum(),
        };
        let answer = if registered {
            client.heartbeat(&req)
        } else {
            client.register(&req)
        };
        match answer {
            Ok(mut g) => {
                registered = true;
                last_error = None;
                if g.master_id == Some(me) {
                    shared
                        .lease
                        .grant_until(started + lease(cfg.master_lease, g.heartbeat_timeout_ms));
                    if let Some(changed) = alter_in_sync(cfg, shared, &mut client, &g) {
                        g = changed;
                    }
                } else {
                    shared.lease.revoke();
                }
                epoch = g.master_epoch;
                if tx.unbounded_send(view_of(&g)).is_err() {
                    return;
                }
            }
            Err(e) => {
                let e = e.to_string();
                let repeat = last_error
                    .as_ref()
                    .is_some_and(|(l, at)| *l == e && at.elapsed() < Duration::from_secs(60));
                if !repeat {
                    log::warn!("controller {}: {e}", cfg.controller_addrs.join(";"));
                    last_error = Some((e, Instant::now()));
                }
            }
        }
        let next = started + cfg.broker_heartbeat_interval;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
}

/// The lease a heartbeat answer grants: `masterLeaseMillis`, but never
/// more than two thirds of the controller's heartbeat timeout (which it
/// states in every answer), whatever the two were configured to.
fn lease(configured: Duration, controller_timeout_ms: u64) -> Duration {
    if controller_timeout_ms == 0 {
        return configured;
    }
    configured.min(Duration::from_millis(controller_timeout_ms * 2 / 3))
}

/// Master: asks the controller to make the in-sync set what the shards
/// see; the group as it is after, when it changed.
fn alter_in_sync(cfg: &BrokerConfig, shared: &Shared, client: &mut Client, g: &GroupView) -> Option<GroupView> {
    let me = cfg.broker_id;
    let mut want = shared.in_sync(cfg.ha_max_time_slave_not_catchup);
    // Only brokers the controller knows can be named.
    want.retain(|id| g.brokers.iter().any(|b| b.broker_id == *id));
    want.insert(me);
    let have: BTreeSet<u64> = g.sync_state_set.iter().copied().collect();
    if want == have {
        return None;
    }
    let req = AlterReq {
        cluster: cfg.broker_cluster_name.clone(),
        broker_name: cfg.broker_name.clone(),
        master_id: me,
        master_epoch: g.master_epoch,
        sync_state_set: want.iter().copied().collect(),
        sync_state_set_epoch: g.sync_state_set_epoch,
    };
    match client.alter_sync_state_set(&req) {
        Ok(after) => {
            log::info!(
                "{}: in-sync set {:?} -> {:?} (epoch {})",
                cfg.broker_name,
                g.sync_state_set,
                after.sync_state_set,
                after.sync_state_set_epoch
            );
            Some(after)
        }
        Err(e) => {
            log::warn!("{}: changing the in-sync set to {want:?}: {e}", cfg.broker_name);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(shared: &Shared, k: usize, v: CaughtUp) {
        *shared.caught_up[k].lock().unwrap() = v;
    }

    #[test]
    fn the_lease_stays_below_the_controllers_timeout() {
        let l = Duration::from_millis(5000);
        assert_eq!(lease(l, 3000), Duration::from_millis(2000));
        assert_eq!(lease(Duration::from_millis(1000), 3000), Duration::from_millis(1000));
        assert_eq!(lease(l, 0), l, "a controller that does not say");
    }

    #[test]
    fn a_slave_is_in_sync_only_when_every_shard_caught_up_within_the_window() {
        let s = Shared::new(2);
        let now = Instant::now();
        let old = now - Duration::from_secs(30);
        set(&s, 0, vec![(2, Some(now)), (3, Some(now)), (4, Some(old)), (5, None)]);
        set(&s, 1, vec![(2, Some(now)), (3, None), (4, Some(now))]);
        let got: Vec<u64> = s.in_sync(Duration::from_secs(10)).into_iter().collect();
        assert_eq!(
            got,
            vec![2],
            "3 never caught up on shard 1, 4 is stale on shard 0, 5 never"
        );
        assert!(Shared::new(1).in_sync(Duration::from_secs(10)).is_empty());
    }
}
