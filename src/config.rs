//! Broker settings: a `broker.conf`-style properties file with RocketMQ's
//! key names, overridable from the command line, validated once at start.
//!
//! Unknown keys are a warning (a RocketMQ broker.conf carries many keys we
//! do not use); an invalid value is an error naming the key and the value.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::store::FlushMode;

#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub listen_port: u16,
    pub namesrv_listen_port: u16,
    /// Address the embedded name server binds (default: `brokerIP1`, the
    /// address every broker listener binds; `0.0.0.0` for all interfaces).
    pub namesrv_listen_addr: Option<IpAddr>,
    /// Embedded name server on `namesrv_listen_port` (default on).
    pub embedded_namesrv: bool,
    /// Name servers to register with (`;`-separated); defaults to the
    /// embedded one.
    pub namesrv_addrs: Vec<String>,
    pub broker_cluster_name: String,
    pub broker_name: String,
    pub broker_id: u64,
    /// Advertised IP (STOREHOST of every record, route entries).
    pub broker_ip1: IpAddr,
    pub store_path_root_dir: PathBuf,
    pub flush_disk_type: FlushMode,
    pub mapped_file_size_commit_log: u64,
    pub auto_create_topic_enable: bool,
    pub auto_create_subscription_group: bool,
    pub default_topic_queue_nums: u32,
    pub file_reserved_time: Duration,
    pub disk_max_used_space_ratio: u8,
    /// `diskFullPolicy`: `reject` (default) or `deleteOldest`.
    pub disk_full_policy: crate::store::DiskFullPolicy,
    /// `messageIndexEnable`: keep the key index (QUERY_MESSAGE by key and
    /// message id); default on, as in RocketMQ.
    pub message_index_enable: bool,
    pub sync_flush_timeout: Duration,
    /// `shardSpinBeforeParkMicros`: how long an idle shard polls for work
    /// before it parks its thread (glommio's spin-before-park; 0 = park at
    /// once). bench/RESULTS.md has the measurement behind the default.
    pub spin_before_park: Duration,
    pub max_message_size: usize,
    /// Data shards (0 = one per CPU core).
    pub shard_count: usize,
    /// Register each shard as its own broker entry on its own port.
    pub shard_aware_routes: bool,
    /// Shard k listens on `shard_listen_port_base + k`.
    pub shard_listen_port_base: u16,
    /// Bytes of CommitLog tail kept in memory per shard.
    pub tail_cache_bytes: usize,
    /// Segments zero-filled when prepared (default: with SYNC_FLUSH, where
    /// it makes every fdatasync cheaper: 1.89x appends/s measured in
    /// bench/RESULTS.md; without it segments are only fallocated).
    pub segment_pre_zero: Option<bool>,
    pub register_namesrv_period: Duration,
    /// Listen on `listen_port - 2` for Java clients <= 4.4 (VIP channel).
    pub vip_channel_enable: bool,
    /// Prometheus `/metrics` HTTP port (0 = off).
    pub metrics_port: u16,
    /// What one connection may make a shard hold (timeouts, reply bytes).
    pub conn_limits: crate::runtime::connection::Limits,
    /// `maxConnectionsPerShard`, `maxConnectionsPerAddress`.
    pub max_connections_per_shard: usize,
    pub max_connections_per_address: usize,
    /// `inboundFrameBudgetBytes`: bytes of large frames being read or
    /// running per shard.
    pub inbound_frame_budget: u64,
    /// `requestBudgetBytes`: bytes of small frames (up to 16 KiB) whose
    /// requests a shard runs at once, over all its connections; a
    /// connection waits (stops reading) while it is spent.
    pub request_budget: u64,
    /// `messageDelayLevel`: the delay of each level, 1-based (RocketMQ's
    /// default "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h").
    pub message_delay_levels: Vec<Duration>,
    /// `timerMaxDelaySec`: the longest delay a message may ask for
    /// (default 30 days); longer is refused with MESSAGE_ILLEGAL.
    pub timer_max_delay: Duration,
    /// `timerMaxInMemory`: scheduled entries a shard keeps in memory (the
    /// next due ones); the rest wait on disk.
    pub timer_max_in_memory: usize,
    /// `transactionTimeOut` (ms): a half message is first checked this long
    /// after it was stored (default 6 s).
    pub transaction_timeout: Duration,
    /// `transactionCheckInterval` (ms): time between two checks of one
    /// transaction (default 30 s, RocketMQ 5).
    pub transaction_check_interval: Duration,
    /// `transactionCheckMax`: checks before an unknown transaction is
    /// rolled back (default 15).
    pub transaction_check_max: u32,
    /// `transactionMaxOpen`: open transactions per shard before half
    /// messages are refused with SYSTEM_BUSY.
    pub transaction_max_open: usize,
    /// `popMinInvisibleTime` (ms): the shortest invisible time a remoting
    /// pop or invisible-time change may ask for (default 5 s, the 5.x Java
    /// push consumer's own minimum, which Apache's broker accepts; below:
    /// INVALID_PARAMETER). gRPC clients have the proxy's 10 s floor.
    pub pop_min_invisible_ms: i64,
    /// `defaultInvisibleTimeMills` (ms, as Apache's proxy names it): the
    /// invisible time of a gRPC receive that names none (push consumers,
    /// whose leases are then renewed while the client lives); 10 s … 12 h,
    /// default 60 s.
    pub default_invisible_ms: i64,
    /// `popMaxInFlight`: messages popped and not acknowledged per shard
    /// (default 1 M); a pop beyond gets only re-deliveries or SYSTEM_BUSY.
    pub pop_max_in_flight: usize,
    /// `defaultMessageRequestMode`: `PULL` (default) or `POP`, for groups
    /// with no mode set (QUERY_ASSIGNMENT).
    pub default_message_request_mode_pop: bool,
    /// `defaultPopShareQueueNum` (default −1: every consumer pops every
    /// queue).
    pub default_pop_share_queue_num: i32,
    /// `grpcListenPort`: the 5.x gRPC endpoint (default 8081; 0 = off).
    pub grpc_listen_port: u16,
    /// `grpcShardPortBase`: shard k serves gRPC on this + k (default
    /// `grpcListenPort + 10`), what shard-aware routes advertise.
    pub grpc_shard_port_base: u16,
    /// `httpListenPort`: the REST API and web console (default 8082; 0 =
    /// off), served by every shard (SO_REUSEPORT).
    pub http_listen_port: u16,
    /// `httpMaxBodyBytes`: the largest HTTP request body (default 512 KiB,
    /// as DMS); larger ones get 413.
    pub http_max_body_bytes: usize,
    /// `httpMaxBatch`: messages one REST produce request may carry (default 64).
    pub http_max_batch: usize,
    /// `aclEnable`: check every request's signature and permissions
    /// against the ACL file (default off: anyone may do anything).
    pub acl_enable: bool,
    /// `aclFile`: the ACL file (RocketMQ's `plain_acl.yml` keys). Default:
    /// `plain_acl.yml` beside the broker.conf, or
    /// `<storePathRootDir>/config/plain_acl.yml` without one; a relative
    /// path is taken from the broker.conf's folder (or the working one).
    pub acl_file: Option<PathBuf>,
    /// `traceBrokerEvents`: the broker writes its own trace records
    /// (stored, delivered, sent back) to RMQ_SYS_TRACE_TOPIC (default off).
    pub trace_broker_events: bool,
    /// `alertRulesFile`: the alert rules (`broker::alerts::rules`).
    /// Default `<storePathRootDir>/config/alertRules.json`.
    pub alert_rules_file: Option<PathBuf>,
    /// `alertWebhookUrl`: where rules without their own webhook POST.
    pub alert_webhook_url: Option<String>,
    /// `alertWebhookTrustCertPath`: PEM CA certificates that https://
    /// webhooks are verified against (default: the public roots).
    pub alert_webhook_trust: Option<PathBuf>,
    /// `auditLogEnable`: the audit log of admin changes and ACL refusals
    /// (`<storePathRootDir>/audit`, default on).
    pub audit_log_enable: bool,
    /// TLS on the client-facing ports (remoting main, VIP and shard ports,
    /// the embedded name server, gRPC): `tlsServerMode`
    /// (disabled|permissive|enforcing), `tlsServerCertPath`,
    /// `tlsServerKeyPath`, `tlsServerNeedClientAuth` (none|optional|
    /// require), `tlsServerTrustCertPath`. See `runtime::tls`.
    pub tls_server: crate::runtime::tls::ServerSettings,
    /// `tlsEnable`: the broker's own connections to name servers use TLS
    /// (default: on when `tlsServerMode=enforcing`, so a broker reaches
    /// its embedded name server). With `tlsClientAuthServer`,
    /// `tlsClientTrustCertPath`, `tlsClientCertPath`, `tlsClientKeyPath`.
    pub tls_enable: Option<bool>,
    pub tls_client: crate::runtime::tls::ClientSettings,
    /// `storeEncryptionEnable`: seal message bodies and properties in the
    /// CommitLog (AES-256-GCM-SIV, see `store::crypt`) with the keys of
    /// `storeEncryptionKeyFile` (required then; keep it off the data disk).
    pub store_encryption_enable: bool,
    pub store_encryption_key_file: Option<PathBuf>,
    /// `namesrvAccessKey` / `namesrvSecretKey`: the account this broker's
    /// registrations are signed with, for name servers with `aclEnable`
    /// (the embedded one needs none: the broker uses an account made up at
    /// start).
    pub namesrv_access_key: Option<String>,
    pub namesrv_secret_key: Option<String>,
}

/// The ACL file's default name (RocketMQ's).
pub const ACL_FILE_NAME: &str = "plain_acl.yml";

/// RocketMQ's `messageDelayLevel` default.
pub const DEFAULT_DELAY_LEVELS: &str = "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h";

/// Parses a `messageDelayLevel` string: space-separated durations with a
/// unit suffix s, m, h or d.
pub fn parse_delay_levels(text: &str) -> Result<Vec<Duration>, String> {
    let mut out = Vec::new();
    for word in text.split_whitespace() {
        let (num, unit) = word.split_at(word.len().saturating_sub(1));
        let secs_per = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(format!("{word:?}: expected a number with unit s, m, h or d")),
        };
        let n: u64 = num
            .parse()
            .map_err(|_| format!("{word:?}: expected a number with unit s, m, h or d"))?;
        out.push(Duration::from_secs(n.saturating_mul(secs_per)));
    }
    if out.is_empty() || out.len() > 64 {
        return Err("expected 1 to 64 levels".into());
    }
    Ok(out)
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid value for {key}: {value:?} ({why})")]
    Invalid { key: String, value: String, why: String },
    #[error("malformed override {0:?}: expected key=value")]
    Override(String),
}

impl Default for BrokerConfig {
    fn default() -> BrokerConfig {
        BrokerConfig {
            listen_port: 10911,
            namesrv_listen_port: 9876,
            namesrv_listen_addr: None,
            embedded_namesrv: true,
            namesrv_addrs: Vec::new(),
            broker_cluster_name: "DefaultCluster".into(),
            broker_name: "broker-a".into(),
            broker_id: 0,
            broker_ip1: IpAddr::V4(Ipv4Addr::LOCALHOST),
            store_path_root_dir: PathBuf::from("./data"),
            flush_disk_type: FlushMode::Async,
            mapped_file_size_commit_log: 1 << 30,
            auto_create_topic_enable: true,
            auto_create_subscription_group: true,
            default_topic_queue_nums: 8,
            file_reserved_time: Duration::from_secs(72 * 3600),
            disk_max_used_space_ratio: 90,
            disk_full_policy: crate::store::DiskFullPolicy::Reject,
            message_index_enable: true,
            sync_flush_timeout: Duration::from_secs(5),
            spin_before_park: Duration::ZERO,
            max_message_size: 4 << 20,
            shard_count: 0,
            shard_aware_routes: true,
            shard_listen_port_base: 0,
            tail_cache_bytes: 128 << 20,
            segment_pre_zero: None,
            register_namesrv_period: Duration::from_secs(30),
            vip_channel_enable: true,
            metrics_port: 5557,
            conn_limits: crate::runtime::connection::Limits::default(),
            max_connections_per_shard: 10_000,
            max_connections_per_address: 1_000,
            inbound_frame_budget: 256 << 20,
            request_budget: 64 << 20,
            message_delay_levels: parse_delay_levels(DEFAULT_DELAY_LEVELS).unwrap_or_default(),
            timer_max_delay: Duration::from_secs(30 * 86_400),
            timer_max_in_memory: 1_000_000,
            transaction_timeout: Duration::from_secs(6),
            transaction_check_interval: Duration::from_secs(30),
            transaction_check_max: 15,
            transaction_max_open: 1_000_000,
            pop_min_invisible_ms: 5_000,
            default_invisible_ms: 60_000,
            pop_max_in_flight: 1_000_000,
            default_message_request_mode_pop: false,
            default_pop_share_queue_num: -1,
            grpc_listen_port: 8081,
            grpc_shard_port_base: 0,
            http_listen_port: 8082,
            http_max_body_bytes: 512 * 1024,
            http_max_batch: 64,
            acl_enable: false,
            acl_file: None,
            trace_broker_events: false,
            alert_rules_file: None,
            alert_webhook_url: None,
            alert_webhook_trust: None,
            audit_log_enable: true,
            tls_server: Default::default(),
            tls_enable: None,
            tls_client: Default::default(),
            store_encryption_enable: false,
            store_encryption_key_file: None,
            namesrv_access_key: None,
            namesrv_secret_key: None,
        }
    }
}

/// Parses Java-properties text: `key=value` / `key: value`, `#` and `!`
/// comments, surrounding whitespace trimmed.
pub fn parse_properties(text: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let split = line.find(['=', ':']).unwrap_or(line.len());
        let key = line[..split].trim();
        let value = line.get(split + 1..).unwrap_or("").trim();
        if !key.is_empty() {
            map.insert(key.to_string(), value.to_string());
        }
    }
    map
}

impl BrokerConfig {
    /// Builds the configuration from an optional file plus `key=value`
    /// overrides (later wins). Returns the unknown keys for a warning.
    pub fn load(
        file: Option<&std::path::Path>,
        overrides: &[String],
    ) -> Result<(BrokerConfig, Vec<String>), ConfigError> {
        let mut props = BTreeMap::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            props = parse_properties(&text);
        }
        for o in overrides {
            let (k, v) = o.split_once('=').ok_or_else(|| ConfigError::Override(o.clone()))?;
            props.insert(k.trim().to_string(), v.trim().to_string());
        }
        let (mut c, unknown) = BrokerConfig::from_properties(&props)?;
        // The ACL file lives beside the broker.conf (RocketMQ keeps it in
        // the same conf folder), relative names taken from there too.
        if let Some(dir) = file.and_then(std::path::Path::parent) {
            let f = c.acl_file.take().unwrap_or_else(|| PathBuf::from(ACL_FILE_NAME));
            c.acl_file = Some(if f.is_relative() { dir.join(f) } else { f });
            let from_conf = |p: &mut Option<PathBuf>| {
                if let Some(f) = p.as_mut().filter(|f| f.is_relative()) {
                    *f = dir.join(&*f);
                }
            };
            from_conf(&mut c.tls_server.cert);
            from_conf(&mut c.tls_server.key);
            from_conf(&mut c.tls_server.trust);
            from_conf(&mut c.tls_client.trust);
            from_conf(&mut c.tls_client.cert);
            from_conf(&mut c.tls_client.key);
            from_conf(&mut c.store_encryption_key_file);
        }
        Ok((c, unknown))
    }

    /// Whether the broker's own connections to name servers use TLS.
    pub fn tls_outgoing(&self) -> bool {
        self.tls_enable
            .unwrap_or(self.tls_server.mode == crate::runtime::tls::Mode::Enforcing)
    }

    /// The ACL file ([`BrokerConfig::acl_file`], or its default).
    pub fn acl_path(&self) -> PathBuf {
        self.acl_file
            .clone()
            .unwrap_or_else(|| self.store_path_root_dir.join("config").join(ACL_FILE_NAME))
    }

    pub fn from_properties(props: &BTreeMap<String, String>) -> Result<(BrokerConfig, Vec<String>), ConfigError> {
        let mut c = BrokerConfig::default();
        let mut unknown = Vec::new();
        for (key, value) in props {
            let k = key.as_str();
            let v = value.as_str();
            match k {
                "listenPort" => c.listen_port = port(k, v)?,
                "namesrvListenPort" => c.namesrv_listen_port = port(k, v)?,
                "namesrvListenAddr" => {
                    c.namesrv_listen_addr = Some(v.parse().map_err(|_| invalid(k, v, "expected an IP address"))?)
                }
                "embeddedNamesrvEnable" => c.embedded_namesrv = boolean(k, v)?,
                "namesrvAddr" => {
                    c.namesrv_addrs = v
                        .split(';')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect();
                    for a in &c.namesrv_addrs {
                        if a.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()).is_none() {
                            return Err(invalid(k, v, "expected host:port[;host:port...]"));
                        }
                    }
                }
                "brokerClusterName" => c.broker_cluster_name = name(k, v)?,
                "brokerName" => c.broker_name = name(k, v)?,
                "brokerId" => c.broker_id = number(k, v)?,
                "brokerIP1" => c.broker_ip1 = v.parse().map_err(|_| invalid(k, v, "expected an IP address"))?,
                "storePathRootDir" => {
                    if v.is_empty() {
                        return Err(invalid(k, v, "must not be empty"));
                    }
                    c.store_path_root_dir = expand_home(v);
                }
                "flushDiskType" => {
                    c.flush_disk_type = match v {
                        "SYNC_FLUSH" => FlushMode::Sync,
                        "ASYNC_FLUSH" => FlushMode::Async,
                        _ => return Err(invalid(k, v, "expected SYNC_FLUSH or ASYNC_FLUSH")),
                    }
                }
                "mapedFileSizeCommitLog" | "mappedFileSizeCommitLog" => c.mapped_file_size_commit_log = number(k, v)?,
                "autoCreateTopicEnable" => c.auto_create_topic_enable = boolean(k, v)?,
                "autoCreateSubscriptionGroup" => c.auto_create_subscription_group = boolean(k, v)?,
                "defaultTopicQueueNums" => {
                    c.default_topic_queue_nums = number(k, v)?;
                    if !(1..=1024).contains(&c.default_topic_queue_nums) {
                        return Err(invalid(k, v, "must be within 1..=1024"));
                    }
                }
                "fileReservedTime" => c.file_reserved_time = Duration::from_secs(number::<u64>(k, v)? * 3600),
                "diskMaxUsedSpaceRatio" => c.disk_max_used_space_ratio = number(k, v)?,
                "messageIndexEnable" => c.message_index_enable = boolean(k, v)?,
                "diskFullPolicy" => {
                    c.disk_full_policy = match v {
                        "reject" => crate::store::DiskFullPolicy::Reject,
                        "deleteOldest" => crate::store::DiskFullPolicy::DeleteOldest,
                        _ => return Err(invalid(k, v, "expected reject or deleteOldest")),
                    }
                }
                "syncFlushTimeout" => c.sync_flush_timeout = Duration::from_millis(number(k, v)?),
                "shardSpinBeforeParkMicros" => c.spin_before_park = Duration::from_micros(number(k, v)?),
                "maxMessageSize" => c.max_message_size = number(k, v)?,
                "shardCount" => c.shard_count = number(k, v)?,
                "shardAwareRoutes" => c.shard_aware_routes = boolean(k, v)?,
                "shardListenPortBase" => c.shard_listen_port_base = port(k, v)?,
                "tailCacheBytes" => c.tail_cache_bytes = number(k, v)?,
                "segmentPreZero" => c.segment_pre_zero = Some(boolean(k, v)?),
                "registerNameServerPeriod" => {
                    c.register_namesrv_period = Duration::from_millis(number::<u64>(k, v)?.clamp(10_000, 60_000))
                }
                "vipChannelEnable" => c.vip_channel_enable = boolean(k, v)?,
                "serverChannelMaxIdleTimeSeconds" => {
                    c.conn_limits.idle_timeout = Duration::from_secs(positive(k, v)?);
                }
                "partialFrameTimeoutMillis" => {
                    c.conn_limits.partial_frame_timeout = Duration::from_millis(positive(k, v)?);
                }
                "writeStallTimeoutMillis" => {
                    c.conn_limits.write_stall_timeout = Duration::from_millis(positive(k, v)?);
                }
                "outboxMaxBytes" => c.conn_limits.outbox_max_bytes = positive::<usize>(k, v)?,
                "maxConnectionsPerShard" => c.max_connections_per_shard = positive(k, v)?,
                "maxConnectionsPerAddress" => c.max_connections_per_address = positive(k, v)?,
                "inboundFrameBudgetBytes" => c.inbound_frame_budget = positive(k, v)?,
                "requestBudgetBytes" => c.request_budget = positive(k, v)?,
                "messageDelayLevel" => {
                    c.message_delay_levels = parse_delay_levels(v).map_err(|why| invalid(k, v, &why))?;
                }
                "timerMaxDelaySec" => c.timer_max_delay = Duration::from_secs(positive(k, v)?),
                "timerMaxInMemory" => c.timer_max_in_memory = positive(k, v)?,
                "transactionTimeOut" => c.transaction_timeout = Duration::from_millis(positive(k, v)?),
                "transactionCheckInterval" => c.transaction_check_interval = Duration::from_millis(positive(k, v)?),
                "transactionCheckMax" => c.transaction_check_max = number(k, v)?,
                "transactionMaxOpen" => c.transaction_max_open = positive(k, v)?,
                "popMinInvisibleTime" => c.pop_min_invisible_ms = positive(k, v)?,
                "defaultInvisibleTimeMills" => {
                    c.default_invisible_ms = match v.parse::<i64>() {
                        Ok(n) if (10_000..=12 * 3_600_000).contains(&n) => n,
                        _ => return Err(invalid(k, v, "expected milliseconds within 10000..=43200000")),
                    }
                }
                "popMaxInFlight" => c.pop_max_in_flight = positive(k, v)?,
                "defaultMessageRequestMode" => {
                    c.default_message_request_mode_pop = match v {
                        "POP" => true,
                        "PULL" => false,
                        _ => return Err(invalid(k, v, "PULL or POP")),
                    };
                }
                "defaultPopShareQueueNum" => c.default_pop_share_queue_num = number(k, v)?,
                "grpcListenPort" => c.grpc_listen_port = if v == "0" { 0 } else { port(k, v)? },
                "grpcShardPortBase" => c.grpc_shard_port_base = port(k, v)?,
                "httpListenPort" => c.http_listen_port = if v == "0" { 0 } else { port(k, v)? },
                "httpMaxBodyBytes" => c.http_max_body_bytes = positive(k, v)?,
                "httpMaxBatch" => c.http_max_batch = positive(k, v)?,
                "aclEnable" => c.acl_enable = boolean(k, v)?,
                "auditLogEnable" => c.audit_log_enable = boolean(k, v)?,
                "traceBrokerEvents" => c.trace_broker_events = boolean(k, v)?,
                "alertRulesFile" => c.alert_rules_file = Some(path_value(k, v)?),
                "alertWebhookUrl" => {
                    if !(v.starts_with("http://") || v.starts_with("https://")) {
                        return Err(invalid(k, v, "an http:// or https:// URL"));
                    }
                    c.alert_webhook_url = Some(v.to_owned());
                }
                "alertWebhookTrustCertPath" => c.alert_webhook_trust = Some(path_value(k, v)?),
                "aclFile" => {
                    if v.is_empty() {
                        return Err(invalid(k, v, "must not be empty"));
                    }
                    c.acl_file = Some(expand_home(v));
                }
                "tlsServerMode" => {
                    c.tls_server.mode = crate::runtime::tls::Mode::parse(v)
                        .ok_or_else(|| invalid(k, v, "disabled, permissive or enforcing"))?;
                }
                "tlsServerNeedClientAuth" => {
                    c.tls_server.client_auth = crate::runtime::tls::ClientAuth::parse(v)
                        .ok_or_else(|| invalid(k, v, "none, optional or require"))?;
                }
                "tlsServerCertPath" => c.tls_server.cert = Some(path_value(k, v)?),
                "tlsServerKeyPath" => c.tls_server.key = Some(path_value(k, v)?),
                "tlsServerTrustCertPath" => c.tls_server.trust = Some(path_value(k, v)?),
                "tlsEnable" => c.tls_enable = Some(boolean(k, v)?),
                "tlsClientAuthServer" => c.tls_client.verify_server = boolean(k, v)?,
                "tlsClientTrustCertPath" => c.tls_client.trust = Some(path_value(k, v)?),
                "tlsClientCertPath" => c.tls_client.cert = Some(path_value(k, v)?),
                "tlsClientKeyPath" => c.tls_client.key = Some(path_value(k, v)?),
                "namesrvAccessKey" => c.namesrv_access_key = Some(v.to_string()),
                "namesrvSecretKey" => c.namesrv_secret_key = Some(v.to_string()),
                "storeEncryptionEnable" => c.store_encryption_enable = boolean(k, v)?,
                "storeEncryptionKeyFile" => c.store_encryption_key_file = Some(path_value(k, v)?),
                "metricsPort" => {
                    c.metrics_port = if v == "0" { 0 } else { port(k, v)? };
                }
                _ => unknown.push(key.clone()),
            }
        }
        c.validate()?;
        Ok((c, unknown))
    }

    fn validate(&mut self) -> Result<(), ConfigError> {
        if !(10..=95).contains(&self.disk_max_used_space_ratio) {
            return Err(invalid(
                "diskMaxUsedSpaceRatio",
                &self.disk_max_used_space_ratio.to_string(),
                "10..=95",
            ));
        }
        if self.max_message_size == 0 || self.max_message_size > 64 << 20 {
            return Err(invalid(
                "maxMessageSize",
                &self.max_message_size.to_string(),
                "1..=67108864",
            ));
        }
        let seg = self.mapped_file_size_commit_log;
        if seg % 4096 != 0 || seg < (self.max_message_size as u64 + 64 * 1024) {
            return Err(invalid(
                "mapedFileSizeCommitLog",
                &seg.to_string(),
                "a multiple of 4096 larger than maxMessageSize + 64 KiB",
            ));
        }
        if self.inbound_frame_budget < crate::protocol::DEFAULT_MAX_FRAME_LEN as u64 {
            return Err(invalid(
                "inboundFrameBudgetBytes",
                &self.inbound_frame_budget.to_string(),
                "at least the largest frame, 16777216",
            ));
        }
        if self.shard_count > 256 {
            return Err(invalid("shardCount", &self.shard_count.to_string(), "at most 256"));
        }
        if self.grpc_shard_port_base == 0 && self.grpc_listen_port != 0 {
            self.grpc_shard_port_base = self.grpc_listen_port.saturating_add(10);
        }
        if self.shard_listen_port_base == 0 {
            self.shard_listen_port_base = self.listen_port.saturating_add(10);
        }
        if self.namesrv_addrs.is_empty() {
            if !self.embedded_namesrv {
                return Err(invalid("namesrvAddr", "", "required when embeddedNamesrvEnable=false"));
            }
            let ip = self.namesrv_bind_ip();
            let reach = if ip.is_unspecified() {
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            } else {
                ip
            };
            self.namesrv_addrs = vec![SocketAddr::new(reach, self.namesrv_listen_port).to_string()];
        }
        // A relative data directory is resolved once, here: every later
        // use (glommio's Directory::open among them) sees an absolute path,
        // whatever the working directory of the thread that opens it.
        if self.store_path_root_dir.is_relative() {
            let cwd = std::env::current_dir().map_err(|e| {
                invalid(
                    "storePathRootDir",
                    &self.store_path_root_dir.display().to_string(),
                    &format!("relative, and the working directory is unreadable: {e}"),
                )
            })?;
            self.store_path_root_dir = normalize(&cwd.join(&self.store_path_root_dir));
        }
        Ok(())
    }

    /// The address the embedded name server binds.
    pub fn namesrv_bind_ip(&self) -> IpAddr {
        self.namesrv_listen_addr.unwrap_or(self.broker_ip1)
    }

    /// `ip:port` other processes use to reach the main broker port.
    pub fn broker_addr(&self) -> String {
        format!("{}:{}", self.broker_ip1, self.listen_port)
    }

    pub fn shard_port(&self, shard: usize) -> u16 {
        self.shard_listen_port_base.saturating_add(shard as u16)
    }

    /// Shard `shard`'s gRPC port.
    pub fn grpc_shard_port(&self, shard: usize) -> u16 {
        self.grpc_shard_port_base.saturating_add(shard as u16)
    }
}

fn invalid(key: &str, value: &str, why: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        value: value.into(),
        why: why.into(),
    }
}

fn number<T: std::str::FromStr>(k: &str, v: &str) -> Result<T, ConfigError> {
    v.parse().map_err(|_| invalid(k, v, "expected a non-negative integer"))
}

fn positive<T: std::str::FromStr + PartialOrd + Default>(k: &str, v: &str) -> Result<T, ConfigError> {
    match v.parse::<T>() {
        Ok(n) if n > T::default() => Ok(n),
        _ => Err(invalid(k, v, "expected a positive integer")),
    }
}

fn port(k: &str, v: &str) -> Result<u16, ConfigError> {
    match v.parse::<u16>() {
        Ok(p) if p > 2 => Ok(p),
        _ => Err(invalid(k, v, "expected a TCP port 3..=65535")),
    }
}

fn boolean(k: &str, v: &str) -> Result<bool, ConfigError> {
    match v.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(k, v, "expected true or false")),
    }
}

fn name(k: &str, v: &str) -> Result<String, ConfigError> {
    let ok = !v.is_empty() && v.len() <= 127 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(v.to_string())
    } else {
        Err(invalid(k, v, "1..=127 characters of [a-zA-Z0-9_-]"))
    }
}

/// Removes `.` components and folds `dir/..` lexically (no symlinks are
/// resolved: the directory may not exist yet).
fn normalize(p: &std::path::Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

fn path_value(k: &str, v: &str) -> Result<PathBuf, ConfigError> {
    if v.is_empty() {
        return Err(invalid(k, v, "must not be empty"));
    }
    Ok(expand_home(v))
}

fn expand_home(v: &str) -> PathBuf {
    match (v.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rocketmq_keys_and_reports_unknown_ones() {
        let text = "# broker\nbrokerClusterName = C1\nbrokerName=b1\nlistenPort=20911\nflushDiskType=SYNC_FLUSH\n\
                    mapedFileSizeCommitLog=67108864\nbrokerRole=ASYNC_MASTER\ndeleteWhen: 04\n";
        let (c, unknown) = BrokerConfig::from_properties(&parse_properties(text)).unwrap();
        assert_eq!(c.broker_cluster_name, "C1");
        assert_eq!(c.listen_port, 20911);
        assert_eq!(c.flush_disk_type, FlushMode::Sync);
        assert_eq!(c.mapped_file_size_commit_log, 64 << 20);
        assert_eq!(c.shard_listen_port_base, 20921);
        assert_eq!(c.namesrv_addrs, vec!["127.0.0.1:9876".to_string()]);
        assert_eq!(unknown, vec!["brokerRole".to_string(), "deleteWhen".to_string()]);
    }

    #[test]
    fn invalid_values_name_the_key() {
        for (k, v) in [
            ("flushDiskType", "SOMETIMES"),
            ("listenPort", "70000"),
            ("brokerIP1", "not-an-ip"),
            ("diskMaxUsedSpaceRatio", "99"),
            ("autoCreateTopicEnable", "yes"),
            ("mapedFileSizeCommitLog", "1000"),
        ] {
            let props = BTreeMap::from([(k.to_string(), v.to_string())]);
            let err = BrokerConfig::from_properties(&props).unwrap_err().to_string();
            assert!(err.contains(k), "{err}");
        }
    }

    #[test]
    fn relative_data_dirs_become_absolute_at_load() {
        let cwd = std::env::current_dir().unwrap();
        let (c, _) = BrokerConfig::load(None, &[]).unwrap();
        assert_eq!(c.store_path_root_dir, cwd.join("data"));
        let (c, _) = BrokerConfig::load(None, &["storePathRootDir=./x/../store/./d".into()]).unwrap();
        assert_eq!(c.store_path_root_dir, cwd.join("store/d"));
        let (c, _) = BrokerConfig::load(None, &["storePathRootDir=/abs/d".into()]).unwrap();
        assert_eq!(c.store_path_root_dir, PathBuf::from("/abs/d"));
    }

    #[test]
    fn the_name_server_binds_and_is_reached_at_the_broker_address_by_default() {
        let (c, _) = BrokerConfig::load(None, &["brokerIP1=127.0.0.2".into()]).unwrap();
        assert_eq!(c.namesrv_bind_ip().to_string(), "127.0.0.2");
        assert_eq!(c.namesrv_addrs, vec!["127.0.0.2:9876".to_string()]);
        let (c, _) = BrokerConfig::load(None, &["namesrvListenAddr=0.0.0.0".into()]).unwrap();
        assert_eq!(c.namesrv_bind_ip().to_string(), "0.0.0.0");
        assert_eq!(c.namesrv_addrs, vec!["127.0.0.1:9876".to_string()]);
    }

    #[test]
    fn overrides_win_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("broker.conf");
        std::fs::write(&f, "listenPort=1000\n").unwrap();
        let (c, _) = BrokerConfig::load(Some(&f), &["listenPort=2000".into()]).unwrap();
        assert_eq!(c.listen_port, 2000);
        assert!(BrokerConfig::load(Some(&f), &["nonsense".into()]).is_err());
    }
}
