//! Accepting a connection: the hub's side of the handshake, from an [`Offer`] and the
//! stores' [`Answers`] to a [`Decision`], and the attachment of the connection to its
//! session (new, resumed with a replay, or with a gap).

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::task::Waker;
use std::time::{Duration, Instant};

use super::groups::Changes;
use super::slot::{Life, Slot, lock};
use super::start::{self, Heads, Start};
use super::{Hub, Outlet, Session};
use crate::connection::{Connection, EndReason};
use crate::cursor::Cursor;
use crate::frame::Frame;
use crate::handshake::{
    self, Answers, BadRequest, Claim, Lookup, NotEventStream, Offer, OfferParts,
};
use crate::history::Target;
use crate::id::{IdSource, RejectedId, SessionId};
use crate::lifecycle::{Continuity, SessionEvent};
use crate::position::{self, Stamp};
use crate::request::{Principal, Request, ResponseHead};
use crate::store::Store;
use crate::topic::TopicName;

/// What the adapter must do with a request.
#[must_use]
#[derive(Debug)]
pub enum Decision {
    /// Not an event-stream request: give it back to the application's routing.
    NotEventStream(NotEventStream),
    /// A malformed event-stream request (a bad `?topic=`): answer
    /// [`ResponseHead::bad_request`] with the reason as the text.
    BadRequest(BadRequest),
    /// The session was closed by the server: answer [`ResponseHead::no_content`] and stop.
    NoContent {
        /// The closed id that came back.
        session: SessionId,
        /// Where it came from.
        source: IdSource,
    },
    /// Serve an event stream: the connection is attached to its session.
    Accept(Accepted),
    /// The hub is shutting down: answer `head` with `body` (`retry: <ms>` and a blank line)
    /// and end the response. The browser keeps its last event id and reconnects after the
    /// delay, to whichever server then answers; a 5xx would stop it for good.
    GoAway {
        /// The response head: an event stream, `Connection: close` on HTTP/1.x.
        head: ResponseHead,
        /// The whole body.
        body: Frame,
    },
}

/// An accepted event stream, attached to its session.
///
/// Its outbox already holds the preamble and, for a resumed session, every event the tab
/// missed: what the application sends from now on goes after them.
#[derive(Debug)]
pub struct Accepted {
    /// The application's handle to the session.
    pub session: Session,
    /// The writer's side of this connection.
    pub outlet: Outlet,
    /// How this connection continued the tab's session.
    pub continuity: Continuity,
    /// Where the session id came from.
    pub source: IdSource,
    /// Client ids that were offered and refused, with the reason, for logs.
    pub rejected: Vec<RejectedId>,
    /// The response head to send.
    pub head: ResponseHead,
    /// The reconnection delay sent in the preamble (jitter included).
    pub retry: Duration,
    /// The topics the session is in once accepted, sorted: those it was in (still granted by
    /// the [topic rule](crate::HubBuilder::topic_rule)) and those granted of what the tab
    /// asked for.
    pub topics: Vec<TopicName>,
    /// Resume mode: the topics whose events the tab missed could not all be told (their
    /// logs overflowed), sorted. Their events are left out of the replay, while everything
    /// else it missed is replayed: catch the tab up on these topics.
    pub topic_gaps: Vec<TopicName>,
}

impl Accepted {
    /// Whether no valid client id was used: the id was generated for this connection.
    pub fn is_new(&self) -> bool {
        self.source == IdSource::Generated
    }
}

/// A request refused before any store is asked.
#[derive(Debug)]
pub(crate) enum Refused {
    NotEventStream(NotEventStream),
    BadRequest(BadRequest),
}

impl From<Refused> for Decision {
    fn from(refused: Refused) -> Decision {
        match refused {
            Refused::NotEventStream(why) => Decision::NotEventStream(why),
            Refused::BadRequest(why) => Decision::BadRequest(why),
        }
    }
}

impl Hub {
    /// Decides what to do with `req`, and for an event stream attaches the connection to its
    /// session: the one call an adapter makes for each request.
    ///
    /// It reads what the request offers (no store consulted; with signed ids an offered id
    /// is verified for the request's [`Principal`](crate::Principal) and put to the
    /// application's [`id_policy`](crate::HubBuilder::id_policy)), then asks `store` what
    /// that needs looked up (was the id closed on another node? what did the tab miss?),
    /// or the hub's own stores without one or when the store cannot be reached, and decides
    /// with the answers, at the time of the hub's [`Clock`](crate::Clock) once they came.
    /// No hub lock is held while the store answers. The request is read at the call (the
    /// future does not borrow it).
    ///
    /// A session that already has a connection keeps its id for the new one; the old
    /// connection is *replaced*: its last block gives its tab a fresh id (so a duplicated tab
    /// comes back as a session of its own, never evicting the other in a loop) and its stream
    /// ends with [`EndReason::Replaced`](crate::EndReason::Replaced). In resume mode the new
    /// connection first gets every event after the offered position, or a
    /// [`Continuity::Gap`] when that cannot be told exactly.
    pub fn handshake<'a>(
        &'a self,
        req: &Request<'_>,
        store: Option<&'a dyn Store>,
    ) -> impl Future<Output = Decision> + Send + use<'a> {
        let offer = self.offer(req);
        async move {
            let offer = match offer {
                Ok(offer) => offer,
                Err(refused) => return refused.into(),
            };
            let answers = match store {
                Some(store) => store.answer(&offer).await,
                None => None,
            };
            let now = self.inner.clock.now();
            let answers = answers.unwrap_or_else(|| self.answer(&offer.lookup(), now));
            self.accept(offer, answers, now)
        }
    }

    /// Decides what to do with `req` at `now`, with the hub's own stores, as
    /// [`handshake`](Self::handshake) does without a store: for a hub whose sessions no
    /// other node shares, without an executor.
    pub fn decide(&self, req: &Request<'_>, now: Instant) -> Decision {
        let offer = match self.offer(req) {
            Ok(offer) => offer,
            Err(refused) => return refused.into(),
        };
        let answers = self.answer(&offer.lookup(), now);
        self.accept(offer, answers, now)
    }

    /// Reads what `req` claims (step 1 of 3): see [`HandshakeConfig::offer`](crate::HandshakeConfig::offer).
    /// Consults no store.
    ///
    /// With signed ids ([`HubBuilder::signing`](crate::HubBuilder)) an offered id is verified
    /// here, for the request's [`Principal`](crate::Principal), and then put to the
    /// application's [`id_policy`](crate::HubBuilder::id_policy): one that does not pass
    /// counts as absent (the next candidate is tried, else a fresh id is issued) and is
    /// reported in [`Offer::rejected`] with the reason.
    pub(crate) fn offer(&self, req: &Request<'_>) -> Result<Offer, Refused> {
        let principal = req.principal_value();
        let mut offer = self
            .inner
            .handshake
            .offer_checked(req, self.inner.resume.is_some(), &mut |id, source| {
                self.inner.check_id(id, principal, source)
            })
            .map_err(Refused::NotEventStream)?;
        offer
            .read_topics(req, self.inner.topics.max)
            .map_err(Refused::BadRequest)?;
        // A cursor naming a shard the log does not have was never the log's.
        let shards = self
            .inner
            .resume
            .as_ref()
            .map_or(1, |r| r.placement.shards());
        offer.fit_shards(shards, self.inner.handshake.max_id_len_value());
        Ok(offer)
    }

    /// Answers a [`Lookup`] from this hub's own stores (step 2 of 3): the closed set, and in
    /// resume mode nothing ahead of time (its log is read when the connection is accepted).
    /// A shared store answers instead, asynchronously, and its answers go to
    /// [`accept`](Self::accept) all the same.
    pub(crate) fn answer(&self, lookup: &Lookup<'_>, now: Instant) -> Answers {
        Answers {
            closed: lookup
                .closed
                .is_some_and(|id| lock(&self.inner.closed).check(id, now)),
            history: None,
        }
    }

    /// Decides with the answers and, for an event stream, attaches the connection to its
    /// session (step 3 of 3; see [`handshake`](Self::handshake)).
    pub(crate) fn accept(&self, offer: Offer, answers: Answers, now: Instant) -> Decision {
        let OfferParts {
            claim,
            source,
            rejected,
            version,
            principal,
            topics: requested,
        } = offer.into_parts();
        #[cfg(feature = "tracing")]
        for refused in &rejected {
            trace!(debug, source = ?refused.source, reason = %refused.reason, "client id refused");
        }
        if answers.closed {
            if let Some(claim) = claim {
                trace!(debug, session = %claim.session, "closed session came back: 204");
                return Decision::NoContent {
                    session: claim.session,
                    source,
                };
            }
        }
        let inner = &self.inner;
        if inner.shutting_down.load(Ordering::Acquire) {
            let retry = claim.as_ref().map_or(inner.handshake.retry_value(), |c| {
                inner.handshake.retry_for(&c.session)
            });
            return Decision::GoAway {
                head: ResponseHead::go_away(version),
                body: handshake::retry_block(retry),
            };
        }
        // The id the session goes on under, and the one it had when it was re-signed.
        let (id, renamed_from) = match &claim {
            Some(Claim {
                session,
                resigned: Some(new),
                ..
            }) => (new.clone(), Some(session.clone())),
            Some(claim) => (claim.session.clone(), None),
            None => (inner.fresh_id(principal.as_deref()), None),
        };
        let retry = inner.handshake.retry_for(&id);
        // Lock order: history, groups, sessions, slot.
        let mut history = inner.resume.as_ref().map(|r| lock(&r.history));
        let mut groups = lock(&inner.groups);
        let mut sessions = inner
            .sessions
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let live = |id: &SessionId| sessions.get(id).filter(|s| s.lock().is_live()).cloned();
        // Whose session this is: the offered id's, or (re-signed once already, by another
        // tab) the new id's.
        let (log_id, existing) = match &renamed_from {
            Some(from) => match live(from) {
                Some(slot) => (from.clone(), Some(slot)),
                None => (id.clone(), live(&id)),
            },
            None => (id.clone(), live(&id)),
        };
        let renaming = log_id != id;
        let mut changes = Changes::default();
        // An older session with this id, closed or shut down and still writing its last
        // bytes, ends now, before the new one is attached: the observer hears of them in
        // order, and the new session starts with an empty log.
        let older = match (&existing, sessions.get(&log_id)) {
            (None, Some(old)) => end_in_place(old, EndReason::Closed, None).map(|(r, w)| {
                changes.leave_all(&mut groups, old);
                (r, w)
            }),
            _ => None,
        };
        if older.is_some() {
            if let Some(history) = &mut history {
                history.forget(Target::Session(&log_id));
            }
        }
        // The tab's cursor, when it is one of this log's.
        let position = history
            .as_deref()
            .and_then(|h| start::claimed_cursor(claim.as_ref(), &**h));
        let user = principal.as_deref().map(Principal::new);
        let existed = existing.is_some();
        let last = || handshake::id_block(&inner.fresh_id(principal.as_deref()));
        let mut renamed = None;
        let slot = match existing {
            Some(old) if renaming => {
                // The session goes on under its re-signed id: a new slot takes its place, its
                // log and its memberships, and the old one ends (its connection, if any, as
                // replaced).
                renamed = end_in_place(&old, EndReason::Renamed, Some(last()));
                sessions.remove(&log_id);
                if let Some(history) = &mut history {
                    history.rename(&log_id, &id);
                }
                let slot = Arc::new(Slot::new(id.clone(), old.is_new, Cursor::new(0, 0)));
                {
                    let mut from = old.lock();
                    let mut to = slot.lock();
                    to.since = from.since.clone();
                    to.topics = std::mem::take(&mut from.topics);
                    to.user = from.user.take();
                    groups.rekey(&log_id, &slot, &to);
                }
                sessions.insert(id.clone(), slot.clone());
                slot
            }
            Some(slot) => slot,
            None => {
                let heads = Heads::held(&history);
                let since = heads.of_new(&id);
                let slot = Arc::new(Slot::new(id.clone(), claim.is_none(), since));
                sessions.insert(id.clone(), slot.clone());
                slot
            }
        };
        let start = {
            let mut st = slot.lock();
            // Relay mode: what the shared store says the session is in replaces what this
            // node had (a join or leave it numbered may not have come here yet).
            if let Some(Ok(fetched)) = &answers.history {
                inner.install(&mut groups, &slot, &mut st, fetched, &mut changes);
            }
            // What the tab is entitled to now: its user's, and the topics the rule still
            // grants (revoked ones are withheld, not replayed).
            let heads = Heads::held(&history);
            inner.refresh(
                &mut groups,
                &slot,
                &mut st,
                user,
                position,
                heads,
                &mut changes,
            );
            // And what it asks for now, from the heads: nothing of it replays, and a tab that
            // starts afresh has the shards in its cursor from the preamble on.
            inner.grant(
                &mut groups,
                &slot,
                &mut st,
                &requested,
                principal.as_deref(),
                heads,
                &mut changes,
            );
            match &mut history {
                None => Start::unlogged(claim.as_ref()),
                Some(history) => start::resume_start(
                    &mut ***history,
                    &id,
                    claim.as_ref(),
                    (&st, existed),
                    answers.history,
                ),
            }
        };
        let token = match &start.from {
            Some(from) => position::token(&id, from),
            None => id.to_string(),
        };
        let mut conn = Connection::with_preamble(
            inner.config,
            handshake::preamble(&token, retry),
            handshake::id_line(&token),
            now,
        );
        let mut seen = start.from.unwrap_or(Cursor::new(0, 0));
        for entry in start.replay {
            // Replayed shards are the session's, counted at each join.
            let _ = seen.raise(entry.shard, entry.seq);
            let line = Stamp::new(seen.epoch(), entry.shard, entry.seq).line_of(&id, &seen);
            conn.push_logged(line, entry.frame);
        }
        let (link_no, replaced, had_link, topics) = {
            let mut st = slot.lock();
            // The tab has everything it is entitled to up to the heads: its cursor names
            // every shard the session reads.
            if start.from.is_some() {
                let heads = Heads::held(&history);
                heads.complete(&mut seen, &id, &st);
            }
            let had_link = st.link.is_some();
            let last = had_link.then(last);
            let (link_no, replaced) = st.attach(conn, seen, last);
            // Relay mode: the topics granted now are joined once the relay numbers the joins.
            let mut topics = st.current_topics();
            topics.extend(changes.joining());
            topics.sort();
            topics.dedup();
            (link_no, replaced, had_link, topics)
        };
        drop(sessions);
        changes.forget_unused(history.as_deref_mut());
        drop(groups);
        drop(history);
        if had_link {
            trace!(debug, session = %id, "older stream replaced; its tab gets a fresh id");
        }
        if let Some(w) = replaced {
            w.wake();
        }
        if let Some((reason, wakers)) = older {
            wakers.into_iter().for_each(Waker::wake);
            inner.notify(SessionEvent::Ended {
                id: log_id.clone(),
                reason,
            });
        }
        if let Some((_, wakers)) = renamed {
            wakers.into_iter().for_each(Waker::wake);
            inner.notify(SessionEvent::Renamed {
                from: log_id,
                to: id.clone(),
            });
        }
        changes.notify(inner);
        inner.notify(SessionEvent::Attached {
            id,
            continuity: start.continuity,
        });
        Decision::Accept(Accepted {
            session: Session::new(slot.clone(), inner.clone()),
            outlet: Outlet::new(slot, inner.clone(), link_no),
            continuity: start.continuity,
            source,
            rejected,
            head: ResponseHead::event_stream(version),
            retry,
            topics,
            topic_gaps: start.gaps,
        })
    }
}

/// Ends a session where it stands, under the registry's lock: one that is ending (closed or
/// shut down) with its own reason, or, given the `last` block for its connection, a live one
/// with `reason` (its connection, if attached, is replaced). Returns the reason and its
/// waiters to wake once the locks are released.
fn end_in_place(
    slot: &Slot,
    reason: EndReason,
    last: Option<Frame>,
) -> Option<(EndReason, Vec<Waker>)> {
    let mut st = slot.lock();
    let reason = match (st.life, last) {
        (Life::Ending(r), _) => r,
        (Life::Live, Some(last)) => {
            if let Some(mut link) = st.link.take() {
                link.conn.replaced(last);
                if let Some(w) = link.writer.take() {
                    w.wake();
                }
                st.retired.push(link);
            }
            reason
        }
        (Life::Live, None) | (Life::Ended(_), _) => return None,
    };
    st.life = Life::Ended(reason);
    st.detached_at = None;
    Some((reason, std::mem::take(&mut st.end_waiters)))
}
