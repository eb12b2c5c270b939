//! The hub: live connections by session id, runtime-neutral (std and [`Waker`] only).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::closed::{ClosedSet, MemoryClosedSet};
use crate::connection::{Connection, ConnectionConfig, EndReason};
use crate::error::Error;
use crate::event::{Data, Event};
use crate::frame::{Batch, Frame};
use crate::handshake::{Accept, Decision, Handshake, Request};
use crate::id::{IdGenerator, SessionId, UuidV4};

/// The registry of live connections: reach one by id, or all of them at once.
///
/// Every adapter uses this one type. Cloning is cheap and shares the registry.
///
/// # How an adapter uses it
///
/// 1. [`decide`](Self::decide) on each request; on [`Decision::Accept`] call
///    [`accept`](Self::accept), which returns the application's [`Session`] handle and the
///    writer's [`Outlet`].
/// 2. The writer task loops on [`Outlet::poll_drain`], writes each [`Batch`] with one
///    vectored write, and sleeps until [`Outlet::poll_timeout`] for keep-alive.
/// 3. When the peer goes away the writer calls [`Outlet::peer_gone`] (or drops the outlet):
///    the session leaves the hub at once.
///
/// ```
/// use std::time::Instant;
/// use sse_proto::{Decision, Event, Hub, HttpVersion, Request};
///
/// let hub = Hub::new();
/// let mut req = Request::new(b"GET", b"/events", HttpVersion::Http11);
/// req.header(b"accept", b"text/event-stream");
/// let Decision::Accept(accept) = hub.decide(&req, Instant::now()) else { unreachable!() };
/// let (session, _outlet) = hub.accept(accept, Instant::now());
/// session.emit("greeting", "hello").unwrap();
/// assert_eq!(hub.broadcast(&Event::new().data("to all")), 1);
/// ```
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    clock: fn() -> Instant,
    handshake: Handshake,
    config: ConnectionConfig,
    ids: Box<dyn IdGenerator>,
    closed: Mutex<Box<dyn ClosedSet>>,
    sessions: RwLock<HashMap<SessionId, Arc<Slot>>>,
    shutting_down: AtomicBool,
}

struct Slot {
    id: SessionId,
    is_new: bool,
    state: Mutex<SlotState>,
}

struct SlotState {
    conn: Connection,
    /// The writer waiting for frames.
    writer: Option<Waker>,
    /// Set once the writer is done with the connection.
    finished: Option<EndReason>,
    /// Tasks waiting for the end.
    end_waiters: Vec<Waker>,
    /// Tasks (transport guards) waiting for a cut-off ([`Connection::is_aborted`]).
    abort_waiters: Vec<Waker>,
}

fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not take every session down with it: the state under these
    // locks stays consistent across a panic (each update is a single assignment or push).
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Settings for a [`Hub`]: handshake, connection limits, closed-id store and id generator.
#[must_use]
pub struct HubBuilder {
    clock: fn() -> Instant,
    handshake: Handshake,
    config: ConnectionConfig,
    closed: Option<Box<dyn ClosedSet>>,
    ids: Option<Box<dyn IdGenerator>>,
}

impl HubBuilder {
    /// Replaces the handshake settings.
    pub fn handshake(mut self, handshake: Handshake) -> Self {
        self.handshake = handshake;
        self
    }

    /// Sets the reconnection delay sent to browsers (default 3 s).
    pub fn retry(mut self, retry: Duration) -> Self {
        self.handshake = self.handshake.retry(retry);
        self
    }

    /// Sets the keep-alive interval; `None` turns keep-alive off (default 15 s).
    pub fn keep_alive(mut self, interval: Option<Duration>) -> Self {
        self.config.keep_alive = interval;
        self
    }

    /// Sets each connection's outbox budget in bytes (default 1 MiB).
    pub fn budget(mut self, bytes: usize) -> Self {
        self.config.budget = bytes;
        self
    }

    /// Replaces the closed-id store (default: [`MemoryClosedSet::default`]).
    pub fn closed_set(mut self, set: impl ClosedSet + 'static) -> Self {
        self.closed = Some(Box::new(set));
        self
    }

    /// Replaces the id generator (default: [`UuidV4`]).
    pub fn id_generator(mut self, ids: impl IdGenerator + 'static) -> Self {
        self.ids = Some(Box::new(ids));
        self
    }

    /// Sets the clock that [`Session::close`] and [`Hub::close`] read to stamp closed ids.
    ///
    /// Like the id generator, the clock is passed in: the default is the system's monotonic
    /// clock, and an adapter passes its runtime's (so tests with paused time agree).
    pub fn clock(mut self, clock: fn() -> Instant) -> Self {
        self.clock = clock;
        self
    }

    /// Builds the hub.
    pub fn build(self) -> Hub {
        Hub {
            inner: Arc::new(Inner {
                clock: self.clock,
                handshake: self.handshake,
                config: self.config,
                ids: self.ids.unwrap_or_else(|| Box::new(UuidV4)),
                closed: Mutex::new(
                    self.closed
                        .unwrap_or_else(|| Box::new(MemoryClosedSet::default())),
                ),
                sessions: RwLock::new(HashMap::new()),
                shutting_down: AtomicBool::new(false),
            }),
        }
    }
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new()
    }
}

impl Hub {
    /// A hub with default settings.
    pub fn new() -> Hub {
        Hub::builder().build()
    }

    /// Starts a [`HubBuilder`].
    pub fn builder() -> HubBuilder {
        HubBuilder {
            clock: Instant::now,
            handshake: Handshake::new(),
            config: ConnectionConfig::default(),
            closed: None,
            ids: None,
        }
    }

    /// The handshake settings.
    pub fn handshake(&self) -> &Handshake {
        &self.inner.handshake
    }

    /// The connection settings.
    pub fn connection_config(&self) -> ConnectionConfig {
        self.inner.config
    }

    /// Decides what to do with a request, using this hub's closed set and id generator.
    pub fn decide(&self, req: &Request<'_>, now: Instant) -> Decision {
        let mut closed = lock(&self.inner.closed);
        self.inner
            .handshake
            .decide(req, &mut **closed, &*self.inner.ids, now)
    }

    /// Registers an accepted connection. Its outbox starts with the preamble.
    ///
    /// A live connection with the same id is replaced: it ends with
    /// [`EndReason::Replaced`], without marking the id.
    pub fn accept(&self, accept: Accept, now: Instant) -> (Session, Outlet) {
        let is_new = accept.is_new();
        let id = accept.session;
        let conn = Connection::with_preamble(id.clone(), self.inner.config, accept.preamble, now);
        let slot = Arc::new(Slot {
            id: id.clone(),
            is_new,
            state: Mutex::new(SlotState {
                conn,
                writer: None,
                finished: None,
                end_waiters: Vec::new(),
                abort_waiters: Vec::new(),
            }),
        });
        let old = self
            .inner
            .sessions
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, slot.clone());
        if let Some(old) = old {
            let wakeups = {
                let mut st = lock(&old.state);
                st.conn.replaced();
                Wakeups::after_abort(&mut st)
            };
            wakeups.wake();
        }
        let session = Session {
            slot: slot.clone(),
            hub: self.inner.clone(),
        };
        let outlet = Outlet {
            slot,
            hub: self.inner.clone(),
            done: false,
        };
        (session, outlet)
    }

    fn slot(&self, id: &str) -> Option<Arc<Slot>> {
        self.inner
            .sessions
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    /// The handle of the live connection with this id.
    pub fn session(&self, id: &str) -> Option<Session> {
        self.slot(id).map(|slot| Session {
            slot,
            hub: self.inner.clone(),
        })
    }

    /// Sends `event` to one session. Fails with [`Error::NotConnected`] for an unknown id.
    pub fn send_to(&self, id: &str, event: &Event) -> Result<(), Error> {
        self.send_frame_to(id, event.encode())
    }

    /// Sends an encoded frame to one session.
    pub fn send_frame_to(&self, id: &str, frame: Frame) -> Result<(), Error> {
        let slot = self.slot(id).ok_or(Error::NotConnected)?;
        send_frame(&self.inner, &slot, frame)
    }

    /// Encodes `event` once and queues it to every live session. Returns how many took it.
    pub fn broadcast(&self, event: &Event) -> usize {
        self.broadcast_frame(&event.encode())
    }

    /// Queues one shared frame to every live session. Returns how many took it; a session
    /// over its budget is ended instead (see [`Connection::send`]).
    pub fn broadcast_frame(&self, frame: &Frame) -> usize {
        let mut queued = 0;
        let mut cut = Vec::new();
        {
            let sessions = self
                .inner
                .sessions
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            for slot in sessions.values() {
                let (result, wakeups) = queue(slot, frame.clone());
                match result {
                    Ok(()) => queued += 1,
                    Err(Error::Backpressure { .. }) => cut.push(slot.clone()),
                    Err(_) => {}
                }
                wakeups.wake();
            }
        }
        for slot in cut {
            unregister(&self.inner, &slot);
        }
        queued
    }

    /// Closes one session (see [`Session::close`]). Fails with [`Error::NotConnected`] for
    /// an unknown id; the id is then not marked.
    pub fn close(&self, id: &str) -> Result<(), Error> {
        self.close_at(id, (self.inner.clock)())
    }

    /// As [`close`](Self::close), stamping the mark with `now` instead of reading the clock.
    pub fn close_at(&self, id: &str, now: Instant) -> Result<(), Error> {
        let slot = self.slot(id).ok_or(Error::NotConnected)?;
        close_slot(&self.inner, &slot, now);
        Ok(())
    }

    /// Number of registered connections.
    pub fn len(&self) -> usize {
        self.inner
            .sessions
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no connection is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ids of the registered connections, in no particular order.
    pub fn ids(&self) -> Vec<SessionId> {
        self.inner
            .sessions
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect()
    }

    /// Ends every stream after what is queued, without marking ids, so tabs reconnect
    /// elsewhere. Returns how many connections were told. Later [`decide`](Self::decide)
    /// calls still work; adapters stop accepting.
    pub fn shutdown(&self) -> usize {
        self.inner.shutting_down.store(true, Ordering::Release);
        let sessions = self
            .inner
            .sessions
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        for slot in sessions.values() {
            let waker = {
                let mut st = lock(&slot.state);
                st.conn.shutdown();
                st.writer.take()
            };
            wake(waker);
        }
        sessions.len()
    }

    /// Whether [`shutdown`](Self::shutdown) was called.
    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::Acquire)
    }
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hub")
            .field("sessions", &self.len())
            .field("shutting_down", &self.is_shutting_down())
            .finish()
    }
}

fn wake(waker: Option<Waker>) {
    if let Some(w) = waker {
        w.wake();
    }
}

fn send_frame(hub: &Inner, slot: &Arc<Slot>, frame: Frame) -> Result<(), Error> {
    let (result, wakeups) = queue(slot, frame);
    if matches!(result, Err(Error::Backpressure { .. })) {
        unregister(hub, slot);
    }
    wakeups.wake();
    result
}

/// Queues `frame` on `slot`. A frame over budget cuts the connection off, and then its
/// transport guards are woken with its writer. The caller wakes them after the lock.
fn queue(slot: &Slot, frame: Frame) -> (Result<(), Error>, Wakeups) {
    let mut st = lock(&slot.state);
    let result = st.conn.send(frame);
    let wakeups = match result {
        Err(Error::Backpressure { .. }) => Wakeups::after_abort(&mut st),
        _ => Wakeups {
            writer: st.writer.take(),
            guards: Vec::new(),
        },
    };
    (result, wakeups)
}

/// Tasks to wake once a slot's lock is released. Nothing is allocated unless a connection
/// was cut off with guards waiting.
struct Wakeups {
    writer: Option<Waker>,
    guards: Vec<Waker>,
}

impl Wakeups {
    /// A cut-off connection: its writer and its transport guards.
    fn after_abort(st: &mut SlotState) -> Wakeups {
        Wakeups {
            writer: st.writer.take(),
            guards: std::mem::take(&mut st.abort_waiters),
        }
    }

    fn wake(self) {
        wake(self.writer);
        self.guards.into_iter().for_each(Waker::wake);
    }
}

/// Removes `slot` from the live sessions, unless a newer connection took its id.
fn unregister(hub: &Inner, slot: &Arc<Slot>) {
    let mut sessions = hub.sessions.write().unwrap_or_else(PoisonError::into_inner);
    if sessions.get(&slot.id).is_some_and(|s| Arc::ptr_eq(s, slot)) {
        sessions.remove(&slot.id);
    }
}

/// Ready once the connection was cut off; registers `cx` to be woken when it is.
fn poll_aborted(slot: &Slot, cx: &mut Context<'_>) -> Poll<EndReason> {
    let mut st = lock(&slot.state);
    if st.conn.is_aborted() {
        return Poll::Ready(st.conn.end_reason().unwrap_or(EndReason::TooSlow));
    }
    if !st.abort_waiters.iter().any(|w| w.will_wake(cx.waker())) {
        st.abort_waiters.push(cx.waker().clone());
    }
    Poll::Pending
}

fn close_slot(hub: &Inner, slot: &Slot, now: Instant) -> bool {
    let (began, waker) = {
        let mut st = lock(&slot.state);
        let mut closed = lock(&hub.closed);
        let began = st.conn.close(&mut **closed, now);
        (began, st.writer.take())
    };
    wake(waker);
    began
}

/// The application's handle to one connection: cheap to clone, safe to keep after the
/// connection ended (sends then fail with [`Error::Closed`]).
#[derive(Clone)]
pub struct Session {
    slot: Arc<Slot>,
    hub: Arc<Inner>,
}

impl Session {
    /// The session id.
    pub fn id(&self) -> &SessionId {
        &self.slot.id
    }

    /// Whether the id was generated for this connection (no valid client id was offered).
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
    pub fn send_frame(&self, frame: Frame) -> Result<(), Error> {
        send_frame(&self.hub, &self.slot, frame)
    }

    /// Closes the session: marks the id closed (its reconnect gets 204), writes what is
    /// queued, then ends the stream. Idempotent; returns whether this call began the end.
    pub fn close(&self) -> bool {
        self.close_at((self.hub.clock)())
    }

    /// As [`close`](Self::close), stamping the mark with `now` instead of reading the clock.
    pub fn close_at(&self, now: Instant) -> bool {
        close_slot(&self.hub, &self.slot, now)
    }

    /// Ends the stream after what is queued without marking the id, so the browser
    /// reconnects with it. Returns whether this call began the end.
    pub fn disconnect(&self) -> bool {
        let (began, waker) = {
            let mut st = lock(&self.slot.state);
            (st.conn.disconnect(), st.writer.take())
        };
        wake(waker);
        began
    }

    /// Whether the connection no longer takes events (closing, closed, or gone).
    pub fn is_closed(&self) -> bool {
        !lock(&self.slot.state).conn.is_open()
    }

    /// Why the connection is ending or ended; `None` while open.
    pub fn end_reason(&self) -> Option<EndReason> {
        lock(&self.slot.state).conn.end_reason()
    }

    /// Bytes queued for this connection and not yet taken by its writer.
    pub fn queued_bytes(&self) -> usize {
        lock(&self.slot.state).conn.queued_bytes()
    }

    /// Ready with the reason once the writer is done with the connection (the response has
    /// ended and the session left the hub).
    pub fn poll_end(&self, cx: &mut Context<'_>) -> Poll<EndReason> {
        let mut st = lock(&self.slot.state);
        if let Some(reason) = st.finished {
            return Poll::Ready(reason);
        }
        if !st.end_waiters.iter().any(|w| w.will_wake(cx.waker())) {
            st.end_waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Ready once the connection was cut off (too slow, or replaced by a newer connection
    /// with its id): the transport should be dropped now, even mid-write. Registers `cx` to
    /// be woken then. Transport wrappers use this where the body is not polled while a
    /// write is blocked (hyper).
    pub fn poll_aborted(&self, cx: &mut Context<'_>) -> Poll<EndReason> {
        poll_aborted(&self.slot, cx)
    }

    /// A future that resolves with the reason once the connection has ended (see
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

/// The writer's side of one connection: it takes queued frames and reports the end.
///
/// Dropping an outlet that has not finished counts as [`peer_gone`](Self::peer_gone).
pub struct Outlet {
    slot: Arc<Slot>,
    hub: Arc<Inner>,
    done: bool,
}

impl Outlet {
    /// The session id.
    pub fn id(&self) -> &SessionId {
        &self.slot.id
    }

    /// Moves everything queued into `batch`, first queueing a keep-alive comment if the
    /// stream has been idle as of `now`.
    ///
    /// Returns `Ready(Some(n))` with the number of frames moved, `Ready(None)` once the
    /// stream has ended and everything was taken (the session has then left the hub), and
    /// `Pending` when nothing is queued: the task is woken when something is. Also wake
    /// at [`poll_timeout`](Self::poll_timeout) for keep-alive.
    pub fn poll_drain(
        &mut self,
        cx: &mut Context<'_>,
        now: Instant,
        batch: &mut Batch,
    ) -> Poll<Option<usize>> {
        if self.done {
            return Poll::Ready(None);
        }
        {
            let mut st = lock(&self.slot.state);
            st.conn.handle_timeout(now);
            let n = st.conn.drain_into(batch, now);
            if n > 0 {
                return Poll::Ready(Some(n));
            }
            if !st.conn.is_finished() {
                match &st.writer {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => st.writer = Some(cx.waker().clone()),
                }
                return Poll::Pending;
            }
        }
        self.finish();
        Poll::Ready(None)
    }

    /// Ready once the connection was cut off (too slow, or replaced): stop writing and drop
    /// the transport, even with a write in progress. Registers `cx` to be woken then.
    pub fn poll_aborted(&self, cx: &mut Context<'_>) -> Poll<EndReason> {
        poll_aborted(&self.slot, cx)
    }

    /// When keep-alive next needs [`poll_drain`](Self::poll_drain) to run; `None` if never.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        lock(&self.slot.state).conn.poll_timeout()
    }

    /// Whether the stream has ended (nothing more will be queued).
    pub fn is_finished(&self) -> bool {
        self.done || lock(&self.slot.state).conn.is_finished()
    }

    /// The peer went away (EOF or a write error): the connection ends without marking the
    /// id and leaves the hub at once.
    pub fn peer_gone(&mut self) {
        if !self.done {
            lock(&self.slot.state).conn.peer_gone();
            self.finish();
        }
    }

    /// Why the connection ended; `None` while open.
    pub fn end_reason(&self) -> Option<EndReason> {
        lock(&self.slot.state).conn.end_reason()
    }

    fn finish(&mut self) {
        self.done = true;
        let waiters = {
            let mut st = lock(&self.slot.state);
            if !st.conn.is_finished() {
                st.conn.peer_gone();
            }
            st.finished = Some(st.conn.end_reason().unwrap_or(EndReason::PeerGone));
            std::mem::take(&mut st.end_waiters)
        };
        unregister(&self.hub, &self.slot);
        for w in waiters {
            w.wake();
        }
    }
}

impl Drop for Outlet {
    fn drop(&mut self) {
        if !self.done {
            self.finish();
        }
    }
}

impl fmt::Debug for Outlet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outlet")
            .field("id", &self.slot.id)
            .field("done", &self.done)
            .finish()
    }
}

#[cfg(test)]
mod tests;
