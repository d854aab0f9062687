//! What a request needs: the resources it touches, the permission it needs
//! on each, and whether it is an admin request.
//!
//! | request | needs |
//! |---|---|
//! | SEND_MESSAGE, SEND_MESSAGE_V2, SEND_BATCH_MESSAGE, SEND_REPLY_MESSAGE(_V2) | topic (`topic` and/or `b`): PUB |
//! | RECALL_MESSAGE, END_TRANSACTION | topic (`topic`, if sent): PUB |
//! | CONSUMER_SEND_MSG_BACK | group (`group`): SUB |
//! | PULL_MESSAGE, LITE_PULL_MESSAGE, QUERY/UPDATE_CONSUMER_OFFSET | `topic`: SUB, group (`consumerGroup`): SUB |
//! | POP, ACK, PEEK, CHANGE_INVISIBLETIME, NOTIFICATION, POLLING_INFO | `topic`: SUB, group (`consumerGroup`): SUB |
//! | QUERY_MESSAGE, VIEW_MESSAGE_BY_ID | `topic` (if sent): SUB |
//! | GET_MAX/MIN_OFFSET, SEARCH_OFFSET_BY_TIMESTAMP, GET_EARLIEST_MSG_STORETIME | `topic`: PUB or SUB |
//! | UNREGISTER_CLIENT, GET_CONSUMER_LIST_BY_GROUP | group (`consumerGroup`, if sent): SUB |
//! | HEART_BEAT (body) | each consumer group: SUB; each subscribed topic: SUB |
//! | LOCK_BATCH_MQ, UNLOCK_BATCH_MQ (body) | `consumerGroup`: SUB; each queue's topic: SUB |
//! | QUERY_ASSIGNMENT (body) | `topic`: SUB; `consumerGroup`: SUB |
//! | BATCH_ACK_MESSAGE (body) | each ack's topic (`t`): SUB and group (`c`): SUB |
//! | CHECK_CLIENT_CONFIG, GET_ROUTEINFO_BY_TOPIC, GET_BROKER_CLUSTER_INFO | nothing (an authenticated account) |
//! | every other code | an admin account |
//!
//! A topic `%RETRY%g` or `%DLQ%g` is group `g`'s, and a group needs SUB
//! whatever is done with its topics (Apache 4.9.8 named the group of a
//! retry-topic send by the producer-group header; the group owning the
//! topic is what is being written to). `RMQ_SYS_TRACE_TOPIC` PUB is
//! granted to every account (message traces; Apache 4.9.8 likewise).
//!
//! Fields are read under the keys the handlers read; an absent field adds
//! nothing (the handler refuses the request for it anyway).

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use smallvec::SmallVec;

use crate::protocol::bodies::{decode_json, HeartbeatData, JsonBody, LockBatchRequestBody};
use crate::protocol::codes::request;
use crate::protocol::ExtFields;

/// RocketMQ `MixAll.RETRY_GROUP_TOPIC_PREFIX`.
pub const RETRY_GROUP_TOPIC_PREFIX: &str = "%RETRY%";
/// RocketMQ `MixAll.DLQ_GROUP_TOPIC_PREFIX`.
pub const DLQ_GROUP_TOPIC_PREFIX: &str = "%DLQ%";
/// RocketMQ `TopicValidator.RMQ_SYS_TRACE_TOPIC`.
pub const TRACE_TOPIC: &str = "RMQ_SYS_TRACE_TOPIC";
/// Most distinct resources one request may name (a batch ack has up to
/// 1024 entries, each a topic and a group); more are refused as a whole.
pub const MAX_RESOURCES: usize = 2048;

/// The permission a request needs on a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Need {
    Pub,
    Sub,
    /// PUB or SUB (reading metadata of a topic one uses either way).
    Any,
}

impl fmt::Display for Need {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Need::Pub => "PUB",
            Need::Sub => "SUB",
            Need::Any => "PUB or SUB",
        })
    }
}

/// A topic or a consumer group, borrowed from the request when it can be.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Resource<'a> {
    Topic(Cow<'a, str>),
    Group(Cow<'a, str>),
}

impl Resource<'_> {
    /// The group a retry (`%RETRY%g`) or dead-letter (`%DLQ%g`) topic is
    /// of; `None` for other topics.
    pub fn group_of_topic(topic: &str) -> Option<&str> {
        topic
            .strip_prefix(RETRY_GROUP_TOPIC_PREFIX)
            .or_else(|| topic.strip_prefix(DLQ_GROUP_TOPIC_PREFIX))
    }

    pub fn name(&self) -> &str {
        match self {
            Resource::Topic(n) | Resource::Group(n) => n,
        }
    }

    pub fn into_owned(self) -> Resource<'static> {
        match self {
            Resource::Topic(n) => Resource::Topic(Cow::Owned(n.into_owned())),
            Resource::Group(n) => Resource::Group(Cow::Owned(n.into_owned())),
        }
    }
}

impl fmt::Display for Resource<'_> {
    /// `topic:T` / `group:G`, as Apache's remarks name them; the name is
    /// cut at 128 characters (it came from the network).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, name) = match self {
            Resource::Topic(n) => ("topic", n),
            Resource::Group(n) => ("group", n),
        };
        let short: String = name.chars().take(128).collect();
        write!(f, "{kind}:{short}")
    }
}

/// Everything one request needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needs<'a> {
    /// The request code, when only an admin account may make the request.
    admin_code: Option<i32>,
    items: SmallVec<[(Resource<'a>, Need); 4]>,
    /// More than [`MAX_RESOURCES`] were named: refused as a whole.
    overflow: bool,
}

impl<'a> Needs<'a> {
    /// Nothing but an authenticated account.
    pub fn none() -> Self {
        Self::default()
    }

    /// An admin account (for a request of `code`).
    pub fn admin(code: i32) -> Self {
        Self {
            admin_code: Some(code),
            ..Self::default()
        }
    }

    /// The request code, when the request needs an admin account.
    pub fn admin_code(&self) -> Option<i32> {
        self.admin_code
    }

    /// `topic` with `need`; a retry or DLQ topic is its group, SUB.
    /// An empty name is ignored (the handler refuses it).
    pub fn topic(mut self, topic: impl Into<Cow<'a, str>>, need: Need) -> Self {
        self.add_topic(topic.into(), need);
        self
    }

    /// `group`: SUB. An empty name is ignored.
    pub fn group(mut self, group: impl Into<Cow<'a, str>>) -> Self {
        self.add_group(group.into());
        self
    }

    pub fn add_topic(&mut self, topic: Cow<'a, str>, need: Need) {
        if topic.is_empty() {
            return;
        }
        let group = Resource::group_of_topic(&topic).map(str::len);
        match (group, topic) {
            (Some(len), Cow::Borrowed(t)) => self.push(Resource::Group(Cow::Borrowed(&t[t.len() - len..])), Need::Sub),
            (Some(len), Cow::Owned(t)) => {
                self.push(Resource::Group(Cow::Owned(t[t.len() - len..].to_owned())), Need::Sub)
            }
            (None, t) => self.push(Resource::Topic(t), need),
        }
    }

    pub fn add_group(&mut self, group: Cow<'a, str>) {
        if !group.is_empty() {
            self.push(Resource::Group(group), Need::Sub);
        }
    }

    fn push(&mut self, resource: Resource<'a>, need: Need) {
        if self.items.iter().any(|(r, n)| *r == resource && *n == need) {
            return;
        }
        if self.items.len() >= MAX_RESOURCES {
            self.overflow = true;
            return;
        }
        self.items.push((resource, need));
    }

    /// The resources and the permission needed on each, without repeats.
    pub fn iter(&self) -> impl Iterator<Item = (&Resource<'a>, Need)> {
        self.items.iter().map(|(r, n)| (r, *n))
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// True when the request named more than [`MAX_RESOURCES`].
    pub fn overflowed(&self) -> bool {
        self.overflow
    }

    /// HEART_BEAT: for each consumer group (name, subscribed topics), the
    /// group SUB and each topic SUB. Producer groups need nothing.
    pub fn heartbeat<G, T>(consumers: impl IntoIterator<Item = (G, T)>) -> Self
    where
        G: Into<Cow<'a, str>>,
        T: IntoIterator,
        T::Item: Into<Cow<'a, str>>,
    {
        let mut needs = Self::none();
        for (group, topics) in consumers {
            needs.add_group(group.into());
            for t in topics {
                needs.add_topic(t.into(), Need::Sub);
            }
        }
        needs
    }

    /// HEART_BEAT from a decoded body.
    pub fn of_heartbeat(hb: &'a HeartbeatData) -> Self {
        Self::heartbeat(hb.consumer_data_set.iter().map(|c| {
            (
                c.group_name.as_str(),
                c.subscription_data_set.iter().map(|s| s.topic.as_str()),
            )
        }))
    }

    pub fn into_owned(self) -> Needs<'static> {
        Needs {
            admin_code: self.admin_code,
            items: self.items.into_iter().map(|(r, n)| (r.into_owned(), n)).collect(),
            overflow: self.overflow,
        }
    }
}

/// A request whose needs are in its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Heartbeat,
    LockBatch,
    QueryAssignment,
    BatchAck,
}

/// What [`required`] finds from the code and the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Required<'a> {
    Needs(Needs<'a>),
    /// Read the body with [`needs_of_body`] (or, for a heartbeat the
    /// caller has decoded already, [`Needs::of_heartbeat`]).
    Body(BodyKind),
}

/// The needs of a request with `code` and header `ext`.
pub fn required(code: i32, ext: &ExtFields) -> Required<'_> {
    let s = |key: &str| ext.get_str(key).unwrap_or("");
    let n = Needs::none();
    Required::Needs(match code {
        request::SEND_MESSAGE
        | request::SEND_MESSAGE_V2
        | request::SEND_BATCH_MESSAGE
        | request::SEND_REPLY_MESSAGE
        | request::SEND_REPLY_MESSAGE_V2 => {
            // Both spellings: the handler reads `b` only when `topic` is
            // absent, routing reads `b` first; checking both covers either.
            n.topic(s("topic"), Need::Pub).topic(s("b"), Need::Pub)
        }
        request::RECALL_MESSAGE | request::END_TRANSACTION => n.topic(s("topic"), Need::Pub),
        request::CONSUMER_SEND_MSG_BACK => n.group(s("group")),
        request::PULL_MESSAGE
        | request::LITE_PULL_MESSAGE
        | request::QUERY_CONSUMER_OFFSET
        | request::UPDATE_CONSUMER_OFFSET
        | request::POP_MESSAGE
        | request::ACK_MESSAGE
        | request::PEEK_MESSAGE
        | request::CHANGE_MESSAGE_INVISIBLETIME
        | request::NOTIFICATION
        | request::POLLING_INFO => n.topic(s("topic"), Need::Sub).group(s("consumerGroup")),
        request::QUERY_MESSAGE | request::VIEW_MESSAGE_BY_ID => n.topic(s("topic"), Need::Sub),
        request::GET_MAX_OFFSET
        | request::GET_MIN_OFFSET
        | request::SEARCH_OFFSET_BY_TIMESTAMP
        | request::GET_EARLIEST_MSG_STORETIME => n.topic(s("topic"), Need::Any),
        request::UNREGISTER_CLIENT | request::GET_CONSUMER_LIST_BY_GROUP => n.group(s("consumerGroup")),
        request::CHECK_CLIENT_CONFIG | request::GET_ROUTEINFO_BY_TOPIC | request::GET_BROKER_CLUSTER_INFO => n,
        request::HEART_BEAT => return Required::Body(BodyKind::Heartbeat),
        request::LOCK_BATCH_MQ | request::UNLOCK_BATCH_MQ => return Required::Body(BodyKind::LockBatch),
        request::QUERY_ASSIGNMENT => return Required::Body(BodyKind::QueryAssignment),
        request::BATCH_ACK_MESSAGE => return Required::Body(BodyKind::BatchAck),
        code => Needs::admin(code),
    })
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct AssignmentBody {
    topic: String,
    consumer_group: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct BatchAckBody {
    acks: Vec<BatchAckEntry>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct BatchAckEntry {
    /// Consumer group.
    c: String,
    /// Topic.
    t: String,
}

/// The needs in a request body of `kind`; an unreadable body is an error
/// (its handler would refuse it too).
pub fn needs_of_body(kind: BodyKind, body: &[u8]) -> Result<Needs<'static>, String> {
    let needs = match kind {
        BodyKind::Heartbeat => {
            let hb = HeartbeatData::decode(body).map_err(|e| e.to_string())?;
            Needs::of_heartbeat(&hb).into_owned()
        }
        BodyKind::LockBatch => {
            let b = LockBatchRequestBody::decode(body).map_err(|e| e.to_string())?;
            let mut needs = Needs::none().group(b.consumer_group);
            for mq in b.mq_set {
                needs.add_topic(Cow::Owned(mq.topic), Need::Sub);
            }
            needs
        }
        BodyKind::QueryAssignment => {
            let b: AssignmentBody = decode_json(body, "QueryAssignmentRequestBody").map_err(|e| e.to_string())?;
            Needs::none().topic(b.topic, Need::Sub).group(b.consumer_group)
        }
        BodyKind::BatchAck => {
            let b: BatchAckBody = decode_json(body, "BatchAckMessageRequestBody").map_err(|e| e.to_string())?;
            let mut needs = Needs::none();
            for a in b.acks {
                needs.add_topic(Cow::Owned(a.t), Need::Sub);
                needs.add_group(Cow::Owned(a.c));
            }
            needs
        }
    };
    Ok(needs)
}

#[cfg(test)]
#[path = "resources_tests.rs"]
mod tests;
