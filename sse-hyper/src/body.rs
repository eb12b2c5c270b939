//! [`EventStream`]: the response body, an `http_body::Body` of coalesced frames.

use std::convert::Infallible;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

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
}

impl Body for EventStream {
    type Data = Batch;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Batch>, Infallible>>> {
        let State::Streaming { outlet, timer } = &mut self.state else {
            return Poll::Ready(None);
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
        match self.state {
            State::Done => SizeHint::with_exact(0),
            State::Streaming { .. } => SizeHint::default(),
        }
    }
}

impl fmt::Debug for EventStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.state {
            State::Streaming { outlet, .. } => f.debug_tuple("EventStream").field(outlet).finish(),
            State::Done => f.write_str("EventStream(done)"),
        }
    }
}
