//! What the application learns about a session: how a connection continued it, and the
//! lifecycle events of the hub's observer.

use std::fmt;

use crate::connection::EndReason;
use crate::id::SessionId;
use crate::topic::TopicName;

/// How an accepted connection relates to what its tab saw before.
///
/// ```
/// use sse_proto::{Continuity, GapReason};
///
/// fn greet(continuity: Continuity) -> &'static str {
///     match continuity {
///         Continuity::Resumed { .. } => "nothing was lost",
///         Continuity::New => "send the initial state",
///         // A gap (or a kind this version does not know): the tab may have missed events.
///         _ => "resync the tab",
///     }
/// }
/// assert_eq!(greet(Continuity::Resumed { replayed: 3 }), "nothing was lost");
/// assert_eq!(greet(Continuity::Gap(GapReason::Overflow)), "resync the tab");
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Continuity {
    /// A session that did not exist here: a fresh id, or an id offered without a position
    /// that this hub does not know (a tab that was given a new id, say).
    New,
    /// The same session, continued exactly: every event after the tab's position was
    /// replayed, in order, before anything live.
    Resumed {
        /// How many events were replayed (0 when the tab was up to date).
        replayed: usize,
    },
    /// The same session id, but events may have been missed and none were replayed: the
    /// application should send the tab what it needs to catch up.
    Gap(GapReason),
}

impl Continuity {
    /// Whether the connection continued its session with nothing lost.
    pub fn is_resumed(&self) -> bool {
        matches!(self, Continuity::Resumed { .. })
    }
}

/// Why a reconnect could not be resumed exactly.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GapReason {
    /// The hub does not keep sessions past their connection (resume mode is off).
    NotResumable,
    /// The client offered its session id without a position.
    NoPosition,
    /// The position was malformed, or names an event that was never logged.
    InvalidPosition,
    /// The position is from another run of the log store (a restarted server).
    UnknownEpoch,
    /// The session is not known here any more (its grace period passed), or its log starts
    /// after the position.
    Expired,
    /// The log no longer holds every event after the position: it overflowed its bounds.
    Overflow,
    /// The store lost events after the position: a shard of a sharded store restarted empty
    /// ([`RelayPort::restart_shard`](crate::RelayPort::restart_shard)), and the session's own
    /// log, its user's or the broadcasts are there.
    Lost,
}

impl fmt::Display for GapReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GapReason::NotResumable => "sessions are not resumable on this hub",
            GapReason::NoPosition => "the client offered no position",
            GapReason::InvalidPosition => "the client's position is malformed or unknown",
            GapReason::UnknownEpoch => "the client's position is from another server run",
            GapReason::Expired => "the session expired before the client came back",
            GapReason::Overflow => "the session's log overflowed while the client was away",
            GapReason::Lost => {
                "the store lost events the client had not seen (a shard restarted empty)"
            }
        })
    }
}

/// A change in a session's life, reported to the hub's observer
/// ([`HubBuilder::observe`](crate::HubBuilder::observe)) as it happens.
///
/// A session is *attached* while a connection serves it. In resume mode it is *detached*
/// between connections and *expires* when its grace period passes first; without resume
/// mode it ends with its connection.
///
/// A session is not its stream. A stream that a newer connection of the same tab replaces
/// ([`EndReason::Replaced`]), or that the server drops without closing the session
/// ([`EndReason::Dropped`]) in resume mode, does not end the session: the observer
/// hears `Attached` for the newer connection, or `Detached`, never `Ended`. Only `Ended`,
/// `Expired` and `Renamed` say that an id is over, so an application that keeps state per
/// session id can drop it on those three alone.
///
/// ```
/// use sse_proto::SessionEvent;
///
/// fn forget(event: &SessionEvent) -> Option<&str> {
///     match event {
///         SessionEvent::Ended { id, .. } | SessionEvent::Expired { id } => Some(id.as_str()),
///         // The same session goes on under `to`: move what you keep for `from`.
///         SessionEvent::Renamed { from, .. } => Some(from.as_str()),
///         _ => None,
///     }
/// }
/// # let _ = forget;
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// A connection took the session: a new session, a resumed one, or one with a gap.
    Attached {
        /// The session.
        id: SessionId,
        /// How the connection continued it.
        continuity: Continuity,
    },
    /// Resume mode: the session lost its connection and waits for the tab to come back.
    Detached {
        /// The session.
        id: SessionId,
        /// Why the connection ended.
        reason: EndReason,
    },
    /// Resume mode: the grace period passed without a connection; the session is gone.
    Expired {
        /// The session.
        id: SessionId,
    },
    /// The session is over: closed by the server, shut down, or (without resume mode) its
    /// connection ended. Never for a stream replaced by a newer connection of its session.
    Ended {
        /// The session.
        id: SessionId,
        /// Why.
        reason: EndReason,
    },
    /// The session goes on under another id: its signed id was re-signed with the current
    /// key when its tab came back (see [`HubBuilder::signing`](crate::HubBuilder)). The
    /// `Attached` for `to` follows.
    Renamed {
        /// The id it had.
        from: SessionId,
        /// The id it has now.
        to: SessionId,
    },
    /// The session became a member of a topic: joined by the application, or granted at
    /// accept from the tab's request.
    Joined {
        /// The session.
        id: SessionId,
        /// The topic.
        topic: TopicName,
    },
    /// The session stopped being a member of a topic: it left, the topic rule no longer
    /// grants it (checked when the tab comes back), or the session is over (after its
    /// `Ended` or `Expired`).
    Left {
        /// The session.
        id: SessionId,
        /// The topic.
        topic: TopicName,
    },
}

impl SessionEvent {
    /// The session the event is about (for a rename, the id it had).
    pub fn id(&self) -> &SessionId {
        match self {
            SessionEvent::Attached { id, .. }
            | SessionEvent::Detached { id, .. }
            | SessionEvent::Expired { id }
            | SessionEvent::Ended { id, .. }
            | SessionEvent::Renamed { from: id, .. }
            | SessionEvent::Joined { id, .. }
            | SessionEvent::Left { id, .. } => id,
        }
    }
}
