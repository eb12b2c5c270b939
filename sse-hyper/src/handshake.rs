//! The handshake on an `http::Request`.

use http::Response;

use sse_proto::{
    Answers, Continuity, Decision, Hub, HubBuilder, IdSource, NotEventStream, Offer, RejectedId,
    Request, ResponseHead, Session, SessionId,
};

use crate::body::EventStream;
use crate::guard::Watch;

/// What to do with a request, as decided by [`handshake`].
#[derive(Debug)]
pub enum Outcome {
    /// Serve `response`; send with `session`.
    Accept(Accepted),
    /// The session was closed by the server: send this 204 response, which stops the browser.
    NoContent(Response<EventStream>),
    /// Not an event-stream request: the request (still the caller's) goes on to routing.
    NotEventStream(NotEventStream),
    /// The hub is shutting down: send this response (an event stream of one `retry:` that
    /// ends at once), so the browser reconnects, to another server.
    GoAway(Response<EventStream>),
}

/// An accepted event stream.
#[derive(Debug)]
pub struct Accepted {
    /// The handle to send events with; clone it and keep it as long as you like.
    pub session: Session,
    /// The response to return. Add your own headers (CORS, cookies) before returning it.
    pub response: Response<EventStream>,
    /// How this connection continued the tab's session: new, resumed (what it missed is
    /// already queued), or with a gap the application should fill.
    pub continuity: Continuity,
    /// Where the session id came from.
    pub source: IdSource,
    /// Client ids that were offered and refused, with the reason, for logs.
    pub rejected: Vec<RejectedId>,
}

impl Accepted {
    /// The session id.
    pub fn id(&self) -> &SessionId {
        self.session.id()
    }
}

/// A [`HubBuilder`] whose clock is tokio's, so sessions agree with `tokio::time` (and with
/// paused time in tests).
pub fn hub_builder() -> HubBuilder {
    Hub::builder().clock(now)
}

pub(crate) fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// Decides what to do with `req` and, for an event stream, registers the session in `hub`.
///
/// Works for any body type: the request is only read. On [`Outcome::Accept`] the response
/// streams everything sent to the session until it is closed, the client leaves, or the
/// hub shuts down. The first accepted stream starts the hub's timer task (resume mode's
/// expiry, the shutdown deadline, the ends of coalescing windows) on the current tokio
/// runtime.
///
/// The hub answers the handshake's lookups (is the id closed? what did it miss?) from its
/// own stores. When a shared store answers them instead (several nodes on one Redis), use
/// [`offer`] and [`handshake_answered`].
pub fn handshake<B>(hub: &Hub, req: &http::Request<B>) -> Outcome {
    match offer(hub, req) {
        Ok(offer) => {
            let answers = hub.answer(&offer.lookup(), now());
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
///
/// ```no_run
/// # async fn serve(hub: sse_hyper::Hub, req: http::Request<()>) {
/// # async fn store_answers(offer: &sse_hyper::Offer) -> sse_hyper::Answers { Default::default() }
/// use sse_hyper::Outcome;
///
/// let outcome = match sse_hyper::offer(&hub, &req) {
///     Ok(offer) => {
///         // For example `engine.answer(&hub, &offer).await` with sse-redis.
///         let answers = store_answers(&offer).await;
///         sse_hyper::handshake_answered(&hub, &req, offer, answers)
///     }
///     Err(why) => Outcome::NotEventStream(why),
/// };
/// # }
/// ```
pub fn handshake_answered<B>(
    hub: &Hub,
    req: &http::Request<B>,
    offer: Offer,
    answers: Answers,
) -> Outcome {
    match hub.accept(offer, answers, now()) {
        Decision::NotEventStream(why) => Outcome::NotEventStream(why),
        Decision::NoContent { .. } => {
            Outcome::NoContent(ResponseHead::no_content().response(EventStream::empty()))
        }
        Decision::GoAway { head, body } => {
            Outcome::GoAway(head.response(EventStream::fixed(body.into())))
        }
        Decision::Accept(accepted) => {
            if hub.claim_timer_driver() {
                let driver = hub.downgrade().drive_timers(now, |at| {
                    tokio::time::sleep_until(tokio::time::Instant::from_std(at))
                });
                tokio::spawn(driver);
            }
            if let Some(watch) = req.extensions().get::<Watch>() {
                if req.version() < http::Version::HTTP_2 {
                    watch.register_http1(accepted.outlet.cutoff());
                } else {
                    watch.register(accepted.outlet.cutoff());
                }
            }
            Outcome::Accept(Accepted {
                session: accepted.session,
                response: accepted.head.response(EventStream::new(accepted.outlet)),
                continuity: accepted.continuity,
                source: accepted.source,
                rejected: accepted.rejected,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    fn request(last_event_id: Option<&str>) -> http::Request<()> {
        let mut req = http::Request::get("/events").header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        req.body(()).unwrap()
    }

    #[tokio::test]
    async fn a_store_answers_in_place_of_the_hub() {
        let hub = hub_builder().build();
        let req = request(Some("tab-1"));
        // The hub's own stores know nothing of tab-1: it is welcomed back.
        let Outcome::Accept(accepted) = handshake(&hub, &req) else {
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
        match handshake_answered(&hub, &req, claimed, closed) {
            Outcome::NoContent(res) => assert_eq!(res.status(), http::StatusCode::NO_CONTENT),
            other => panic!("{other:?}"),
        }

        // The store's empty answers accept a fresh tab, as `handshake` would.
        let fresh = request(None);
        let claimed = offer(&hub, &fresh).unwrap();
        match handshake_answered(&hub, &fresh, claimed, Answers::default()) {
            Outcome::Accept(accepted) => {
                assert_eq!(accepted.continuity, Continuity::New);
                assert_eq!(accepted.response.status(), http::StatusCode::OK);
            }
            other => panic!("{other:?}"),
        }

        // Not an event-stream request: the offer refuses it, as the handshake does.
        let post = http::Request::post("/events").body(()).unwrap();
        assert_eq!(offer(&hub, &post).err(), Some(NotEventStream::Method));
        assert!(matches!(
            handshake(&hub, &post),
            Outcome::NotEventStream(NotEventStream::Method)
        ));
    }
}
