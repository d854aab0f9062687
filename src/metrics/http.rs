//! The `/metrics` endpoint: a minimal HTTP/1.1 server on glommio. Requests
//! are parsed with `httparse`; one request per connection, bounded header
//! size, a read deadline.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};

/// Produces the response body for `/metrics`.
pub type Render = Rc<dyn Fn() -> Pin<Box<dyn Future<Output = String>>>>;

const MAX_REQUEST: usize = 16 * 1024;

pub async fn serve(listener: TcpListener, render: Render) {
    loop {
        match listener.accept().await {
            Ok(stream) => {
                let render = render.clone();
                glommio::spawn_local(async move {
                    let _ = glommio::timer::timeout(Duration::from_secs(10), async move {
                        handle(stream, render).await;
                        Ok(())
                    })
                    .await;
                })
                .detach();
            }
            Err(e) => {
                log::warn!("metrics endpoint: accept failed: {e}");
                glommio::timer::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn handle(mut stream: TcpStream, render: Render) {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    let path = loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(_)) => {
                break (req.method.unwrap_or("").to_string(), req.path.unwrap_or("").to_string())
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_REQUEST => continue,
            _ => {
                let _ = stream
                    .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .await;
                return;
            }
        }
    };
    let (status, ctype, body) = match (path.0.as_str(), path.1.split('?').next().unwrap_or("")) {
        ("GET", "/metrics") => ("200 OK", "text/plain; version=0.0.4", render().await),
        ("GET", "/") => ("200 OK", "text/plain", "shardmq: see /metrics\n".to_string()),
        ("GET", _) => ("404 Not Found", "text/plain", "not found\n".to_string()),
        _ => ("405 Method Not Allowed", "text/plain", "only GET\n".to_string()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
    let _ = stream.close().await;
}
