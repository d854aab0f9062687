//! Typed headers of the hot request codes (codes.md §2.2, §2.3).
//!
//! These four are Java's `FastCodesHeader`s. Decoding follows the Java
//! rules: a required (`@CFNotNull`) field that is missing or empty is an
//! error naming it; an *optional* field that does not parse is ignored
//! (Java logs and leaves it `null`), so Go's `"subVersion":""` or a junk
//! `maxMsgBytes` never fails a request.

use super::ext_fields::{ExtFields, HeaderError};
use super::ProtocolError;

/// A header that travels flattened in `extFields`.
pub trait CommandHeader: Sized {
    fn from_ext(ext: &ExtFields) -> Result<Self, ProtocolError>;
    fn to_ext(&self) -> ExtFields;
}

/// Optional field: absent, empty or unparsable ⇒ `None`.
fn lenient<T>(value: Result<Option<T>, HeaderError>) -> Option<T> {
    value.ok().flatten()
}

fn owned(value: Option<&str>) -> Option<String> {
    value.map(str::to_owned)
}

/// `SendMessageRequestHeader` (V1, long names; `SEND_MESSAGE`) and
/// `SendMessageRequestHeaderV2` (single letters; `SEND_MESSAGE_V2`,
/// `SEND_BATCH_MESSAGE`, `SEND_REPLY_MESSAGE_V2`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendMessageRequestHeader {
    pub producer_group: String,
    pub topic: String,
    /// Template for auto-creation, normally `TBW102`.
    pub default_topic: String,
    pub default_topic_queue_nums: i32,
    /// `< 0` ⇒ the broker picks a queue.
    pub queue_id: i32,
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub flag: i32,
    /// Encoded property string (properties.rs).
    pub properties: Option<String>,
    pub reconsume_times: Option<i32>,
    pub unit_mode: Option<bool>,
    /// The body is a batch (batch.rs).
    pub batch: Option<bool>,
    pub max_reconsume_times: Option<i32>,
    /// V2 `n`, V1 `bname` (from `RpcRequestHeader`).
    pub broker_name: Option<String>,
}

/// Wire keys of the send request fields, V1 vs V2.
struct SendKeys {
    producer_group: &'static str,
    topic: &'static str,
    default_topic: &'static str,
    default_topic_queue_nums: &'static str,
    queue_id: &'static str,
    sys_flag: &'static str,
    born_timestamp: &'static str,
    flag: &'static str,
    properties: &'static str,
    reconsume_times: &'static str,
    unit_mode: &'static str,
    max_reconsume_times: &'static str,
    batch: &'static str,
    broker_name: &'static str,
    v2: bool,
}

const V1: SendKeys = SendKeys {
    producer_group: "producerGroup",
    topic: "topic",
    default_topic: "defaultTopic",
    default_topic_queue_nums: "defaultTopicQueueNums",
    queue_id: "queueId",
    sys_flag: "sysFlag",
    born_timestamp: "bornTimestamp",
    flag: "flag",
    properties: "properties",
    reconsume_times: "reconsumeTimes",
    unit_mode: "unitMode",
    max_reconsume_times: "maxReconsumeTimes",
    batch: "batch",
    broker_name: "bname",
    v2: false,
};

const V2: SendKeys = SendKeys {
    producer_group: "a",
    topic: "b",
    default_topic: "c",
    default_topic_queue_nums: "d",
    queue_id: "e",
    sys_flag: "f",
    born_timestamp: "g",
    flag: "h",
    properties: "i",
    reconsume_times: "j",
    unit_mode: "k",
    max_reconsume_times: "l",
    batch: "m",
    broker_name: "n",
    v2: true,
};

/// Long name of a V2 key, for error messages.
fn v1_name(v2_key: &str) -> &'static str {
    match v2_key {
        "a" => V1.producer_group,
        "b" => V1.topic,
        "c" => V1.default_topic,
        "d" => V1.default_topic_queue_nums,
        "e" => V1.queue_id,
        "f" => V1.sys_flag,
        "g" => V1.born_timestamp,
        "h" => V1.flag,
        _ => "",
    }
}

impl SendMessageRequestHeader {
    /// Decode the V1 (long-name) form.
    pub fn from_ext_v1(ext: &ExtFields) -> Result<Self, ProtocolError> {
        Self::decode(ext, &V1)
    }

    /// Decode the V2 (single-letter) form. Errors name both keys, e.g.
    /// `the custom field <b (topic)> is null`.
    pub fn from_ext_v2(ext: &ExtFields) -> Result<Self, ProtocolError> {
        Self::decode(ext, &V2)
    }

    /// The V2 (single-letter) form, as Java and ali-ons send it.
    pub fn to_ext_v2(&self) -> ExtFields {
        self.encode(&V2)
    }

    fn decode(ext: &ExtFields, k: &SendKeys) -> Result<Self, ProtocolError> {
        SendHeaderView::decode(ext, k).map(Self::from_view)
    }

    fn from_view(v: SendHeaderView<'_>) -> Self {
        Self {
            producer_group: v.producer_group.to_owned(),
            topic: v.topic.to_owned(),
            default_topic: v.default_topic.to_owned(),
            default_topic_queue_nums: v.default_topic_queue_nums,
            queue_id: v.queue_id,
            sys_flag: v.sys_flag,
            born_timestamp: v.born_timestamp,
            flag: v.flag,
            properties: owned(v.properties),
            reconsume_times: v.reconsume_times,
            unit_mode: v.unit_mode,
            batch: v.batch,
            max_reconsume_times: v.max_reconsume_times,
            broker_name: owned(v.broker_name),
        }
    }

    fn encode(&self, k: &SendKeys) -> ExtFields {
        let mut ext = ExtFields::new();
        ext.insert(k.producer_group, self.producer_group.as_str());
        ext.insert(k.topic, self.topic.as_str());
        ext.insert(k.default_topic, self.default_topic.as_str());
        ext.insert(k.default_topic_queue_nums, self.default_topic_queue_nums.to_string());
        ext.insert(k.queue_id, self.queue_id.to_string());
        ext.insert(k.sys_flag, self.sys_flag.to_string());
        ext.insert(k.born_timestamp, self.born_timestamp.to_string());
        ext.insert(k.flag, self.flag.to_string());
        ext.insert_opt(k.properties, self.properties.as_ref());
        ext.insert_opt(k.reconsume_times, self.reconsume_times);
        ext.insert_opt(k.unit_mode, self.unit_mode);
        ext.insert_opt(k.batch, self.batch);
        ext.insert_opt(k.max_reconsume_times, self.max_reconsume_times);
        ext.insert_opt(k.broker_name, self.broker_name.as_ref());
        ext
    }

    pub fn is_batch(&self) -> bool {
        self.batch == Some(true)
    }
}

fn with_long_name(error: HeaderError) -> HeaderError {
    let rename = |field: String| match v1_name(&field) {
        "" => field,
        long => format!("{field} ({long})"),
    };
    match error {
        HeaderError::Missing { field } => HeaderError::Missing { field: rename(field) },
        HeaderError::Invalid { field, value, expected } => HeaderError::Invalid {
            field: rename(field),
            value,
            expected,
        },
    }
}

/// A send request's header read in place: the same fields and rules as
/// [`SendMessageRequestHeader`], borrowing its strings from the request's
/// `extFields` (the broker's hot path allocates nothing to read it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendHeaderView<'a> {
    pub producer_group: &'a str,
    pub topic: &'a str,
    pub default_topic: &'a str,
    pub default_topic_queue_nums: i32,
    pub queue_id: i32,
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub flag: i32,
    pub properties: Option<&'a str>,
    pub reconsume_times: Option<i32>,
    pub unit_mode: Option<bool>,
    pub batch: Option<bool>,
    pub max_reconsume_times: Option<i32>,
    pub broker_name: Option<&'a str>,
    /// The single-letter (V2) keys were used.
    pub v2: bool,
}

impl<'a> SendHeaderView<'a> {
    /// Either form, like [`SendMessageRequestHeader::from_ext`].
    pub fn from_ext(ext: &'a ExtFields) -> Result<Self, ProtocolError> {
        Self::decode(ext, if Self::is_v2(ext) { &V2 } else { &V1 })
    }

    /// V2 when the single-letter topic key `b` is present and the long
    /// `topic` is not.
    pub fn is_v2(ext: &ExtFields) -> bool {
        ext.get_raw(V2.topic).is_some() && ext.get_raw(V1.topic).is_none()
    }

    /// The key holding the queue id in this form.
    pub fn queue_key(&self) -> &'static str {
        if self.v2 {
            V2.queue_id
        } else {
            V1.queue_id
        }
    }

    pub fn is_batch(&self) -> bool {
        self.batch == Some(true)
    }

    /// The fields under key set `k`. V2 errors name both keys, e.g.
    /// `the custom field <b (topic)> is null`.
    fn decode(ext: &'a ExtFields, k: &SendKeys) -> Result<Self, ProtocolError> {
        Self::decode_keys(ext, k).map_err(|e| if k.v2 { with_long_name(e) } else { e }.into())
    }

    fn decode_keys(ext: &'a ExtFields, k: &SendKeys) -> Result<Self, HeaderError> {
        Ok(Self {
            producer_group: ext.required_str(k.producer_group)?,
            topic: ext.required_str(k.topic)?,
            default_topic: ext.required_str(k.default_topic)?,
            default_topic_queue_nums: ext.required_i32(k.default_topic_queue_nums)?,
            queue_id: ext.required_i32(k.queue_id)?,
            sys_flag: ext.required_i32(k.sys_flag)?,
            born_timestamp: ext.required_i64(k.born_timestamp)?,
            flag: ext.required_i32(k.flag)?,
            properties: ext.get_str(k.properties),
            reconsume_times: lenient(ext.get_i32(k.reconsume_times)),
            unit_mode: lenient(ext.get_bool(k.unit_mode)),
            batch: lenient(ext.get_bool(k.batch)),
            max_reconsume_times: lenient(ext.get_i32(k.max_reconsume_times)),
            broker_name: ext.get_str(k.broker_name),
            v2: k.v2,
        })
    }
}

impl CommandHeader for SendMessageRequestHeader {
    /// Either form: V2 when the single-letter topic key `b` is present and
    /// the long `topic` is not.
    fn from_ext(ext: &ExtFields) -> Result<Self, ProtocolError> {
        SendHeaderView::from_ext(ext).map(Self::from_view)
    }

    /// The V1 (long-name) form.
    fn to_ext(&self) -> ExtFields {
        self.encode(&V1)
    }
}

/// `SendMessageResponseHeader`. Sent on SUCCESS and on the "stored, but"
/// codes (FLUSH_DISK_TIMEOUT, FLUSH_SLAVE_TIMEOUT, SLAVE_NOT_AVAILABLE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendMessageResponseHeader {
    /// Offset message id(s); comma-joined for a batch.
    pub msg_id: String,
    pub queue_id: i32,
    /// Queue offset of the (first) stored message.
    pub queue_offset: i64,
    /// The message's `UNIQ_KEY`.
    pub transaction_id: Option<String>,
    pub batch_uniq_id: Option<String>,
    pub recall_handle: Option<String>,
    /// Extra extField `MSG_REGION`; Java clients read it unconditionally.
    pub msg_region: String,
    /// Extra extField `TRACE_ON`.
    pub trace_on: bool,
}

/// Java's default `MSG_REGION`.
pub const DEFAULT_REGION: &str = "DefaultRegion";

impl SendMessageResponseHeader {
    pub fn new(msg_id: String, queue_id: i32, queue_offset: i64) -> Self {
        Self {
            msg_id,
            queue_id,
            queue_offset,
            transaction_id: None,
            batch_uniq_id: None,
            recall_handle: None,
            msg_region: DEFAULT_REGION.to_owned(),
            trace_on: true,
        }
    }
}

impl CommandHeader for SendMessageResponseHeader {
    fn from_ext(ext: &ExtFields) -> Result<Self, ProtocolError> {
        Ok(Self {
            msg_id: ext.required_str("msgId")?.to_owned(),
            queue_id: ext.required_i32("queueId")?,
            queue_offset: ext.required_i64("queueOffset")?,
            transaction_id: owned(ext.get_str("transactionId")),
            batch_uniq_id: owned(ext.get_str("batchUniqId")),
            recall_handle: owned(ext.get_str("recallHandle")),
            msg_region: ext.get_str("MSG_REGION").unwrap_or(DEFAULT_REGION).to_owned(),
            trace_on: lenient(ext.get_bool("TRACE_ON")).unwrap_or(true),
        })
    }

    fn to_ext(&self) -> ExtFields {
        let mut ext = ExtFields::new();
        ext.insert("msgId", self.msg_id.as_str());
        ext.insert("queueId", self.queue_id.to_string());
        ext.insert("queueOffset", self.queue_offset.to_string());
        ext.insert_opt("transactionId", self.transaction_id.as_ref());
        ext.insert_opt("batchUniqId", self.batch_uniq_id.as_ref());
        ext.insert_opt("recallHandle", self.recall_handle.as_ref());
        ext.insert("MSG_REGION", self.msg_region.as_str());
        ext.insert("TRACE_ON", self.trace_on.to_string());
        ext
    }
}

/// `PullSysFlag` bits of [`PullMessageRequestHeader::sys_flag`].
pub mod pull_sys_flag {
    /// Persist `commitOffset` as the group's offset.
    pub const COMMIT_OFFSET: i32 = 0x1;
    /// Long polling allowed.
    pub const SUSPEND: i32 = 0x2;
    /// `subscription` / `expressionType` of this request apply.
    pub const SUBSCRIPTION: i32 = 0x4;
    /// Obsolete class filter; treat as "match all".
    pub const CLASS_FILTER: i32 = 0x8;
    pub const LITE_PULL: i32 = 0x10;
}

/// `PullMessageRequestHeader` (`PULL_MESSAGE`, `LITE_PULL_MESSAGE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullMessageRequestHeader {
    pub consumer_group: String,
    pub topic: String,
    pub queue_id: i32,
    pub queue_offset: i64,
    pub max_msg_nums: i32,
    pub sys_flag: i32,
    pub commit_offset: i64,
    pub suspend_timeout_millis: i64,
    pub subscription: Option<String>,
    /// Required in Java, but decoded leniently (missing or bad ⇒ 0) because
    /// Go clients may send `""`.
    pub sub_version: i64,
    /// `TAG` when absent.
    pub expression_type: Option<String>,
    pub max_msg_bytes: Option<i32>,
}

impl PullMessageRequestHeader {
    pub fn has_sys_flag(&self, bit: i32) -> bool {
        self.sys_flag & bit != 0
    }
}

impl CommandHeader for PullMessageRequestHeader {
    fn from_ext(ext: &ExtFields) -> Result<Self, ProtocolError> {
        Ok(Self {
            consumer_group: ext.required_str("consumerGroup")?.to_owned(),
            topic: ext.required_str("topic")?.to_owned(),
            queue_id: ext.required_i32("queueId")?,
            queue_offset: ext.required_i64("queueOffset")?,
            max_msg_nums: ext.required_i32("maxMsgNums")?,
            sys_flag: ext.required_i32("sysFlag")?,
            commit_offset: ext.required_i64("commitOffset")?,
            suspend_timeout_millis: ext.required_i64("suspendTimeoutMillis")?,
            subscription: owned(ext.get_str("subscription")),
            sub_version: lenient(ext.get_i64("subVersion")).unwrap_or(0),
            expression_type: owned(ext.get_str("expressionType")),
            max_msg_bytes: lenient(ext.get_i32("maxMsgBytes")),
        })
    }

    fn to_ext(&self) -> ExtFields {
        let mut ext = ExtFields::new();
        ext.insert("consumerGroup", self.consumer_group.as_str());
        ext.insert("topic", self.topic.as_str());
        ext.insert("queueId", self.queue_id.to_string());
        ext.insert("queueOffset", self.queue_offset.to_string());
        ext.insert("maxMsgNums", self.max_msg_nums.to_string());
        ext.insert("sysFlag", self.sys_flag.to_string());
        ext.insert("commitOffset", self.commit_offset.to_string());
        ext.insert("suspendTimeoutMillis", self.suspend_timeout_millis.to_string());
        ext.insert_opt("subscription", self.subscription.as_ref());
        ext.insert("subVersion", self.sub_version.to_string());
        ext.insert_opt("expressionType", self.expression_type.as_ref());
        ext.insert_opt("maxMsgBytes", self.max_msg_bytes);
        ext
    }
}

/// `PullMessageResponseHeader`. The four required fields must be sent on
/// every pull response code, NOT_FOUND and OFFSET_MOVED included.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullMessageResponseHeader {
    /// 0 = keep pulling from the master.
    pub suggest_which_broker_id: i64,
    pub next_begin_offset: i64,
    pub min_offset: i64,
    pub max_offset: i64,
    pub offset_delta: Option<i64>,
    pub topic_sys_flag: Option<i32>,
    pub group_sys_flag: Option<i32>,
    /// With NO_PERMISSION: 1 broker, 2 group, 3 topic, 4 broadcast, 5 sub.
    pub forbidden_type: Option<i32>,
}

impl CommandHeader for PullMessageResponseHeader {
    fn from_ext(ext: &ExtFields) -> Result<Self, ProtocolError> {
        Ok(Self {
            suggest_which_broker_id: ext.required_i64("suggestWhichBrokerId")?,
            next_begin_offset: ext.required_i64("nextBeginOffset")?,
            min_offset: ext.required_i64("minOffset")?,
            max_offset: ext.required_i64("maxOffset")?,
            offset_delta: lenient(ext.get_i64("offsetDelta")),
            topic_sys_flag: lenient(ext.get_i32("topicSysFlag")),
            group_sys_flag: lenient(ext.get_i32("groupSysFlag")),
            forbidden_type: lenient(ext.get_i32("forbiddenType")),
        })
    }

    fn to_ext(&self) -> ExtFields {
        let mut ext = ExtFields::new();
        ext.insert("suggestWhichBrokerId", self.suggest_which_broker_id.to_string());
        ext.insert("nextBeginOffset", self.next_begin_offset.to_string());
        ext.insert("minOffset", self.min_offset.to_string());
        ext.insert("maxOffset", self.max_offset.to_string());
        ext.insert_opt("offsetDelta", self.offset_delta);
        ext.insert_opt("topicSysFlag", self.topic_sys_flag);
        ext.insert_opt("groupSysFlag", self.group_sys_flag);
        ext.insert_opt("forbiddenType", self.forbidden_type);
        ext
    }
}

#[cfg(test)]
mod tests;
