//! JSON request/response bodies (json.md), one file per concept.
//!
//! # Reading
//!
//! Java peers write bodies with fastjson, which is not JSON: numeric map
//! keys are unquoted (`{0:"ip:port"}`), `Map<MessageQueue,_>` keys are
//! JSON objects, repeated objects become `{"$ref":..}`. Every decoder here
//! first runs [`fastjson_reader::parse_lenient`] (the normalisation pass of
//! json.md §1), then binds the result with serde. Binding is lenient the
//! way fastjson is: unknown members are ignored, missing members take the
//! Java default, scalars convert loosely ([`loose`]), enums are read from
//! their name or their ordinal.
//!
//! # Writing
//!
//! Bodies are written exactly as the Java broker/name server writes them:
//! compact, members in alphabetical order, `null`s omitted
//! ([`fastjson_writer`]). Numeric-key and MessageQueue-key maps are written
//! in fastjson's raw-key form where Java tools expect it (route data for
//! old clients, cluster info, offset tables, admin statistics).
//!
//! # Robustness
//!
//! Decoders never panic on any input (proptests below) and allocate at most
//! a constant factor of their input; the zlib-compressed registration body
//! is inflated under an explicit cap ([`register_broker::MAX_INFLATED_LEN`]).

pub mod admin_stats;
pub mod client_check;
pub mod cluster_info;
pub mod connection;
pub mod consume_direct;
pub mod consume_queue_query;
pub mod data_version;
pub mod fastjson_reader;
pub mod fastjson_writer;
pub mod heartbeat;
pub mod kv_table;
pub mod lists;
pub mod lock_batch;
pub mod loose;
pub mod message_queue;
pub mod offset_tables;
pub mod register_broker;
pub mod route;
pub mod topic_config;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use admin_stats::{
    ConsumeStats, GetConsumerStatusBody, OffsetWrapper, ResetOffsetBody, TopicOffset, TopicStatsTable,
};
pub use client_check::CheckClientRequestBody;
pub use cluster_info::ClusterInfo;
pub use connection::{Connection, ConsumerConnection, ProducerConnection};
pub use consume_direct::{CMResult, ConsumeMessageDirectlyResult};
pub use consume_queue_query::{ConsumeQueueData, QueryConsumeQueueResponseBody};
pub use data_version::DataVersion;
pub use fastjson_writer::WriteOptions;
pub use heartbeat::{
    ConsumeFromWhere, ConsumeType, ConsumerData, HeartbeatData, MessageModel, ProducerData, SubscriptionData,
};
pub use kv_table::KvTable;
pub use lists::{GetConsumerListByGroupResponseBody, GroupList, TopicList};
pub use lock_batch::{LockBatchRequestBody, LockBatchResponseBody, UnlockBatchRequestBody};
pub use message_queue::{MessageQueue, MqMap};
pub use offset_tables::{ConsumerOffsetSerializeWrapper, DelayOffsetSerializeWrapper};
pub use register_broker::{RegisterBrokerBody, RegisterBrokerResult, TopicConfigSerializeWrapper};
pub use route::{BrokerData, QueueData, RouteDialect, TopicRouteData};
pub use topic_config::{TopicConfig, TopicFilterType};

/// Why a body could not be read (or, for bugs only, written).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// Not even fastjson's dialect of JSON.
    #[error("invalid JSON body at byte {offset}: {reason}")]
    Syntax { offset: usize, reason: String },
    /// Well-formed JSON of the wrong shape for this body.
    #[error("invalid {body} body: {reason}")]
    Shape { body: &'static str, reason: String },
    /// The compressed RegisterBrokerBody is corrupt or truncated.
    #[error("invalid compressed RegisterBrokerBody: {0}")]
    Compressed(String),
    /// The compressed RegisterBrokerBody inflates beyond the cap.
    #[error("compressed RegisterBrokerBody inflates beyond {0} bytes")]
    InflatedTooLarge(usize),
    /// Serializing one of our own values failed (a bug).
    #[error("cannot encode {body}: {reason}")]
    Encode { body: &'static str, reason: String },
}

/// A JSON body: lenient fastjson-compatible decoding, Java-exact encoding.
///
/// Types whose Java form has raw-key maps override [`JsonBody::raw_keys`].
pub trait JsonBody: Serialize + DeserializeOwned {
    /// The Java class name, for error messages.
    const NAME: &'static str;

    /// Maps written with unquoted keys by [`JsonBody::encode`]; see
    /// [`fastjson_writer`] for the path format.
    fn raw_keys(_path: &[&str]) -> bool {
        false
    }

    /// Read a body sent by any client (fastjson or standard JSON).
    fn decode(bytes: &[u8]) -> Result<Self, BodyError> {
        decode_json(bytes, Self::NAME)
    }

    /// The bytes the Java implementation would send.
    fn encode(&self) -> Vec<u8> {
        let opts = WriteOptions {
            escape_non_ascii: false,
            raw_keys: &Self::raw_keys,
        };
        encode_with(self, Self::NAME, opts)
    }

    /// Standard JSON (quoted keys everywhere), for non-Java consumers.
    fn encode_standard(&self) -> Vec<u8> {
        encode_with(self, Self::NAME, fastjson_writer::STANDARD)
    }
}

/// Lenient decode of any serde type (see the module docs).
pub fn decode_json<T: DeserializeOwned>(bytes: &[u8], body: &'static str) -> Result<T, BodyError> {
    let value = fastjson_reader::parse_lenient(bytes)?;
    serde_json::from_value(value).map_err(|e| BodyError::Shape {
        body,
        reason: e.to_string(),
    })
}

/// Encode `value` with `opts`.
///
/// Serializing our own body types cannot fail (all map keys are strings,
/// integers or [`MessageQueue`]s); if it ever does, that is a bug: debug
/// builds stop here, release builds log it and send `{}`.
pub fn encode_with<T: Serialize + ?Sized>(value: &T, body: &'static str, opts: WriteOptions<'_>) -> Vec<u8> {
    match try_encode_with(value, body, opts) {
        Ok(bytes) => bytes,
        Err(e) => {
            debug_assert!(false, "{e}");
            log::error!("{e}");
            b"{}".to_vec()
        }
    }
}

/// Fallible form of [`encode_with`].
pub fn try_encode_with<T: Serialize + ?Sized>(
    value: &T,
    body: &'static str,
    opts: WriteOptions<'_>,
) -> Result<Vec<u8>, BodyError> {
    let tree = serde_json::to_value(value).map_err(|e| BodyError::Encode {
        body,
        reason: e.to_string(),
    })?;
    Ok(fastjson_writer::write(&tree, opts).into_bytes())
}

#[cfg(test)]
mod fuzz;
