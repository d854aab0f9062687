//! gRPC transport for RocketMQ 5.x clients: `apache.rocketmq.v2.MessagingService`
//! served on glommio, one connection per task on the shard that accepted it.
//!
//! # Why not tonic
//!
//! tonic's server needs `Send + Sync + 'static` services and runs on tokio.
//! Here hyper 1.x's HTTP/2 server runs directly on the shard's glommio
//! executor ([`io::LocalExec`] spawns its stream tasks with
//! `glommio::spawn_local`, [`io::HyperIo`] adapts glommio's `TcpStream`),
//! and the small gRPC layer on top is ours:
//!
//! * [`codec`] — the 5-byte length prefix, size limits, gzip, and the
//!   per-connection buffer budget;
//! * [`streaming`] — request bodies as streams of decoded messages;
//! * [`body`] — response bodies: messages, then `grpc-status` trailers
//!   (or a trailers-only response for an early failure);
//! * [`server`] — hyper set-up, routing by path, deadlines;
//! * [`service`] — the [`MessagingService`] trait the broker implements;
//! * [`context`] — the per-call [`RequestContext`] (metadata, peer, deadline);
//! * [`pb`] — the protobuf messages, generated from `proto/` by build.rs.
//!
//! # Using it
//!
//! ```ignore
//! let service = Rc::new(MyShardService::new(shard));
//! let limits = grpc::Limits::default();
//! loop {
//!     let stream = listener.accept().await?;
//!     let peer = stream.peer_addr()?;
//!     let (service, limits) = (service.clone(), limits.clone());
//!     glommio::spawn_local(async move {
//!         let io = tls.accept(stream).await?; // runtime::tls: plain or TLS
//!         if let Err(e) = grpc::serve_io(io, peer, service, &limits, || stopping()).await {
//!             log::debug!("grpc connection: {e}");
//!         }
//!     })
//!     .detach();
//! }
//! ```
//!
//! # Not done here
//!
//! HTTP/2 keep-alive pings need a `hyper::rt::Timer`, whose sleeps must be
//! `Send`; glommio's timers are not, so hyper's keep-alive is off. Instead
//! `serve_io` watches the connection once a second: it closes one that
//! sent nothing for `Limits::idle_timeout` and shuts down gracefully
//! (GOAWAY) when asked to stop.

pub mod body;
pub mod codec;
pub mod context;
pub mod io;
pub mod pb;
pub mod server;
pub mod service;
pub mod status;
pub mod streaming;

#[cfg(test)]
mod tests;

pub use context::{RequestContext, RpcMethod};
pub use server::{serve_io, Limits, ServeError};
pub use service::{MessagingService, ResponseStream};
pub use status::{GrpcCode, GrpcStatus};
pub use streaming::Streaming;
