//! Session-aware Server-Sent Events on tokio, for servers of your own.
//!
//! Works over any `AsyncRead + AsyncWrite` (a `TcpStream`, a TLS stream, a Unix socket). The
//! HTTP/1.1 driver is `sse-http1`'s, shared with `sse-async-std`; this crate gives it tokio's
//! clock, timers, tasks and sockets.
//!
//! One object and one call:
//!
//! 1. [`Server::new`] once, with the hub's settings (`Hub::builder()`): it holds every
//!    session, on tokio's clock, with its timer task running. [`Server::with_store`] does
//!    the same with a [`Store`] shared by several nodes (`sse-redis`).
//! 2. [`Server::handshake`] for each request: on [`Outcome::Accept`] answer
//!    [`Reply::Stream`] (or [`run`] it on a connection whose request you parsed yourself);
//!    the other outcomes are responses: 204 to a session the server closed (the tab stops),
//!    a go-away while shutting down, or your own routes.
//! 3. [`Hub::send_to`], [`Hub::broadcast`] and [`Hub::close`] on [`Server::hub`] from
//!    anywhere: one tab by its session id, every tab, or end a tab's session for good.
//!
//! [`Server::serve`] reads HTTP/1.1 requests on every connection of a listener (each head
//! and body within its deadline, sizes bounded, caps server-wide; a bad request gets 4xx,
//! never a panic) and hands each to your handler, until [`Server::shutdown`];
//! [`serve_connection`] does it for one connection.
//!
//! ```no_run
//! use bytes::Bytes;
//! use sse_tokio::{Hub, Outcome, Reply, Server};
//!
//! # async fn run() -> std::io::Result<()> {
//! let server = Server::new(Hub::builder());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
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
//! // On Ctrl-C: stop accepting, end every stream (tabs reconnect elsewhere); `serve`
//! // returns once the connections are closed.
//! let stop = server.clone();
//! tokio::spawn(async move {
//!     let _ = tokio::signal::ctrl_c().await;
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

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

mod runtime;

pub use runtime::{Tokio, Vectored};
pub use sse_http1::{
    Accepted, BodyBudget, DEFAULT_MAX_UNFINISHED_HEADS, HeadSlots, MAX_STRAY_BYTES, Outcome,
    ReaderLimits, ReaderTimeouts, Reply, ServeConfig,
};
pub use sse_proto::prelude::*;

/// The hub, on tokio's clock, with its timer task running, and optionally a [`Store`]
/// shared by several nodes: one [`handshake`](Self::handshake) per request, the same with
/// or without the store. Cloning is cheap and shares everything.
///
/// Create it inside a tokio runtime: it spawns the hub's timer task (resume mode's expiry,
/// the shutdown's deadline, the ends of write windows) and the store's task, which end
/// when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct Server(sse_http1::Server);

impl Server {
    /// A server with the hub of `builder`.
    ///
    /// ```no_run
    /// # async fn demo() {
    /// use std::time::Duration;
    /// use sse_tokio::{Hub, ResumeConfig, Server};
    ///
    /// let server = Server::new(Hub::builder().resume(ResumeConfig::new(Duration::from_secs(60))));
    /// # let _ = server;
    /// # }
    /// ```
    pub fn new(builder: HubBuilder) -> Server {
        Server(sse_http1::Server::new::<Tokio>(builder, None))
    }

    /// A server with the hub of `builder`, prepared for `store` (several nodes on one Redis:
    /// `sse_redis::RedisEngine`), which answers every handshake's lookups and relays what
    /// the hub sends to the other nodes.
    pub fn with_store(builder: HubBuilder, store: impl Store) -> Server {
        Server(sse_http1::Server::new::<Tokio>(
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

    /// Accepts connections from `listener`, serving each on its own task with
    /// [`serve_connection`], a clone of `config` (so its caps are server-wide) and a clone
    /// of `handler`, until [`shutdown`](Self::shutdown).
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
        let listener = runtime::TokioListener(listener);
        sse_http1::serve::<Tokio, _, H, F, _>(listener, config, handler, self.0.stopping()).await
    }
}

/// Serves HTTP/1.1 requests on one connection until it closes; see
/// [`sse_http1::serve_connection`] for what is answered how. Clone one [`ServeConfig`] for
/// every connection of a server, so that they share its caps.
pub async fn serve_connection<S, H, F>(io: S, config: ServeConfig, handler: H) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
    H: FnMut(http::Request<Bytes>) -> F,
    F: Future<Output = Reply>,
{
    sse_http1::serve_connection::<Tokio, S, H, F>(io, config, handler).await
}

/// Writes the response head of `accepted` and streams its session on `io` (any tokio
/// transport: TLS, a Unix socket) until it ends; returns why. See [`Accepted::run`].
pub async fn run<S>(accepted: Accepted, io: &mut S) -> io::Result<EndReason>
where
    S: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    accepted.run::<Tokio, S>(io).await
}
