//! Session-aware Server-Sent Events on smol (or async-std), for servers of your own.
//!
//! async-std was discontinued in 2025 and its maintainers point to smol; this crate is built
//! on what the two share, `futures-io` transports and the `async-io` reactor, so it serves
//! under smol as it does under async-std. (The one async-std part left is where the
//! server's tasks run, async-std's global executor, and [`Server::serve`], which takes an
//! async-std listener.) The HTTP/1.1 driver is
//! `sse-http1`'s, shared with `sse-tokio`.
//!
//! One object and one call:
//!
//! 1. [`Server::new`] once, with the hub's settings (`Hub::builder()`): it holds every
//!    session, on `async-io`'s clock, with its timer task running. [`Server::with_store`]
//!    does the same with a [`Store`] shared by several nodes (`sse-redis` with its `smol`
//!    feature).
//! 2. [`Server::handshake`] for each request: on [`Outcome::Accept`] answer
//!    [`Reply::Stream`] (or [`run`] it on a connection whose request you parsed yourself);
//!    the other outcomes are responses: 204 to a session the server closed (the tab stops),
//!    a go-away while shutting down, or your own routes.
//! 3. [`Hub::send_to`], [`Hub::broadcast`] and [`Hub::close`] on [`Server::hub`] from
//!    anywhere: one tab by its session id, every tab, or end a tab's session for good.
//!
//! [`serve_connection`] reads HTTP/1.1 requests on any `AsyncRead + AsyncWrite` (each head
//! and body within its deadline, sizes bounded; a bad request gets 4xx, never a panic) and
//! hands each to your handler. On smol, spawn it for each accepted stream with clones of one
//! [`ServeConfig`] (they share its caps):
//!
//! ```no_run
//! use bytes::Bytes;
//! use sse_async_std::{Event, Hub, Outcome, Reply, ServeConfig, Server};
//!
//! fn main() -> std::io::Result<()> {
//!     smol::block_on(async {
//!         let server = Server::new(Hub::builder());
//!         let listener = smol::net::TcpListener::bind("127.0.0.1:8080").await?;
//!         let config = ServeConfig::default();
//!         let ticker = server.clone();
//!         smol::spawn(async move {
//!             loop {
//!                 smol::Timer::after(std::time::Duration::from_secs(1)).await;
//!                 ticker.hub().broadcast(&Event::new().data("tick"));
//!             }
//!         })
//!         .detach();
//!         loop {
//!             let (stream, _) = listener.accept().await?;
//!             let server = server.clone();
//!             let handler = move |req: http::Request<Bytes>| {
//!                 let server = server.clone();
//!                 async move {
//!                     match server.handshake(&req).await {
//!                         Outcome::Accept(accepted) => Reply::Stream(accepted),
//!                         Outcome::NoContent(res) | Outcome::GoAway(res) | Outcome::BadRequest(res) => Reply::Response(res),
//!                         Outcome::NotEventStream(_) => {
//!                             Reply::Response(http::Response::new(Bytes::from("hello")))
//!                         }
//!                     }
//!                 }
//!             };
//!             smol::spawn(sse_async_std::serve_connection(stream, config.clone(), handler)).detach();
//!         }
//!     })
//! }
//! ```
//!
//! On async-std, [`Server::serve`] does the accepting and spawning, until
//! [`Server::shutdown`]:
//!
//! ```no_run
//! use bytes::Bytes;
//! use sse_async_std::{Hub, Outcome, Reply, Server};
//!
//! # async fn run(ctrl_c: impl std::future::Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
//! let server = Server::new(Hub::builder());
//! let listener = async_std::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let handler = {
//!     let server = server.clone();
//!     move |req: http::Request<Bytes>| {
//!         let server = server.clone();
//!         async move {
//!             match server.handshake(&req).await {
//!                 Outcome::Accept(accepted) => {
//!                     let _ = accepted.session.emit("connect", "");
//!                     Reply::Stream(accepted)
//!                 }
//!                 Outcome::NoContent(res) | Outcome::GoAway(res) | Outcome::BadRequest(res) => Reply::Response(res),
//!                 Outcome::NotEventStream(_) => Reply::Response(http::Response::new(Bytes::from("hello"))),
//!             }
//!         }
//!     }
//! };
//! // When `ctrl_c` completes (async-signal, say): stop accepting, end every stream (tabs
//! // reconnect elsewhere); `serve` returns once the connections are closed.
//! let stop = server.clone();
//! async_std::task::spawn(async move {
//!     ctrl_c.await;
//!     stop.shutdown();
//! });
//! server.serve(listener, Default::default(), handler).await
//! # }
//! ```
//!
//! # Feature flags
//!
#![doc = document_features::document_features!()]
#![deny(missing_docs)]

use std::future::Future;
use std::io;
use std::sync::Arc;

use async_std::net::TcpListener;
use bytes::Bytes;
use futures_io::{AsyncRead, AsyncWrite};

mod runtime;

pub use runtime::{AsyncStd, Sleep};
pub use sse_http1::{
    Accepted, BodyBudget, DEFAULT_MAX_UNFINISHED_HEADS, HeadSlots, MAX_STRAY_BYTES, Outcome,
    ReaderLimits, ReaderTimeouts, Reply, ServeConfig,
};
pub use sse_proto::prelude::*;

/// The hub, on `async-io`'s clock (the one async-std and smol timers run on), with its timer
/// task running, and optionally a [`Store`] shared by several nodes: one
/// [`handshake`](Self::handshake) per request, the same with or without the store. Cloning
/// is cheap and shares everything.
///
/// Its timer task and the store's task run on async-std's global executor (they need no
/// particular reactor: `async-io` timers), and end when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct Server(sse_http1::Server);

impl Server {
    /// A server with the hub of `builder`.
    pub fn new(builder: HubBuilder) -> Server {
        Server(sse_http1::Server::new::<AsyncStd>(builder, None))
    }

    /// A server with the hub of `builder`, prepared for `store` (several nodes on one Redis:
    /// `sse_redis::RedisEngine`, feature `smol`), which answers every handshake's lookups
    /// and relays what the hub sends to the other nodes.
    pub fn with_store(builder: HubBuilder, store: impl Store) -> Server {
        Server(sse_http1::Server::new::<AsyncStd>(
            builder,
            Some(Arc::new(store)),
        ))
    }

    /// The hub: reach sessions from anywhere.
    pub fn hub(&self) -> &Hub {
        self.0.hub()
    }

    /// Decides what to do with `req` and, for an event stream, attaches it to its session
    /// (see [`Hub::handshake`]); with a store, the store answers the lookups.
    pub fn handshake<B>(
        &self,
        req: &http::Request<B>,
    ) -> impl Future<Output = Outcome> + Send + use<'_, B> {
        self.0.handshake(req)
    }

    /// Shuts down gracefully: every stream ends after what is queued (tabs reconnect
    /// elsewhere), new event streams get a go-away answer, and [`serve`](Self::serve)
    /// stops accepting and returns once its connections are closed (or after
    /// [`ServeConfig::shutdown_timeout`]). Returns how many streams were told.
    pub fn shutdown(&self) -> usize {
        self.0.shutdown()
    }

    /// Completes once every stream has ended: after [`shutdown`](Self::shutdown), that no
    /// tab is still being served (for connections served with [`serve_connection`] or
    /// [`run`]; [`serve`](Self::serve) returns only then).
    pub async fn drained(&self) {
        self.0.drained().await;
    }

    /// Accepts connections from an async-std `listener`, serving each on its own async-std
    /// task with [`serve_connection`], a clone of `config` (so its caps are server-wide) and
    /// a clone of `handler`, until [`shutdown`](Self::shutdown).
    pub async fn serve<H, F>(
        &self,
        listener: TcpListener,
        config: ServeConfig,
        handler: H,
    ) -> io::Result<()>
    where
        H: FnMut(http::Request<Bytes>) -> F + Clone + Send + 'static,
        F: Future<Output = Reply> + Send,
    {
        let listener = runtime::AsyncStdListener(listener);
        sse_http1::serve::<AsyncStd, _, H, F, _>(listener, config, handler, self.0.stopping()).await
    }
}

/// Serves HTTP/1.1 requests on one connection until it closes; see
/// [`sse_http1::serve_connection`] for what is answered how. Needs no particular executor:
/// spawn it with `async_std::task::spawn`, `smol::spawn` or a `smol::Executor` for each
/// accepted stream, with clones of one [`ServeConfig`] so that they share its caps. An
/// async-std `TcpStream` sends its FIN only when dropped (its `poll_close` just flushes),
/// so a refused client sees the end a second late, after the driver's lingering close;
/// [`Server::serve`] takes care of that, smol's streams need nothing.
pub async fn serve_connection<S, H, F>(io: S, config: ServeConfig, handler: H) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
    H: FnMut(http::Request<Bytes>) -> F,
    F: Future<Output = Reply>,
{
    sse_http1::serve_connection::<AsyncStd, S, H, F>(io, config, handler).await
}

/// Writes the response head of `accepted` and streams its session on `io` (any
/// `futures-io` transport) until it ends; returns why. See [`Accepted::run`].
pub async fn run<S>(accepted: Accepted, io: &mut S) -> io::Result<EndReason>
where
    S: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    accepted.run::<AsyncStd, S>(io).await
}
