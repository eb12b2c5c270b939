//! [`Session`]: the application's handle to one session.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::Inner;
use super::slot::{Life, Slot};
use crate::connection::EndReason;
use crate::error::Error;
use crate::event::{Data, Event};
use crate::frame::Frame;
use crate::id::SessionId;
use crate::request::Principal;
use crate::topic::TopicName;

/// The application's handle to one session: cheap to clone, safe to keep after the
/// session ended (sends then fail with [`Error::Closed`]).
///
/// A handle follows its session, not one connection: when the tab reconnects (or, in
/// resume mode, comes back after a drop) sends through the same handle reach the new
/// connection.
#[derive(Clone)]
pub struct Session {
    slot: Arc<Slot>,
    hub: Arc<Inner>,
}

impl Session {
    pub(crate) fn new(slot: Arc<Slot>, hub: Arc<Inner>) -> Session {
        Session { slot, hub }
    }

    /// The session id: what the application addresses the tab by. In resume mode the
    /// browser's last event id also carries a position after it; this is the id alone.
    pub fn id(&self) -> &SessionId {
        &self.slot.id
    }

    /// Whether the id was generated for this session (no valid client id was offered).
    pub fn is_new(&self) -> bool {
        self.slot.is_new
    }

    /// Sends a plain message (`onmessage` in the browser).
    pub fn send(&self, data: impl Into<Data>) -> Result<(), Error> {
        self.send_frame(Event::new().data(data).encode())
    }

    /// Sends a named event, dispatched to `addEventListener(name, …)` in the browser.
    /// Fails when the name is empty or holds CR, LF or NUL.
    pub fn emit(
        &self,
        name: impl Into<Cow<'static, str>>,
        data: impl Into<Data>,
    ) -> Result<(), Error> {
        self.send_frame(Event::new().event(name)?.data(data).encode())
    }

    /// Sends a named event whose data is `value` as JSON (feature `json`).
    #[cfg(feature = "json")]
    pub fn emit_json<T: serde::Serialize + ?Sized>(
        &self,
        name: impl Into<Cow<'static, str>>,
        value: &T,
    ) -> Result<(), Error> {
        self.send_frame(Event::new().event(name)?.json(value)?.encode())
    }

    /// Sends a built event.
    pub fn send_event(&self, event: &Event) -> Result<(), Error> {
        self.send_frame(event.encode())
    }

    /// Sends an encoded frame (share one frame between sessions to encode once).
    ///
    /// Without resume mode it is queued to the connection, and fails with
    /// [`Error::Backpressure`] when that cuts a slow reader off. In resume mode it is
    /// logged with a position first, and succeeds while the session lives: detached, or
    /// cut off for being slow, its tab gets the event when it comes back.
    pub fn send_frame(&self, frame: Frame) -> Result<(), Error> {
        self.hub.send(&self.slot, frame, true)
    }

    /// Sends `event` to the current connection only: never logged, no position, not
    /// replayed. For what is worth nothing later (a greeting, a clock tick). Fails with
    /// [`Error::NotConnected`] while the session is detached. Without resume mode it is
    /// the same as [`send_event`](Self::send_event).
    pub fn send_volatile(&self, event: &Event) -> Result<(), Error> {
        self.hub.send(&self.slot, event.encode(), false)
    }

    /// Sends every event of `events` to the session, in order, waiting while its connection's
    /// queue is over half its budget (so a slow reader slows the stream down rather than
    /// being cut off), and returns when the stream ends. Fails when the session ends first
    /// (feature `stream`).
    ///
    /// Events are logged as [`send_event`](Self::send_event) logs them; while the session is
    /// detached (resume mode) they go into its log without waiting.
    ///
    /// ```
    /// # use sse_proto::{Decision, Event, Hub, HttpVersion, Request};
    /// # let hub = Hub::builder().build(std::time::Instant::now);
    /// # let mut req = Request::new(b"GET", b"/e", HttpVersion::Http11);
    /// # req.header(b"accept", b"text/event-stream");
    /// # let Decision::Accept(accepted) = hub.decide(&req, std::time::Instant::now()) else { panic!() };
    /// let ticks = futures_lite::stream::iter((1..=3).map(|i| Event::new().data(i.to_string())));
    /// futures_lite::future::block_on(accepted.session.forward(ticks))?;
    /// # Ok::<(), sse_proto::Error>(())
    /// ```
    #[cfg(feature = "stream")]
    pub async fn forward<S>(&self, events: S) -> Result<(), Error>
    where
        S: futures_core::Stream<Item = Event>,
    {
        let mut events = std::pin::pin!(events);
        loop {
            std::future::poll_fn(|cx| self.poll_room(cx)).await?;
            match std::future::poll_fn(|cx| events.as_mut().poll_next(cx)).await {
                Some(event) => self.send_event(&event)?,
                None => return Ok(()),
            }
        }
    }

    /// Ready when the connection's queue has room (at most half its budget queued, or no
    /// connection: detached); an error once the session is over.
    #[cfg(feature = "stream")]
    fn poll_room(&self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let half = self.hub.config.budget / 2;
        let mut st = self.slot.lock();
        if !st.is_live() {
            return Poll::Ready(Err(Error::Closed));
        }
        match &mut st.link {
            Some(link) if link.conn.queued_bytes() > half => {
                if !link.room_waiters.iter().any(|w| w.will_wake(cx.waker())) {
                    link.room_waiters.push(cx.waker().clone());
                }
                Poll::Pending
            }
            _ => Poll::Ready(Ok(())),
        }
    }

    /// Closes the session: marks the id closed (its reconnect gets 204), writes what is
    /// queued, then ends the stream; a detached session ends at once. Idempotent; returns
    /// whether this call began the end.
    ///
    /// The mark is stamped with the hub's [`Clock`](crate::Clock).
    pub fn close(&self) -> bool {
        self.hub.close(&self.slot, self.hub.clock.now(), true)
    }

    /// Ends the stream after what is queued without marking the id, so the browser
    /// reconnects with it (and in resume mode continues the session). Returns whether this
    /// call began the end.
    pub fn drop_stream(&self) -> bool {
        let (began, writer) = {
            let mut st = self.slot.lock();
            match &mut st.link {
                Some(link) => (link.conn.drop_stream(), link.writer.take()),
                None => (false, None),
            }
        };
        if let Some(w) = writer {
            w.wake();
        }
        began
    }

    /// Makes the session a member of `topic` (also while detached), from now on: it gets
    /// what the topic publishes after this call, and in resume mode its tab gets it on
    /// resume, but never what was published before. Returns `false` when it was a member
    /// already.
    ///
    /// Fails with [`Error::InvalidTopic`] for a bad name, [`Error::TopicRefused`] when the
    /// hub's [topic rule](crate::HubBuilder::topic_rule) does not grant the topic to the
    /// session's user, [`Error::TooManyTopics`] past [`HubBuilder::max_topics`](crate::HubBuilder::max_topics),
    /// and [`Error::Closed`] once the session is over.
    pub fn join(&self, topic: impl AsRef<str>) -> Result<bool, Error> {
        let topic = TopicName::new(topic.as_ref())?;
        self.hub.join(&self.slot, &topic)
    }

    /// Ends the session's membership of `topic`: it gets nothing the topic publishes from
    /// now on. In resume mode its tab still gets, on resume, what the topic published while
    /// it was a member. Returns `false` when it was not a member.
    pub fn leave(&self, topic: impl AsRef<str>) -> Result<bool, Error> {
        let topic = TopicName::new(topic.as_ref())?;
        self.hub.leave(&self.slot, &topic)
    }

    /// The topics the session is in, sorted.
    pub fn topics(&self) -> Vec<TopicName> {
        self.slot.lock().current_topics()
    }

    /// The session's user: the principal of the request that attached it last.
    pub fn user(&self) -> Option<Principal> {
        self.slot.lock().user.as_ref().map(|(u, _)| u.clone())
    }

    /// Whether the session no longer takes events (closing, closed, expired, or its
    /// connection gone without resume mode).
    pub fn is_closed(&self) -> bool {
        !self.slot.lock().is_live()
    }

    /// Whether a connection serves the session right now.
    pub fn is_attached(&self) -> bool {
        self.slot.lock().link.is_some()
    }

    /// Why the session is ending or ended; `None` while it lives.
    pub fn end_reason(&self) -> Option<EndReason> {
        self.slot.lock().end_reason()
    }

    /// Bytes queued for the current connection and not yet taken by its writer.
    pub fn queued_bytes(&self) -> usize {
        self.slot
            .lock()
            .link
            .as_ref()
            .map_or(0, |link| link.conn.queued_bytes())
    }

    /// Ready with the reason once the session has ended: closed (after its stream drained),
    /// shut down, expired, or, without resume mode, its connection gone.
    pub fn poll_end(&self, cx: &mut Context<'_>) -> Poll<EndReason> {
        let mut st = self.slot.lock();
        if let Life::Ended(reason) = st.life {
            return Poll::Ready(reason);
        }
        if !st.end_waiters.iter().any(|w| w.will_wake(cx.waker())) {
            st.end_waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }

    /// A future that resolves with the reason once the session has ended (see
    /// [`poll_end`](Self::poll_end)). It needs no particular runtime.
    pub fn ended(&self) -> Ended {
        Ended {
            session: self.clone(),
        }
    }
}

/// The future returned by [`Session::ended`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Ended {
    session: Session,
}

impl Future for Ended {
    type Output = EndReason;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<EndReason> {
        self.session.poll_end(cx)
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.slot.id)
            .field("is_new", &self.slot.is_new)
            .field("end_reason", &self.end_reason())
            .finish()
    }
}
