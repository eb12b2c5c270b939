//! One re-armable deadline on a [`Runtime`]'s timer.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use crate::runtime::Runtime;

/// A deadline that follows whatever the state machine asks for: armed on demand, re-armed
/// when the deadline moves, dropped once it fired (a fired sleep is never polled again).
pub(crate) struct Deadline<R: Runtime> {
    armed: Option<(Instant, Pin<Box<R::Sleep>>)>,
}

impl<R: Runtime> Deadline<R> {
    pub(crate) fn new() -> Self {
        Deadline { armed: None }
    }

    /// `Ready` once `at` has passed; `Pending` (with `cx` registered) before it, or always
    /// when `at` is `None`.
    pub(crate) fn poll_at(&mut self, cx: &mut Context<'_>, at: Option<Instant>) -> Poll<()> {
        let Some(at) = at else {
            self.armed = None;
            return Poll::Pending;
        };
        let sleep = match &mut self.armed {
            Some((armed_at, sleep)) if *armed_at == at => sleep,
            armed => &mut armed.insert((at, Box::pin(R::sleep_until(at)))).1,
        };
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.armed = None;
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
