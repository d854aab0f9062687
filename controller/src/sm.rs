//! The replicated state machine: broker groups, their master, master epoch
//! and sync state set (ISR). Everything here is deterministic: the same
//! commands applied in the same order give the same state on every node.
//!
//! The Raft entry payload is [`Command`] (serde, externally tagged JSON, e.g.
//! `{"ElectMaster":{"cluster":"c","broker_name":"b","new_master":2,"expected_master_epoch":1}}`);
//! the response of an applied entry is [`Outcome`].

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::types::{BrokerView, GroupView};

/// A replicated command (the Raft log entry payload).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Add a broker to its group or change its addresses. The first broker
    /// of a group that never had a master becomes master (epoch 1, ISR {id}).
    RegisterBroker {
        cluster: String,
        broker_name: String,
        broker_id: u64,
        addr: String,
        ha_addr: String,
    },
    /// Set the master when the epoch is still `expected_master_epoch`.
    /// `Some(id)` (must be in the ISR): epoch + 1, ISR = {id}, ISR epoch + 1.
    /// `None`: no master, epoch and ISR kept.
    ElectMaster {
        cluster: String,
        broker_name: String,
        new_master: Option<u64>,
        expected_master_epoch: u32,
    },
    /// Replace the ISR; fenced unless master, master epoch and ISR epoch are current.
    AlterSyncStateSet {
        cluster: String,
        broker_name: String,
        master_id: u64,
        master_epoch: u32,
        sync_state_set: Vec<u64>,
        sync_state_set_epoch: u32,
    },
}

/// Result of applying a command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Applied; the group after it.
    Ok(Group),
    /// Stale master / epoch.
    Fenced(String),
    /// Malformed request (unknown group or broker, master not in set, ...).
    Invalid(String),
    /// Entries that carry no command (blank, membership).
    None,
}

/// A member broker's addresses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub addr: String,
    pub ha_addr: String,
}

/// One broker group (cluster + broker_name).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub cluster: String,
    pub broker_name: String,
    pub brokers: BTreeMap<u64, Member>,
    pub master_id: Option<u64>,
    pub master_epoch: u32,
    pub sync_state_set: BTreeSet<u64>,
    pub sync_state_set_epoch: u32,
}

impl Group {
    fn new(cluster: &str, broker_name: &str) -> Self {
        Group {
            cluster: cluster.to_string(),
            broker_name: broker_name.to_string(),
            brokers: BTreeMap::new(),
            master_id: None,
            master_epoch: 0,
            sync_state_set: BTreeSet::new(),
            sync_state_set_epoch: 0,
        }
    }

    /// The client view; `alive` says whether a broker id has heartbeated recently.
    pub fn view(&self, alive: &dyn Fn(u64) -> bool) -> GroupView {
        let master = self.master_id.and_then(|m| self.brokers.get(&m));
        GroupView {
            cluster: self.cluster.clone(),
            broker_name: self.broker_name.clone(),
            master_id: self.master_id,
            master_addr: master.map(|m| m.addr.clone()),
            master_ha_addr: master.map(|m| m.ha_addr.clone()),
            master_epoch: self.master_epoch,
            sync_state_set: self.sync_state_set.iter().copied().collect(),
            sync_state_set_epoch: self.sync_state_set_epoch,
            brokers: self
                .brokers
                .iter()
                .map(|(id, m)| BrokerView {
                    broker_id: *id,
                    addr: m.addr.clone(),
                    ha_addr: m.ha_addr.clone(),
                    alive: alive(*id),
                })
                .collect(),
            heartbeat_timeout_ms: 0,
        }
    }
}

/// Key of a group in [`Groups`].
pub fn group_key(cluster: &str, broker_name: &str) -> String {
    format!("{cluster}\u{0}{broker_name}")
}

/// All groups; the whole state machine (its JSON is the snapshot data).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Groups {
    pub groups: BTreeMap<String, Group>,
}

impl Groups {
    pub fn get(&self, cluster: &str, broker_name: &str) -> Option<&Group> {
        self.groups.get(&group_key(cluster, broker_name))
    }

    /// Apply one command. Deterministic; rejects stale or invalid requests
    /// without changing anything.
    pub fn apply(&mut self, cmd: &Command) -> Outcome {
        match cmd {
            Command::RegisterBroker {
                cluster,
                broker_name,
                broker_id,
                addr,
                ha_addr,
            } => {
                let g = self
                    .groups
                    .entry(group_key(cluster, broker_name))
                    .or_insert_with(|| Group::new(cluster, broker_name));
                g.brokers.insert(
                    *broker_id,
                    Member {
                        addr: addr.clone(),
                        ha_addr: ha_addr.clone(),
                    },
                );
                if g.master_id.is_none() && g.master_epoch == 0 {
                    g.master_id = Some(*broker_id);
                    g.master_epoch = 1;
                    g.sync_state_set = BTreeSet::from([*broker_id]);
                    g.sync_state_set_epoch += 1;
                }
                Outcome::Ok(g.clone())
            }
            Command::ElectMaster {
                cluster,
                broker_name,
                new_master,
                expected_master_epoch,
            } => {
                let Some(g) = self.groups.get_mut(&group_key(cluster, broker_name)) else {
                    return Outcome::Invalid(format!("unknown group {cluster}/{broker_name}"));
                };
                if g.master_epoch != *expected_master_epoch {
                    return Outcome::Fenced(format!(
                        "master epoch is {}, expected {}",
                        g.master_epoch, expected_master_epoch
                    ));
                }
                match new_master {
                    Some(id) => {
                        if !g.brokers.contains_key(id) {
                            return Outcome::Invalid(format!("unknown broker {id}"));
                        }
                        if !g.sync_state_set.contains(id) {
                            return Outcome::Invalid(format!("broker {id} is not in the sync state set"));
                        }
                        g.master_id = Some(*id);
                        g.master_epoch += 1;
                        g.sync_state_set = BTreeSet::from([*id]);
                        g.sync_state_set_epoch += 1;
                    }
                    None => g.master_id = None,
                }
                Outcome::Ok(g.clone())
            }
            Command::AlterSyncStateSet {
                cluster,
                broker_name,
                master_id,
                master_epoch,
                sync_state_set,
                sync_state_set_epoch,
            } => {
                let Some(g) = self.groups.get_mut(&group_key(cluster, broker_name)) else {
                    return Outcome::Invalid(format!("unknown group {cluster}/{broker_name}"));
                };
                if g.master_id != Some(*master_id) || g.master_epoch != *master_epoch {
                    return Outcome::Fenced(format!(
                        "master is {:?} epoch {}, not {} epoch {}",
                        g.master_id, g.master_epoch, master_id, master_epoch
                    ));
                }
                if g.sync_state_set_epoch != *sync_state_set_epoch {
                    return Outcome::Fenced(format!(
                        "sync state set epoch is {}, not {}",
                        g.sync_state_set_epoch, sync_state_set_epoch
                    ));
                }
                let set: BTreeSet<u64> = sync_state_set.iter().copied().collect();
                if !set.contains(master_id) {
                    return Outcome::Invalid("sync state set must contain the master".to_string());
                }
                if let Some(unknown) = set.iter().find(|id| !g.brokers.contains_key(id)) {
                    return Outcome::Invalid(format!("unknown broker {unknown} in sync state set"));
                }
                g.sync_state_set = set;
                g.sync_state_set_epoch += 1;
                Outcome::Ok(g.clone())
            }
        }
    }
}

/// What the leader's scan should do with a group: `Some(ElectMaster)` or nothing.
///
/// - master alive: nothing;
/// - master dead: the alive ISR member (not the master) with the largest
///   offset, ties to the lowest id; none → `new_master: None`;
/// - no master: an alive ISR member (the old master included) → elect it.
///
/// Never a broker outside the ISR.
pub fn scan_decision(g: &Group, alive: &dyn Fn(u64) -> bool, offset: &dyn Fn(u64) -> u64) -> Option<Command> {
    let best = |exclude: Option<u64>| {
        g.sync_state_set
            .iter()
            .copied()
            .filter(|id| Some(*id) != exclude && g.brokers.contains_key(id) && alive(*id))
            // max offset, then lowest id
            .max_by(|a, b| offset(*a).cmp(&offset(*b)).then(b.cmp(a)))
    };
    let elect = |new_master| Command::ElectMaster {
        cluster: g.cluster.clone(),
        broker_name: g.broker_name.clone(),
        new_master,
        expected_master_epoch: g.master_epoch,
    };
    match g.master_id {
        Some(m) if alive(m) => None,
        Some(m) => Some(elect(best(Some(m)))),
        None => best(None).map(|id| elect(Some(id))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(id: u64) -> Command {
        Command::RegisterBroker {
            cluster: "c".into(),
            broker_name: "b".into(),
            broker_id: id,
            addr: format!("10.0.0.{id}:10911"),
            ha_addr: format!("10.0.0.{id}:10912"),
        }
    }

    fn alter(master: u64, epoch: u32, set: &[u64], set_epoch: u32) -> Command {
        Command::AlterSyncStateSet {
            cluster: "c".into(),
            broker_name: "b".into(),
            master_id: master,
            master_epoch: epoch,
            sync_state_set: set.to_vec(),
            sync_state_set_epoch: set_epoch,
        }
    }

    fn elect(new_master: Option<u64>, expected: u32) -> Command {
        Command::ElectMaster {
            cluster: "c".into(),
            broker_name: "b".into(),
            new_master,
            expected_master_epoch: expected,
        }
    }

    fn ok(o: Outcome) -> Group {
        match o {
            Outcome::Ok(g) => g,
            other => panic!("expected Ok, got {other:?}"),
        }
    }

    /// Three brokers, 1 master, ISR {1,2,3} (ISR epoch 2).
    fn three() -> Groups {
        let mut s = Groups::default();
        for id in 1..=3 {
            s.apply(&reg(id));
        }
        ok(s.apply(&alter(1, 1, &[1, 2, 3], 1)));
        s
    }

    #[test]
    fn first_register_becomes_master() {
        let mut s = Groups::default();
        let g = ok(s.apply(&reg(7)));
        assert_eq!(g.master_id, Some(7));
        assert_eq!(g.master_epoch, 1);
        assert_eq!(g.sync_state_set, BTreeSet::from([7]));
        assert_eq!(g.sync_state_set_epoch, 1);
        let g = ok(s.apply(&reg(8)));
        assert_eq!(g.master_id, Some(7), "second broker is a slave");
        assert_eq!(g.master_epoch, 1);
        assert_eq!(g.brokers.len(), 2);
        let v = g.view(&|id| id == 7);
        assert_eq!(v.master_addr.as_deref(), Some("10.0.0.7:10911"));
        assert!(v.brokers[0].alive && !v.brokers[1].alive);
    }

    #[test]
    fn alter_isr_accepted_fenced_invalid() {
        let mut s = Groups::default();
        s.apply(&reg(1));
        s.apply(&reg(2));
        let g = ok(s.apply(&alter(1, 1, &[1, 2], 1)));
        assert_eq!(g.sync_state_set, BTreeSet::from([1, 2]));
        assert_eq!(g.sync_state_set_epoch, 2);
        // stale ISR epoch
        assert!(matches!(s.apply(&alter(1, 1, &[1], 1)), Outcome::Fenced(_)));
        // not the master / stale master epoch
        assert!(matches!(s.apply(&alter(2, 1, &[1, 2], 2)), Outcome::Fenced(_)));
        assert!(matches!(s.apply(&alter(1, 0, &[1, 2], 2)), Outcome::Fenced(_)));
        // set without the master, unknown broker
        assert!(matches!(s.apply(&alter(1, 1, &[2], 2)), Outcome::Invalid(_)));
        assert!(matches!(s.apply(&alter(1, 1, &[1, 9], 2)), Outcome::Invalid(_)));
        // unknown group
        let mut cmd = alter(1, 1, &[1], 2);
        if let Command::AlterSyncStateSet { broker_name, .. } = &mut cmd {
            *broker_name = "nope".into();
        }
        assert!(matches!(s.apply(&cmd), Outcome::Invalid(_)));
        // nothing changed by the rejected ones
        assert_eq!(s.get("c", "b").map(|g| g.sync_state_set_epoch), Some(2));
    }

    #[test]
    fn election_picks_alive_isr_member_with_max_offset() {
        let s = three();
        let g = s.get("c", "b").cloned().unwrap_or_else(|| panic!("group"));
        // master 1 dead; 2 and 3 alive; 3 has the larger offset
        let d = scan_decision(&g, &|id| id != 1, &|id| [0, 500, 100, 900][id as usize]);
        assert_eq!(d, Some(elect(Some(3), 1)));
        // tie → lowest id
        let d = scan_decision(&g, &|id| id != 1, &|_| 5);
        assert_eq!(d, Some(elect(Some(2), 1)));
        // 3 dead too → 2 even with a smaller offset
        let d = scan_decision(&g, &|id| id == 2, &|id| [0, 500, 100, 900][id as usize]);
        assert_eq!(d, Some(elect(Some(2), 1)));
        // master alive → nothing
        assert_eq!(scan_decision(&g, &|_| true, &|_| 0), None);
    }

    #[test]
    fn never_elects_outside_isr() {
        let mut s = Groups::default();
        s.apply(&reg(1));
        s.apply(&reg(2)); // slave, never joined the ISR
        let g = s.get("c", "b").cloned().unwrap_or_else(|| panic!("group"));
        let d = scan_decision(&g, &|id| id == 2, &|_| 1000);
        assert_eq!(d, Some(elect(None, 1)), "no ISR candidate: no master");
        // apply refuses an election outside the ISR too
        assert!(matches!(s.apply(&elect(Some(2), 1)), Outcome::Invalid(_)));
        assert_eq!(s.get("c", "b").and_then(|g| g.master_id), Some(1));
    }

    #[test]
    fn elect_none_keeps_epoch_and_old_master_comes_back_with_epoch_plus_one() {
        let mut s = Groups::default();
        s.apply(&reg(1));
        s.apply(&reg(2));
        let g = ok(s.apply(&elect(None, 1)));
        assert_eq!(g.master_id, None);
        assert_eq!(g.master_epoch, 1);
        assert_eq!(g.sync_state_set, BTreeSet::from([1]));
        // 2 alive but not in ISR → nothing; 1 back → elect 1
        assert_eq!(scan_decision(&g, &|id| id == 2, &|_| 0), None);
        let d = scan_decision(&g, &|_| true, &|_| 0);
        assert_eq!(d, Some(elect(Some(1), 1)));
        let g = ok(s.apply(&elect(Some(1), 1)));
        assert_eq!(g.master_id, Some(1));
        assert_eq!(g.master_epoch, 2);
        assert_eq!(g.sync_state_set_epoch, 2);
        // stale epoch is fenced
        assert!(matches!(s.apply(&elect(Some(1), 1)), Outcome::Fenced(_)));
    }

    #[test]
    fn failover_then_isr_from_new_master() {
        let mut s = three();
        let g = ok(s.apply(&elect(Some(2), 1)));
        assert_eq!((g.master_id, g.master_epoch), (Some(2), 2));
        assert_eq!(g.sync_state_set, BTreeSet::from([2]));
        assert_eq!(g.sync_state_set_epoch, 3);
        // the old master can no longer alter the ISR
        assert!(matches!(s.apply(&alter(1, 1, &[1, 2], 3)), Outcome::Fenced(_)));
        ok(s.apply(&alter(2, 2, &[2, 3], 3)));
        // re-registering keeps master and epoch
        let g = ok(s.apply(&reg(1)));
        assert_eq!((g.master_id, g.master_epoch), (Some(2), 2));
    }
}
