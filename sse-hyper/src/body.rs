//! [`EventStream`]: the response body, an `http_body::Body` of coalesced frames.

use std::convert::Infallible;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use sse_proto::{Batch, Outlet};
use tokio::time::Sleep;

/// The body of an event-stream response.
///
/// Each poll hands hyper everything queued for the connection as one [`Batch`] of the core's
/// frames (no copy into another buffer), which hyper sends with one vectored write. The body
/// drives keep-alive with tokio's timer, ends once a closed session has drained, and when
/// hyper drops it (the client went away) the session leaves the hub at once.
pub struct EventStream {
    state: State,
}

enum State {
    Streaming {
        outlet: Outlet,
        timer: Option<Pin<Box<Sleep>>>,
    },
    /// A fixed body, given out once.
    Fixed(Batch),
    Done,
}

impl EventStream {
    pub(crate) fn new(outlet: Outlet) -> EventStream {
        EventStream {
            state: State::Streaming {
                outlet,
                timer: None,
            },
        }
    }

    /// An empty body, for 204 answers and responses of your own.
    pub fn empty() -> EventStream {
        EventStream { state: State::Done }
    }

    /// A body of fixed bytes, for responses of your own (and a shutting-down hub's answer).
    pub fn fixed(bytes: Batch) -> EventStream {
        EventStream {
            state: State::Fixed(bytes),
        }
    }
}

impl Body for EventStream {
    type Data = Batch;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Batch>, Infallible>>> {
        let (outlet, timer) = match &mut self.state {
            State::Streaming { outlet, timer } => (outlet, timer),
            State::Fixed(_) => {
                let State::Fixed(bytes) = std::mem::replace(&mut self.state, State::Done) else {
                    return Poll::Ready(None);
                };
                return Poll::Ready(Some(Ok(Frame::data(bytes))));
            }
            State::Done => return Poll::Ready(None),
        };
        loop {
            let mut batch = Batch::new();
            match outlet.poll_drain(cx, crate::handshake::now(), &mut batch) {
                Poll::Ready(Some(_)) => return Poll::Ready(Some(Ok(Frame::data(batch)))),
                Poll::Ready(None) => {
                    self.state = State::Done;
                    return Poll::Ready(None);
                }
                Poll::Pending => {}
            }
            let Some(deadline) = outlet.poll_timeout() else {
                return Poll::Pending;
            };
            let deadline = tokio::time::Instant::from_std(deadline);
            match timer {
                Some(sleep) if sleep.deadline() == deadline => {}
                Some(sleep) => sleep.as_mut().reset(deadline),
                None => *timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
            let Some(sleep) = timer else {
                return Poll::Pending;
            };
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            // The keep-alive deadline passed: poll_drain queues the comment.
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match &self.state {
            State::Done => SizeHint::with_exact(0),
            State::Fixed(bytes) => SizeHint::with_exact(bytes.remaining() as u64),
            State::Streaming { .. } => SizeHint::default(),
        }
    }
}

impl fmt::Debug for EventStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.state {
            State::Streaming { outlet, .. } => f.debug_tuple("EventStream").field(outlet).finish(),
            State::Fixed(bytes) => write!(f, "EventStream(fixed, {} bytes)", bytes.remaining()),
            State::Done => f.write_str("EventStream(done)"),
        }
    }
}

/// An [`EventStream`] whose data is [`Bytes`], for frameworks that want `Bytes` bodies
/// (axum's `Body::new`, tower-http layers).
///
/// Each buffer of each frame goes out as a data frame of its own: a slice of the shared
/// buffer, not a copy. Made by [`EventStream::into_bytes`].
///
/// ```no_run
/// # async fn demo(server: &sse_hyper::Server, req: http::Request<()>) {
/// if let sse_hyper::Outcome::Accept(accepted) = server.handshake(&req).await {
///     let response = accepted.response.map(|body| body.into_bytes());
///     // axum: response.map(axum::body::Body::new)
/// #   let _ = response;
/// }
/// # }
/// ```
pub struct BytesStream {
    inner: EventStream,
    pending: Batch,
}

impl EventStream {
    /// This stream with [`Bytes`] data (see [`BytesStream`]).
    pub fn into_bytes(self) -> BytesStream {
        BytesStream {
            inner: self,
            pending: Batch::new(),
        }
    }
}

impl Body for BytesStream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        loop {
            if self.pending.has_remaining() {
                let n = self.pending.chunk().len();
                return Poll::Ready(Some(Ok(Frame::data(self.pending.copy_to_bytes(n)))));
            }
            match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(batch) => self.pending = batch,
                    Err(frame) => {
                        let trailers = frame.into_trailers().unwrap_or_default();
                        return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                    }
                },
                Poll::Ready(Some(Err(e))) => match e {},
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        !self.pending.has_remaining() && self.inner.is_end_stream()
    }
}

impl fmt::Debug for BytesStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BytesStream")
            .field("inner", &self.inner)
            .field("pending", &self.pending.remaining())
            .finish()
    }
}
