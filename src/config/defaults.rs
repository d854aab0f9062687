//! The defaults of every broker setting (RocketMQ's where it has the key).

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use crate::store::FlushMode;

use super::{parse_delay_levels, BrokerConfig, DEFAULT_DELAY_LEVELS};

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
            io_workers_on_all_cpus: false,
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
