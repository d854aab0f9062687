//! The wire shape of responses, checked with a raw HTTP/2 client (h2):
//! trailers-only errors, trailers after data, plain HTTP errors for
//! non-gRPC requests, and what tonic will not send — a deadline the client
//! does not enforce itself, truncated frames, two messages on a unary call.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};

use super::{block_on, server};
use crate::grpc::codec;
use crate::grpc::pb;

struct RawResponse {
    status: StatusCode,
    headers: HeaderMap,
    /// The response ended with its HEADERS frame (trailers-only).
    ended_in_headers: bool,
    data: Vec<u8>,
    trailers: Option<HeaderMap>,
}

impl RawResponse {
    /// `grpc-status`, from the trailers or a trailers-only header block.
    fn grpc_status(&self) -> Option<&str> {
        self.trailers
            .as_ref()
            .and_then(|t| t.get("grpc-status"))
            .or_else(|| self.headers.get("grpc-status"))
            .and_then(|v| v.to_str().ok())
    }
}

async fn raw_call(method: &str, rpc: &str, headers: &[(&str, &str)], body: Vec<u8>) -> RawResponse {
    let tcp = tokio::net::TcpStream::connect(server()).await.expect("connect");
    let (client, conn) = h2::client::handshake(tcp).await.expect("h2 handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut client = client.ready().await.expect("ready");
    let mut req = http::Request::builder()
        .method(method)
        .uri(format!("http://{}/apache.rocketmq.v2.MessagingService/{rpc}", server()))
        .header("te", "trailers");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(()).expect("request");
    let (resp, mut send) = client.send_request(req, false).expect("send request");
    send.send_data(Bytes::from(body), true).expect("send body");
    let resp = resp.await.expect("response");
    let (parts, mut body) = resp.into_parts();
    let ended_in_headers = body.is_end_stream();
    let mut data = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.expect("data");
        let _ = body.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await.expect("trailers");
    RawResponse {
        status: parts.status,
        headers: parts.headers,
        ended_in_headers,
        data,
        trailers,
    }
}

const GRPC: (&str, &str) = ("content-type", "application/grpc");

fn heartbeat(group: &str) -> Vec<u8> {
    codec::encode(&pb::HeartbeatRequest {
        group: Some(pb::Resource {
            resource_namespace: String::new(),
            name: group.into(),
        }),
        client_type: pb::ClientType::Producer as i32,
    })
    .to_vec()
}

#[test]
fn success_is_headers_data_then_status_trailers() {
    block_on(async {
        let r = raw_call("POST", "Heartbeat", &[GRPC], heartbeat("g")).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.headers["content-type"], "application/grpc");
        assert!(!r.headers.contains_key("grpc-status"));
        let trailers = r.trailers.as_ref().expect("trailers");
        assert_eq!(trailers["grpc-status"], "0");
        // One length-prefixed message.
        assert_eq!(r.data[0], 0);
        let len = u32::from_be_bytes([r.data[1], r.data[2], r.data[3], r.data[4]]) as usize;
        assert_eq!(r.data.len(), codec::PREFIX_LEN + len);
        let msg: pb::HeartbeatResponse = prost::Message::decode(&r.data[5..]).expect("decodes");
        assert_eq!(msg.status.map(|s| s.message), Some("alive".to_string()));
    });
}

#[test]
fn an_early_error_is_trailers_only_with_a_percent_encoded_message() {
    let req = pb::ReceiveMessageRequest {
        group: Some(pb::Resource {
            resource_namespace: String::new(),
            name: "missing".into(),
        }),
        ..Default::default()
    };
    block_on(async {
        let r = raw_call("POST", "ReceiveMessage", &[GRPC], codec::encode(&req).to_vec()).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.ended_in_headers, "trailers-only: one HEADERS frame with END_STREAM");
        assert!(r.data.is_empty() && r.trailers.is_none());
        assert_eq!(r.headers["content-type"], "application/grpc");
        assert_eq!(r.headers["grpc-status"], "5");
        assert_eq!(r.headers["grpc-message"], "no group %C2%ABmissing%C2%BB (100%25)");
    });
}

#[test]
fn the_server_enforces_grpc_timeout_on_unary_calls() {
    block_on(async {
        let start = Instant::now();
        let r = raw_call(
            "POST",
            "Heartbeat",
            &[GRPC, ("grpc-timeout", "300m")],
            heartbeat("sleep"),
        )
        .await;
        let took = start.elapsed();
        assert_eq!(r.grpc_status(), Some("4"), "{:?}", r.headers);
        assert!(
            took >= Duration::from_millis(250) && took < Duration::from_secs(5),
            "{took:?}"
        );
    });
}

#[test]
fn malformed_requests_get_clean_grpc_errors() {
    block_on(async {
        // The body ends inside a frame: 100 bytes announced, 3 sent.
        let r = raw_call("POST", "QueryRoute", &[GRPC], vec![0, 0, 0, 0, 100, 1, 2, 3]).await;
        assert_eq!(r.grpc_status(), Some("13"));
        // Two messages on a unary call.
        let mut two = heartbeat("a");
        two.extend(heartbeat("b"));
        let r = raw_call("POST", "Heartbeat", &[GRPC], two).await;
        assert_eq!(r.grpc_status(), Some("3"));
        // No message at all.
        let r = raw_call("POST", "Heartbeat", &[GRPC], Vec::new()).await;
        assert_eq!(r.grpc_status(), Some("13"));
        // A compression we do not speak.
        let r = raw_call(
            "POST",
            "Heartbeat",
            &[GRPC, ("grpc-encoding", "snappy")],
            heartbeat("g"),
        )
        .await;
        assert_eq!(r.grpc_status(), Some("12"));
        assert_eq!(r.headers["grpc-accept-encoding"], "gzip,identity");
        // Compressed flag without grpc-encoding.
        let mut flagged = heartbeat("g");
        flagged[0] = 1;
        let r = raw_call("POST", "Heartbeat", &[GRPC], flagged).await;
        assert_eq!(r.grpc_status(), Some("13"));
    });
}

#[test]
fn non_grpc_requests_get_plain_http_errors() {
    block_on(async {
        let r = raw_call("GET", "QueryRoute", &[GRPC], Vec::new()).await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
        let r = raw_call(
            "POST",
            "QueryRoute",
            &[("content-type", "application/json")],
            b"{}".to_vec(),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    });
}
