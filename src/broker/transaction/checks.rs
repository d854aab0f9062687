//! The transactions' background work: start-up (the state file and the
//! marks read back), scanning new half messages, checks
//! (CHECK_TRANSACTION_STATE), rollback after `transactionCheckMax`, and the
//! state file (format in the module docs of [`super`]).

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::Duration;

use crate::protocol::codes::request;
use crate::protocol::properties::{keys, Properties};
use crate::protocol::{OffsetMessageId, RemotingCommand};
use crate::store::record::{check_record, encode_record, RecordCheck, StoreStamp};
use crate::store::{LogOffset, PhysicalOffset, MARK_QUEUE_TRANSACTION, MARK_TOPIC};

use super::super::mesh::{ConnOp, Reply, Request};
use super::{
    low, now_ms, resolve, Open, Shard, CHECK_IMMUNITY, HALF_TOPIC, MAGIC, SCAN_CHUNK, STATE_FILE, TICK, TRANSACTION_ID,
};

/// Drives the shard's transactions: start-up, scanning new half messages,
/// checks, rollback after the maximum, the state file.
pub async fn run(shard: Rc<Shard>) {
    if let Err(e) = start(&shard).await {
        log::error!(
            "shard {}: transactions cannot start: {e}; open transactions are not checked",
            shard.id
        );
        return;
    }
    let mut last_save = std::time::Instant::now();
    loop {
        let seen = shard.tx.wake.generation();
        if let Err(e) = scan(&shard).await {
            log::error!("shard {}: scanning half messages failed: {e}", shard.id);
        }
        check(&shard).await;
        if last_save.elapsed() >= Duration::from_millis(500) {
            last_save = std::time::Instant::now();
            if let Err(e) = save(&shard).await {
                log::error!("shard {}: cannot save the transaction state: {e}", shard.id);
            }
        }
        if shard.store.is_stopping() {
            let _ = save(&shard).await;
            return;
        }
        futures_lite::future::or(shard.tx.wake.changed_since(seen), glommio::timer::sleep(TICK)).await;
    }
}

pub(super) async fn start(shard: &Rc<Shard>) -> Result<(), String> {
    let dir = shard.tx.dir.clone();
    let text = crate::runtime::blocking::run(move || match std::fs::read_to_string(dir.join(STATE_FILE)) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", dir.join(STATE_FILE).display())),
    })
    .await?;
    let (low, marks_from, checks) = match text {
        Some(t) => parse_state(&t).ok_or_else(|| format!("{STATE_FILE}: not a transaction state file"))?,
        None => (0, 0, HashMap::new()),
    };
    let mut resolved = BTreeMap::new();
    let mut at = marks_from;
    loop {
        let e = shard
            .store
            .queue_entries(MARK_TOPIC, MARK_QUEUE_TRANSACTION, at, SCAN_CHUNK)
            .await
            .map_err(|e| e.to_string())?;
        if e.is_empty() {
            break;
        }
        for (i, m) in e.iter().enumerate() {
            if m.tags_code as u64 >= low {
                resolved.insert(m.tags_code as u64, at + i as u64);
            }
        }
        at += e.len() as u64;
    }
    let mut st = shard.tx.st.borrow_mut();
    st.scanned = low;
    st.resolved = resolved;
    st.restored_checks = checks;
    st.started = true;
    log::info!(
        "shard {}: transactions open: scanning half messages from {low}, {} resolved above it",
        shard.id,
        st.resolved.len()
    );
    Ok(())
}

pub(super) fn parse_state(text: &str) -> Option<(u64, u64, HashMap<u64, u32>)> {
    let mut lines = text.lines();
    let head = lines.next()?.strip_prefix(MAGIC)?;
    let mut it = head.split_whitespace();
    let low = it.next()?.parse().ok()?;
    let marks_from = it.next()?.parse().ok()?;
    let mut checks = HashMap::new();
    for l in lines {
        let (h, c) = l.split_once(' ')?;
        checks.insert(h.parse().ok()?, c.parse().ok()?);
    }
    Some((low, marks_from, checks))
}

/// Takes new half messages into the open set.
pub(super) async fn scan(shard: &Rc<Shard>) -> Result<(), String> {
    let timeout = shard.cfg.transaction_timeout.as_millis() as i64;
    loop {
        let from = shard.tx.st.borrow().scanned;
        let entries = shard
            .store
            .queue_entries(HALF_TOPIC, 0, from, SCAN_CHUNK)
            .await
            .map_err(|e| e.to_string())?;
        if entries.is_empty() {
            return Ok(());
        }
        let mut found = Vec::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate() {
            let half = from + i as u64;
            let rec = shard
                .store
                .read_record(PhysicalOffset::new(shard.id, LogOffset(e.pos)))
                .await
                .map_err(|e| e.to_string())?;
            let Some(rec) = rec else {
                log::error!("shard {}: half message {half} is not readable; not checked", shard.id);
                continue;
            };
            let RecordCheck::Record(v) = check_record(&rec, None, false) else {
                continue;
            };
            let p = Properties::parse_bytes(v.properties);
            let immunity = p
                .get(CHECK_IMMUNITY)
                .and_then(|s| s.parse::<i64>().ok())
                .map_or(0, |s| s.saturating_mul(1000));
            found.push((
                half,
                Open {
                    pos: e.pos,
                    group: p.get(keys::PRODUCER_GROUP).unwrap_or_default().to_owned(),
                    stored: v.store_timestamp,
                    checks: 0,
                    next_check: v.store_timestamp + timeout.max(immunity),
                },
            ));
        }
        let mut st = shard.tx.st.borrow_mut();
        for (half, mut o) in found {
            if st.resolved.contains_key(&half) || st.resolving.contains_key(&half) {
                continue;
            }
            if let Some(c) = st.restored_checks.remove(&half) {
                o.checks = c;
            }
            st.open.insert(half, o);
        }
        st.scanned = from + entries.len() as u64;
        st.dirty = true;
    }
}

/// Checks every open transaction that is due; rolls back those checked
/// `transactionCheckMax` times.
pub(super) async fn check(shard: &Rc<Shard>) {
    let now = now_ms();
    let interval = shard.cfg.transaction_check_interval.as_millis() as i64;
    let max = shard.cfg.transaction_check_max;
    let due: Vec<(u64, Open)> = {
        let st = shard.tx.st.borrow();
        st.open
            .iter()
            .filter(|(h, o)| o.next_check <= now && !st.resolving.contains_key(h))
            .take(1000)
            .map(|(h, o)| (*h, o.clone()))
            .collect()
    };
    for (half, o) in due {
        if o.checks >= max {
            log::warn!(
                "shard {}: transaction of half message {half} (producer group {}) still unknown after {} checks: rolled back",
                shard.id,
                o.group,
                o.checks
            );
            let rec = match shard
                .store
                .read_record(PhysicalOffset::new(shard.id, LogOffset(o.pos)))
                .await
            {
                Ok(Some(r)) => r,
                _ => continue,
            };
            let RecordCheck::Record(v) = check_record(&rec, None, false) else {
                continue;
            };
            let Some(m) = v.to_input() else { continue };
            let pos = PhysicalOffset::new(shard.id, LogOffset(o.pos)).0 as i64;
            if let Err((code, why)) = resolve(shard, half, pos, m, false).await {
                log::error!(
                    "shard {}: rollback of half message {half} failed ({code}): {why}",
                    shard.id
                );
            }
            continue;
        }
        {
            let mut st = shard.tx.st.borrow_mut();
            if let Some(e) = st.open.get_mut(&half) {
                e.checks += 1;
                e.next_check = now + interval;
            }
            st.dirty = true;
        }
        if let Err(why) = send_check(shard, half, &o).await {
            log::info!("shard {}: check of half message {half} not sent: {why}", shard.id);
        }
    }
}

/// A check to one live producer of the group: down a gRPC producer's
/// Telemetry stream on this shard when there is one
/// ([`super::streams`]), else CHECK_TRANSACTION_STATE on a remoting
/// connection of the group (on whichever shard holds it).
pub(super) async fn send_check(shard: &Rc<Shard>, half: u64, o: &Open) -> Result<(), String> {
    // Where it would go, before the half message is read: a group with no
    // producer online costs no disk read per round.
    let grpc = shard.tx.streams.has(&o.group);
    let mut channel = if grpc {
        None
    } else {
        producer_channel(shard, &o.group).await
    };
    if !grpc && channel.is_none() {
        return Err(format!("no producer of group {} is online", o.group));
    }
    let pos = PhysicalOffset::new(shard.id, LogOffset(o.pos));
    let rec = shard
        .store
        .read_record(pos)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the half message is not readable")?;
    let RecordCheck::Record(v) = check_record(&rec, None, false) else {
        return Err("the half message does not decode".into());
    };
    let p = Properties::parse_bytes(v.properties);
    let mut m = v.to_input().ok_or("the half message's topic is not UTF-8")?;
    m.topic = p.get(keys::REAL_TOPIC).unwrap_or(HALF_TOPIC).to_owned();
    m.queue_id = p.get(keys::REAL_QUEUE_ID).and_then(|q| q.parse().ok()).unwrap_or(0);
    let mut body = Vec::with_capacity(rec.len() + 128);
    let stamp = StoreStamp {
        queue_offset: half,
        physical_offset: pos,
        store_timestamp: v.store_timestamp,
    };
    encode_record(&m, &stamp, &shard.store.config().store_host, &mut body);
    let check = super::streams::OrphanCheck {
        half,
        position: pos.0 as i64,
        record: body,
    };
    if grpc {
        if shard.tx.streams.offer(&o.group, &check) {
            return Ok(());
        }
        channel = producer_channel(shard, &o.group).await;
    }
    let Some((to, conn)) = channel else {
        return Err(format!("no producer of group {} is online", o.group));
    };
    let uniq = p.get(keys::UNIQ_KEY).unwrap_or_default();
    let tx_id = p.get(TRANSACTION_ID).unwrap_or(uniq);
    let offset_id = OffsetMessageId {
        ip: shard.cfg.broker_ip1,
        port: shard.store.config().store_host.port(),
        commit_log_offset: pos.0 as i64,
    }
    .encode();
    let mut cmd = RemotingCommand::new_request(request::CHECK_TRANSACTION_STATE).with_oneway();
    cmd.ext_fields.insert("topic", &m.topic);
    cmd.ext_fields.insert_display("tranStateTableOffset", half);
    cmd.ext_fields.insert_display("commitLogOffset", pos.0);
    cmd.ext_fields.insert("msgId", uniq);
    cmd.ext_fields.insert("transactionId", tx_id);
    cmd.ext_fields.insert("offsetMsgId", &offset_id);
    cmd.ext_fields.insert("bname", &shard.cfg.broker_name);
    shard.to_conn(to, conn, ConnOp::Push(cmd.with_body(check.record))).await;
    Ok(())
}

/// One remoting connection of the producer group, if any is online.
async fn producer_channel(shard: &Rc<Shard>, group: &str) -> Option<(u16, u64)> {
    match &shard.controller {
        Some(c) => c.producer_channel(group),
        None => match shard
            .ask(
                0,
                Request::ProducerChannel {
                    group: group.to_string(),
                },
            )
            .await
        {
            Some(Reply::Channel(c)) => c,
            _ => None,
        },
    }
}

/// Stores the state file when something changed; then forgets resolutions
/// below `low`.
pub(super) async fn save(shard: &Rc<Shard>) -> Result<(), String> {
    let mark_end = shard
        .store
        .offsets(MARK_TOPIC, MARK_QUEUE_TRANSACTION)
        .map_or(0, |o| o.1);
    let (low_saved, text) = {
        let mut st = shard.tx.st.borrow_mut();
        if !st.dirty {
            return Ok(());
        }
        st.dirty = false;
        let low = low(&st);
        let marks_from = st
            .resolved
            .range(low..)
            .map(|(_, m)| *m)
            .min()
            .unwrap_or(mark_end)
            .min(mark_end);
        let mut text = format!("{MAGIC} {low} {marks_from}\n");
        for (h, o) in &st.open {
            if o.checks > 0 {
                text.push_str(&format!("{h} {}\n", o.checks));
            }
        }
        (low, text)
    };
    let dir = shard.tx.dir.clone();
    if let Err(e) = super::super::metadata::save(dir, STATE_FILE, text.into_bytes()).await {
        shard.tx.st.borrow_mut().dirty = true;
        return Err(e);
    }
    let mut st = shard.tx.st.borrow_mut();
    st.resolved = st.resolved.split_off(&low_saved);
    Ok(())
}
