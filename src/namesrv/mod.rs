//! The name server: route table, broker liveness and request handling
//! (README §1–§2, codes.md §1).
//!
//! Pure logic, no I/O: the runtime that owns the sockets calls
//!
//! ```text
//!   handle(conn, request, now)   for every decoded request  → response to write, or None
//!   connection_closed(conn)      when a TCP connection ends  (drops brokers registered over it)
//!   scan_expired(now)            every SCAN_INTERVAL (5 s)   → connections to close
//! ```
//!
//! and injects the clock, so tests drive time explicitly. All state is
//! soft: brokers re-register every 30 s, so a restarted name server is
//! complete again after one registration period.

pub mod acl;
pub mod kv_config;
pub mod processor;
pub mod route_table;

#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

use crate::protocol::bodies::BodyError;
use crate::protocol::codes::{request, response};
use crate::protocol::{HeaderError, RemotingCommand};

pub use kv_config::{KvConfig, NAMESPACE_ORDER_TOPIC_CONFIG};
pub use route_table::{BrokerAddrInfo, BrokerLiveInfo, BrokerRegistration, RouteTable};

/// How often the runtime should call [`NameServer::scan_expired`] (Java: 5 s).
pub const SCAN_INTERVAL: Duration = Duration::from_secs(5);

/// Default broker silence limit (`DEFAULT_BROKER_CHANNEL_EXPIRED_TIME`).
pub const BROKER_CHANNEL_EXPIRED_TIME: Duration = Duration::from_secs(120);

/// A connection, as numbered by the runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

/// `NamesrvConfig` options that change protocol behaviour.
#[derive(Debug, Clone)]
pub struct NamesrvConfig {
    /// Brokers silent this long are dropped unless they sent their own
    /// `heartbeatTimeoutMillis`.
    pub broker_channel_expired_time: Duration,
    /// Put `orderTopicConf` (KV `ORDER_TOPIC_CONFIG`) into route data.
    pub order_message_enable: bool,
    /// Return the `ORDER_TOPIC_CONFIG` KV table to registering brokers.
    pub return_order_topic_config_to_broker: bool,
    /// A registration drops the broker's topics it no longer lists.
    pub delete_topic_with_broker_registration: bool,
    /// Serve GET_ALL_TOPIC_LIST_FROM_NAMESERVER.
    pub enable_all_topic_list: bool,
    /// Serve GET_TOPICS_BY_CLUSTER (and the other topic-list codes).
    pub enable_topic_list: bool,
}

impl Default for NamesrvConfig {
    /// Java's defaults.
    fn default() -> Self {
        Self {
            broker_channel_expired_time: BROKER_CHANNEL_EXPIRED_TIME,
            order_message_enable: false,
            return_order_topic_config_to_broker: true,
            delete_topic_with_broker_registration: false,
            enable_all_topic_list: true,
            enable_topic_list: true,
        }
    }
}

/// Why a request failed; each maps to the response code and remark the
/// Java name server would send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NamesrvError {
    /// A required header field is missing or a field does not parse.
    #[error(transparent)]
    Header(#[from] HeaderError),
    #[error("Failed to decode {what}: {source}")]
    Body {
        what: &'static str,
        #[source]
        source: BodyError,
    },
    /// `bodyCrc32` ≠ masked CRC-32 of the body.
    #[error("crc32 not match")]
    CrcMismatch { expected: i32, actual: i32 },
    /// REGISTER_BROKER refused (Java: `register broker failed`).
    #[error("register broker failed: {0}")]
    RegisterRejected(String),
    #[error("No topic route info in name server for the topic: {0}")]
    TopicNotExist(String),
    #[error("No config item, Namespace: {namespace} Key: {key}")]
    KvNotFound { namespace: String, key: String },
    #[error("No config item, Namespace: {0}")]
    KvNamespaceNotFound(String),
    /// A request disabled by configuration (Java remark: `disable`).
    #[error("disable")]
    Disabled,
    #[error("{}", request::not_supported_remark(*.0))]
    RequestCodeNotSupported(i32),
    /// A (UN)REGISTER_BROKER for a broker that is alive and registered
    /// from another address: refused, so that nobody can take over or
    /// remove a live broker's routes.
    #[error("{0}")]
    NotOwner(String),
    /// A registration over the name server's limits.
    #[error("{0}")]
    TooLarge(String),
}

impl NamesrvError {
    /// The RocketMQ response code for this error.
    pub fn response_code(&self) -> i32 {
        match self {
            Self::TopicNotExist(_) => response::TOPIC_NOT_EXIST,
            Self::KvNotFound { .. } | Self::KvNamespaceNotFound(_) => response::QUERY_NOT_FOUND,
            Self::RequestCodeNotSupported(_) => response::REQUEST_CODE_NOT_SUPPORTED,
            Self::NotOwner(_) => response::NO_PERMISSION,
            Self::TooLarge(_) => response::INVALID_PARAMETER,
            Self::Header(_)
            | Self::Body { .. }
            | Self::CrcMismatch { .. }
            | Self::RegisterRejected(_)
            | Self::Disabled => response::SYSTEM_ERROR,
        }
    }
}

/// One name server instance: the route table, the KV config and the
/// request dispatcher.
#[derive(Debug)]
pub struct NameServer {
    config: NamesrvConfig,
    routes: RouteTable,
    kv: KvConfig,
    /// Remote IP of each open connection (told by the runtime).
    peers: std::collections::HashMap<ConnId, std::net::IpAddr>,
}

impl Default for NameServer {
    fn default() -> Self {
        Self::new(NamesrvConfig::default())
    }
}

impl NameServer {
    pub fn new(config: NamesrvConfig) -> Self {
        Self {
            routes: RouteTable::new(
                config.broker_channel_expired_time,
                config.delete_topic_with_broker_registration,
            ),
            kv: KvConfig::default(),
            peers: std::collections::HashMap::new(),
            config,
        }
    }

    /// Serve one request that arrived on `conn` at `now`.
    ///
    /// Returns the response to write, or `None` when none may be written:
    /// oneway requests (flag bit 1) are processed but never answered, not
    /// even with an error, and stray responses are ignored. A response
    /// echoes the request's `opaque`, has the response flag set and uses the
    /// request's header serialization.
    pub fn handle(&mut self, conn: ConnId, req: &RemotingCommand, now: Instant) -> Option<RemotingCommand> {
        if req.is_response() {
            log::warn!(
                "ignoring a response (code {}, opaque {}) sent to the name server",
                req.code,
                req.opaque
            );
            return None;
        }
        let rsp = processor::process(self, conn, req, now).unwrap_or_else(|err| {
            log::debug!("request code {} from {conn:?} failed: {err}", req.code);
            RemotingCommand::response_to(req, err.response_code(), Some(err.to_string()))
        });
        (!req.is_oneway()).then_some(rsp)
    }

    /// The connection `conn` closed: drop every broker whose latest
    /// registration came over it, at once (Java `BrokerHousekeepingService`).
    /// A connection from `peer` opened: registrations over it are owned by
    /// that address.
    pub fn connection_opened(&mut self, conn: ConnId, peer: std::net::IpAddr) {
        self.peers.insert(conn, peer);
    }

    /// The client address of an open connection.
    pub fn peer(&self, conn: ConnId) -> Option<std::net::IpAddr> {
        self.peers.get(&conn).copied()
    }

    /// Refuses a (un)registration of `broker_name`/`broker_id` over `conn`
    /// while that broker is alive and registered over a connection from
    /// another address. Connections whose peer is unknown are not checked.
    fn check_owner(&self, conn: ConnId, broker_name: &str, broker_id: i64) -> Result<(), NamesrvError> {
        let Some(owner) = self.routes.live_conn_of(broker_name, broker_id) else {
            return Ok(());
        };
        match (self.peers.get(&owner), self.peers.get(&conn)) {
            (Some(registered), Some(from)) if registered != from => Err(NamesrvError::NotOwner(format!(
                "broker {broker_name} (id {broker_id}) is alive and registered from {registered}; \
                 refusing a change from {from} until it unregisters or expires"
            ))),
            _ => Ok(()),
        }
    }

    pub fn connection_closed(&mut self, conn: ConnId) {
        self.peers.remove(&conn);
        let dropped = self.routes.connection_closed(conn);
        if dropped > 0 {
            log::info!("connection {conn:?} closed: dropped {dropped} broker(s)");
        }
    }

    /// Drop brokers silent for 120 s (or their `heartbeatTimeoutMillis`).
    /// Returns the connections of the dropped brokers; the Java name server
    /// closes them, and the runtime should too.
    pub fn scan_expired(&mut self, now: Instant) -> Vec<ConnId> {
        let conns = self.routes.scan_expired(now);
        if !conns.is_empty() {
            log::warn!("dropped brokers silent for too long on connections {conns:?}");
        }
        conns
    }

    pub fn config(&self) -> &NamesrvConfig {
        &self.config
    }

    pub fn route_table(&self) -> &RouteTable {
        &self.routes
    }

    pub fn kv_config(&self) -> &KvConfig {
        &self.kv
    }
}
pub mod server;
