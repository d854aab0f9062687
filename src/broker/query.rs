//! VIEW_MESSAGE_BY_ID (33): the record at a physical offset, decoded from
//! an offset message id (store host + position). The position carries the
//! owning shard, so the id resolves on any port: the request runs on that
//! shard wherever it arrives.

use std::rc::Rc;

use crate::protocol::codes::response;
use crate::protocol::RemotingCommand;
use crate::store::PhysicalOffset;

use super::reply::error;
use super::shard::Shard;

/// The shard that stores `offset`, if the value is a valid position.
pub fn owner_of(cmd: &RemotingCommand) -> Option<u16> {
    let raw = cmd.ext_i64("offset").ok().flatten()?;
    PhysicalOffset::decode(raw).map(|p| p.shard())
}

pub async fn view_message(shard: &Rc<Shard>, cmd: RemotingCommand) -> Option<RemotingCommand> {
    let raw = match cmd.required_i64("offset") {
        Ok(o) => o,
        Err(e) => return error(&cmd, response::INVALID_PARAMETER, e.to_string()),
    };
    let Some(pos) = PhysicalOffset::decode(raw) else {
        return error(
            &cmd,
            response::SYSTEM_ERROR,
            format!("can not find message by the offset {raw}"),
        );
    };
    match shard.store.read_record(pos).await {
        Ok(Some(rec)) => Some(RemotingCommand::response_to(&cmd, response::SUCCESS, None).with_body(rec)),
        Ok(None) => error(
            &cmd,
            response::SYSTEM_ERROR,
            format!("can not find message by the offset {raw}"),
        ),
        Err(e) => error(
            &cmd,
            response::SYSTEM_ERROR,
            format!("read of offset {raw} failed: {e}"),
        ),
    }
}
