//! Client-facing wire types (JSON bodies of the frames described in [`crate::wire`]).

use serde::{Deserialize, Serialize};

/// Body of `register` and `heartbeat`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerReq {
    pub cluster: String,
    pub broker_name: String,
    pub broker_id: u64,
    /// Client address of the broker, "ip:port".
    pub addr: String,
    /// HA (replication) address of the broker, "ip:port".
    pub ha_addr: String,
    /// The master epoch the broker last saw.
    pub epoch: u32,
    /// The broker's durable log end, summed over its shards.
    pub offset: u64,
}

/// Body of `alter_sync_state_set`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterReq {
    pub cluster: String,
    pub broker_name: String,
    pub master_id: u64,
    pub master_epoch: u32,
    pub sync_state_set: Vec<u64>,
    pub sync_state_set_epoch: u32,
}

/// One broker of a group as clients see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerView {
    pub broker_id: u64,
    pub addr: String,
    pub ha_addr: String,
    /// Heartbeat seen by the controller leader within `heartbeat_timeout`.
    pub alive: bool,
}

/// A broker group (cluster + broker_name) as clients see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupView {
    pub cluster: String,
    pub broker_name: String,
    pub master_id: Option<u64>,
    pub master_addr: Option<String>,
    pub master_ha_addr: Option<String>,
    pub master_epoch: u32,
    pub sync_state_set: Vec<u64>,
    pub sync_state_set_epoch: u32,
    pub brokers: Vec<BrokerView>,
    /// The controller's heartbeat timeout: a master's write lease must be
    /// shorter (0 when not said).
    #[serde(default)]
    pub heartbeat_timeout_ms: u64,
}

/// Answer of `status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub node_id: u64,
    pub leader_id: Option<u64>,
    pub term: u64,
    /// Index of the last applied log entry (null before any).
    pub last_applied: Option<u64>,
    pub members: Vec<u64>,
}

/// Error codes of `{"ok":false,"code":...}` answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    #[serde(rename = "NOT_LEADER")]
    NotLeader,
    #[serde(rename = "FENCED")]
    Fenced,
    #[serde(rename = "INVALID")]
    Invalid,
    #[serde(rename = "UNAVAILABLE")]
    Unavailable,
}

/// An `{"ok":false,...}` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    pub ok: bool,
    pub code: ErrorCode,
    pub message: String,
    pub leader: Option<String>,
}

impl ErrorReply {
    pub fn new(code: ErrorCode, message: impl Into<String>, leader: Option<String>) -> Self {
        ErrorReply {
            ok: false,
            code,
            message: message.into(),
            leader,
        }
    }
}
