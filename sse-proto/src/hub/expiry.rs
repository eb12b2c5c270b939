//! Resume mode's timer: a detached session expires when its grace period passes.

use std::cmp::{Ordering as CmpOrdering, Reverse};
use std::collections::BinaryHeap;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use super::slot::{Slot, lock};
use super::{Hub, Inner, WeakHub};
use crate::connection::EndReason;

/// Detached sessions by the instant they expire. Holds at most one entry per session: one
/// that re-attached and detached again keeps its entry, which is moved on when it comes due.
#[derive(Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<Due>>,
    /// The task driving [`Hub::poll_expiry`], woken when an earlier deadline appears.
    waker: Option<Waker>,
    /// Breaks ties between equal instants.
    order: u64,
    /// Whether an adapter has started a driver.
    pub(crate) claimed: bool,
}

struct Due {
    at: Instant,
    order: u64,
    slot: Weak<Slot>,
}

impl PartialEq for Due {
    fn eq(&self, other: &Due) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}

impl Eq for Due {}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Due) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

impl Ord for Due {
    fn cmp(&self, other: &Due) -> CmpOrdering {
        (self.at, self.order).cmp(&(other.at, other.order))
    }
}

impl Timers {
    fn push(&mut self, at: Instant, slot: Weak<Slot>) -> Option<Waker> {
        let earliest = self.heap.peek().is_none_or(|Reverse(d)| at < d.at);
        self.order += 1;
        self.heap.push(Reverse(Due {
            at,
            order: self.order,
            slot,
        }));
        if earliest { self.waker.take() } else { None }
    }
}

impl Drop for Timers {
    fn drop(&mut self) {
        // The hub is gone: let its driver see that and stop.
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }
}

impl Hub {
    /// Ends the detached sessions whose grace period has passed as of `now` (each reported
    /// to the observer as [`SessionEvent::Expired`](crate::SessionEvent::Expired)) and
    /// returns when the next one is due.
    ///
    /// Registers `cx` to be woken when a session detaches with an earlier deadline than
    /// any so far, and when the hub is dropped. A driver task sleeps until the returned
    /// instant (or until woken) and calls this again; without resume mode it returns
    /// `None` at once and never wakes anyone.
    pub fn poll_expiry(&self, cx: &mut Context<'_>, now: Instant) -> Option<Instant> {
        let resume = self.inner.resume.as_ref()?;
        loop {
            let due = {
                let mut timers = lock(&resume.timers);
                match timers.heap.peek() {
                    Some(Reverse(due)) if due.at <= now => timers.heap.pop(),
                    next => {
                        let next = next.map(|Reverse(due)| due.at);
                        match &timers.waker {
                            Some(w) if w.will_wake(cx.waker()) => {}
                            _ => timers.waker = Some(cx.waker().clone()),
                        }
                        return next;
                    }
                }
            };
            let Some(Reverse(due)) = due else { continue };
            let Some(slot) = due.slot.upgrade() else {
                continue;
            };
            let grace = resume.grace;
            let deadline = {
                let mut st = slot.lock();
                st.expiry_queued = false;
                match st.detached_at {
                    Some(at) if st.link.is_none() && st.is_live() => Some(at + grace),
                    _ => None,
                }
            };
            match deadline {
                Some(at) if at <= now => {
                    self.inner.end_session(&slot, EndReason::Expired, |st| {
                        st.link.is_none() && st.detached_at.is_some_and(|t| t + grace <= now)
                    });
                }
                // Detached again since this entry was made: wait for the new deadline.
                Some(_) => self.inner.schedule_expiry(&slot),
                None => {}
            }
        }
    }

    /// Whether the caller should start the task that drives
    /// [`poll_expiry`](Self::poll_expiry): true once per hub, and only in resume mode.
    /// Adapters call it when they accept a stream.
    pub fn claim_expiry_driver(&self) -> bool {
        match &self.inner.resume {
            Some(resume) => !std::mem::replace(&mut lock(&resume.timers).claimed, true),
            None => false,
        }
    }

    /// A handle that does not keep the hub alive, for a driver task.
    pub fn downgrade(&self) -> WeakHub {
        WeakHub {
            inner: Arc::downgrade(&self.inner),
        }
    }
}

impl WeakHub {
    /// The hub, if it still exists.
    pub fn upgrade(&self) -> Option<Hub> {
        self.inner.upgrade().map(|inner| Hub { inner })
    }

    /// Drives [`Hub::poll_expiry`] until the hub is dropped: the task an adapter spawns in
    /// resume mode, on any runtime. `clock` is the runtime's clock and `sleep_until` its
    /// timer.
    ///
    /// ```no_run
    /// # async fn demo(hub: sse_proto::Hub) {
    /// // On tokio:
    /// // tokio::spawn(hub.downgrade().drive_expiry(now, |at| tokio::time::sleep_until(at.into())));
    /// # }
    /// ```
    pub async fn drive_expiry<S>(
        self,
        clock: fn() -> Instant,
        mut sleep_until: impl FnMut(Instant) -> S,
    ) where
        S: Future<Output = ()>,
    {
        let mut timer: Option<(Instant, Pin<Box<S>>)> = None;
        poll_fn(|cx| {
            loop {
                let Some(hub) = self.upgrade() else {
                    return Poll::Ready(());
                };
                let next = hub.poll_expiry(cx, clock());
                drop(hub);
                let Some(at) = next else {
                    timer = None;
                    return Poll::Pending;
                };
                let sleep = match &mut timer {
                    Some((t, sleep)) if *t == at => sleep,
                    _ => &mut timer.insert((at, Box::pin(sleep_until(at)))).1,
                };
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                // Due: the next poll_expiry ends what expired.
                timer = None;
            }
        })
        .await;
    }
}

impl Inner {
    /// Puts a detached session in the expiry queue, unless it is there already.
    pub(super) fn schedule_expiry(&self, slot: &Arc<Slot>) {
        let Some(resume) = &self.resume else { return };
        let at = {
            let mut st = slot.lock();
            match st.detached_at {
                Some(at) if !st.expiry_queued && st.link.is_none() => {
                    st.expiry_queued = true;
                    at + resume.grace
                }
                _ => return,
            }
        };
        let waker = lock(&resume.timers).push(at, Arc::downgrade(slot));
        if let Some(w) = waker {
            w.wake();
        }
        // A hub that is shutting down ends detached sessions as they come.
        if self.shutting_down.load(Ordering::Acquire) {
            self.end_session(slot, EndReason::Shutdown, |st| st.link.is_none());
        }
    }
}
