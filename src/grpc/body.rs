//! The response side of a call: an HTTP/2 response body of length-prefixed
//! messages followed by the `grpc-status` trailers.
//!
//! Shapes of a response (grpc/doc/PROTOCOL-HTTP2.md):
//! * success or late failure: HEADERS(200, content-type) · DATA* ·
//!   HEADERS(grpc-status, grpc-message, END_STREAM);
//! * failure before any message ("trailers-only"): one HEADERS frame with
//!   200, content-type and grpc-status, END_STREAM — [`trailers_only`].
//!
//! A streaming body polls the service's stream only when hyper asks for
//! the next frame, i.e. when HTTP/2 flow control lets it send: a slow
//! client slows the producer instead of growing a buffer.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures::stream::LocalBoxStream;
use glommio::timer::Timer;
use http::{HeaderMap, HeaderValue, Response};
use http_body::{Body, Frame};

use super::status::GrpcStatus;

/// Encoded messages (each with its 5-byte prefix) or the status to end with.
pub(crate) type FrameStream = LocalBoxStream<'static, Result<Bytes, GrpcStatus>>;

/// A gRPC response body. `!Send`: it lives on the connection's shard.
pub struct GrpcBody {
    /// A single message (unary) sent before `stream` is polled.
    first: Option<Bytes>,
    stream: Option<FrameStream>,
    /// Fires at the call's deadline while `stream` is open.
    deadline: Option<Pin<Box<Timer>>>,
    /// The status to send as trailers once the data is over.
    end: Option<GrpcStatus>,
    finished: bool,
}

impl GrpcBody {
    /// An empty, already finished body (the trailers-only case).
    fn empty() -> Self {
        GrpcBody {
            first: None,
            stream: None,
            deadline: None,
            end: None,
            finished: true,
        }
    }

    /// One message, then `grpc-status: 0`.
    pub(crate) fn unary(message: Bytes) -> Self {
        GrpcBody {
            first: Some(message),
            stream: None,
            deadline: None,
            end: Some(GrpcStatus::ok()),
            finished: false,
        }
    }

    /// The stream's messages, then `grpc-status: 0` when it ends, or its
    /// error status; DEADLINE_EXCEEDED if `deadline` passes first.
    pub(crate) fn streaming(stream: FrameStream, deadline: Option<Instant>) -> Self {
        let deadline = deadline.map(|d| Box::pin(Timer::new(d.saturating_duration_since(Instant::now()))));
        GrpcBody {
            first: None,
            stream: Some(stream),
            deadline,
            end: None,
            finished: false,
        }
    }

    fn trailers(&mut self, status: &GrpcStatus) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.stream = None;
        self.deadline = None;
        self.finished = true;
        let mut map = HeaderMap::new();
        status.write_to(&mut map);
        Poll::Ready(Some(Ok(Frame::trailers(map))))
    }
}

impl Body for GrpcBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(None);
        }
        if let Some(first) = this.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        if let Some(timer) = this.deadline.as_mut() {
            if timer.as_mut().poll(cx).is_ready() {
                // Dropping the stream tells the service the call is over.
                return this.trailers(&GrpcStatus::deadline_exceeded());
            }
        }
        if let Some(stream) = this.stream.as_mut() {
            match stream.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => return Poll::Ready(Some(Ok(Frame::data(frame)))),
                Poll::Ready(Some(Err(status))) => return this.trailers(&status),
                Poll::Ready(None) => return this.trailers(&GrpcStatus::ok()),
            }
        }
        let end = this.end.take().unwrap_or_else(GrpcStatus::ok);
        this.trailers(&end)
    }

    fn is_end_stream(&self) -> bool {
        self.finished
    }
}

/// `content-type` of every response we send.
const CONTENT_TYPE: &str = "application/grpc";

/// A 200 response whose body streams messages (headers go out at once).
pub(crate) fn response(body: GrpcBody) -> Response<GrpcBody> {
    let mut r = Response::new(body);
    r.headers_mut()
        .insert(http::header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    r
}

/// A failure before any message: status in the headers, no body.
pub(crate) fn trailers_only(status: &GrpcStatus) -> Response<GrpcBody> {
    let mut r = response(GrpcBody::empty());
    status.write_to(r.headers_mut());
    r
}

/// A non-gRPC request (wrong method or content type): a plain HTTP error,
/// as the gRPC spec asks (e.g. 415 for a content type we do not speak).
pub(crate) fn http_error(code: http::StatusCode) -> Response<GrpcBody> {
    let mut r = Response::new(GrpcBody::empty());
    *r.status_mut() = code;
    r
}
