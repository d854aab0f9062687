//! One gRPC connection: hyper's HTTP/2 server on the current glommio
//! executor, each request routed by path to a [`MessagingService`] method.
//!
//! Per request: check it is gRPC (POST, `content-type: application/grpc*`,
//! else a plain HTTP 405/415), find the method (else UNIMPLEMENTED), check
//! `grpc-encoding` (identity or gzip, else UNIMPLEMENTED), build the
//! [`RequestContext`], then run the method under the call's deadline.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures_lite::{AsyncRead, AsyncWrite};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use super::body::{self, GrpcBody};
use super::codec::{self, Budget, Compression, FrameDecoder};
use super::context::{RequestContext, RpcMethod};
use super::io::{Activity, HyperIo, LocalExec};
use super::service::{MessagingService, ResponseStream};
use super::status::GrpcStatus;
use super::streaming::Streaming;

/// Limits of one connection. The number of connections is the caller's to
/// bound (it owns the accept loop).
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest request message (after gzip inflation), in bytes. Larger
    /// ones get RESOURCE_EXHAUSTED. Default: RocketMQ's 4 MiB body limit
    /// plus room for properties and the protobuf envelope.
    pub max_message_bytes: usize,
    /// Bytes one connection may hold in partly received request messages,
    /// across all its streams.
    pub max_connection_buffer_bytes: usize,
    /// HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS advertised to the client
    /// (open long polls + Telemetry + in-flight unary calls).
    pub max_concurrent_streams: u32,
    /// HTTP/2 SETTINGS_MAX_HEADER_LIST_SIZE: bound on a request's headers.
    pub max_header_list_bytes: u32,
    /// Close a connection that has sent nothing for this long (`None`:
    /// never). Clients heartbeat every 10 s on their connection, so a
    /// silent one is dead or abandoned; HTTP/2 PINGs count as traffic.
    pub idle_timeout: Option<Duration>,
}

/// Slack over the 4 MiB body limit for user properties, system properties
/// and protobuf framing of a SendMessageRequest.
const MESSAGE_SLACK: usize = 256 * 1024;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 4 * 1024 * 1024 + MESSAGE_SLACK,
            max_connection_buffer_bytes: 64 * 1024 * 1024,
            max_concurrent_streams: 256,
            max_header_list_bytes: 16 * 1024,
            idle_timeout: Some(Duration::from_secs(120)),
        }
    }
}

/// Why a connection ended abnormally (a clean close by the client, or
/// after a graceful shutdown, is `Ok`).
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("HTTP/2: {0}")]
    Http(#[from] hyper::Error),
    #[error("closed after {0:?} without traffic")]
    Idle(Duration),
}

/// Serves gRPC on a connection's byte stream (plain TCP or TLS, see
/// `runtime::tls`) until the client closes it, a protocol error or the
/// idle timeout ends it, or `stop()` — checked every second — says the
/// process shuts down: GOAWAY, no new calls, the calls in flight finish.
/// Run it on the connection's shard; dropping the future closes the
/// connection at once.
pub async fn serve_io<S, IO>(
    io: IO,
    peer: SocketAddr,
    service: Rc<S>,
    limits: &Limits,
    stop: impl Fn() -> bool,
) -> Result<(), ServeError>
where
    S: MessagingService,
    IO: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let svc = ConnService {
        service,
        peer,
        max_message: limits.max_message_bytes,
        budget: Budget::new(limits.max_connection_buffer_bytes),
    };
    let activity = Activity::new();
    let conn = pin!(hyper::server::conn::http2::Builder::new(LocalExec)
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_header_list_size(limits.max_header_list_bytes)
        .serve_connection(HyperIo::new(io, activity.clone()), svc));
    match super::io::drive(conn, &activity, limits.idle_timeout, stop, |c| c.graceful_shutdown()).await {
        Ok(result) => result.map_err(ServeError::Http),
        Err(idle) => {
            log::debug!("grpc {peer}: closing after {idle:?} without traffic");
            Err(ServeError::Idle(idle))
        }
    }
}

/// The per-connection hyper service (cheap to clone into each request).
struct ConnService<S> {
    service: Rc<S>,
    peer: SocketAddr,
    max_message: usize,
    budget: Budget,
}

impl<S> Clone for ConnService<S> {
    fn clone(&self) -> Self {
        ConnService {
            service: self.service.clone(),
            peer: self.peer,
            max_message: self.max_message,
            budget: self.budget.clone(),
        }
    }
}

type LocalResponse = Pin<Box<dyn Future<Output = Result<Response<GrpcBody>, Infallible>>>>;

impl<S: MessagingService> hyper::service::Service<Request<Incoming>> for ConnService<S> {
    type Response = Response<GrpcBody>;
    type Error = Infallible;
    type Future = LocalResponse;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.handle(req).await) })
    }
}

impl<S: MessagingService> ConnService<S> {
    async fn handle(self, req: Request<Incoming>) -> Response<GrpcBody> {
        if req.method() != Method::POST {
            return body::http_error(StatusCode::METHOD_NOT_ALLOWED);
        }
        let grpc_content = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/grpc"));
        if !grpc_content {
            return body::http_error(StatusCode::UNSUPPORTED_MEDIA_TYPE);
        }
        let Some(method) = RpcMethod::from_path(req.uri().path()) else {
            let status = GrpcStatus::unimplemented(format!("unknown method {}", req.uri().path()));
            return body::trailers_only(&status);
        };
        let encoding = req.headers().get("grpc-encoding").and_then(|v| v.to_str().ok());
        let Some(compression) = Compression::from_header(encoding) else {
            let status = GrpcStatus::unimplemented(format!("grpc-encoding {encoding:?} is not supported"));
            let mut r = body::trailers_only(&status);
            r.headers_mut()
                .insert("grpc-accept-encoding", HeaderValue::from_static("gzip,identity"));
            return r;
        };
        let (parts, incoming) = req.into_parts();
        let ctx = RequestContext::from_headers(method, self.peer, parts.headers, Instant::now());
        let decoder = FrameDecoder::new(self.max_message, compression, self.budget.clone());
        self.dispatch(ctx, incoming, decoder).await
    }

    async fn dispatch(&self, ctx: RequestContext, incoming: Incoming, decoder: FrameDecoder) -> Response<GrpcBody> {
        let svc = &*self.service;
        let deadline = ctx.deadline;
        // Unary: one message in, one out, the whole call under the deadline.
        macro_rules! unary {
            ($method:ident) => {{
                let call = async {
                    let req = Streaming::new(incoming, decoder).single().await?;
                    svc.$method(&ctx, req).await
                };
                match within(deadline, call).await {
                    Ok(resp) => body::response(GrpcBody::unary(codec::encode(&resp))),
                    Err(status) => body::trailers_only(&status),
                }
            }};
        }
        match ctx.method {
            RpcMethod::QueryRoute => unary!(query_route),
            RpcMethod::Heartbeat => unary!(heartbeat),
            RpcMethod::SendMessage => unary!(send_message),
            RpcMethod::QueryAssignment => unary!(query_assignment),
            RpcMethod::AckMessage => unary!(ack_message),
            RpcMethod::ForwardMessageToDeadLetterQueue => unary!(forward_message_to_dead_letter_queue),
            RpcMethod::EndTransaction => unary!(end_transaction),
            RpcMethod::NotifyClientTermination => unary!(notify_client_termination),
            RpcMethod::ChangeInvisibleDuration => unary!(change_invisible_duration),
            RpcMethod::ReceiveMessage => {
                let call = async {
                    let req = Streaming::new(incoming, decoder).single().await?;
                    svc.receive_message(&ctx, req).await
                };
                streaming_response(deadline, within(deadline, call).await)
            }
            RpcMethod::Telemetry => {
                let requests = Streaming::new(incoming, decoder);
                let call = svc.telemetry(&ctx, requests);
                streaming_response(deadline, within(deadline, call).await)
            }
        }
    }
}

/// Headers now, then the stream's messages and its end status as trailers.
fn streaming_response<T: prost::Message + 'static>(
    deadline: Option<Instant>,
    started: Result<ResponseStream<T>, GrpcStatus>,
) -> Response<GrpcBody> {
    match started {
        Ok(stream) => {
            let frames = stream.map(|item| item.map(|m| codec::encode(&m))).boxed_local();
            body::response(GrpcBody::streaming(frames, deadline))
        }
        Err(status) => body::trailers_only(&status),
    }
}

/// Runs `call`, or gives DEADLINE_EXCEEDED at `deadline` (dropping `call`).
async fn within<T>(
    deadline: Option<Instant>,
    call: impl Future<Output = Result<T, GrpcStatus>>,
) -> Result<T, GrpcStatus> {
    let Some(deadline) = deadline else {
        return call.await;
    };
    let left = deadline.saturating_duration_since(Instant::now());
    if left == Duration::ZERO {
        return Err(GrpcStatus::deadline_exceeded());
    }
    let expire = async {
        glommio::timer::Timer::new(left).await;
        Err(GrpcStatus::deadline_exceeded())
    };
    futures_lite::future::or(call, expire).await
}
