//! [`HeadSlots`]: a server-wide cap on connections holding an unfinished request head, so a
//! slowloris cannot lock legitimate clients out.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

/// A cap on how many connections of one server may hold an unfinished request head at once.
///
/// A connection takes a [`HeadSlot`] when bytes of a head are buffered and the head is not
/// complete ([`RequestReader::is_mid_head`](super::RequestReader::is_mid_head)), and drops
/// it when the head is complete or the connection closes. A head that arrives in one read
/// never needs a slot.
///
/// When every slot is taken, [`acquire`](Self::acquire) evicts the holder whose head started
/// first: a slowloris ties up slots by keeping heads unfinished, so its heads are the oldest,
/// while a legitimate head is finished within a round trip. The evicted connection sees
/// [`HeadSlot::is_evicted`] (and is woken through [`HeadSlot::poll_evicted`]) and closes.
/// Each head also has its own deadline ([`ReaderTimeouts::head`](super::ReaderTimeouts)).
///
/// Cloning shares the same slots. No clock is read: the caller passes the time in.
///
/// ```
/// use std::time::Instant;
/// use sse_http1::proto::HeadSlots;
///
/// let slots = HeadSlots::new(1);
/// let now = Instant::now();
/// let slow = slots.acquire(now);
/// let fresh = slots.acquire(now);
/// assert!(slow.is_evicted() && !fresh.is_evicted());
/// assert_eq!(slots.in_use(), 1);
/// ```
#[derive(Debug, Clone)]
pub struct HeadSlots {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    limit: usize,
    holders: Mutex<Holders>,
}

#[derive(Debug, Default)]
struct Holders {
    next_id: u64,
    live: Vec<Holder>,
}

#[derive(Debug)]
struct Holder {
    id: u64,
    since: Instant,
    evicted: bool,
    waker: Option<Waker>,
}

/// One connection's slot in [`HeadSlots`], released when dropped.
#[derive(Debug)]
#[must_use = "the slot is released when dropped"]
pub struct HeadSlot {
    inner: Arc<Inner>,
    id: u64,
}

impl HeadSlots {
    /// Slots for at most `limit` unfinished heads at once (at least 1).
    pub fn new(limit: usize) -> HeadSlots {
        HeadSlots {
            inner: Arc::new(Inner {
                limit: limit.max(1),
                holders: Mutex::new(Holders::default()),
            }),
        }
    }

    /// The cap.
    pub fn limit(&self) -> usize {
        self.inner.limit
    }

    /// Slots held now (evicted holders no longer count).
    pub fn in_use(&self) -> usize {
        self.inner.lock().live.iter().filter(|h| !h.evicted).count()
    }

    /// Takes a slot for a head that started at `now`; when all are taken, evicts the holder
    /// whose head started first (ties: the first to take its slot).
    pub fn acquire(&self, now: Instant) -> HeadSlot {
        let mut holders = self.inner.lock();
        let held = holders.live.iter().filter(|h| !h.evicted).count();
        if held >= self.inner.limit {
            let oldest = holders
                .live
                .iter_mut()
                .filter(|h| !h.evicted)
                .min_by_key(|h| (h.since, h.id));
            if let Some(oldest) = oldest {
                oldest.evicted = true;
                if let Some(waker) = oldest.waker.take() {
                    waker.wake();
                }
            }
        }
        let id = holders.next_id;
        holders.next_id += 1;
        holders.live.push(Holder {
            id,
            since: now,
            evicted: false,
            waker: None,
        });
        HeadSlot {
            inner: self.inner.clone(),
            id,
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Holders> {
        // The lists stay consistent at every step, so a panic elsewhere leaves them usable.
        self.holders.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl HeadSlot {
    /// Whether a newer head took this slot: close the connection (no answer is needed; a
    /// 503 may be sent).
    pub fn is_evicted(&self) -> bool {
        let holders = self.inner.lock();
        holders
            .live
            .iter()
            .find(|h| h.id == self.id)
            .is_none_or(|h| h.evicted)
    }

    /// `Ready` once this slot was evicted; otherwise registers `cx` to be woken then.
    pub fn poll_evicted(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut holders = self.inner.lock();
        match holders.live.iter_mut().find(|h| h.id == self.id) {
            Some(h) if !h.evicted => {
                h.waker = Some(cx.waker().clone());
                Poll::Pending
            }
            _ => Poll::Ready(()),
        }
    }
}

impl Drop for HeadSlot {
    fn drop(&mut self) {
        let mut holders = self.inner.lock();
        holders.live.retain(|h| h.id != self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;
    use std::time::Duration;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn caps_unfinished_heads_and_evicts_the_oldest() {
        let t0 = Instant::now();
        let slots = HeadSlots::new(2);
        assert_eq!(slots.limit(), 2);
        let a = slots.acquire(t0);
        let b = slots.acquire(t0 + Duration::from_secs(1));
        assert_eq!(slots.in_use(), 2);
        assert!(!a.is_evicted() && !b.is_evicted());

        let woken = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(woken.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(a.poll_evicted(&mut cx).is_pending());

        // Full: the newcomer gets a slot and the oldest head (a) is evicted and woken.
        let c = slots.acquire(t0 + Duration::from_secs(2));
        assert!(a.is_evicted() && !b.is_evicted() && !c.is_evicted());
        assert_eq!(woken.0.load(Ordering::SeqCst), 1);
        assert!(a.poll_evicted(&mut cx).is_ready());
        assert_eq!(slots.in_use(), 2);

        // Dropping releases: a finished head frees its slot without evicting anyone.
        drop(b);
        drop(a);
        assert_eq!(slots.in_use(), 1);
        let d = slots.acquire(t0 + Duration::from_secs(3));
        assert!(!c.is_evicted() && !d.is_evicted());
        // Clones share the slots.
        let e = slots.clone().acquire(t0 + Duration::from_secs(4));
        assert!(c.is_evicted() && !d.is_evicted() && !e.is_evicted());
    }

    #[test]
    fn a_slowloris_cannot_hold_legitimate_heads_out() {
        let t0 = Instant::now();
        let slots = HeadSlots::new(8);
        // Attackers fill every slot with heads that never finish.
        let attackers: Vec<HeadSlot> = (0..8).map(|_| slots.acquire(t0)).collect();
        // Legitimate clients arrive later; each still gets a slot, evicting an attacker.
        for i in 1..=8 {
            let legit = slots.acquire(t0 + Duration::from_millis(i));
            assert!(!legit.is_evicted());
            drop(legit); // head finished
        }
        // One attacker made room; the slots freed by finished heads served the rest.
        assert_eq!(attackers.iter().filter(|a| a.is_evicted()).count(), 1);
        assert_eq!(slots.in_use(), 7);
        // Newcomers past the cap evict the oldest unfinished heads: the attackers' own.
        let again = slots.acquire(t0 + Duration::from_secs(1));
        let held = slots.acquire(t0 + Duration::from_secs(2));
        assert!(!again.is_evicted() && !held.is_evicted());
        assert_eq!(slots.in_use(), 8);
        assert_eq!(HeadSlots::new(0).limit(), 1);
    }
}
