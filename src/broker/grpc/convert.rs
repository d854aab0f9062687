//! Between the 5.x gRPC messages and the broker's records: a client's
//! `Message` as remoting properties, a stored record as a `Message`,
//! receipt handles, transaction ids and status codes.

use std::time::{SystemTime, UNIX_EPOCH};

use md5::{Digest, Md5};

use crate::grpc::pb;
use crate::protocol::codes::response;
use crate::protocol::properties::{keys, Properties};
use crate::store::record::RecordView;

/// Properties the broker keeps in system properties, not user properties.
pub const SYSTEM_KEYS: &[&str] = &[
    keys::TAGS,
    keys::KEYS,
    keys::UNIQ_KEY,
    keys::SHARDING_KEY,
    keys::TIMER_DELIVER_MS,
    keys::TIMER_DELAY_SEC,
    keys::TIMER_DELAY_MS,
    keys::TIMER_OUT_MS,
    keys::TIMER_ENQUEUE_MS,
    keys::TIMER_DEQUEUE_MS,
    keys::TIMER_ROLL_TIMES,
    keys::TIMER_DEL_UNIQKEY,
    keys::TIMER_DELAY_LEVEL,
    keys::DELAY,
    keys::TRANSACTION_PREPARED,
    keys::PRODUCER_GROUP,
    keys::TRANSACTION_ID,
    keys::CHECK_IMMUNITY_TIME_IN_SECONDS,
    keys::TRANSACTION_PREPARED_QUEUE_OFFSET,
    keys::REAL_TOPIC,
    keys::REAL_QUEUE_ID,
    keys::RETRY_TOPIC,
    keys::ORIGIN_MESSAGE_ID,
    keys::MIN_OFFSET,
    keys::MAX_OFFSET,
    keys::WAIT,
    keys::TRACE_SWITCH,
    keys::CLUSTER,
    keys::POP_CK,
    keys::FIRST_POP_TIME,
    crate::store::MARK_PROPERTY,
];

pub fn status(code: pb::Code, message: impl Into<String>) -> pb::Status {
    pb::Status {
        code: code as i32,
        message: message.into(),
    }
}

pub fn ok() -> pb::Status {
    status(pb::Code::Ok, "OK")
}

/// A remoting refusal as a gRPC status.
pub fn from_remoting(code: i32, remark: &str) -> pb::Status {
    let c = match code {
        response::SUCCESS => pb::Code::Ok,
        response::TOPIC_NOT_EXIST => pb::Code::TopicNotFound,
        response::SUBSCRIPTION_GROUP_NOT_EXIST => pb::Code::ConsumerGroupNotFound,
        response::MESSAGE_ILLEGAL | response::INVALID_PARAMETER => pb::Code::BadRequest,
        response::NO_PERMISSION => pb::Code::Forbidden,
        response::SYSTEM_BUSY | response::POLLING_FULL => pb::Code::TooManyRequests,
        response::FLUSH_DISK_TIMEOUT => pb::Code::MasterPersistenceTimeout,
        response::FLUSH_SLAVE_TIMEOUT => pb::Code::SlavePersistenceTimeout,
        response::SLAVE_NOT_AVAILABLE => pb::Code::HaNotAvailable,
        response::SERVICE_NOT_AVAILABLE => pb::Code::InternalServerError,
        response::NO_MESSAGE => pb::Code::InvalidReceiptHandle,
        response::ILLEGAL_OPERATION => pb::Code::BadRequest,
        _ => pb::Code::InternalError,
    };
    status(c, remark)
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub fn timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

pub fn ms_of(t: &prost_types::Timestamp) -> i64 {
    t.seconds
        .saturating_mul(1000)
        .saturating_add(t.nanos as i64 / 1_000_000)
}

pub fn duration_ms(d: &prost_types::Duration) -> i64 {
    d.seconds
        .saturating_mul(1000)
        .saturating_add(d.nanos as i64 / 1_000_000)
}

pub fn duration(ms: i64) -> prost_types::Duration {
    prost_types::Duration {
        seconds: ms / 1000,
        nanos: ((ms % 1000) * 1_000_000) as i32,
    }
}

/// What a client's message becomes for the send path.
pub struct Outgoing {
    pub topic: String,
    pub properties: String,
    pub body: bytes::Bytes,
    /// The sysFlag bits: compressed body, prepared transaction.
    pub sys_flag: i32,
    pub message_id: String,
    pub group: Option<String>,
    pub transactional: bool,
}

/// sysFlag bits (message.md §3).
const COMPRESSED: i32 = 0x1;
const TRANSACTION_PREPARED: i32 = 0x4;

/// The remoting form of a client's message (v5-grpc.md §3: message_group →
/// `__SHARDINGKEY`, delivery_timestamp → `TIMER_DELIVER_MS`, TRANSACTION →
/// `TRAN_MSG` with the topic as producer group, GZIP → compressed flag).
pub fn outgoing(m: &pb::Message) -> Result<Outgoing, pb::Status> {
    let topic = m.topic.as_ref().map(|t| t.name.clone()).unwrap_or_default();
    if topic.is_empty() {
        return Err(status(pb::Code::IllegalTopic, "the message names no topic"));
    }
    let sp = m
        .system_properties
        .as_ref()
        .ok_or_else(|| status(pb::Code::BadRequest, "the message has no system properties"))?;
    if sp.message_id.is_empty() {
        return Err(status(
            pb::Code::IllegalMessageId,
            "system_properties.message_id is required",
        ));
    }
    let mut props = Properties::new();
    let bad = |e: crate::protocol::ProtocolError| status(pb::Code::IllegalMessagePropertyKey, e.to_string());
    for (k, v) in &m.user_properties {
        if SYSTEM_KEYS.contains(&k.as_str()) {
            return Err(status(
                pb::Code::IllegalMessagePropertyKey,
                format!("user property {k} is a reserved system property"),
            ));
        }
        props.insert(k.clone(), v.clone()).map_err(bad)?;
    }
    props.insert(keys::UNIQ_KEY, sp.message_id.clone()).map_err(bad)?;
    if let Some(tag) = sp.tag.as_ref().filter(|t| !t.is_empty()) {
        props.insert(keys::TAGS, tag.clone()).map_err(bad)?;
    }
    if !sp.keys.is_empty() {
        props.insert(keys::KEYS, sp.keys.join(" ")).map_err(bad)?;
    }
    let ty = pb::MessageType::try_from(sp.message_type).unwrap_or(pb::MessageType::Normal);
    let group = sp.message_group.clone().filter(|g| !g.is_empty());
    if let Some(g) = &group {
        props.insert(keys::SHARDING_KEY, g.clone()).map_err(bad)?;
    }
    if let Some(t) = &sp.delivery_timestamp {
        props
            .insert(keys::TIMER_DELIVER_MS, ms_of(t).to_string())
            .map_err(bad)?;
    }
    let transactional = ty == pb::MessageType::Transaction;
    let mut sys_flag = 0;
    if transactional {
        props.insert(keys::TRANSACTION_PREPARED, "true").map_err(bad)?;
        props.insert(keys::PRODUCER_GROUP, topic.clone()).map_err(bad)?;
        if let Some(d) = &sp.orphaned_transaction_recovery_duration {
            props
                .insert(
                    keys::CHECK_IMMUNITY_TIME_IN_SECONDS,
                    (duration_ms(d) / 1000).to_string(),
                )
                .map_err(bad)?;
        }
        sys_flag |= TRANSACTION_PREPARED;
    }
    if sp.body_encoding == pb::Encoding::Gzip as i32 {
        sys_flag |= COMPRESSED;
    }
    Ok(Outgoing {
        topic,
        properties: props.encode(),
        body: bytes::Bytes::copy_from_slice(&m.body),
        sys_flag,
        message_id: sp.message_id.clone(),
        group,
        transactional,
    })
}

/// A popped record as the message a 5.x client receives.
pub struct Delivery<'a> {
    pub view: &'a RecordView<'a>,
    /// The topic as the client named it.
    pub topic: &'a str,
    pub queue_id: i32,
    pub receipt_handle: String,
    pub invisible_ms: i64,
    pub reconsume_times: i32,
    pub store_host: String,
}

pub fn message(d: &Delivery<'_>) -> pb::Message {
    let v = d.view;
    let props = Properties::parse_bytes(v.properties);
    let user: std::collections::HashMap<String, String> = props
        .iter()
        .filter(|(k, _)| !SYSTEM_KEYS.contains(k))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let group = props.get(keys::SHARDING_KEY).map(str::to_string);
    let ty = if group.is_some() {
        pb::MessageType::Fifo
    } else if props.get(keys::TIMER_OUT_MS).is_some() || props.get(keys::TIMER_DELIVER_MS).is_some() {
        pb::MessageType::Delay
    } else if props.get(keys::PRODUCER_GROUP).is_some() && props.get(keys::TRANSACTION_PREPARED).is_some() {
        pb::MessageType::Transaction
    } else {
        pb::MessageType::Normal
    };
    let message_id = props.get(keys::UNIQ_KEY).map(str::to_string).unwrap_or_else(|| {
        crate::protocol::OffsetMessageId {
            ip: d
                .store_host
                .parse::<std::net::SocketAddr>()
                .map_or(std::net::Ipv4Addr::LOCALHOST.into(), |a| a.ip()),
            port: d.store_host.parse::<std::net::SocketAddr>().map_or(0, |a| a.port()),
            commit_log_offset: v.physical_offset as i64,
        }
        .encode()
    });
    let digest = Md5::digest(v.body);
    let checksum: String = digest.iter().map(|b| format!("{b:02X}")).collect();
    pb::Message {
        topic: Some(pb::Resource {
            resource_namespace: String::new(),
            name: d.topic.to_string(),
        }),
        user_properties: user,
        system_properties: Some(pb::SystemProperties {
            tag: props.get(keys::TAGS).map(str::to_string),
            keys: props
                .get(keys::KEYS)
                .map(|k| k.split(' ').filter(|s| !s.is_empty()).map(str::to_string).collect())
                .unwrap_or_default(),
            message_id,
            body_digest: Some(pb::Digest {
                r#type: pb::DigestType::Md5 as i32,
                checksum,
            }),
            body_encoding: if v.sys_flag & COMPRESSED != 0 {
                pb::Encoding::Gzip as i32
            } else {
                pb::Encoding::Identity as i32
            },
            message_type: ty as i32,
            born_timestamp: Some(timestamp(v.born_timestamp)),
            born_host: v.born_host.ip().to_string(),
            store_timestamp: Some(timestamp(v.store_timestamp)),
            store_host: d.store_host.clone(),
            delivery_timestamp: props
                .get(keys::TIMER_OUT_MS)
                .or_else(|| props.get(keys::TIMER_DELIVER_MS))
                .and_then(|t| t.parse::<i64>().ok())
                .map(timestamp),
            receipt_handle: Some(d.receipt_handle.clone()),
            queue_id: d.queue_id,
            queue_offset: Some(v.queue_offset as i64),
            invisible_duration: Some(duration(d.invisible_ms)),
            delivery_attempt: Some(d.reconsume_times.saturating_add(1)),
            message_group: group,
            ..Default::default()
        }),
        body: v.body.to_vec().into(),
    }
}

/// A receipt handle: the shard, global queue, queue offset and pop time
/// of a lease, and the record's physical offset (for a forward to the
/// DLQ). Opaque to clients: `smq1.<shard>.<queue>.<offset>.<pop time>.<log offset>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handle {
    pub shard: u16,
    pub queue: u32,
    pub offset: u64,
    pub pop_time: i64,
    pub phys: i64,
}

impl Handle {
    pub fn encode(&self) -> String {
        format!(
            "smq1.{}.{}.{}.{}.{}",
            self.shard, self.queue, self.offset, self.pop_time, self.phys
        )
    }

    pub fn decode(s: &str) -> Option<Handle> {
        let mut p = s.strip_prefix("smq1.")?.split('.');
        let h = Handle {
            shard: p.next()?.parse().ok()?,
            queue: p.next()?.parse().ok()?,
            offset: p.next()?.parse().ok()?,
            pop_time: p.next()?.parse().ok()?,
            phys: p.next()?.parse().ok()?,
        };
        p.next().is_none().then_some(h)
    }
}

/// A transaction id: the half message's log offset and queue offset (what
/// END_TRANSACTION needs), 32 hex digits.
pub fn transaction_id(commit_log_offset: i64, queue_offset: i64) -> String {
    format!("{commit_log_offset:016X}{queue_offset:016X}")
}

pub fn parse_transaction_id(s: &str) -> Option<(i64, i64)> {
    if s.len() != 32 || !s.is_ascii() {
        return None;
    }
    let a = u64::from_str_radix(&s[..16], 16).ok()? as i64;
    let b = u64::from_str_radix(&s[16..], 16).ok()? as i64;
    Some((a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_and_transaction_ids_round_trip() {
        let h = Handle {
            shard: 1,
            queue: 7,
            offset: 42,
            pop_time: 1_700_000_000_123,
            phys: 99,
        };
        assert_eq!(Handle::decode(&h.encode()), Some(h));
        assert_eq!(Handle::decode("smq1.1.2.3"), None);
        assert_eq!(Handle::decode("smq1.1.2.3.4.5.6"), None);
        assert_eq!(Handle::decode("garbage"), None);
        let t = transaction_id(1 << 40, 17);
        assert_eq!(parse_transaction_id(&t), Some((1 << 40, 17)));
        assert_eq!(parse_transaction_id("xyz"), None);
    }

    #[test]
    fn a_client_message_keeps_its_id_group_and_time() {
        let m = pb::Message {
            topic: Some(pb::Resource {
                resource_namespace: String::new(),
                name: "T".into(),
            }),
            user_properties: [("color".to_string(), "red".to_string())].into_iter().collect(),
            system_properties: Some(pb::SystemProperties {
                tag: Some("TagA".into()),
                keys: vec!["k1".into(), "k2".into()],
                message_id: "01ABC".into(),
                message_type: pb::MessageType::Fifo as i32,
                message_group: Some("g1".into()),
                delivery_timestamp: Some(timestamp(1_700_000_000_500)),
                ..Default::default()
            }),
            body: b"hi".to_vec().into(),
        };
        let o = outgoing(&m).expect("valid");
        let p = Properties::parse(&o.properties);
        assert_eq!(p.get(keys::UNIQ_KEY), Some("01ABC"));
        assert_eq!(p.get(keys::TAGS), Some("TagA"));
        assert_eq!(p.get(keys::KEYS), Some("k1 k2"));
        assert_eq!(p.get(keys::SHARDING_KEY), Some("g1"));
        assert_eq!(p.get(keys::TIMER_DELIVER_MS), Some("1700000000500"));
        assert_eq!(p.get("color"), Some("red"));
        let mut bad = m.clone();
        bad.user_properties.insert("UNIQ_KEY".into(), "x".into());
        assert_eq!(
            outgoing(&bad).err().map(|s| s.code),
            Some(pb::Code::IllegalMessagePropertyKey as i32)
        );
    }
}
