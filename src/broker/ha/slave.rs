//! A slave shard's side of replication: it connects to its master's shard
//! (`haMasterAddress` port + k), says where its log ends, places every
//! record the master streams at the same log offset
//! ([`MessageStore::replicate`](crate::store::MessageStore::replicate)),
//! and acks its durable end whenever it moves (and every second).
//! A lost connection is retried with backoff for as long as the shard runs.

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;
use std::time::Duration;

use futures_lite::future;
use glommio::net::TcpStream;

use crate::runtime::tls::{ClientTls, Io};
use crate::store::Replicate;

use super::super::shard::Shard;
use super::frame::{self, Cursor, Hello};
use super::master::HOUSEKEEPING;

/// An ack goes out at least this often (the master's liveness check).
const ACK_EVERY: Duration = Duration::from_secs(1);
const CONNECT_WITHIN: Duration = Duration::from_secs(3);
const BACKOFF_MIN: Duration = Duration::from_millis(200);
/// A restarted master is found within a second (a connect attempt per
/// second per shard costs little; every second of absence is a second of
/// SLAVE_NOT_AVAILABLE for a SYNC_MASTER).
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The master shard's replication address for shard `k`, from the
/// master's base replication address (`haListenPort`).
pub fn master_addr(base: &str, k: u16) -> Result<String, String> {
    let (host, port) = base
        .rsplit_once(':')
        .ok_or_else(|| format!("haMasterAddress {base} is not host:port"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("haMasterAddress {base} is not host:port"))?;
    let port = port
        .checked_add(k)
        .ok_or_else(|| format!("haMasterAddress {base}: port + shard {k} is past 65535"))?;
    Ok(format!("{host}:{port}"))
}

/// Follows the master for as long as the shard runs; over TLS with `tls`
/// (`tlsEnable`, as the broker's other outgoing connections). The master
/// is `haMasterAddress` (port + k) when set, else what the name server
/// says (shard 0's registration tells every shard; a new address is
/// followed from the next connection on).
pub async fn follow(shard: Rc<Shard>, tls: Option<ClientTls>) {
    if let Some(base) = &shard.cfg.ha_master_address {
        match master_addr(base, shard.id) {
            Ok(a) => shard.set_ha_master(a),
            Err(e) => {
                log::error!("shard {}: no replication: {e}", shard.id);
                return;
            }
        }
    }
    let mut backoff = BACKOFF_MIN;
    let mut last_error = (String::new(), std::time::Instant::now());
    // Controller mode: only while the controller has this broker a slave.
    let slave = || matches!(shard.role.get(), super::state::Role::Slave { .. });
    while !shard.store.is_stopping() && slave() {
        let seen = shard.ha_master_changed.generation();
        let Some(addr) = shard.ha_master() else {
            // Not known yet: the name server tells shard 0's registration.
            future::or(shard.ha_master_changed.changed_since(seen), async {
                glommio::timer::sleep(Duration::from_secs(1)).await;
            })
            .await;
            continue;
        };
        // A new role or a new master ends the session (the old master
        // may be fenced; the handshake with the new one truncates).
        let role_seen = shard.role.get();
        let ended = async {
            loop {
                let (a, b) = (shard.role.changed.generation(), shard.ha_master_changed.generation());
                if shard.role.get() != role_seen || shard.ha_master().as_deref() != Some(addr.as_str()) {
                    return Ok(());
                }
                future::or(
                    shard.role.changed.changed_since(a),
                    shard.ha_master_changed.changed_since(b),
                )
                .await;
            }
        };
        match future::or(ended, session(&shard, &addr, tls.as_ref())).await {
            Ok(()) => backoff = BACKOFF_MIN,
            Err(e) => {
                // A reason is logged when it changes and once a minute
                // while it lasts, not at every retry.
                if e != last_error.0 || last_error.1.elapsed() >= Duration::from_secs(60) {
                    log::warn!("shard {}: replication from {addr}: {e}", shard.id);
                    last_error = (e, std::time::Instant::now());
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
        // A promotion must not wait out the backoff.
        let seen = shard.role.changed.generation();
        if shard.role.get() == role_seen {
            future::or(shard.role.changed.changed_since(seen), glommio::timer::sleep(backoff)).await;
        }
    }
}

async fn session(shard: &Rc<Shard>, addr: &str, tls: Option<&ClientTls>) -> Result<(), String> {
    let store = &shard.store;
    let tcp = glommio::timer::timeout(CONNECT_WITHIN, async {
        Ok(TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}")))
    })
    .await
    .map_err(|_| "connect: timed out".to_string())??;
    // A master port in the ephemeral range, nobody listening: the kernel
    // may pick that very port as our source and connect the socket to
    // itself (TCP simultaneous open). Let go of it at once — the master
    // could not bind its port while we hold it.
    if let (Ok(l), Ok(p)) = (tcp.local_addr(), tcp.peer_addr()) {
        if l == p {
            return Err(format!(
                "connect: {addr} is not listening (the socket connected to itself)"
            ));
        }
    }
    let _ = tcp.set_nodelay(true);
    let mut s = match tls {
        Some(t) => t.connect(addr, tcp).await?,
        None => Io::Plain(tcp),
    };
    // A truncation begun by an earlier session ends first (it notifies).
    loop {
        let seen = shard.role.changed.generation();
        if !shard.role.truncating.get() {
            break;
        }
        shard.role.changed.changed_since(seen).await;
    }
    let mut end = store.write_log_offset();
    let epoch = shard.role.epoch();
    let hello = Hello {
        version: frame::VERSION,
        shard: shard.id,
        shard_count: shard.shard_count(),
        segment_size: store.segment_size(),
        broker_id: shard.cfg.broker_id,
        end,
        broker_name: shard.cfg.broker_name.clone(),
        epoch,
        history: shard.role.history.borrow().clone(),
    };
    frame::write(&mut s, frame::HELLO, &[&hello.encode()]).await?;
    let f = glommio::timer::timeout(HOUSEKEEPING, async {
        Ok(frame::read(&mut s, frame::MAX_CONTROL).await)
    })
    .await
    .map_err(|_| "no answer to HELLO".to_string())??;
    match f.kind {
        frame::WELCOME => {}
        frame::REFUSE => return Err(format!("the master refused: {}", String::from_utf8_lossy(&f.payload))),
        k => return Err(format!("expected WELCOME, got frame kind {k}")),
    }
    let w = frame::Welcome::decode(&f.payload).map_err(|e| format!("WELCOME: {e}"))?;
    if w.epoch < epoch {
        // An old master that has not heard it was replaced: never take
        // its records.
        return Err(format!(
            "fenced: {addr} is master of epoch {}, the controller's is {epoch}",
            w.epoch
        ));
    }
    if w.from < end {
        if shard.role.master_tasks_started() {
            // Their tables hold records about to go: a demoted master
            // stops instead (`role.rs`), so this is never reached by design.
            return Err(format!(
                "the log must be cut back to {} but this process ran as master: restart it",
                w.from
            ));
        }
        // On a task of its own: a new role or master ends this session,
        // and a truncation dropped halfway would leave the store cut in
        // memory but not on disk.
        shard.role.truncating.set(true);
        let (s2, to) = (shard.clone(), w.from);
        let job = glommio::spawn_local(async move {
            let r = match s2.store.truncate_log(to).await {
                Ok(t) => forget_master_state(&s2).await.map(|()| t),
                Err(e) => Err(format!("truncating to {to}: {e}")),
            };
            s2.role.truncating.set(false);
            s2.role.changed.notify_all();
            r
        })
        .detach();
        let t = job.await.ok_or("the truncation task ended early")??;
        log::warn!(
            "shard {}: truncated the log from {end} to {} ({t:?}): records the master of epoch {} never had",
            shard.id,
            w.from,
            w.epoch
        );
        end = w.from;
    } else if w.from > end {
        // The master deleted [end, from) by retention: an empty store
        // starts its log at `from` (refused, unchanged, if it holds
        // records). On its own task for the same reason as a truncation.
        shard.role.truncating.set(true);
        let (s2, to) = (shard.clone(), w.from);
        let job = glommio::spawn_local(async move {
            let r = s2.store.start_log_at(to).await;
            s2.role.truncating.set(false);
            s2.role.changed.notify_all();
            r
        })
        .detach();
        match job
            .await
            .ok_or("starting the log at the master's oldest segment ended early")?
        {
            Ok(()) => {}
            Err(e) => {
                return Err(format!(
                    "the master's log starts at {} (retention deleted the records after this slave's end {end}), \
                     and this slave cannot skip them: {e}; stop it, move its data directory away and start it \
                     again to rejoin as a new replica",
                    w.from
                ))
            }
        }
        log::warn!(
            "shard {}: the log starts at {} (the master's oldest retained segment), not at 0",
            shard.id,
            w.from
        );
        end = w.from;
    }
    if *shard.role.history.borrow() != w.history {
        super::epochs::save(&store.dir(), &w.history).await?;
        *shard.role.history.borrow_mut() = w.history.clone();
    }
    let master_durable = w.durable_end;
    log::info!(
        "shard {}: replicating from {addr} at log offset {end} (master durable end {master_durable})",
        shard.id
    );
    let (mut rd, mut wr) = futures_lite::io::split(s);
    // Queues that got records since the last ack: their parked pulls are
    // woken once the records are durable (visible).
    let touched: RefCell<HashSet<(String, u32)>> = RefCell::new(HashSet::new());
    let acks = async {
        let mut sent = u64::MAX;
        loop {
            let seen = store.durable_changed().generation();
            let durable = store.flushed_log_offset();
            for (t, q) in std::mem::take(&mut *touched.borrow_mut()) {
                shard.message_arrived(&t, q);
            }
            if durable != sent {
                frame::write(&mut wr, frame::ACK, &[&durable.to_be_bytes()]).await?;
                sent = durable;
            }
            if super::quiet_for(store, seen, ACK_EVERY).await {
                frame::write(&mut wr, frame::ACK, &[&durable.to_be_bytes()]).await?;
            }
        }
    };
    let max_frame = store.config().max_record_size.max(super::master::CHUNK) + 64;
    let data = async {
        loop {
            let limit = |kind| {
                if kind == frame::META || kind == frame::OFFSETS {
                    frame::MAX_META
                } else {
                    max_frame
                }
            };
            let f = glommio::timer::timeout(HOUSEKEEPING, async { Ok(frame::read_with(&mut rd, limit).await) })
                .await
                .map_err(|_| format!("the master was silent for {HOUSEKEEPING:?}"))??;
            if f.kind == frame::META {
                match &shard.controller {
                    Some(ctl) => match ctl.adopt(&**shard, &f.payload).await {
                        Ok(0) => {}
                        Ok(n) => log::info!("shard {}: adopted {n} topic/group change(s) from the master", shard.id),
                        Err(e) => log::error!("shard {}: {e}", shard.id),
                    },
                    None => return Err("META on a shard without the controller".into()),
                }
                continue;
            }
            if f.kind == frame::OFFSETS {
                let table: Vec<(String, String, u32, u64)> =
                    serde_json::from_slice(&f.payload).map_err(|e| format!("OFFSETS: {e}"))?;
                for (g, t, q, o) in table {
                    if shard.offsets.get(&g, &t, q) != Some(o) {
                        shard.offsets.commit(&g, &t, q, o);
                    }
                }
                continue;
            }
            if f.kind != frame::DATA {
                return Err(format!("expected DATA, got frame kind {}", f.kind));
            }
            let mut c = Cursor(&f.payload);
            let mut pos = c.u64()?;
            let mut bytes = c.rest();
            while !bytes.is_empty() {
                if store.is_stopping() {
                    return Ok(());
                }
                let seen = store.durable_changed().generation();
                let outcome = {
                    let mut touched = touched.borrow_mut();
                    let mut last: Option<(String, u32)> = None;
                    store.replicate(pos, bytes, &mut |t, q| {
                        if last.as_ref().is_some_and(|(lt, lq)| lt == t && *lq == q) {
                            return;
                        }
                        let tq = (t.to_string(), q);
                        touched.insert(tq.clone());
                        last = Some(tq);
                    })?
                };
                match outcome {
                    Replicate::Done => bytes = &[],
                    Replicate::Partly(n) => {
                        pos += n as u64;
                        bytes = &bytes[n..];
                        // The tail cache is full of unflushed bytes (or a
                        // segment is being prepared): wait for the flusher.
                        future::or(store.durable_changed().changed_since(seen), async {
                            glommio::timer::sleep(Duration::from_millis(5)).await;
                        })
                        .await;
                    }
                }
            }
        }
    };
    future::or(acks, data).await
}

/// After a truncation: the files a master's tasks keep beside the log
/// (the timer's checkpoint and buckets, the POP tables' checkpoint, the
/// transaction check state) may name records that are gone, and would
/// make a later promotion skip the records now at those offsets. Removed,
/// they are rebuilt from the log when this broker is promoted, as on a
/// slave that never was master.
async fn forget_master_state(shard: &Shard) -> Result<(), String> {
    let dir = shard.store.dir();
    crate::runtime::blocking::run(move || {
        for d in ["timer", "pop"] {
            match std::fs::remove_dir_all(dir.join(d)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(format!("{}: {e}", dir.join(d).display()))
                }
                _ => {}
            }
        }
        let tx = dir.join(crate::broker::transaction::STATE_FILE);
        match std::fs::remove_file(&tx) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(format!("{}: {e}", tx.display())),
            _ => std::fs::File::open(&dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| format!("{}: {e}", dir.display())),
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_k_replicates_from_the_master_port_plus_k() {
        assert_eq!(master_addr("10.0.0.1:10912", 3).unwrap(), "10.0.0.1:10915");
        assert_eq!(master_addr("[::1]:10912", 0).unwrap(), "[::1]:10912");
        assert!(master_addr("host", 0).is_err());
        assert!(master_addr("host:65535", 1).is_err());
    }
}
