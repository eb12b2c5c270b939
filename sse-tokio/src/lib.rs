//! Session-aware Server-Sent Events on tokio, for servers of your own.
//!
//! Works over any `AsyncRead + AsyncWrite` (a `TcpStream`, a TLS stream, a Unix socket). The
//! HTTP/1.1 driver is `sse-http1`'s, shared with `sse-async-std`; this crate gives it tokio's
//! clock, timers, tasks and sockets.
//!
//! Three calls make a server:
//!
//! 1. [`hub_builder`]`().build()` once: the [`Hub`] holds every session.
//! 2. [`handshake`]`(&hub, &req)` for each request: on [`Outcome::Accept`] answer
//!    [`Reply::Stream`] (or [`Accepted::run`] it on a connection whose request you parsed
//!    yourself); the other outcomes are responses: 204 to a session the server closed (the
//!    tab stops), a go-away while shutting down, or your own routes.
//! 3. [`Hub::send_to`], [`Hub::broadcast`] and [`Hub::close`] from anywhere: one tab by its
//!    session id, every tab, or end a tab's session for good.
//!
//! [`serve_connection`] reads HTTP/1.1 requests (each head and body within its deadline,
//! sizes bounded; a bad request gets 4xx, never a panic) and hands each to your handler;
//! [`serve`] runs it for every connection of a listener, with a server-wide cap on
//! unfinished heads, and [`serve_with_shutdown`] stops gracefully when a signal comes.
//!
//! ```no_run
//! use bytes::Bytes;
//! use sse_tokio::{Hub, Outcome, Reply};
//!
//! # async fn run() -> std::io::Result<()> {
//! let hub = sse_tokio::hub_builder().build();
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let handler_hub = hub.clone();
//! let handler = move |req: http::Request<Bytes>| {
//!     let hub = handler_hub.clone();
//!     async move {
//!         match sse_tokio::handshake(&hub, &req) {
//!             Outcome::Accept(accepted) => {
//!                 let _ = accepted.session.emit("connect", "");
//!                 Reply::Stream(accepted)
//!             }
//!             Outcome::NoContent(res) | Outcome::GoAway(res) => Reply::Response(res),
//!             Outcome::NotEventStream(_) => Reply::Response(http::Response::new(Bytes::from("hello"))),
//!         }
//!     }
//! };
//! // On Ctrl-C: stop accepting, end every stream (tabs reconnect elsewhere), return once
//! // the connections are closed.
//! let signal = async move {
//!     let _ = tokio::signal::ctrl_c().await;
//!     hub.shutdown();
//! };
//! sse_tokio::serve_with_shutdown(listener, Default::default(), handler, signal).await
//! # }
//! ```
//!
//! # Feature flags
//!
#![doc = document_features::document_features!()]

use std::future::Future;
use std::io;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

mod runtime;

pub use runtime::{Tokio, Vectored};
pub use sse_http1::{
    BodyBudget, DEFAULT_MAX_UNFINISHED_HEADS, HeadSlots, MAX_STRAY_BYTES, ServeConfig,
};
pub use sse_proto::Principal;
pub use sse_proto::http1::{ReaderLimits, ReaderTimeouts};
pub use sse_proto::{
    Answers, Batch, ClosedPolicy, ClosedSet, ConnectionConfig, Continuity, DEFAULT_MAX_ID_LEN,
    Data, EndReason, Ended, Error, Event, Frame, GapReason, Handshake, HeadError, Hub, HubBuilder,
    HubStats, IdGenerator, IdRejection, IdSource, LogBounds, MemoryClosedSet, NotEventStream,
    Offer, RejectedId, ResumeConfig, Session, SessionEvent, SessionId, UuidV4,
};
/// An event name checked at compile time, and the type of checked names.
pub use sse_proto::{EventName, event_name};
/// Signed session ids (feature `signing`): the key ring for [`HubBuilder::signing`], and the
/// logged-in user an id is bound to (put a [`Principal`] in the request's extensions before
/// the handshake).
#[cfg(feature = "signing")]
pub use sse_proto::{Key, KeyRing};

/// Reading an event stream (a Rust client): [`MessageStream`] decodes any stream of byte
/// chunks into [`MessageEvent`]s and keeps the last event id and `retry:` for reconnecting.
#[cfg(feature = "stream")]
pub use sse_proto::{MessageEvent, MessageStream, ReadError};

/// What to do with a request, as decided by [`handshake`].
pub type Outcome = sse_http1::Outcome<Tokio>;
/// An accepted event stream, not yet running: [`Accepted::run`] it on any tokio
/// `AsyncRead + AsyncWrite`, or answer [`Reply::Stream`].
pub type Accepted = sse_http1::Accepted<Tokio>;
/// How a handler of [`serve_connection`] answers a request.
pub type Reply = sse_http1::Reply<Tokio>;

/// A [`HubBuilder`] whose clock is tokio's, so sessions agree with `tokio::time` (and with
/// paused time in tests).
pub fn hub_builder() -> HubBuilder {
    sse_http1::hub_builder::<Tokio>()
}

/// Decides what to do with `req` and, for an event stream, registers the session in `hub`.
/// The first accepted stream starts the hub's timer task (resume mode's expiry, the
/// shutdown deadline, the ends of coalescing windows) with `tokio::spawn`.
pub fn handshake<B>(hub: &Hub, req: &http::Request<B>) -> Outcome {
    sse_http1::handshake::<Tokio, B>(hub, req)
}

/// Reads what `req` claims, consulting no store: step one of the two-step handshake, for a
/// shared store (several nodes on one Redis) that answers [`Offer::lookup`] in place of the
/// hub's own stores. `Err` when it is not an event-stream request. See
/// [`sse_http1::offer`].
pub fn offer<B>(hub: &Hub, req: &http::Request<B>) -> Result<Offer, NotEventStream> {
    sse_http1::offer(hub, req)
}

/// Decides what to do with `req` from its `offer` (from [`offer`]) and a store's `answers`
/// (for example `sse_redis::RedisEngine::answer`), and for an event stream registers the
/// session in `hub`: step two of the two-step handshake, otherwise as [`handshake`]. See
/// [`sse_http1::handshake_answered`].
///
/// ```no_run
/// # async fn serve(hub: sse_tokio::Hub, req: http::Request<bytes::Bytes>) {
/// # async fn store_answers(offer: &sse_tokio::Offer) -> sse_tokio::Answers { Default::default() }
/// use sse_tokio::Outcome;
///
/// let outcome = match sse_tokio::offer(&hub, &req) {
///     Ok(offer) => {
///         // For example `engine.answer(&hub, &offer).await` with sse-redis.
///         let answers = store_answers(&offer).await;
///         sse_tokio::handshake_answered(&hub, &req, offer, answers)
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
    sse_http1::handshake_answered::<Tokio, B>(hub, req, offer, answers)
}

/// Serves HTTP/1.1 requests on one connection until it closes; see
/// [`sse_http1::serve_connection`] for what is answered how. Clone one [`ServeConfig`] for
/// every connection of a server, so that they share its cap on unfinished heads.
pub async fn serve_connection<S, H, F>(io: S, config: ServeConfig, handler: H) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
    H: FnMut(http::Request<Bytes>) -> F,
    F: Future<Output = Reply>,
{
    sse_http1::serve_connection::<Tokio, S, H, F>(io, config, handler).await
}

/// Accepts connections from `listener` forever, serving each on its own task with
/// [`serve_connection`] and a clone of `handler`.
pub async fn serve<H, F>(listener: TcpListener, config: ServeConfig, handler: H) -> io::Result<()>
where
    H: FnMut(http::Request<Bytes>) -> F + Clone + Send + 'static,
    F: Future<Output = Reply> + Send,
{
    sse_http1::serve::<Tokio, _, H, F>(runtime::TokioListener(listener), config, handler).await
}

/// [`serve`] until `signal` completes, then shuts down gracefully: stops accepting, closes
/// idle connections, lets responses and streams finish (call `hub.shutdown()` in `signal`,
/// which ends every stream within its grace, 1 s by default), and returns once every
/// connection is closed or [`ServeConfig::shutdown_timeout`] (5 s) has passed. See
/// [`sse_http1::serve_with_shutdown`].
pub async fn serve_with_shutdown<H, F, G>(
    listener: TcpListener,
    config: ServeConfig,
    handler: H,
    signal: G,
) -> io::Result<()>
where
    H: FnMut(http::Request<Bytes>) -> F + Clone + Send + 'static,
    F: Future<Output = Reply> + Send,
    G: Future<Output = ()>,
{
    let listener = runtime::TokioListener(listener);
    sse_http1::serve_with_shutdown::<Tokio, _, H, F, G>(listener, config, handler, signal).await
}
