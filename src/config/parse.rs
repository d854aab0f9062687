//! Reading settings: Java-properties text into key/value pairs, and each
//! RocketMQ key's value into its field, checked as it is read.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::store::FlushMode;

use super::{invalid, parse_delay_levels, BrokerConfig, ConfigError};

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
                "brokerRole" => {
                    c.broker_role = match v {
                        "ASYNC_MASTER" => super::BrokerRole::AsyncMaster,
                        "SYNC_MASTER" => super::BrokerRole::SyncMaster,
                        "SLAVE" => super::BrokerRole::Slave,
                        _ => return Err(invalid(k, v, "expected ASYNC_MASTER, SYNC_MASTER or SLAVE")),
                    }
                }
                "haListenPort" => c.ha_listen_port = port(k, v)?,
                "haMasterAddress" => {
                    let ok = v
                        .rsplit_once(':')
                        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
                    if !ok {
                        return Err(invalid(k, v, "expected host:port"));
                    }
                    c.ha_master_address = Some(v.to_string());
                }
                "haMaxGapNotInSync" => c.ha_max_gap_not_in_sync = positive(k, v)?,
                "slaveReadEnable" => c.slave_read_enable = boolean(k, v)?,
                "enableControllerMode" => c.enable_controller_mode = boolean(k, v)?,
                "restartWhenDemoted" => c.restart_when_demoted = boolean(k, v)?,
                "minInSyncReplicas" => c.min_in_sync_replicas = positive::<usize>(k, v)?.min(16),
                "controllerAddr" => {
                    c.controller_addrs = v
                        .split(';')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect();
                    if c.controller_addrs.iter().any(|a| {
                        a.rsplit_once(':')
                            .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
                    }) {
                        return Err(invalid(k, v, "expected host:port;host:port..."));
                    }
                }
                "brokerHeartbeatInterval" => {
                    c.broker_heartbeat_interval = Duration::from_millis(number::<u64>(k, v)?.clamp(50, 60_000))
                }
                "masterLeaseMillis" => c.master_lease = Duration::from_millis(number::<u64>(k, v)?.clamp(100, 600_000)),
                "haMaxTimeSlaveNotCatchup" => {
                    c.ha_max_time_slave_not_catchup = Duration::from_millis(number::<u64>(k, v)?.clamp(100, 3_600_000))
                }
                "whichBrokerWhenConsumeSlowly" => c.which_broker_when_consume_slowly = number(k, v)?,
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
                "cleanResourceInterval" => {
                    c.clean_resource_interval = Duration::from_millis(number(k, v)?);
                    if c.clean_resource_interval < Duration::from_millis(100) {
                        return Err(invalid(k, v, "must be at least 100 (ms)"));
                    }
                }
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
                "shardIoWorkersOnAllCpus" => c.io_workers_on_all_cpus = boolean(k, v)?,
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
