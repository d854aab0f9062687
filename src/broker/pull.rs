//! PULL_MESSAGE (11) / LITE_PULL_MESSAGE (361) with long polling
//! (codes.md §2.3). Runs on the shard that owns the queue.
//!
//! A pull that finds nothing new and has the SUSPEND bit is parked
//! ([`super::long_poll`]): a registration, not a task, holding none of the
//! connection's request slots. When a message arrives on its queue or its
//! suspend timeout passes, it runs once more without suspension and its
//! reply is delivered to the connection.

use std::rc::Rc;
use std::time::Duration;

use crate::protocol::codes::response;
use crate::protocol::header::{pull_sys_flag, CommandHeader};
use crate::protocol::{PullMessageRequestHeader, PullMessageResponseHeader, RemotingCommand};
use crate::runtime::mesh::ClientRef;
use crate::store::{GetResult, GetStatus, TagFilter};

use super::long_poll::Parked;
use super::mesh::ConnOp;
use super::metadata::{self, perm, Metadata};
use super::reply::error;
use super::shard::Shard;

/// Most messages per pull (RocketMQ's in-memory cap).
const MAX_MSGS: usize = 32;
const DEFAULT_MAX_BYTES: usize = 256 * 1024;
const MAX_BYTES: usize = 4 << 20;

/// Which run of a pull this is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// As it arrived: commits the offset it carries, may be parked.
    First,
    /// A parked pull that is due: answers whatever it finds.
    Parked,
}

pub async fn handle(shard: &Rc<Shard>, cmd: RemotingCommand, client: &ClientRef) -> Option<RemotingCommand> {
    run(shard, cmd, client, Pass::First).await
}

/// The shard's task that answers parked pulls when they are due
/// ([`LongPolls::next_due`]), each in a short task of its own (a pull may
/// read from disk), delivering the reply to the client's connection.
pub async fn answer_parked(shard: Rc<Shard>) {
    loop {
        for p in shard.pulls.next_due().await {
            let shard = shard.clone();
            glommio::spawn_local(async move {
                let client = p.client.clone();
                if let Some(reply) = run(&shard, p.cmd, &client, Pass::Parked).await {
                    shard.to_conn(client.shard, client.conn, ConnOp::Deliver(reply)).await;
                }
            })
            .detach();
        }
    }
}

async fn run(shard: &Rc<Shard>, cmd: RemotingCommand, client: &ClientRef, pass: Pass) -> Option<RemotingCommand> {
    let h = match PullMessageRequestHeader::from_ext(&cmd.ext_fields) {
        Ok(h) => h,
        Err(e) => return error(&cmd, response::INVALID_PARAMETER, e.to_string()),
    };
    if let Err(e) = metadata::validate_group(&h.consumer_group) {
        return error(&cmd, response::INVALID_PARAMETER, e);
    }
    // Read from the snapshot in place: no reference count shared with
    // the other shards is touched per pull.
    let (qid, filter) = match shard.with_meta(|meta| admit(meta, &h)) {
        Ok(v) => v,
        Err((code, remark)) => return error(&cmd, code, remark),
    };
    if pass == Pass::First && h.has_sys_flag(pull_sys_flag::COMMIT_OFFSET) && h.commit_offset >= 0 {
        shard
            .offsets
            .commit(&h.consumer_group, &h.topic, qid, h.commit_offset as u64);
    }
    let max_msgs = (h.max_msg_nums.max(1) as usize).min(MAX_MSGS);
    let max_bytes = h
        .max_msg_bytes
        .map_or(DEFAULT_MAX_BYTES, |b| (b.max(100) as usize).min(MAX_BYTES));
    let offset = h.queue_offset.max(0) as u64;
    let mut suspend = pass == Pass::First && h.has_sys_flag(pull_sys_flag::SUSPEND);
    loop {
        let r = match shard
            .store
            .get_messages(&h.topic, qid, offset, max_msgs, max_bytes, &filter)
            .await
        {
            Ok(r) => r,
            Err(e) => return error(&cmd, response::SYSTEM_ERROR, format!("read failed: {e}")),
        };
        let (code, next) = classify(&r, offset);
        if code == response::PULL_NOT_FOUND && suspend {
            suspend = false;
            // A message that became visible while we read: read again.
            if shard.store.max_offset(&h.topic, qid) != r.max_offset {
                continue;
            }
            // Answer well before the client's own timeout (30 s).
            let hold = Duration::from_millis(h.suspend_timeout_millis.clamp(0, 25_000) as u64);
            // Over a bound: answer now.
            if shard.pulls.has_room(client) {
                shard
                    .pulls
                    .park(Parked::new(cmd, client.clone(), h.topic.clone(), qid), hold);
                shard.to_conn(client.shard, client.conn, ConnOp::Defer).await;
                return None;
            }
        }
        if code == response::SUCCESS && shard.trace.enabled() {
            let to = client.addr.to_string();
            shard
                .trace
                .delivered(&shard.cfg.broker_name, &h.consumer_group, &to, &r.body);
        }
        let suggest = suggested_broker(&shard.cfg, &r);
        return Some(reply(&cmd, code, next, r, suggest));
    }
}

/// `suggestWhichBrokerId` (RocketMQ's `slaveReadEnable`): a consumer that
/// lags — its records no longer in the CommitLog's tail in memory, read
/// from disk — is sent to `whichBrokerWhenConsumeSlowly` (a slave), so
/// that its disk reads land there rather than beside the master's writes;
/// one that is caught up is sent to the master. Without
/// `slaveReadEnable`, always the master.
fn suggested_broker(cfg: &crate::config::BrokerConfig, r: &GetResult) -> i64 {
    if cfg.slave_read_enable && r.from_disk {
        cfg.which_broker_when_consume_slowly as i64
    } else {
        0
    }
}

/// The queue and the filter of a pull the snapshot allows, or the code and
/// remark to answer.
fn admit(meta: &Metadata, h: &PullMessageRequestHeader) -> Result<(u32, TagFilter), (i32, String)> {
    let Some(info) = meta.topic(&h.topic) else {
        return Err(super::reply::topic_not_exist(&h.topic));
    };
    if info.perm & perm::READ == 0 {
        return Err((
            response::NO_PERMISSION,
            format!("the topic[{}] pulling message is forbidden", h.topic),
        ));
    }
    if h.queue_id < 0 || h.queue_id as u32 >= info.read_queue_nums {
        return Err((
            response::INVALID_PARAMETER,
            format!(
                "queueId[{}] is illegal, topic:[{}] readQueueNums:[{}]",
                h.queue_id, h.topic, info.read_queue_nums
            ),
        ));
    }
    let qid = h.queue_id as u32;
    if h.has_sys_flag(pull_sys_flag::SUBSCRIPTION) {
        let ty = h.expression_type.as_deref().unwrap_or("TAG");
        if !ty.eq_ignore_ascii_case("TAG") {
            return Err((
                response::SYSTEM_ERROR,
                "The broker does not support consumer to filter message by SQL92".into(),
            ));
        }
        return Ok((qid, metadata::tag_filter(h.subscription.as_deref().unwrap_or("*"))));
    }
    match meta.subscriptions.get(&(h.consumer_group.clone(), h.topic.clone())) {
        Some(s) if s.sub_version < h.sub_version => Err((
            response::SUBSCRIPTION_NOT_LATEST,
            "the consumer's subscription not latest".into(),
        )),
        Some(s) => Ok((qid, metadata::tag_filter(&s.expression))),
        None => Err((
            response::SUBSCRIPTION_NOT_EXIST,
            format!(
                "the consumer's subscription not exist, group: {} topic: {}",
                h.consumer_group, h.topic
            ),
        )),
    }
}

/// Store status → pull response code and next offset (codes.md §2.3).
fn classify(r: &GetResult, offset: u64) -> (i32, u64) {
    match r.status {
        GetStatus::Found => (response::SUCCESS, r.next_offset),
        GetStatus::NoMatchedMessage => (response::PULL_RETRY_IMMEDIATELY, r.next_offset),
        GetStatus::OffsetOverflowOne => (response::PULL_NOT_FOUND, offset),
        // A queue that exists but never received a message.
        GetStatus::NoMessageInQueue | GetStatus::NoMatchedLogicQueue if offset == 0 => (response::PULL_NOT_FOUND, 0),
        GetStatus::NoMessageInQueue | GetStatus::NoMatchedLogicQueue => (response::PULL_OFFSET_MOVED, 0),
        GetStatus::OffsetTooSmall | GetStatus::OffsetOverflowBadly => (response::PULL_OFFSET_MOVED, r.next_offset),
    }
}

fn reply(cmd: &RemotingCommand, code: i32, next: u64, r: GetResult, suggest: i64) -> RemotingCommand {
    let h = PullMessageResponseHeader {
        suggest_which_broker_id: suggest,
        next_begin_offset: next as i64,
        min_offset: r.min_offset as i64,
        max_offset: r.max_offset as i64,
        topic_sys_flag: Some(0),
        group_sys_flag: Some(0),
        ..Default::default()
    };
    let remark = r.status.java_name().to_string();
    let mut out = RemotingCommand::response_to(cmd, code, Some(remark)).with_ext_fields(h.to_ext());
    if code == response::SUCCESS {
        out = out.with_body(r.body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_expressions() {
        assert_eq!(metadata::tag_filter("*"), TagFilter::All);
        assert_eq!(metadata::tag_filter(""), TagFilter::All);
        assert_eq!(
            metadata::tag_filter("TagA || TagB"),
            TagFilter::Codes(vec![2598919, 2598920])
        );
        assert_eq!(metadata::tag_filter(" || "), TagFilter::All);
    }

    #[test]
    fn pull_remarks_use_the_java_status_names() {
        let r = GetResult {
            status: GetStatus::Found,
            next_offset: 1,
            min_offset: 0,
            max_offset: 1,
            body: Vec::new(),
            count: 0,
            offsets: Vec::new(),
            from_disk: false,
        };
        let cmd = RemotingCommand::new_request(crate::protocol::codes::request::PULL_MESSAGE);
        let out = reply(&cmd, response::SUCCESS, 1, r, 0);
        assert_eq!(out.remark.as_deref(), Some("FOUND"));
        assert_eq!(GetStatus::OffsetOverflowOne.java_name(), "OFFSET_OVERFLOW_ONE");
    }
}
