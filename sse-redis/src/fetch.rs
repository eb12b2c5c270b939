//! What a `claim` reply says a session coming back missed, as the hub reads it: every log it
//! may be entitled to after its position (its own, the broadcasts, its user's, its topics'),
//! with what each dropped, and what it is in. The hub replays from it by its own rules.

use bytes::Bytes;
use redis::Value;
use sse_proto::{
    Fetched, Frame, GapReason, History, LogBounds, MemoryHistory, SessionId, Target, TopicName,
};

use crate::groups::Mem;
use crate::reply::{self, Entry};

/// Builds the [`Fetched`] of a `claim` reply (`items`) for session `id` at position `after`.
pub(crate) fn fetched(
    items: &[Value],
    id: &SessionId,
    after: u64,
    mem: Mem,
    epoch: u64,
    bounds: LogBounds,
) -> Result<Fetched, GapReason> {
    // The claim read `mem` again under its lock: the copy in the reply is the one to use.
    let mem = items.get(6).map(Mem::parse).unwrap_or(mem);
    if after < mem.since {
        // Stretches of membership before the position were dropped: it cannot be told.
        return Err(GapReason::Expired);
    }
    let dropped = |i: usize| {
        items
            .get(i)
            .and_then(reply::text)
            .and_then(reply::seq_of)
            .unwrap_or(0)
    };
    let entries = |i: usize| items.get(i).map(reply::entries).unwrap_or_default();
    let user = mem.user.as_ref().map(|(u, _)| u.clone());
    // Every entry with the log it came from, merged by sequence number.
    let mut all: Vec<(u64, Source, Entry)> = Vec::new();
    all.extend(entries(4).into_iter().map(|e| (e.seq, Source::Own, e)));
    all.extend(entries(5).into_iter().map(|e| (e.seq, Source::All, e)));
    if user.is_some() {
        all.extend(entries(8).into_iter().map(|e| (e.seq, Source::User, e)));
    }
    let mut topic_drops = Vec::new();
    for topic in items.get(9).map(reply::array).unwrap_or_default() {
        let parts = reply::array(topic);
        let Some(name) = parts
            .first()
            .and_then(reply::text)
            .and_then(|t| TopicName::parse(t).ok())
        else {
            continue;
        };
        let lost = parts
            .get(1)
            .and_then(reply::text)
            .and_then(reply::seq_of)
            .unwrap_or(0);
        let list = parts.get(2).map(reply::entries).unwrap_or_default();
        all.extend(
            list.into_iter()
                .map(|e| (e.seq, Source::Topic(name.clone()), e)),
        );
        topic_drops.push((name, lost));
    }
    all.sort_by_key(|(seq, _, _)| *seq);
    let mut log = MemoryHistory::new(epoch, bounds, usize::MAX).with_head(after);
    for (seq, source, entry) in &all {
        let frame = entry
            .field(b"f")
            .and_then(|f| Frame::from_encoded(Bytes::copy_from_slice(f)).ok())
            .ok_or(GapReason::Overflow)?;
        let target = match source {
            Source::Own => Target::Session(id),
            Source::All => Target::All,
            Source::User => match &user {
                Some(u) => Target::User(u),
                None => continue,
            },
            Source::Topic(t) => Target::Topic(t),
        };
        log.append_at(target, *seq, &frame);
    }
    log.lose(Target::Session(id), dropped(2));
    log.lose(Target::All, dropped(3));
    if let Some(u) = &user {
        log.lose(Target::User(u), dropped(7));
    }
    for (topic, lost) in &topic_drops {
        log.lose(Target::Topic(topic), *lost);
    }
    Ok(Fetched {
        log,
        topics: mem.topics,
        user: mem.user,
    })
}

/// Which log an entry came from.
enum Source {
    Own,
    All,
    User,
    Topic(TopicName),
}
