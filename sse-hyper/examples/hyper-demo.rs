//! The sse-rs demo server on hyper: the demo contract of DESIGN.md, served the way a server
//! facing the internet should be (copy this set-up, not just the handshake):
//!
//! - hyper's header read timeout (with a timer: without one hyper has no deadline at all);
//!   its timer runs from the moment hyper waits for a head, so it also closes idle
//!   keep-alive connections;
//! - request bodies with a size limit (a `Content-Length` over it answered 413 at once,
//!   without waiting for the body), a time limit (a deadline plus a minimum rate, up to a
//!   ceiling) and a budget for the bodies of every connection together
//!   ([`sse_hyper::read_body`]);
//! - `Host` checked as RFC 9112 §3.2 asks (hyper leaves it to the application);
//! - the slow-reader guard ([`sse_hyper::Watch`]);
//! - idle connections closed: over HTTP/1.1 by hyper's header timer, over HTTP/2 (where
//!   hyper has no idle timeout) by this demo, with a GOAWAY once a connection has had no
//!   request under way and no open event stream for the idle limit;
//! - graceful shutdown on SIGINT or SIGTERM: stop accepting, `hub.shutdown()` (every stream
//!   ends within a second, new ones get a go-away answer), let connections finish, exit.
//!
//! With `--tls` it serves HTTPS and offers HTTP/2 through ALPN (`demo/tls.rs`), so that
//! every tab of a browser shares one connection: over HTTP/1.1 a browser opens at most six
//! per origin, and each tab's event stream holds one. The TLS handshake counts against the
//! first request's head deadline; the rest above holds over TLS as it does over plain TCP.
//!
//! ```text
//! cargo run --release -p sse-hyper --example hyper-demo -- --addr 127.0.0.1:8080
//! cargo run --release -p sse-hyper --example hyper-demo -- --addr 127.0.0.1:8443 --tls
//! ```
//!
//! The routes other than `GET /events` live in `demo/contract.rs`, shared by every adapter's
//! demo, the limits in `demo/limits.rs` and the TLS set-up in `demo/tls.rs`; this file is
//! the hyper server loop and the handshake.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, Version, header};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use sse_hyper::{Batch, EventStream, Outcome, Server};
use sse_redis::RedisEngine;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

#[path = "../demo/contract.rs"]
mod contract;
#[path = "../demo/limits.rs"]
mod limits;
#[path = "../demo/signal.rs"]
mod signal;
#[path = "../demo/tls.rs"]
mod tls;

use contract::{Options, Reply, Route, Stats};
use limits::Limits;

type Body = Either<EventStream, Full<Batch>>;

struct App {
    server: Server,
    /// `--redis`: the engine that shares the sessions of every node.
    engine: Option<RedisEngine>,
    stats: Stats,
    limits: Limits,
    /// Request bodies: size, time, and the budget every connection shares.
    body_limits: sse_hyper::BodyLimits,
}

#[tokio::main]
pub(crate) async fn main() {
    let opts = Options::from_args();
    let limits = Limits::from_env();
    // `--tls`: made (or read) before anything else, so a bad certificate ends the demo at once.
    let tls = match opts.tls.as_ref().map(tls::acceptor) {
        None => None,
        Some(Ok(acceptor)) => Some(acceptor),
        Some(Err(e)) => {
            eprintln!("demo: {e}");
            std::process::exit(1);
        }
    };
    let engine = match opts.redis.clone() {
        Some(config) => Some(contract::connect(config, tokio::time::sleep).await),
        None => None,
    };
    let settings = contract::settings(&opts);
    let server = match engine.clone() {
        Some(engine) => Server::with_store(settings, engine),
        None => Server::new(settings),
    };
    let hub = server.hub().clone();
    let app = Arc::new(App {
        server: server.clone(),
        engine,
        stats: Stats::default(),
        limits,
        body_limits: sse_hyper::BodyLimits {
            max_body: contract::MAX_BODY,
            body: limits.body,
            min_body_rate: limits::MIN_BODY_RATE,
            body_ceiling: limits.body_ceiling,
            budget: sse_hyper::BodyBudget::new(limits.body_budget),
        },
    });
    let listener = match TcpListener::bind(opts.addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("demo: cannot listen on {}: {e}", opts.addr);
            std::process::exit(1);
        }
    };
    let local = listener.local_addr().unwrap_or(opts.addr);
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("listening on {scheme}://{local}");

    if !opts.tick.is_zero() {
        let hub = hub.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(opts.tick);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                every.tick().await;
                contract::tick(&hub);
            }
        });
    }

    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http1()
        .timer(TokioTimer::new())
        // hyper starts this timer whenever it waits for a request head: on a new connection
        // and after each response, so it bounds idle keep-alive connections as well as
        // slow heads (whichever limit is shorter wins).
        .header_read_timeout(limits.head.min(limits.idle));
    // hyper buffers what an HTTP/2 client sends up to the flow-control windows, before any
    // handler reads it (1 MiB per connection by default): the bodies a client may have in
    // flight on one connection, outside the body budget. Windows of 64 KiB per stream and
    // 256 KiB per connection bound that, and are ample for this server's small POSTs.
    http.http2()
        .timer(TokioTimer::new())
        .initial_stream_window_size(64 * 1024)
        .initial_connection_window_size(256 * 1024);
    // Tells every connection (those still in their TLS handshake too) that the demo is
    // shutting down: dropped then.
    let (stopping, _) = watch::channel(());
    // Each connection's task holds a sender: once all are dropped, every connection is over.
    let (open, mut all_closed) = mpsc::channel::<()>(1);
    let mut stop = std::pin::pin!(signal::shutdown_signal());
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    eprintln!("demo: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let _ = stream.set_nodelay(true);
        let mut conn = Connection {
            accepted: Instant::now(),
            http: http.clone(),
            app: app.clone(),
            stopping: stopping.subscribe(),
            _open: open.clone(),
        };
        match &tls {
            None => {
                tokio::spawn(conn.serve(stream));
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // The handshake within the head deadline (hyper's timers start after
                    // it), or until the demo shuts down.
                    let handshake = tls::handshake(&acceptor, stream, limits.head);
                    let stream = tokio::select! {
                        stream = handshake => stream,
                        _ = conn.stopping.changed() => None,
                    };
                    if let Some(stream) = stream {
                        conn.serve(stream).await;
                    }
                });
            }
        }
    }
    // Stop accepting, end every stream (without marking ids: tabs reconnect to the next
    // server; new event-stream requests get a go-away answer), and let every connection
    // finish: idle ones close at once, streams within the hub's grace (1 s).
    drop(listener);
    drop(stopping);
    drop(open);
    let n = server.shutdown();
    eprintln!("demo: shutting down, ending {n} streams");
    if tokio::time::timeout(limits.shutdown, all_closed.recv())
        .await
        .is_err()
    {
        eprintln!("demo: connections still open after {:?}", limits.shutdown);
    }
}

/// What serving one accepted connection needs.
struct Connection {
    /// When the socket was accepted: the first request is due a head deadline after it,
    /// the TLS handshake included.
    accepted: Instant,
    http: auto::Builder<TokioExecutor>,
    app: Arc<App>,
    /// Changes (its sender is dropped) when the demo shuts down.
    stopping: watch::Receiver<()>,
    /// Held until the connection is over: the shutdown waits for every one.
    _open: mpsc::Sender<()>,
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
    /// Serves HTTP/1.1 or HTTP/2 on `io` (a TCP socket, or the TLS stream over one) until
    /// the connection ends.
    async fn serve<T>(self, io: T)
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Connection {
            accepted,
            http,
            app,
            mut stopping,
            _open,
        } = self;
        // The watch cuts the connection off when its stream is cut off (too slow). Over
        // TLS it wraps the TLS stream, so that what it reads and discards while an
        // HTTP/1.1 stream is open is the client's plain bytes, not its TLS records.
        let watch = sse_hyper::Watch::new();
        let io = TokioIo::new(watch.guard(io));
        let started = Arc::new(AtomicBool::new(false));
        let activity = Arc::new(Activity::new());
        let limits = app.limits;
        let service = {
            let (started, activity, watch) = (started.clone(), activity.clone(), watch.clone());
            service_fn(move |mut req: Request<Incoming>| {
                started.store(true, Ordering::Relaxed);
                let under_way = UnderWay::begin(&activity);
                req.extensions_mut().insert(watch.clone());
                // Boxed: hyper keeps room for the service's future in every connection, and
                // a stream's connection lives long; the future itself lives for one request.
                let app = app.clone();
                Box::pin(async move {
                    let response = handle(app, req).await;
                    drop(under_way);
                    response
                })
            })
        };
        let conn = http.serve_connection(io, service).into_owned();
        let mut conn = std::pin::pin!(conn);
        // hyper-util's auto builder reads the first bytes (to tell HTTP/1.1 from HTTP/2)
        // before hyper's header timer runs, with no deadline of its own: a connection that
        // sends nothing, or trickles "PRI * HTTP/2.0", would stay open for ever. So the
        // first request must have arrived within the header deadline, counted from the
        // accept: a TLS handshake that took most of it leaves only the rest.
        let first = accepted + limits.head.min(limits.idle);
        // An error is a client going away or sending garbage: nothing to do.
        tokio::select! {
            _ = conn.as_mut() => return,
            () = tokio::time::sleep_until(first) => {
                if !started.load(Ordering::Relaxed) {
                    return;
                }
            }
            _ = stopping.changed() => {
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
                return;
            }
        }
        // Then until the demo stops or the connection is idle for the idle limit (no
        // request under way and no event stream open), looked at once per limit at most. hyper's header timer closes an idle
        // HTTP/1.1 connection first (it is the shorter of the head and idle limits); an
        // HTTP/2 connection has no such timer, and without this one a client could hold
        // any number of them for ever. A GOAWAY lets a request that crossed it be retried.
        let mut check = Instant::now() + limits.idle;
        loop {
            tokio::select! {
                _ = conn.as_mut() => return,
                _ = stopping.changed() => break,
                () = tokio::time::sleep_until(check) => {
                    let now = Instant::now();
                    // An open stream or a request under way: look again an idle limit
                    // later. (A stream that ends between two looks leaves the connection
                    // idle from its end on, which the next look may count as a whole limit.)
                    match activity.idle_since() {
                        Some(since) if !watch.is_streaming() => {
                            if since + limits.idle <= now {
                                break;
                            }
                            check = since + limits.idle;
                        }
                        _ => check = now + limits.idle,
                    }
                }
            }
        }
        conn.as_mut().graceful_shutdown();
        let _ = conn.await;
    }
}

async fn handle(app: Arc<App>, mut req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    if !host_is_valid(&req) {
        return Ok(respond(Reply::text(
            StatusCode::BAD_REQUEST,
            "an HTTP/1.1 request needs exactly one Host header",
        )));
    }
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let query = req.uri().query().map(str::to_owned);
    let body = if contract::wants_body(&method, &path) {
        // hyper bounds neither a body's time nor the sum of bodies held: the library's
        // reader does, with the same rules as the raw-socket demos.
        match sse_hyper::read_body(req, &app.body_limits).await {
            Ok(req) => req.into_body(),
            Err(e) => {
                return Ok(e
                    .to_response()
                    .map(|b| Either::Right(Full::new(Batch::from(b)))));
            }
        }
    } else if method == Method::GET && path == "/events" {
        contract::log_in(&mut req);
        return Ok(events(&app, &req).await);
    } else {
        Bytes::new()
    };
    Ok(
        match contract::route(
            app.server.hub(),
            app.engine.as_ref(),
            &app.stats,
            &method,
            &path,
            query.as_deref(),
            &body,
        )
        .await
        {
            Route::Reply(reply) => respond(reply),
            // Not a GET: the handshake refuses it.
            Route::Events => respond(Reply::not_acceptable()),
        },
    )
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

async fn events<B>(app: &App, req: &Request<B>) -> Response<Body> {
    app.stats.event_request();
    match app.server.handshake(req).await {
        Outcome::Accept(accepted) => {
            contract::greet(&accepted.session, accepted.continuity);
            accepted.response.map(Either::Left)
        }
        Outcome::NoContent(res) => {
            app.stats.no_content();
            res.map(Either::Left)
        }
        Outcome::GoAway(res) => res.map(Either::Left),
        Outcome::NotEventStream(_) => respond(Reply::not_acceptable()),
    }
}

fn respond(reply: Reply) -> Response<Body> {
    let mut res = Response::new(Either::Right(Full::new(Batch::from(reply.body))));
    *res.status_mut() = reply.status;
    if let Some(ct) = reply.content_type {
        res.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    res
}
