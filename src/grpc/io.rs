//! The glue that lets hyper's HTTP/2 server run on a glommio executor:
//! an executor that spawns hyper's per-stream tasks with
//! `glommio::spawn_local` (so they may be `!Send` and stay on this shard),
//! and an adapter from a futures-io stream (glommio's `TcpStream`) to
//! `hyper::rt::{Read, Write}`. Modelled on glommio's `examples/hyper_server.rs`.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_lite::{AsyncRead, AsyncWrite};

/// Runs hyper's background tasks (one per HTTP/2 stream) on the current
/// glommio executor. Tasks are detached: they end when their stream ends
/// or the connection is dropped.
#[derive(Clone, Copy, Debug, Default)]
pub struct LocalExec;

impl<F> hyper::rt::Executor<F> for LocalExec
where
    F: Future + 'static,
    F::Output: 'static,
{
    fn execute(&self, fut: F) {
        glommio::spawn_local(fut).detach();
    }
}

/// When the connection last received bytes (any HTTP/2 frame, including
/// the client's PINGs), for the idle timeout.
#[derive(Clone, Debug)]
pub struct Activity(Rc<Cell<Instant>>);

impl Activity {
    pub fn new() -> Self {
        Activity(Rc::new(Cell::new(Instant::now())))
    }

    fn touch(&self) {
        self.0.set(Instant::now());
    }

    pub fn idle_for(&self) -> Duration {
        self.0.get().elapsed()
    }
}

impl Default for Activity {
    fn default() -> Self {
        Self::new()
    }
}

/// Largest read handed to the inner stream at once.
const READ_CHUNK: usize = 16 * 1024;

/// A futures-io stream seen as a hyper transport.
///
/// hyper hands us an uninitialised buffer; rather than `unsafe` code to
/// expose it as `&mut [u8]`, reads go through a small initialised scratch
/// buffer and are copied in (one memcpy of at most 16 KiB per read; the
/// bytes have just been copied out of the socket buffer anyway).
pub struct HyperIo<T> {
    inner: T,
    scratch: Box<[u8]>,
    activity: Activity,
}

impl<T> HyperIo<T> {
    pub fn new(inner: T, activity: Activity) -> Self {
        HyperIo {
            inner,
            scratch: vec![0u8; READ_CHUNK].into_boxed_slice(),
            activity,
        }
    }
}

impl<T: AsyncRead + Unpin> hyper::rt::Read for HyperIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let want = buf.remaining().min(this.scratch.len());
        if want == 0 {
            return Poll::Ready(Ok(()));
        }
        let scratch = &mut this.scratch[..want];
        match Pin::new(&mut this.inner).poll_read(cx, scratch) {
            Poll::Ready(Ok(n)) => {
                // n ≤ want ≤ buf.remaining(): put_slice cannot overflow.
                buf.put_slice(&scratch[..n.min(want)]);
                if n > 0 {
                    this.activity.touch();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncWrite + Unpin> hyper::rt::Write for HyperIo<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

/// How often [`drive`] checks a connection's idle time and the stop flag.
const WATCH_TICK: Duration = Duration::from_secs(1);

/// Runs a hyper connection to its end, checking every second whether it
/// idled `idle` (then `Err(idle)`: the caller drops it, which closes it) and
/// whether `stop()` asks the process to stop (then `graceful` once: hyper
/// finishes what is in flight and ends the connection).
pub async fn drive<F: Future>(
    mut conn: Pin<&mut F>,
    activity: &Activity,
    idle: Option<Duration>,
    stop: impl Fn() -> bool,
    graceful: impl Fn(Pin<&mut F>),
) -> Result<F::Output, Duration> {
    let mut stopping = false;
    loop {
        let tick = async {
            glommio::timer::Timer::new(WATCH_TICK).await;
            None
        };
        let ended = futures_lite::future::or(async { Some(conn.as_mut().await) }, tick).await;
        if let Some(result) = ended {
            return Ok(result);
        }
        if !stopping && stop() {
            graceful(conn.as_mut());
            stopping = true;
        }
        if let Some(idle) = idle.filter(|d| activity.idle_for() >= *d) {
            return Err(idle);
        }
    }
}
