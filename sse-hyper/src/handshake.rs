//! The handshake on an `http::Request`.

use http::Response;

use sse_proto::{
    Continuity, Decision, Hub, HubBuilder, IdSource, NotEventStream, RejectedId, Request,
    ResponseHead, Session, SessionId,
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
/// expiry, the shutdown deadline) on the current tokio runtime.
pub fn handshake<B>(hub: &Hub, req: &http::Request<B>) -> Outcome {
    let view = Request::from(req);
    match hub.decide(&view, now()) {
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
