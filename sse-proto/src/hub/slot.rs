//! One session's state in the hub: its live connection (the link), links that were replaced
//! and still write their last block, and where the session is in its life.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use super::window::{Cadence, Pacing};
use crate::connection::{Connection, EndReason};
use crate::cursor::{Cursor, Kept};
use crate::error::Error;
use crate::frame::Frame;
use crate::id::SessionId;
use crate::position::Stamp;
use crate::request::Principal;
use crate::topic::{Membership, TopicName};

/// Locks `m`. A panic elsewhere must not take every session down with it: the state under
/// these locks stays consistent across a panic (each update is a few assignments).
pub(crate) fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A session: shared by its [`Session`](crate::Session) handles and the
/// [`Outlet`](crate::Outlet)s of its connections.
pub(crate) struct Slot {
    pub(crate) id: SessionId,
    /// Whether the id was generated for this session.
    pub(crate) is_new: bool,
    pub(crate) state: Mutex<SlotState>,
}

/// Where a session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Life {
    /// Taking events: attached when it has a link, detached (resume mode) when not.
    Live,
    /// Closed or shut down: its link writes what is queued, then the session ends.
    Ending(EndReason),
    /// Over. Sends fail.
    Ended(EndReason),
}

pub(crate) struct SlotState {
    /// The connection serving the session, if attached.
    pub(crate) link: Option<Link>,
    /// Connections cut off or replaced that their writers have not finished with yet.
    pub(crate) retired: Vec<Link>,
    next_link_no: u64,
    pub(crate) life: Life,
    /// Resume mode: on each shard it names, the first sequence number the session's logs
    /// are exact from (its epoch is not used).
    pub(crate) since: Kept,
    /// Resume mode: when the session lost its connection; `None` while attached.
    pub(crate) detached_at: Option<Instant>,
    /// Resume mode: whether the expiry queue holds an entry for this session (at most one).
    pub(crate) expiry_queued: bool,
    /// Tasks waiting for the session to end.
    pub(crate) end_waiters: Vec<Waker>,
    /// The session's memberships of topics: the current ones, and in resume mode past
    /// stretches a tab coming back may still replay.
    pub(crate) topics: Vec<Membership>,
    /// The session's user, and the head of the user's shard when the session became theirs.
    pub(crate) user: Option<(Principal, u64)>,
}

/// One connection of a session: the core's state machine and the tasks waiting on it.
pub(crate) struct Link {
    pub(crate) link_no: u64,
    pub(crate) conn: Connection,
    /// The writer, while it waits for frames: `Some` only between a
    /// [`poll_drain`](crate::Outlet::poll_drain) that found nothing and the wake-up that ends
    /// the wait, so `Some` also says that the writer has nothing in flight.
    pub(crate) writer: Option<Waker>,
    /// Write window: where this connection's stands.
    pub(crate) window: Gathering,
    /// Whether the writer has taken its first batch (the preamble, and what was queued
    /// with it): the window never holds what precedes it.
    pub(crate) primed: bool,
    /// The writer's recent writes (adaptive window).
    pub(crate) cadence: Cadence,
    /// Tasks (transport guards) waiting for a cut-off (the connection is aborted).
    pub(crate) abort_waiters: Vec<Waker>,
    /// The tab's cursor: on each shard, the highest sequence number this connection has
    /// (replayed or queued). A logged event at or below it is not queued again (a relay may
    /// deliver what a replay already gave).
    pub(crate) seen: Kept,
    /// Tasks waiting for room in the queue ([`Session::forward`](crate::Session)).
    pub(crate) room_waiters: Vec<Waker>,
}

impl Drop for Link {
    fn drop(&mut self) {
        // Whoever waits for room in this connection's queue looks again (at the next one).
        self.room_waiters.drain(..).for_each(Waker::wake);
    }
}

/// What to do for the writer of a link once the slot's lock is released, after a frame was
/// queued on it.
#[must_use]
pub(crate) enum Wake {
    /// Nothing: the writer is busy and takes the frame when it asks next, or a window is
    /// open and the frame goes with the others when it ends.
    Nothing,
    /// Wake it now.
    Now(Waker),
    /// Write window: a window opened on link `link_no`; the hub's timers close it at
    /// `at` and wake the writer then (see [`Inner::hold`](super::Inner::hold)).
    Later { at: Instant, link_no: u64 },
}

/// Where a connection's write window stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gathering {
    /// No window: the next frame queued may open one (once the writer is primed; adaptive:
    /// only within the window's length of the last write).
    Idle,
    /// A window is open until this instant: what is queued wakes nobody and the writer takes
    /// nothing, unless the connection stops being open (a close, a cut-off, a shutdown or a
    /// replacement wakes the writer at once, and it drains). The hub's timers end it.
    Open(Instant),
    /// The window ended and the writer was woken (or is busy and asks again soon): its next
    /// drain takes everything, what comes before it included, and opens no new window.
    Ended,
}

/// What queueing on a session's link did.
pub(crate) enum Queued {
    /// Queued; act on the writer once the lock is released.
    Sent(Wake),
    /// No connection is attached (resume mode, detached).
    Detached,
    /// The connection is ending and takes nothing more.
    Ending,
    /// Over budget: the link was cut off and retired; wake these once the lock is released.
    Cut(Wakeups, Error),
}

/// Tasks to wake once a slot's lock is released. Nothing is allocated unless a connection
/// was cut off with guards waiting.
#[derive(Default)]
pub(crate) struct Wakeups {
    pub(crate) writer: Option<Waker>,
    pub(crate) guards: Vec<Waker>,
}

impl Wakeups {
    pub(crate) fn wake(self) {
        if let Some(w) = self.writer {
            w.wake();
        }
        self.guards.into_iter().for_each(Waker::wake);
    }
}

impl Slot {
    pub(crate) fn new(id: SessionId, is_new: bool, since: Cursor) -> Slot {
        Slot {
            id,
            is_new,
            state: Mutex::new(SlotState {
                link: None,
                retired: Vec::new(),
                next_link_no: 0,
                life: Life::Live,
                since: Kept::new(&since),
                detached_at: None,
                expiry_queued: false,
                end_waiters: Vec::new(),
                topics: Vec::new(),
                user: None,
            }),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, SlotState> {
        lock(&self.state)
    }
}

impl SlotState {
    pub(crate) fn is_live(&self) -> bool {
        self.life == Life::Live
    }

    /// Attaches `conn` as the session's connection, retiring the one it replaces (which
    /// writes `last` and ends). Returns the new link's generation and the replaced writer
    /// to wake.
    pub(crate) fn attach(
        &mut self,
        conn: Connection,
        seen: Cursor,
        last: Option<Frame>,
    ) -> (u64, Option<Waker>) {
        let mut woken = None;
        if let Some(mut old) = self.link.take() {
            if let Some(last) = last {
                old.conn.replaced(last);
            }
            woken = old.writer.take();
            self.retired.push(old);
        }
        let link_no = self.next_link_no;
        self.next_link_no += 1;
        self.detached_at = None;
        self.link = Some(Link {
            link_no,
            conn,
            writer: None,
            window: Gathering::Idle,
            cadence: Cadence::default(),
            primed: false,
            abort_waiters: Vec::new(),
            seen: Kept::new(&seen),
            room_waiters: Vec::new(),
        });
        (link_no, woken)
    }

    /// The link of generation `link_no`: the attached one or a retired one.
    pub(crate) fn link_mut(&mut self, link_no: u64) -> Option<&mut Link> {
        match &mut self.link {
            Some(link) if link.link_no == link_no => Some(link),
            _ => self.retired.iter_mut().find(|l| l.link_no == link_no),
        }
    }

    /// Queues `frame` on the attached connection: after its `id:` line for a logged event
    /// (at `stamp`), unless the connection has that event already. With a write window
    /// (`pacing`: the window as of now), the writer's wake-up may wait for it.
    #[inline]
    pub(crate) fn queue(
        &mut self,
        id: &SessionId,
        stamp: Option<&Stamp>,
        frame: Frame,
        pacing: Option<Pacing>,
    ) -> Queued {
        let Some(link) = &mut self.link else {
            return Queued::Detached;
        };
        let result = match stamp {
            Some(stamp) if stamp.seq <= link.seen.seq(stamp.shard).unwrap_or(0) => {
                return Queued::Sent(Wake::Nothing);
            }
            Some(stamp) => {
                // A shard the cursor cannot name (the session's shards were counted when
                // it joined, so only a user given at a reconnect gets here): the tab has
                // the event, and a reconnect replays it again rather than lose it.
                let _ = link.seen.set(stamp.shard, stamp.seq);
                let line = stamp.line(id, &link.seen);
                link.conn.send_logged(line, frame)
            }
            None => link.conn.send(frame),
        };
        match result {
            Ok(()) => Queued::Sent(link.wake(pacing)),
            Err(err @ Error::Backpressure { .. }) => Queued::Cut(self.retire_link(), err),
            Err(_) => Queued::Ending,
        }
    }

    /// Moves the attached link (cut off) to the retired ones; returns its tasks to wake.
    pub(crate) fn retire_link(&mut self) -> Wakeups {
        let Some(mut link) = self.link.take() else {
            return Wakeups::default();
        };
        let wakeups = Wakeups {
            writer: link.writer.take(),
            guards: std::mem::take(&mut link.abort_waiters),
        };
        self.retired.push(link);
        wakeups
    }

    /// The topics the session is in now, sorted.
    pub(crate) fn current_topics(&self) -> Vec<TopicName> {
        let mut topics: Vec<TopicName> = self
            .topics
            .iter()
            .filter(|m| m.is_open())
            .map(|m| m.topic.clone())
            .collect();
        topics.sort();
        topics
    }

    /// Why the session is ending or ended; `None` while live.
    pub(crate) fn end_reason(&self) -> Option<EndReason> {
        match self.life {
            Life::Live => None,
            Life::Ending(r) | Life::Ended(r) => Some(r),
        }
    }
}

impl Link {
    /// How the writer learns of a frame just queued: at once, or, with a write window, when
    /// the window the frame opens ends. Nothing when a window is open or has just ended (it
    /// takes the frame with the others) or the writer is busy (it takes the frame when it
    /// asks next). The first batch is never held.
    #[inline]
    fn wake(&mut self, pacing: Option<Pacing>) -> Wake {
        if self.window != Gathering::Idle {
            return Wake::Nothing;
        }
        let end = pacing
            .filter(|_| self.primed)
            .and_then(|p| p.window_end(&self.cadence, self.writer.is_some()));
        match end {
            Some(at) => {
                self.window = Gathering::Open(at);
                Wake::Later {
                    at,
                    link_no: self.link_no,
                }
            }
            None => match self.writer.take() {
                Some(writer) => {
                    if let Some(p) = pacing {
                        self.cadence.woken(p.now);
                    }
                    Wake::Now(writer)
                }
                None => Wake::Nothing,
            },
        }
    }

    /// Ready once the connection was cut off; registers `cx` to be woken when it is.
    pub(crate) fn poll_cut_off(&mut self, cx: &mut Context<'_>) -> Poll<EndReason> {
        if self.conn.is_cut_off() {
            return Poll::Ready(self.conn.end_reason().unwrap_or(EndReason::TooSlow));
        }
        if !self.abort_waiters.iter().any(|w| w.will_wake(cx.waker())) {
            self.abort_waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }
}
