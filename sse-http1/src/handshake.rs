//! The handshake on a parsed request, and the accepted stream.

use std::fmt;
use std::io;

use bytes::Bytes;
use http::{HeaderMap, Response, Version};
use sse_proto::{
    Continuity, Decision, EndReason, IdSource, NotEventStream, Outlet, RejectedId, ResponseHead,
    Session, SessionId, TopicName,
};

use crate::proto as http1;
use crate::runtime::Transport;

/// What to do with a request, as decided by a server's handshake.
#[derive(Debug)]
pub enum Outcome {
    /// Run the stream with [`Accepted::run`] (or answer [`Reply::Stream`](crate::Reply));
    /// send with its session.
    Accept(Accepted),
    /// The session was closed by the server: send this 204 response, which stops the browser.
    NoContent(Response<Bytes>),
    /// Not an event-stream request: route it elsewhere.
    NotEventStream(NotEventStream),
    /// A malformed event-stream request (a bad `?topic=`): send this 400 response, whose
    /// text says why. The browser does not reconnect.
    BadRequest(Response<Bytes>),
    /// The hub is shutting down: send this response (an event stream of one `retry:` that
    /// ends at once, `Connection: close`), so the browser reconnects, to another server. The
    /// driver closes the connection once it is written.
    GoAway(Response<Bytes>),
}

/// An accepted event stream, not yet running.
pub struct Accepted {
    /// The handle to send events with; clone it and keep it as long as you like.
    pub session: Session,
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
    head: ResponseHead,
    headers: HeaderMap,
    chunked: bool,
    outlet: Outlet,
}

impl fmt::Debug for Accepted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accepted")
            .field("session", &self.session)
            .field("continuity", &self.continuity)
            .field("source", &self.source)
            .field("rejected", &self.rejected)
            .field("topics", &self.topics)
            .field("topic_gaps", &self.topic_gaps)
            .field("headers", &self.headers)
            .field("chunked", &self.chunked)
            .finish_non_exhaustive()
    }
}

impl Accepted {
    /// The session id.
    pub fn id(&self) -> &SessionId {
        self.session.id()
    }

    /// Headers of your own (CORS, cookies) to add to the response head.
    pub fn headers_mut(&mut self) -> &mut HeaderMap {
        &mut self.headers
    }

    /// Writes the response head and streams the session on `io` until it ends, with the
    /// runtime `R`'s timers: closed by the server (after what was queued), the peer gone
    /// (EOF, a reset or a write error; the session leaves the hub at once), too slow, or
    /// shut down. Returns why it ended. The runtime crates call it for you (`sse_tokio::run`,
    /// `sse_async_std::run`).
    ///
    /// Everything queued is written with one vectored write; keep-alive comments go out on
    /// the runtime's timer. HTTP/1.1 streams are chunked, so the connection ends cleanly.
    /// The stream keeps reading while it writes, so a peer that goes away is noticed at
    /// once, whether or not it sent stray bytes first (they are discarded, at most
    /// [`MAX_STRAY_BYTES`](crate::MAX_STRAY_BYTES)). Close the transport afterwards.
    pub async fn run<R, S>(self, io: &mut S) -> io::Result<EndReason>
    where
        S: ?Sized,
        R: Transport<S>,
    {
        let (head, outlet, chunked) = self.into_stream();
        let mut io = R::bridge(io);
        crate::stream::run::<R, _>(&mut io, head, outlet, chunked).await
    }

    /// The head and the outlet, for the driver's own connection loop (which has already
    /// bridged the transport).
    pub(crate) fn into_stream(self) -> (Bytes, Outlet, bool) {
        let head = http1::stream_head(&self.head, &self.headers, self.chunked);
        (head, self.outlet, self.chunked)
    }
}

/// The outcome of the hub's `decision` on a request of HTTP `version`.
pub(crate) fn outcome(decision: Decision, version: Version) -> Outcome {
    match decision {
        Decision::NotEventStream(why) => Outcome::NotEventStream(why),
        Decision::NoContent { .. } => Outcome::NoContent(http1::no_content()),
        Decision::BadRequest(why) => Outcome::BadRequest(
            ResponseHead::bad_request().response(Bytes::from(format!("{why}\n"))),
        ),
        Decision::GoAway { head, body } => Outcome::GoAway(head.response(body.to_bytes())),
        Decision::Accept(accepted) => Outcome::Accept(Accepted {
            session: accepted.session,
            continuity: accepted.continuity,
            source: accepted.source,
            rejected: accepted.rejected,
            topics: accepted.topics,
            topic_gaps: accepted.topic_gaps,
            head: accepted.head,
            headers: HeaderMap::new(),
            chunked: http1::stream_is_chunked(version),
            outlet: accepted.outlet,
        }),
    }
}
