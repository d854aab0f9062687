//! Broker settings: a `broker.conf`-style properties file with RocketMQ's
//! key names, overridable from the command line, validated once at start.
//!
//! Unknown keys are a warning (a RocketMQ broker.conf carries many keys we
//! do not use); an invalid value is an error naming the key and the value.
//!
//! This file holds the settings and loading them; [`parse`] reads each key,
//! [`defaults`] gives every setting's default, [`validate`] checks the
//! settings together and derives the dependent ones.

mod defaults;
mod parse;
mod validate;

pub use parse::parse_properties;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::store::FlushMode;

/// A broker's place in its broker group (RocketMQ's `BrokerRole`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerRole {
    /// Acknowledges once stored here; slaves copy behind.
    AsyncMaster,
    /// Acknowledges once an in-sync slave holds a durable copy too.
    SyncMaster,
    /// Copies its master's CommitLog; serves reads, refuses writes.
    Slave,
}

impl BrokerRole {
    pub fn name(self) -> &'static str {
        match self {
            BrokerRole::AsyncMaster => "ASYNC_MASTER",
            BrokerRole::SyncMaster => "SYNC_MASTER",
            BrokerRole::Slave => "SLAVE",
        }
    }
}

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
    /// `brokerRole`: ASYNC_MASTER (default), SYNC_MASTER or SLAVE.
    pub broker_role: BrokerRole,
    /// `haListenPort`: shard k of a master serves its slaves on
    /// `ha_listen_port + k` (default `shardListenPortBase + 256`, past
    /// any shard's port).
    pub ha_listen_port: u16,
    /// `haMasterAddress` (a SLAVE's): `host:port` of its master's
    /// `haListenPort`; shard k replicates from `port + k`. Unset, the
    /// name server says (the master's `haServerAddr`).
    pub ha_master_address: Option<String>,
    /// `haMaxGapNotInSync`: a slave more than this many bytes behind the
    /// master's durable log is not in sync (SYNC_MASTER does not wait for
    /// it). Default 256 MiB.
    pub ha_max_gap_not_in_sync: u64,
    /// `enableControllerMode`: the controller quorum (`controllerAddr`)
    /// names the group's master and epoch; `brokerRole` then only says
    /// how this broker acknowledges while it is master (SYNC_MASTER or
    /// ASYNC_MASTER) and `brokerId` (above 0) is its identity in the group.
    pub enable_controller_mode: bool,
    /// `restartWhenDemoted` (controller mode, default true): a master that
    /// hears another was elected shuts down and starts again in the same
    /// process (re-executes itself: same pid, arguments and environment)
    /// to rejoin as a slave; false exits with status 3 for a supervisor.
    pub restart_when_demoted: bool,
    /// `controllerAddr`: the controllers, `host:port;host:port;...`.
    pub controller_addrs: Vec<String>,
    /// `brokerHeartbeatInterval` (ms, default 1000): heartbeats to the
    /// controller.
    pub broker_heartbeat_interval: Duration,
    /// `masterLeaseMillis` (default 2000): a master writes only this long
    /// after a heartbeat the controller answered naming it master. Must be
    /// below the controller's heartbeat timeout (default 3000).
    pub master_lease: Duration,
    /// `minInSyncReplicas` (controller mode, default 1): a SYNC_MASTER
    /// acknowledges only while at least this many brokers (itself
    /// included) are in the in-sync set, else SLAVE_NOT_AVAILABLE.
    pub min_in_sync_replicas: usize,
    /// `haMaxTimeSlaveNotCatchup` (ms, default 15000): a slave of the
    /// in-sync set that has not caught up this long is dropped from it.
    pub ha_max_time_slave_not_catchup: Duration,
    /// `slaveReadEnable`: pulls that read from disk (a lagging consumer)
    /// suggest `which_broker_when_consume_slowly` to the client.
    pub slave_read_enable: bool,
    /// `whichBrokerWhenConsumeSlowly` (default 1).
    pub which_broker_when_consume_slowly: u64,
    /// Advertised IP (STOREHOST of every record, route entries).
    pub broker_ip1: IpAddr,
    pub store_path_root_dir: PathBuf,
    pub flush_disk_type: FlushMode,
    pub mapped_file_size_commit_log: u64,
    pub auto_create_topic_enable: bool,
    pub auto_create_subscription_group: bool,
    pub default_topic_queue_nums: u32,
    pub file_reserved_time: Duration,
    /// `cleanResourceInterval` (ms): how often retention runs.
    pub clean_resource_interval: Duration,
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
    /// `shardIoWorkersOnAllCpus`: let each shard's io_uring workers (they
    /// run its fdatasyncs) use every CPU of the process rather than only
    /// the shard's own (runtime::iowq); default off: measured no gain
    /// (bench/RESULTS.md, "fdatasync completion path").
    pub io_workers_on_all_cpus: bool,
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

    /// The address the embedded name server binds.
    pub fn namesrv_bind_ip(&self) -> IpAddr {
        self.namesrv_listen_addr.unwrap_or(self.broker_ip1)
    }

    /// `ip:port` other processes use to reach the main broker port.
    pub fn broker_addr(&self) -> String {
        format!("{}:{}", self.broker_ip1, self.listen_port)
    }

    /// Shard `shard`'s replication port (a master's).
    pub fn ha_port(&self, shard: usize) -> u16 {
        self.ha_listen_port.saturating_add(shard as u16)
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
        assert_eq!(c.broker_role, BrokerRole::AsyncMaster);
        assert_eq!(unknown, vec!["deleteWhen".to_string()]);
    }

    #[test]
    fn roles_and_broker_ids_agree() {
        let load = |settings: &[&str]| {
            let owned: Vec<String> = settings.iter().map(|s| s.to_string()).collect();
            BrokerConfig::load(None, &owned)
        };
        let (c, _) = load(&["brokerRole=SLAVE", "brokerId=2"]).unwrap();
        assert_eq!(
            (c.broker_role, c.broker_id, c.ha_master_address),
            (BrokerRole::Slave, 2, None)
        );
        let (c, _) = load(&["brokerRole=SYNC_MASTER", "haListenPort=30000"]).unwrap();
        assert_eq!((c.broker_role, c.ha_port(3)), (BrokerRole::SyncMaster, 30003));
        let err = load(&["brokerRole=SLAVE"]).unwrap_err().to_string();
        assert!(err.contains("brokerId"), "{err}");
        let err = load(&["brokerId=1"]).unwrap_err().to_string();
        assert!(err.contains("brokerId") && err.contains("SLAVE"), "{err}");
        let (c, _) = load(&["listenPort=20911"]).unwrap();
        assert_eq!(c.ha_listen_port, 20921 + 256, "past every shard port by default");
    }

    #[test]
    fn controller_mode_needs_controllers_an_identity_and_a_lease_above_the_heartbeat() {
        let load = |settings: &[&str]| {
            let owned: Vec<String> = settings.iter().map(|s| s.to_string()).collect();
            BrokerConfig::load(None, &owned)
        };
        let ok = [
            "enableControllerMode=true",
            "controllerAddr=10.0.0.1:9878;10.0.0.2:9878",
            "brokerId=2",
        ];
        let (c, _) = load(&ok).unwrap();
        assert!(c.enable_controller_mode);
        assert_eq!(c.controller_addrs, vec!["10.0.0.1:9878", "10.0.0.2:9878"]);
        assert_eq!((c.master_lease.as_millis(), c.min_in_sync_replicas), (2000, 1));
        for (extra, key) in [
            (&["controllerAddr="][..], "controllerAddr"),
            (&["brokerId=0"][..], "brokerId"),
            (&["brokerRole=SLAVE"][..], "brokerRole"),
            (&["haMasterAddress=10.0.0.3:10912"][..], "haMasterAddress"),
            (
                &["brokerHeartbeatInterval=1000", "masterLeaseMillis=900"][..],
                "masterLeaseMillis",
            ),
            (&["controllerAddr=nohost"][..], "controllerAddr"),
        ] {
            let mut s: Vec<&str> = ok.to_vec();
            s.extend_from_slice(extra);
            let err = load(&s).unwrap_err().to_string();
            assert!(err.contains(key), "{extra:?}: {err}");
        }
    }

    #[test]
    fn invalid_values_name_the_key() {
        for (k, v) in [
            ("flushDiskType", "SOMETIMES"),
            ("listenPort", "70000"),
            ("brokerIP1", "not-an-ip"),
            ("diskMaxUsedSpaceRatio", "99"),
            ("brokerRole", "LEADER"),
            ("haMasterAddress", "no-port"),
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
