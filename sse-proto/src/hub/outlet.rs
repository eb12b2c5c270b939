//! [`Outlet`]: the writer's side of one connection, and [`Cutoff`], the transport guard's.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Instant;

use super::Inner;
use super::slot::{Gathering, Slot};
use super::timers::Held;
use crate::connection::EndReason;
use crate::frame::Batch;
use crate::id::SessionId;

/// The writer's side of one connection: it takes queued frames and reports the end.
///
/// Dropping an outlet that has not finished counts as [`peer_gone`](Self::peer_gone).
pub struct Outlet {
    slot: Arc<Slot>,
    hub: Arc<Inner>,
    link_no: u64,
    /// Set once the writer is done: why the connection ended.
    ended: Option<EndReason>,
    /// Whether the drain found the connection cut off (see [`is_cut_off`](Self::is_cut_off)).
    cut: bool,
}

impl Outlet {
    pub(crate) fn new(slot: Arc<Slot>, hub: Arc<Inner>, link_no: u64) -> Outlet {
        hub.streams.open();
        Outlet {
            slot,
            hub,
            link_no,
            ended: None,
            cut: false,
        }
    }

    /// The session id.
    pub fn id(&self) -> &SessionId {
        &self.slot.id
    }

    /// Moves everything queued into `batch`, first queueing a keep-alive comment if the
    /// stream has been idle as of `now`.
    ///
    /// Returns `Ready(Some(n))` with the number of frames moved, `Ready(None)` once the
    /// stream has ended and everything was taken (the connection is then done with its
    /// session), and `Pending` when nothing is queued: the task is woken when something is.
    /// Also wake at [`poll_timeout`](Self::poll_timeout) for keep-alive.
    ///
    /// With a write window ([`HubBuilder::write_window`](crate::HubBuilder::write_window)),
    /// a frame queued after the first batch may open a window (adaptive: only when the last
    /// batch was taken recently, or the writer woke late last time): until the hub's timers
    /// close it, this returns `Pending` and what comes meanwhile waits, then it is taken in
    /// one batch.
    /// A close, a cut-off, a shutdown or a replacement wakes the writer at once, and it then
    /// drains without waiting.
    pub fn poll_drain(
        &mut self,
        cx: &mut Context<'_>,
        now: Instant,
        batch: &mut Batch,
    ) -> Poll<Option<usize>> {
        if self.ended.is_some() {
            return Poll::Ready(None);
        }
        let mut opened = None;
        {
            let mut st = self.slot.lock();
            if let Some(link) = st.link_mut(self.link_no) {
                link.conn.handle_timeout(now);
                // Adaptive window: a writer that wrote recently and finds frames queued (they
                // came while it wrote) holds them until a window's length after that write.
                if link.window == Gathering::Idle
                    && link.primed
                    && link.conn.is_open()
                    && link.conn.queued_bytes() > 0
                {
                    let saturated = self.hub.saturated.load(Ordering::Relaxed);
                    if let Some(at) = self.hub.window.hold_until(&link.cadence, now, saturated) {
                        link.window = Gathering::Open(at);
                        opened = Some(at);
                    }
                }
                // An open window holds the queue until it ends (the hub's timers close it and
                // wake the writer; a writer that asks after the end, without them, takes the
                // batch all the same), unless the connection is ending (a close, a shutdown, a
                // replacement) or cut.
                let held =
                    matches!(link.window, Gathering::Open(end) if end > now) && link.conn.is_open();
                let n = if held {
                    0
                } else {
                    // What a window gathered goes now; the next frame may open another.
                    link.window = Gathering::Idle;
                    link.conn.drain_into(batch, now)
                };
                if n > 0 {
                    // Busy until it asks again: what is queued meanwhile wakes nobody.
                    link.writer = None;
                    link.primed = true;
                    link.cadence.wrote(now);
                    link.room_waiters.drain(..).for_each(std::task::Waker::wake);
                    return Poll::Ready(Some(n));
                }
                if !link.conn.is_finished() {
                    // Idle (or holding a window): what a burst left is given back.
                    link.conn.release_spare();
                    batch.release_spare();
                    match &link.writer {
                        Some(w) if w.will_wake(cx.waker()) => {}
                        _ => link.writer = Some(cx.waker().clone()),
                    }
                    drop(st);
                    if let Some(at) = opened {
                        self.hub.hold([Held {
                            at,
                            slot: Arc::downgrade(&self.slot),
                            link_no: self.link_no,
                        }]);
                    }
                    return Poll::Pending;
                }
                self.cut = link.conn.is_cut_off();
            }
        }
        self.finish();
        Poll::Ready(None)
    }

    /// Ready once the connection was cut off (too slow): stop writing and drop the
    /// transport, even with a write in progress. Registers `cx` to be woken then.
    pub fn poll_cut_off(&self, cx: &mut Context<'_>) -> Poll<EndReason> {
        poll_cut(&self.slot, self.link_no, cx)
    }

    /// A handle for a transport guard that must drop the connection once this stream is
    /// cut off (see [`Cutoff`]).
    pub fn cutoff(&self) -> Cutoff {
        Cutoff {
            slot: self.slot.clone(),
            link_no: self.link_no,
        }
    }

    /// When keep-alive next needs [`poll_drain`](Self::poll_drain) to run; `None` if never.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut st = self.slot.lock();
        st.link_mut(self.link_no)
            .and_then(|l| l.conn.poll_timeout())
    }

    /// Whether the stream has ended (nothing more will be queued).
    pub fn is_finished(&self) -> bool {
        self.ended.is_some()
            || self
                .slot
                .lock()
                .link_mut(self.link_no)
                .is_none_or(|l| l.conn.is_finished())
    }

    /// The peer went away (EOF or a write error): the connection ends at once, and with it
    /// the session (or, in resume mode, the session waits for its tab to come back).
    pub fn peer_gone(&mut self) {
        if self.ended.is_none() {
            self.finish();
        }
    }

    /// Whether the stream ended because it was cut off (too slow, or still writing past a
    /// shutdown's grace), as [`poll_drain`](Self::poll_drain) found it when it returned
    /// `Ready(None)`: the transport is then to be dropped, not ended cleanly (no terminating
    /// chunk), so that the client sees its response cut short.
    pub fn is_cut_off(&self) -> bool {
        self.cut
    }

    /// Why the connection ended; `None` while open.
    pub fn end_reason(&self) -> Option<EndReason> {
        if self.ended.is_some() {
            return self.ended;
        }
        let mut st = self.slot.lock();
        st.link_mut(self.link_no).and_then(|l| l.conn.end_reason())
    }

    fn finish(&mut self) {
        self.ended = Some(self.hub.finish_link(&self.slot, self.link_no));
    }
}

impl Drop for Outlet {
    fn drop(&mut self) {
        if self.ended.is_none() {
            self.finish();
        }
        self.hub.streams.close();
    }
}

impl fmt::Debug for Outlet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outlet")
            .field("id", &self.slot.id)
            .field("link_no", &self.link_no)
            .field("ended", &self.ended)
            .finish()
    }
}

/// Tells a transport guard when one stream was cut off for being too slow, so that it can
/// drop the connection even where nothing polls the stream any more (hyper stops polling a
/// body once the socket is full).
#[derive(Clone)]
pub struct Cutoff {
    slot: Arc<Slot>,
    link_no: u64,
}

impl Cutoff {
    /// Ready once the stream was cut off; registers `cx` to be woken when it is, or when the
    /// stream is over without being cut off (then [`is_done`](Self::is_done), and this
    /// stays `Pending`).
    pub fn poll(&self, cx: &mut Context<'_>) -> Poll<EndReason> {
        poll_cut(&self.slot, self.link_no, cx)
    }

    /// Whether the stream is over and its writer done with it: nothing left to watch.
    pub fn is_done(&self) -> bool {
        self.slot.lock().link_mut(self.link_no).is_none()
    }
}

impl fmt::Debug for Cutoff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cutoff")
            .field("id", &self.slot.id)
            .field("link_no", &self.link_no)
            .finish()
    }
}

fn poll_cut(slot: &Slot, link_no: u64, cx: &mut Context<'_>) -> Poll<EndReason> {
    match slot.lock().link_mut(link_no) {
        Some(link) => link.poll_cut_off(cx),
        None => Poll::Pending,
    }
}
