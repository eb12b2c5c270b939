//! Delivery: queueing to one session or to all, and cutting what will not drain.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError, RwLockReadGuard};

use super::slot::{Queued, Slot, SlotState, Wake, Wakeups, lock};
use super::timers::Held;
use super::{Follow, Inner};
use crate::connection::EndReason;
use crate::error::Error;
use crate::frame::Frame;
use crate::history::Target;
use crate::id::SessionId;
use crate::lifecycle::SessionEvent;
use crate::position::Stamp;
use crate::relay::{Recipient, Relayed};

/// The fewest attached streams a fan-out must reach for what it finds (most writers busy
/// or not) to say whether the hub is saturated.
const SATURATION_SAMPLE: usize = 64;

impl Inner {
    /// Cuts every stream still writing (a shutdown's deadline passed): their writers and
    /// transport guards are woken to drop the connections.
    pub(super) fn cut_all(&self) {
        let mut wakeups = Vec::new();
        for slot in self.sessions().values() {
            let mut st = slot.lock();
            let st = &mut *st;
            for link in st.link.iter_mut().chain(st.retired.iter_mut()) {
                if link.conn.is_finished() {
                    continue;
                }
                link.conn.cut(EndReason::Shutdown);
                wakeups.push(Wakeups {
                    writer: link.writer.take(),
                    guards: std::mem::take(&mut link.abort_waiters),
                });
            }
        }
        wakeups.into_iter().for_each(Wakeups::wake);
    }

    pub(super) fn sessions(&self) -> RwLockReadGuard<'_, HashMap<SessionId, Arc<Slot>>> {
        self.sessions.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn notify(&self, event: SessionEvent) {
        #[cfg(feature = "tracing")]
        match &event {
            SessionEvent::Attached { id, continuity } => {
                trace!(debug, session = %id, ?continuity, "stream accepted");
            }
            SessionEvent::Detached { id, reason } => {
                trace!(debug, session = %id, ?reason, "session detached, waiting for its tab");
            }
            SessionEvent::Expired { id } => {
                trace!(debug, session = %id, "session expired");
            }
            SessionEvent::Ended { id, reason } => {
                trace!(debug, session = %id, ?reason, "session ended");
            }
            SessionEvent::Renamed { from, to } => {
                trace!(debug, session = %from, renamed = %to, "session goes on under a re-signed id");
            }
            SessionEvent::Joined { id, topic } => {
                trace!(debug, session = %id, %topic, "session joined a topic");
            }
            SessionEvent::Left { id, topic } => {
                trace!(debug, session = %id, %topic, "session left a topic");
            }
        }
        for observer in &self.observers {
            observer(&event);
        }
    }

    /// Sends `frame` to one session; `logged` events get a position in resume mode.
    pub(super) fn send(&self, slot: &Arc<Slot>, frame: Frame, logged: bool) -> Result<(), Error> {
        if logged && self.relay.is_some() {
            if !slot.lock().is_live() {
                return Err(Error::Closed);
            }
            return self.relay(Relayed::Event {
                to: Recipient::Session(slot.id.clone()),
                frame,
            });
        }
        let resumable = self.resume.is_some();
        let pacing = self.pacing();
        let (queued, follow) = match &self.resume {
            Some(resume) if logged => {
                let mut history = lock(&resume.history);
                let mut st = slot.lock();
                if !st.is_live() {
                    return Err(Error::Closed);
                }
                let target = Target::Session(&slot.id);
                let seq = history.append(target, &frame);
                let shard = history.placement().of(target);
                let stamp = Stamp::new(history.epoch(), shard, seq);
                let queued = st.queue(&slot.id, Some(&stamp), frame, pacing);
                let follow = self.after_queue(&mut st, &queued);
                (queued, follow)
            }
            _ => {
                let mut st = slot.lock();
                if !st.is_live() {
                    return Err(Error::Closed);
                }
                let queued = st.queue(&slot.id, None, frame, pacing);
                let follow = self.after_queue(&mut st, &queued);
                (queued, follow)
            }
        };
        let result = match queued {
            Queued::Sent(wake) => {
                self.wake_writer(slot, wake);
                Ok(())
            }
            // Logged: the tab gets it when it comes back.
            Queued::Detached | Queued::Ending if resumable && logged => Ok(()),
            Queued::Detached => Err(Error::NotConnected),
            Queued::Ending => Err(Error::Closed),
            Queued::Cut(wakeups, err) => {
                wakeups.wake();
                if resumable && logged {
                    Ok(())
                } else {
                    Err(err)
                }
            }
        };
        self.follow(slot, follow);
        result
    }

    /// Under the slot's lock: what follows from queueing. A cut-off detaches the session
    /// (resume mode) or ends it.
    pub(super) fn after_queue(&self, st: &mut SlotState, queued: &Queued) -> Follow {
        #[cfg(feature = "tracing")]
        if let Queued::Cut(_, err) = queued {
            trace!(debug, %err, "slow reader cut off");
        }
        match queued {
            Queued::Cut(..) if self.resume.is_some() => self.detached(st, EndReason::TooSlow),
            Queued::Cut(..) => Follow::End(EndReason::TooSlow),
            _ => Follow::Nothing,
        }
    }

    /// Queues `frame` to every session, with its `id:` line when logged at `at`. Returns
    /// how many took it (in resume mode, logged frames count every live session, attached
    /// or not), and what the caller must do once its locks are released.
    pub(super) fn fan_out(
        &self,
        at: Option<&Stamp>,
        frame: &Frame,
    ) -> (usize, Vec<(Arc<Slot>, Follow)>) {
        self.fan_out_to(self.sessions().values(), at, frame)
    }

    /// Queues `frame` to each of `slots` (see [`fan_out`](Self::fan_out)).
    pub(super) fn fan_out_to<'a>(
        &self,
        slots: impl Iterator<Item = &'a Arc<Slot>>,
        at: Option<&Stamp>,
        frame: &Frame,
    ) -> (usize, Vec<(Arc<Slot>, Follow)>) {
        let logged = at.is_some();
        let pacing = self.pacing();
        let mut count = 0;
        let mut follow = Vec::new();
        // Coalescing windows opened: handed to the timers together once the loop is done.
        let mut held = Vec::new();
        let (mut attached, mut busy) = (0usize, 0usize);
        for slot in slots {
            let mut st = slot.lock();
            if !st.is_live() {
                continue;
            }
            if let Some(link) = &st.link {
                attached += 1;
                busy += usize::from(link.writer.is_none());
            }
            let queued = st.queue(&slot.id, at, frame.clone(), pacing);
            let next = self.after_queue(&mut st, &queued);
            drop(st);
            match queued {
                Queued::Sent(wake) => {
                    count += 1;
                    match wake {
                        Wake::Later { at, link_no } => held.push(Held {
                            at,
                            slot: Arc::downgrade(slot),
                            link_no,
                        }),
                        wake => self.wake_writer(slot, wake),
                    }
                }
                Queued::Detached | Queued::Ending => count += usize::from(logged),
                Queued::Cut(wakeups, _) => {
                    count += usize::from(logged);
                    wakeups.wake();
                }
            }
            if !matches!(next, Follow::Nothing) {
                follow.push((slot.clone(), next));
            }
        }
        if !held.is_empty() {
            self.hold(held);
        }
        // A fan-out to a few streams (a small topic) says little of the hub's load.
        if attached >= SATURATION_SAMPLE {
            self.saturated.store(busy * 2 > attached, Ordering::Relaxed);
        }
        (count, follow)
    }
}
