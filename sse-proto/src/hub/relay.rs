//! The hub's side of relay mode: [`RelayPort`], through which a [`Store`](crate::Store)
//! takes what the hub hands the relay and delivers back what the relay numbered.

use std::sync::Arc;
use std::task::{Context, Poll};

use super::groups::{Changes, GroupRef};
use super::slot::{Queued, Slot, lock};
use super::{Follow, Hub, Inner, WeakHub};
use crate::cursor::Kept;
use crate::error::Error;
use crate::frame::Frame;
use crate::id::SessionId;
use crate::lifecycle::SessionEvent;
use crate::position::Stamp;
use crate::relay::{Recipient, Relayed};
use crate::topic::TopicName;

/// The relay's side of a hub in relay mode: what only the [`Store`](crate::Store) that
/// relays the hub's events to other nodes does with it. One port per hub, claimed by the
/// adapter for its store ([`claim`](Self::claim)); it does not keep the hub alive, and every
/// method does nothing once the hub is dropped.
#[derive(Debug, Clone)]
pub struct RelayPort {
    hub: WeakHub,
}

impl RelayPort {
    /// The port of `hub`, the first time it is asked for; `None` after that, or when the
    /// hub is not in relay mode ([`HubBuilder::relay`](crate::HubBuilder::relay)).
    pub fn claim(hub: &Hub) -> Option<RelayPort> {
        let outbound = hub.inner.relay.as_ref()?;
        let mut outbound = lock(outbound);
        (!std::mem::replace(&mut outbound.claimed, true)).then(|| RelayPort {
            hub: hub.downgrade(),
        })
    }

    /// The hub, while it lives.
    pub fn hub(&self) -> Option<Hub> {
        self.hub.upgrade()
    }

    /// Moves what waits for the relay into `out` and returns how many items; `Pending` when
    /// nothing waits (the task is woken when something is queued), `Ready(None)` once the
    /// hub is dropped.
    pub fn poll_outbound(
        &self,
        cx: &mut Context<'_>,
        out: &mut Vec<Relayed>,
    ) -> Poll<Option<usize>> {
        let Some(hub) = self.hub.upgrade() else {
            return Poll::Ready(None);
        };
        let Some(outbound) = &hub.inner.relay else {
            return Poll::Ready(None);
        };
        match lock(outbound).drain(out, cx.waker()) {
            0 => Poll::Pending,
            n => Poll::Ready(Some(n)),
        }
    }

    /// How many items wait for the relay.
    pub fn backlog(&self) -> usize {
        self.hub
            .upgrade()
            .and_then(|hub| hub.inner.relay.as_ref().map(|o| lock(o).len()))
            .unwrap_or(0)
    }

    /// Delivers an event the relay numbered `seq` to the hub's sessions among `to`, logging
    /// it at that position (resume mode) so that a reconnect here can replay it. Returns how
    /// many of the hub's sessions took it; 0 for a `seq` already delivered.
    ///
    /// With a sharded log, `seq` is a number of the shard that holds the log of `to` (see
    /// [`Placement::of`](crate::Placement::of)), and the order below is that shard's.
    ///
    /// The relay calls this in sequence order. An event for a session the hub does not serve
    /// is logged all the same: its tab may be on its way here.
    pub fn deliver(&self, seq: u64, to: &Recipient, frame: Frame) -> usize {
        self.hub
            .upgrade()
            .map_or(0, |hub| hub.deliver_numbered(seq, to, frame, None))
    }

    /// The relay numbered `seq` an event that the hub delivered already, without a
    /// position, while the relay was away (see
    /// [`deliver_unsequenced`](Self::deliver_unsequenced)); a store that answers late may
    /// still apply what it was sent. The event is logged at `seq` as by
    /// [`deliver`](Self::deliver), but the hub's connections among `to` get only its
    /// position: an `id:` line and a blank line, which moves the browser's last event id on
    /// and dispatches nothing. So a tab that had the event sees it once, and resumes from
    /// after it. Without resume mode (no positions) it does nothing and returns 0.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use sse_proto::{Decision, Event, Hub, HttpVersion, Recipient, RelayConfig, RelayPort, Request};
    /// use sse_proto::ResumeConfig;
    ///
    /// let hub = Hub::builder()
    ///     .relay(RelayConfig::default())
    ///     .resume(ResumeConfig::new(Duration::from_secs(30)))
    ///     .build(std::time::Instant::now);
    /// let port = RelayPort::claim(&hub).unwrap();
    /// let mut req = Request::new(b"GET", b"/events?id=tab", HttpVersion::Http11);
    /// req.header(b"accept", b"text/event-stream");
    /// let Decision::Accept(accepted) = hub.decide(&req, Instant::now()) else { panic!() };
    /// let event = Event::new().data("hello").encode();
    /// // The relay is away: the tab gets the event at once, without a position.
    /// port.deliver_unsequenced(&Recipient::All, event.clone());
    /// // The relay numbers it 7 after all: the tab's position moves to it, nothing else.
    /// assert_eq!(port.deliver_known(7, &Recipient::All, event), 1);
    /// ```
    pub fn deliver_known(&self, seq: u64, to: &Recipient, frame: Frame) -> usize {
        let Some(hub) = self.hub.upgrade() else {
            return 0;
        };
        if hub.inner.resume.is_none() {
            return 0;
        }
        hub.deliver_numbered(seq, to, frame, Some(Frame::from_static(b"\n")))
    }

    /// With the relay away: delivers `frame` to the hub's attached sessions among `to`
    /// without a position, and records a gap in the logs of `to`, so that a tab that was
    /// away (or comes back from before this) is told, never silently skipped. Returns how
    /// many took it.
    pub fn deliver_unsequenced(&self, to: &Recipient, frame: Frame) -> usize {
        let Some(hub) = self.hub.upgrade() else {
            return 0;
        };
        let inner = &hub.inner;
        if let Some(group) = group_of(to) {
            return inner.deliver_to_group(group, None, frame, None);
        }
        if let Some(resume) = &inner.resume {
            let mut history = lock(&resume.history);
            history.gap(to.target());
        }
        let (count, follow) = inner.deliver_to(to, None, frame);
        for (slot, next) in follow {
            inner.follow(&slot, next);
        }
        count
    }

    /// The relay's store starts a new `epoch` (it lost its contents): the hub's logs start
    /// afresh in it, so that positions of the old epoch are gaps, never a wrong replay.
    /// Sessions and their connections go on.
    pub fn restart_log(&self, epoch: u64) {
        let Some(hub) = self.hub.upgrade() else {
            return;
        };
        if let Some(resume) = &hub.inner.resume {
            let mut history = lock(&resume.history);
            history.reset(epoch);
            // Every session's log is exact from the new epoch's start, and its connection
            // has none of the new epoch's events yet (their numbers start again from 1).
            for slot in hub.inner.sessions().values() {
                let mut st = slot.lock();
                st.since = Kept::Base(0);
                if let Some((_, since)) = &mut st.user {
                    *since = 0;
                }
                if let Some(link) = &mut st.link {
                    link.seen = Kept::Base(0);
                }
            }
        }
    }

    /// The relay's store lost the contents of `shard` (one shard of a sharded store, such as
    /// a Redis master that restarted empty) and numbers that shard's events after `through`
    /// from now on. A tab coming back from before `through` on that shard has a gap for the
    /// logs there: a topic's is reported in
    /// [`Accepted::topic_gaps`](crate::Accepted::topic_gaps) and the rest replays; its own
    /// log's, its user's or the broadcasts' is a gap of the session
    /// ([`GapReason::Lost`](crate::GapReason::Lost)). The other shards replay as before.
    pub fn restart_shard(&self, shard: u8, through: u64) {
        let Some(hub) = self.hub.upgrade() else {
            return;
        };
        if let Some(resume) = &hub.inner.resume {
            lock(&resume.history).lose_shard(shard, through);
        }
    }

    /// The relay numbered `seq` (in the topic's shard, with a sharded log) the join of
    /// session `id` to `topic`
    /// ([`Relayed::Join`](crate::Relayed::Join), from this node or another): if this hub
    /// serves the session, it becomes a member, entitled to what the topic publishes after
    /// `seq`. Returns whether it did.
    pub fn joined(&self, seq: u64, id: &SessionId, topic: &TopicName) -> bool {
        let Some(hub) = self.hub.upgrade() else {
            return false;
        };
        let Some(slot) = hub.inner.sessions().get(id.as_str()).cloned() else {
            return false;
        };
        let inner = &hub.inner;
        let joined = {
            let mut groups = lock(&inner.groups);
            let mut st = slot.lock();
            st.is_live()
                && matches!(
                    groups.join(&slot, &mut st, topic, seq, inner.topics.max),
                    Ok(true)
                )
        };
        if joined {
            inner.notify(SessionEvent::Joined {
                id: id.clone(),
                topic: topic.clone(),
            });
        }
        joined
    }

    /// The relay numbered the leave of session `id` from `topic`: if this hub serves the
    /// session, it stops being a member. With `keep`, its stretch of membership, which ends
    /// with the topic's event numbered `last` (as the relay saw it), stays replayable.
    /// Returns whether it was a member here.
    pub fn left(&self, id: &SessionId, topic: &TopicName, last: u64, keep: bool) -> bool {
        let Some(hub) = self.hub.upgrade() else {
            return false;
        };
        let Some(slot) = hub.inner.sessions().get(id.as_str()).cloned() else {
            return false;
        };
        let inner = &hub.inner;
        let mut history = inner.resume.as_ref().map(|r| lock(&r.history));
        let mut changes = Changes::default();
        let left = {
            let mut groups = lock(&inner.groups);
            let mut st = slot.lock();
            let keep = (keep && inner.resume.is_some()).then_some(Some(last));
            groups.leave_at(
                id,
                &mut st,
                topic,
                keep,
                inner.topics.max,
                &mut changes.unused,
            )
        };
        changes.forget_unused(history.as_deref_mut());
        drop(history);
        if left {
            changes.left(id, [topic.clone()]);
        }
        changes.notify(inner);
        left
    }

    /// The epoch of the hub's log (resume mode).
    pub fn log_epoch(&self) -> Option<u64> {
        let hub = self.hub.upgrade()?;
        let resume = hub.inner.resume.as_ref()?;
        Some(lock(&resume.history).epoch())
    }

    /// Another node closed this session. Ends it here as [`Hub::close`] does (its reconnect
    /// here gets 204), without telling the relay again. Returns whether the hub served it.
    pub fn close(&self, id: &SessionId) -> bool {
        let Some(hub) = self.hub.upgrade() else {
            return false;
        };
        let now = hub.inner.clock.now();
        match hub.slot(id.as_str()) {
            Some(slot) => {
                hub.inner.close(&slot, now, false);
                true
            }
            None => {
                lock(&hub.inner.closed).mark(id, now);
                false
            }
        }
    }
}

impl Hub {
    /// Logs `frame` at `seq` (resume mode) and queues it, or `wire` in its place, on the
    /// connections among `to`.
    fn deliver_numbered(
        &self,
        seq: u64,
        to: &Recipient,
        frame: Frame,
        wire: Option<Frame>,
    ) -> usize {
        if let Some(group) = group_of(to) {
            return self.inner.deliver_to_group(group, Some(seq), frame, wire);
        }
        let (count, follow) = match &self.inner.resume {
            Some(resume) => {
                let mut history = lock(&resume.history);
                let target = to.target();
                if !history.append_at(target, seq, &frame) {
                    return 0;
                }
                let shard = history.placement().of(target);
                let at = Stamp::new(history.epoch(), shard, seq);
                self.inner.deliver_to(to, Some(&at), wire.unwrap_or(frame))
            }
            // Without positions nothing is delivered known: `wire` comes in resume mode only.
            None => self.inner.deliver_to(to, None, frame),
        };
        for (slot, next) in follow {
            self.inner.follow(&slot, next);
        }
        count
    }
}

/// The group a recipient names, if it names one.
fn group_of(to: &Recipient) -> Option<GroupRef<'_>> {
    match to {
        Recipient::Topic(t) => Some(GroupRef::Topic(t)),
        Recipient::User(u) => Some(GroupRef::User(u)),
        _ => None,
    }
}

impl Inner {
    /// Relay mode: delivers `frame`, numbered `seq` by the relay (`None`: unsequenced, the
    /// relay away), to this node's members of `group`, logging it at `seq` (resume mode) as
    /// `deliver_numbered` does. The group is made here when this node has none, so that a
    /// session that moved here finds in its log what came before it was accepted.
    fn deliver_to_group(
        &self,
        group: GroupRef<'_>,
        seq: Option<u64>,
        frame: Frame,
        wire: Option<Frame>,
    ) -> usize {
        let mut history = self.resume.as_ref().map(|r| lock(&r.history));
        let mut groups = lock(&self.groups);
        let mut changes = Changes::default();
        let at = match (&mut history, seq) {
            (Some(history), Some(seq)) => {
                let members = groups.delivered_to(group, &mut changes.unused);
                if !history.append_at(group.target(), seq, &frame) {
                    drop(groups);
                    changes.forget_unused(Some(history));
                    return 0;
                }
                members.last = seq;
                let shard = history.placement().of(group.target());
                Some(Stamp::new(history.epoch(), shard, seq))
            }
            (Some(history), None) => {
                // Delivered without a position: whoever comes back from before it has a gap.
                if group.find(&groups).is_some() {
                    history.gap(group.target());
                }
                None
            }
            (None, _) => None,
        };
        let (count, follow) = match group.find(&groups) {
            Some(members) => self.fan_out_to(
                members.members.values(),
                at.as_ref(),
                &wire.unwrap_or(frame),
            ),
            None => (0, Vec::new()),
        };
        drop(groups);
        changes.forget_unused(history.as_deref_mut());
        drop(history);
        for (slot, next) in follow {
            self.follow(&slot, next);
        }
        count
    }

    /// Queues `item` for the relay.
    pub(super) fn relay(&self, item: Relayed) -> Result<(), Error> {
        let Some(outbound) = &self.relay else {
            return Err(Error::Unavailable);
        };
        let waker = lock(outbound).push(item).map_err(|()| Error::Unavailable)?;
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// Queues `frame` to this hub's sessions among `to`, with the `id:` line of `at`.
    fn deliver_to(
        &self,
        to: &Recipient,
        at: Option<&Stamp>,
        frame: Frame,
    ) -> (usize, Vec<(Arc<Slot>, Follow)>) {
        let id = match to {
            Recipient::Session(id) => id,
            Recipient::All => return self.fan_out(at, &frame),
            // Groups go through `deliver_to_group`.
            Recipient::Topic(_) | Recipient::User(_) => return (0, Vec::new()),
        };
        let Some(slot) = self.sessions().get(id.as_str()).cloned() else {
            return (0, Vec::new());
        };
        let mut st = slot.lock();
        if !st.is_live() {
            return (0, Vec::new());
        }
        let queued = st.queue(id, at, frame, self.pacing());
        let next = self.after_queue(&mut st, &queued);
        drop(st);
        let count = match queued {
            Queued::Sent(wake) => {
                self.wake_writer(&slot, wake);
                1
            }
            Queued::Detached | Queued::Ending => usize::from(at.is_some()),
            Queued::Cut(wakeups, _) => {
                wakeups.wake();
                usize::from(at.is_some())
            }
        };
        (count, vec![(slot, next)])
    }
}
