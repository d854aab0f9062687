//! A shard's role in its broker group, and how it changes in controller
//! mode (`enableControllerMode`): the controller quorum (crate
//! `shardmq-controller`) names each group's master and epoch; shard 0's
//! agent ([`super::agent`]) hears it and every shard applies it here.
//!
//! Transitions, per shard, one at a time (the newest view wins):
//! * **none → slave / slave → slave of a new master**: follow the master
//!   the view names ([`super::slave::follow`]); the handshake compares
//!   epoch histories and truncates whatever this log holds that the
//!   master's does not.
//! * **none or slave → master** (promotion): the follower is stopped and
//!   waited for, `(epoch, log end)` is recorded durably in the shard's
//!   epoch history, writes open, and the tasks that write on their own
//!   (scheduled delivery, transaction check-back, POP revival, trace
//!   store) start. Writes also need the agent's lease
//!   ([`crate::store::replication::WriteLease`]).
//! * **master → master of a newer epoch** (re-elected after a gap): a new
//!   history entry.
//! * **master → slave** (demotion: another broker is master of a newer
//!   epoch — this one was partitioned or paused past its lease): writes
//!   are fenced at once and the broker shuts down ([`DEMOTED`]), then
//!   starts again in the same process (`restartWhenDemoted`, default:
//!   it re-executes itself, `crate::runtime::reexec`) or exits with
//!   status 3 for a supervisor (systemd's `Restart=`,
//!   `scripts/cluster.sh`). Started again it joins as a slave and
//!   truncates its unreplicated tail in the handshake. A fresh process is
//!   the simple and safe way to drop every piece of master state (timer
//!   wheel, POP and transaction tables, their tasks) built from records
//!   that may be truncated.

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::super::shard::Shard;
pub use super::agent::RoleView;
use super::epochs;
pub use super::state::{Role, RoleState};

/// Set when the controller demoted this broker while it was master: the
/// process shuts down, then starts again in place or exits with status 3
/// (`restartWhenDemoted`).
pub static DEMOTED: AtomicBool = AtomicBool::new(false);

/// Applies the views shard 0's agent sends, one at a time, for as long
/// as the shard runs.
pub async fn run(shard: Rc<Shard>, tls: Option<crate::runtime::tls::ClientTls>) {
    let state = &shard.role;
    match crate::runtime::blocking::run({
        let dir = shard.store.dir();
        move || epochs::load(&dir)
    })
    .await
    {
        Ok(h) => *state.history.borrow_mut() = h,
        Err(e) => {
            // Without its history this shard cannot tell what it shares
            // with a master: it stays without a role (refusing writes).
            log::error!("shard {}: epoch history: {e}; this broker takes no role", shard.id);
            return;
        }
    }
    while !shard.store.is_stopping() {
        let seen = state.pending_changed.generation();
        let view = state.pending.borrow_mut().take();
        match view {
            Some(v) => {
                if !apply(&shard, v.clone(), tls.as_ref()).await {
                    // Shard 0 sends a view only when it changes: a failed
                    // one (a history that could not be saved, say) is tried
                    // again here unless a newer one came meanwhile.
                    glommio::timer::sleep(Duration::from_secs(1)).await;
                    let mut p = state.pending.borrow_mut();
                    if p.is_none() {
                        *p = Some(v);
                    }
                }
            }
            None => {
                futures_lite::future::or(state.pending_changed.changed_since(seen), async {
                    glommio::timer::sleep(Duration::from_secs(1)).await;
                })
                .await
            }
        }
    }
}

/// Applies one view; false when it could not be (to be tried again).
async fn apply(shard: &Rc<Shard>, v: RoleView, tls: Option<&crate::runtime::tls::ClientTls>) -> bool {
    let state = &shard.role;
    let me = shard.cfg.broker_id;
    let k = shard.id;
    match (state.get(), v.master_id) {
        (Role::Master { epoch }, Some(m)) if m == me => {
            if epoch != v.epoch && !record_epoch(shard, v.epoch).await {
                return false;
            }
            set_required(shard, &v);
            state.set(Role::Master { epoch: v.epoch });
        }
        (_, Some(m)) if m == me => {
            // Promotion: the follower stops before anything is recorded.
            state.set(Role::Pending);
            while state.following.get() || state.truncating.get() {
                let seen = state.changed.generation();
                futures_lite::future::or(state.changed.changed_since(seen), async {
                    glommio::timer::sleep(Duration::from_millis(20)).await;
                })
                .await;
            }
            // The epoch starts at a durable offset: recorded past what a
            // crash keeps, its records would be written again below the
            // start, and a returning old master would keep records of the
            // epoch before that this log replaced.
            if !shard.store.wait_written_durable(Duration::from_secs(10)).await {
                log::warn!("shard {k}: the log is not durable for promotion yet; trying again");
                return false;
            }
            if !record_epoch(shard, v.epoch).await {
                return false;
            }
            set_required(shard, &v);
            state.set(Role::Master { epoch: v.epoch });
            // Until the replication task judges the slaves, a SYNC_MASTER
            // waits for them (never the reverse: an append acknowledged
            // without a slave the in-sync set names would be lost with us).
            if shard.cfg.broker_role == crate::config::BrokerRole::SyncMaster {
                shard.store.set_replica_wait(true);
            }
            shard.store.set_slave_of(None);
            log::info!(
                "shard {k}: master of epoch {} from log offset {}",
                v.epoch,
                shard.store.write_log_offset()
            );
            if state.start_master_tasks() {
                crate::broker::server::spawn_master_tasks(shard);
            }
        }
        (Role::Master { epoch }, Some(m)) => {
            shard
                .store
                .set_slave_of(Some(format!("broker {m}, master of epoch {}", v.epoch)));
            log::error!(
                "shard {k}: demoted: broker {m} is master of epoch {} (this one was master of epoch {epoch}); \
                 writes are fenced and the broker shuts down — {}",
                v.epoch,
                if shard.cfg.restart_when_demoted {
                    "then starts again in place to rejoin as a slave"
                } else {
                    "start it again to rejoin as a slave (restartWhenDemoted=false)"
                }
            );
            if !DEMOTED.swap(true, Ordering::SeqCst) {
                crate::runtime::shutdown::SHUTDOWN.store(true, Ordering::SeqCst);
            }
        }
        (_, Some(m)) => {
            let Some(base) = v.master_ha_addr.as_deref() else {
                log::warn!("shard {k}: the controller names broker {m} master without a replication address");
                return false;
            };
            match super::slave::master_addr(base, k) {
                Ok(a) => shard.set_ha_master(a),
                Err(e) => {
                    log::warn!("shard {k}: {e}");
                    return false;
                }
            }
            shard
                .store
                .set_slave_of(Some(format!("broker {m}, master of epoch {}", v.epoch)));
            state.set(Role::Slave { epoch: v.epoch });
            if !state.following.get() {
                state.set_following(true);
                let (shard, tls) = (shard.clone(), tls.cloned());
                glommio::spawn_local(async move {
                    super::slave::follow(shard.clone(), tls).await;
                    shard.role.set_following(false);
                })
                .detach();
            }
        }
        // No master: a master keeps its role but its lease lapses (the
        // agent grants none); a slave keeps trying its last master.
        (_, None) => {}
    }
    true
}

/// Records `(epoch, log end)` durably; false (and the shard stays fenced)
/// when the history cannot be saved.
async fn record_epoch(shard: &Shard, epoch: u32) -> bool {
    let end = shard.store.write_log_offset();
    let mut h = shard.role.history.borrow().clone();
    if !epochs::begin(&mut h, epoch, end) {
        return true;
    }
    match epochs::save(&shard.store.dir(), &h).await {
        Ok(()) => {
            *shard.role.history.borrow_mut() = h;
            true
        }
        Err(e) => {
            log::error!(
                "shard {}: cannot record master epoch {epoch}: {e}; writes stay fenced",
                shard.id
            );
            false
        }
    }
}

fn set_required(shard: &Shard, v: &RoleView) {
    let me = shard.cfg.broker_id;
    let req: Vec<u64> = v.sync_state_set.iter().copied().filter(|id| *id != me).collect();
    let mut cur = shard.role.required.borrow_mut();
    if cur.as_ref() != Some(&req) {
        *cur = Some(req);
        drop(cur);
        shard.role.changed.notify_all();
    }
}
