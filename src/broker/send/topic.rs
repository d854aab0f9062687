//! The topic of a send: name checks (valid, not a system topic clients may
//! not write), and auto-creation of an unknown one on the controller.

use std::rc::Rc;
use std::sync::Arc;

use crate::protocol::codes::response;
use crate::protocol::RemotingCommand;
use crate::protocol::SendHeaderView;
use crate::runtime::mesh::ClientRef;

use crate::broker::metadata::{self, TopicInfo};
use crate::broker::reply::error;
use crate::broker::shard::Shard;

/// The topic of a send request, auto-created first when it does not exist
/// and may be created; `Err` holds the reply (an error) to send instead.
/// Used by the dispatcher before it translates the request's queue id, so
/// that the creating send is routed like every later one.
pub async fn ensure_topic_of(
    shard: &Rc<Shard>,
    cmd: &RemotingCommand,
    client: &ClientRef,
) -> Result<Arc<TopicInfo>, Option<RemotingCommand>> {
    let h = match SendHeaderView::from_ext(&cmd.ext_fields) {
        Ok(h) => h,
        Err(e) => return Err(error(cmd, response::INVALID_PARAMETER, e.to_string())),
    };
    if let Some(reply) = check_topic(cmd, h.topic) {
        return Err(reply);
    }
    ensure_topic(shard, h.topic, h.default_topic_queue_nums, client)
        .await
        .map_err(|e| e.map(|(code, remark)| RemotingCommand::response_to(cmd, code, Some(remark))))
}

/// Topic name checks of a send: valid name, a valid group in a retry or
/// DLQ topic, not a system topic clients may not write.
pub(super) fn check_topic(cmd: &RemotingCommand, topic: &str) -> Option<Option<RemotingCommand>> {
    if let Err(e) = metadata::validate_topic(topic) {
        return Some(error(cmd, response::INVALID_PARAMETER, e));
    }
    if let Some(group) = crate::broker::group_names::group_of_topic(topic) {
        if let Err(why) = metadata::validate_group(group) {
            return Some(crate::broker::group_names::refuse(cmd, &format!("topic {topic}"), why));
        }
    }
    if metadata::is_not_allowed_send(topic) {
        return Some(error(
            cmd,
            response::NO_PERMISSION,
            format!("Sending message to topic[{topic}] is forbidden."),
        ));
    }
    None
}

/// Creates an unknown topic when allowed, on the controller, which
/// publishes the new snapshot before answering:
///
/// * a retry topic (`%RETRY%<group>`) with one queue;
/// * any other topic from the `TBW102` template when `autoCreateTopicEnable`
///   is on, with as many queues on each broker entry as the client derived
///   for it from the TBW102 route ([`metadata::auto_create_assignment`]:
///   `min(defaultTopicQueueNums of the request, TBW102's write queues on
///   the entry)`, per shard entry with shard-aware routes, in total on the
///   main entry). The controller sees the client's view (which entry the
///   send came through) with the forwarded request.
pub(super) async fn ensure_topic(
    shard: &Rc<Shard>,
    topic: &str,
    default_topic_queue_nums: i32,
    client: &ClientRef,
) -> Result<Arc<TopicInfo>, Option<(i32, String)>> {
    if let Some(t) = shard.topic(topic) {
        return Ok(t);
    }
    let retry =
        topic.starts_with(metadata::RETRY_GROUP_TOPIC_PREFIX) || topic.starts_with(metadata::DLQ_GROUP_TOPIC_PREFIX);
    if !retry && !shard.cfg.auto_create_topic_enable {
        return Err(Some(crate::broker::reply::topic_not_exist_because(
            topic,
            "autoCreateTopicEnable is false",
        )));
    }
    shard
        .auto_create_topic(topic, default_topic_queue_nums, client.view)
        .await
        .map_err(Some)
}
