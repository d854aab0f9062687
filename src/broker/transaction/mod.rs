//! Transactional messages (store.md §7, codes.md §2.4, README §6).
//!
//! * A half message (property `TRAN_MSG=true`, sysFlag PREPARED) is stored
//!   on the shard that owns its target queue, in that shard's half queue
//!   ([`HALF_TOPIC`]/0) with `REAL_TOPIC`, `REAL_QID` and
//!   `__transactionId__`. The send answers the half record's offset id and
//!   half-queue offset, which END_TRANSACTION names back.
//! * END_TRANSACTION (37) runs on that shard (its `commitLogOffset` names
//!   it). COMMIT stores the real message; ROLLBACK stores a small op record
//!   in [`OP_TOPIC`]. Either record carries a [`Mark`] with the half-queue
//!   offset: the resolution and its record are one fact, so after kill -9 a
//!   transaction is resolved iff its mark is there — a committed message is
//!   delivered once, a rolled-back one never, a second END_TRANSACTION for
//!   the same half is refused.
//! * Open transactions older than `transactionTimeOut` (or the message's
//!   `CHECK_IMMUNITY_TIME_IN_SECONDS`, which uses up no check) are checked
//!   every `transactionCheckInterval`: CHECK_TRANSACTION_STATE (39, oneway)
//!   goes to one live connection of the producer group. After
//!   `transactionCheckMax` checks (attempts: a group with no producer
//!   online uses them up too) the transaction is rolled back and logged.
//! * At most `transactionMaxOpen` open (and recently resolved) transactions
//!   per shard: a half message beyond that is refused with SYSTEM_BUSY.
//!
//! # Durable state
//! `<shard dir>/transactions` (temp file, fsync, rename):
//! `shardmq-tx 1 <low> <marks_from>` then one `<half offset> <checks>` line
//! per open transaction that was checked. `low`: every half below it is
//! resolved; `marks_from`: every mark of a half at or above `low` is at or
//! above it. At start the marks from `marks_from` on are read back and the
//! half queue is scanned from `low`.

use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;

use crate::protocol::codes::response;
use crate::protocol::properties::{keys, Properties};
use crate::protocol::sys_flag::{
    with_transaction_type, TRANSACTION_COMMIT_TYPE, TRANSACTION_NOT_TYPE, TRANSACTION_PREPARED_TYPE,
    TRANSACTION_TYPE_MASK,
};
use crate::protocol::{java_string_hash, RemotingCommand};
use crate::store::record::{check_record, RecordCheck};
use crate::store::{Mark, MessageInput, PhysicalOffset, PutStatus, MARK_PROPERTY, MARK_QUEUE_TRANSACTION, MARK_TOPIC};

use super::reply::error;
use super::shard::Shard;

mod checks;
pub mod state;
pub mod streams;
pub use checks::run;
use state::{low, now_ms, Open};

pub const HALF_TOPIC: &str = "RMQ_SYS_TRANS_HALF_TOPIC";
pub const OP_TOPIC: &str = "RMQ_SYS_TRANS_OP_HALF_TOPIC";
const TRANSACTION_ID: &str = "__transactionId__";
const CHECK_IMMUNITY: &str = "CHECK_IMMUNITY_TIME_IN_SECONDS";
pub(crate) const STATE_FILE: &str = "transactions";
const MAGIC: &str = "shardmq-tx 1";
const TICK: Duration = Duration::from_millis(200);
const SCAN_CHUNK: usize = 1024;

/// Whether a send is a half message (Java's rule: `TRAN_MSG=true`, except
/// a retried one with a delay level, which clients < 4.6.1 re-sent).
pub fn is_half(props: &str, sys_flag: i32, reconsume_times: i32) -> bool {
    let prepared = crate::protocol::properties::find(props, keys::TRANSACTION_PREPARED)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let delayed = crate::protocol::properties::find(props, keys::DELAY).is_some_and(|d| d != "0");
    (prepared || sys_flag & TRANSACTION_TYPE_MASK == TRANSACTION_PREPARED_TYPE) && !(reconsume_times > 0 && delayed)
}

/// `m` (built by the send path) as a half record; `Err` is the reply.
pub fn half(shard: &Shard, mut m: MessageInput, group: &str) -> Result<MessageInput, (i32, String)> {
    let max = shard.cfg.transaction_max_open;
    if shard.tx.tracked() >= max {
        return Err((
            response::SYSTEM_BUSY,
            format!("too many open transactions on this shard (transactionMaxOpen {max}); try again later"),
        ));
    }
    let mut p = Properties::parse_bytes(&m.properties);
    super::retry::strip_internal(&mut p);
    let set =
        |p: &mut Properties, k: &str, v: String| p.insert(k, v).map_err(|e| (response::MESSAGE_ILLEGAL, e.to_string()));
    set(&mut p, keys::REAL_TOPIC, m.topic.clone())?;
    set(&mut p, keys::REAL_QUEUE_ID, m.queue_id.to_string())?;
    let uniq = p.get(keys::UNIQ_KEY).unwrap_or_default().to_owned();
    set(&mut p, TRANSACTION_ID, uniq)?;
    if p.get(keys::PRODUCER_GROUP).is_none_or(str::is_empty) {
        set(&mut p, keys::PRODUCER_GROUP, group.to_owned())?;
    }
    let encoded = p.encode();
    if encoded.len() > i16::MAX as usize {
        return Err((
            response::MESSAGE_ILLEGAL,
            "the message properties exceed 32767 bytes".into(),
        ));
    }
    m.properties = Bytes::from(encoded);
    m.topic = HALF_TOPIC.to_owned();
    m.queue_id = 0;
    m.sys_flag = with_transaction_type(m.sys_flag, TRANSACTION_NOT_TYPE);
    m.tags_code = 0;
    m.mark = None;
    Ok(m)
}

/// The shard that stores the half message END_TRANSACTION names.
pub fn owner_of(cmd: &RemotingCommand) -> Option<u16> {
    let raw = cmd.ext_i64("commitLogOffset").ok().flatten()?;
    PhysicalOffset::decode(raw).map(|p| p.shard())
}

/// END_TRANSACTION (37). Usually oneway: the remark of an error is logged
/// then (a client that asks for a reply gets it).
pub async fn end_transaction(
    shard: &Rc<Shard>,
    cmd: RemotingCommand,
    client: &crate::runtime::mesh::ClientRef,
) -> Option<RemotingCommand> {
    match end_inner(shard, &cmd, client).await {
        Ok(()) => Some(RemotingCommand::response_to(&cmd, response::SUCCESS, None)),
        Err((code, remark)) => {
            if cmd.is_oneway() {
                log::warn!("END_TRANSACTION refused ({code}): {remark}");
            }
            error(&cmd, code, remark)
        }
    }
}

async fn end_inner(
    shard: &Rc<Shard>,
    cmd: &RemotingCommand,
    client: &crate::runtime::mesh::ClientRef,
) -> Result<(), (i32, String)> {
    let bad = |e: crate::protocol::HeaderError| (response::INVALID_PARAMETER, e.to_string());
    let group = cmd.required_str("producerGroup").map_err(bad)?;
    let table_offset = cmd.required_i64("tranStateTableOffset").map_err(bad)?;
    let offset = cmd.required_i64("commitLogOffset").map_err(bad)?;
    let kind = cmd.required_i32("commitOrRollback").map_err(bad)?;
    let commit = match kind {
        0 => return Ok(()), // unknown: the check will ask again
        8 => true,
        12 => false,
        k => {
            return Err((
                response::INVALID_PARAMETER,
                format!("commitOrRollback {k} is not 0 (unknown), 8 (commit) or 12 (rollback)"),
            ))
        }
    };
    let not_found = || {
        (
            response::SYSTEM_ERROR,
            format!("find prepared transaction message failed: no half message at commitLogOffset {offset}"),
        )
    };
    let rec = super::query::record_at(shard, offset).await.map_err(|e| match e {
        super::query::Lookup::NotFound => not_found(),
        super::query::Lookup::Failed(e) => (
            response::SYSTEM_ERROR,
            format!("read of commitLogOffset {offset} failed: {e}"),
        ),
    })?;
    let RecordCheck::Record(v) = check_record(&rec, None, false) else {
        return Err(not_found());
    };
    if v.topic != HALF_TOPIC.as_bytes() {
        return Err(not_found());
    }
    let props = Properties::parse_bytes(v.properties);
    // The header's topic (if any) was checked on arrival; the transaction
    // must be one of a topic the client may publish to.
    let real = props.get(keys::REAL_TOPIC).unwrap_or("");
    super::access::may(&shard.access, cmd, client, real, crate::acl::Need::Pub)?;
    if props.get(keys::PRODUCER_GROUP) != Some(group) {
        return Err((
            response::SYSTEM_ERROR,
            format!(
                "the producer group {group} differs from the half message's {}",
                props.get(keys::PRODUCER_GROUP).unwrap_or("")
            ),
        ));
    }
    if v.queue_offset as i64 != table_offset {
        return Err((
            response::SYSTEM_ERROR,
            format!(
                "tranStateTableOffset {table_offset} differs from the half message's {}",
                v.queue_offset
            ),
        ));
    }
    let m = v.to_input().ok_or_else(|| {
        (
            response::SYSTEM_ERROR,
            "the half message's topic is not UTF-8".to_string(),
        )
    })?;
    resolve(shard, v.queue_offset, offset, m, commit).await?;
    if shard.trace.enabled() {
        let id = props.get(keys::UNIQ_KEY).unwrap_or("");
        shard.trace.ended(&shard.cfg.broker_name, group, real, id, commit);
    }
    Ok(())
}

/// Writes the commit (the real message) or the rollback (an op record),
/// each with the half's mark; refused when the half is already resolved or
/// being resolved.
async fn resolve(
    shard: &Rc<Shard>,
    half: u64,
    half_pos: i64,
    m: MessageInput,
    commit: bool,
) -> Result<(), (i32, String)> {
    {
        let mut st = shard.tx.st.borrow_mut();
        if !st.started {
            return Err((
                response::SYSTEM_BUSY,
                "transactions are still loading after a restart; the check will ask again".into(),
            ));
        }
        if st.resolved.contains_key(&half) || st.resolving.contains_key(&half) || half < low(&st) {
            return Err((
                response::ILLEGAL_OPERATION,
                format!("the transaction of half message {half} is already committed or rolled back"),
            ));
        }
        st.resolving.insert(half, ());
    }
    let mark = Mark {
        queue: MARK_QUEUE_TRANSACTION,
        value: half as i64,
    };
    let mark_floor = shard
        .store
        .offsets(MARK_TOPIC, MARK_QUEUE_TRANSACTION)
        .map_or(0, |o| o.1);
    let built = if commit {
        committed(shard, m, half_pos, mark)
    } else {
        Ok((rollback_record(m, half, mark), None))
    };
    let (msg, due) = match built {
        Ok(v) => v,
        Err(e) => {
            shard.tx.st.borrow_mut().resolving.remove(&half);
            return Err(e);
        }
    };
    let (topic, qid) = (msg.topic.clone(), msg.queue_id);
    let r = shard.store.put(msg).await;
    let mut st = shard.tx.st.borrow_mut();
    st.resolving.remove(&half);
    match r.status {
        PutStatus::Ok
        | PutStatus::FlushDiskTimeout
        | PutStatus::FlushSlaveTimeout
        | PutStatus::SlaveNotAvailable
        | PutStatus::FlushFailed(_) => {
            // FlushFailed: possibly stored; its mark decides after a restart.
            st.open.remove(&half);
            st.resolved.insert(half, mark_floor);
            st.dirty = true;
            if commit {
                st.committed += 1;
            } else {
                st.rolled_back += 1;
            }
            drop(st);
            if due.is_some() {
                shard.timer.wake.notify_all();
            } else if commit {
                shard.message_arrived(&topic, qid);
            }
            Ok(())
        }
        PutStatus::MessageIllegal(why) => Err((response::MESSAGE_ILLEGAL, why)),
        PutStatus::ServiceNotAvailable(why) => Err((response::SERVICE_NOT_AVAILABLE, why)),
        PutStatus::Busy => Err((response::SYSTEM_BUSY, "broker busy, the tail cache is full".into())),
    }
}

/// The committed message: the half's real topic and queue, sysFlag COMMIT,
/// `PREPARED_TRANSACTION_OFFSET` = the half's offset, the mark — scheduled
/// when it asks for a delay, as the Java broker does.
fn committed(
    shard: &Shard,
    mut m: MessageInput,
    half_pos: i64,
    mark: Mark,
) -> Result<(MessageInput, Option<i64>), (i32, String)> {
    let mut p = Properties::parse_bytes(&m.properties);
    let topic = p
        .get(keys::REAL_TOPIC)
        .ok_or((response::SYSTEM_ERROR, "the half message has no REAL_TOPIC".to_string()))?
        .to_owned();
    let qid: u32 = p.get(keys::REAL_QUEUE_ID).and_then(|q| q.parse().ok()).ok_or((
        response::SYSTEM_ERROR,
        "the half message has no valid REAL_QID".to_string(),
    ))?;
    p.remove(keys::TRANSACTION_PREPARED);
    super::retry::strip_internal(&mut p);
    let due = super::timer::due::delivery_time(&shard.cfg, &p.encode()).map_err(|e| (response::MESSAGE_ILLEGAL, e))?;
    m.tags_code = p.get(keys::TAGS).map_or(0, |t| java_string_hash(t) as i64);
    m.topic = topic;
    m.queue_id = qid;
    m.sys_flag = with_transaction_type(m.sys_flag, TRANSACTION_COMMIT_TYPE);
    m.prepared_transaction_offset = half_pos;
    if let Some(due) = due {
        m.properties = Bytes::from(p.encode());
        m = super::timer::due::scheduled(m, due)
            .map_err(|e| (response::MESSAGE_ILLEGAL, e))?
            .0;
        p = Properties::parse_bytes(&m.properties);
    }
    p.insert(MARK_PROPERTY, mark.property())
        .map_err(|e| (response::MESSAGE_ILLEGAL, e.to_string()))?;
    m.properties = Bytes::from(p.encode());
    m.mark = Some(mark);
    Ok((m, due))
}

/// The op record of a rollback: tag `d`, body = the half offset.
fn rollback_record(half_msg: MessageInput, half: u64, mark: Mark) -> MessageInput {
    let props = format!("TAGS\x01d\x02{MARK_PROPERTY}\x01{}\x02", mark.property());
    MessageInput {
        topic: OP_TOPIC.to_owned(),
        queue_id: 0,
        flag: 0,
        body: Bytes::from(format!("{half},")),
        properties: Bytes::from(props),
        sys_flag: 0,
        born_timestamp: now_ms(),
        born_host: half_msg.born_host,
        reconsume_times: 0,
        prepared_transaction_offset: 0,
        tags_code: java_string_hash("d") as i64,
        mark: Some(mark),
    }
}

#[cfg(test)]
mod tests {
    use super::checks::parse_state;
    use super::*;

    #[test]
    fn half_messages_are_recognised_as_java_does() {
        assert!(is_half("TRAN_MSG\x01true\x02PGROUP\x01g\x02", 4, 0));
        assert!(is_half("TRAN_MSG\x01true\x02", 0, 0));
        assert!(is_half("", 4, 0));
        assert!(!is_half("TRAN_MSG\x01false\x02", 0, 0));
        assert!(!is_half("TRAN_MSG\x01true\x02DELAY\x013\x02", 4, 1), "a retried one");
        assert!(!is_half("KEYS\x01k\x02", 0, 0));
    }

    #[test]
    fn state_file_round_trip() {
        let (low, m, c) = parse_state("shardmq-tx 1 5 9\n7 3\n8 1\n").unwrap();
        assert_eq!((low, m), (5, 9));
        assert_eq!(c.get(&7), Some(&3));
        assert_eq!(c.get(&8), Some(&1));
        assert!(parse_state("shardmq-tx 1 5\n").is_none());
        assert!(parse_state("nope").is_none());
        assert!(parse_state("shardmq-tx 1 5 9\n7\n").is_none());
    }
}
