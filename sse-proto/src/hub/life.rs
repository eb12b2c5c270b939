//! A session's life in the hub: the ids it gets, its close, its detachment and its end.

use std::sync::{Arc, PoisonError};
use std::task::Waker;
use std::time::Instant;

use super::groups::Changes;
use super::slot::{Life, Slot, SlotState, lock};
use super::{Follow, Inner};
use crate::connection::EndReason;
use crate::handshake::Checked;
use crate::history::Target;
use crate::id::{IdRejection, IdSource, IdVerdict, SessionId};
use crate::lifecycle::SessionEvent;
use crate::relay::Relayed;

impl Inner {
    /// A fresh session id: signed for `principal` when ids are signed.
    pub(super) fn fresh_id(&self, principal: Option<&[u8]>) -> SessionId {
        #[cfg(feature = "signing")]
        if let Some(ring) = &self.signing {
            let ring = ring.read().unwrap_or_else(PoisonError::into_inner);
            // Cannot fail: the ring's ids are URL-safe and at most MAX_SIGNED_ID_LEN long.
            if let Ok(id) = ring.issue(self.ids.random_bytes(), principal) {
                return id;
            }
        }
        let _ = principal;
        self.ids.generate()
    }

    /// What the hub says of a valid client id: its signature (when ids are signed), then the
    /// application's policy. A verified id signed by an older key is re-signed.
    pub(super) fn check_id(
        &self,
        id: &SessionId,
        principal: Option<&[u8]>,
        source: IdSource,
    ) -> Checked {
        #[cfg_attr(not(feature = "signing"), allow(unused_mut))]
        let mut resigned = None;
        #[cfg(feature = "signing")]
        if let Some(ring) = &self.signing {
            let ring = ring.read().unwrap_or_else(PoisonError::into_inner);
            match ring.verify(id.as_bytes(), principal) {
                Err(e) => return Checked::Refuse(IdRejection::Signature(e)),
                Ok(verified) if !verified.is_current() => {
                    resigned = ring.resign(&verified, principal).ok();
                }
                Ok(_) => {}
            }
        }
        if let Some(policy) = &self.policy {
            match policy(id, principal, source) {
                IdVerdict::Accept => {}
                IdVerdict::Refuse => return Checked::Refuse(IdRejection::Refused),
                IdVerdict::Reissue => return Checked::Absent,
            }
        }
        match resigned {
            Some(new) => Checked::AcceptAs(new),
            None => Checked::Accept,
        }
    }

    /// Closes `slot`: marks its id, then ends its stream after what is queued (or, when
    /// detached, ends the session at once).
    ///
    /// A handle to a session that is over still marks its id (so a tab on its way back is
    /// told 204), unless a newer session holds the id: that one is not this handle's to close.
    ///
    /// In relay mode, `relay` also tells the other nodes (a close that came from the relay
    /// does not go back to it).
    pub(super) fn close(&self, slot: &Arc<Slot>, now: Instant, relay: bool) -> bool {
        let newer = self
            .sessions()
            .get(&slot.id)
            .is_some_and(|current| !Arc::ptr_eq(current, slot));
        if newer {
            return false;
        }
        lock(&self.closed).mark(&slot.id, now);
        trace!(debug, session = %slot.id, "session closed by the server");
        if relay && self.relay.is_some() {
            // A close carries no payload: it is queued whatever the bounds.
            let _ = self.relay(Relayed::Closed {
                id: slot.id.clone(),
            });
        }
        let (began, writer) = {
            let mut st = slot.lock();
            if !st.is_live() {
                return false;
            }
            match &mut st.link {
                Some(link) => {
                    link.conn.close();
                    let writer = link.writer.take();
                    st.life = Life::Ending(EndReason::Closed);
                    (true, writer)
                }
                None => (false, None),
            }
        };
        if let Some(w) = writer {
            w.wake();
        }
        began || self.end_session(slot, EndReason::Closed, |st| st.link.is_none())
    }

    /// Under the slot's lock: the session lost its connection. In resume mode it waits for
    /// its tab; otherwise it ends.
    pub(super) fn detached(&self, st: &mut SlotState, reason: EndReason) -> Follow {
        if self.resume.is_none() {
            return Follow::End(reason);
        }
        st.detached_at = Some(self.clock.now());
        Follow::Detached(reason)
    }

    /// Acts on what happened under a slot's lock, with the lock released.
    pub(super) fn follow(&self, slot: &Arc<Slot>, follow: Follow) {
        match follow {
            Follow::Nothing => {}
            Follow::End(reason) => {
                self.end_session(slot, reason, |_| true);
            }
            Follow::Detached(reason) => {
                self.schedule_expiry(slot);
                self.notify(SessionEvent::Detached {
                    id: slot.id.clone(),
                    reason,
                });
            }
        }
    }

    /// Ends the session for good if `still` holds for it: it leaves the registry, its log
    /// is dropped, its waiters are woken and the observer is told. Returns whether this call
    /// ended it.
    pub(super) fn end_session(
        &self,
        slot: &Arc<Slot>,
        reason: EndReason,
        still: impl FnOnce(&SlotState) -> bool,
    ) -> bool {
        let mut history = self.resume.as_ref().map(|r| lock(&r.history));
        let mut groups = lock(&self.groups);
        let mut sessions = self
            .sessions
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let waiters = {
            let mut st = slot.lock();
            if matches!(st.life, Life::Ended(_)) || !still(&st) {
                return false;
            }
            st.life = Life::Ended(reason);
            st.detached_at = None;
            std::mem::take(&mut st.end_waiters)
        };
        let mut changes = Changes::default();
        changes.leave_all(&mut groups, slot);
        if sessions.get(&slot.id).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            sessions.remove(&slot.id);
            if let Some(history) = &mut history {
                history.forget(Target::Session(&slot.id));
            }
        }
        drop(sessions);
        changes.forget_unused(history.as_deref_mut());
        drop(groups);
        drop(history);
        waiters.into_iter().for_each(std::task::Waker::wake);
        let id = slot.id.clone();
        self.notify(match reason {
            EndReason::Expired => SessionEvent::Expired { id },
            reason => SessionEvent::Ended { id, reason },
        });
        changes.notify(self);
        true
    }

    /// The writer of link `link_no` is done with it: a retired link is dropped; the attached
    /// one detaches the session (resume mode) or ends it. Returns why the link ended.
    ///
    /// The link's transport guards ([`Cutoff`](crate::Cutoff)) are woken: the stream they
    /// watch is over.
    pub(super) fn finish_link(&self, slot: &Arc<Slot>, link_no: u64) -> EndReason {
        let (reason, follow, guards) = {
            let mut st = slot.lock();
            match st.link.take() {
                Some(mut link) if link.link_no == link_no => {
                    link.conn.peer_gone();
                    let reason = link.conn.end_reason().unwrap_or(EndReason::PeerGone);
                    let follow = match st.life {
                        Life::Ending(r) => Follow::End(r),
                        Life::Live => self.detached(&mut st, reason),
                        Life::Ended(_) => Follow::Nothing,
                    };
                    (reason, follow, std::mem::take(&mut link.abort_waiters))
                }
                other => {
                    st.link = other;
                    let retired = (st.retired.iter().position(|l| l.link_no == link_no))
                        .map(|i| st.retired.swap_remove(i));
                    match retired {
                        Some(mut link) => {
                            link.conn.peer_gone();
                            let reason = link.conn.end_reason().unwrap_or(EndReason::PeerGone);
                            let guards = std::mem::take(&mut link.abort_waiters);
                            (reason, Follow::Nothing, guards)
                        }
                        None => (EndReason::PeerGone, Follow::Nothing, Vec::new()),
                    }
                }
            }
        };
        guards.into_iter().for_each(Waker::wake);
        self.follow(slot, follow);
        reason
    }
}
