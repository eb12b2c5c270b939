//! The closed-id set: which session ids were closed by the server and must get 204.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::id::SessionId;

/// What answering 204 does to a mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClosedPolicy {
    /// The first 204 removes the mark, so a later page load with the same tab id starts a
    /// fresh session (the behaviour of `@ayonli/sse`).
    #[default]
    ConsumeOnFirst,
    /// The mark stays until it expires: every return of the id gets 204 (kicked sessions).
    KeepUntilExpired,
}

/// Where closed ids are remembered. The hub holds one; a shared store (Redis, for several
/// nodes) can implement this trait instead of [`MemoryClosedSet`].
///
/// All time is passed in. Implementations must bound their memory.
pub trait ClosedSet: Send {
    /// Marks `id` closed. Marking an id that is already marked keeps it marked (idempotent)
    /// and restarts its time to live.
    fn mark(&mut self, id: &SessionId, now: Instant);

    /// Whether `id` is marked, applying the policy: under
    /// [`ClosedPolicy::ConsumeOnFirst`] a `true` answer also removes the mark.
    fn check(&mut self, id: &SessionId, now: Instant) -> bool;

    /// Number of marks currently held (expired ones may still be counted until the next call).
    fn len(&self) -> usize;

    /// Whether no mark is held.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An in-memory [`ClosedSet`] bounded by capacity and time to live.
///
/// When full, the oldest mark is evicted first. Marks older than the time to live are dropped
/// as the set is used.
///
/// ```
/// use std::time::{Duration, Instant};
/// use sse_proto::{ClosedPolicy, ClosedSet, MemoryClosedSet, SessionId};
///
/// let mut set = MemoryClosedSet::new(1000, Duration::from_secs(3600), ClosedPolicy::ConsumeOnFirst);
/// let id = SessionId::parse(b"tab-1", 128).unwrap();
/// let now = Instant::now();
/// set.mark(&id, now);
/// assert!(set.check(&id, now));  // answered 204, mark consumed
/// assert!(!set.check(&id, now)); // the next load starts afresh
/// ```
#[derive(Debug)]
pub struct MemoryClosedSet {
    capacity: usize,
    ttl: Duration,
    policy: ClosedPolicy,
    /// Id to the instant it was (last) marked.
    marks: HashMap<SessionId, Instant>,
    /// Marks in the order they were made; an entry is stale when `marks` holds a later
    /// instant for its id (it was marked again) or no longer holds the id.
    order: VecDeque<(SessionId, Instant)>,
}

impl MemoryClosedSet {
    /// Default capacity: 65 536 marks.
    pub const DEFAULT_CAPACITY: usize = 65_536;
    /// Default time to live: one hour.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);

    /// A set holding at most `capacity` marks (at least one) for `ttl` each.
    pub fn new(capacity: usize, ttl: Duration, policy: ClosedPolicy) -> MemoryClosedSet {
        MemoryClosedSet {
            capacity: capacity.max(1),
            ttl,
            policy,
            marks: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> ClosedPolicy {
        self.policy
    }

    fn is_live(&self, id: &SessionId, at: Instant) -> bool {
        self.marks.get(id) == Some(&at)
    }

    /// Drops expired marks and stale order entries from the front.
    fn expire(&mut self, now: Instant) {
        while let Some((id, at)) = self.order.front() {
            let live = self.is_live(id, *at);
            if live && now.saturating_duration_since(*at) < self.ttl {
                break;
            }
            if live {
                self.marks.remove(id);
            }
            self.order.pop_front();
        }
    }

    /// Keeps the order queue from growing with stale entries (ids marked many times or
    /// consumed): past twice the capacity, rebuild it from the live marks.
    fn compact(&mut self) {
        if self.order.len() > 2 * self.capacity {
            let marks = &self.marks;
            self.order.retain(|(id, at)| marks.get(id) == Some(at));
        }
    }
}

impl Default for MemoryClosedSet {
    fn default() -> Self {
        MemoryClosedSet::new(
            Self::DEFAULT_CAPACITY,
            Self::DEFAULT_TTL,
            ClosedPolicy::default(),
        )
    }
}

impl ClosedSet for MemoryClosedSet {
    fn mark(&mut self, id: &SessionId, now: Instant) {
        self.expire(now);
        if !self.marks.contains_key(id) {
            while self.marks.len() >= self.capacity {
                let Some((old, at)) = self.order.pop_front() else {
                    break;
                };
                if self.is_live(&old, at) {
                    self.marks.remove(&old);
                }
            }
        }
        self.marks.insert(id.clone(), now);
        self.order.push_back((id.clone(), now));
        self.compact();
    }

    fn check(&mut self, id: &SessionId, now: Instant) -> bool {
        self.expire(now);
        let Some(&at) = self.marks.get(id) else {
            return false;
        };
        if now.saturating_duration_since(at) >= self.ttl {
            self.marks.remove(id);
            return false;
        }
        if self.policy == ClosedPolicy::ConsumeOnFirst {
            self.marks.remove(id);
        }
        true
    }

    fn len(&self) -> usize {
        self.marks.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> SessionId {
        SessionId::parse(s.as_bytes(), 128).expect("valid id")
    }

    #[test]
    fn consume_on_first() {
        let t0 = Instant::now();
        let mut set = MemoryClosedSet::default();
        assert!(!set.check(&id("a"), t0));
        set.mark(&id("a"), t0);
        set.mark(&id("a"), t0); // idempotent, not a toggle
        assert_eq!(set.len(), 1);
        assert!(set.check(&id("a"), t0));
        assert!(!set.check(&id("a"), t0));
        assert!(set.is_empty());
    }

    #[test]
    fn keep_until_expired() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(10);
        let mut set = MemoryClosedSet::new(10, ttl, ClosedPolicy::KeepUntilExpired);
        set.mark(&id("a"), t0);
        assert!(set.check(&id("a"), t0));
        assert!(set.check(&id("a"), t0 + Duration::from_secs(9)));
        assert!(!set.check(&id("a"), t0 + ttl));
        assert!(set.is_empty());
    }

    #[test]
    fn ttl_expires_and_remark_restarts_it() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut set = MemoryClosedSet::new(10, 10 * s, ClosedPolicy::KeepUntilExpired);
        set.mark(&id("a"), t0);
        set.mark(&id("b"), t0 + 2 * s);
        set.mark(&id("a"), t0 + 5 * s);
        // a's first mark has expired, but it was marked again at 5 s.
        assert!(set.check(&id("a"), t0 + 11 * s));
        assert!(!set.check(&id("b"), t0 + 12 * s));
        assert!(!set.check(&id("a"), t0 + 15 * s));
        assert!(set.is_empty());
    }

    #[test]
    fn capacity_evicts_oldest_first() {
        let t0 = Instant::now();
        let ms = Duration::from_millis(1);
        let mut set =
            MemoryClosedSet::new(3, Duration::from_secs(60), ClosedPolicy::KeepUntilExpired);
        for (i, name) in ["a", "b", "c", "d"].iter().enumerate() {
            set.mark(&id(name), t0 + ms * i as u32);
        }
        assert_eq!(set.len(), 3);
        let now = t0 + 10 * ms;
        assert!(!set.check(&id("a"), now));
        for name in ["b", "c", "d"] {
            assert!(set.check(&id(name), now), "{name}");
        }
    }

    #[test]
    fn memory_stays_bounded_under_repeated_marks() {
        let t0 = Instant::now();
        let mut set =
            MemoryClosedSet::new(4, Duration::from_secs(60), ClosedPolicy::ConsumeOnFirst);
        for i in 0..10_000u32 {
            let name = format!("id-{}", i % 7);
            set.mark(&id(&name), t0 + Duration::from_micros(u64::from(i)));
            if i % 3 == 0 {
                set.check(&id(&name), t0);
            }
            assert!(set.len() <= 4);
            assert!(
                set.order.len() <= 9,
                "order queue grew to {}",
                set.order.len()
            );
        }
    }
}
