//! VIEW_MESSAGE_BY_ID (33): the record at a physical offset, decoded from
//! an offset message id (store host + position). The position carries the
//! owning shard, so the id resolves on any port: the request runs on that
//! shard wherever it arrives.

use std::rc::Rc;

use crate::acl::Need;
use crate::protocol::codes::response;
use crate::protocol::properties::{keys, Properties};
use crate::protocol::RemotingCommand;
use crate::runtime::mesh::ClientRef;
use crate::store::record::{check_record, RecordCheck};
use crate::store::{PhysicalOffset, SCHEDULE_TOPIC};

use super::reply::error;
use super::shard::Shard;

/// The shard that stores `offset` (VIEW_MESSAGE_BY_ID, CONSUMER_SEND_MSG_BACK),
/// if the value is a valid position.
pub fn owner_of(cmd: &RemotingCommand) -> Option<u16> {
    let raw = cmd.ext_i64("offset").ok().flatten()?;
    PhysicalOffset::decode(raw).map(|p| p.shard())
}

/// VIEW_MESSAGE_BY_ID: the record at an offset, to a client that may
/// subscribe to its topic.
pub async fn view_message(shard: &Rc<Shard>, cmd: RemotingCommand, client: &ClientRef) -> Option<RemotingCommand> {
    let raw = match cmd.required_i64("offset") {
        Ok(o) => o,
        Err(e) => return error(&cmd, response::INVALID_PARAMETER, e.to_string()),
    };
    match record_at(shard, raw).await {
        Ok(rec) => {
            if shard.access.enabled() {
                if let Err((code, remark)) = super::access::may(&shard.access, &cmd, client, &topic_of(&rec), Need::Sub)
                {
                    return error(&cmd, code, remark);
                }
            }
            Some(RemotingCommand::response_to(&cmd, response::SUCCESS, None).with_body(rec))
        }
        Err(Lookup::NotFound) => error(
            &cmd,
            response::SYSTEM_ERROR,
            format!("can not find message by the offset {raw}"),
        ),
        Err(Lookup::Failed(e)) => error(
            &cmd,
            response::SYSTEM_ERROR,
            format!("read of offset {raw} failed: {e}"),
        ),
    }
}

/// The topic a client sees the record `rec` in: its own, or for a message
/// parked in a system topic (delayed, half) the `REAL_TOPIC` it goes to.
pub fn topic_of(rec: &[u8]) -> String {
    let RecordCheck::Record(v) = check_record(rec, None, false) else {
        return String::new();
    };
    let props = Properties::parse_bytes(v.properties);
    match props.get(keys::REAL_TOPIC) {
        Some(real) if v.topic == SCHEDULE_TOPIC.as_bytes() || v.topic.starts_with(b"RMQ_SYS_") => real.to_owned(),
        _ => String::from_utf8_lossy(v.topic).into_owned(),
    }
}

/// Why [`record_at`] has no record.
pub enum Lookup {
    /// Not a position of this shard's log, or no whole record there.
    NotFound,
    /// The read failed (I/O).
    Failed(String),
}

/// The whole, valid record stored at a physical offset a client named (a
/// message id's, a send-back's, an END_TRANSACTION's), on this shard.
pub async fn record_at(shard: &Shard, raw: i64) -> Result<Vec<u8>, Lookup> {
    let pos = PhysicalOffset::decode(raw).ok_or(Lookup::NotFound)?;
    match shard.store.read_record(pos).await {
        Ok(Some(rec)) => Ok(rec),
        Ok(None) => Err(Lookup::NotFound),
        Err(e) => Err(Lookup::Failed(e.to_string())),
    }
}
