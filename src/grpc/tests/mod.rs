//! End-to-end tests of the gRPC transport: a real gRPC client (tonic, on a
//! tokio runtime in the test's own thread) against [`echo::EchoService`]
//! served by `serve_io` on a glommio executor, over real sockets on
//! 127.0.0.1:0.
//!
//! One server thread serves every test of the binary (glommio executors
//! each take locked memory; one is enough). Its limits are small so that
//! the oversized-message tests stay cheap.

mod calls;
mod echo;
mod raw;
mod streams;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use bytes::{Buf, BufMut};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};
use tonic_prost::ProstCodec;

use super::server::{serve_io, Limits};

/// The server's request message limit in these tests.
pub const TEST_MAX_MESSAGE: usize = 1 << 20;

/// The server's idle timeout in these tests.
pub const TEST_IDLE: Duration = Duration::from_secs(2);

/// Client ports whose connection the test server is told to shut down
/// gracefully (the per-connection stand-in for the process's SHUTDOWN).
pub static STOP_PORTS: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

fn stop_requested(peer: SocketAddr) -> bool {
    STOP_PORTS
        .lock()
        .map(|s| s.as_ref().is_some_and(|s| s.contains(&peer.port())))
        .unwrap_or(false)
}

/// Address of the shared test server, started on first use.
pub fn server() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            crate::runtime::run_on_executor("grpc-test", move || async move {
                let listener = match glommio::net::TcpListener::bind("127.0.0.1:0") {
                    Ok(l) => l,
                    Err(e) => panic!("bind 127.0.0.1:0: {e}"),
                };
                let addr = listener.local_addr().expect("local addr");
                tx.send(addr).expect("test waits for the address");
                let service = Rc::new(echo::EchoService);
                let limits = Limits {
                    max_message_bytes: TEST_MAX_MESSAGE,
                    idle_timeout: Some(TEST_IDLE),
                    ..Limits::default()
                };
                loop {
                    match listener.accept().await {
                        Ok(stream) => {
                            let (service, limits) = (service.clone(), limits.clone());
                            let peer = stream.peer_addr().expect("peer");
                            glommio::spawn_local(async move {
                                let stop = move || stop_requested(peer);
                                if let Err(e) = serve_io(stream, peer, service, &limits, stop).await {
                                    log::debug!("test grpc connection ended: {e}");
                                }
                            })
                            .detach();
                        }
                        Err(e) => panic!("accept: {e}"),
                    }
                }
            })
        });
        rx.recv_timeout(Duration::from_secs(30)).expect("test server started")
    })
}

/// Runs a client future on a fresh single-threaded tokio runtime.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

/// A new HTTP/2 connection to the test server.
pub async fn client() -> tonic::client::Grpc<Channel> {
    let channel = Endpoint::from_shared(format!("http://{}", server()))
        .expect("endpoint")
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .expect("connect to the test server");
    tonic::client::Grpc::new(channel)
}

pub fn path(method: &str) -> PathAndQuery {
    PathAndQuery::try_from(format!("/apache.rocketmq.v2.MessagingService/{method}")).expect("path")
}

/// One unary call with prost messages.
pub async fn unary<Req, Resp>(
    c: &mut tonic::client::Grpc<Channel>,
    method: &str,
    req: tonic::Request<Req>,
) -> Result<Resp, tonic::Status>
where
    Req: prost::Message + Send + Sync + 'static,
    Resp: prost::Message + Default + Send + Sync + 'static,
{
    c.ready().await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let codec: ProstCodec<Req, Resp> = ProstCodec::default();
    c.unary(req, path(method), codec).await.map(tonic::Response::into_inner)
}

/// A codec that sends and receives raw message bytes, to put malformed
/// protobuf on the wire.
#[derive(Clone, Copy, Default)]
pub struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        let mut out = vec![0; src.remaining()];
        src.copy_to_slice(&mut out);
        Ok(Some(out))
    }
}
