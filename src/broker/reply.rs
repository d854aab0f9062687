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

/// TOPIC_NOT_EXIST with the Java broker's remark.
pub fn topic_not_exist(topic: &str) -> (i32, String) {
    topic_not_exist_because(topic, "")
}

/// TOPIC_NOT_EXIST with the Java broker's remark and why (e.g. auto-creation
/// is off).
pub fn topic_not_exist_because(topic: &str, why: &str) -> (i32, String) {
    let mut remark = format!("topic[{topic}] not exist, apply first please!");
    if !why.is_empty() {
        remark.push(' ');
        remark.push_str(why);
    }
    (response::TOPIC_NOT_EXIST, remark)
}
