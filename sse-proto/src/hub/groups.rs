//! The groups an application addresses besides one session and everyone: topics and users,
//! and who is in each.
//!
//! A session's own record of its memberships (its [`Membership`] stretches, its user) is in
//! its slot; the index from a group to its members is here. Both change together, under the
//! hub's groups lock (taken after the history's, before the registry's and any slot's).

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::Inner;
use super::slot::{Slot, SlotState};
use crate::error::Error;
use crate::history::{History, Target};
use crate::id::SessionId;
use crate::lifecycle::SessionEvent;
use crate::placement::Placement;
use crate::relay::Relayed;
use crate::request::Principal;
use crate::topic::{Membership, TopicName};

/// Every topic and user with a member, or with a past member that may still replay its log.
#[derive(Default)]
pub(crate) struct Groups {
    pub(crate) topics: HashMap<TopicName, Group>,
    pub(crate) users: HashMap<Principal, Group>,
    /// Relay mode: groups made for a delivery while this node had none, oldest first.
    orphans: VecDeque<Unused>,
    /// Which shard of the log holds each topic's and user's events.
    pub(crate) placement: Placement,
}

/// Most groups without members a node in relay mode keeps for deliveries (see
/// [`Groups::delivered_to`]).
const MAX_ORPHANS: usize = 1024;

/// A group, by name.
#[derive(Debug, Clone, Copy)]
pub(crate) enum GroupRef<'a> {
    Topic(&'a TopicName),
    User(&'a Principal),
}

/// One topic or user.
#[derive(Default)]
pub(crate) struct Group {
    /// The sessions in it now, attached or (resume mode) detached.
    pub(crate) members: HashMap<SessionId, Arc<Slot>>,
    /// Closed stretches of membership, in members' slots, that still entitle a replay.
    past: usize,
    /// Resume mode: the sequence number of the group's last logged event.
    pub(crate) last: u64,
}

/// A group whose log no session is entitled to any more: the caller forgets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unused {
    Topic(TopicName),
    User(Principal),
}

impl Unused {
    pub(crate) fn target(&self) -> Target<'_> {
        match self {
            Unused::Topic(t) => Target::Topic(t),
            Unused::User(u) => Target::User(u),
        }
    }
}

/// What changed in memberships under the locks: the logs to forget (before the history's
/// lock is released) and the events for the observer (after every lock is).
#[derive(Default)]
pub(crate) struct Changes {
    pub(crate) unused: Vec<Unused>,
    pub(crate) events: Vec<SessionEvent>,
    /// Relay mode: joins and leaves for the relay to number.
    pub(crate) relay: Vec<Relayed>,
}

impl Changes {
    /// The session of `slot` is over: it leaves every group.
    pub(crate) fn leave_all(&mut self, groups: &mut Groups, slot: &Slot) {
        let topics = groups.remove(&slot.id, &mut slot.lock(), &mut self.unused);
        self.left(&slot.id, topics);
    }

    pub(crate) fn joined(&mut self, id: &SessionId, topic: TopicName) {
        self.events.push(SessionEvent::Joined {
            id: id.clone(),
            topic,
        });
    }

    pub(crate) fn left(&mut self, id: &SessionId, topics: impl IntoIterator<Item = TopicName>) {
        for topic in topics {
            self.events.push(SessionEvent::Left {
                id: id.clone(),
                topic,
            });
        }
    }

    /// Drops the logs of the groups nobody is entitled to any more.
    pub(crate) fn forget_unused(&mut self, history: Option<&mut Box<dyn History>>) {
        if let Some(history) = history {
            for group in self.unused.drain(..) {
                history.forget(group.target());
            }
        }
    }

    /// The topics this change asks the relay to join.
    pub(crate) fn joining(&self) -> impl Iterator<Item = TopicName> + '_ {
        self.relay.iter().filter_map(|r| match r {
            Relayed::Join { topic, .. } => Some(topic.clone()),
            _ => None,
        })
    }

    /// Tells the observer, and hands the relay what it must number, with every lock released.
    pub(crate) fn notify(self, inner: &Inner) {
        for event in self.events {
            inner.notify(event);
        }
        for item in self.relay {
            // A join or leave the relay's full queue refuses is lost, as an event would be.
            let _ = inner.relay(item);
        }
    }
}

impl Groups {
    /// Makes `slot` a member of `topic` from after `head`. `Ok(false)` when it is one already;
    /// fails when it is in `max` topics already.
    pub(crate) fn join(
        &mut self,
        slot: &Arc<Slot>,
        st: &mut SlotState,
        topic: &TopicName,
        head: u64,
        max: usize,
    ) -> Result<bool, Error> {
        if st.topics.iter().any(|m| m.is_open() && &m.topic == topic) {
            return Ok(false);
        }
        if st.topics.iter().filter(|m| m.is_open()).count() >= max {
            return Err(Error::TooManyTopics { limit: max });
        }
        st.topics.push(Membership {
            topic: topic.clone(),
            joined: head,
            left: None,
        });
        self.topics
            .entry(topic.clone())
            .or_default()
            .members
            .insert(slot.id.clone(), slot.clone());
        Ok(true)
    }

    /// Ends the membership of `id` in `topic`. With `keep`, a stretch in which the topic
    /// logged events stays in the slot, so that a tab coming back from inside it replays
    /// them; at most `max` closed stretches are kept, and dropping one moves the session's
    /// exact start (`since`) past it. Returns whether it was a member.
    pub(crate) fn leave(
        &mut self,
        id: &SessionId,
        st: &mut SlotState,
        topic: &TopicName,
        keep: bool,
        max: usize,
        unused: &mut Vec<Unused>,
    ) -> bool {
        self.leave_at(id, st, topic, keep.then_some(None), max, unused)
    }

    /// [`leave`](Self::leave), with the stretch kept (`Some`) ending at the topic's last
    /// event as this node knows it (`Some(None)`) or as the relay numbered it.
    pub(crate) fn leave_at(
        &mut self,
        id: &SessionId,
        st: &mut SlotState,
        topic: &TopicName,
        keep: Option<Option<u64>>,
        max: usize,
        unused: &mut Vec<Unused>,
    ) -> bool {
        let Some(i) = st
            .topics
            .iter()
            .position(|m| m.is_open() && &m.topic == topic)
        else {
            return false;
        };
        let Some(group) = self.topics.get_mut(topic) else {
            st.topics.swap_remove(i);
            return true;
        };
        group.members.remove(id);
        let last = keep.map(|last| last.unwrap_or(group.last));
        match last {
            Some(last) if last > st.topics[i].joined => {
                st.topics[i].left = Some(last);
                group.past += 1;
            }
            _ => {
                st.topics.swap_remove(i);
            }
        }
        self.drop_if_unused(topic, unused);
        self.prune(st, max, unused);
        true
    }

    /// Drops the closed stretches that can no longer matter (ending at or before `since` on
    /// their topic's shard), then the oldest ones past `max`, moving `since` past each.
    pub(crate) fn prune(&mut self, st: &mut SlotState, max: usize, unused: &mut Vec<Unused>) {
        let placement = self.placement;
        let shard = |m: &Membership| placement.of(Target::Topic(&m.topic));
        loop {
            let closed = st.topics.iter().filter(|m| !m.is_open()).count();
            let since = |m: &Membership| st.since.seq(shard(m)).unwrap_or(0);
            let stale = st
                .topics
                .iter()
                .position(|m| m.left.is_some_and(|left| left <= since(m)));
            let drop = match stale {
                Some(i) => i,
                None if closed > max => {
                    let Some((i, left)) = st
                        .topics
                        .iter()
                        .enumerate()
                        .filter_map(|(i, m)| m.left.map(|left| (i, left)))
                        .min_by_key(|&(_, left)| left)
                    else {
                        return;
                    };
                    // The session's shards fit its cursor, so they fit here too.
                    let _ = st.since.raise(shard(&st.topics[i]), left);
                    i
                }
                None => return,
            };
            let m = st.topics.swap_remove(drop);
            if let Some(group) = self.topics.get_mut(&m.topic) {
                group.past -= 1;
            }
            self.drop_if_unused(&m.topic, unused);
        }
    }

    /// Makes `user` the user of `slot` from after `head` (none: of no user). Returns whether
    /// it changed.
    pub(crate) fn set_user(
        &mut self,
        slot: &Arc<Slot>,
        st: &mut SlotState,
        user: Option<Principal>,
        head: u64,
        unused: &mut Vec<Unused>,
    ) -> bool {
        if st.user.as_ref().map(|(u, _)| u) == user.as_ref() {
            return false;
        }
        if let Some((old, _)) = st.user.take() {
            self.leave_user(&slot.id, &old, unused);
        }
        if let Some(user) = user {
            self.users
                .entry(user.clone())
                .or_default()
                .members
                .insert(slot.id.clone(), slot.clone());
            st.user = Some((user, head));
        }
        true
    }

    fn leave_user(&mut self, id: &SessionId, user: &Principal, unused: &mut Vec<Unused>) {
        if let Entry::Occupied(mut group) = self.users.entry(user.clone()) {
            group.get_mut().members.remove(id);
            if group.get().members.is_empty() {
                group.remove();
                unused.push(Unused::User(user.clone()));
            }
        }
    }

    /// The session `id` is over: it leaves every group. Returns the topics it was in.
    pub(crate) fn remove(
        &mut self,
        id: &SessionId,
        st: &mut SlotState,
        unused: &mut Vec<Unused>,
    ) -> Vec<TopicName> {
        let mut left = Vec::new();
        for m in std::mem::take(&mut st.topics) {
            if let Some(group) = self.topics.get_mut(&m.topic) {
                if m.is_open() {
                    group.members.remove(id);
                    left.push(m.topic.clone());
                } else {
                    group.past -= 1;
                }
            }
            self.drop_if_unused(&m.topic, unused);
        }
        if let Some((user, _)) = st.user.take() {
            self.leave_user(id, &user, unused);
        }
        left.sort();
        left
    }

    /// Relay mode: the session of `slot` is in what the shared store says, `topics` and
    /// `user`, rather than what this node had. Returns the topics it joined and left here.
    pub(crate) fn replace(
        &mut self,
        slot: &Arc<Slot>,
        st: &mut SlotState,
        topics: &[Membership],
        user: Option<&(Principal, u64)>,
        unused: &mut Vec<Unused>,
    ) -> (Vec<TopicName>, Vec<TopicName>) {
        let open =
            |list: &[Membership], t: &TopicName| list.iter().any(|m| m.is_open() && &m.topic == t);
        let joined: Vec<TopicName> = topics
            .iter()
            .filter(|m| m.is_open() && !open(&st.topics, &m.topic))
            .map(|m| m.topic.clone())
            .collect();
        let left: Vec<TopicName> = st
            .topics
            .iter()
            .filter(|m| m.is_open() && !open(topics, &m.topic))
            .map(|m| m.topic.clone())
            .collect();
        // The new ones first, so that a group in both is never dropped in between.
        for m in topics {
            let group = self.topics.entry(m.topic.clone()).or_default();
            match m.left {
                None => {
                    group.members.insert(slot.id.clone(), slot.clone());
                }
                Some(_) => group.past += 1,
            }
        }
        for m in std::mem::replace(&mut st.topics, topics.to_vec()) {
            if let Some(group) = self.topics.get_mut(&m.topic) {
                match m.left {
                    None if !open(topics, &m.topic) => {
                        group.members.remove(&slot.id);
                    }
                    None => {}
                    Some(_) => group.past -= 1,
                }
            }
            self.drop_if_unused(&m.topic, unused);
        }
        if st.user.as_ref() != user {
            if let Some((old, _)) = st.user.take() {
                self.leave_user(&slot.id, &old, unused);
            }
            if let Some((user, since)) = user {
                self.users
                    .entry(user.clone())
                    .or_default()
                    .members
                    .insert(slot.id.clone(), slot.clone());
                st.user = Some((user.clone(), *since));
            }
        }
        (joined, left)
    }

    /// Relay mode: the group that a delivery numbered by the relay is for, made when this
    /// node has none (a session that moved here may claim it before the delivery's session
    /// is accepted here). At most [`MAX_ORPHANS`] groups without members are kept so; the
    /// oldest is dropped past it.
    pub(crate) fn delivered_to(
        &mut self,
        to: GroupRef<'_>,
        unused: &mut Vec<Unused>,
    ) -> &mut Group {
        let missing = match to {
            GroupRef::Topic(t) => !self.topics.contains_key(t),
            GroupRef::User(u) => !self.users.contains_key(u),
        };
        if missing {
            let key = match to {
                GroupRef::Topic(t) => Unused::Topic(t.clone()),
                GroupRef::User(u) => Unused::User(u.clone()),
            };
            self.orphans.push_back(key);
            while self.orphans.len() > MAX_ORPHANS {
                if let Some(old) = self.orphans.pop_front() {
                    self.drop_orphan(old, unused);
                }
            }
        }
        match to {
            GroupRef::Topic(t) => self.topics.entry(t.clone()).or_default(),
            GroupRef::User(u) => self.users.entry(u.clone()).or_default(),
        }
    }

    fn drop_orphan(&mut self, key: Unused, unused: &mut Vec<Unused>) {
        let gone = match &key {
            Unused::Topic(t) => match self.topics.entry(t.clone()) {
                Entry::Occupied(g) if g.get().members.is_empty() && g.get().past == 0 => {
                    g.remove();
                    true
                }
                _ => false,
            },
            Unused::User(u) => match self.users.entry(u.clone()) {
                Entry::Occupied(g) if g.get().members.is_empty() => {
                    g.remove();
                    true
                }
                _ => false,
            },
        };
        if gone {
            unused.push(key);
        }
    }

    /// The session continues as `slot` (its id re-signed), with the memberships in `st`,
    /// which were `old`'s.
    pub(crate) fn rekey(&mut self, old: &SessionId, slot: &Arc<Slot>, st: &SlotState) {
        let move_member = |group: Option<&mut Group>| {
            if let Some(group) = group {
                group.members.remove(old);
                group.members.insert(slot.id.clone(), slot.clone());
            }
        };
        for m in st.topics.iter().filter(|m| m.is_open()) {
            move_member(self.topics.get_mut(&m.topic));
        }
        if let Some((user, _)) = &st.user {
            move_member(self.users.get_mut(user));
        }
    }

    fn drop_if_unused(&mut self, topic: &TopicName, unused: &mut Vec<Unused>) {
        if let Entry::Occupied(group) = self.topics.entry(topic.clone()) {
            if group.get().members.is_empty() && group.get().past == 0 {
                group.remove();
                unused.push(Unused::Topic(topic.clone()));
            }
        }
    }
}
