//! How a new connection continues its session (resume mode): the tab's cursor, what it
//! replays, or why it has a gap; and the shards a session reads, which its cursor names.

use std::sync::MutexGuard;

use super::slot::SlotState;
use crate::cursor::Cursor;
use crate::handshake::{Claim, Fetched};
use crate::history::{History, Logged, Scope, Target};
use crate::id::SessionId;
use crate::lifecycle::{Continuity, GapReason};
use crate::placement::Placement;
use crate::position::Claimed;
use crate::topic::{Membership, TopicName};

/// The heads of the log's shards, as of the locks held: all 0 without resume mode.
#[derive(Clone, Copy)]
pub(super) struct Heads<'a> {
    history: Option<&'a dyn History>,
}

impl<'a> Heads<'a> {
    pub(super) fn new(history: Option<&'a dyn History>) -> Heads<'a> {
        Heads { history }
    }

    /// The heads of the history its caller holds locked (resume mode), else all 0.
    pub(super) fn held(history: &'a Option<MutexGuard<'_, Box<dyn History>>>) -> Heads<'a> {
        Heads::new(history.as_deref().map(|h| &**h))
    }

    pub(super) fn placement(&self) -> Placement {
        self.history.map_or(Placement::ONE, |h| h.placement())
    }

    /// The head of the shard that holds the log of `target`.
    pub(super) fn of(&self, target: Target<'_>) -> u64 {
        self.history.map_or(0, |h| h.head(h.placement().of(target)))
    }

    /// The cursor of a tab that has everything logged so far of the shards `st` reads.
    pub(super) fn present(&self, id: &SessionId, st: &SlotState) -> Cursor {
        let mut cursor = Cursor::new(self.epoch(), 0);
        self.complete(&mut cursor, id, st);
        cursor
    }

    /// The cursor of a session new to the log, which reads the broadcasts and its own log:
    /// both shards at their heads.
    pub(super) fn of_new(&self, id: &SessionId) -> Cursor {
        let mut cursor = Cursor::new(self.epoch(), self.of(Target::All));
        // Two shards fit every cursor.
        let _ = cursor.raise(
            self.placement().of(Target::Session(id)),
            self.of(Target::Session(id)),
        );
        cursor
    }

    /// Raises `cursor` to the head of each shard the session of `st` reads, naming the
    /// shards it did not: for a tab whose replay gave it everything it is entitled to up to
    /// the heads.
    pub(super) fn complete(&self, cursor: &mut Cursor, id: &SessionId, st: &SlotState) {
        let Some(history) = self.history else {
            return;
        };
        for shard in Shards::of(history.placement(), id, st).iter() {
            // Counted at each join, so it fits (a user given at a reconnect may not: its
            // events then replay again rather than be lost).
            let _ = cursor.raise(shard, history.head(shard));
        }
    }

    fn epoch(&self) -> u64 {
        self.history.map_or(0, |h| h.epoch())
    }
}

/// A set of shards, as bits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Shards(u64);

impl Shards {
    /// The shards the session of `st` reads: 0 (the broadcasts), its own log's, its
    /// user's, and each of its topics', the stretches it left and may still replay
    /// included.
    pub(super) fn of(placement: Placement, id: &SessionId, st: &SlotState) -> Shards {
        let mut shards = Shards(1);
        shards.add(placement.of(Target::Session(id)));
        if let Some((user, _)) = &st.user {
            shards.add(placement.of(Target::User(user)));
        }
        for m in &st.topics {
            shards.add(placement.of(Target::Topic(&m.topic)));
        }
        shards
    }

    pub(super) fn add(&mut self, shard: u8) {
        self.0 |= 1 << shard;
    }

    pub(super) fn len(&self) -> usize {
        self.0.count_ones() as usize
    }

    pub(super) fn iter(self) -> impl Iterator<Item = u8> {
        (0..64u8).filter(move |&s| self.0 & (1 << s) != 0)
    }
}

/// What the new connection starts with, decided under the locks.
pub(super) struct Start {
    pub(super) continuity: Continuity,
    /// Resume mode: the cursor the preamble sets, after the session id.
    pub(super) from: Option<Cursor>,
    pub(super) replay: Vec<Logged>,
    /// Topics whose missed events could not all be told, left out of the replay.
    pub(super) gaps: Vec<TopicName>,
}

impl Start {
    /// Without resume mode: no position, and a tab that offered an id has a gap.
    pub(super) fn unlogged(claim: Option<&Claim>) -> Start {
        Start {
            continuity: match claim {
                None => Continuity::New,
                Some(_) => Continuity::Gap(GapReason::NotResumable),
            },
            from: None,
            replay: Vec::new(),
            gaps: Vec::new(),
        }
    }
}

/// The tab's cursor, when it is one of this log's: each shard's number no higher than the
/// shard's head.
pub(super) fn claimed_cursor(claim: Option<&Claim>, history: &dyn History) -> Option<Cursor> {
    let Claimed::At(claimed) = claim?.position else {
        return None;
    };
    if claimed.epoch() != history.epoch() {
        return None;
    }
    let mut cursor = claimed;
    for (shard, seq) in claimed.components() {
        // The shard is named already: the cursor does not grow.
        let _ = cursor.set(shard, seq.min(history.head(shard)));
    }
    Some(cursor)
}

/// Resume mode: how the new connection continues the session, and what it replays.
/// Called with the history and registry locked, so nothing is logged in between. `session`
/// is the session's state and whether it existed here before this connection.
pub(super) fn resume_start(
    history: &mut dyn History,
    id: &SessionId,
    claim: Option<&Claim>,
    session: (&SlotState, bool),
    fetched: Option<Result<Fetched, GapReason>>,
) -> Start {
    let (st, existed) = session;
    let heads = Heads::new(Some(&*history));
    let present = heads.present(id, st);
    let scope = Scope {
        session: id,
        user: st.user.as_ref().map(|(u, since)| (u, *since)),
        topics: &st.topics,
    };
    let claimed = match claim.map(|c| c.position) {
        Some(Claimed::At(c)) => c,
        _ => present,
    };
    let replay = match (claim, fetched) {
        (None, _) => Err(None),
        // A store answered ahead of time; what was logged since comes from ours.
        (Some(_), Some(fetched)) => fetched.map_err(Some).and_then(|fetched| {
            let mut entries = Vec::new();
            let mut gaps = fetched
                .log
                .replay(&scope, &claimed, &mut entries)
                .map_err(Some)?;
            let mut after = claimed;
            for e in &entries {
                let _ = after.raise(e.shard, e.seq);
            }
            // What this hub logged since the store answered; nothing when the store is
            // ahead of what this hub has seen (the rest comes here live, and the connection
            // does not queue again what it has). A topic with a gap stays out.
            let shards = Shards::of(history.placement(), id, st);
            let head = |shard: u8| history.head(shard);
            if shards.iter().all(|k| after.seq(k).unwrap_or(0) >= head(k)) {
                return Ok((entries, gaps));
            }
            let named = after;
            for (shard, seq) in named.components() {
                let _ = after.set(shard, seq.min(head(shard)));
            }
            let topics: Vec<Membership> = st
                .topics
                .iter()
                .filter(|m| !gaps.contains(&m.topic))
                .cloned()
                .collect();
            let tail = Scope {
                topics: &topics,
                ..scope
            };
            let mut more = Vec::new();
            gaps.extend(history.replay(&tail, &after, &mut more).map_err(Some)?);
            entries.extend(more);
            gaps.sort();
            gaps.dedup();
            Ok((entries, gaps))
        }),
        (Some(claim), None) => local_replay(history, &scope, claim.position, existed.then_some(st)),
    };
    match replay {
        Ok((replay, gaps)) => Start {
            continuity: Continuity::Resumed {
                replayed: replay.len(),
            },
            from: Some(claimed),
            replay,
            gaps,
        },
        Err(gap) => Start {
            continuity: gap.map_or(Continuity::New, Continuity::Gap),
            from: Some(present),
            replay: Vec::new(),
            gaps: Vec::new(),
        },
    }
}

/// What our own log says the session missed after `position`, and the topics that lost
/// some of it; `Err(None)` for a session that is new here.
fn local_replay(
    history: &dyn History,
    scope: &Scope<'_>,
    position: Claimed,
    existing: Option<&SlotState>,
) -> Result<(Vec<Logged>, Vec<TopicName>), Option<GapReason>> {
    let cursor = match (position, existing) {
        (Claimed::None, None) => return Err(None),
        (Claimed::None, Some(_)) => return Err(Some(GapReason::NoPosition)),
        (Claimed::Invalid, _) => return Err(Some(GapReason::InvalidPosition)),
        (Claimed::At(c), _) if c.epoch() != history.epoch() => {
            return Err(Some(GapReason::UnknownEpoch));
        }
        (Claimed::At(_), None) => return Err(Some(GapReason::Expired)),
        (Claimed::At(c), Some(st)) => {
            // From before where the session's logs are exact, on any shard.
            let early = |(shard, since): (u8, u64)| c.seq(shard).unwrap_or(0) < since;
            if st.since.cursor(0).components().any(early) {
                return Err(Some(GapReason::Expired));
            }
            c
        }
    };
    let mut replay = Vec::new();
    history
        .replay(scope, &cursor, &mut replay)
        .map_err(Some)
        .map(|gaps| (replay, gaps))
}
