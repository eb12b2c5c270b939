//! The hub's timers: in resume mode a detached session expires when its grace period passes,
//! after a shutdown the streams that did not drain in time are cut, and with a write window
//! each connection's open window is closed when it ends and its writer woken.

use std::cmp::{Ordering as CmpOrdering, Reverse};
use std::collections::BinaryHeap;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use super::slot::{Gathering, Slot, Wake, lock};
use super::window::{Pacing, WriteWindow};
use super::{Hub, Inner, WeakHub};
use crate::connection::EndReason;

/// Detached sessions by the instant they expire. Holds at most one entry per session: one
/// that re-attached and detached again keeps its entry, which is moved on when it comes due.
#[derive(Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<Due>>,
    /// The task driving [`Hub::poll_timers`], woken when an earlier deadline appears.
    pub(crate) waker: Option<Waker>,
    /// Breaks ties between equal instants.
    order: u64,
    /// After a shutdown: when the streams still writing are cut.
    pub(crate) cut_at: Option<Instant>,
    /// Write windows open on connections, by the instant they end (an adaptive window ends
    /// a length after its writer's last write, so not in the order they opened). Its room
    /// is kept from one window to the next.
    windows: BinaryHeap<Reverse<Held>>,
}

/// A write window open on one connection (link `link_no` of `slot`) until `at`.
pub(crate) struct Held {
    pub(crate) at: Instant,
    pub(crate) slot: Weak<Slot>,
    pub(crate) link_no: u64,
}

// Ordered by the instant the window ends, for the timers' heap.
impl PartialEq for Held {
    fn eq(&self, other: &Held) -> bool {
        self.at == other.at
    }
}

impl Eq for Held {}

impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Held) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

impl Ord for Held {
    fn cmp(&self, other: &Held) -> CmpOrdering {
        self.at.cmp(&other.at)
    }
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

    /// When the driver next has work.
    fn next(&self) -> Option<Instant> {
        let expiry = self.heap.peek().map(|Reverse(due)| due.at);
        let window = self.windows.peek().map(|Reverse(w)| w.at);
        [expiry, self.cut_at, window].into_iter().flatten().min()
    }

    /// Adds open windows; returns the driver to wake if it sleeps past the end of one.
    fn hold(&mut self, windows: impl IntoIterator<Item = Held>) -> Option<Waker> {
        let next = self.next();
        let mut earliest: Option<Instant> = None;
        for held in windows {
            earliest = Some(earliest.map_or(held.at, |e| e.min(held.at)));
            self.windows.push(Reverse(held));
        }
        let earlier = earliest.is_some_and(|at| next.is_none_or(|next| at < next));
        if earlier { self.waker.take() } else { None }
    }

    /// Takes the windows that have ended as of `now`.
    fn ended_windows(&mut self, now: Instant) -> Vec<Held> {
        let mut ended = Vec::new();
        while self.windows.peek().is_some_and(|Reverse(w)| w.at <= now) {
            if let Some(Reverse(w)) = self.windows.pop() {
                ended.push(w);
            }
        }
        ended
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
    /// Runs the hub's timers as of `now` and returns when they next have work.
    ///
    /// In resume mode it ends the detached sessions whose grace period has passed (each
    /// reported to the observer as [`SessionEvent::Expired`](crate::SessionEvent::Expired)).
    /// After [`shutdown`](Self::shutdown) it cuts, at the deadline, the streams that have not
    /// drained, waking their writers and transport guards, so that a server whose readers
    /// stopped reading still stops on time. With a write window
    /// ([`HubBuilder::write_window`](crate::HubBuilder::write_window)) it closes the windows
    /// that have ended and wakes their writers.
    ///
    /// Registers `cx` to be woken when an earlier deadline appears (a session detaches, the
    /// hub shuts down, a window opens) and when the hub is dropped. A driver task sleeps
    /// until the returned instant (or until woken) and calls this again: see
    /// [`WeakHub::drive_timers`].
    pub fn poll_timers(&self, cx: &mut Context<'_>, now: Instant) -> Option<Instant> {
        loop {
            let due = {
                let mut timers = lock(&self.inner.timers);
                if timers.windows.peek().is_some_and(|Reverse(w)| w.at <= now) {
                    let ended = timers.ended_windows(now);
                    drop(timers);
                    ended.into_iter().for_each(end_window);
                    continue;
                }
                if timers.cut_at.is_some_and(|at| at <= now) {
                    timers.cut_at = None;
                    drop(timers);
                    self.inner.cut_all();
                    continue;
                }
                match timers.heap.peek() {
                    Some(Reverse(due)) if due.at <= now => timers.heap.pop(),
                    _ => {
                        match &timers.waker {
                            Some(w) if w.will_wake(cx.waker()) => {}
                            _ => timers.waker = Some(cx.waker().clone()),
                        }
                        return timers.next();
                    }
                }
            };
            let Some(Reverse(due)) = due else { continue };
            let (Some(slot), Some(resume)) = (due.slot.upgrade(), &self.inner.resume) else {
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

    /// Drives [`Hub::poll_timers`] until the hub is dropped: the task an adapter spawns,
    /// on any runtime, with the time of the hub's [`Clock`](crate::Clock); `sleep_until` is
    /// the runtime's timer, on the same clock.
    ///
    /// ```no_run
    /// # async fn demo(hub: sse_proto::Hub) {
    /// // On tokio:
    /// // tokio::spawn(hub.downgrade().drive_timers(|at| tokio::time::sleep_until(at.into())));
    /// # }
    /// ```
    pub async fn drive_timers<S>(self, mut sleep_until: impl FnMut(Instant) -> S)
    where
        S: Future<Output = ()>,
    {
        let mut timer: Option<(Instant, Pin<Box<S>>)> = None;
        poll_fn(|cx| {
            loop {
                let Some(hub) = self.upgrade() else {
                    return Poll::Ready(());
                };
                let next = hub.poll_timers(cx, hub.inner.clock.now());
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
                // Due: the next poll_timers ends what expired.
                timer = None;
            }
        })
        .await;
    }
}

impl Inner {
    /// Acts on the writer of `slot` once its lock is released: wakes it now, or has the
    /// timers close the window just opened.
    pub(super) fn wake_writer(&self, slot: &Arc<Slot>, wake: Wake) {
        match wake {
            Wake::Nothing => {}
            Wake::Now(w) => w.wake(),
            Wake::Later { at, link_no } => self.hold([Held {
                at,
                slot: Arc::downgrade(slot),
                link_no,
            }]),
        }
    }

    /// Has the timers close `windows` when they end. One lock of the timers for all of
    /// them (a broadcast opens its windows at once).
    pub(super) fn hold(&self, windows: impl IntoIterator<Item = Held>) {
        let driver = lock(&self.timers).hold(windows);
        if let Some(w) = driver {
            w.wake();
        }
    }

    /// The write window as of now; `None` when off. Read once per delivery, so a broadcast
    /// reads the clock once (and its fixed windows end together).
    pub(super) fn pacing(&self) -> Option<Pacing> {
        match self.window {
            WriteWindow::Off => None,
            window => Some(Pacing {
                now: self.clock.now(),
                window,
                saturated: self.saturated.load(Ordering::Relaxed),
            }),
        }
    }

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
        let waker = lock(&self.timers).push(at, Arc::downgrade(slot));
        if let Some(w) = waker {
            w.wake();
        }
        // A hub that is shutting down ends detached sessions as they come.
        if self.shutting_down.load(Ordering::Acquire) {
            self.end_session(slot, EndReason::Shutdown, |st| st.link.is_none());
        }
    }
}

/// Closes a window that has ended, unless the connection is gone or opened another since,
/// and wakes its writer to take what the window gathered.
fn end_window(held: Held) {
    let Some(slot) = held.slot.upgrade() else {
        return;
    };
    let writer = {
        let mut st = slot.lock();
        match st.link_mut(held.link_no) {
            Some(link) if link.window == Gathering::Open(held.at) => {
                link.window = Gathering::Ended;
                link.cadence.woken(held.at);
                link.writer.take()
            }
            _ => None,
        }
    };
    if let Some(w) = writer {
        w.wake();
    }
}
