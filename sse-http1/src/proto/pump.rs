//! [`Pump`]: what to write next on a socket that carries one event stream.

use std::task::{Context, Poll};
use std::time::Instant;

use bytes::{Buf, Bytes};

use sse_proto::Batch;
use sse_proto::EndReason;
use sse_proto::Outlet;

/// The write side of one HTTP/1.x event stream, without the I/O: the response head, then
/// everything the outlet queues (coalesced into one batch per write, chunked on HTTP/1.1),
/// then the terminating chunk, a flush, and the end.
///
/// An adapter loops on [`next`](Self::next) and performs what it asks, so every runtime
/// drives a stream the same way:
///
/// ```text
/// loop {
///     match pump.next(&mut outlet, cx, now) {
///         Next::Write => { /* write pump.pending() vectored, then pump.advance(n) */ }
///         Next::Flush => { /* flush, then pump.flushed() */ }
///         Next::Wait(Some(deadline)) => { /* sleep until deadline (keep-alive), then loop */ }
///         Next::Wait(None) => return Poll::Pending,
///         Next::Done(reason) => return Poll::Ready(reason),
///     }
/// }
/// ```
#[derive(Debug)]
pub(crate) struct Pump {
    pending: Batch,
    chunked: bool,
    drained: bool,
    flushed: bool,
}

/// The next step of a [`Pump`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Write [`Pump::pending`] (vectored) and report with [`Pump::advance`].
    Write,
    /// Flush the transport and report with [`Pump::flushed`].
    Flush,
    /// Nothing to write: the task is woken when something is queued. With a deadline,
    /// call [`Pump::next`] again then, even if nothing woke the task (keep-alive).
    Wait(Option<Instant>),
    /// The stream has ended and everything was written and flushed.
    Done(EndReason),
}

impl Pump {
    /// A pump that first writes `head` (the response head, see
    /// [`stream_head`](super::stream_head)); `chunked` for HTTP/1.1.
    pub(crate) fn new(head: Bytes, chunked: bool) -> Pump {
        Pump {
            pending: Batch::from(head),
            chunked,
            drained: false,
            flushed: true,
        }
    }

    /// What to do next. Takes what `outlet` has queued when nothing is pending; registers
    /// `cx` to be woken when more is queued.
    pub(crate) fn next(&mut self, outlet: &mut Outlet, cx: &mut Context<'_>, now: Instant) -> Next {
        if self.pending.has_remaining() {
            return Next::Write;
        }
        if !self.flushed {
            return Next::Flush;
        }
        if self.drained {
            return Next::Done(outlet.end_reason().unwrap_or(EndReason::PeerGone));
        }
        // `pending` is empty here: drain into it, so its queue's allocation is reused.
        match outlet.poll_drain(cx, now, &mut self.pending) {
            Poll::Ready(Some(_)) => {
                if self.chunked {
                    self.pending = super::chunk(std::mem::take(&mut self.pending));
                }
                Next::Write
            }
            Poll::Ready(None) => {
                self.drained = true;
                // Cut off: the connection is dropped as it is, without a clean end.
                if outlet.is_cut_off() {
                    return Next::Done(outlet.end_reason().unwrap_or(EndReason::TooSlow));
                }
                if self.chunked {
                    self.pending = super::last_chunk();
                    return Next::Write;
                }
                Next::Done(outlet.end_reason().unwrap_or(EndReason::PeerGone))
            }
            Poll::Pending => Next::Wait(outlet.poll_timeout()),
        }
    }

    /// The bytes to write, as a [`Buf`] with `chunks_vectored`.
    pub(crate) fn pending(&self) -> &Batch {
        &self.pending
    }

    /// `n` bytes of [`pending`](Self::pending) were written.
    pub(crate) fn advance(&mut self, n: usize) {
        self.pending.advance(n);
        self.flushed = false;
    }

    /// The transport was flushed.
    pub(crate) fn flushed(&mut self) {
        self.flushed = true;
    }
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use super::*;
    use sse_proto::{Decision, HttpVersion, Hub, Request};

    fn outlet(hub: &Hub) -> (sse_proto::Session, Outlet) {
        let mut req = Request::new(b"GET", b"/e?id=p", HttpVersion::Http11);
        req.header(b"accept", b"text/event-stream");
        let now = Instant::now();
        let Decision::Accept(accepted) = hub.decide(&req, now) else {
            panic!("an event-stream request")
        };
        (accepted.session, accepted.outlet)
    }

    #[test]
    fn head_events_last_chunk_flush_done() {
        // No write window: the test drains without the hub's timers.
        let hub = Hub::builder()
            .write_window(sse_proto::WriteWindow::Off)
            .keep_alive(None)
            .build(Instant::now);
        let (session, mut outlet) = outlet(&hub);
        let mut cx = Context::from_waker(Waker::noop());
        let now = Instant::now();
        let mut pump = Pump::new(Bytes::from_static(b"HEAD\r\n\r\n"), true);
        let mut wire = Vec::new();
        let mut step = |pump: &mut Pump, outlet: &mut Outlet| {
            let next = pump.next(outlet, &mut cx, now);
            match next {
                Next::Write => {
                    // Short writes, as a busy socket gives.
                    let chunk = pump.pending().chunk();
                    let n = chunk.len().min(5);
                    wire.extend_from_slice(&chunk[..n]);
                    pump.advance(n);
                }
                Next::Flush => pump.flushed(),
                Next::Wait(_) | Next::Done(_) => {}
            }
            next
        };
        // Head, then the preamble, then nothing: wait with no deadline.
        while step(&mut pump, &mut outlet) != Next::Wait(None) {}
        session.emit("x", "1").expect("open");
        session.close();
        let mut last = Next::Write;
        for _ in 0..1000 {
            last = step(&mut pump, &mut outlet);
            if matches!(last, Next::Done(_)) {
                break;
            }
        }
        assert_eq!(last, Next::Done(EndReason::Closed));
        let text = String::from_utf8_lossy(&wire);
        assert!(text.starts_with("HEAD\r\n\r\n"), "{text}");
        assert!(text.contains("event: x\ndata: 1\n\n"), "{text}");
        assert!(text.ends_with("0\r\n\r\n"), "the terminating chunk: {text}");
    }

    #[test]
    fn a_stream_cut_off_while_its_writer_waits_ends_without_the_last_chunk() {
        let hub = Hub::builder()
            .write_window(sse_proto::WriteWindow::Off)
            .keep_alive(None)
            .budget(1024)
            .build(Instant::now);
        let (session, mut outlet) = outlet(&hub);
        let mut cx = Context::from_waker(Waker::noop());
        let now = Instant::now();
        let mut pump = Pump::new(Bytes::from_static(b"HEAD\r\n\r\n"), true);
        let mut wire = Vec::new();
        // Head and preamble written: the writer waits, with nothing in flight.
        loop {
            match pump.next(&mut outlet, &mut cx, now) {
                Next::Write => {
                    wire.extend_from_slice(pump.pending().chunk());
                    let n = pump.pending().chunk().len();
                    pump.advance(n);
                }
                Next::Flush => pump.flushed(),
                Next::Wait(None) => break,
                other => panic!("{other:?}"),
            }
        }
        let written = wire.len();
        // Events past the budget, never taken, cut the stream off.
        let refused = (0..10).any(|_| session.send("x".repeat(512)).is_err());
        assert!(refused, "the queue passed its budget");
        assert_eq!(
            pump.next(&mut outlet, &mut cx, now),
            Next::Done(EndReason::TooSlow)
        );
        assert!(outlet.is_cut_off());
        assert_eq!(wire.len(), written, "nothing more, not even the last chunk");
    }
}
