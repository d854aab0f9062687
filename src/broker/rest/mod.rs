//! The REST API (`httpListenPort`, default 8082; 0 = off): one more front
//! door to the same engines, for clients that speak only HTTP — the DMS
//! "HTTP RESTful API". Every shard accepts on the port (SO_REUSEPORT) and
//! serves any request: sends go the remoting send path (to the queue's
//! owner), receives are pops of [`super::pop`] on every shard in turn,
//! administration runs the remoting admin requests. Routes, bodies and
//! error codes: `openapi.json` beside this file, served at
//! `/v1/openapi.json`; the README's "REST API" section shows them in use.
//!
//! # Choices
//!
//! * **Errors** are JSON: `{"error": {"code", "rocketmq_code", "message"}}`
//!   with a stable `code` ([`ApiError`]) and the RocketMQ response code it
//!   maps to (0 when the error is HTTP's own).
//! * **Receives** (`GET …/groups/{g}/messages`) pop at most `max` (1–32)
//!   messages, visible again to the group after `invisible` ms (10 s …
//!   12 h, default 30 s) unless acknowledged; `wait` (0–30 000 ms) long
//!   polls. The handle of a message (`r1.<shard>.<queue>.<offset>.<popTime>
//!   .<attempt>`) names its delivery: a handle from before a re-delivery is
//!   refused as `stale_handle`.
//! * **Acks**: `success` (consumed), `fail` (consumption failed: visible
//!   again after the retry back-off of its attempt — 1 s, 5 s, 10 s, 30 s,
//!   1 min, … as RocketMQ's levels — and dead-lettered to `%DLQ%<group>`
//!   after `retryMaxTimes` + 1 deliveries), `redeliver` (give it back:
//!   visible again after `delay_seconds`, default 30).
//! * **Broadcast**: `mode=broadcast&consumer_id=C` gives consumer `C` every
//!   message of the topic (its own position, kept by the broker as the
//!   POP group `<group>-BC-<C>`), starting at `from=earliest|latest` when
//!   the consumer id is new, or moved there when asked again
//!   (`from=stored`, the default, continues); in cluster mode `from` moves
//!   the group's position the same way.
//! * **Auth**: with `aclEnable`, requests carry the headers of RocketMQ 5's
//!   gRPC clients — `authorization: MQv2-HMAC-SHA1 Credential=<AK>,
//!   SignedHeaders=x-mq-date-time, Signature=<hex HMAC-SHA1(SK,
//!   x-mq-date-time)>` and `x-mq-date-time: yyyyMMdd'T'HHmmss'Z'` — checked
//!   like gRPC calls; administration needs an admin account.
//! * **Limits**: bodies at most `httpMaxBodyBytes` (512 KiB), batches at
//!   most `httpMaxBatch` (64), connections at most `maxConnectionsPerShard`
//!   per shard, idle ones closed after 60 s, headers at most 64 KiB.

mod admin;
mod consume;
mod errors;
mod produce;
mod views;

pub use errors::ApiError;

use std::cell::Cell;
use std::rc::Rc;

use http::{Method, StatusCode};
use serde_json::Value;

use crate::acl::{Needs, Refusal};
use crate::http::{response, Handler, Req, Resp};
use crate::runtime::mesh::{ClientRef, View};

use super::shard::Shard;

/// The OpenAPI 3 document of this API.
pub const OPENAPI: &str = include_str!("openapi.json");

/// The web console: one page, its script and style, embedded in the
/// binary (no CDN, no bundler; `console/` beside this file).
const CONSOLE_HTML: &str = include_str!("console/index.html");
const CONSOLE_JS: &str = include_str!("console/app.js");
const CONSOLE_CSS: &str = include_str!("console/app.css");

fn console(body: &'static str, content_type: &'static str) -> Resp {
    let mut r = response(StatusCode::OK, content_type, body);
    r.headers_mut()
        .insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-cache"));
    r
}

pub struct Rest {
    shard: Rc<Shard>,
    /// Round robin of sends without a message group, and of the first
    /// shard a receive pops.
    rr: Cell<usize>,
    metrics: crate::metrics::http::Render,
}

type ApiResult = Result<(StatusCode, Value), ApiError>;

impl Rest {
    fn client(&self, req: &Req, verified: crate::runtime::mesh::Verified) -> ClientRef {
        ClientRef {
            shard: self.shard.id,
            conn: self.shard.new_conn_id() | (1 << 61),
            addr: req.peer,
            view: View::Main,
            verified,
        }
    }

    /// The ACL's verdict (when on) on a request that needs `needs`.
    fn allowed(&self, req: &Req, needs: &Needs<'_>) -> Result<ClientRef, ApiError> {
        let auth = req.header("authorization");
        let checked = self
            .shard
            .access
            .check_grpc(req.peer.ip(), auth, req.header("x-mq-date-time"), needs);
        match checked {
            Ok(v) => Ok(self.client(req, v)),
            Err(r) => {
                let key = auth
                    .and_then(|h| crate::acl::grpc_signature::parse(h).ok())
                    .map_or("", |a| a.access_key);
                let key: String = key.chars().filter(|c| !c.is_control()).take(64).collect();
                let what = format!("HTTP {} {}", req.head.method, req.head.uri.path());
                self.shard.audit.refused_call(req.peer, &key, &what, &r);
                Err(refusal(&r))
            }
        }
    }

    /// Whether `client` may change things: ACL off, a white-listed
    /// address, or an admin account.
    fn is_admin(&self, client: &ClientRef) -> bool {
        match &client.verified {
            crate::runtime::mesh::Verified::No | crate::runtime::mesh::Verified::WhiteListed => true,
            crate::runtime::mesh::Verified::Account(k) => self
                .shard
                .access
                .current()
                .is_some_and(|acl| acl.account(k).is_some_and(|a| a.is_admin())),
        }
    }

    fn next_turn(&self) -> usize {
        let k = self.rr.get();
        self.rr.set(k.wrapping_add(1));
        k
    }

    async fn route(&self, req: &Req) -> ApiResult {
        let path = req.head.uri.path();
        let Some(segs) = segments(path) else {
            return Err(ApiError::bad_request("the path has a bad %-escape"));
        };
        let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
        let m = &req.head.method;
        match (m, segs.as_slice()) {
            (&Method::GET, ["v1", "topics"]) => admin::list_topics(self, req).await,
            (&Method::POST, ["v1", "topics"]) => admin::create_topic(self, req).await,
            (&Method::GET, ["v1", "topics", t]) => admin::topic_status(self, req, t).await,
            (&Method::DELETE, ["v1", "topics", t]) => admin::delete_topic(self, req, t).await,
            (&Method::POST, ["v1", "topics", t, "messages"]) => produce::produce(self, req, t).await,
            (&Method::GET, ["v1", "topics", t, "groups", g, "messages"]) => consume::receive(self, req, t, g).await,
            (&Method::POST, ["v1", "topics", t, "groups", g, "ack"]) => consume::ack(self, req, t, g).await,
            (&Method::GET, ["v1", "session"]) => views::session(self, req).await,
            (&Method::GET, ["v1", "stats"]) => views::stats(self, req).await,
            (&Method::GET, ["v1", "messages"]) => views::find(self, req).await,
            (&Method::GET, ["v1", "groups", g, "members"]) => views::members(self, req, g).await,
            (&Method::GET, ["v1", "groups"]) => admin::list_groups(self, req).await,
            (&Method::POST, ["v1", "groups"]) => admin::create_group(self, req).await,
            (&Method::GET, ["v1", "groups", g]) => admin::group_progress(self, req, g).await,
            (&Method::POST, ["v1", "groups", g, "reset"]) => admin::reset_group(self, req, g).await,
            (&Method::GET, ["v1", "groups", g, "dlq"]) => admin::list_dlq(self, req, g).await,
            (&Method::POST, ["v1", "groups", g, "dlq", "resend"]) => admin::resend_dlq(self, req, g).await,
            _ if allow_of(&segs).is_some() => Err(ApiError::method_not_allowed(m, allow_of(&segs))),
            _ => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                0,
                format!("no resource at {path}"),
            )),
        }
    }
}

impl Handler for Rest {
    async fn handle(&self, req: Req) -> Resp {
        let path = req.head.uri.path();
        if req.head.method == Method::GET {
            match path {
                "/v1/openapi.json" => return response(StatusCode::OK, "application/json", OPENAPI),
                "/metrics" => return crate::metrics::http::answer(&req, &self.metrics).await,
                "/" | "/index.html" => return console(CONSOLE_HTML, "text/html; charset=utf-8"),
                "/console/app.js" => return console(CONSOLE_JS, "text/javascript; charset=utf-8"),
                "/console/app.css" => return console(CONSOLE_CSS, "text/css; charset=utf-8"),
                _ => {}
            }
        }
        match self.route(&req).await {
            Ok((status, v)) => response(status, "application/json", v.to_string()),
            Err(e) => {
                let mut r = response(e.status, "application/json", e.body().to_string());
                if let Some(allow) = e.allow {
                    r.headers_mut()
                        .insert(http::header::ALLOW, http::HeaderValue::from_static(allow));
                }
                r
            }
        }
    }
}

/// The methods a path of the API allows (its `Allow` header), `None` for
/// a path that is not one of the API's.
fn allow_of(segs: &[&str]) -> Option<&'static str> {
    Some(match segs {
        ["v1", "topics"] | ["v1", "groups"] => "GET, POST",
        ["v1", "topics", _] => "GET, DELETE",
        ["v1", "groups", _]
        | ["v1", "groups", _, "dlq"]
        | ["v1", "groups", _, "members"]
        | ["v1", "topics", _, "groups", _, "messages"]
        | ["v1", "session"]
        | ["v1", "stats"]
        | ["v1", "messages"] => "GET",
        ["v1", "topics", _, "messages"]
        | ["v1", "topics", _, "groups", _, "ack"]
        | ["v1", "groups", _, "reset"]
        | ["v1", "groups", _, "dlq", "resend"] => "POST",
        _ => return None,
    })
}

/// The path's segments, percent-decoded (`/v1/topics/%25DLQ%25g` names
/// `%DLQ%g`); `None` for a bad escape.
fn segments(path: &str) -> Option<Vec<String>> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(crate::http::percent_decode)
        .collect()
}

fn refusal(r: &Refusal) -> ApiError {
    if r.is_authentication_failure() || matches!(r, Refusal::Throttled { .. }) {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            crate::protocol::codes::response::NO_PERMISSION,
            r.remark(),
        )
    } else {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            crate::protocol::codes::response::NO_PERMISSION,
            r.remark(),
        )
    }
}

/// The JSON body of a request, or `bad_json`.
fn json_body(req: &Req) -> Result<Value, ApiError> {
    if req.body.is_empty() {
        return Err(ApiError::bad_json("the request has no body: a JSON object is expected"));
    }
    let ct = req.header("content-type").unwrap_or("application/json");
    if !ct.starts_with("application/json") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            0,
            format!("content-type {ct} is not supported: send application/json"),
        ));
    }
    serde_json::from_slice(&req.body).map_err(|e| ApiError::bad_json(format!("malformed JSON: {e}")))
}

/// Accepts REST connections on `listener` for `shard` until the broker
/// stops; with TLS on, connections are TLS or plain as `tlsServerMode`
/// allows, like the other ports.
pub async fn accept_loop(
    shard: Rc<Shard>,
    listener: glommio::net::TcpListener,
    tls: crate::runtime::tls::ServerTls,
    metrics: crate::metrics::http::Render,
) {
    let limits = crate::http::Limits {
        max_body_bytes: shard.cfg.http_max_body_bytes,
        ..Default::default()
    };
    let handler = Rc::new(Rest {
        shard: shard.clone(),
        rr: Cell::new(shard.id as usize),
        metrics,
    });
    super::http_accept::accept_loop(shard, listener, tls, "HTTP", move |io, peer| {
        let (handler, limits) = (handler.clone(), limits.clone());
        async move { crate::http::serve_io(io, peer, handler, &limits, super::http_accept::stopping).await }
    })
    .await;
}
