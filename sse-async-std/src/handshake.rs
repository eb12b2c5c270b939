//! The handshake on a parsed request, and the accepted stream.

use std::io;
use std::time::Instant;

use bytes::Bytes;
use futures_io::{AsyncRead, AsyncWrite};
use http::{HeaderMap, Response, Version};
use sse_proto::{
    Continuity, Decision, EndReason, Hub, HubBuilder, IdSource, NotEventStream, Outlet, RejectedId,
    Request, ResponseHead, Session, SessionId, http1,
};

/// What to do with a request, as decided by [`handshake`].
#[derive(Debug)]
pub enum Outcome {
    /// Run the stream with [`Accepted::run`]; send with its session.
    Accept(Accepted),
    /// The session was closed by the server: send this 204 response, which stops the browser.
    NoContent(Response<Bytes>),
    /// Not an event-stream request: route it elsewhere.
    NotEventStream(NotEventStream),
    /// The hub is shutting down: send this response (an event stream of one `retry:` that
    /// ends at once, `Connection: close`), so the browser reconnects, to another server.
    GoAway(Response<Bytes>),
}

/// An accepted event stream, not yet running.
#[derive(Debug)]
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
    head: ResponseHead,
    headers: HeaderMap,
    chunked: bool,
    outlet: Outlet,
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

    /// Writes the response head and streams the session on `io` until it ends: closed by
    /// the server (after what was queued), the peer gone (EOF or a write error; the session
    /// leaves the hub at once), too slow, or shut down. Returns why it ended.
    ///
    /// Everything queued is written with one vectored write; keep-alive comments go out on
    /// an `async-io` timer, so this runs under async-std and smol alike. HTTP/1.1 streams are
    /// chunked, so the connection ends cleanly.
    pub async fn run<S>(self, io: &mut S) -> io::Result<EndReason>
    where
        S: AsyncRead + AsyncWrite + Unpin + ?Sized,
    {
        let head = http1::stream_head(&self.head, &self.headers, self.chunked);
        crate::stream::run(io, head, self.outlet, self.chunked).await
    }
}

/// A [`HubBuilder`] whose clock is `std::time::Instant::now`, the clock `async-io` timers
/// (and so async-std and smol) run on.
pub fn hub_builder() -> HubBuilder {
    Hub::builder().clock(now)
}

pub(crate) fn now() -> Instant {
    Instant::now()
}

/// Decides what to do with `req` and, for an event stream, registers the session in `hub`.
/// The first accepted stream starts the hub's timer task (resume mode's expiry, the
/// shutdown deadline).
pub fn handshake<B>(hub: &Hub, req: &http::Request<B>) -> Outcome {
    match hub.decide(&Request::from(req), now()) {
        Decision::NotEventStream(why) => Outcome::NotEventStream(why),
        Decision::NoContent { .. } => Outcome::NoContent(http1::no_content()),
        Decision::GoAway { head, body } => Outcome::GoAway(head.response(body.to_bytes())),
        Decision::Accept(accepted) => {
            if hub.claim_timer_driver() {
                let driver = hub.downgrade().drive_timers(now, |at| async move {
                    async_io::Timer::at(at).await;
                });
                async_std::task::spawn(driver);
            }
            Outcome::Accept(Accepted {
                session: accepted.session,
                continuity: accepted.continuity,
                source: accepted.source,
                rejected: accepted.rejected,
                head: accepted.head,
                headers: HeaderMap::new(),
                chunked: req.version() == Version::HTTP_11,
                outlet: accepted.outlet,
            })
        }
    }
}
