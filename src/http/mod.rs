//! HTTP/1.1 on glommio: hyper 1.x's HTTP/1 server on the shard that
//! accepted the connection (the same glue as the gRPC transport,
//! [`crate::grpc::io`]), for the REST API, the web console and `/metrics`.
//!
//! A [`Handler`] turns a request with its body already read (at most
//! [`Limits::max_body_bytes`]; a larger one gets 413 without being read
//! further) into a response with a whole body. Bodies of this API are
//! small (JSON, a page, a metrics text), so nothing streams.
//!
//! Bounds of one connection: headers at most [`Limits::max_header_bytes`]
//! (else hyper answers 431), one request at a time (HTTP/1 keep-alive, no
//! pipelining beyond hyper's buffer), closed after
//! [`Limits::idle_timeout`] without a byte. The number of connections is
//! the accept loop's to bound.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use futures_lite::{AsyncRead, AsyncWrite};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;

use crate::grpc::io::{Activity, HyperIo};

#[derive(Clone, Debug)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_header_bytes: usize,
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 512 * 1024,
            max_header_bytes: 64 * 1024,
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// A request as handlers see it: head and the whole body.
pub struct Req {
    pub head: http::request::Parts,
    pub body: Bytes,
    pub peer: SocketAddr,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The query string's value of `key` (percent-decoded), if given.
    pub fn query(&self, key: &str) -> Option<String> {
        let q = self.head.uri.query()?;
        q.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k).as_deref() == Some(key)).then(|| percent_decode(v).unwrap_or_default())
        })
    }
}

pub type Resp = Response<Full<Bytes>>;

/// What serves the requests of a connection.
pub trait Handler: 'static {
    fn handle(&self, req: Req) -> impl Future<Output = Resp>;
}

/// A response with `body` of `content_type`.
pub fn response(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(http::header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// `%XX` and `+` decoded; `None` for a bad escape or bytes that are not
/// UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Serves HTTP/1.1 on a connection's byte stream until the client closes
/// it, it idles out, or `stop()` (checked every second) asks for a
/// graceful end (the request in flight finishes).
pub async fn serve_io<H, IO>(
    io: IO,
    peer: SocketAddr,
    handler: Rc<H>,
    limits: &Limits,
    stop: impl Fn() -> bool,
) -> Result<(), String>
where
    H: Handler,
    IO: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let activity = Activity::new();
    let svc = Svc {
        handler,
        peer,
        max_body: limits.max_body_bytes,
    };
    let conn = pin!(hyper::server::conn::http1::Builder::new()
        .max_buf_size(limits.max_header_bytes.max(8192))
        .serve_connection(HyperIo::new(io, activity.clone()), svc));
    match crate::grpc::io::drive(conn, &activity, Some(limits.idle_timeout), stop, |c| {
        c.graceful_shutdown()
    })
    .await
    {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(idle) => Err(format!("{peer}: closed after {idle:?} without traffic")),
    }
}

struct Svc<H> {
    handler: Rc<H>,
    peer: SocketAddr,
    max_body: usize,
}

type LocalResponse = Pin<Box<dyn Future<Output = Result<Resp, std::convert::Infallible>>>>;

impl<H: Handler> hyper::service::Service<Request<Incoming>> for Svc<H> {
    type Response = Resp;
    type Error = std::convert::Infallible;
    type Future = LocalResponse;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let (handler, peer, max) = (self.handler.clone(), self.peer, self.max_body);
        Box::pin(async move {
            let (head, body) = req.into_parts();
            let declared = head
                .headers
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|n| n > max as u64) {
                return Ok(too_large(max));
            }
            let body = match Limited::new(body, max).collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => return Ok(too_large(max)),
                Err(e) => {
                    return Ok(response(
                        StatusCode::BAD_REQUEST,
                        "text/plain",
                        format!("cannot read the request body: {e}\n"),
                    ))
                }
            };
            Ok(handler.handle(Req { head, body, peer }).await)
        })
    }
}

fn too_large(max: usize) -> Resp {
    let mut r = response(
        StatusCode::PAYLOAD_TOO_LARGE,
        "application/json",
        serde_json::json!({"error": {
            "code": "payload_too_large",
            "rocketmq_code": crate::protocol::codes::response::MESSAGE_ILLEGAL,
            "message": format!("the request body is larger than {max} bytes (httpMaxBodyBytes)"),
        }})
        .to_string(),
    );
    // The rest of the body is not read: the connection cannot be reused.
    r.headers_mut()
        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    r
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn query_values_are_percent_decoded() {
        assert_eq!(percent_decode("a%20b+c").as_deref(), Some("a b c"));
        assert_eq!(percent_decode("%25DLQ%25g").as_deref(), Some("%DLQ%g"));
        assert_eq!(percent_decode("%2"), None);
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%ff"), None);
    }
}
