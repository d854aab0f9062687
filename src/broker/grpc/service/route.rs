//! Where a client's messages are: QueryRoute (one broker entry per shard
//! with shard-aware routes) and QueryAssignment (the queues a consumer
//! group receives from).

use std::rc::Rc;

use crate::acl::{Need, Needs};
use crate::grpc::pb;
use crate::grpc::{GrpcStatus, RequestContext};

use crate::broker::grpc::convert::{ok, status};

use super::{accepted_types, name, resource, Inner};

impl Inner {
    /// The broker entries of the route: (name, shard view, gRPC port).
    pub(super) fn entries(&self) -> Vec<(String, Option<u16>, u16)> {
        let cfg = &self.shard.cfg;
        if cfg.shard_aware_routes {
            (0..self.shard.shard_count())
                .map(|k| {
                    (
                        format!("{}-s{k}", cfg.broker_name),
                        Some(k),
                        cfg.grpc_shard_port(k as usize),
                    )
                })
                .collect()
        } else {
            vec![(cfg.broker_name.clone(), None, cfg.grpc_listen_port)]
        }
    }

    pub(super) fn broker(&self, name: &str, port: u16) -> pb::Broker {
        let ip = self.shard.cfg.broker_ip1;
        pb::Broker {
            name: name.to_string(),
            id: 0,
            endpoints: Some(pb::Endpoints {
                scheme: if ip.is_ipv4() {
                    pb::AddressScheme::IPv4 as i32
                } else {
                    pb::AddressScheme::IPv6 as i32
                },
                addresses: vec![pb::Address {
                    host: ip.to_string(),
                    port: port as i32,
                }],
            }),
        }
    }
}

pub(super) async fn query_route(
    me: &Rc<Inner>,
    ctx: &RequestContext,
    req: pb::QueryRouteRequest,
) -> Result<pb::QueryRouteResponse, GrpcStatus> {
    if let Err(s) = me.allowed(ctx, &Needs::none()) {
        return Ok(pb::QueryRouteResponse {
            status: Some(s),
            message_queues: Vec::new(),
        });
    }
    let topic = name(&req.topic).to_string();
    let Some(info) = me.shard.topic(&topic) else {
        return Ok(pb::QueryRouteResponse {
            status: Some(status(pb::Code::TopicNotFound, format!("topic {topic} does not exist"))),
            message_queues: Vec::new(),
        });
    };
    let mut queues = Vec::new();
    for (broker, view, port) in me.entries() {
        let (read, write) = match view {
            Some(k) => info.shard_view(k),
            None => (info.read_queue_nums, info.write_queue_nums),
        };
        for q in 0..read.max(write) {
            let p = match (q < read, q < write) {
                (true, true) => pb::Permission::ReadWrite,
                (true, false) => pb::Permission::Read,
                (false, true) => pb::Permission::Write,
                (false, false) => pb::Permission::None,
            };
            queues.push(pb::MessageQueue {
                topic: Some(resource(&topic)),
                id: q as i32,
                permission: p as i32,
                broker: Some(me.broker(&broker, port)),
                accept_message_types: accepted_types(),
            });
        }
    }
    Ok(pb::QueryRouteResponse {
        status: Some(ok()),
        message_queues: queues,
    })
}

pub(super) async fn query_assignment(
    me: &Rc<Inner>,
    ctx: &RequestContext,
    req: pb::QueryAssignmentRequest,
) -> Result<pb::QueryAssignmentResponse, GrpcStatus> {
    let topic = name(&req.topic).to_string();
    if let Err(s) = me.allowed(
        ctx,
        &Needs::none().topic(topic.as_str(), Need::Sub).group(name(&req.group)),
    ) {
        return Ok(pb::QueryAssignmentResponse {
            status: Some(s),
            assignments: Vec::new(),
        });
    }
    let Some(info) = me.shard.topic(&topic) else {
        return Ok(pb::QueryAssignmentResponse {
            status: Some(status(pb::Code::TopicNotFound, format!("topic {topic} does not exist"))),
            assignments: Vec::new(),
        });
    };
    let fifo = me.fifo(name(&req.group)).await;
    let mut assignments = Vec::new();
    for (broker, view, port) in me.entries() {
        let read = match view {
            Some(k) => info.shard_view(k).0,
            None => info.read_queue_nums,
        };
        if read == 0 || info.perm & crate::broker::metadata::perm::READ == 0 {
            continue;
        }
        let ids: Vec<i32> = if fifo { (0..read as i32).collect() } else { vec![-1] };
        for id in ids {
            assignments.push(pb::Assignment {
                message_queue: Some(pb::MessageQueue {
                    topic: Some(resource(&topic)),
                    id,
                    permission: pb::Permission::ReadWrite as i32,
                    broker: Some(me.broker(&broker, port)),
                    accept_message_types: accepted_types(),
                }),
            });
        }
    }
    let s = if assignments.is_empty() {
        status(pb::Code::Forbidden, format!("topic {topic} has no readable queue"))
    } else {
        ok()
    };
    Ok(pb::QueryAssignmentResponse {
        status: Some(s),
        assignments,
    })
}
