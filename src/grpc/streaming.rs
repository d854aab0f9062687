//! The request side of a call: the HTTP/2 request body decoded into a
//! stream of protobuf messages. Unary and server-streaming calls read
//! exactly one message from it ([`Streaming::single`]); Telemetry hands the
//! stream itself to the service.

use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use http_body::Body;
use hyper::body::Incoming;

use super::codec::{self, FrameDecoder};
use super::status::GrpcStatus;

/// A stream of decoded client messages. Ends with `None` when the client
/// half-closes cleanly; yields one `Err` (and then `None`) on a malformed or
/// oversized message, a truncated frame, or a reset stream.
///
/// Back-pressure: nothing is read from the connection until the stream is
/// polled, and HTTP/2 flow control stops the client once the stream's
/// window (hyper's default) is full.
pub struct Streaming<T> {
    body: Incoming,
    decoder: FrameDecoder,
    done: bool,
    _msg: PhantomData<fn() -> T>,
}

impl<T: prost::Message + Default> Streaming<T> {
    pub(crate) fn new(body: Incoming, decoder: FrameDecoder) -> Self {
        Streaming {
            body,
            decoder,
            done: false,
            _msg: PhantomData,
        }
    }

    /// The one request message of a unary or server-streaming call: a
    /// missing message or a second one is an error.
    pub async fn single(mut self) -> Result<T, GrpcStatus> {
        use futures::StreamExt;
        let first = match self.next().await {
            Some(m) => m?,
            None => return Err(GrpcStatus::internal("missing request message")),
        };
        match self.next().await {
            None => Ok(first),
            Some(Err(e)) => Err(e),
            Some(Ok(_)) => Err(GrpcStatus::invalid_argument(
                "more than one request message on a unary call",
            )),
        }
    }

    fn fail(&mut self, status: GrpcStatus) -> Poll<Option<Result<T, GrpcStatus>>> {
        self.done = true;
        Poll::Ready(Some(Err(status)))
    }
}

impl<T: prost::Message + Default> Stream for Streaming<T> {
    type Item = Result<T, GrpcStatus>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            match this.decoder.next_message() {
                Ok(Some(payload)) => {
                    return match codec::decode(payload) {
                        Ok(m) => Poll::Ready(Some(Ok(m))),
                        Err(e) => this.fail(e),
                    }
                }
                Ok(None) => {}
                Err(e) => return this.fail(e),
            }
            match Pin::new(&mut this.body).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => {
                    // Request trailers carry nothing we use; skip them.
                    if let Ok(data) = frame.into_data() {
                        if let Err(e) = this.decoder.push(&data) {
                            return this.fail(e);
                        }
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    return this.fail(GrpcStatus::new(
                        super::status::GrpcCode::Cancelled,
                        format!("request stream failed: {e}"),
                    ))
                }
                Poll::Ready(None) => {
                    if this.decoder.is_empty() {
                        this.done = true;
                        return Poll::Ready(None);
                    }
                    return this.fail(GrpcStatus::internal("request ended inside a message frame"));
                }
            }
        }
    }
}
