//! The addresses a broker listens on: each shard's remoting and gRPC
//! listeners, the REST port, and the whole plan checked before start-up.

use std::net::SocketAddr;

use crate::config::BrokerConfig;
use crate::runtime::mesh::View;
use crate::runtime::ports;

/// The broker listeners shard `k` binds, each with what it is for: the
/// main port and the VIP port (shared by every shard, SO_REUSEPORT) and
/// the shard's own port.
pub(super) fn shard_listeners(cfg: &BrokerConfig, k: u16) -> Vec<(SocketAddr, View, String)> {
    let ip = cfg.broker_ip1;
    let mut v = vec![(
        SocketAddr::new(ip, cfg.listen_port),
        View::Main,
        "broker port, listenPort".to_string(),
    )];
    if cfg.vip_channel_enable && cfg.listen_port > 2 {
        v.push((
            SocketAddr::new(ip, cfg.listen_port - 2),
            View::Main,
            "VIP channel, listenPort - 2 (vipChannelEnable=false turns it off)".into(),
        ));
    }
    v.push((
        SocketAddr::new(ip, cfg.shard_port(k as usize)),
        View::Shard(k),
        format!("shard {k} port, shardListenPortBase + {k}"),
    ));
    v
}

/// The gRPC listeners of shard `k`: the access point (shared by every
/// shard) and, with shard-aware routes, the shard's own; none when
/// `grpcListenPort=0`.
pub(super) fn grpc_listeners(cfg: &BrokerConfig, k: u16) -> Vec<(SocketAddr, View, String)> {
    if cfg.grpc_listen_port == 0 {
        return Vec::new();
    }
    let ip = cfg.broker_ip1;
    let mut v = vec![(
        SocketAddr::new(ip, cfg.grpc_listen_port),
        View::Main,
        "gRPC (5.x clients), grpcListenPort (0 turns it off)".to_string(),
    )];
    if cfg.shard_aware_routes {
        v.push((
            SocketAddr::new(ip, cfg.grpc_shard_port(k as usize)),
            View::Shard(k),
            format!("shard {k} gRPC port, grpcShardPortBase + {k}"),
        ));
    }
    v
}

/// The REST API's listener (every shard accepts on it), unless
/// `httpListenPort=0`.
pub(super) fn http_listener(cfg: &BrokerConfig) -> Option<(SocketAddr, String)> {
    (cfg.http_listen_port != 0).then(|| {
        (
            SocketAddr::new(cfg.broker_ip1, cfg.http_listen_port),
            "REST API and console, httpListenPort (0 turns it off)".to_string(),
        )
    })
}

/// Every address the broker will listen on, for the up-front check: the
/// shards' listeners (the shared ones once), the name server, metrics.
pub(super) fn listen_plan(cfg: &BrokerConfig, shards: u16) -> Vec<ports::Wanted> {
    let mut v: Vec<ports::Wanted> = Vec::new();
    for k in 0..shards {
        for (addr, _, what) in shard_listeners(cfg, k).into_iter().chain(grpc_listeners(cfg, k)) {
            if !v.iter().any(|w| w.addr == addr) {
                v.push(ports::Wanted { addr, what });
            }
        }
    }
    if let Some((addr, what)) = http_listener(cfg) {
        v.push(ports::Wanted { addr, what });
    }
    if cfg.embedded_namesrv {
        v.push(ports::Wanted {
            addr: SocketAddr::new(cfg.namesrv_bind_ip(), cfg.namesrv_listen_port),
            what: "embedded name server, namesrvListenPort".into(),
        });
    }
    if cfg.metrics_port != 0 {
        v.push(ports::Wanted {
            addr: SocketAddr::new(cfg.broker_ip1, cfg.metrics_port),
            what: "Prometheus metrics, metricsPort (0 turns it off)".into(),
        });
    }
    v
}
