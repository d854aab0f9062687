//! Error replies, the same shape from every handler.

use crate::protocol::codes::{request, response};
use crate::protocol::RemotingCommand;

/// An error reply with a remark (never for oneway requests).
pub fn error(req: &RemotingCommand, code: i32, remark: impl Into<String>) -> Option<RemotingCommand> {
    Some(RemotingCommand::response_to(req, code, Some(remark.into())))
}

pub fn not_supported(req: &RemotingCommand) -> Option<RemotingCommand> {
    error(
        req,
        response::REQUEST_CODE_NOT_SUPPORTED,
        request::not_supported_remark(req.code),
    )
}
