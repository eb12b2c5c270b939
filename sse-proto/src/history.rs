//! Session logs for resume mode: what was sent, at which position, bounded.
//!
//! Every logged event gets the next number of one sequence per store, whoever it is for: one
//! session, a topic's members, a user's sessions, or everyone. An event is logged once, in
//! the log of whom it was sent to, so a broadcast to ten thousand detached sessions, or a
//! publish to a topic of ten thousand members, holds one frame. A reconnect from position `p`
//! replays the events after `p` of every log the session was entitled to (its own, the
//! broadcasts, its user's, and each topic's while it was a member), merged by sequence
//! number, or reports why it cannot.
//!
//! A sharded store (several nodes on several Redis masters) numbers each shard's events in
//! a sequence of its own, and keeps each log on one shard ([`Placement`]): a tab's place is
//! then a [`Cursor`], one number per shard it reads, and a replay keeps each shard's order.

mod memory;
#[cfg(test)]
mod tests;

use crate::connection::ConnectionConfig;
use crate::cursor::Cursor;
use crate::frame::Frame;
use crate::id::SessionId;
use crate::lifecycle::GapReason;
use crate::placement::Placement;
use crate::request::Principal;
use crate::topic::{Membership, TopicName};

pub use memory::MemoryHistory;

/// One logged event: its shard, its sequence number and its encoded frame (shared, not
/// copied).
#[derive(Debug, Clone)]
pub struct Logged {
    /// The shard whose sequence numbered it (0 in a store with one sequence).
    pub shard: u8,
    /// The sequence number in its shard, as a [`Cursor`](crate::Cursor) names it.
    pub seq: u64,
    /// The event as encoded, without its `id:` line.
    pub frame: Frame,
}

/// Who a logged event is for: whose log holds it.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// Every session (a broadcast).
    All,
    /// One session.
    Session(&'a SessionId),
    /// The members of a topic.
    Topic(&'a TopicName),
    /// Every session of a user.
    User(&'a Principal),
}

/// What one session is entitled to replay, besides the broadcasts: its own log, its user's
/// from when the session became theirs, and each topic's for the stretches it was a member.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// The session.
    pub session: &'a SessionId,
    /// The session's user, and the head of the user's shard when the session became theirs.
    pub user: Option<(&'a Principal, u64)>,
    /// The session's memberships, current and past.
    pub topics: &'a [Membership],
}

impl<'a> Scope<'a> {
    /// The scope of a session in no topic and of no user.
    pub fn session(id: &'a SessionId) -> Scope<'a> {
        Scope {
            session: id,
            user: None,
            topics: &[],
        }
    }
}

/// How much of its past one session may need replayed: past either bound, a reconnect is a
/// gap ([`GapReason::Overflow`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogBounds {
    /// Most events replayed to one reconnect (and kept in each log).
    pub max_events: usize,
    /// Most bytes replayed to one reconnect (and kept in each log).
    pub max_bytes: usize,
}

impl LogBounds {
    /// Default: 4 096 events.
    pub const DEFAULT_MAX_EVENTS: usize = 4096;
}

impl Default for LogBounds {
    /// 4 096 events and the connection budget (1 MiB) in bytes: a replay never holds more
    /// than a slow connection is allowed to queue.
    fn default() -> Self {
        LogBounds {
            max_events: Self::DEFAULT_MAX_EVENTS,
            max_bytes: ConnectionConfig::DEFAULT_BUDGET,
        }
    }
}

/// What a store holds, for stats and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct LogUsage {
    /// Events held, over every log.
    pub events: usize,
    /// Encoded bytes held, over every log.
    pub bytes: usize,
    /// Sessions with a log of their own.
    pub sessions: usize,
    /// Topics and users with a log.
    pub groups: usize,
}

/// Where a hub in resume mode logs events. [`MemoryHistory`] is the default; a shared store
/// for several nodes implements this trait instead.
///
/// All methods are synchronous and called under the hub's sequencing lock, so that positions
/// are assigned in the order events are delivered; a remote store answers a reconnect's
/// history ahead of time instead (see [`Answers`](crate::Answers)).
pub trait History: Send {
    /// The epoch of this store's positions. A store that loses its contents (a restart)
    /// must come back with another epoch.
    fn epoch(&self) -> u64;

    /// Which shard keeps each log: [`Placement::ONE`] for a store with one sequence; a
    /// sharded store numbers each shard's events in a sequence of its own.
    fn placement(&self) -> Placement;

    /// The sequence number of the last event logged on `shard` (0 before any).
    fn head(&self, shard: u8) -> u64;

    /// Logs `frame` for `target` and returns its sequence number: one more than the
    /// [`head`](Self::head) of its shard.
    fn append(&mut self, target: Target<'_>, frame: &Frame) -> u64;

    /// Appends to `out`, in order within each shard, every event `scope` is entitled to
    /// after `after` (on each shard, after the cursor's sequence number for it), and returns
    /// the topics whose events after it cannot all be told (evicted): their events are left
    /// out, the others replayed. Fails when the cursor names a sequence number past a
    /// shard's head, when the session's own events, the broadcasts or its user's cannot be
    /// told exactly, or when the replay is over the bounds; `out` is then left as it was.
    /// The cursor's epoch is the caller's to check.
    fn replay(
        &self,
        scope: &Scope<'_>,
        after: &Cursor,
        out: &mut Vec<Logged>,
    ) -> Result<Vec<TopicName>, GapReason>;

    /// Logs `frame` for `target` at `seq`, a sequence number of the target's shard given by
    /// a relay (relay mode). Returns `false`, logging nothing, when `seq` is not above that
    /// shard's [`head`](Self::head) (a delivery seen before); otherwise `seq` becomes it.
    fn append_at(&mut self, target: Target<'_>, seq: u64, frame: &Frame) -> bool;

    /// Records that events for `target` after the head were delivered without being logged
    /// (the relay was away): a replay from the head or before is a gap from now on.
    fn gap(&mut self, target: Target<'_>);

    /// Records that the store lost every event of `shard` numbered up to `through` (the
    /// shard restarted empty, and numbers its events after `through` from now on): a replay
    /// from before `through` on that shard is a gap for the logs there, and the shard's
    /// head is `through` at least.
    fn lose_shard(&mut self, shard: u8, through: u64);

    /// Drops the log of `target` (a session expired or was closed; no session is entitled
    /// to a topic's or a user's events any more). Broadcasts are never forgotten.
    fn forget(&mut self, target: Target<'_>);

    /// Drops everything and starts again in `epoch` at sequence number 0: the relay's store
    /// lost its contents (a restart), so no position of the old epoch means anything now.
    fn reset(&mut self, epoch: u64);

    /// Moves the log of `from` to `to` (the session continues under a re-signed id),
    /// replacing whatever `to` had.
    fn rename(&mut self, from: &SessionId, to: &SessionId);

    /// What the store holds.
    fn usage(&self) -> LogUsage;
}
