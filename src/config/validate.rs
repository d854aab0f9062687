//! The checks across settings once all are read, and the values derived
//! from others (shard and gRPC port bases, name-server address, absolute
//! data directory).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use super::{invalid, BrokerConfig, ConfigError};

impl BrokerConfig {
    pub(super) fn validate(&mut self) -> Result<(), ConfigError> {
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
        if self.ha_listen_port == 0 {
            self.ha_listen_port = self.shard_listen_port_base.saturating_add(256);
        }
        let slave = self.broker_role == super::BrokerRole::Slave;
        if self.enable_controller_mode {
            if self.controller_addrs.is_empty() {
                return Err(invalid("controllerAddr", "", "required with enableControllerMode=true"));
            }
            if slave {
                return Err(invalid(
                    "brokerRole",
                    "SLAVE",
                    "with enableControllerMode the controller assigns roles: brokerRole says how a master \
                     acknowledges (SYNC_MASTER or ASYNC_MASTER)",
                ));
            }
            if self.broker_id == 0 {
                return Err(invalid(
                    "brokerId",
                    "0",
                    "with enableControllerMode brokerId is the broker's identity in its group and is above 0 \
                     (the master registers with the name servers as 0)",
                ));
            }
            if self.ha_master_address.is_some() {
                return Err(invalid(
                    "haMasterAddress",
                    "",
                    "the controller names the master in controller mode",
                ));
            }
            if self.master_lease <= self.broker_heartbeat_interval {
                return Err(invalid(
                    "masterLeaseMillis",
                    &self.master_lease.as_millis().to_string(),
                    "must be above brokerHeartbeatInterval (each heartbeat renews it)",
                ));
            }
        } else if slave && self.broker_id == 0 {
            return Err(invalid("brokerId", "0", "a SLAVE needs a brokerId above 0"));
        }
        if !slave && self.broker_id != 0 && !self.enable_controller_mode {
            return Err(invalid(
                "brokerId",
                &self.broker_id.to_string(),
                "a master's brokerId is 0 (set brokerRole=SLAVE for a slave)",
            ));
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
