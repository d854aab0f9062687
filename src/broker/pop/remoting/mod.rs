//! The remoting POP codes (codes.md §3): POP_MESSAGE, ACK_MESSAGE,
//! BATCH_ACK_MESSAGE, CHANGE_MESSAGE_INVISIBLETIME, PEEK_MESSAGE and
//! NOTIFICATION, answered as the Java broker does. Queue ids arrive global
//! ([`crate::broker::dispatch`] translates a shard entry's numbering) and
//! leave in the client's numbering: in the reply headers and in the queue
//! id of every returned record, which the Java client keys its handles by.
//!
//! Handles (`POP_CK` / `extraInfo`, built by the client from the reply
//! header): `<startOffset> <popTime> <invisibleTime> <reviveQid> 0
//! <brokerName> <queueId> <offset>`. The pop time names the lease; the
//! queue and offset come from the request header.
//!
//! Files: [`pop`] (POP_MESSAGE), [`ack`] (ACK_MESSAGE, BATCH_ACK_MESSAGE,
//! CHANGE_MESSAGE_INVISIBLETIME, and acks and changes on a queue's owner for
//! the other front doors), [`peek`] (PEEK_MESSAGE, POLLING_INFO,
//! NOTIFICATION); this file holds what they share.

mod ack;
mod peek;
mod pop;

pub use ack::{ack, ack_on, batch_ack, change_invisible, change_on};
pub use peek::{notification, peek, polling_info};
pub use pop::pop;

use std::rc::Rc;

use crate::protocol::codes::{request, response};
use crate::protocol::RemotingCommand;
use crate::runtime::mesh::{ClientRef, View};

use super::engine::Refusal;
use super::Shard;
use crate::broker::metadata::TopicInfo;

/// Longest hold of a long-polling pop (the client's own timeout is longer).
const MAX_HOLD_MS: i64 = 30_000;

/// Longest invisible time (12 h, the proxy's limit).
pub const MAX_INVISIBLE_MS: i64 = 12 * 3600 * 1000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Pass {
    First,
    Parked,
}

/// A parked POP_MESSAGE or NOTIFICATION that is due: runs once more,
/// without parking.
pub async fn rerun_parked(shard: &Rc<Shard>, cmd: RemotingCommand, client: &ClientRef) -> Option<RemotingCommand> {
    if cmd.code == request::NOTIFICATION {
        return peek::run_notification(shard, cmd, client, Pass::Parked).await;
    }
    pop::run_pop(shard, cmd, client, Pass::Parked).await
}

/// The client's number for global queue `g`.
fn local_queue(info: Option<&TopicInfo>, view: View, g: u32) -> u32 {
    match (view, info) {
        (View::Shard(k), Some(t)) => t.global_to_local(k, g).unwrap_or(g),
        _ => g,
    }
}

fn bad(e: crate::protocol::HeaderError) -> Refusal {
    (response::INVALID_PARAMETER, e.to_string())
}

fn check_invisible(shard: &Shard, invisible: i64) -> Result<(), Refusal> {
    let min = shard.cfg.pop_min_invisible_ms;
    if invisible < min || invisible > MAX_INVISIBLE_MS {
        return Err((
            response::INVALID_PARAMETER,
            format!("invisibleTime {invisible} ms is out of range: {min} ms (popMinInvisibleTime) to 12 h"),
        ));
    }
    Ok(())
}
