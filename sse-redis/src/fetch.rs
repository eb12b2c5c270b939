//! What a `claim` says a session coming back missed, as the hub reads it: every log it may be
//! entitled to after its cursor (its own, the broadcasts, its user's, its topics'), with what
//! each dropped, and what it is in, gathered from the claim's step on every shard it
//! visited. The hub replays from it by its own rules.

use bytes::Bytes;
use sse_proto::{
    Cursor, Fetched, Frame, GapReason, History, LogBounds, MemoryHistory, Placement, SessionId,
    Target, TopicName,
};

use crate::claim::Answer;
use crate::groups::Mem;
use crate::reply::{self, Entry};

/// Builds the [`Fetched`] of the claim's `answers` (the home shard's first) for session `id`
/// at `cursor`.
pub(crate) fn fetched(
    answers: Vec<Answer>,
    id: &SessionId,
    cursor: &Cursor,
    epoch: u64,
    placement: Placement,
    bounds: LogBounds,
) -> Result<Fetched, GapReason> {
    let mut log = MemoryHistory::new(epoch, bounds, usize::MAX)
        .placed(placement)
        .with_heads(cursor);
    let mut all: Vec<(u64, Source, Entry)> = Vec::new();
    let mut drops: Vec<(Source, u64)> = Vec::new();
    let mut topics = Vec::new();
    let mut user = None;
    let mut lost_runs = Vec::new();
    for (n, answer) in answers.into_iter().enumerate() {
        let items = answer.items;
        let at = cursor.seq(answer.shard).unwrap_or(0);
        // The sequence number of the shard now: no position past it was issued. A cursor
        // past it is forged, or from a store that lost what it had issued: nothing after it
        // can be told apart from what the tab saw.
        let issued = items.get(10).and_then(reply::int);
        if at > issued.and_then(|n| u64::try_from(n).ok()).unwrap_or(0) {
            return Err(GapReason::InvalidPosition);
        }
        // Where the shard's current run started: a shard other than 0 that lost its contents
        // numbers on past every number it gave, and a position on it from before is a gap
        // for the logs there (the hub's rules say which: a topic's is reported, the
        // session's own or its user's is a gap of the session). Its mem of the session went
        // with them (the session's node records it again): without it the session's topics
        // there are not known, a gap of the session too.
        let through = items
            .get(11)
            .and_then(reply::int)
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(0);
        if through > 0 && items.get(12).and_then(reply::int) == Some(1) {
            return Err(GapReason::Lost);
        }
        let restarted = answer.shard != 0 && at < through;
        if restarted {
            lost_runs.push((answer.shard, through));
        }
        // The step read the mem again under its lock: the copy in the reply is the one to use.
        let mem = items.get(6).map(Mem::parse).unwrap_or(answer.mem);
        if at < mem.since {
            // Stretches of membership before the position were dropped: it cannot be told.
            return Err(GapReason::Expired);
        }
        if n == 0 {
            user = mem.user.clone();
        }
        let dropped = |i: usize| dropped_at(items.get(i));
        let entries = |i: usize| items.get(i).map(reply::entries).unwrap_or_default();
        if n == 0 {
            all.extend(entries(4).into_iter().map(|e| (e.seq, Source::Own, e)));
            drops.push((Source::Own, dropped(2)));
        }
        if answer.shard == 0 {
            all.extend(entries(5).into_iter().map(|e| (e.seq, Source::All, e)));
            drops.push((Source::All, dropped(3)));
        }
        if user.is_some() {
            all.extend(entries(8).into_iter().map(|e| (e.seq, Source::User, e)));
            drops.push((Source::User, dropped(7)));
        }
        for topic in items.get(9).map(reply::array).unwrap_or_default() {
            let parts = reply::array(topic);
            let Some(name) = parts
                .first()
                .and_then(reply::text)
                .and_then(|t| TopicName::parse(t).ok())
            else {
                continue;
            };
            let lost = dropped_at(parts.get(1));
            let list = parts.get(2).map(reply::entries).unwrap_or_default();
            all.extend(
                list.into_iter()
                    .map(|e| (e.seq, Source::Topic(name.clone()), e)),
            );
            drops.push((Source::Topic(name), lost));
        }
        topics.extend(mem.topics);
    }
    // Merged by number: each shard's entries in their order.
    all.sort_by_key(|(seq, _, _)| *seq);
    let user_name = user.as_ref().map(|(u, _)| u.clone());
    for (seq, source, entry) in &all {
        let frame = entry
            .field(b"f")
            .and_then(|f| Frame::from_encoded(Bytes::copy_from_slice(f)).ok())
            .ok_or(GapReason::Overflow)?;
        let Some(target) = source.target(id, user_name.as_ref()) else {
            continue;
        };
        log.append_at(target, *seq, &frame);
    }
    for (source, lost) in &drops {
        if let Some(target) = source.target(id, user_name.as_ref()) {
            log.lose(target, *lost);
        }
    }
    for (shard, through) in lost_runs {
        log.lose_shard(shard, through);
    }
    Ok(Fetched { log, topics, user })
}

/// The sequence number of the entry id a log says it dropped through (`max-deleted-entry-id`;
/// 0 for none).
fn dropped_at(id: Option<&redis::Value>) -> u64 {
    id.and_then(reply::text)
        .and_then(reply::seq_of)
        .unwrap_or(0)
}

/// Which log an entry came from.
enum Source {
    Own,
    All,
    User,
    Topic(TopicName),
}

impl Source {
    fn target<'a>(
        &'a self,
        id: &'a SessionId,
        user: Option<&'a sse_proto::Principal>,
    ) -> Option<Target<'a>> {
        Some(match self {
            Source::Own => Target::Session(id),
            Source::All => Target::All,
            Source::User => Target::User(user?),
            Source::Topic(t) => Target::Topic(t),
        })
    }
}
