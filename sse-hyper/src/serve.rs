//! [`Server::serve`]: hyper's HTTP/1.1 and HTTP/2 server, with the protections a server
//! facing the internet needs and hyper leaves to the application, as defaults.

mod connection;

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::request_body::BodyLimits;
use crate::server::Server;

/// An error a response body may fail with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The window HTTP/2 grants each stream for a request body: 64 KiB, the protocol's own.
const H2_STREAM_WINDOW: u32 = 64 * 1024;
/// The window HTTP/2 grants a connection for all its request bodies together.
const H2_CONNECTION_WINDOW: u32 = 256 * 1024;

/// Limits and deadlines of [`Server::serve`], each with a default fit for the internet.
///
/// ```
/// use std::time::Duration;
/// use sse_hyper::{BodyLimits, ServeConfig};
///
/// let config = ServeConfig {
///     head_timeout: Duration::from_secs(5),
///     body: BodyLimits { max_body: 64 * 1024, ..BodyLimits::default() },
///     ..ServeConfig::default()
/// };
/// # let _ = config;
/// ```
#[derive(Clone)]
pub struct ServeConfig {
    /// A request head must arrive within this (default 10 s), measured whole: hyper's
    /// header timer, which runs whenever hyper waits for a head. The first request of a
    /// connection is due this long after the accept, a TLS handshake included.
    pub head_timeout: Duration,
    /// A connection with nothing to do is closed after this (default 10 s): over HTTP/1.1
    /// by the header timer (the shorter of the two limits: hyper has one timer for both, so
    /// the idle wait is the head deadline's length on every adapter); over HTTP/2, where hyper
    /// has no idle timeout, with a GOAWAY once no request has been under way and no event
    /// stream open for this long.
    pub idle_timeout: Duration,
    /// Request bodies: their size, their time (a deadline, a minimum rate, a ceiling), and
    /// the budget all connections share ([`BodyLimits`]). Every body is read under these
    /// before the service sees the request.
    pub body: BodyLimits,
    /// How long a shutdown waits for connections to finish before it drops them (5 s).
    pub shutdown_timeout: Duration,
    /// HTTPS (feature `tls`): the acceptor, HTTP/2 offered through ALPN (see
    /// [`ServeConfig::tls`]). The TLS handshake counts against the first request's head
    /// deadline.
    #[cfg(feature = "tls")]
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

impl std::fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("ServeConfig");
        d.field("head_timeout", &self.head_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("body", &self.body)
            .field("shutdown_timeout", &self.shutdown_timeout);
        #[cfg(feature = "tls")]
        d.field("tls", &self.tls.is_some());
        d.finish()
    }
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            head_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(10),
            body: BodyLimits::default(),
            shutdown_timeout: Duration::from_secs(5),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

#[cfg(feature = "tls")]
impl ServeConfig {
    /// Serves HTTPS with `tls` (a rustls server configuration with its certificate),
    /// offering HTTP/2 first through ALPN, then HTTP/1.1: over HTTP/2 every tab of a browser
    /// shares one connection, where over HTTP/1.1 a browser opens at most six per origin and
    /// each tab's event stream holds one.
    pub fn tls(mut self, mut tls: rustls::ServerConfig) -> ServeConfig {
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        self.tls = Some(tokio_rustls::TlsAcceptor::from(Arc::new(tls)));
        self
    }
}

/// The peer of the connection a request came on, in the request's extensions under
/// [`Server::serve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub std::net::SocketAddr);

impl Server {
    /// Serves `service` on every connection of `listener` (HTTP/1.1, and HTTP/2 by prior
    /// knowledge or, with `ServeConfig::tls` (feature `tls`), through ALPN) until
    /// [`shutdown`](Self::shutdown),
    /// with the protections hyper leaves to the application:
    ///
    /// - a deadline for every request head, the first one counted from the accept (the TLS
    ///   handshake included), and idle connections closed, HTTP/2 ones with a GOAWAY;
    /// - every request body read before `service` sees it, within [`ServeConfig::body`]: a
    ///   size limit (413), a deadline with a ceiling (408), a budget all connections share
    ///   (503 with `Retry-After`);
    /// - `Host` as RFC 9112 §3.2 asks: an HTTP/1.1 request without one, or with two, is
    ///   answered 400;
    /// - the slow-reader guard ([`Watch`](crate::Watch)): every connection is watched, and
    ///   [`handshake`](Self::handshake) registers its streams, so a reader that stops reading
    ///   loses its socket as soon as its session is cut off;
    /// - HTTP/2 flow-control windows of 64 KiB per stream and 256 KiB per connection, so
    ///   what hyper buffers of a client's bodies before they are read is bounded;
    /// - on shutdown: no new connections, every stream ended, idle connections closed, and
    ///   the call returns once they are all closed, or after
    ///   [`ServeConfig::shutdown_timeout`], dropping what is left.
    ///
    /// The service gets each request with its body read ([`Bytes`]) and the connection's
    /// [`PeerAddr`] in its extensions, and returns a response with any body whose data can
    /// be made from [`Bytes`] (an [`EventStream`](crate::EventStream)'s is a
    /// [`Batch`](crate::Batch); `http-body-util`'s `Either` joins it with your other bodies):
    ///
    /// ```no_run
    /// use bytes::Bytes;
    /// use http::{Request, Response};
    /// use http_body_util::{Either, Full};
    /// use sse_hyper::{Batch, EventStream, Hub, Outcome, ServeConfig, Server};
    ///
    /// # async fn run() -> std::io::Result<()> {
    /// let server = Server::new(Hub::builder());
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
    /// let service = {
    ///     let server = server.clone();
    ///     move |req: Request<Bytes>| {
    ///         let server = server.clone();
    ///         async move {
    ///             match server.handshake(&req).await {
    ///                 Outcome::Accept(accepted) => accepted.response.map(Either::Left),
    ///                 Outcome::NoContent(res) | Outcome::GoAway(res) | Outcome::BadRequest(res) => res.map(Either::Left),
    ///                 // Your routes.
    ///                 Outcome::NotEventStream(_) => {
    ///                     Response::new(Either::Right(Full::new(Batch::from(Bytes::from("hi")))))
    ///                 }
    ///             }
    ///         }
    ///     }
    /// };
    /// let stop = server.clone();
    /// tokio::spawn(async move {
    ///     let _ = tokio::signal::ctrl_c().await;
    ///     stop.shutdown(); // every stream ends within a second; `serve` then returns
    /// });
    /// server.serve(listener, ServeConfig::default(), service).await
    /// # }
    /// ```
    pub async fn serve<S, F, B>(
        &self,
        listener: TcpListener,
        config: ServeConfig,
        service: S,
    ) -> io::Result<()>
    where
        S: Fn(Request<Bytes>) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = Response<B>> + Send + 'static,
        B: Body + Send + 'static,
        B::Data: From<Bytes> + Send,
        B::Error: Into<BoxError>,
    {
        let config = Arc::new(config);
        let http = Arc::new(hyper_builders(&config));
        // Dropped on shutdown, and again once its bound has passed: every connection's task
        // watches both.
        let (stopping, _) = watch::channel(());
        let (forced, _) = watch::channel(());
        // Each connection's task holds a sender: once all are dropped, every one is over.
        let (open, mut all_closed) = mpsc::channel::<()>(1);
        let mut stop = std::pin::pin!(self.stopping());
        loop {
            let (tcp, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(conn) => conn,
                    // Out of file descriptors and the like: try again a little later.
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                },
                () = &mut stop => break,
            };
            let _ = tcp.set_nodelay(true);
            let conn = connection::Connection {
                accepted: tokio::time::Instant::now(),
                peer: PeerAddr(peer),
                http: http.clone(),
                config: config.clone(),
                stopping: stopping.subscribe(),
                forced: forced.subscribe(),
                _open: open.clone(),
            };
            conn.spawn(tcp, service.clone());
        }
        drop(listener);
        drop(stopping);
        drop(open);
        let _ = tokio::time::timeout(config.shutdown_timeout, all_closed.recv()).await;
        drop(forced);
        Ok(())
    }
}

/// hyper's server, set up as [`Server::serve`] describes: for any connection, and for one
/// that cannot be HTTP/2.
fn hyper_builders(config: &ServeConfig) -> connection::Builders {
    // hyper starts this timer whenever it waits for a request head: on a new connection and
    // after each response, so it bounds idle keep-alive connections as well as slow heads
    // (whichever limit is shorter wins).
    let head = config.head_timeout.min(config.idle_timeout);
    let mut any = auto::Builder::new(TokioExecutor::new());
    any.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(head);
    // hyper buffers what an HTTP/2 client sends up to the flow-control windows, before any
    // handler reads it (1 MiB per connection by default): bodies in flight on one
    // connection, outside the body budget. Small windows bound that.
    any.http2()
        .timer(TokioTimer::new())
        .initial_stream_window_size(H2_STREAM_WINDOW)
        .initial_connection_window_size(H2_CONNECTION_WINDOW);
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1.timer(TokioTimer::new()).header_read_timeout(head);
    connection::Builders { any, http1 }
}
