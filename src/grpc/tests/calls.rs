//! Unary calls, errors and limits, over real sockets.

use std::io::{Read, Write};
use std::time::Duration;

use futures::StreamExt;
use tonic::codec::CompressionEncoding;
use tonic::metadata::MetadataValue;
use tonic::{Code, Request};

use super::{block_on, client, path, server, unary, RawCodec, TEST_MAX_MESSAGE};
use crate::grpc::pb;

fn topic(name: &str) -> Option<pb::Resource> {
    Some(pb::Resource {
        resource_namespace: String::new(),
        name: name.into(),
    })
}

fn route_request(name: &str) -> pb::QueryRouteRequest {
    pb::QueryRouteRequest {
        topic: topic(name),
        endpoints: Some(pb::Endpoints {
            scheme: pb::AddressScheme::IPv4 as i32,
            addresses: vec![pb::Address {
                host: "127.0.0.1".into(),
                port: 8081,
            }],
        }),
    }
}

fn send_request(body: Vec<u8>) -> pb::SendMessageRequest {
    pb::SendMessageRequest {
        messages: vec![pb::Message {
            topic: topic("T"),
            system_properties: Some(pb::SystemProperties {
                message_id: "01ABC".into(),
                ..Default::default()
            }),
            body: body.into(),
            ..Default::default()
        }],
    }
}

#[test]
fn unary_query_route_echoes_the_request() {
    block_on(async {
        let mut c = client().await;
        let resp: pb::QueryRouteResponse = unary(&mut c, "QueryRoute", Request::new(route_request("TopicA")))
            .await
            .expect("QueryRoute");
        assert_eq!(resp.status.as_ref().map(|s| s.code), Some(pb::Code::Ok as i32));
        let q = &resp.message_queues[0];
        assert_eq!(q.topic, topic("TopicA"));
        assert_eq!(
            q.broker.as_ref().and_then(|b| b.endpoints.clone()),
            route_request("x").endpoints
        );
        assert_eq!(q.accept_message_types, vec![1, 2]);
    });
}

#[test]
fn metadata_headers_and_deadline_reach_the_handler() {
    block_on(async {
        let mut c = client().await;
        let mut req = Request::new(route_request("TopicA"));
        let md = req.metadata_mut();
        for (k, v) in [
            ("x-mq-client-id", "host@123@0@abc"),
            ("x-mq-language", "JAVA"),
            ("x-mq-client-version", "5.0.7"),
            ("x-mq-protocol", "v2"),
            ("x-mq-request-id", "req-9"),
            ("x-mq-namespace", "ns1"),
            ("x-mq-date-time", "20261130T030000Z"),
            (
                "authorization",
                "MQv2-HMAC-SHA1 Credential=ak, SignedHeaders=x-mq-date-time, Signature=00",
            ),
        ] {
            md.insert(k, MetadataValue::try_from(v).expect("ascii"));
        }
        req.set_timeout(Duration::from_secs(5));
        let resp: pb::QueryRouteResponse = unary(&mut c, "QueryRoute", req).await.expect("QueryRoute");
        let seen = resp.status.expect("status").message;
        assert_eq!(
            seen,
            "client_id=host@123@0@abc;language=JAVA;version=5.0.7;protocol=v2;request_id=req-9;namespace=ns1;\
             date_time=20261130T030000Z;authorization=MQv2-HMAC-SHA1 Credential=ak, SignedHeaders=x-mq-date-time, \
             Signature=00;deadline=yes;peer_ip=127.0.0.1;method=QueryRoute"
        );

        // Without metadata the fields are absent, not empty strings.
        let resp: pb::QueryRouteResponse = unary(&mut c, "QueryRoute", Request::new(route_request("T")))
            .await
            .expect("QueryRoute");
        assert!(resp
            .status
            .expect("status")
            .message
            .starts_with("client_id=-;language=-;"));
    });
}

#[test]
fn many_concurrent_calls_share_one_connection() {
    block_on(async {
        let c = client().await;
        let calls = (0..50).map(|i| {
            let mut c = c.clone();
            async move {
                let resp: pb::QueryRouteResponse =
                    unary(&mut c, "QueryRoute", Request::new(route_request(&format!("T{i}")))).await?;
                Ok::<_, tonic::Status>(resp.message_queues[0].topic.clone())
            }
        });
        let got = futures::future::join_all(calls).await;
        for (i, r) in got.into_iter().enumerate() {
            assert_eq!(r.expect("call"), topic(&format!("T{i}")));
        }
    });
}

#[test]
fn unknown_and_unimplemented_methods_get_grpc_unimplemented() {
    block_on(async {
        let mut c = client().await;
        let err = unary::<_, pb::QueryRouteResponse>(&mut c, "PullMessage", Request::new(route_request("T")))
            .await
            .expect_err("PullMessage is not served");
        assert_eq!(err.code(), Code::Unimplemented);
        // AckMessage is routed but the test service keeps the default.
        let err =
            unary::<_, pb::AckMessageResponse>(&mut c, "AckMessage", Request::new(pb::AckMessageRequest::default()))
                .await
                .expect_err("AckMessage is not implemented by EchoService");
        assert_eq!(err.code(), Code::Unimplemented);
        assert!(err.message().contains("AckMessage"), "{}", err.message());
    });
}

#[test]
fn an_oversized_message_is_refused_and_the_connection_survives() {
    block_on(async {
        let mut c = client().await;
        let err = unary::<_, pb::SendMessageResponse>(
            &mut c,
            "SendMessage",
            Request::new(send_request(vec![7; 2 * TEST_MAX_MESSAGE])),
        )
        .await
        .expect_err("over the limit");
        assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
        assert!(err.message().contains("exceeds the limit"), "{}", err.message());
        // Just under the limit still goes through, on the same connection.
        let resp: pb::SendMessageResponse = unary(
            &mut c,
            "SendMessage",
            Request::new(send_request(vec![7; TEST_MAX_MESSAGE - 100])),
        )
        .await
        .expect("under the limit");
        assert_eq!(resp.entries[0].offset, i64::try_from(TEST_MAX_MESSAGE - 100).unwrap());
        assert_eq!(resp.entries[0].message_id, "01ABC");
    });
}

#[test]
fn gzip_requests_are_inflated_within_the_limit() {
    block_on(async {
        let mut c = client().await.send_compressed(CompressionEncoding::Gzip);
        let resp: pb::SendMessageResponse = unary(&mut c, "SendMessage", Request::new(send_request(vec![1; 100_000])))
            .await
            .expect("gzip send");
        assert_eq!(resp.entries[0].offset, 100_000);
        // Tiny on the wire, too large once inflated.
        let err = unary::<_, pb::SendMessageResponse>(
            &mut c,
            "SendMessage",
            Request::new(send_request(vec![0; 2 * TEST_MAX_MESSAGE])),
        )
        .await
        .expect_err("inflates past the limit");
        assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    });
}

#[test]
fn malformed_protobuf_is_an_internal_error() {
    block_on(async {
        let mut c = client().await;
        c.ready().await.expect("ready");
        // Field 1, wire type 2 (length-delimited), length 100, then 3 bytes.
        let bad = vec![0x0A, 100, 1, 2, 3];
        let err = c
            .unary(Request::new(bad), path("QueryRoute"), RawCodec)
            .await
            .expect_err("malformed");
        assert_eq!(err.code(), Code::Internal);
        assert!(err.message().contains("invalid protobuf"), "{}", err.message());
    });
}

#[test]
fn garbage_on_the_socket_closes_the_connection_without_harm() {
    let addr = server();
    for garbage in [
        &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        &[0xFFu8; 4096][..],
        // A valid preface followed by a frame header announcing 16 MiB.
        &b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\xff\xff\xff\x00\x00\x00\x00\x00\x01"[..],
    ] {
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        let _ = s.write_all(garbage);
        let mut sink = Vec::new();
        // The server answers (at most a GOAWAY) and closes: EOF or reset,
        // not a hang.
        match s.read_to_end(&mut sink) {
            Ok(_) => {}
            Err(e) => assert!(
                !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
                "server kept a garbage connection open: {e}"
            ),
        }
        assert!(sink.len() < 1024, "short answer at most, got {} bytes", sink.len());
    }
    // The server thread is still serving.
    block_on(async {
        let mut c = client().await;
        let _: pb::QueryRouteResponse = unary(&mut c, "QueryRoute", Request::new(route_request("T")))
            .await
            .expect("server still up");
    });
}

/// Round-trip latency of a small unary call over loopback, one call at a
/// time, and throughput with 64 in flight on one connection. Numbers, not
/// assertions: `cargo test --release --lib grpc::tests::calls::latency -- --ignored --nocapture`.
#[test]
#[ignore]
fn latency_of_unary_calls() {
    block_on(async {
        let mut c = client().await;
        let mut samples = Vec::with_capacity(5000);
        for _ in 0..5000 {
            let start = std::time::Instant::now();
            let _: pb::QueryRouteResponse = unary(&mut c, "QueryRoute", Request::new(route_request("T")))
                .await
                .expect("call");
            samples.push(start.elapsed());
        }
        samples.sort();
        let at = |q: f64| samples[((samples.len() as f64) * q) as usize];
        println!(
            "sequential QueryRoute: p50 {:?}, p99 {:?}, max {:?}",
            at(0.5),
            at(0.99),
            samples[samples.len() - 1]
        );

        let start = std::time::Instant::now();
        let total = 20_000;
        let calls = futures::stream::iter(0..total).map(|_| {
            let mut c = c.clone();
            async move {
                let r: Result<pb::QueryRouteResponse, _> =
                    unary(&mut c, "QueryRoute", Request::new(route_request("T"))).await;
                r.expect("call");
            }
        });
        futures::StreamExt::buffer_unordered(calls, 64)
            .collect::<Vec<()>>()
            .await;
        let took = start.elapsed();
        println!(
            "64 in flight: {total} calls in {took:?} = {:.0} calls/s",
            total as f64 / took.as_secs_f64()
        );
    });
}
