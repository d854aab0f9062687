//! The service the transport tests talk to: it echoes what reached it so
//! the client side can check it, and misbehaves on request (by group name)
//! to exercise error paths.

use std::time::Duration;

use futures::channel::mpsc;
use futures::{SinkExt, StreamExt};

use crate::grpc::pb;
use crate::grpc::{GrpcCode, GrpcStatus, MessagingService, RequestContext, ResponseStream, Streaming};

/// Implements every RPC the tests use; the others keep the trait's
/// UNIMPLEMENTED default (AckMessage is left out on purpose).
pub struct EchoService;

/// A `pb::Status` with OK and a message.
fn ok(message: impl Into<String>) -> Option<pb::Status> {
    Some(pb::Status {
        code: pb::Code::Ok as i32,
        message: message.into(),
    })
}

/// The metadata that reached the handler, as `key=value;…`.
fn describe(ctx: &RequestContext) -> String {
    let v = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
    format!(
        "client_id={};language={};version={};protocol={};request_id={};namespace={};date_time={};\
         authorization={};deadline={};peer_ip={};method={}",
        v(&ctx.client_id),
        v(&ctx.language),
        v(&ctx.client_version),
        v(&ctx.protocol),
        v(&ctx.request_id),
        v(&ctx.namespace),
        v(&ctx.date_time),
        v(&ctx.authorization),
        if ctx.deadline.is_some() { "yes" } else { "no" },
        ctx.peer.ip(),
        ctx.method.name(),
    )
}

fn group_name(group: &Option<pb::Resource>) -> &str {
    group.as_ref().map_or("", |g| g.name.as_str())
}

impl MessagingService for EchoService {
    async fn query_route(
        &self,
        ctx: &RequestContext,
        req: pb::QueryRouteRequest,
    ) -> Result<pb::QueryRouteResponse, GrpcStatus> {
        let queue = pb::MessageQueue {
            topic: req.topic,
            id: 0,
            permission: pb::Permission::ReadWrite as i32,
            broker: Some(pb::Broker {
                name: "broker-a".into(),
                id: 0,
                endpoints: req.endpoints,
            }),
            accept_message_types: vec![pb::MessageType::Normal as i32, pb::MessageType::Fifo as i32],
        };
        Ok(pb::QueryRouteResponse {
            status: ok(describe(ctx)),
            message_queues: vec![queue],
        })
    }

    async fn heartbeat(
        &self,
        _ctx: &RequestContext,
        req: pb::HeartbeatRequest,
    ) -> Result<pb::HeartbeatResponse, GrpcStatus> {
        match group_name(&req.group) {
            "sleep" => glommio::timer::sleep(Duration::from_secs(10)).await,
            "slow" => glommio::timer::sleep(Duration::from_millis(1500)).await,
            _ => {}
        }
        Ok(pb::HeartbeatResponse { status: ok("alive") })
    }

    /// One entry per message: its id, and its body length as the offset.
    async fn send_message(
        &self,
        _ctx: &RequestContext,
        req: pb::SendMessageRequest,
    ) -> Result<pb::SendMessageResponse, GrpcStatus> {
        let entries = req
            .messages
            .iter()
            .map(|m| pb::SendResultEntry {
                status: ok(""),
                message_id: m
                    .system_properties
                    .as_ref()
                    .map(|p| p.message_id.clone())
                    .unwrap_or_default(),
                offset: i64::try_from(m.body.len()).unwrap_or(-1),
                ..Default::default()
            })
            .collect();
        Ok(pb::SendMessageResponse {
            status: ok(""),
            entries,
        })
    }

    /// group "missing": trailers-only NOT_FOUND; "hang": a stream that never
    /// ends; otherwise status, `batch_size` messages, delivery timestamp.
    async fn receive_message(
        &self,
        _ctx: &RequestContext,
        req: pb::ReceiveMessageRequest,
    ) -> Result<ResponseStream<pb::ReceiveMessageResponse>, GrpcStatus> {
        use pb::receive_message_response::Content;
        match group_name(&req.group) {
            "missing" => return Err(GrpcStatus::new(GrpcCode::NotFound, "no group «missing» (100%)")),
            "hang" => return Ok(futures::stream::pending().boxed_local()),
            _ => {}
        }
        let topic = req.message_queue.and_then(|q| q.topic);
        let mut items = vec![Content::Status(pb::Status {
            code: pb::Code::Ok as i32,
            message: String::new(),
        })];
        for i in 0..req.batch_size.max(0) {
            items.push(Content::Message(pb::Message {
                topic: topic.clone(),
                system_properties: Some(pb::SystemProperties {
                    message_id: format!("msg-{i}"),
                    receipt_handle: Some(format!("handle-{i}")),
                    delivery_attempt: Some(1),
                    queue_offset: Some(i64::from(i)),
                    ..Default::default()
                }),
                body: vec![b'x'; 100].into(),
                ..Default::default()
            }));
        }
        items.push(Content::DeliveryTimestamp(prost_types::Timestamp {
            seconds: 1_700_000_000,
            nanos: 0,
        }));
        let responses = items
            .into_iter()
            .map(|c| Ok(pb::ReceiveMessageResponse { content: Some(c) }));
        Ok(futures::stream::iter(responses).boxed_local())
    }

    /// Answers settings with OK + merged settings, then pushes a
    /// transaction check 50 ms later; answers each VerifyMessageResult with
    /// a ReconnectEndpointsCommand of the same nonce; ends when the client
    /// half-closes.
    async fn telemetry(
        &self,
        _ctx: &RequestContext,
        mut requests: Streaming<pb::TelemetryCommand>,
    ) -> Result<ResponseStream<pb::TelemetryCommand>, GrpcStatus> {
        use pb::telemetry_command::Command;
        let (mut tx, rx) = mpsc::channel::<Result<pb::TelemetryCommand, GrpcStatus>>(8);
        glommio::spawn_local(async move {
            while let Some(cmd) = requests.next().await {
                let reply = match cmd {
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                    Ok(pb::TelemetryCommand {
                        command: Some(Command::Settings(mut settings)),
                        ..
                    }) => {
                        if let Some(pb::settings::PubSub::Publishing(p)) = settings.pub_sub.as_mut() {
                            p.max_body_size = 4 * 1024 * 1024;
                        }
                        let answer = pb::TelemetryCommand {
                            status: ok("settings accepted"),
                            command: Some(Command::Settings(settings)),
                        };
                        if tx.send(Ok(answer)).await.is_err() {
                            return;
                        }
                        glommio::timer::sleep(Duration::from_millis(50)).await;
                        Command::RecoverOrphanedTransactionCommand(pb::RecoverOrphanedTransactionCommand {
                            message: None,
                            transaction_id: "tx-1".into(),
                        })
                    }
                    Ok(pb::TelemetryCommand {
                        command: Some(Command::VerifyMessageResult(r)),
                        ..
                    }) => Command::ReconnectEndpointsCommand(pb::ReconnectEndpointsCommand { nonce: r.nonce }),
                    Ok(_) => continue,
                };
                let push = pb::TelemetryCommand {
                    status: None,
                    command: Some(reply),
                };
                if tx.send(Ok(push)).await.is_err() {
                    return;
                }
            }
        })
        .detach();
        Ok(rx.boxed_local())
    }
}
