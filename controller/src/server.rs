//! The node's TCP server (Raft RPCs + client ops, see [`crate::wire`]), the
//! leader's in-memory broker liveness table and its scan task.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use openraft::{Raft, ServerState};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};

use crate::sm::{group_key, scan_decision, Command, Group, Outcome};
use crate::store::SmStore;
use crate::types::{BrokerReq, ErrorCode, ErrorReply, GroupView, Status};
use crate::wire::{read_frame, write_frame, Request};
use crate::TypeConfig;

/// Bound on one replicated write seen from a client request.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Heartbeats seen by this node while it is leader (not replicated).
struct Liveness {
    /// The term in which this node is leader; a new term resets the table.
    term: Option<u64>,
    /// When leadership began: brokers not heard from since count as heard then.
    since: Instant,
    /// (group key, broker id) → (last heartbeat, reported offset).
    seen: HashMap<(String, u64), (Instant, u64)>,
    /// Groups with an election in flight: their brokers' heartbeats are
    /// refused until it is applied, so no answer can extend the lease of
    /// a master being replaced (see [`Node::broker`]).
    electing: std::collections::HashSet<String>,
}

pub(crate) struct Node {
    pub id: u64,
    pub raft: Raft<TypeConfig>,
    pub sm: SmStore,
    heartbeat_timeout: Duration,
    live: Mutex<Liveness>,
}

fn err(code: ErrorCode, msg: impl Into<String>) -> ErrorReply {
    ErrorReply::new(code, msg, None)
}

fn reply_err(e: ErrorReply) -> Value {
    serde_json::to_value(e).unwrap_or_else(|_| json!({"ok": false, "code": "UNAVAILABLE", "message": "encode"}))
}

impl Node {
    pub fn new(id: u64, raft: Raft<TypeConfig>, sm: SmStore, heartbeat_timeout: Duration) -> Node {
        Node {
            id,
            raft,
            sm,
            heartbeat_timeout,
            live: Mutex::new(Liveness {
                term: None,
                since: Instant::now(),
                seen: HashMap::new(),
                electing: Default::default(),
            }),
        }
    }

    fn live(&self) -> MutexGuard<'_, Liveness> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The leader's address per the membership, when known.
    fn leader_addr(&self) -> Option<String> {
        let m = self.raft.metrics();
        let m = m.borrow();
        let leader = m.current_leader?;
        m.membership_config
            .membership()
            .get_node(&leader)
            .map(|n| n.addr.clone())
    }

    fn not_leader(&self) -> ErrorReply {
        ErrorReply::new(
            ErrorCode::NotLeader,
            format!("node {} is not the leader", self.id),
            self.leader_addr(),
        )
    }

    /// Ok(term) when this node is the leader; resets the liveness table on a new term.
    fn leader_term(&self) -> Result<u64, ErrorReply> {
        let (is_leader, term) = {
            let m = self.raft.metrics();
            let m = m.borrow();
            (
                m.state == ServerState::Leader && m.current_leader == Some(self.id),
                m.current_term,
            )
        };
        if !is_leader {
            return Err(self.not_leader());
        }
        let mut live = self.live();
        if live.term != Some(term) {
            log::info!(
                "controller {}: leader in term {term}; every broker gets a fresh heartbeat grace",
                self.id
            );
            live.term = Some(term);
            live.since = Instant::now();
            live.seen.clear();
        }
        Ok(term)
    }

    fn alive_fn<'a>(&self, live: &'a Liveness, key: &'a str) -> impl Fn(u64) -> bool + 'a {
        let timeout = self.heartbeat_timeout;
        move |id| match live.seen.get(&(key.to_string(), id)) {
            Some((t, _)) => t.elapsed() < timeout,
            None => live.since.elapsed() < timeout,
        }
    }

    fn view(&self, g: &Group) -> GroupView {
        let live = self.live();
        let key = group_key(&g.cluster, &g.broker_name);
        let alive = self.alive_fn(&live, &key);
        let mut v = g.view(&alive);
        v.heartbeat_timeout_ms = self.heartbeat_timeout.as_millis() as u64;
        v
    }

    /// Propose a command; the applied outcome.
    async fn write(&self, cmd: Command) -> Result<Group, ErrorReply> {
        let res = match tokio::time::timeout(WRITE_TIMEOUT, self.raft.client_write(cmd)).await {
            Ok(r) => r,
            Err(_) => return Err(err(ErrorCode::Unavailable, "replicated write timed out")),
        };
        match res {
            Ok(resp) => match resp.data {
                Outcome::Ok(g) => Ok(g),
                Outcome::Fenced(m) => Err(err(ErrorCode::Fenced, m)),
                Outcome::Invalid(m) => Err(err(ErrorCode::Invalid, m)),
                Outcome::None => Err(err(ErrorCode::Unavailable, "no outcome")),
            },
            Err(e) => match e.forward_to_leader() {
                Some(f) => Err(ErrorReply::new(
                    ErrorCode::NotLeader,
                    "not the leader",
                    f.leader_node.as_ref().map(|n| n.addr.clone()),
                )),
                None => Err(err(ErrorCode::Unavailable, e.to_string())),
            },
        }
    }

    async fn broker(&self, b: BrokerReq) -> Result<GroupView, ErrorReply> {
        if b.cluster.is_empty() || b.broker_name.is_empty() || b.addr.is_empty() {
            return Err(err(
                ErrorCode::Invalid,
                "cluster, broker_name and addr must not be empty",
            ));
        }
        self.leader_term()?;
        let key = group_key(&b.cluster, &b.broker_name);
        {
            // One lock for the record and the check, as the scan holds it
            // from reading liveness to marking its elections: either the
            // scan saw this heartbeat (and elects nobody for a timeout), or
            // this answer is refused.
            let mut live = self.live();
            live.seen.insert((key.clone(), b.broker_id), (Instant::now(), b.offset));
            if live.electing.contains(&key) {
                return Err(err(ErrorCode::Unavailable, "an election of this group is in flight"));
            }
        }
        // The answer names a master whose lease it extends: it must be the
        // state a quorum has (a deposed leader cut off from the others
        // fails here, so the master it knew loses its lease in time).
        if let Err(e) = self.raft.ensure_linearizable().await {
            return Err(match e.forward_to_leader() {
                Some(_) => self.not_leader(),
                None => err(ErrorCode::Unavailable, e.to_string()),
            });
        }
        let current = self.sm.read(|s| s.groups.get(&b.cluster, &b.broker_name).cloned());
        let known = current.as_ref().and_then(|g| g.brokers.get(&b.broker_id));
        let group = match (current.as_ref(), known) {
            (Some(g), Some(m)) if m.addr == b.addr && m.ha_addr == b.ha_addr => g.clone(),
            _ => {
                self.write(Command::RegisterBroker {
                    cluster: b.cluster,
                    broker_name: b.broker_name,
                    broker_id: b.broker_id,
                    addr: b.addr,
                    ha_addr: b.ha_addr,
                })
                .await?
            }
        };
        Ok(self.view(&group))
    }

    fn status(&self) -> Status {
        let m = self.raft.metrics();
        let m = m.borrow();
        Status {
            node_id: self.id,
            leader_id: m.current_leader,
            term: m.current_term,
            last_applied: m.last_applied.map(|l| l.index),
            members: m.membership_config.membership().voter_ids().collect(),
        }
    }

    pub async fn handle(&self, req: Request) -> Value {
        let group = |r: Result<GroupView, ErrorReply>| match r {
            Ok(g) => json!({"ok": true, "group": g}),
            Err(e) => reply_err(e),
        };
        match req {
            Request::Register(b) | Request::Heartbeat(b) => group(self.broker(b).await),
            Request::AlterSyncStateSet(a) => {
                let r = match self.leader_term() {
                    Ok(_) => self
                        .write(Command::AlterSyncStateSet {
                            cluster: a.cluster,
                            broker_name: a.broker_name,
                            master_id: a.master_id,
                            master_epoch: a.master_epoch,
                            sync_state_set: a.sync_state_set,
                            sync_state_set_epoch: a.sync_state_set_epoch,
                        })
                        .await
                        .map(|g| self.view(&g)),
                    Err(e) => Err(e),
                };
                group(r)
            }
            Request::Groups => {
                if let Err(e) = self.leader_term() {
                    return reply_err(e);
                }
                if let Err(e) = self.raft.ensure_linearizable().await {
                    return match e.forward_to_leader() {
                        Some(_) => reply_err(self.not_leader()),
                        None => reply_err(err(ErrorCode::Unavailable, e.to_string())),
                    };
                }
                let groups = self.sm.read(|s| s.groups.groups.values().cloned().collect::<Vec<_>>());
                let views: Vec<GroupView> = groups.iter().map(|g| self.view(g)).collect();
                json!({"ok": true, "groups": views})
            }
            Request::Status => {
                let s = self.status();
                json!({"ok": true, "node_id": s.node_id, "leader_id": s.leader_id, "term": s.term,
                       "last_applied": s.last_applied, "members": s.members})
            }
            Request::RaftAppend { rpc } => json!({"ok": true, "result": self.raft.append_entries(rpc).await}),
            Request::RaftVote { rpc } => json!({"ok": true, "result": self.raft.vote(rpc).await}),
            Request::RaftSnapshot { rpc } => json!({"ok": true, "result": self.raft.install_snapshot(rpc).await}),
        }
    }

    /// One scan of the leader (see [`scan_decision`]).
    pub async fn scan(&self) {
        if self.leader_term().is_err() {
            return;
        }
        let groups = self.sm.read(|s| s.groups.groups.values().cloned().collect::<Vec<_>>());
        let decisions: Vec<(String, Command)> = {
            let mut live = self.live();
            let d: Vec<(String, Command)> = groups
                .iter()
                .filter_map(|g| {
                    let key = group_key(&g.cluster, &g.broker_name);
                    let alive = self.alive_fn(&live, &key);
                    let offset = |id: u64| live.seen.get(&(key.clone(), id)).map(|s| s.1).unwrap_or(0);
                    scan_decision(g, &alive, &offset).map(|c| (key.clone(), c))
                })
                .collect();
            live.electing.extend(d.iter().map(|(k, _)| k.clone()));
            d
        };
        for (key, cmd) in decisions {
            log::info!("controller {}: {:?}", self.id, cmd);
            let outcome = self.write(cmd).await;
            self.live().electing.remove(&key);
            match outcome {
                Ok(g) => log::info!(
                    "controller {}: {}/{} master {:?} epoch {}",
                    self.id,
                    g.cluster,
                    g.broker_name,
                    g.master_id,
                    g.master_epoch
                ),
                Err(e) => log::warn!("controller {}: election refused: {:?} {}", self.id, e.code, e.message),
            }
        }
    }
}

async fn serve_conn(node: Arc<Node>, mut s: TcpStream) {
    let _ = s.set_nodelay(true);
    loop {
        let body = match read_frame(&mut s).await {
            Ok(Some(b)) => b,
            Ok(None) => return,
            Err(e) => {
                log::debug!("controller {}: connection dropped: {e}", node.id);
                return;
            }
        };
        let reply = match Request::parse(&body) {
            Ok(req) => node.handle(req).await,
            Err(e) => reply_err(err(ErrorCode::Invalid, e)),
        };
        let bytes = match serde_json::to_vec(&reply) {
            Ok(b) => b,
            Err(_) => return,
        };
        if write_frame(&mut s, &bytes).await.is_err() {
            return;
        }
    }
}

pub(crate) async fn accept_loop(node: Arc<Node>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((s, _)) => {
                tokio::spawn(serve_conn(node.clone(), s));
            }
            Err(e) => {
                log::warn!("controller {}: accept: {e}", node.id);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

pub(crate) async fn scan_loop(node: Arc<Node>, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        node.scan().await;
    }
}
