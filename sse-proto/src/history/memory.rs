//! [`MemoryHistory`]: every log in memory, each bounded, all of them together capped.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

use bytes::Buf;

use super::{History, LogBounds, LogUsage, Logged, Scope, Target};
use crate::cursor::Cursor;
use crate::frame::Frame;
use crate::id::SessionId;
use crate::lifecycle::GapReason;
use crate::placement::Placement;
use crate::request::Principal;
use crate::topic::TopicName;

/// The in-memory [`History`]: a shared log for broadcasts, one log per session, per topic and
/// per user, each bounded by [`LogBounds`], all together by a byte cap.
///
/// ```
/// use sse_proto::{Cursor, Event, History, LogBounds, MemoryHistory, Scope, SessionId, Target};
///
/// let mut log = MemoryHistory::new(7, LogBounds::default(), 64 << 20);
/// let tab = SessionId::parse(b"tab", 128).unwrap();
/// log.append(Target::All, &Event::new().data("to all").encode());
/// log.append(Target::Session(&tab), &Event::new().data("to tab").encode());
/// let mut missed = Vec::new();
/// let topic_gaps = log.replay(&Scope::session(&tab), &Cursor::new(7, 0), &mut missed).unwrap();
/// assert_eq!(missed.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
/// assert!(topic_gaps.is_empty());
/// ```
#[derive(Debug)]
pub struct MemoryHistory {
    epoch: u64,
    placement: Placement,
    /// The head of each shard.
    heads: Vec<u64>,
    /// Each shard's events lost up to this number (the shard restarted empty).
    lost: Vec<u64>,
    bounds: LogBounds,
    max_total_bytes: usize,
    broadcasts: Log,
    sessions: HashMap<SessionId, Log>,
    topics: HashMap<TopicName, Log>,
    users: HashMap<Principal, Log>,
    total_bytes: usize,
    total_events: usize,
}

/// One log: entries in sequence order, their bytes, and the highest sequence number dropped.
#[derive(Debug, Default)]
struct Log {
    entries: VecDeque<Logged>,
    bytes: usize,
    /// The highest sequence number evicted; a replay from below it has a gap.
    evicted: u64,
}

impl Log {
    /// The entries after `after`.
    fn after(&self, after: u64) -> std::collections::vec_deque::Iter<'_, Logged> {
        let start = self.entries.partition_point(|e| e.seq <= after);
        self.entries.range(start..)
    }

    /// Drops the oldest entry; returns its size.
    fn pop_front(&mut self) -> Option<usize> {
        let e = self.entries.pop_front()?;
        let len = e.frame.remaining();
        self.bytes -= len;
        self.evicted = self.evicted.max(e.seq);
        Some(len)
    }

    /// Whether the entries after `after` are all still here.
    fn exact_after(&self, after: u64) -> bool {
        self.evicted <= after
    }
}

/// Entries after one position, up to a bound, from one log: a source of the replay's merge.
struct Source<'a> {
    entries: std::collections::vec_deque::Iter<'a, Logged>,
    until: u64,
}

impl<'a> Source<'a> {
    fn next(&mut self) -> Option<&'a Logged> {
        self.entries.next().filter(|e| e.seq <= self.until)
    }
}

/// Adds the entries of `log` after `from` to the replay's sources, or fails when the log
/// lost some of them.
fn whole<'a>(
    sources: &mut Vec<Source<'a>>,
    log: Option<&'a Log>,
    from: u64,
) -> Result<(), GapReason> {
    let Some(log) = log else { return Ok(()) };
    if !log.exact_after(from) {
        return Err(GapReason::Overflow);
    }
    sources.push(Source {
        entries: log.after(from),
        until: u64::MAX,
    });
    Ok(())
}

impl MemoryHistory {
    /// Default cap on all logs together: 64 MiB.
    pub const DEFAULT_MAX_TOTAL_BYTES: usize = 64 << 20;

    /// An empty store for `epoch`, bounding each log by `bounds` and all of them together
    /// by `max_total_bytes`.
    pub fn new(epoch: u64, bounds: LogBounds, max_total_bytes: usize) -> MemoryHistory {
        MemoryHistory {
            epoch,
            placement: Placement::ONE,
            heads: vec![0],
            lost: vec![0],
            bounds,
            max_total_bytes,
            broadcasts: Log::default(),
            sessions: HashMap::new(),
            topics: HashMap::new(),
            users: HashMap::new(),
            total_bytes: 0,
            total_events: 0,
        }
    }

    /// This store (empty) with its logs kept on shards as `placement` says, each shard
    /// numbered in a sequence of its own.
    pub fn placed(mut self, placement: Placement) -> MemoryHistory {
        self.placement = placement;
        self.heads = vec![0; placement.shards()];
        self.lost = vec![0; placement.shards()];
        self
    }

    /// This store with the sequence of shard 0 at `head` at least (nothing logged): a copy
    /// of another store's logs after a position starts there.
    pub fn with_head(mut self, head: u64) -> MemoryHistory {
        self.heads[0] = self.heads[0].max(head);
        self
    }

    /// This store with the sequence of each shard `after` names at its sequence number at
    /// least: a copy of another store's logs after a cursor starts there.
    pub fn with_heads(mut self, after: &Cursor) -> MemoryHistory {
        for (shard, seq) in after.components() {
            if let Some(head) = self.heads.get_mut(usize::from(shard)) {
                *head = (*head).max(seq);
            }
        }
        self
    }

    /// The bounds of each log.
    pub fn bounds(&self) -> LogBounds {
        self.bounds
    }

    /// Records that the log of `target` lost every entry numbered up to `through` (a store
    /// that trimmed it said so): a replay from before it cannot be told exactly.
    pub fn lose(&mut self, target: Target<'_>, through: u64) {
        let log = self.log_mut(target);
        log.evicted = log.evicted.max(through);
    }

    fn log_mut(&mut self, target: Target<'_>) -> &mut Log {
        match target {
            Target::All => &mut self.broadcasts,
            Target::Session(id) => self.sessions.entry(id.clone()).or_default(),
            Target::Topic(t) => self.topics.entry(t.clone()).or_default(),
            Target::User(u) => self.users.entry(u.clone()).or_default(),
        }
    }

    fn log(&self, target: Target<'_>) -> Option<&Log> {
        match target {
            Target::All => Some(&self.broadcasts),
            Target::Session(id) => self.sessions.get(id),
            Target::Topic(t) => self.topics.get(t),
            Target::User(u) => self.users.get(u),
        }
    }

    /// Evicts the oldest entry of `target`'s log, else of the broadcast log. Returns whether
    /// anything was evicted.
    fn evict_one(&mut self, target: Target<'_>) -> bool {
        let own = match target {
            Target::All => None,
            Target::Session(id) => self.sessions.get_mut(id),
            Target::Topic(t) => self.topics.get_mut(t),
            Target::User(u) => self.users.get_mut(u),
        };
        let len = match own.and_then(Log::pop_front) {
            Some(len) => Some(len),
            None => self.broadcasts.pop_front(),
        };
        match len {
            Some(len) => {
                self.total_bytes -= len;
                self.total_events -= 1;
                true
            }
            None => false,
        }
    }

    /// Drops a log from the totals.
    fn drop_log(&mut self, log: Option<Log>) {
        if let Some(log) = log {
            self.total_bytes -= log.bytes;
            self.total_events -= log.entries.len();
        }
    }
}

impl History for MemoryHistory {
    fn epoch(&self) -> u64 {
        self.epoch
    }

    fn placement(&self) -> Placement {
        self.placement
    }

    fn head(&self, shard: u8) -> u64 {
        self.heads.get(usize::from(shard)).copied().unwrap_or(0)
    }

    fn append(&mut self, target: Target<'_>, frame: &Frame) -> u64 {
        let seq = self.head(self.placement.of(target)) + 1;
        self.append_at(target, seq, frame);
        seq
    }

    fn append_at(&mut self, target: Target<'_>, seq: u64, frame: &Frame) -> bool {
        let shard = self.placement.of(target);
        let head = &mut self.heads[usize::from(shard)];
        if seq <= *head {
            return false;
        }
        *head = seq;
        let len = frame.remaining();
        let bounds = self.bounds;
        let log = self.log_mut(target);
        log.entries.push_back(Logged {
            shard,
            seq,
            frame: frame.clone(),
        });
        log.bytes += len;
        let mut evicted = (0, 0);
        while log.entries.len() > bounds.max_events || log.bytes > bounds.max_bytes {
            match log.pop_front() {
                Some(n) => evicted = (evicted.0 + 1, evicted.1 + n),
                None => break,
            }
        }
        self.total_events = self.total_events + 1 - evicted.0;
        self.total_bytes = self.total_bytes + len - evicted.1;
        while self.total_bytes > self.max_total_bytes && self.evict_one(target) {}
        true
    }

    fn gap(&mut self, target: Target<'_>) {
        let after = self.head(self.placement.of(target)) + 1;
        let log = self.log_mut(target);
        log.evicted = log.evicted.max(after);
    }

    fn replay(
        &self,
        scope: &Scope<'_>,
        after: &Cursor,
        out: &mut Vec<Logged>,
    ) -> Result<Vec<TopicName>, GapReason> {
        if after
            .components()
            .any(|(shard, seq)| self.heads.get(usize::from(shard)).is_none_or(|&h| seq > h))
        {
            return Err(GapReason::InvalidPosition);
        }
        // Each log from the cursor's sequence number for its shard: a shard the cursor does
        // not name is one the tab had not read from when it was given the cursor.
        let after = |target: Target<'_>| after.seq(self.placement.of(target)).unwrap_or(0);
        // Whether the store lost some of `target`'s events after `from`.
        let lost = |target: Target<'_>, from: u64| {
            from < self.lost[usize::from(self.placement.of(target))]
        };
        // The broadcasts, the session's own log and its user's: each told whole, or a gap.
        let own = Target::Session(scope.session);
        let user = scope
            .user
            .map(|(u, since)| (u, after(Target::User(u)).max(since)));
        let (all, mine) = (after(Target::All), after(own));
        if lost(Target::All, all)
            || lost(own, mine)
            || user.is_some_and(|(u, from)| lost(Target::User(u), from))
        {
            return Err(GapReason::Lost);
        }
        let mut sources = Vec::with_capacity(3 + scope.topics.len());
        whole(&mut sources, Some(&self.broadcasts), all)?;
        whole(&mut sources, self.sessions.get(scope.session), mine)?;
        if let Some((u, from)) = user {
            whole(&mut sources, self.users.get(u), from)?;
        }
        // A topic with a stretch that lost events is left out whole: the application
        // catches the tab up on it, and the other logs still replay.
        let mut gaps: Vec<TopicName> = Vec::new();
        for m in scope.topics {
            let from = after(Target::Topic(&m.topic)).max(m.joined);
            if m.left.is_some_and(|left| left <= from) {
                continue;
            }
            let target = Target::Topic(&m.topic);
            let inexact = self.log(target).is_some_and(|log| !log.exact_after(from));
            if (inexact || lost(target, from)) && !gaps.contains(&m.topic) {
                gaps.push(m.topic.clone());
            }
        }
        for m in scope.topics {
            let from = after(Target::Topic(&m.topic)).max(m.joined);
            if m.left.is_some_and(|left| left <= from) || gaps.contains(&m.topic) {
                continue;
            }
            if let Some(log) = self.log(Target::Topic(&m.topic)) {
                sources.push(Source {
                    entries: log.after(from),
                    until: m.left.unwrap_or(u64::MAX),
                });
            }
        }
        // Merged by sequence number, which keeps each shard's order: no event is in two
        // logs, nor in two stretches.
        let mut heads = BinaryHeap::with_capacity(sources.len());
        let mut current = Vec::with_capacity(sources.len());
        for (i, source) in sources.iter_mut().enumerate() {
            let next = source.next();
            if let Some(e) = next {
                heads.push(Reverse((e.seq, i)));
            }
            current.push(next);
        }
        let start = out.len();
        let mut bytes = 0;
        while let Some(Reverse((_, i))) = heads.pop() {
            let Some(entry) = current[i] else { continue };
            bytes += entry.frame.remaining();
            if out.len() - start >= self.bounds.max_events || bytes > self.bounds.max_bytes {
                out.truncate(start);
                return Err(GapReason::Overflow);
            }
            out.push(entry.clone());
            current[i] = sources[i].next();
            if let Some(e) = current[i] {
                heads.push(Reverse((e.seq, i)));
            }
        }
        gaps.sort();
        Ok(gaps)
    }

    fn lose_shard(&mut self, shard: u8, through: u64) {
        let Some(lost) = self.lost.get_mut(usize::from(shard)) else {
            return;
        };
        *lost = (*lost).max(through);
        let head = &mut self.heads[usize::from(shard)];
        *head = (*head).max(through);
        // What is left of the shard's logs from before is of no use to any replay now.
        let placement = self.placement;
        let mut dropped = (0, 0);
        let mut trim = |log: &mut Log| {
            while log.entries.front().is_some_and(|e| e.seq <= through) {
                if let Some(len) = log.pop_front() {
                    dropped = (dropped.0 + 1, dropped.1 + len);
                }
            }
        };
        if shard == 0 {
            trim(&mut self.broadcasts);
        }
        self.sessions
            .iter_mut()
            .filter(|(id, _)| placement.of(Target::Session(id)) == shard)
            .for_each(|(_, log)| trim(log));
        self.topics
            .iter_mut()
            .filter(|(t, _)| placement.of(Target::Topic(t)) == shard)
            .for_each(|(_, log)| trim(log));
        self.users
            .iter_mut()
            .filter(|(u, _)| placement.of(Target::User(u)) == shard)
            .for_each(|(_, log)| trim(log));
        self.total_events -= dropped.0;
        self.total_bytes -= dropped.1;
    }

    fn forget(&mut self, target: Target<'_>) {
        let log = match target {
            Target::All => None,
            Target::Session(id) => self.sessions.remove(id),
            Target::Topic(t) => self.topics.remove(t),
            Target::User(u) => self.users.remove(u),
        };
        self.drop_log(log);
    }

    fn reset(&mut self, epoch: u64) {
        *self = MemoryHistory::new(epoch, self.bounds, self.max_total_bytes).placed(self.placement);
    }

    fn rename(&mut self, from: &SessionId, to: &SessionId) {
        self.forget(Target::Session(to));
        if let Some(log) = self.sessions.remove(from) {
            self.sessions.insert(to.clone(), log);
        }
    }

    fn usage(&self) -> LogUsage {
        LogUsage {
            events: self.total_events,
            bytes: self.total_bytes,
            sessions: self.sessions.len(),
            groups: self.topics.len() + self.users.len(),
        }
    }
}
