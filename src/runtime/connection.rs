//! One client connection: a reader that decodes frames and runs each
//! request as its own task (so a held long-poll pull never blocks the
//! requests behind it), and a writer that batches whatever replies are
//! ready into one socket write.
//!
//! Limits: at most `MAX_IN_FLIGHT` requests of one connection run at once
//! (the reader stops reading until one finishes — TCP back-pressure), the
//! reply queue is bounded, and a frame larger than the decoder's maximum
//! closes the connection.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::BytesMut;
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use glommio::net::TcpStream;
use glommio::sync::Semaphore;

use crate::protocol::{encode_frame, FrameDecoder, RemotingCommand};
use crate::store::notify::Notify;

pub const MAX_IN_FLIGHT: u64 = 1024;
const REPLY_QUEUE: usize = 1024;

/// The socket shared by the reader and the writer task. Each poll borrows
/// it only for the duration of that poll (never across an await), and
/// glommio keeps separate read and write readiness sources.
#[derive(Clone)]
struct Shared(Rc<RefCell<TcpStream>>);

impl AsyncRead for Shared {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_read(cx, buf)
    }
}

impl AsyncWrite for Shared {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_flush(cx)
    }
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_close(cx)
    }
}

/// What the connection asks of its owner.
pub trait Service: 'static {
    /// Handles one request; `None` means no reply (oneway).
    fn handle(
        self: Rc<Self>,
        conn: u64,
        cmd: RemotingCommand,
        received: Instant,
    ) -> Pin<Box<dyn Future<Output = Option<RemotingCommand>>>>;
    /// Called once when the connection ends.
    fn closed(&self, conn: u64);
    /// Bytes read from / written to the socket.
    fn traffic(&self, _inbound: u64, _outbound: u64) {}
}

/// The bounded queue of commands waiting to be written to a connection:
/// replies, and broker → client requests pushed by other tasks.
pub struct Outbox {
    queue: RefCell<VecDeque<RemotingCommand>>,
    ready: Notify,
    space: Notify,
    closed: Cell<bool>,
}

impl Outbox {
    fn new() -> Outbox {
        Outbox {
            queue: RefCell::new(VecDeque::new()),
            ready: Notify::default(),
            space: Notify::default(),
            closed: Cell::new(false),
        }
    }

    /// Queues a command, waiting while the queue is full.
    pub async fn push(&self, cmd: RemotingCommand) {
        loop {
            let seen = self.space.generation();
            if self.closed.get() {
                return;
            }
            if self.queue.borrow().len() < REPLY_QUEUE {
                break;
            }
            self.space.changed_since(seen).await;
        }
        self.queue.borrow_mut().push_back(cmd);
        self.ready.notify_all();
    }

    /// Queues a command unless the queue is full (pushes that may be lost,
    /// such as NOTIFY_CONSUMER_IDS_CHANGED: clients re-balance anyway).
    pub fn try_push(&self, cmd: RemotingCommand) -> bool {
        if self.closed.get() || self.queue.borrow().len() >= REPLY_QUEUE {
            return false;
        }
        self.queue.borrow_mut().push_back(cmd);
        self.ready.notify_all();
        true
    }

    fn close(&self) {
        self.closed.set(true);
        self.ready.notify_all();
        self.space.notify_all();
    }
}

/// Runs a connection to completion. `register` receives the outbox before
/// the first request is read.
pub async fn serve<S: Service>(service: Rc<S>, conn: u64, stream: TcpStream, register: impl FnOnce(Rc<Outbox>)) {
    let _ = stream.set_nodelay(true);
    let sock = Shared(Rc::new(RefCell::new(stream)));
    let outbox = Rc::new(Outbox::new());
    register(outbox.clone());
    let mut wsock = sock.clone();
    let out = outbox.clone();
    let wservice = service.clone();
    let writer = glommio::spawn_local(async move {
        let mut buf = BytesMut::with_capacity(64 * 1024);
        loop {
            let seen = out.ready.generation();
            if out.queue.borrow().is_empty() {
                if out.closed.get() {
                    break;
                }
                out.ready.changed_since(seen).await;
                continue;
            }
            buf.clear();
            while buf.len() < 4 << 20 {
                let Some(c) = out.queue.borrow_mut().pop_front() else {
                    break;
                };
                if let Err(e) = encode_frame(&c, &mut buf) {
                    log::error!("connection {conn}: cannot encode a reply: {e}");
                }
            }
            out.space.notify_all();
            wservice.traffic(0, buf.len() as u64);
            if wsock.write_all(&buf).await.is_err() {
                break;
            }
        }
    })
    .detach();
    let limit = Rc::new(Semaphore::new(MAX_IN_FLIGHT));
    let decoder = FrameDecoder::new();
    let mut rsock = sock.clone();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    'read: loop {
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(cmd)) => {
                    if cmd.is_response() {
                        continue; // replies to our oneway pushes: nothing waits for them
                    }
                    let received = Instant::now();
                    let Ok(permit) = limit.acquire_static_permit(1).await else {
                        break 'read;
                    };
                    let service = service.clone();
                    let out = outbox.clone();
                    glommio::spawn_local(async move {
                        if let Some(reply) = service.handle(conn, cmd, received).await {
                            out.push(reply).await;
                        }
                        drop(permit);
                    })
                    .detach();
                }
                Ok(None) => break,
                Err(e) => {
                    log::warn!("connection {conn}: broken frame, closing: {e}");
                    break 'read;
                }
            }
        }
        if buf.capacity() - buf.len() < 16 * 1024 {
            buf.reserve(64 * 1024);
        }
        let len = buf.len();
        let cap = buf.capacity();
        buf.resize(cap, 0);
        match rsock.read(&mut buf[len..]).await {
            Ok(0) | Err(_) => {
                buf.truncate(len);
                break;
            }
            Ok(n) => {
                buf.truncate(len + n);
                service.traffic(n as u64, 0);
            }
        }
    }
    service.closed(conn);
    outbox.close();
    writer.cancel();
}
