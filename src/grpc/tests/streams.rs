//! Server-streaming ReceiveMessage and bidirectional Telemetry.

use std::time::{Duration, Instant};

use futures::channel::mpsc;
use futures::SinkExt;
use tonic::{Code, Request};
use tonic_prost::ProstCodec;

use super::{block_on, client, path};
use crate::grpc::pb;
use pb::receive_message_response::Content;
use pb::telemetry_command::Command;

fn receive_request(group: &str, batch: i32) -> pb::ReceiveMessageRequest {
    pb::ReceiveMessageRequest {
        group: Some(pb::Resource {
            resource_namespace: String::new(),
            name: group.into(),
        }),
        message_queue: Some(pb::MessageQueue {
            topic: Some(pb::Resource {
                resource_namespace: String::new(),
                name: "TopicR".into(),
            }),
            id: -1,
            ..Default::default()
        }),
        batch_size: batch,
        invisible_duration: Some(prost_types::Duration { seconds: 30, nanos: 0 }),
        ..Default::default()
    }
}

async fn receive(
    req: Request<pb::ReceiveMessageRequest>,
) -> Result<tonic::Streaming<pb::ReceiveMessageResponse>, tonic::Status> {
    let mut c = client().await;
    c.ready().await.expect("ready");
    let codec: ProstCodec<pb::ReceiveMessageRequest, pb::ReceiveMessageResponse> = ProstCodec::default();
    c.server_streaming(req, path("ReceiveMessage"), codec)
        .await
        .map(tonic::Response::into_inner)
}

#[test]
fn receive_message_streams_status_messages_and_timestamp_then_ends() {
    block_on(async {
        let mut stream = receive(Request::new(receive_request("g", 5))).await.expect("call");
        let mut items = Vec::new();
        while let Some(item) = stream.message().await.expect("no error") {
            items.push(item.content.expect("content"));
        }
        assert_eq!(items.len(), 1 + 5 + 1, "{items:?}");
        assert!(matches!(&items[0], Content::Status(s) if s.code == pb::Code::Ok as i32));
        for (i, item) in items[1..6].iter().enumerate() {
            let Content::Message(m) = item else {
                panic!("message expected, got {item:?}")
            };
            let p = m.system_properties.as_ref().expect("system properties");
            assert_eq!(p.receipt_handle.as_deref(), Some(format!("handle-{i}").as_str()));
            assert_eq!(p.queue_offset, Some(i64::try_from(i).unwrap()));
            assert_eq!(m.topic.as_ref().map(|t| t.name.as_str()), Some("TopicR"));
        }
        assert!(matches!(&items[6], Content::DeliveryTimestamp(t) if t.seconds == 1_700_000_000));
        // The trailers said OK: no error after the end.
        assert!(stream.trailers().await.expect("trailers").is_some());
    });
}

#[test]
fn receive_message_error_before_any_message_is_trailers_only() {
    block_on(async {
        let err = match receive(Request::new(receive_request("missing", 5))).await {
            // tonic reports a trailers-only failure either at the call...
            Err(e) => e,
            // ...or at the first read, depending on timing.
            Ok(mut s) => s.message().await.expect_err("error status"),
        };
        assert_eq!(err.code(), Code::NotFound);
        // Non-ASCII and '%' survive the percent-encoding round trip.
        assert_eq!(err.message(), "no group «missing» (100%)");
    });
}

#[test]
fn a_stream_past_its_deadline_ends_with_deadline_exceeded() {
    block_on(async {
        let mut req = Request::new(receive_request("hang", 1));
        req.set_timeout(Duration::from_millis(300));
        let start = Instant::now();
        let mut stream = receive(req).await.expect("headers arrive at once");
        let err = stream.message().await.expect_err("cut at the deadline");
        assert_eq!(err.code(), Code::DeadlineExceeded);
        assert_eq!(err.message(), "deadline exceeded");
        assert!(start.elapsed() < Duration::from_secs(5));
    });
}

#[test]
fn telemetry_settings_handshake_and_server_pushes() {
    block_on(async {
        let mut c = client().await;
        c.ready().await.expect("ready");
        let (mut tx, rx) = mpsc::channel::<pb::TelemetryCommand>(4);
        let codec: ProstCodec<pb::TelemetryCommand, pb::TelemetryCommand> = ProstCodec::default();
        let mut replies = c
            .streaming(Request::new(rx), path("Telemetry"), codec)
            .await
            .expect("telemetry opens before the client sends anything")
            .into_inner();

        let settings = pb::Settings {
            client_type: Some(pb::ClientType::Producer as i32),
            request_timeout: Some(prost_types::Duration { seconds: 3, nanos: 0 }),
            pub_sub: Some(pb::settings::PubSub::Publishing(pb::Publishing {
                topics: vec![pb::Resource {
                    resource_namespace: String::new(),
                    name: "T".into(),
                }],
                max_body_size: 0,
                validate_message_type: true,
            })),
            ..Default::default()
        };
        tx.send(pb::TelemetryCommand {
            status: None,
            command: Some(Command::Settings(settings)),
        })
        .await
        .expect("send settings");

        let answer = replies.message().await.expect("ok").expect("settings answer");
        assert_eq!(answer.status.map(|s| s.code), Some(pb::Code::Ok as i32));
        let Some(Command::Settings(merged)) = answer.command else {
            panic!("settings expected")
        };
        let Some(pb::settings::PubSub::Publishing(p)) = merged.pub_sub else {
            panic!("publishing expected")
        };
        assert_eq!(p.max_body_size, 4 * 1024 * 1024);

        // Pushed by the server on its own, later.
        let push = replies.message().await.expect("ok").expect("a server command");
        let Some(Command::RecoverOrphanedTransactionCommand(r)) = push.command else {
            panic!("transaction check expected, got {push:?}")
        };
        assert_eq!(r.transaction_id, "tx-1");

        // Both directions stay open: a client report gets a reply.
        tx.send(pb::TelemetryCommand {
            status: None,
            command: Some(Command::VerifyMessageResult(pb::VerifyMessageResult {
                nonce: "n-7".into(),
            })),
        })
        .await
        .expect("send result");
        let reply = replies.message().await.expect("ok").expect("reply");
        assert!(matches!(reply.command, Some(Command::ReconnectEndpointsCommand(r)) if r.nonce == "n-7"));

        // The client half-closes; the server ends the stream with OK.
        drop(tx);
        assert!(replies.message().await.expect("clean end").is_none());
    });
}
