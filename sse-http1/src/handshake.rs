//! The handshake on a parsed request, and the accepted stream.

use std::fmt;
use std::io;
use std::marker::PhantomData;

use bytes::Bytes;
use http::{HeaderMap, Response};
use sse_proto::{
    Answers, Continuity, Decision, EndReason, Hub, HubBuilder, IdSource, NotEventStream, Offer,
    Outlet, RejectedId, Request, ResponseHead, Session, SessionId, http1,
};

use crate::runtime::{Runtime, Transport};

/// What to do with a request, as decided by [`handshake`].
pub enum Outcome<R> {
    /// Run the stream with [`Accepted::run`] (or answer [`Reply::Stream`](crate::Reply));
    /// send with its session.
    Accept(Accepted<R>),
    /// The session was closed by the server: send this 204 response, which stops the browser.
    NoContent(Response<Bytes>),
    /// Not an event-stream request: route it elsewhere.
    NotEventStream(NotEventStream),
    /// The hub is shutting down: send this response (an event stream of one `retry:` that
    /// ends at once, `Connection: close`), so the browser reconnects, to another server. The
    /// driver closes the connection once it is written.
    GoAway(Response<Bytes>),
}

impl<R> fmt::Debug for Outcome<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Accept(a) => f.debug_tuple("Accept").field(a).finish(),
            Outcome::NoContent(r) => f.debug_tuple("NoContent").field(r).finish(),
            Outcome::NotEventStream(n) => f.debug_tuple("NotEventStream").field(n).finish(),
            Outcome::GoAway(r) => f.debug_tuple("GoAway").field(r).finish(),
        }
    }
}

/// An accepted event stream, not yet running; `R` is the runtime it will run on.
pub struct Accepted<R> {
    /// The handle to send events with; clone it and keep it as long as you like.
    pub session: Session,
    /// How this connection continued the tab's session: new, resumed (what it missed is
    /// already queued), or with a gap the application should fill.
    pub continuity: Continuity,
    /// Where the session id came from.
    pub source: IdSource,
    /// Client ids that were offered and refused, with the reason, for logs.
    pub rejected: Vec<RejectedId>,
    head: ResponseHead,
    headers: HeaderMap,
    chunked: bool,
    outlet: Outlet,
    runtime: PhantomData<fn() -> R>,
}

impl<R> fmt::Debug for Accepted<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accepted")
            .field("session", &self.session)
            .field("continuity", &self.continuity)
            .field("source", &self.source)
            .field("rejected", &self.rejected)
            .field("headers", &self.headers)
            .field("chunked", &self.chunked)
            .finish_non_exhaustive()
    }
}

impl<R: Runtime> Accepted<R> {
    /// The session id.
    pub fn id(&self) -> &SessionId {
        self.session.id()
    }

    /// Headers of your own (CORS, cookies) to add to the response head.
    pub fn headers_mut(&mut self) -> &mut HeaderMap {
        &mut self.headers
    }

    /// Writes the response head and streams the session on `io` until it ends: closed by
    /// the server (after what was queued), the peer gone (EOF, a reset or a write error; the
    /// session leaves the hub at once), too slow, or shut down. Returns why it ended.
    ///
    /// Everything queued is written with one vectored write; keep-alive comments go out on
    /// the runtime's timer. HTTP/1.1 streams are chunked, so the connection ends cleanly.
    /// The stream keeps reading while it writes, so a peer that goes away is noticed at
    /// once, whether or not it sent stray bytes first (they are discarded, at most
    /// [`MAX_STRAY_BYTES`](crate::MAX_STRAY_BYTES)). Close the transport afterwards.
    pub async fn run<S>(self, io: &mut S) -> io::Result<EndReason>
    where
        S: ?Sized,
        R: Transport<S>,
    {
        let head = http1::stream_head(&self.head, &self.headers, self.chunked);
        let mut io = R::bridge(io);
        crate::stream::run::<R, _>(&mut io, head, self.outlet, self.chunked).await
    }
}

/// A [`HubBuilder`] whose clock is the runtime's ([`Runtime::now`]), so sessions agree with
/// its timers.
pub fn hub_builder<R: Runtime>() -> HubBuilder {
    Hub::builder().clock(R::now)
}

/// Decides what to do with `req` and, for an event stream, registers the session in `hub`.
/// The first accepted stream starts the hub's timer task on `R` (resume mode's expiry, the
/// shutdown deadline).
///
/// The hub answers the handshake's lookups (is the id closed? what did it miss?) from its
/// own stores. When a shared store answers them instead (several nodes on one Redis), use
/// [`offer`] and [`handshake_answered`].
pub fn handshake<R: Runtime, B>(hub: &Hub, req: &http::Request<B>) -> Outcome<R> {
    match offer(hub, req) {
        Ok(offer) => {
            let answers = hub.answer(&offer.lookup(), R::now());
            handshake_answered(hub, req, offer, answers)
        }
        Err(why) => Outcome::NotEventStream(why),
    }
}

/// Reads what `req` claims (the session it offers, and in resume mode its position),
/// consulting no store: step one of the two-step handshake. `Err` when it is not an
/// event-stream request (route it elsewhere).
///
/// Have a store answer [`Offer::lookup`] (for several nodes on one Redis:
/// `sse_redis::RedisEngine::answer`), then decide with [`handshake_answered`].
pub fn offer<B>(hub: &Hub, req: &http::Request<B>) -> Result<Offer, NotEventStream> {
    hub.offer(&Request::from(req))
}

/// Decides what to do with `req` from its `offer` (made by [`offer`] on this `hub` for this
/// request) and a store's `answers` to the offer's lookup, and for an event stream
/// registers the session in `hub`: step two of the two-step handshake. The outcome is that
/// of [`handshake`], with the store's answers in place of the hub's own: a closed mark the
/// store knows gets 204, a history it fetched is replayed.
pub fn handshake_answered<R: Runtime, B>(
    hub: &Hub,
    req: &http::Request<B>,
    offer: Offer,
    answers: Answers,
) -> Outcome<R> {
    match hub.accept(offer, answers, R::now()) {
        Decision::NotEventStream(why) => Outcome::NotEventStream(why),
        Decision::NoContent { .. } => Outcome::NoContent(http1::no_content()),
        Decision::GoAway { head, body } => Outcome::GoAway(head.response(body.to_bytes())),
        Decision::Accept(accepted) => {
            if hub.claim_timer_driver() {
                R::spawn(hub.downgrade().drive_timers(R::now, R::sleep_until));
            }
            Outcome::Accept(Accepted {
                session: accepted.session,
                continuity: accepted.continuity,
                source: accepted.source,
                rejected: accepted.rejected,
                head: accepted.head,
                headers: HeaderMap::new(),
                chunked: http1::stream_is_chunked(req.version()),
                outlet: accepted.outlet,
                runtime: PhantomData,
            })
        }
    }
}

impl<R: Runtime> Accepted<R> {
    /// The head and the outlet, for the driver's own connection loop (which has already
    /// bridged the transport).
    pub(crate) fn into_stream(self) -> (Bytes, Outlet, bool) {
        let head = http1::stream_head(&self.head, &self.headers, self.chunked);
        (head, self.outlet, self.chunked)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use std::time::Instant;

    use super::*;

    /// A runtime for the handshake alone: the system clock, and tasks never run.
    struct Still;

    impl Runtime for Still {
        type Sleep = std::future::Ready<()>;
        fn now() -> Instant {
            Instant::now()
        }
        fn sleep_until(_: Instant) -> Self::Sleep {
            std::future::ready(())
        }
        fn spawn<F>(_: F)
        where
            F: Future<Output = ()> + Send + 'static,
        {
        }
    }

    fn request(last_event_id: Option<&str>) -> http::Request<()> {
        let mut req = http::Request::get("/events").header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        req.body(()).unwrap()
    }

    #[test]
    fn a_store_answers_in_place_of_the_hub() {
        let hub = hub_builder::<Still>().build();
        let req = request(Some("tab-1"));
        // The hub's own stores know nothing of tab-1: it is welcomed back.
        let Outcome::<Still>::Accept(accepted) = handshake(&hub, &req) else {
            panic!("the hub's answers accept it");
        };
        assert_eq!(accepted.id().as_str(), "tab-1");
        accepted.session.disconnect();

        // A store says it was closed (on another node): 204, as for a mark of the hub's own.
        let claimed = offer(&hub, &req).unwrap();
        assert_eq!(
            claimed.lookup().closed.map(SessionId::as_str),
            Some("tab-1")
        );
        let closed = Answers {
            closed: true,
            history: None,
        };
        match handshake_answered::<Still, _>(&hub, &req, claimed, closed) {
            Outcome::NoContent(res) => assert_eq!(res.status(), http::StatusCode::NO_CONTENT),
            other => panic!("{other:?}"),
        }

        // The store's empty answers accept a fresh tab, as `handshake` would.
        let fresh = request(None);
        let claimed = offer(&hub, &fresh).unwrap();
        match handshake_answered::<Still, _>(&hub, &fresh, claimed, Answers::default()) {
            Outcome::Accept(accepted) => assert_eq!(accepted.continuity, Continuity::New),
            other => panic!("{other:?}"),
        }

        // Not an event-stream request: the offer refuses it, as the handshake does.
        let post = http::Request::post("/events").body(()).unwrap();
        assert_eq!(offer(&hub, &post).err(), Some(NotEventStream::Method));
        assert!(matches!(
            handshake::<Still, _>(&hub, &post),
            Outcome::NotEventStream(NotEventStream::Method)
        ));
    }
}
