//! The `/metrics` endpoint (`metricsPort`): Prometheus text over
//! [`crate::http`] (hyper's HTTP/1.1 on glommio). The REST port serves the
//! same `/metrics` too.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use glommio::net::TcpListener;
use http::{Method, StatusCode};

use crate::http::{response, Handler, Limits, Req, Resp};

/// Produces the response body for `/metrics`.
pub type Render = Rc<dyn Fn() -> Pin<Box<dyn Future<Output = String>>>>;

/// Connections the metrics port serves at once (scrapers are few).
const MAX_CONNECTIONS: usize = 64;

struct Metrics {
    render: Render,
}

impl Handler for Metrics {
    async fn handle(&self, req: Req) -> Resp {
        answer(&req, &self.render).await
    }
}

/// The answer of the metrics port to `req`: `/metrics`, or `/` with a
/// pointer to it.
pub async fn answer(req: &Req, render: &Render) -> Resp {
    if req.head.method != Method::GET && req.head.method != Method::HEAD {
        return response(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "only GET\n");
    }
    match req.head.uri.path() {
        "/metrics" => response(StatusCode::OK, "text/plain; version=0.0.4", render().await),
        "/" => response(StatusCode::OK, "text/plain", "shardmq: see /metrics\n"),
        _ => response(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    }
}

pub async fn serve(listener: TcpListener, render: Render) {
    let handler = Rc::new(Metrics { render });
    let limits = Limits {
        max_body_bytes: 16 * 1024,
        max_header_bytes: 16 * 1024,
        idle_timeout: Duration::from_secs(10),
    };
    let open = Rc::new(std::cell::Cell::new(0usize));
    loop {
        let stream = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                log::warn!("metrics endpoint: accept failed: {e}");
                glommio::timer::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if open.get() >= MAX_CONNECTIONS {
            continue; // dropped: closed at once
        }
        let Ok(peer) = stream.peer_addr() else { continue };
        open.set(open.get() + 1);
        let (handler, limits, open) = (handler.clone(), limits.clone(), open.clone());
        glommio::spawn_local(async move {
            let _ = crate::http::serve_io(stream, peer, handler, &limits, || {
                crate::runtime::shutdown::SHUTDOWN.load(std::sync::atomic::Ordering::Relaxed)
            })
            .await;
            open.set(open.get() - 1);
        })
        .detach();
    }
}
