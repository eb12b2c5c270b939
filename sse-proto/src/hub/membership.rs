//! The hub's side of topics and users: who joins at accept, join and leave, and delivery to
//! a group's members.

use std::sync::Arc;

use super::Inner;
pub(super) use super::groups::GroupRef;
use super::groups::{Changes, Group, Groups};
use super::slot::{Slot, SlotState, lock};
use super::start::{Heads, Shards};
use crate::cursor::Cursor;
use crate::error::Error;
use crate::frame::Frame;
use crate::handshake::Fetched;
use crate::history::Target;
use crate::id::SessionId;
use crate::placement::Placement;
use crate::position::Stamp;
use crate::relay::{Recipient, Relayed};
use crate::request::Principal;
use crate::topic::TopicName;

impl GroupRef<'_> {
    pub(super) fn target(&self) -> Target<'_> {
        match *self {
            GroupRef::Topic(t) => Target::Topic(t),
            GroupRef::User(u) => Target::User(u),
        }
    }

    pub(super) fn find<'g>(&self, groups: &'g Groups) -> Option<&'g Group> {
        match *self {
            GroupRef::Topic(t) => groups.topics.get(t),
            GroupRef::User(u) => groups.users.get(u),
        }
    }

    pub(super) fn find_mut<'g>(&self, groups: &'g mut Groups) -> Option<&'g mut Group> {
        match *self {
            GroupRef::Topic(t) => groups.topics.get_mut(t),
            GroupRef::User(u) => groups.users.get_mut(u),
        }
    }
}

impl Inner {
    /// At accept, for a session that exists: makes `user` its user, and leaves the topics the
    /// rule no longer grants it. What either takes from the tab (its previous user's events,
    /// a revoked topic's) is withheld from its replay; `position` (the tab's, when it is one
    /// of the log's) becomes the session's exact start, so that no older position replays it.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn refresh(
        &self,
        groups: &mut Groups,
        slot: &Arc<Slot>,
        st: &mut SlotState,
        user: Option<Principal>,
        position: Option<Cursor>,
        heads: Heads<'_>,
        changes: &mut Changes,
    ) {
        let cut = position.unwrap_or_else(|| heads.present(&slot.id, st));
        let had_user = st.user.is_some();
        let head = user.as_ref().map_or(0, |u| heads.of(Target::User(u)));
        if groups.set_user(slot, st, user, head, &mut changes.unused) && had_user {
            st.since.raise_all(&cut);
        }
        let Some(rule) = &self.topics.rule else {
            return;
        };
        let user = st.user.as_ref().map(|(u, _)| u.clone());
        let revoked: Vec<TopicName> = st
            .topics
            .iter()
            .filter(|m| m.is_open() && !rule(&m.topic, user.as_ref().map(Principal::as_bytes)))
            .map(|m| m.topic.clone())
            .collect();
        if revoked.is_empty() {
            return;
        }
        st.since.raise_all(&cut);
        for topic in &revoked {
            let max = self.topics.max;
            groups.leave(&slot.id, st, topic, false, max, &mut changes.unused);
            if self.relay.is_some() {
                changes.relay.push(Relayed::Leave {
                    id: slot.id.clone(),
                    topic: topic.clone(),
                    keep: false,
                });
            }
        }
        changes.left(&slot.id, revoked);
    }

    /// Relay mode, at accept: the session is in what the shared store says it is in.
    pub(super) fn install(
        &self,
        groups: &mut Groups,
        slot: &Arc<Slot>,
        st: &mut SlotState,
        fetched: &Fetched,
        changes: &mut Changes,
    ) {
        let (joined, left) = groups.replace(
            slot,
            st,
            &fetched.topics,
            fetched.user.as_ref(),
            &mut changes.unused,
        );
        for topic in joined {
            changes.joined(&slot.id, topic);
        }
        changes.left(&slot.id, left);
    }

    /// At accept: joins the topics of `requested` that the rule grants `user`, until the
    /// session is in as many as it may be.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn grant(
        &self,
        groups: &mut Groups,
        slot: &Arc<Slot>,
        st: &mut SlotState,
        requested: &[TopicName],
        user: Option<&[u8]>,
        heads: Heads<'_>,
        changes: &mut Changes,
    ) {
        if self.relay.is_some() {
            // The relay numbers the joins; the session is a member once they come back.
            let mut open = st.topics.iter().filter(|m| m.is_open()).count();
            // The joins are not in `st` until they come back: their shards count here.
            let mut room = self.shard_room(slot, st);
            for topic in requested {
                let member = st.topics.iter().any(|m| m.is_open() && &m.topic == topic);
                if member || open >= self.topics.max || !self.topics.grants(topic, user, false) {
                    continue;
                }
                if let Some((placement, shards, limit)) = &mut room {
                    let mut more = *shards;
                    more.add(placement.of(Target::Topic(topic)));
                    if more.len() > *limit {
                        continue;
                    }
                    *shards = more;
                }
                open += 1;
                changes.relay.push(Relayed::Join {
                    id: slot.id.clone(),
                    topic: topic.clone(),
                });
            }
            return;
        }
        for topic in requested {
            if !self.topics.grants(topic, user, false) {
                continue;
            }
            let head = heads.of(Target::Topic(topic));
            match self.join_counted(groups, slot, st, topic, head) {
                Ok(true) => changes.joined(&slot.id, topic.clone()),
                Ok(false) | Err(Error::TooManyShards { .. }) => {}
                Err(_) => break,
            }
        }
    }

    /// Makes the session of `slot` a member of `topic`, if the rule grants it.
    pub(super) fn join(&self, slot: &Arc<Slot>, topic: &TopicName) -> Result<bool, Error> {
        if self.relay.is_some() {
            return self.join_relayed(slot, topic);
        }
        let history = self.resume.as_ref().map(|r| lock(&r.history));
        let head = Heads::held(&history).of(Target::Topic(topic));
        let joined = {
            let mut groups = lock(&self.groups);
            let mut st = slot.lock();
            if !st.is_live() {
                return Err(Error::Closed);
            }
            let user = st.user.as_ref().map(|(u, _)| u.clone());
            if !self
                .topics
                .grants(topic, user.as_ref().map(Principal::as_bytes), true)
            {
                return Err(Error::TopicRefused);
            }
            self.join_counted(&mut groups, slot, &mut st, topic, head)?
        };
        drop(history);
        if joined {
            self.notify(crate::SessionEvent::Joined {
                id: slot.id.clone(),
                topic: topic.clone(),
            });
        }
        Ok(joined)
    }

    /// Joins `topic` from after `head`, when the tab's cursor can name one more shard if it
    /// takes one (see [`Groups::join`]).
    fn join_counted(
        &self,
        groups: &mut Groups,
        slot: &Arc<Slot>,
        st: &mut SlotState,
        topic: &TopicName,
        head: u64,
    ) -> Result<bool, Error> {
        self.check_shards(slot, st, topic)?;
        groups.join(slot, st, topic, head, self.topics.max)
    }

    /// Fails with [`Error::TooManyShards`] when the session reading `topic` would need its
    /// cursor to name more shards than fit beside its id (resume mode, a sharded log).
    fn check_shards(&self, slot: &Slot, st: &SlotState, topic: &TopicName) -> Result<(), Error> {
        let Some((placement, mut shards, limit)) = self.shard_room(slot, st) else {
            return Ok(());
        };
        shards.add(placement.of(Target::Topic(topic)));
        if shards.len() > limit {
            return Err(Error::TooManyShards { limit });
        }
        Ok(())
    }

    /// With a sharded log (resume mode): its placement, the shards the session of `st`
    /// reads, and how many its cursor may name. `None` when every log is on one shard.
    fn shard_room(&self, slot: &Slot, st: &SlotState) -> Option<(Placement, Shards, usize)> {
        let placement = self.resume.as_ref()?.placement;
        if placement.shards() == 1 {
            return None;
        }
        let limit = Cursor::max_shards(slot.id.len(), self.handshake.max_id_len_value());
        Some((placement, Shards::of(placement, &slot.id, st), limit))
    }

    /// Relay mode: checks the join here and hands it to the relay, which numbers it and
    /// hands it back ([`RelayPort::joined`](crate::RelayPort::joined)).
    fn join_relayed(&self, slot: &Arc<Slot>, topic: &TopicName) -> Result<bool, Error> {
        {
            let st = slot.lock();
            if !st.is_live() {
                return Err(Error::Closed);
            }
            if st.topics.iter().any(|m| m.is_open() && &m.topic == topic) {
                return Ok(false);
            }
            let user = st.user.as_ref().map(|(u, _)| u.as_bytes());
            if !self.topics.grants(topic, user, true) {
                return Err(Error::TopicRefused);
            }
            let open = st.topics.iter().filter(|m| m.is_open()).count();
            if open >= self.topics.max {
                return Err(Error::TooManyTopics {
                    limit: self.topics.max,
                });
            }
            self.check_shards(slot, &st, topic)?;
        }
        self.relay(Relayed::Join {
            id: slot.id.clone(),
            topic: topic.clone(),
        })?;
        Ok(true)
    }

    /// Ends the membership of the session of `slot` in `topic`. In resume mode what the
    /// topic published while it was a member stays replayable to its tab.
    pub(super) fn leave(&self, slot: &Arc<Slot>, topic: &TopicName) -> Result<bool, Error> {
        if self.relay.is_some() {
            if !slot.lock().is_live() {
                return Err(Error::Closed);
            }
            let member = slot
                .lock()
                .topics
                .iter()
                .any(|m| m.is_open() && &m.topic == topic);
            self.relay(Relayed::Leave {
                id: slot.id.clone(),
                topic: topic.clone(),
                keep: self.resume.is_some(),
            })?;
            return Ok(member);
        }
        let mut history = self.resume.as_ref().map(|r| lock(&r.history));
        let mut changes = Changes::default();
        let left = {
            let mut groups = lock(&self.groups);
            let mut st = slot.lock();
            if !st.is_live() {
                return Err(Error::Closed);
            }
            let keep = self.resume.is_some();
            groups.leave(
                &slot.id,
                &mut st,
                topic,
                keep,
                self.topics.max,
                &mut changes.unused,
            )
        };
        changes.forget_unused(history.as_deref_mut());
        drop(history);
        if left {
            changes.left(&slot.id, [topic.clone()]);
        }
        changes.notify(self);
        Ok(left)
    }

    /// Sends `frame` to the members of `group`: logged once for all of them in resume mode
    /// (detached members included, and counted). Returns how many took it; 0, logging
    /// nothing, for a group without members.
    pub(super) fn publish(&self, group: GroupRef<'_>, frame: &Frame) -> Result<usize, Error> {
        if self.relay.is_some() {
            // The relay numbers it and delivers it on every node with a member; the count is
            // this node's members.
            let here = self.member_ids(group).len();
            let to = match group {
                GroupRef::Topic(t) => Recipient::Topic(t.clone()),
                GroupRef::User(u) => Recipient::User(u.clone()),
            };
            self.relay(Relayed::Event {
                to,
                frame: frame.clone(),
            })?;
            return Ok(here);
        }
        let mut history = self.resume.as_ref().map(|r| lock(&r.history));
        let mut groups = lock(&self.groups);
        let Some(members) = group
            .find_mut(&mut groups)
            .filter(|g| !g.members.is_empty())
        else {
            return Ok(0);
        };
        let at = history.as_mut().map(|history| {
            let seq = history.append(group.target(), frame);
            members.last = seq;
            let shard = history.placement().of(group.target());
            Stamp::new(history.epoch(), shard, seq)
        });
        let (count, follow) = self.fan_out_to(members.members.values(), at.as_ref(), frame);
        drop(groups);
        drop(history);
        for (slot, next) in follow {
            self.follow(&slot, next);
        }
        Ok(count)
    }

    /// The slots of the members of `group` that take events (not closing), in no
    /// particular order.
    pub(super) fn members(&self, group: GroupRef<'_>) -> Vec<Arc<Slot>> {
        let groups = lock(&self.groups);
        group
            .find(&groups)
            .map(|g| {
                g.members
                    .values()
                    .filter(|slot| slot.lock().is_live())
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The ids of the members of `group` that take events (not closing), sorted.
    pub(super) fn member_ids(&self, group: GroupRef<'_>) -> Vec<SessionId> {
        let groups = lock(&self.groups);
        let mut ids: Vec<SessionId> = group
            .find(&groups)
            .map(|g| {
                g.members
                    .values()
                    .filter(|slot| slot.lock().is_live())
                    .map(|slot| slot.id.clone())
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids
    }

    /// The distinct users among the members of `topic`, sorted by their bytes.
    pub(super) fn member_users(&self, topic: &TopicName) -> Vec<Principal> {
        let groups = lock(&self.groups);
        let mut users: Vec<Principal> = groups
            .topics
            .get(topic)
            .map(|g| {
                g.members
                    .values()
                    .filter_map(|slot| {
                        let st = slot.lock();
                        st.is_live()
                            .then(|| st.user.as_ref().map(|(u, _)| u.clone()))
                            .flatten()
                    })
                    .collect()
            })
            .unwrap_or_default();
        users.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        users.dedup();
        users
    }
}
