//! The hub: sessions by id, each with its live connection, runtime-neutral (std and
//! [`Waker`](std::task::Waker) only).

mod accept;
mod builder;
mod delivery;
mod groups;
mod life;
mod membership;
mod outlet;
mod relay;
mod session;
mod slot;
mod start;
mod timers;
mod topic;
mod window;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::clock::Clock;
use crate::closed::ClosedSet;
use crate::connection::{ConnectionConfig, EndReason};
use crate::error::Error;
use crate::event::Event;
use crate::frame::Frame;
use crate::handshake::HandshakeConfig;
use crate::history::{History, LogUsage, Target};
use crate::id::{IdGenerator, IdSource, IdVerdict, SessionId};
use crate::lifecycle::SessionEvent;
use crate::position::{self, Claimed, Stamp};
use crate::relay::{Outbound, Recipient, Relayed};
use crate::topic::TopicName;

pub use accept::{Accepted, Decision};
pub use builder::{HubBuilder, ResumeConfig};
pub use outlet::{Cutoff, Outlet};
pub use relay::RelayPort;
pub use session::{Ended, Session};
pub use topic::{Topic, User};
pub use window::WriteWindow;

use groups::Groups;
use slot::{Life, Slot, lock};
use timers::Timers;

/// The registry of sessions: reach one by id, or all of them at once.
///
/// Every adapter uses this one type. Cloning is cheap and shares the registry.
///
/// # How an adapter uses it
///
/// 1. [`handshake`](Self::handshake) on each request, with the [`Store`](crate::Store)
///    shared with other nodes if there is one ([`decide`](Self::decide) without an
///    executor); on [`Decision::Accept`] it gets the application's [`Session`] handle and
///    the writer's [`Outlet`].
/// 2. The writer task loops on [`Outlet::poll_drain`], writes each
///    [`Batch`](crate::Batch) with one vectored write, and sleeps until
///    [`Outlet::poll_timeout`] for keep-alive.
/// 3. When the peer goes away the writer calls [`Outlet::peer_gone`] (or drops the outlet):
///    the session ends, or in resume mode waits for its tab to come back.
/// 4. One task drives [`poll_timers`](Self::poll_timers): in resume mode it ends the
///    sessions whose grace period passed, after a shutdown it cuts the streams that did
///    not drain in time, and with a write window it wakes the writers whose window
///    ended.
///
/// ```
/// use std::time::Instant;
/// use sse_proto::{Decision, Event, Hub, HttpVersion, Request};
///
/// let hub = Hub::builder().build(std::time::Instant::now);
/// let mut req = Request::new(b"GET", b"/events", HttpVersion::Http11);
/// req.header(b"accept", b"text/event-stream");
/// let Decision::Accept(accepted) = hub.decide(&req, Instant::now()) else { unreachable!() };
/// accepted.session.emit("greeting", "hello").unwrap();
/// assert_eq!(hub.broadcast(&Event::new().data("to all")), 1);
/// ```
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

/// A [`Hub`] that does not keep it alive (see [`Hub::downgrade`]), for a driver task.
#[derive(Clone, Debug)]
pub struct WeakHub {
    inner: std::sync::Weak<Inner>,
}

/// The settings a [`Hub`] was built with (see [`HubBuilder`]), from [`Hub::settings`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct HubSettings {
    /// The reconnection delay sent to browsers (before jitter).
    pub retry: Duration,
    /// The keep-alive interval of idle streams; `None` when off.
    pub keep_alive: Option<Duration>,
    /// Each connection's outbox budget, in bytes.
    pub budget: usize,
    /// Resume mode's grace period; `None` when sessions end with their connection.
    pub resume_grace: Option<Duration>,
    /// How writers batch frames.
    pub write_window: WriteWindow,
    /// How long a shutdown lets streams drain before they are cut.
    pub shutdown_grace: Duration,
}

/// What a [`Hub`] holds, for monitoring and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HubStats {
    /// Sessions served by a connection.
    pub attached: usize,
    /// Resume mode: sessions waiting for their tab to come back.
    pub detached: usize,
    /// Resume mode: what the session logs hold.
    pub log: LogUsage,
}

pub(crate) struct Inner {
    clock: Box<dyn Clock>,
    handshake: HandshakeConfig,
    config: ConnectionConfig,
    ids: Box<dyn IdGenerator>,
    closed: Mutex<Box<dyn ClosedSet>>,
    sessions: RwLock<HashMap<SessionId, Arc<Slot>>>,
    resume: Option<Resume>,
    observers: Vec<Observer>,
    shutting_down: AtomicBool,
    /// How long a shutdown lets streams drain before they are cut.
    shutdown_grace: Duration,
    timers: Mutex<Timers>,
    /// Signed ids: the key ring that issues and verifies them.
    #[cfg(feature = "signing")]
    signing: Option<RwLock<crate::signing::KeyRing>>,
    /// The application's say on client ids that passed every other check.
    policy: Option<Policy>,
    /// Relay mode: what waits for the relay to the other nodes.
    relay: Option<Mutex<Outbound>>,
    /// How writers batch frames (never a zero length).
    window: WriteWindow,
    /// Whether most attached writers were still busy (not back waiting for frames) when the
    /// last fan-out reached them: the adaptive window may then stretch further.
    saturated: AtomicBool,
    /// The streams whose writer holds an outlet.
    streams: Streams,
    /// Topics and users, and their members. Lock order: after `history`, before `sessions`.
    groups: Mutex<Groups>,
    /// The topic rule and the bound on memberships.
    topics: Topics,
}

/// How sessions join topics (see [`HubBuilder::topic_rule`]).
pub(crate) struct Topics {
    rule: Option<TopicRule>,
    /// Most topics one session may be in at once (and most past stretches it keeps).
    max: usize,
}

impl Topics {
    const DEFAULT_MAX: usize = 64;

    /// Whether the rule grants `topic` to `user`; without a rule, whether `otherwise`.
    fn grants(&self, topic: &TopicName, user: Option<&[u8]>, otherwise: bool) -> bool {
        self.rule
            .as_ref()
            .map_or(otherwise, |rule| rule(topic, user))
    }
}

/// The application's topic rule.
type TopicRule = Box<dyn Fn(&TopicName, Option<&[u8]>) -> bool + Send + Sync>;

/// How many streams are open (their writers hold an [`Outlet`]), and who waits for none.
#[derive(Default)]
pub(crate) struct Streams {
    open: std::sync::atomic::AtomicUsize,
    waiting: Mutex<Vec<std::task::Waker>>,
}

impl Streams {
    pub(crate) fn open(&self) {
        self.open.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn close(&self) {
        if self.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            let waiting = std::mem::take(&mut *lock(&self.waiting));
            waiting.into_iter().for_each(std::task::Waker::wake);
        }
    }

    fn poll_none(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        if self.open.load(Ordering::Acquire) == 0 {
            return std::task::Poll::Ready(());
        }
        let mut waiting = lock(&self.waiting);
        // Looked at again under the lock: the last close takes the list under it.
        if self.open.load(Ordering::Acquire) == 0 {
            return std::task::Poll::Ready(());
        }
        if !waiting.iter().any(|w| w.will_wake(cx.waker())) {
            waiting.push(cx.waker().clone());
        }
        std::task::Poll::Pending
    }
}

/// The application's id policy (see [`HubBuilder::id_policy`]).
type Policy = Box<dyn Fn(&SessionId, Option<&[u8]>, IdSource) -> IdVerdict + Send + Sync>;

/// The application's callback for [`SessionEvent`]s.
type Observer = Box<dyn Fn(&SessionEvent) + Send + Sync>;

/// Resume mode's state. Lock order, everywhere: `history`, then `groups`, then `sessions`,
/// then a slot, then `closed` or `timers`.
struct Resume {
    grace: Duration,
    /// The history's placement, which never changes.
    placement: crate::placement::Placement,
    /// Also the sequencing lock: an event's position is assigned and the event queued to
    /// its connections under it, so every connection sees positions in increasing order.
    history: Mutex<Box<dyn History>>,
}

/// What to do about a session once its slot's lock is released.
#[must_use]
pub(crate) enum Follow {
    Nothing,
    /// Resume mode: the session lost its connection.
    Detached(EndReason),
    /// The session is over.
    End(EndReason),
}

impl Hub {
    /// Starts a [`HubBuilder`].
    pub fn builder() -> HubBuilder {
        HubBuilder::new()
    }

    /// The settings the hub was built with.
    pub fn settings(&self) -> HubSettings {
        HubSettings {
            retry: self.inner.handshake.retry_value(),
            keep_alive: self.inner.config.keep_alive,
            budget: self.inner.config.budget,
            resume_grace: self.inner.resume.as_ref().map(|r| r.grace),
            write_window: self.inner.window,
            shutdown_grace: self.inner.shutdown_grace,
        }
    }

    fn slot(&self, id: &str) -> Option<Arc<Slot>> {
        let sessions = self.inner.sessions();
        match sessions.get(id) {
            Some(slot) => Some(slot.clone()),
            None => sessions.get(self.session_key(id)).cloned(),
        }
    }

    /// The session id in `id`: in resume mode a browser's last event id is the session id
    /// and a position (`<id>~<epoch>.<seq>`), and names the same session. (A session whose
    /// id is exactly `id` comes first: a client may have offered an id with a `~` in it,
    /// though never one that reads as an id and a position, which the handshake refuses.)
    fn session_key<'a>(&self, id: &'a str) -> &'a str {
        if self.inner.resume.is_none() {
            return id;
        }
        match position::split_token(id.as_bytes()) {
            (head, Claimed::At(_)) => id.get(..head.len()).unwrap_or(id),
            _ => id,
        }
    }

    /// The session `id` names, parsed, for the relay.
    fn relayed_id(&self, id: &str) -> Result<SessionId, Error> {
        let max = self.inner.handshake.max_id_len_value();
        SessionId::parse(self.session_key(id).as_bytes(), max).map_err(|_| Error::NotConnected)
    }

    /// The handle of the session with this id: attached, or in resume mode detached.
    ///
    /// Every call that takes a session id (this one, [`send_to`](Self::send_to),
    /// [`close`](Self::close)) also takes the form a browser holds in resume mode, its last
    /// event id (`<id>~<epoch>.<seq>`): an application that addresses a tab by the
    /// `lastEventId` it reported reaches it whether resume mode is on or not.
    pub fn session(&self, id: &str) -> Option<Session> {
        self.slot(id)
            .map(|slot| Session::new(slot, self.inner.clone()))
    }

    /// Sends `event` to one session. Fails with [`Error::NotConnected`] for an unknown id;
    /// see [`Session::send_event`].
    pub fn send_to(&self, id: &str, event: &Event) -> Result<(), Error> {
        self.send_frame_to(id, event.encode())
    }

    /// Sends an encoded frame to one session.
    ///
    /// In relay mode an id this hub does not serve goes to the relay all the same, which
    /// reaches it on whichever node serves it (and drops it when none does).
    pub fn send_frame_to(&self, id: &str, frame: Frame) -> Result<(), Error> {
        match self.slot(id) {
            Some(slot) => self.inner.send(&slot, frame, true),
            None if self.inner.relay.is_some() => {
                let id = self.relayed_id(id)?;
                self.inner.relay(Relayed::Event {
                    to: Recipient::Session(id),
                    frame,
                })
            }
            None => Err(Error::NotConnected),
        }
    }

    /// Encodes `event` once and sends it to every session. Returns how many took it.
    pub fn broadcast(&self, event: &Event) -> usize {
        self.broadcast_frame(&event.encode())
    }

    /// Sends one shared frame to every session and returns how many took it.
    ///
    /// In resume mode the frame is logged once for all of them, detached sessions included
    /// (and counted). A connection over its budget is cut off (see
    /// [`HubBuilder::budget`]); in resume mode its session still
    /// counts, and its tab gets the event when it comes back.
    ///
    /// In relay mode the frame goes to the relay, which numbers it and delivers it on every
    /// node; the count is then this hub's sessions (0 when the relay's queue is full).
    pub fn broadcast_frame(&self, frame: &Frame) -> usize {
        if self.inner.relay.is_some() {
            let sent = self.inner.relay(Relayed::Event {
                to: Recipient::All,
                frame: frame.clone(),
            });
            return if sent.is_ok() { self.len() } else { 0 };
        }
        let (count, follow) = match &self.inner.resume {
            None => self.inner.fan_out(None, frame),
            Some(resume) => {
                let mut history = lock(&resume.history);
                let seq = history.append(Target::All, frame);
                let at = Stamp::new(history.epoch(), 0, seq);
                self.inner.fan_out(Some(&at), frame)
            }
        };
        // With every lock released: the observer may call back into the hub.
        for (slot, next) in follow {
            self.inner.follow(&slot, next);
        }
        count
    }

    /// Sends `event` to every attached connection without logging it (see
    /// [`Session::send_volatile`]). Returns how many took it.
    pub fn broadcast_volatile(&self, event: &Event) -> usize {
        let (count, follow) = self.inner.fan_out(None, &event.encode());
        for (slot, next) in follow {
            self.inner.follow(&slot, next);
        }
        count
    }

    /// Closes one session (see [`Session::close`]). Fails with [`Error::NotConnected`] for
    /// an unknown id; the id is then not marked.
    ///
    /// In relay mode an id this hub does not serve is closed through the relay.
    pub fn close(&self, id: &str) -> Result<(), Error> {
        let now = self.inner.clock.now();
        match self.slot(id) {
            Some(slot) => {
                self.inner.close(&slot, now, true);
                Ok(())
            }
            None if self.inner.relay.is_some() => {
                let id = self.relayed_id(id)?;
                lock(&self.inner.closed).mark(&id, now);
                self.inner.relay(Relayed::Closed { id })
            }
            None => Err(Error::NotConnected),
        }
    }

    /// Number of sessions held: attached ones, and in resume mode detached ones.
    pub fn len(&self) -> usize {
        self.inner.sessions().len()
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ids of the sessions served by a connection right now, in no particular order.
    pub fn ids(&self) -> Vec<SessionId> {
        self.inner
            .sessions()
            .values()
            .filter(|slot| slot.lock().link.is_some())
            .map(|slot| slot.id.clone())
            .collect()
    }

    /// Counts of attached and detached sessions, and what the logs hold.
    pub fn stats(&self) -> HubStats {
        let mut stats = HubStats::default();
        if let Some(resume) = &self.inner.resume {
            stats.log = lock(&resume.history).usage();
        }
        for slot in self.inner.sessions().values() {
            let st = slot.lock();
            match (st.life, st.link.is_some()) {
                (Life::Ended(_), _) => {}
                (_, true) => stats.attached += 1,
                (_, false) => stats.detached += 1,
            }
        }
        stats
    }

    /// Ends every stream after what is queued, and every session, without marking ids, so
    /// tabs reconnect elsewhere. Returns how many streams were told.
    ///
    /// From now on the handshake answers [`Decision::GoAway`]. A stream that has
    /// not drained within the shutdown grace (1 s by default, see
    /// [`HubBuilder::shutdown_grace`]) is cut by the hub's timers
    /// ([`poll_timers`](Self::poll_timers)), so shutdown never waits on a slow reader.
    pub fn shutdown(&self) -> usize {
        let now = self.inner.clock.now();
        self.inner.shutting_down.store(true, Ordering::Release);
        trace!(info, sessions = self.len(), grace = ?self.inner.shutdown_grace, "hub shutting down");
        let deadline = now + self.inner.shutdown_grace;
        let waker = {
            let mut timers = lock(&self.inner.timers);
            timers.cut_at = Some(timers.cut_at.map_or(deadline, |at| at.min(deadline)));
            timers.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        let mut told = 0;
        let mut detached = Vec::new();
        for slot in self.inner.sessions().values() {
            let writer = {
                let mut st = slot.lock();
                if !st.is_live() {
                    continue;
                }
                match &mut st.link {
                    Some(link) => {
                        link.conn.shutdown_by(deadline);
                        told += 1;
                        let writer = link.writer.take();
                        st.life = Life::Ending(EndReason::Shutdown);
                        writer
                    }
                    None => {
                        detached.push(slot.clone());
                        None
                    }
                }
            };
            if let Some(w) = writer {
                w.wake();
            }
        }
        for slot in detached {
            self.inner
                .end_session(&slot, EndReason::Shutdown, |st| st.link.is_none());
        }
        told
    }

    /// Changes the key ring of signed ids while the hub runs (rotate to a new key, retire an
    /// old one): `update` gets the ring; its result is returned. `None` when ids are not
    /// signed (see [`HubBuilder::signing`]).
    ///
    /// ```
    /// use sse_proto::{Hub, Key, KeyRing};
    ///
    /// let hub = Hub::builder().signing(KeyRing::new(Key::new("k1", [1; 32])?)).build(std::time::Instant::now);
    /// hub.update_key_ring(|ring| ring.rotate(Key::new("k2", [2; 32])?)).unwrap()?;
    /// // Later, once tabs had time to come back and be re-signed:
    /// hub.update_key_ring(|ring| ring.retire("k1")).unwrap()?;
    /// # Ok::<(), sse_proto::KeyError>(())
    /// ```
    #[cfg(feature = "signing")]
    pub fn update_key_ring<R>(
        &self,
        update: impl FnOnce(&mut crate::signing::KeyRing) -> R,
    ) -> Option<R> {
        let ring = self.inner.signing.as_ref()?;
        let mut ring = ring
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Some(update(&mut ring))
    }

    /// `Ready` once no stream is open: every writer has dropped its [`Outlet`] (its
    /// connection is over). After a [`shutdown`](Self::shutdown) this says the hub is done;
    /// `cx` is woken when the last stream ends. The adapters' servers wait on it.
    pub fn poll_drained(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        self.inner.streams.poll_none(cx)
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
            .field("resume", &self.inner.resume.as_ref().map(|r| r.grace))
            .field("shutting_down", &self.is_shutting_down())
            .finish()
    }
}

#[cfg(test)]
mod tests;
