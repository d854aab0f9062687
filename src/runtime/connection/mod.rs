//! One client connection: a reader that decodes frames and runs each
//! request as its own task (so a held long-poll pull never blocks the
//! requests behind it), and a writer that batches whatever replies are
//! ready into one socket write.
//!
//! # What a connection may make us hold
//! * **Requests running:** at most [`MAX_IN_FLIGHT`]; the reader stops
//!   reading until one finishes (TCP back-pressure).
//! * **A frame being read:** frames up to [`READ_CHUNK`] are read through
//!   one small per-connection chunk; a larger frame first takes its whole
//!   size from the shard's [`InboundBudget`] (waiting, under the partial
//!   frame timeout, while other connections hold it), is then read straight
//!   into a buffer of exactly its size, and gives the budget back when its
//!   request finishes. Nothing on the read path zero-fills more than once
//!   per byte of a frame, so trickling bytes costs the broker nothing.
//! * **A frame that stops arriving:** closed after
//!   `partialFrameTimeoutMillis` from its first byte.
//! * **An idle connection** (nothing read and no request running for
//!   `serverChannelMaxIdleTimeSeconds`, as RocketMQ's server does): closed.
//!   Clients heartbeat every 30 s.
//! * **Replies for a slow reader:** at most `outboxMaxBytes` queued (a
//!   request whose reply does not fit waits, holding its in-flight slot);
//!   a write that makes no progress for `writeStallTimeoutMillis` closes
//!   the connection.
//! * **Connections:** admitted by [`ConnLimits`] per shard and per client
//!   address; a connection over a limit is closed at once.
//! * A frame larger than the decoder's maximum closes the connection.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Instant;

use super::tls::Io;
use crate::protocol::{encode_frame, FrameDecoder, RemotingCommand};
use crate::store::notify::Notify;
use bytes::BytesMut;
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

mod limits;
mod watch;

pub use limits::{Admission, ConnLimits, InboundBudget, Limits};
use watch::{watchdog, Watch};

pub const MAX_IN_FLIGHT: u64 = 1024;
const REPLY_QUEUE: usize = 1024;
/// Frames up to this size are read through a per-connection chunk.
pub const READ_CHUNK: usize = 16 * 1024;

/// The socket (plain or TLS) shared by the reader and the writer task.
/// Each poll borrows it only for the duration of that poll (never across
/// an await), and glommio keeps separate read and write readiness sources.
#[derive(Clone)]
struct Shared(Rc<RefCell<Io>>);

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
    ) -> impl Future<Output = Option<RemotingCommand>> + 'static;
    /// Called once when the connection ends.
    fn closed(&self, conn: u64);
    /// Bytes read from / written to the socket.
    fn traffic(&self, _inbound: u64, _outbound: u64) {}
}

/// The bounded queue of commands waiting to be written to a connection:
/// replies, and broker → client requests pushed by other tasks.
pub struct Outbox {
    queue: RefCell<VecDeque<RemotingCommand>>,
    /// Approximate encoded bytes of `queue` (bodies plus a header allowance).
    bytes: Cell<usize>,
    max_bytes: usize,
    ready: Notify,
    space: Notify,
    closed: Cell<bool>,
    /// Signalled once, on close (the reader waits on it beside the socket).
    closing: Notify,
    /// The connection's clocks: deferred replies count as activity.
    watch: Rc<Watch>,
    /// Bytes of replies of running requests waiting for room in the queue.
    waiting: Cell<usize>,
}

/// Replies queued plus replies waiting for room may reach this many times
/// `outboxMaxBytes`; beyond it the client is not reading and is closed.
const WAITING_FACTOR: usize = 4;

/// What a queued command counts for: its body and a header allowance.
fn queued_size(cmd: &RemotingCommand) -> usize {
    cmd.body.len() + 256
}

impl Outbox {
    fn new(max_bytes: usize, watch: Rc<Watch>) -> Outbox {
        Outbox {
            watch,
            waiting: Cell::new(0),
            queue: RefCell::new(VecDeque::new()),
            bytes: Cell::new(0),
            max_bytes,
            ready: Notify::default(),
            space: Notify::default(),
            closed: Cell::new(false),
            closing: Notify::default(),
        }
    }

    /// True if `size` more bytes may be queued now. An empty queue takes
    /// any one command, so a reply larger than the limit still goes out.
    fn fits(&self, size: usize) -> bool {
        let q = self.queue.borrow();
        q.is_empty() || (q.len() < REPLY_QUEUE && self.bytes.get() + size <= self.max_bytes)
    }

    fn enqueue(&self, cmd: RemotingCommand) {
        self.bytes.set(self.bytes.get() + queued_size(&cmd));
        self.queue.borrow_mut().push_back(cmd);
        self.ready.notify_all();
    }

    /// Queues a command, waiting while the queue is full (by count or
    /// bytes). The replies waiting so are bounded too: when the queue and
    /// the waiting replies together pass [`WAITING_FACTOR`] × the queue's
    /// bytes, the client is not reading and the connection is closed (the
    /// reply is dropped with it).
    pub async fn push(&self, cmd: RemotingCommand) {
        let size = queued_size(&cmd);
        if !self.closed.get() && !self.fits(size) {
            let pending = self.bytes.get() + self.waiting.get() + size;
            if pending > self.max_bytes.saturating_mul(WAITING_FACTOR) {
                self.watch.reason.set(Some(format!(
                    "the client reads no replies: {pending} bytes of them queued or waiting, over {WAITING_FACTOR} x outboxMaxBytes"
                )));
                self.close();
                return;
            }
        }
        self.waiting.set(self.waiting.get() + size);
        loop {
            let seen = self.space.generation();
            if self.closed.get() || self.fits(size) {
                break;
            }
            self.space.changed_since(seen).await;
        }
        self.waiting.set(self.waiting.get() - size);
        if !self.closed.get() {
            self.enqueue(cmd);
        }
    }

    /// Queues a command unless the queue is full (pushes that may be lost,
    /// such as NOTIFY_CONSUMER_IDS_CHANGED: clients re-balance anyway).
    pub fn try_push(&self, cmd: RemotingCommand) -> bool {
        if self.closed.get() || !self.fits(queued_size(&cmd)) {
            return false;
        }
        self.enqueue(cmd);
        true
    }

    /// A reply to one of this connection's requests will come later,
    /// through [`Outbox::deliver`] (a parked long-poll pull: a registration
    /// on the queue's shard, holding none of the connection's request
    /// slots). The connection is not idle while one is outstanding.
    pub fn defer(&self) {
        self.watch.deferred.set(self.watch.deferred.get() + 1);
    }

    /// Queues a deferred reply (see [`Outbox::defer`]). It is never
    /// dropped: when the queue is full it waits for space (the writer's
    /// stall timeout bounds the wait).
    pub fn deliver(self: &Rc<Self>, cmd: RemotingCommand) {
        let w = &self.watch;
        w.deferred.set(w.deferred.get() - 1);
        w.last_active.set(Instant::now());
        if self.closed.get() {
            return;
        }
        if self.fits(queued_size(&cmd)) {
            self.enqueue(cmd);
        } else {
            let me = self.clone();
            glommio::spawn_local(async move { me.push(cmd).await }).detach();
        }
    }

    /// Bytes queued (approximate).
    pub fn queued_bytes(&self) -> usize {
        self.bytes.get()
    }

    fn close(&self) {
        self.closed.set(true);
        self.closing.notify_all();
        self.ready.notify_all();
        self.space.notify_all();
    }
}

/// Runs a connection to completion. `register` receives the outbox before
/// the first request is read.
pub async fn serve<S: Service>(
    service: Rc<S>,
    conn: u64,
    stream: Io,
    limits: Limits,
    budget: Rc<InboundBudget>,
    register: impl FnOnce(Rc<Outbox>),
) {
    let sock = Shared(Rc::new(RefCell::new(stream)));
    let watch = Rc::new(Watch::new(MAX_IN_FLIGHT));
    let outbox = Rc::new(Outbox::new(limits.outbox_max_bytes, watch.clone()));
    register(outbox.clone());
    let writer = glommio::spawn_local(write_loop(
        service.clone(),
        conn,
        sock.clone(),
        outbox.clone(),
        watch.clone(),
    ))
    .detach();
    let dog = glommio::spawn_local(watchdog(watch.clone(), outbox.clone(), limits.clone())).detach();
    let why = read_loop(&service, conn, sock, &outbox, &watch, &budget).await;
    if let Some(why) = why.or_else(|| watch.reason.take()) {
        log::warn!("connection {conn}: closing: {why}");
    }
    service.closed(conn);
    outbox.close();
    writer.cancel();
    dog.cancel();
    // The socket closes when the last of its handles (reader's, writer's)
    // is dropped, which is now.
}

/// Writes whatever is queued, in batches; a write that makes no progress
/// for `stall` closes the connection (the reader sees the outbox closed).
async fn write_loop<S: Service>(service: Rc<S>, conn: u64, mut wsock: Shared, out: Rc<Outbox>, watch: Rc<Watch>) {
    let mut buf = BytesMut::new();
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
            out.bytes.set(out.bytes.get().saturating_sub(queued_size(&c)));
            if let Err(e) = encode_frame(&c, &mut buf) {
                log::error!("connection {conn}: cannot encode a reply: {e}");
            }
        }
        out.space.notify_all();
        service.traffic(0, buf.len() as u64);
        let mut at = 0;
        while at < buf.len() {
            // The watchdog closes the connection (and so cancels this
            // task) if one write makes no progress for the stall timeout.
            watch.writing_since.set(Some(Instant::now()));
            let n = match wsock.write(&buf[at..]).await {
                Ok(n) if n > 0 => n,
                _ => {
                    out.close();
                    return;
                }
            };
            at += n;
        }
        // TLS keeps what it could not send yet; plain TCP has nothing.
        if wsock.flush().await.is_err() {
            out.close();
            return;
        }
        watch.writing_since.set(None);
        // Do not keep a large batch's buffer for an idle connection.
        if buf.capacity() > 256 * 1024 {
            buf = BytesMut::new();
        }
    }
}

/// Frame length (with its 4-byte prefix) of the frame starting `buf`.
fn frame_total(buf: &[u8]) -> Option<usize> {
    let p: [u8; 4] = buf.get(..4)?.try_into().ok()?;
    Some(u32::from_be_bytes(p) as usize + 4)
}

/// Reads and dispatches requests until EOF, an error or a limit; returns
/// why it stopped when that is worth a log line.
async fn read_loop<S: Service>(
    service: &Rc<S>,
    conn: u64,
    mut rsock: Shared,
    outbox: &Rc<Outbox>,
    watch: &Rc<Watch>,
    budget: &Rc<InboundBudget>,
) -> Option<String> {
    let in_flight = &watch.in_flight;
    let decoder = FrameDecoder::new();
    let mut buf = BytesMut::new();
    let mut chunk = vec![0u8; READ_CHUNK];
    // Budget held by the large frame being read, handed to its request.
    let mut held: Option<glommio::sync::StaticPermit> = None;
    loop {
        loop {
            let before = buf.len();
            match decoder.decode(&mut buf) {
                Ok(Some(cmd)) => {
                    let received = Instant::now();
                    watch.frame_started.set((!buf.is_empty()).then_some(received));
                    let large = held.take();
                    if cmd.is_response() {
                        continue; // replies to our oneway pushes: nothing waits for them
                    }
                    // The frame's bytes, from the shard's budget, held until
                    // its request ends: a large frame took them before it
                    // was buffered, a small one takes them now (waiting, and
                    // so not reading, while the shard's requests hold it all).
                    let frame = match large {
                        Some(p) => p,
                        None => {
                            let want = budget.small_share((before - buf.len()) as u64);
                            match budget.small.try_acquire_static_permit(want) {
                                Ok(p) => p,
                                Err(_) => {
                                    let gen = outbox.closing.generation();
                                    let acquire = budget.small.acquire_static_permit(want);
                                    match until_closed(&outbox.closing, gen, async { acquire.await.ok() }).await {
                                        Some(Some(p)) => p,
                                        _ => return None,
                                    }
                                }
                            }
                        }
                    };
                    // A client that does not read its replies gets no new
                    // request started: its queued replies stay within
                    // `outboxMaxBytes` plus those of requests already
                    // running. The writer closes the connection if it stalls.
                    while outbox.queued_bytes() >= outbox.max_bytes && !outbox.closed.get() {
                        let seen = outbox.space.generation();
                        let closing = outbox.closing.generation();
                        futures_lite::future::or(
                            outbox.space.changed_since(seen),
                            outbox.closing.changed_since(closing),
                        )
                        .await;
                    }
                    if outbox.closed.get() {
                        return None;
                    }
                    let Ok(permit) = in_flight.acquire_static_permit(1).await else {
                        return None;
                    };
                    let service = service.clone();
                    let out = outbox.clone();
                    let watch = watch.clone();
                    glommio::spawn_local(async move {
                        if let Some(reply) = service.handle(conn, cmd, received).await {
                            out.push(reply).await;
                        }
                        drop(permit);
                        drop(frame);
                        watch.last_active.set(Instant::now());
                    })
                    .detach();
                }
                Ok(None) => break,
                Err(e) => return Some(format!("broken frame: {e}")),
            }
        }
        let closing = outbox.closing.generation();
        if outbox.closed.get() {
            return None;
        }
        // Everything read was consumed: give back a large frame's buffer.
        if buf.is_empty() && buf.capacity() > 64 * 1024 {
            buf = BytesMut::new();
        }

        let total = frame_total(&buf).filter(|t| *t > buf.len() + READ_CHUNK);
        let read = match total {
            Some(total) => {
                // A large frame: its whole size from the shard budget first.
                if held.is_none() {
                    let want = total as u64;
                    if want > budget.total() {
                        return Some(format!(
                            "a {total}-byte frame is larger than the shard's inbound budget"
                        ));
                    }
                    let acquire = budget.sem.acquire_static_permit(want);
                    match until_closed(&outbox.closing, closing, async { acquire.await.ok() }).await {
                        Some(Some(p)) => held = Some(p),
                        Some(None) => return None,
                        None => {
                            return watch
                                .reason
                                .take()
                                .map(|why| format!("no inbound budget for a {total}-byte frame in time ({why})"))
                        }
                    }
                }
                // Zeroed once, then read into until the frame is complete:
                // a trickled frame costs one pass over its bytes, not one
                // per read.
                let mut filled = buf.len();
                buf.resize(total, 0);
                let mut last = None;
                while filled < total {
                    last = until_closed(&outbox.closing, closing, rsock.read(&mut buf[filled..])).await;
                    match &last {
                        Some(Ok(n)) if *n > 0 => {
                            filled += n;
                            service.traffic(*n as u64, 0);
                        }
                        _ => break,
                    }
                }
                buf.truncate(filled);
                if filled == total {
                    continue; // decode it
                }
                last
            }
            None => {
                let r = until_closed(&outbox.closing, closing, rsock.read(&mut chunk)).await;
                if let Some(Ok(n)) = &r {
                    buf.extend_from_slice(&chunk[..*n]);
                }
                r
            }
        };
        if outbox.closed.get() {
            // The writer or the watchdog gave up on this connection.
            return watch.reason.take();
        }
        match read {
            Some(Ok(0)) | Some(Err(_)) => return None,
            Some(Ok(n)) => {
                let now = Instant::now();
                watch.last_active.set(now);
                watch.buffered.set(buf.len());
                if watch.frame_started.get().is_none() {
                    watch.frame_started.set(Some(now));
                }
                service.traffic(n as u64, 0);
            }
            None => return watch.reason.take(),
        }
    }
}

/// `fut`, or None once `closing` fires.
async fn until_closed<T>(closing: &Notify, seen: u64, fut: impl Future<Output = T>) -> Option<T> {
    futures_lite::future::or(async { Some(fut.await) }, async {
        closing.changed_since(seen).await;
        None
    })
    .await
}
