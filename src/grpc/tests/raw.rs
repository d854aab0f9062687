//! The wire shape of responses, checked with a raw HTTP/2 client (h2):
//! trailers-only errors, trailers after data, plain HTTP errors for
//! non-gRPC requests, and what tonic will not send — a deadline the client
//! does not enforce itself, truncated frames, two messages on a unary call.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};

use super::{block_on, server, STOP_PORTS, TEST_IDLE};
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

type Connection = tokio::task::JoinHandle<Result<(), h2::Error>>;

/// A raw HTTP/2 connection: its request handle, its driver task (ends when
/// the server closes the connection) and our local port.
async fn h2_connect() -> (h2::client::SendRequest<Bytes>, Connection, u16) {
    let tcp = tokio::net::TcpStream::connect(server()).await.expect("connect");
    let port = tcp.local_addr().expect("local addr").port();
    let (client, conn) = h2::client::handshake(tcp).await.expect("h2 handshake");
    (client, tokio::spawn(conn), port)
}

fn grpc_request(method: &str, rpc: &str, headers: &[(&str, &str)]) -> http::Request<()> {
    let mut req = http::Request::builder()
        .method(method)
        .uri(format!("http://{}/apache.rocketmq.v2.MessagingService/{rpc}", server()))
        .header("te", "trailers");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.body(()).expect("request")
}

async fn raw_call(method: &str, rpc: &str, headers: &[(&str, &str)], body: Vec<u8>) -> RawResponse {
    let (client, _conn, _) = h2_connect().await;
    let mut client = client.ready().await.expect("ready");
    let (resp, mut send) = client
        .send_request(grpc_request(method, rpc, headers), false)
        .expect("send request");
    send.send_data(Bytes::from(body), true).expect("send body");
    read_response(resp).await
}

async fn read_response(resp: h2::client::ResponseFuture) -> RawResponse {
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

#[test]
fn a_silent_connection_is_closed_after_the_idle_timeout() {
    block_on(async {
        let (_client, conn, _) = h2_connect().await;
        let start = Instant::now();
        let ended = tokio::time::timeout(Duration::from_secs(15), conn).await;
        let took = start.elapsed();
        assert!(ended.is_ok(), "connection still open after 15 s");
        assert!(
            took >= TEST_IDLE - Duration::from_millis(200),
            "closed too early: {took:?}"
        );
    });
}

#[test]
fn graceful_shutdown_finishes_calls_in_flight_then_closes() {
    block_on(async {
        let (client, conn, port) = h2_connect().await;
        let mut client = client.ready().await.expect("ready");
        // A call the handler takes 1.5 s to answer.
        let (resp, mut send) = client
            .send_request(grpc_request("POST", "Heartbeat", &[GRPC]), false)
            .expect("send request");
        send.send_data(Bytes::from(heartbeat("slow")), true).expect("send body");
        tokio::time::sleep(Duration::from_millis(100)).await;
        STOP_PORTS
            .lock()
            .expect("lock")
            .get_or_insert_with(Default::default)
            .insert(port);
        // The call in flight still completes with OK...
        let r = read_response(resp).await;
        assert_eq!(r.grpc_status(), Some("0"), "{:?}", r.headers);
        // ...and then the server closes the connection.
        let ended = tokio::time::timeout(Duration::from_secs(5), conn).await;
        assert!(ended.is_ok(), "connection not closed after the graceful shutdown");
    });
}
