//! Session logs for resume mode: what was sent, at which position, bounded.
//!
//! Every logged event gets the next number of one sequence per store, whether it went to one
//! session or to all. A broadcast is logged once, in a log every session shares, so a
//! broadcast to ten thousand detached sessions holds one frame; an event for one session goes
//! to that session's own log. A reconnect from position `p` replays the events of both logs
//! after `p`, merged by sequence number, or reports why it cannot.

use std::collections::{HashMap, VecDeque};

use bytes::Buf;

use crate::connection::ConnectionConfig;
use crate::frame::Frame;
use crate::id::SessionId;
use crate::lifecycle::GapReason;

/// One logged event: its sequence number and its encoded frame (shared, not copied).
#[derive(Debug, Clone)]
pub struct Logged {
    /// The sequence number, the `seq` of its [`Position`](crate::Position).
    pub seq: u64,
    /// The event as encoded, without its `id:` line.
    pub frame: Frame,
}

/// Who a logged event is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// Every session (a broadcast).
    All,
    /// One session.
    Session(&'a SessionId),
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
pub struct LogUsage {
    /// Events held, over every log.
    pub events: usize,
    /// Encoded bytes held, over every log.
    pub bytes: usize,
    /// Sessions with a log of their own.
    pub sessions: usize,
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

    /// The sequence number of the last logged event (0 before any).
    fn head(&self) -> u64;

    /// Logs `frame` for `target` and returns its sequence number: one more than
    /// [`head`](Self::head).
    fn append(&mut self, target: Target<'_>, frame: &Frame) -> u64;

    /// Appends to `out`, in order, every event for `id` with a sequence number above
    /// `after`, or fails when the log cannot say exactly what they are. On failure `out` is
    /// left as it was.
    fn replay(&self, id: &SessionId, after: u64, out: &mut Vec<Logged>) -> Result<(), GapReason>;

    /// Logs `frame` for `target` at `seq`, a sequence number given by a relay (relay mode).
    /// Returns `false`, logging nothing, when `seq` is not above [`head`](Self::head) (a
    /// delivery seen before); otherwise `seq` becomes the head.
    fn append_at(&mut self, target: Target<'_>, seq: u64, frame: &Frame) -> bool;

    /// Records that events for `target` after the head were delivered without being logged
    /// (the relay was away): a replay from the head or before is a gap from now on.
    fn gap(&mut self, target: Target<'_>);

    /// Drops the log of `id` (the session expired or was closed).
    fn forget(&mut self, id: &SessionId);

    /// Drops everything and starts again in `epoch` at sequence number 0: the relay's store
    /// lost its contents (a restart), so no position of the old epoch means anything now.
    fn reset(&mut self, epoch: u64);

    /// Moves the log of `from` to `to` (the session continues under a re-signed id),
    /// replacing whatever `to` had.
    fn rename(&mut self, from: &SessionId, to: &SessionId);

    /// What the store holds.
    fn usage(&self) -> LogUsage;
}

/// The in-memory [`History`]: a shared log for broadcasts and one log per session, each
/// bounded by [`LogBounds`], all together by a byte cap.
///
/// ```
/// use sse_proto::{Event, History, LogBounds, MemoryHistory, SessionId, Target};
///
/// let mut log = MemoryHistory::new(7, LogBounds::default(), 64 << 20);
/// let tab = SessionId::parse(b"tab", 128).unwrap();
/// log.append(Target::All, &Event::new().data("to all").encode());
/// log.append(Target::Session(&tab), &Event::new().data("to tab").encode());
/// let mut missed = Vec::new();
/// log.replay(&tab, 0, &mut missed).unwrap();
/// assert_eq!(missed.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
/// ```
#[derive(Debug)]
pub struct MemoryHistory {
    epoch: u64,
    head: u64,
    bounds: LogBounds,
    max_total_bytes: usize,
    broadcasts: Log,
    sessions: HashMap<SessionId, Log>,
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
    fn after(&self, after: u64) -> impl Iterator<Item = &Logged> {
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
}

impl MemoryHistory {
    /// Default cap on all logs together: 64 MiB.
    pub const DEFAULT_MAX_TOTAL_BYTES: usize = 64 << 20;

    /// An empty store for `epoch`, bounding each log by `bounds` and all of them together
    /// by `max_total_bytes`.
    pub fn new(epoch: u64, bounds: LogBounds, max_total_bytes: usize) -> MemoryHistory {
        MemoryHistory {
            epoch,
            head: 0,
            bounds,
            max_total_bytes,
            broadcasts: Log::default(),
            sessions: HashMap::new(),
            total_bytes: 0,
            total_events: 0,
        }
    }

    /// The bounds of each log.
    pub fn bounds(&self) -> LogBounds {
        self.bounds
    }

    fn log_mut(&mut self, target: Target<'_>) -> &mut Log {
        match target {
            Target::All => &mut self.broadcasts,
            Target::Session(id) => self.sessions.entry(id.clone()).or_default(),
        }
    }

    /// Evicts the oldest entry of `target`'s log, else of the broadcast log. Returns whether
    /// anything was evicted.
    fn evict_one(&mut self, target: Target<'_>) -> bool {
        let own = match target {
            Target::All => None,
            Target::Session(id) => self.sessions.get_mut(id),
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
}

impl History for MemoryHistory {
    fn epoch(&self) -> u64 {
        self.epoch
    }

    fn head(&self) -> u64 {
        self.head
    }

    fn append(&mut self, target: Target<'_>, frame: &Frame) -> u64 {
        let seq = self.head + 1;
        self.append_at(target, seq, frame);
        seq
    }

    fn append_at(&mut self, target: Target<'_>, seq: u64, frame: &Frame) -> bool {
        if seq <= self.head {
            return false;
        }
        self.head = seq;
        let len = frame.remaining();
        let bounds = self.bounds;
        let log = self.log_mut(target);
        log.entries.push_back(Logged {
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
        let after = self.head + 1;
        let log = self.log_mut(target);
        log.evicted = log.evicted.max(after);
    }

    fn replay(&self, id: &SessionId, after: u64, out: &mut Vec<Logged>) -> Result<(), GapReason> {
        if after > self.head {
            return Err(GapReason::InvalidPosition);
        }
        let own = self.sessions.get(id);
        let evicted = own
            .map_or(0, |log| log.evicted)
            .max(self.broadcasts.evicted);
        if evicted > after {
            return Err(GapReason::Overflow);
        }
        let mut all = self.broadcasts.after(after).peekable();
        let mut mine = own.into_iter().flat_map(|log| log.after(after)).peekable();
        let start = out.len();
        let mut bytes = 0;
        loop {
            let next = match (all.peek(), mine.peek()) {
                (Some(a), Some(m)) if a.seq < m.seq => all.next(),
                (Some(_), Some(_)) | (None, Some(_)) => mine.next(),
                (Some(_), None) => all.next(),
                (None, None) => break,
            };
            let Some(entry) = next else { break };
            bytes += entry.frame.remaining();
            if out.len() - start >= self.bounds.max_events || bytes > self.bounds.max_bytes {
                out.truncate(start);
                return Err(GapReason::Overflow);
            }
            out.push(entry.clone());
        }
        Ok(())
    }

    fn forget(&mut self, id: &SessionId) {
        if let Some(log) = self.sessions.remove(id) {
            self.total_bytes -= log.bytes;
            self.total_events -= log.entries.len();
        }
    }

    fn reset(&mut self, epoch: u64) {
        *self = MemoryHistory::new(epoch, self.bounds, self.max_total_bytes);
    }

    fn rename(&mut self, from: &SessionId, to: &SessionId) {
        self.forget(to);
        if let Some(log) = self.sessions.remove(from) {
            self.sessions.insert(to.clone(), log);
        }
    }

    fn usage(&self) -> LogUsage {
        LogUsage {
            events: self.total_events,
            bytes: self.total_bytes,
            sessions: self.sessions.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;

    fn id(s: &str) -> SessionId {
        SessionId::parse(s.as_bytes(), 128).expect("valid")
    }

    fn frame(text: &str) -> Frame {
        Event::new().data(text.to_owned()).encode()
    }

    fn seqs(log: &MemoryHistory, who: &str, after: u64) -> Result<Vec<u64>, GapReason> {
        let mut out = Vec::new();
        log.replay(&id(who), after, &mut out)?;
        Ok(out.iter().map(|e| e.seq).collect())
    }

    #[test]
    fn merges_broadcasts_and_own_events_in_order() {
        let mut log = MemoryHistory::new(1, LogBounds::default(), usize::MAX);
        let (a, b) = (id("a"), id("b"));
        log.append(Target::All, &frame("1"));
        log.append(Target::Session(&a), &frame("2"));
        log.append(Target::Session(&b), &frame("3"));
        log.append(Target::All, &frame("4"));
        log.append(Target::Session(&a), &frame("5"));
        assert_eq!(seqs(&log, "a", 0), Ok(vec![1, 2, 4, 5]));
        assert_eq!(seqs(&log, "a", 2), Ok(vec![4, 5]));
        assert_eq!(seqs(&log, "b", 1), Ok(vec![3, 4]));
        assert_eq!(seqs(&log, "c", 3), Ok(vec![4]));
        assert_eq!(seqs(&log, "a", 5), Ok(vec![]));
        assert_eq!(seqs(&log, "a", 6), Err(GapReason::InvalidPosition));
        assert_eq!(log.usage().events, 5);
        log.rename(&a, &id("a2"));
        assert_eq!(seqs(&log, "a2", 2), Ok(vec![4, 5]));
        assert_eq!(seqs(&log, "a", 2), Ok(vec![4]));
        log.forget(&id("a2"));
        assert_eq!(log.usage().events, 3);
        assert_eq!(log.usage().sessions, 1);
    }

    #[test]
    fn count_and_byte_bounds_turn_into_gaps() {
        let bounds = LogBounds {
            max_events: 3,
            max_bytes: 1000,
        };
        let mut log = MemoryHistory::new(1, bounds, usize::MAX);
        let a = id("a");
        for i in 0..5 {
            log.append(Target::Session(&a), &frame(&i.to_string()));
        }
        // Kept: 3, 4, 5. From 1 the log cannot say what 2 was.
        assert_eq!(seqs(&log, "a", 1), Err(GapReason::Overflow));
        assert_eq!(seqs(&log, "a", 2), Ok(vec![3, 4, 5]));
        // Three own events plus broadcasts exceed the bound for one reconnect.
        log.append(Target::All, &frame("b"));
        assert_eq!(seqs(&log, "a", 2), Err(GapReason::Overflow));
        assert_eq!(seqs(&log, "a", 3), Ok(vec![4, 5, 6]));
        // One event over the byte bound is never kept: everyone before it has a gap.
        let big = Event::new().data("x".repeat(2000)).encode();
        log.append(Target::All, &big);
        assert_eq!(seqs(&log, "a", 6), Err(GapReason::Overflow));
        assert_eq!(seqs(&log, "a", 7), Ok(vec![]));
    }

    #[test]
    fn the_total_cap_evicts_own_events_then_broadcasts() {
        let one = frame("0123456789").remaining(); // every frame here has this size
        let mut log = MemoryHistory::new(1, LogBounds::default(), 3 * one);
        let (a, b) = (id("a"), id("b"));
        log.append(Target::All, &frame("0123456789"));
        log.append(Target::Session(&a), &frame("0123456789"));
        log.append(Target::Session(&b), &frame("0123456789"));
        assert_eq!(log.usage().bytes, 3 * one);
        // Over the cap: a's own oldest goes first.
        log.append(Target::Session(&a), &frame("0123456789"));
        assert_eq!(log.usage().bytes, 3 * one);
        assert_eq!(seqs(&log, "a", 1), Err(GapReason::Overflow));
        assert_eq!(seqs(&log, "b", 0), Ok(vec![1, 3]));
        // b has nothing of its own to give up but the new one... its own oldest, then.
        log.append(Target::Session(&b), &frame("0123456789"));
        assert_eq!(seqs(&log, "b", 0), Err(GapReason::Overflow));
        assert_eq!(seqs(&log, "b", 3), Ok(vec![5]));
        assert_eq!(log.usage().bytes, 3 * one);
        // A broadcast over the cap evicts the oldest broadcast.
        log.append(Target::All, &frame("0123456789"));
        assert_eq!(log.usage().bytes, 3 * one);
        assert_eq!(seqs(&log, "a", 1), Err(GapReason::Overflow));
        assert_eq!(seqs(&log, "a", 2), Ok(vec![4, 6]));
        assert_eq!(seqs(&log, "c", 0), Err(GapReason::Overflow));
    }

    #[test]
    fn relayed_sequence_numbers_and_gaps() {
        let mut log = MemoryHistory::new(1, LogBounds::default(), usize::MAX);
        let a = id("a");
        assert!(log.append_at(Target::All, 10, &frame("10")));
        assert!(log.append_at(Target::Session(&a), 14, &frame("14")));
        assert!(
            !log.append_at(Target::Session(&a), 14, &frame("again")),
            "seen before"
        );
        assert!(!log.append_at(Target::All, 3, &frame("old")));
        assert_eq!(log.head(), 14);
        assert_eq!(seqs(&log, "a", 9), Ok(vec![10, 14]));
        // Delivered without a log entry: whoever was at 14 or before missed it.
        log.gap(Target::Session(&a));
        assert_eq!(seqs(&log, "a", 14), Err(GapReason::Overflow));
        assert_eq!(seqs(&log, "b", 14), Ok(vec![]));
        assert!(log.append_at(Target::Session(&a), 20, &frame("20")));
        assert_eq!(seqs(&log, "a", 20), Ok(vec![]));
        assert_eq!(log.append(Target::All, &frame("21")), 21);
    }

    #[test]
    fn one_broadcast_for_many_sessions_is_one_entry() {
        let mut log = MemoryHistory::new(1, LogBounds::default(), usize::MAX);
        let payload = bytes::Bytes::from(vec![b'x'; 1024]);
        log.append(Target::All, &Event::new().data(payload).encode());
        for i in 0..1000 {
            assert_eq!(seqs(&log, &format!("s{i}"), 0), Ok(vec![1]));
        }
        assert_eq!(log.usage().events, 1);
        assert_eq!(log.usage().sessions, 0);
    }
}
