//! A master shard's side of replication: it accepts its slaves' shard
//! connections on `haListenPort + k`, streams its durable CommitLog to
//! each from where the slave's log ends, and turns their acks into the
//! store's [`ReplicaGate`] (SYNC_MASTER waits on it).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use futures_lite::{future, AsyncWriteExt};
use glommio::net::TcpListener;

use crate::config::BrokerRole;
use crate::runtime::tls::{Io, ServerTls};
use crate::store::replication::ReplicaGate;

use super::super::shard::Shard;
use super::frame::{self, Cursor, Hello};

/// Slave connections one master shard takes at once.
const MAX_SLAVES: usize = 8;
/// Bytes of log one DATA frame carries at most (a larger record goes
/// alone).
pub const CHUNK: usize = 256 * 1024;
/// A DATA heartbeat goes out when the log has been quiet this long.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// A slave silent this long (no ack, which it sends every second) is
/// dropped: RocketMQ's `haHousekeepingInterval`.
pub const HOUSEKEEPING: Duration = Duration::from_secs(20);
/// Consumer offsets go to slaves at most this often (when they changed).
const OFFSETS_EVERY: Duration = Duration::from_secs(2);
/// The HELLO must arrive within this.
const HELLO_WITHIN: Duration = Duration::from_secs(10);

struct SlaveState {
    id: u64,
    /// Its brokerId.
    broker: u64,
    acked: Cell<u64>,
    /// The master's durable end at the previous tick: reaching it is
    /// catching up.
    target: Cell<u64>,
    caught_up_at: Cell<Option<std::time::Instant>>,
}

/// The slaves of one master shard.
pub struct Slaves {
    gate: Rc<ReplicaGate>,
    list: RefCell<Vec<Rc<SlaveState>>>,
    next_id: Cell<u64>,
    gap: u64,
    /// When each slave (brokerId) last caught up, kept after it
    /// disconnects: the in-sync set drops a slave only after
    /// `haMaxTimeSlaveNotCatchup` (RocketMQ's rule), so a slave killed
    /// and restarted quickly stays electable, and until then a
    /// SYNC_MASTER waits for it (FLUSH_SLAVE_TIMEOUT).
    caught_up: RefCell<std::collections::BTreeMap<u64, Option<std::time::Instant>>>,
    /// Controller mode: slaves outside the in-sync set that caught up,
    /// with this shard's durable end when they did. SYNC_MASTER appends
    /// wait for them from then on, and a candidate counts as caught up
    /// for the agent only once its ack covers that end — so when the
    /// controller adds it to the set it already holds every message
    /// acknowledged before (those were durable here, below that end) and
    /// every one after (they waited for it).
    candidates: RefCell<std::collections::BTreeMap<u64, u64>>,
    /// SYNC_MASTER.
    sync: bool,
    /// Controller mode: `minInSyncReplicas`.
    min_in_sync: usize,
}

impl Slaves {
    /// What the slaves hold now, as the gate sees it.
    ///
    /// Without a controller a slave is in sync when it is within
    /// `haMaxGapNotInSync` of the master's durable end, and the gate's
    /// acked end is the best in-sync slave's. In controller mode the
    /// in-sync set is the controller's (`required`): every one of them
    /// must hold an append (an acknowledged message is then on every
    /// broker the controller may elect), and an empty set is no slave.
    fn refresh(&self, store: &crate::store::MessageStore, durable_end: u64, required: Option<&[u64]>) {
        let list = self.list.borrow();
        if let Some(req) = required {
            // RocketMQ's minInSyncReplicas: fewer brokers in sync than
            // that (master included) is SLAVE_NOT_AVAILABLE; an in-sync
            // set of the master alone, when allowed, acknowledges on the
            // local flush — the controller elects only from that set, so
            // such a message is lost only with this broker's disk.
            let enough = req.len() + 1 >= self.min_in_sync;
            let candidates = self.candidates.borrow();
            let waited: Vec<u64> = req.iter().chain(candidates.keys()).copied().collect();
            store.set_replica_wait(self.sync && (!enough || !waited.is_empty()));
            self.gate.set_in_sync(if enough { waited.len() as u32 } else { 0 });
            let acked = waited.iter().map(|b| {
                list.iter()
                    .filter(|s| s.broker == *b)
                    .map(|s| s.acked.get())
                    .max()
                    .unwrap_or(0)
            });
            if let Some(min) = acked.min() {
                self.gate.set_acked(min);
            }
            return;
        }
        let in_sync: Vec<u64> = list
            .iter()
            .map(|s| s.acked.get())
            .filter(|&a| durable_end.saturating_sub(a) <= self.gap)
            .collect();
        self.gate.set_in_sync(in_sync.len() as u32);
        if let Some(best) = in_sync.iter().max() {
            self.gate.set_acked(*best);
        }
    }
}

impl Slaves {
    /// Once a tick: which slaves caught up since the last one (their ack
    /// reached the durable end of then), published for the agent.
    fn tick(&self, durable_end: u64, shared: Option<&super::agent::Shared>, k: u16, required: Option<&[u64]>) {
        let list = self.list.borrow();
        let now = std::time::Instant::now();
        let mut seen = self.caught_up.borrow_mut();
        let mut candidates = self.candidates.borrow_mut();
        let member = |b: u64| required.is_none_or(|r| r.contains(&b));
        // Candidates that left the set's outside (joined) or disconnected.
        candidates.retain(|b, _| !member(*b) && list.iter().any(|s| s.broker == *b));
        for s in list.iter() {
            let caught_up = s.acked.get() >= s.target.get();
            s.target.set(durable_end);
            if member(s.broker) {
                if caught_up {
                    s.caught_up_at.set(Some(now));
                }
            } else if let Some(&join_end) = candidates.get(&s.broker) {
                if s.acked.get() >= join_end {
                    s.caught_up_at.set(Some(now));
                }
            } else if caught_up {
                candidates.insert(s.broker, durable_end);
            }
            let t = seen.entry(s.broker).or_insert(None);
            *t = (*t).max(s.caught_up_at.get());
        }
        // Bounded: past a group's worth of ids only connected ones stay.
        if seen.len() > 64 {
            seen.retain(|b, _| list.iter().any(|s| s.broker == *b));
        }
        if let Some(sh) = shared {
            // Outside the set only a covered candidate counts.
            let out: Vec<(u64, Option<std::time::Instant>)> = seen
                .iter()
                .map(|(b, t)| {
                    let covered = member(*b)
                        || candidates
                            .get(b)
                            .is_some_and(|join_end| list.iter().any(|s| s.broker == *b && s.acked.get() >= *join_end));
                    (*b, if covered { *t } else { None })
                })
                .collect();
            if let Some(m) = sh.caught_up.get(k as usize) {
                match m.lock() {
                    Ok(mut g) => *g = out,
                    Err(p) => *p.into_inner() = out,
                }
            }
        }
    }
}

fn required(shard: &Shard) -> Option<Vec<u64>> {
    shard.role.required.borrow().clone()
}

/// Serves slaves on `listener` for as long as the shard runs, with TLS
/// as `tlsServerMode` says (the same as the client ports).
pub async fn serve(shard: Rc<Shard>, listener: TcpListener, tls: ServerTls) {
    let gate = ReplicaGate::new();
    let sync = shard.cfg.broker_role == BrokerRole::SyncMaster;
    shard.store.set_replica_gate(Some(gate.clone()), sync);
    if sync {
        glommio::spawn_local(gate.clone().run_ticker(Duration::from_millis(50))).detach();
    }
    let slaves = Rc::new(Slaves {
        gate,
        list: RefCell::new(Vec::new()),
        next_id: Cell::new(0),
        caught_up: RefCell::new(Default::default()),
        candidates: RefCell::new(Default::default()),
        gap: shard.cfg.ha_max_gap_not_in_sync,
        sync,
        min_in_sync: shard.cfg.min_in_sync_replicas,
    });
    // The gap grows while a slave is silent: re-judge in-sync every tick
    // (and at once when the controller's in-sync set changes).
    {
        let (shard, slaves) = (shard.clone(), slaves.clone());
        glommio::spawn_local(async move {
            let mut last_tick = std::time::Instant::now();
            while !shard.store.is_stopping() {
                let seen = shard.role.changed.generation();
                future::or(
                    shard.role.changed.changed_since(seen),
                    glommio::timer::sleep(Duration::from_millis(200)),
                )
                .await;
                let durable = shard.store.flushed_log_offset();
                let req = required(&shard);
                // The tick first: a new candidate is waited for by the
                // refresh right after, with no await between.
                if last_tick.elapsed() >= Duration::from_millis(200) {
                    last_tick = std::time::Instant::now();
                    slaves.tick(durable, shard.ha_shared.get().map(|a| &**a), shard.id, req.as_deref());
                }
                slaves.refresh(&shard.store, durable, req.as_deref());
            }
        })
        .detach();
    }
    loop {
        let stream = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                log::warn!("shard {}: HA accept: {e}", shard.id);
                glommio::timer::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_default();
        if slaves.list.borrow().len() >= MAX_SLAVES {
            log::warn!(
                "shard {}: HA connection from {peer} refused: {MAX_SLAVES} slaves already",
                shard.id
            );
            drop(stream);
            continue;
        }
        let (shard, slaves, tls) = (shard.clone(), slaves.clone(), tls.clone());
        glommio::spawn_local(async move {
            let stream = match tls.accept(stream).await {
                Ok(s) => s,
                Err(e) => {
                    log::warn!("shard {}: HA connection from {peer}: {e}", shard.id);
                    return;
                }
            };
            match session(&shard, &slaves, stream).await {
                Ok(()) => log::info!("shard {}: slave {peer} disconnected", shard.id),
                Err(e) => log::warn!("shard {}: slave {peer}: {e}", shard.id),
            }
        })
        .detach();
    }
}

/// Refuses a slave with `why` (sent, then the connection closes).
async fn refuse(s: &mut Io, why: String) -> Result<(), String> {
    let _ = frame::write(s, frame::REFUSE, &[why.as_bytes()]).await;
    let _ = s.close().await;
    Err(format!("refused: {why}"))
}

async fn session(shard: &Rc<Shard>, slaves: &Rc<Slaves>, mut s: Io) -> Result<(), String> {
    let f = glommio::timer::timeout(HELLO_WITHIN, async {
        Ok(frame::read(&mut s, frame::MAX_CONTROL).await)
    })
    .await
    .map_err(|_| "no HELLO in time".to_string())??;
    if f.kind != frame::HELLO {
        return refuse(&mut s, format!("expected HELLO, got frame kind {}", f.kind)).await;
    }
    let h = Hello::decode(&f.payload).map_err(|e| format!("HELLO: {e}"))?;
    let store = &shard.store;
    let cfg = &shard.cfg;
    let (min, durable) = (store.log_min_offset(), store.flushed_log_offset());
    let problem = if h.version != frame::VERSION {
        Some(format!(
            "protocol version {} (this master speaks {})",
            h.version,
            frame::VERSION
        ))
    } else if h.broker_name != cfg.broker_name {
        Some(format!(
            "the slave is of broker group {}, this master is {}",
            h.broker_name, cfg.broker_name
        ))
    } else if h.shard != shard.id || h.shard_count != shard.shard_count() {
        Some(format!(
            "slave shard {} of {} connected to master shard {} of {}: shardCount must match",
            h.shard,
            h.shard_count,
            shard.id,
            shard.shard_count()
        ))
    } else if h.segment_size != store.segment_size() {
        Some(format!(
            "the slave's mapedFileSizeCommitLog {} differs from the master's {}",
            h.segment_size,
            store.segment_size()
        ))
    } else if h.broker_id == 0 {
        Some("a slave's brokerId is above 0".into())
    } else if !shard.role.is_master() {
        Some(format!("this broker is not the master now ({:?})", shard.role.get()))
    } else if h.epoch > shard.role.epoch() {
        Some(format!(
            "fenced: the slave follows master epoch {}, this master's is {}",
            h.epoch,
            shard.role.epoch()
        ))
    } else {
        None
    };
    if let Some(why) = problem {
        return refuse(&mut s, why).await;
    }
    // Where the logs stop being the same: the slave truncates there and
    // the stream starts there.
    let history = shard.role.history.borrow().clone();
    let common = super::epochs::common_end(&h.history, h.end, &history, store.write_log_offset());
    if common > durable {
        let why = format!(
            "the slave's log ends at {common} past the master's durable end {durable}: the logs diverged; \
             rebuild the slave (move its data directory away)"
        );
        return refuse(&mut s, why).await;
    }
    // Retention deleted what the slave would need next: it starts at the
    // oldest retained segment if its log is empty (a new replica), and
    // refuses (it knows, the master does not) if it holds records.
    let from = common.max(min);
    if from > common {
        log::warn!(
            "shard {}: slave (brokerId {}) log ends at {common}, below the oldest retained segment {min}: \
             offering {min} (an empty slave starts its log there, one holding records must be rebuilt)",
            shard.id,
            h.broker_id
        );
    }
    let welcome = frame::Welcome {
        min_offset: min,
        durable_end: durable,
        epoch: shard.role.epoch(),
        from,
        history,
    };
    frame::write(&mut s, frame::WELCOME, &[&welcome.encode()]).await?;
    let id = slaves.next_id.get();
    slaves.next_id.set(id + 1);
    let me = Rc::new(SlaveState {
        id,
        broker: h.broker_id,
        // Its first ACK says what it holds durably (`from` may be past
        // that: the HELLO gives its written end).
        acked: Cell::new(0),
        target: Cell::new(durable),
        caught_up_at: Cell::new(None),
    });
    slaves.list.borrow_mut().push(me.clone());
    slaves.refresh(store, durable, required(shard).as_deref());
    if from < h.end {
        log::warn!(
            "shard {}: slave (brokerId {}) truncates its log from {} to {from}: records past it were never \
             the master's of epoch {}",
            shard.id,
            h.broker_id,
            h.end,
            shard.role.epoch()
        );
    }
    log::info!(
        "shard {}: slave (brokerId {}) replicating from log offset {from} (durable end {durable})",
        shard.id,
        h.broker_id
    );
    let (mut rd, mut wr) = futures_lite::io::split(s);
    let acks = async {
        loop {
            let f = glommio::timer::timeout(HOUSEKEEPING, async {
                Ok(frame::read(&mut rd, frame::MAX_CONTROL).await)
            })
            .await
            .map_err(|_| format!("no ack for {HOUSEKEEPING:?}"))??;
            if f.kind != frame::ACK {
                return Err(format!("expected ACK, got frame kind {}", f.kind));
            }
            let mut c = Cursor(&f.payload);
            let end = c.u64()?;
            c.done()?;
            if end > store.flushed_log_offset() {
                return Err(format!("the slave acked log offset {end}, past anything sent"));
            }
            if end > me.acked.get() {
                me.acked.set(end);
                slaves.refresh(store, store.flushed_log_offset(), required(shard).as_deref());
            }
        }
    };
    // A master that stops being master (demoted) ends its streams.
    let role = async {
        loop {
            let seen = shard.role.changed.generation();
            if !shard.role.is_master() {
                return Err("this broker is no longer the master".to_string());
            }
            shard.role.changed.changed_since(seen).await;
        }
    };
    let stream = async {
        let mut pos = from;
        let mut meta_sent = None;
        let mut offsets_sent: Option<(u64, std::time::Instant)> = None;
        loop {
            if store.is_stopping() {
                return Ok(());
            }
            if let Some(ctl) = &shard.controller {
                let generation = ctl.replica_generation();
                if meta_sent != Some(generation) {
                    let state = ctl.replica_state()?;
                    frame::write(&mut wr, frame::META, &[&state]).await?;
                    meta_sent = Some(generation);
                }
            }
            let commits = shard.offsets.commits();
            let due = match offsets_sent {
                None => true,
                Some((c, at)) => c != commits && at.elapsed() >= OFFSETS_EVERY,
            };
            if due {
                let table = serde_json::to_vec(&shard.offsets.snapshot()).map_err(|e| e.to_string())?;
                frame::write(&mut wr, frame::OFFSETS, &[&table]).await?;
                offsets_sent = Some((commits, std::time::Instant::now()));
            }
            let seen = store.durable_changed().generation();
            match store.log_chunk(pos, CHUNK).await.map_err(|e| e.to_string())? {
                Some((bytes, next)) => {
                    frame::write(&mut wr, frame::DATA, &[&pos.to_be_bytes(), &bytes]).await?;
                    pos = next;
                }
                None => {
                    if super::quiet_for(store, seen, HEARTBEAT).await {
                        frame::write(&mut wr, frame::DATA, &[&pos.to_be_bytes()]).await?;
                    }
                }
            }
        }
    };
    let r = future::or(role, future::or(acks, stream)).await;
    slaves.list.borrow_mut().retain(|x| x.id != me.id);
    slaves.refresh(store, store.flushed_log_offset(), required(shard).as_deref());
    r
}
