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
//!   are fenced at once and the broker stops (exit status 3,
//!   [`DEMOTED`]). On its next start it joins as a slave and truncates
//!   its unreplicated tail in the handshake. Stopping is the simple and
//!   safe way to drop every piece of master state (timer wheel, POP and
//!   transaction tables) built from records that may be truncated; a
//!   supervisor (systemd's `Restart=`, `scripts/cluster.sh`) restarts it.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::store::notify::Notify;

use super::super::shard::Shard;
use super::epochs::{self, History};

/// Set when the controller demoted this broker while it was master: the
/// process stops and exits with status 3.
pub static DEMOTED: AtomicBool = AtomicBool::new(false);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Controller mode, before the controller named a master.
    Pending,
    Master {
        epoch: u32,
    },
    Slave {
        epoch: u32,
    },
}

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

pub struct RoleState {
    role: Cell<Role>,
    /// Fires on every role change and every new view.
    pub changed: Notify,
    pub history: RefCell<History>,
    /// Controller mode, master: the slaves whose acks a SYNC_MASTER
    /// waits for (the in-sync set without this broker). `None` outside
    /// controller mode: any in-sync slave's ack will do.
    pub required: RefCell<Option<Vec<u64>>>,
    /// The newest view not applied yet.
    pending: RefCell<Option<RoleView>>,
    pending_changed: Notify,
    following: Cell<bool>,
    master_tasks: Cell<bool>,
}

impl RoleState {
    pub fn new(controller_mode: bool, configured: crate::config::BrokerRole) -> RoleState {
        let role = match (controller_mode, configured) {
            (true, _) => Role::Pending,
            (false, crate::config::BrokerRole::Slave) => Role::Slave { epoch: 0 },
            (false, _) => Role::Master { epoch: 0 },
        };
        RoleState {
            role: Cell::new(role),
            changed: Notify::default(),
            history: RefCell::new(Vec::new()),
            required: RefCell::new(controller_mode.then(Vec::new)),
            pending: RefCell::new(None),
            pending_changed: Notify::default(),
            following: Cell::new(false),
            master_tasks: Cell::new(false),
        }
    }

    pub fn get(&self) -> Role {
        self.role.get()
    }

    pub fn is_master(&self) -> bool {
        matches!(self.role.get(), Role::Master { .. })
    }

    /// The epoch of the master this shard serves or follows (0 outside
    /// controller mode).
    pub fn epoch(&self) -> u32 {
        match self.role.get() {
            Role::Pending => 0,
            Role::Master { epoch } | Role::Slave { epoch } => epoch,
        }
    }

    fn set(&self, r: Role) {
        if self.role.replace(r) != r {
            self.changed.notify_all();
        }
    }

    /// Queues `view` for [`run`] (the newest replaces an unapplied one).
    pub fn submit(&self, view: RoleView) {
        *self.pending.borrow_mut() = Some(view);
        self.pending_changed.notify_all();
    }

    pub fn set_following(&self, on: bool) {
        self.following.set(on);
        self.changed.notify_all();
    }

    /// Marks the master tasks started; false if they already were.
    pub fn start_master_tasks(&self) -> bool {
        !self.master_tasks.replace(true)
    }
}

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
            Some(v) => apply(&shard, v, tls.as_ref()).await,
            None => {
                futures_lite::future::or(state.pending_changed.changed_since(seen), async {
                    glommio::timer::sleep(Duration::from_secs(1)).await;
                })
                .await
            }
        }
    }
}

async fn apply(shard: &Rc<Shard>, v: RoleView, tls: Option<&crate::runtime::tls::ClientTls>) {
    let state = &shard.role;
    let me = shard.cfg.broker_id;
    let k = shard.id;
    match (state.get(), v.master_id) {
        (Role::Master { epoch }, Some(m)) if m == me => {
            if epoch != v.epoch && !record_epoch(shard, v.epoch).await {
                return;
            }
            set_required(shard, &v);
            state.set(Role::Master { epoch: v.epoch });
        }
        (_, Some(m)) if m == me => {
            // Promotion: the follower stops before anything is recorded.
            state.set(Role::Pending);
            while state.following.get() {
                let seen = state.changed.generation();
                futures_lite::future::or(state.changed.changed_since(seen), async {
                    glommio::timer::sleep(Duration::from_millis(20)).await;
                })
                .await;
            }
            if !record_epoch(shard, v.epoch).await {
                return;
            }
            set_required(shard, &v);
            state.set(Role::Master { epoch: v.epoch });
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
                 writes are fenced and the broker stops — start it again to rejoin as a slave",
                v.epoch
            );
            if !DEMOTED.swap(true, Ordering::SeqCst) {
                crate::runtime::shutdown::SHUTDOWN.store(true, Ordering::SeqCst);
            }
        }
        (_, Some(m)) => {
            let Some(base) = v.master_ha_addr.as_deref() else {
                log::warn!("shard {k}: the controller names broker {m} master without a replication address");
                return;
            };
            match super::slave::master_addr(base, k) {
                Ok(a) => shard.set_ha_master(a),
                Err(e) => {
                    log::warn!("shard {k}: {e}");
                    return;
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
