//! One connection of [`Server::serve`](crate::Server::serve): the TLS handshake, hyper on
//! the guarded transport, the first request's deadline, the HTTP/2 idle GOAWAY, and every
//! request checked and its body read before the service sees it.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, Version, header};
use http_body::Body;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulConnection;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::{BoxError, PeerAddr, ServeConfig};
use crate::guard::Watch;
use crate::request_body::read_body;

/// The application's service as [`Server::serve`](crate::Server::serve) takes it: a request
/// with its body read, to its response. Every such closure is one.
pub(super) trait Service: Clone + Send + Sync + 'static {
    /// Its responses' body.
    type Body: Body<Data: From<Bytes> + Send, Error: Into<BoxError>> + Send + 'static;
    /// Its response to one request.
    type Future: Future<Output = Response<Self::Body>> + Send + 'static;

    /// Answers `req`.
    fn respond(&self, req: Request<Bytes>) -> Self::Future;
}

impl<S, F, B> Service for S
where
    S: Fn(Request<Bytes>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: Body + Send + 'static,
    B::Data: From<Bytes> + Send,
    B::Error: Into<BoxError>,
{
    type Body = B;
    type Future = F;

    fn respond(&self, req: Request<Bytes>) -> F {
        self(req)
    }
}

/// What serving one accepted connection needs.
pub(super) struct Connection {
    /// When the socket was accepted: the first request is due a head deadline after it,
    /// the TLS handshake included.
    pub(super) accepted: Instant,
    pub(super) peer: PeerAddr,
    /// Shared by every connection: a task keeps a pointer, not two builders, for as long as
    /// its stream lives.
    pub(super) http: Arc<Builders>,
    pub(super) config: Arc<ServeConfig>,
    /// Changes (its sender is dropped) when the server shuts down.
    pub(super) stopping: watch::Receiver<()>,
    /// Changes when the shutdown's bound has passed: the connection is dropped.
    pub(super) forced: watch::Receiver<()>,
    /// Held until the connection is over: the shutdown waits for every one.
    pub(super) _open: mpsc::Sender<()>,
}

/// hyper's server, set up as [`Server::serve`](crate::Server::serve) describes: for any
/// connection, and for one that cannot be HTTP/2.
pub(super) struct Builders {
    /// Tells HTTP/1.1 from HTTP/2 by the first bytes it reads.
    pub(super) any: auto::Builder<TokioExecutor>,
    /// hyper's HTTP/1.1 server itself. Its reader starts empty (the version check of `any`
    /// hands hyper the bytes it read as a prefix, and hyper then grows its read buffer from
    /// 8 KiB to 16 KiB to read past them: a buffer every HTTP/1.1 stream keeps as long as it
    /// lives), and its connection is smaller than `any`'s, which has room for HTTP/2's.
    pub(super) http1: http1::Builder,
}

/// The client preface of HTTP/2 (RFC 9113 §3.4), which a connection with prior knowledge
/// begins with.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What the service of a connection tells the loop that drives it.
struct Lifecycle {
    /// Set once a first request has begun.
    started: Arc<AtomicBool>,
    activity: Arc<Activity>,
    watch: Watch,
}

/// What a connection is doing, for closing it when idle.
#[derive(Debug)]
struct Activity {
    /// Requests whose response is not yet handed to hyper.
    under_way: AtomicUsize,
    /// When the last request began or ended.
    last: Mutex<Instant>,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            under_way: AtomicUsize::new(0),
            last: Mutex::new(Instant::now()),
        }
    }

    fn touch(&self) {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    /// Since when nothing was under way; `None` while a request is.
    fn idle_since(&self) -> Option<Instant> {
        let last = *self.last.lock().unwrap_or_else(PoisonError::into_inner);
        (self.under_way.load(Ordering::Acquire) == 0).then_some(last)
    }
}

/// One request under way on a connection, from its start until its response is ready.
struct UnderWay(Arc<Activity>);

impl UnderWay {
    fn begin(activity: &Arc<Activity>) -> UnderWay {
        activity.under_way.fetch_add(1, Ordering::AcqRel);
        activity.touch();
        UnderWay(activity.clone())
    }
}

impl Drop for UnderWay {
    fn drop(&mut self) {
        self.0.touch();
        self.0.under_way.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Connection {
    /// Serves the connection on `tcp` on a task of its own.
    ///
    /// Each kind of transport is a task of its own type: a plain connection's task keeps no
    /// room for a TLS session (a task is as large as its largest state).
    pub(super) fn spawn<S: Service>(self, tcp: TcpStream, service: S) {
        #[cfg(feature = "tls")]
        if let Some(acceptor) = self.config.tls.clone() {
            tokio::spawn(self.serve_tls(acceptor, tcp, service));
            return;
        }
        tokio::spawn(self.serve_plain(tcp, service));
    }

    /// Waits for the first bytes of a plain connection (within the head deadline, or until
    /// the server shuts down), then [`serve`](Self::serve)s it: as HTTP/1.1 only when they
    /// cannot begin the HTTP/2 preface, otherwise letting hyper tell. The bytes are peeked,
    /// not read: hyper reads them.
    async fn serve_plain<S: Service>(mut self, tcp: TcpStream, service: S) {
        let deadline = self.accepted + self.config.head_timeout.min(self.config.idle_timeout);
        let mut first = [0u8; H2_PREFACE.len()];
        let peeked = tokio::select! {
            peeked = tcp.peek(&mut first) => peeked,
            () = tokio::time::sleep_until(deadline) => return,
            _ = self.stopping.changed() => return,
            _ = self.forced.changed() => return,
        };
        let http1_only = match peeked {
            Ok(0) | Err(_) => return,
            Ok(n) => !H2_PREFACE.starts_with(first.get(..n).unwrap_or_default()),
        };
        self.serve(tcp, service, http1_only).await;
    }

    /// The TLS handshake within the head deadline (hyper's timers start after it), or until
    /// the server shuts down, then [`serve`](Self::serve) on the TLS stream. An error is a
    /// client going away, refusing the certificate or speaking something else.
    #[cfg(feature = "tls")]
    async fn serve_tls<S: Service>(
        mut self,
        acceptor: tokio_rustls::TlsAcceptor,
        tcp: TcpStream,
        service: S,
    ) {
        let deadline = self.accepted + self.config.head_timeout;
        let tls = tokio::select! {
            tls = tokio::time::timeout_at(deadline, acceptor.accept(tcp)) => tls,
            _ = self.stopping.changed() => return,
            _ = self.forced.changed() => return,
        };
        if let Ok(Ok(tls)) = tls {
            self.serve(tls, service, false).await;
        }
    }

    /// Serves the connection on `io` (HTTP/1.1 only when `http1_only`) until it ends, the
    /// server shuts down, or the shutdown's bound passes.
    async fn serve<T, S>(mut self, io: T, service: S, http1_only: bool)
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: Service,
    {
        let mut forced = self.forced.clone();
        tokio::select! {
            () = self.run(io, service, http1_only) => {}
            _ = forced.changed() => {}
        }
    }

    /// Serves HTTP/1.1 or HTTP/2 on `io` (a TCP socket, or the TLS stream over one).
    async fn run<T, S>(&mut self, io: T, service: S, http1_only: bool)
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: Service,
    {
        // The watch cuts the connection off when its stream is cut off (too slow). Over TLS
        // it wraps the TLS stream, so that what it reads and discards while an HTTP/1.1
        // stream is open is the client's plain bytes, not its TLS records.
        let watch = Watch::new();
        let io = TokioIo::new(watch.guard(io));
        let started = Arc::new(AtomicBool::new(false));
        let activity = Arc::new(Activity::new());
        let service = {
            let (started, activity, watch) = (started.clone(), activity.clone(), watch.clone());
            let (config, peer) = (self.config.clone(), self.peer);
            service_fn(move |mut req: Request<Incoming>| {
                started.store(true, Ordering::Relaxed);
                let under_way = UnderWay::begin(&activity);
                req.extensions_mut().insert(watch.clone());
                req.extensions_mut().insert(peer);
                let (service, config) = (service.clone(), config.clone());
                // Boxed: hyper keeps room for the service's future in every connection, and
                // a stream's connection lives long; the future itself lives for one request.
                Box::pin(async move {
                    let response = answer(req, &config, service).await;
                    drop(under_way);
                    Ok::<_, Infallible>(response)
                })
            })
        };
        let lifecycle = Lifecycle {
            started,
            activity,
            watch,
        };
        // The connection is pinned here and driven by reference: passed by value it would
        // take its room twice in the task.
        if http1_only {
            let conn = std::pin::pin!(self.http.http1.serve_connection(io, service));
            self.drive(conn, &lifecycle).await;
        } else {
            // Boxed: a plain connection's task, which an HTTP/1.1 stream keeps as long as it
            // lives, has no room for the connection that can be HTTP/2.
            let mut conn = Box::pin(self.http.any.serve_connection(io, service).into_owned());
            self.drive(conn.as_mut(), &lifecycle).await;
        }
    }

    /// Runs `conn` until it ends, the server stops, or it is idle for the idle limit; a
    /// first request must have arrived within the head deadline.
    async fn drive<C: GracefulConnection>(&mut self, mut conn: Pin<&mut C>, lifecycle: &Lifecycle) {
        let Lifecycle {
            started,
            activity,
            watch,
        } = lifecycle;
        let limit = self.config.head_timeout.min(self.config.idle_timeout);
        // hyper-util's auto builder reads the first bytes (to tell HTTP/1.1 from HTTP/2)
        // before hyper's header timer runs, with no deadline of its own: a connection that
        // sends nothing, or trickles "PRI * HTTP/2.0", would stay open for ever. So the first
        // request must have arrived within the header deadline, counted from the accept: a
        // TLS handshake that took most of it leaves only the rest.
        let first = self.accepted + limit;
        // An error is a client going away or sending garbage: nothing to do.
        tokio::select! {
            _ = conn.as_mut() => return,
            () = tokio::time::sleep_until(first) => {
                if !started.load(Ordering::Relaxed) {
                    return;
                }
            }
            _ = self.stopping.changed() => {
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
                return;
            }
        }
        // Then until the server stops or the connection is idle for the idle limit (no
        // request under way and no event stream open), looked at once per limit at most.
        // hyper's header timer closes an idle HTTP/1.1 connection first (it is the shorter
        // of the head and idle limits); an HTTP/2 connection has no such timer, and without
        // this one a client could hold any number of them for ever. A GOAWAY lets a request
        // that crossed it be retried.
        let idle = self.config.idle_timeout;
        let mut check = Instant::now() + idle;
        loop {
            tokio::select! {
                _ = conn.as_mut() => return,
                _ = self.stopping.changed() => break,
                () = tokio::time::sleep_until(check) => {
                    let now = Instant::now();
                    // An open stream or a request under way: look again an idle limit
                    // later. (A stream that ends between two looks leaves the connection
                    // idle from its end on, which the next look may count as a whole limit.)
                    match activity.idle_since() {
                        Some(since) if !watch.is_streaming() => {
                            if since + idle <= now {
                                break;
                            }
                            check = since + idle;
                        }
                        _ => check = now + idle,
                    }
                }
            }
        }
        conn.as_mut().graceful_shutdown();
        let _ = conn.await;
    }
}

/// The response to `req`: a refusal when its `Host` is wrong or its body breaks a limit,
/// otherwise the service's, with the body read.
async fn answer<S: Service>(
    req: Request<Incoming>,
    config: &ServeConfig,
    service: S,
) -> Response<Either<S::Body, Full<<S::Body as Body>::Data>>> {
    if !host_is_valid(&req) {
        return refusal(
            StatusCode::BAD_REQUEST,
            "an HTTP/1.1 request needs exactly one Host header",
        );
    }
    match read_body(req, &config.body).await {
        Ok(req) => service.respond(req).await.map(Either::Left),
        Err(e) => e.to_response().map(|b| Either::Right(Full::new(b.into()))),
    }
}

/// RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status code to any
/// HTTP/1.1 request message that lacks a Host header field and to any request message that
/// contains more than one Host header field line". hyper accepts both; HTTP/2 carries the
/// authority in `:authority` instead.
fn host_is_valid<B>(req: &Request<B>) -> bool {
    let hosts = req.headers().get_all(header::HOST).iter().count();
    match req.version() {
        Version::HTTP_11 => hosts == 1,
        _ => hosts <= 1,
    }
}

/// A plain-text refusal.
fn refusal<B>(status: StatusCode, text: &'static str) -> Response<Either<B, Full<B::Data>>>
where
    B: Body,
    B::Data: From<Bytes>,
{
    let body = Full::new(Bytes::from_static(text.as_bytes()).into());
    let mut res = Response::new(Either::Right(body));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}
