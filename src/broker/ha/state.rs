//! A shard's role state (see [`super::role`] for how it changes): kept
//! apart from the transitions so that the shard can hold it without
//! `broker::shard` and `broker::ha` importing each other.

use std::cell::{Cell, RefCell};

use crate::store::notify::Notify;

use super::agent::RoleView;
use super::epochs::History;

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
    pub(super) pending: RefCell<Option<RoleView>>,
    pub(super) pending_changed: Notify,
    pub(super) following: Cell<bool>,
    /// A truncation runs (it is not cancelled with the session that began
    /// it: the next session and a promotion wait for it).
    pub(super) truncating: Cell<bool>,
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
            truncating: Cell::new(false),
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

    pub(super) fn set(&self, r: Role) {
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

    /// Whether this process ran the master tasks (their state is in memory).
    pub fn master_tasks_started(&self) -> bool {
        self.master_tasks.get()
    }

    /// Marks the master tasks started; false if they already were.
    pub fn start_master_tasks(&self) -> bool {
        !self.master_tasks.replace(true)
    }
}
