//! The handshake on an `http::Request`.

use http::Response;

use sse_proto::{
    Continuity, Decision, IdSource, NotEventStream, RejectedId, ResponseHead, Session, SessionId,
    TopicName,
};

use crate::body::EventStream;
use crate::guard::Watch;

/// What to do with a request, as decided by [`Server::handshake`](crate::Server::handshake).
#[derive(Debug)]
pub enum Outcome {
    /// Serve `response`; send with `session`.
    Accept(Accepted),
    /// The session was closed by the server: send this 204 response, which stops the browser.
    NoContent(Response<EventStream>),
    /// Not an event-stream request: the request (still the caller's) goes on to routing.
    NotEventStream(NotEventStream),
    /// A malformed event-stream request (a bad `?topic=`): send this 400 response, whose
    /// text says why. The browser does not reconnect.
    BadRequest(Response<EventStream>),
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
    /// The topics the session is in once accepted, sorted (see
    /// [`HubBuilder::topic_rule`](sse_proto::HubBuilder::topic_rule)).
    pub topics: Vec<TopicName>,
    /// Resume mode: the topics whose missed events could not all be replayed (their logs
    /// overflowed), sorted; everything else the tab missed was. Catch the tab up on these.
    pub topic_gaps: Vec<TopicName>,
}

impl Accepted {
    /// The session id.
    pub fn id(&self) -> &SessionId {
        self.session.id()
    }
}

/// The time of tokio's clock, which the hubs of [`Server`](crate::Server) read, so that
/// sessions agree with `tokio::time` (and with paused time in tests).
pub(crate) fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// The outcome of the hub's `decision` on a request of HTTP `version`; an accepted stream is
/// registered with the connection's [`Watch`], when the request carried one.
pub(crate) fn outcome(
    decision: Decision,
    version: http::Version,
    watch: Option<&Watch>,
) -> Outcome {
    match decision {
        Decision::NotEventStream(why) => Outcome::NotEventStream(why),
        Decision::BadRequest(why) => Outcome::BadRequest(ResponseHead::bad_request().response(
            EventStream::fixed(bytes::Bytes::from(format!("{why}\n")).into()),
        )),
        Decision::NoContent { .. } => {
            Outcome::NoContent(ResponseHead::no_content().response(EventStream::empty()))
        }
        Decision::GoAway { head, body } => {
            Outcome::GoAway(head.response(EventStream::fixed(body.into())))
        }
        Decision::Accept(accepted) => {
            if let Some(watch) = watch {
                if version < http::Version::HTTP_2 {
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
                topics: accepted.topics,
                topic_gaps: accepted.topic_gaps,
            })
        }
    }
}
