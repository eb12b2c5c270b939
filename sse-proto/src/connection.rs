//! The per-connection state machine: an outbox with a byte budget, keep-alive, close.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Buf;

use crate::error::Error;
use crate::event::KEEP_ALIVE;
use crate::frame::{Batch, Frame};

/// Settings of each connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionConfig {
    /// Most bytes queued and not yet taken by the writer; past it the peer is too slow
    /// and the connection ends. One frame larger than this still goes to an empty queue.
    pub budget: usize,
    /// Interval after which an idle stream gets a keep-alive comment; `None` disables it.
    pub keep_alive: Option<Duration>,
}

impl ConnectionConfig {
    /// Default budget: 1 MiB.
    pub const DEFAULT_BUDGET: usize = 1 << 20;
    /// Default keep-alive interval: 15 s.
    pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(15);
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            budget: Self::DEFAULT_BUDGET,
            keep_alive: Some(Self::DEFAULT_KEEP_ALIVE),
        }
    }
}

/// Why a connection ended.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// The server closed the session: its id was marked closed and a reconnect gets 204.
    Closed,
    /// The client went away (tab closed, network lost, `EventSource.close()`).
    PeerGone,
    /// The client read too slowly and its outbox went over budget.
    TooSlow,
    /// The server is shutting down; the id is not marked, so the tab reconnects.
    Shutdown,
    /// A newer connection with the same session id took its place. The stream's last
    /// block gave its tab a fresh id, so the tab comes back as a session of its own.
    Replaced,
    /// The server dropped the stream without closing the session (`Session::drop_stream`):
    /// the tab reconnects.
    Dropped,
    /// Resume mode: the session's grace period passed without a connection.
    Expired,
    /// The session continues under another id: its signed id was re-signed with the current
    /// key when its tab came back (see [`HubBuilder::signing`](crate::HubBuilder)).
    Renamed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    /// Ending: what is queued is still written, then the stream ends.
    Draining(EndReason),
    /// Ended: nothing more is written.
    Ended(EndReason),
}

/// One event-stream connection, without I/O.
///
/// # How an adapter drives it
///
/// - Inputs: [`send`](Self::send) (queue a frame), [`close`](Self::close),
///   [`shutdown`](Self::shutdown), [`replaced`](Self::replaced), [`peer_gone`](Self::peer_gone),
///   [`handle_timeout`](Self::handle_timeout).
/// - Outputs: [`poll_transmit`](Self::poll_transmit) (or [`drain_into`](Self::drain_into)),
///   drained until `None`, and [`poll_timeout`](Self::poll_timeout), the next instant at
///   which `handle_timeout` has work to do.
/// - After every input, drain the outputs. When [`is_finished`](Self::is_finished) is true,
///   end the response.
///
/// Only the hub drives it (its tests show it alone).
#[derive(Debug)]
pub(crate) struct Connection {
    config: ConnectionConfig,
    state: State,
    outbox: VecDeque<Frame>,
    queued: usize,
    /// When the writer last took something, or when the connection opened.
    idle_since: Instant,
    /// The preamble's `id:` line, written once more just before the first dispatched event
    /// that carries no id of its own.
    id_line: Option<Frame>,
    /// While a shutdown drains: when what is left is dropped and the transport cut.
    cut_at: Option<Instant>,
    /// Cut off: nothing more is written, and the transport should be dropped at once.
    cut: bool,
}

impl Connection {
    /// A connection opened at `now`, with an empty outbox.
    pub(crate) fn new(config: ConnectionConfig, now: Instant) -> Connection {
        Connection {
            config,
            state: State::Open,
            outbox: VecDeque::new(),
            queued: 0,
            idle_since: now,
            id_line: None,
            cut_at: None,
            cut: false,
        }
    }

    /// A connection whose outbox starts with `preamble`, the block that sets the browser's
    /// last event id without dispatching anything.
    ///
    /// Some clients (those built on the npm `eventsource-parser`, such as the `eventsource`
    /// package from v3) ignore an `id:` in a block without data, against the WHATWG rules; so
    /// `id_line` (the preamble's `id: …` line) is written once more just before the first
    /// dispatched event that has no id of its own. For a browser it changes nothing.
    pub(crate) fn with_preamble(
        config: ConnectionConfig,
        preamble: Frame,
        id_line: Frame,
        now: Instant,
    ) -> Connection {
        let mut conn = Connection::new(config, now);
        conn.id_line = Some(id_line);
        conn.push(preamble);
        conn
    }

    /// Queues `frame`.
    ///
    /// Fails with [`Error::Closed`] once the connection is ending, and with
    /// [`Error::Backpressure`] when the queue is not empty and the frame would take it over
    /// budget: the connection then ends with [`EndReason::TooSlow`] and its queue is dropped.
    #[inline]
    pub(crate) fn send(&mut self, frame: Frame) -> Result<(), Error> {
        self.admit(frame.remaining())?;
        if frame.is_dispatched() {
            if let Some(line) = self.id_line.take() {
                self.push(line);
            }
        }
        self.push(frame);
        Ok(())
    }

    /// Queues a logged event: its own `id:` line (which carries its position), then the
    /// frame. Fails as [`send`](Self::send) does; the budget counts both.
    #[inline]
    pub(crate) fn send_logged(&mut self, id_line: Frame, frame: Frame) -> Result<(), Error> {
        self.admit(id_line.remaining() + frame.remaining())?;
        self.push_logged(id_line, frame);
        Ok(())
    }

    /// Queues a logged event without looking at the budget: a replay, which is bounded by
    /// the log's own bounds.
    #[inline]
    pub(crate) fn push_logged(&mut self, id_line: Frame, frame: Frame) {
        if frame.is_dispatched() {
            // The event carries its own id: the preamble's repeat is not needed.
            self.id_line = None;
        }
        self.push(id_line);
        self.push(frame);
    }

    /// Checks that `len` more bytes may be queued; ends the connection as too slow if not.
    #[inline]
    fn admit(&mut self, len: usize) -> Result<(), Error> {
        if self.state != State::Open {
            return Err(Error::Closed);
        }
        if self.queued > 0 && self.queued.saturating_add(len) > self.config.budget {
            let queued = self.queued;
            self.cut(EndReason::TooSlow);
            return Err(Error::Backpressure {
                queued,
                budget: self.config.budget,
            });
        }
        Ok(())
    }

    #[inline]
    fn push(&mut self, frame: Frame) {
        self.queued += frame.remaining();
        self.outbox.push_back(frame);
    }

    /// Ends because the server closed the session, after writing what is queued. (The hub
    /// marks the id closed, so that its reconnect gets 204.) Returns whether this call began
    /// the end of the stream.
    pub(crate) fn close(&mut self) -> bool {
        self.begin_end(EndReason::Closed)
    }

    /// Ends without marking the id, after writing what is queued (server shutdown).
    pub(crate) fn shutdown(&mut self) -> bool {
        self.begin_end(EndReason::Shutdown)
    }

    /// As [`shutdown`](Self::shutdown), but what is not written by `deadline` is dropped and
    /// the connection cut ([`is_cut_off`](Self::is_cut_off)): a reader too slow to take its
    /// last events does not hold the server up. [`poll_timeout`](Self::poll_timeout) returns
    /// the deadline while the queue drains.
    pub(crate) fn shutdown_by(&mut self, deadline: Instant) -> bool {
        let began = self.shutdown();
        if began && self.state == State::Draining(EndReason::Shutdown) {
            self.cut_at = Some(deadline);
        }
        began
    }

    /// Cuts the connection off at once: drops the queue and ends it with `reason` (unless
    /// it had ended already); the transport should be dropped, even mid-write.
    pub(crate) fn cut(&mut self, reason: EndReason) {
        if !matches!(self.state, State::Ended(_)) {
            self.cut = true;
        }
        self.end_now(reason);
    }

    /// Ends without marking the id, after writing what is queued: the browser reconnects
    /// with its id (to move it to another node, or to test reconnection).
    pub(crate) fn drop_stream(&mut self) -> bool {
        self.begin_end(EndReason::Dropped)
    }

    /// A newer connection with the same id took over: drops what is queued, writes `last`
    /// (the block that gives this tab a fresh id) and ends.
    pub(crate) fn replaced(&mut self, last: Frame) {
        if matches!(self.state, State::Ended(_)) {
            return;
        }
        self.outbox.clear();
        self.queued = 0;
        self.push(last);
        self.state = State::Draining(EndReason::Replaced);
    }

    /// The peer went away: ends at once, drops the queue, does not mark the id.
    pub(crate) fn peer_gone(&mut self) {
        self.end_now(EndReason::PeerGone);
    }

    fn begin_end(&mut self, reason: EndReason) -> bool {
        if self.state != State::Open {
            return false;
        }
        self.state = if self.outbox.is_empty() {
            State::Ended(reason)
        } else {
            State::Draining(reason)
        };
        true
    }

    fn end_now(&mut self, reason: EndReason) {
        // A reason once given stays: a peer gone while a close drains is still a close.
        self.state = match self.state {
            State::Open => State::Ended(reason),
            State::Draining(r) | State::Ended(r) => State::Ended(r),
        };
        self.outbox.clear();
        self.queued = 0;
    }

    /// Queues a keep-alive comment when the stream has been idle for the interval, or cuts
    /// a shutdown that is past its deadline (see [`shutdown_by`](Self::shutdown_by)).
    /// Calling it early, or again, does nothing.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if let (State::Draining(reason), Some(at)) = (self.state, self.cut_at) {
            if now >= at {
                self.cut(reason);
            }
            return;
        }
        let Some(deadline) = self.poll_timeout() else {
            return;
        };
        if now < deadline {
            return;
        }
        if self.outbox.is_empty() {
            self.push(Frame::from_static(KEEP_ALIVE));
        }
        self.idle_since = now;
    }

    /// When [`handle_timeout`](Self::handle_timeout) next has work: keep-alive while open
    /// (`None` when it is off), a shutdown's deadline while it drains, `None` once ended.
    #[must_use]
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Open => self.config.keep_alive.map(|ka| self.idle_since + ka),
            State::Draining(_) => self.cut_at,
            State::Ended(_) => None,
        }
    }

    /// Takes the next frame to write, as of `now` (which restarts the idle timer).
    #[cfg(test)]
    #[must_use]
    pub(crate) fn poll_transmit_at(&mut self, now: Instant) -> Option<Frame> {
        let frame = self.outbox.pop_front()?;
        self.queued -= frame.remaining();
        self.idle_since = now;
        self.settle();
        Some(frame)
    }

    /// Takes the next frame to write without touching the idle timer.
    #[cfg(test)]
    #[must_use]
    pub(crate) fn poll_transmit(&mut self) -> Option<Frame> {
        let frame = self.outbox.pop_front()?;
        self.queued -= frame.remaining();
        self.settle();
        Some(frame)
    }

    /// Gives back the room a burst left in the outbox, once it is empty (see
    /// [`Batch::release_spare`]).
    pub(crate) fn release_spare(&mut self) {
        if self.outbox.is_empty() {
            self.outbox.shrink_to(crate::frame::IDLE_FRAMES);
        }
    }

    /// Moves everything queued into `batch` (one vectored write), as of `now`.
    /// Returns the number of frames moved.
    pub(crate) fn drain_into(&mut self, batch: &mut Batch, now: Instant) -> usize {
        let n = self.outbox.len();
        if n == 0 {
            return 0;
        }
        for frame in self.outbox.drain(..) {
            batch.push(frame);
        }
        self.queued = 0;
        self.idle_since = now;
        self.settle();
        n
    }

    fn settle(&mut self) {
        if let State::Draining(reason) = self.state {
            if self.outbox.is_empty() {
                self.state = State::Ended(reason);
            }
        }
    }

    /// Whether the connection still takes new frames.
    pub(crate) fn is_open(&self) -> bool {
        self.state == State::Open
    }

    /// Whether the stream has ended and nothing is left to write: end the response.
    pub(crate) fn is_finished(&self) -> bool {
        matches!(self.state, State::Ended(_))
    }

    /// Whether the connection was cut off ([`EndReason::TooSlow`], or a shutdown past its
    /// deadline): nothing more will be written, and the adapter should drop the transport at
    /// once, even in the middle of a write.
    pub(crate) fn is_cut_off(&self) -> bool {
        self.cut
    }

    /// Why the connection is ending or has ended; `None` while open.
    pub(crate) fn end_reason(&self) -> Option<EndReason> {
        match self.state {
            State::Open => None,
            State::Draining(r) | State::Ended(r) => Some(r),
        }
    }

    /// Bytes queued and not yet taken by the writer.
    pub(crate) fn queued_bytes(&self) -> usize {
        self.queued
    }
}

#[cfg(test)]
mod tests;
