//! The hub's side of relay mode: [`RelayPort`], through which a [`Store`](crate::Store)
//! takes what the hub hands the relay and delivers back what the relay numbered.

use std::sync::Arc;
use std::task::{Context, Poll};

use super::slot::{Queued, Slot, lock};
use super::{Follow, Hub, Inner, WeakHub};
use crate::error::Error;
use crate::frame::Frame;
use crate::id::SessionId;
use crate::position::{self, Position};
use crate::relay::{Recipient, Relayed};

/// The relay's side of a hub in relay mode: what only the [`Store`](crate::Store) that
/// relays the hub's events to other nodes does with it. One port per hub, claimed by the
/// adapter for its store ([`claim`](Self::claim)); it does not keep the hub alive, and every
/// method does nothing once the hub is dropped.
#[derive(Debug, Clone)]
pub struct RelayPort {
    hub: WeakHub,
}

impl RelayPort {
    /// The port of `hub`, the first time it is asked for; `None` after that, or when the
    /// hub is not in relay mode ([`HubBuilder::relay`](crate::HubBuilder::relay)).
    pub fn claim(hub: &Hub) -> Option<RelayPort> {
        let outbound = hub.inner.relay.as_ref()?;
        let mut outbound = lock(outbound);
        (!std::mem::replace(&mut outbound.claimed, true)).then(|| RelayPort {
            hub: hub.downgrade(),
        })
    }

    /// The hub, while it lives.
    pub fn hub(&self) -> Option<Hub> {
        self.hub.upgrade()
    }

    /// Moves what waits for the relay into `out` and returns how many items; `Pending` when
    /// nothing waits (the task is woken when something is queued), `Ready(None)` once the
    /// hub is dropped.
    pub fn poll_outbound(
        &self,
        cx: &mut Context<'_>,
        out: &mut Vec<Relayed>,
    ) -> Poll<Option<usize>> {
        let Some(hub) = self.hub.upgrade() else {
            return Poll::Ready(None);
        };
        let Some(outbound) = &hub.inner.relay else {
            return Poll::Ready(None);
        };
        match lock(outbound).drain(out, cx.waker()) {
            0 => Poll::Pending,
            n => Poll::Ready(Some(n)),
        }
    }

    /// How many items wait for the relay.
    pub fn backlog(&self) -> usize {
        self.hub
            .upgrade()
            .and_then(|hub| hub.inner.relay.as_ref().map(|o| lock(o).len()))
            .unwrap_or(0)
    }

    /// Delivers an event the relay numbered `seq` to the hub's sessions among `to`, logging
    /// it at that position (resume mode) so that a reconnect here can replay it. Returns how
    /// many of the hub's sessions took it; 0 for a `seq` already delivered.
    ///
    /// The relay calls this in sequence order. An event for a session the hub does not serve
    /// is logged all the same: its tab may be on its way here.
    pub fn deliver(&self, seq: u64, to: &Recipient, frame: Frame) -> usize {
        self.hub
            .upgrade()
            .map_or(0, |hub| hub.deliver_numbered(seq, to, frame, None))
    }

    /// The relay numbered `seq` an event that the hub delivered already, without a
    /// position, while the relay was away (see
    /// [`deliver_unsequenced`](Self::deliver_unsequenced)); a store that answers late may
    /// still apply what it was sent. The event is logged at `seq` as by
    /// [`deliver`](Self::deliver), but the hub's connections among `to` get only its
    /// position: an `id:` line and a blank line, which moves the browser's last event id on
    /// and dispatches nothing. So a tab that had the event sees it once, and resumes from
    /// after it. Without resume mode (no positions) it does nothing and returns 0.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use sse_proto::{Decision, Event, Hub, HttpVersion, Recipient, RelayConfig, RelayPort, Request};
    /// use sse_proto::ResumeConfig;
    ///
    /// let hub = Hub::builder()
    ///     .relay(RelayConfig::default())
    ///     .resume(ResumeConfig::new(Duration::from_secs(30)))
    ///     .build(std::time::Instant::now);
    /// let port = RelayPort::claim(&hub).unwrap();
    /// let mut req = Request::new(b"GET", b"/events?id=tab", HttpVersion::Http11);
    /// req.header(b"accept", b"text/event-stream");
    /// let Decision::Accept(accepted) = hub.decide(&req, Instant::now()) else { panic!() };
    /// let event = Event::new().data("hello").encode();
    /// // The relay is away: the tab gets the event at once, without a position.
    /// port.deliver_unsequenced(&Recipient::All, event.clone());
    /// // The relay numbers it 7 after all: the tab's position moves to it, nothing else.
    /// assert_eq!(port.deliver_known(7, &Recipient::All, event), 1);
    /// ```
    pub fn deliver_known(&self, seq: u64, to: &Recipient, frame: Frame) -> usize {
        let Some(hub) = self.hub.upgrade() else {
            return 0;
        };
        if hub.inner.resume.is_none() {
            return 0;
        }
        hub.deliver_numbered(seq, to, frame, Some(Frame::from_static(b"\n")))
    }

    /// With the relay away: delivers `frame` to the hub's attached sessions among `to`
    /// without a position, and records a gap in the logs of `to`, so that a tab that was
    /// away (or comes back from before this) is told, never silently skipped. Returns how
    /// many took it.
    pub fn deliver_unsequenced(&self, to: &Recipient, frame: Frame) -> usize {
        let Some(hub) = self.hub.upgrade() else {
            return 0;
        };
        let inner = &hub.inner;
        if let Some(resume) = &inner.resume {
            let mut history = lock(&resume.history);
            history.gap(to.target());
        }
        let (count, follow) = inner.deliver_to(to, None, frame);
        for (slot, next) in follow {
            inner.follow(&slot, next);
        }
        count
    }

    /// The relay's store starts a new `epoch` (it lost its contents): the hub's logs start
    /// afresh in it, so that positions of the old epoch are gaps, never a wrong replay.
    /// Sessions and their connections go on.
    pub fn restart_log(&self, epoch: u64) {
        let Some(hub) = self.hub.upgrade() else {
            return;
        };
        if let Some(resume) = &hub.inner.resume {
            let mut history = lock(&resume.history);
            history.reset(epoch);
            // Every session's log is exact from the new epoch's start, and its connection
            // has none of the new epoch's events yet (their numbers start again from 1).
            for slot in hub.inner.sessions().values() {
                let mut st = slot.lock();
                st.since = 0;
                if let Some((_, since)) = &mut st.user {
                    *since = 0;
                }
                if let Some(link) = &mut st.link {
                    link.seen = 0;
                }
            }
        }
    }

    /// The epoch of the hub's log (resume mode).
    pub fn log_epoch(&self) -> Option<u64> {
        let hub = self.hub.upgrade()?;
        let resume = hub.inner.resume.as_ref()?;
        Some(lock(&resume.history).epoch())
    }

    /// Another node closed this session. Ends it here as [`Hub::close`] does (its reconnect
    /// here gets 204), without telling the relay again. Returns whether the hub served it.
    pub fn close(&self, id: &SessionId) -> bool {
        let Some(hub) = self.hub.upgrade() else {
            return false;
        };
        let now = hub.inner.clock.now();
        match hub.slot(id.as_str()) {
            Some(slot) => {
                hub.inner.close(&slot, now, false);
                true
            }
            None => {
                lock(&hub.inner.closed).mark(id, now);
                false
            }
        }
    }
}

impl Hub {
    /// Logs `frame` at `seq` (resume mode) and queues it, or `wire` in its place, on the
    /// connections among `to`.
    fn deliver_numbered(
        &self,
        seq: u64,
        to: &Recipient,
        frame: Frame,
        wire: Option<Frame>,
    ) -> usize {
        let (count, follow) = match &self.inner.resume {
            Some(resume) => {
                let mut history = lock(&resume.history);
                let target = to.target();
                if !history.append_at(target, seq, &frame) {
                    return 0;
                }
                let at = Position::new(history.epoch(), seq);
                self.inner.deliver_to(to, Some(at), wire.unwrap_or(frame))
            }
            // Without positions nothing is delivered known: `wire` comes in resume mode only.
            None => self.inner.deliver_to(to, None, frame),
        };
        for (slot, next) in follow {
            self.inner.follow(&slot, next);
        }
        count
    }
}

impl Inner {
    /// Queues `item` for the relay.
    pub(super) fn relay(&self, item: Relayed) -> Result<(), Error> {
        let Some(outbound) = &self.relay else {
            return Err(Error::Unavailable);
        };
        let waker = lock(outbound).push(item).map_err(|()| Error::Unavailable)?;
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// Queues `frame` to this hub's sessions among `to`, with the `id:` line of `at`.
    fn deliver_to(
        &self,
        to: &Recipient,
        at: Option<Position>,
        frame: Frame,
    ) -> (usize, Vec<(Arc<Slot>, Follow)>) {
        let id = match to {
            Recipient::All => return self.fan_out(at, &frame),
            Recipient::Session(id) => id,
        };
        let Some(slot) = self.sessions().get(id.as_str()).cloned() else {
            return (0, Vec::new());
        };
        let mut st = slot.lock();
        if !st.is_live() {
            return (0, Vec::new());
        }
        let line = at.map(|at| (at.seq, position::id_line(id, at)));
        let queued = st.queue(line, frame, self.window_end());
        let next = self.after_queue(&mut st, &queued);
        drop(st);
        let count = match queued {
            Queued::Sent(wake) => {
                self.wake_writer(&slot, wake);
                1
            }
            Queued::Detached | Queued::Ending => usize::from(at.is_some()),
            Queued::Cut(wakeups, _) => {
                wakeups.wake();
                usize::from(at.is_some())
            }
        };
        (count, vec![(slot, next)])
    }
}
