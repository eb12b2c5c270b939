//! The sse-rs demo server on hyper: the demo contract of DESIGN.md.
//!
//! ```text
//! cargo run --release -p sse-hyper --example demo -- --addr 127.0.0.1:8080
//! ```
//!
//! Routes: `GET /` (a page), `GET /events` (the stream), `POST /sessions/{id}/events`,
//! `POST /broadcast`, `POST /sessions/{id}/close`, `POST /sessions/{id}/drop` (end the
//! stream without closing the session, so the tab reconnects), `GET /sessions`, and
//! `GET /stats` (how many `/events` requests came in and how many got 204).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use sse_hyper::{Batch, Event, EventStream, Hub, Outcome, SessionId};
use tokio::net::TcpListener;

const PAGE: &str = include_str!("../../demo/index.html");
/// Largest request body the admin routes read.
const MAX_BODY: usize = 1 << 20;

type Body = Either<EventStream, Full<Batch>>;

struct Options {
    addr: SocketAddr,
    keep_alive: Duration,
    retry: Duration,
    tick: Duration,
}

fn parse_args() -> Result<Options, String> {
    let mut opts = Options {
        addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
        keep_alive: Duration::from_secs(15),
        retry: Duration::from_secs(3),
        tick: Duration::from_secs(1),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let ms = || {
            value
                .parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| format!("{flag}: not a number of milliseconds: {value}"))
        };
        match flag.as_str() {
            "--addr" => {
                opts.addr = value
                    .parse()
                    .map_err(|_| format!("--addr: bad address {value}"))?
            }
            "--keep-alive-ms" => opts.keep_alive = ms()?,
            "--retry-ms" => opts.retry = ms()?,
            "--tick-ms" => opts.tick = ms()?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(opts)
}

#[derive(Default)]
struct Stats {
    events_requests: AtomicU64,
    no_content: AtomicU64,
}

struct App {
    hub: Hub,
    stats: Stats,
}

#[tokio::main]
pub(crate) async fn main() {
    let opts = match parse_args() {
        Ok(opts) => opts,
        Err(msg) => {
            eprintln!(
                "demo: {msg}\nusage: demo [--addr HOST:PORT] [--keep-alive-ms N] [--retry-ms N] [--tick-ms N]"
            );
            std::process::exit(2);
        }
    };
    let keep_alive = (!opts.keep_alive.is_zero()).then_some(opts.keep_alive);
    let hub = sse_hyper::hub_builder()
        .retry(opts.retry)
        .keep_alive(keep_alive)
        .build();
    let app = Arc::new(App {
        hub: hub.clone(),
        stats: Stats::default(),
    });
    let listener = match TcpListener::bind(opts.addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("demo: cannot listen on {}: {e}", opts.addr);
            std::process::exit(1);
        }
    };
    let local = listener.local_addr().unwrap_or(opts.addr);
    println!("listening on http://{local}");

    if !opts.tick.is_zero() {
        let hub = hub.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(opts.tick);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                every.tick().await;
                if let Ok(ev) = Event::new().event("sync-time") {
                    hub.broadcast(&ev.data(utc_now()));
                }
            }
        });
    }

    let server = auto::Builder::new(TokioExecutor::new());
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
            _ = tokio::signal::ctrl_c() => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let server = server.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| route(app.clone(), req));
            // Errors here are a client going away mid-request: nothing to do.
            let _ = server.serve_connection(TokioIo::new(stream), service).await;
        });
    }
    // Streams end promptly without marking ids, so tabs reconnect to the next server.
    let n = hub.shutdown();
    eprintln!("demo: shutting down, ended {n} streams");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

async fn route(app: Arc<App>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let res = match (req.method(), segments.as_slice()) {
        (&Method::GET, [""]) => page(),
        (_, ["events"]) => events(&app, &req),
        (&Method::GET, ["sessions"]) => sessions(&app.hub),
        (&Method::GET, ["stats"]) => stats(&app.stats),
        (&Method::POST, ["broadcast"]) => broadcast(&app.hub, req).await,
        (&Method::POST, ["sessions", id, "events"]) => {
            let id = id.to_string();
            send_to(&app.hub, &id, req).await
        }
        (&Method::POST, ["sessions", id, "close"]) => end_session(&app.hub, id, true),
        (&Method::POST, ["sessions", id, "drop"]) => end_session(&app.hub, id, false),
        (_, [""] | ["sessions"] | ["stats"] | ["broadcast"])
        | (_, ["sessions", _, "events" | "close" | "drop"]) => {
            text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        _ => text(StatusCode::NOT_FOUND, "not found"),
    };
    Ok(res)
}

fn events(app: &App, req: &Request<Incoming>) -> Response<Body> {
    if req.method() == Method::GET {
        app.stats.events_requests.fetch_add(1, Ordering::Relaxed);
    }
    match sse_hyper::handshake(&app.hub, req) {
        Outcome::Accept(accepted) => {
            let id = accepted.id().to_string();
            // The session is fresh and empty, so this cannot go over budget.
            let _ = accepted.session.emit("connect", id);
            accepted.response.map(Either::Left)
        }
        Outcome::NoContent(res) => {
            app.stats.no_content.fetch_add(1, Ordering::Relaxed);
            res.map(Either::Left)
        }
        Outcome::NotEventStream(_) => text(
            StatusCode::NOT_ACCEPTABLE,
            "this is an event stream: GET it with `Accept: text/event-stream` (an EventSource does)",
        ),
    }
}

fn page() -> Response<Body> {
    let mut res = Response::new(Either::Right(Full::new(Batch::from(Bytes::from_static(
        PAGE.as_bytes(),
    )))));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    res
}

fn sessions(hub: &Hub) -> Response<Body> {
    let ids: Vec<String> = hub.ids().iter().map(|id| id.to_string()).collect();
    let body = serde_json::to_vec(&ids).unwrap_or_else(|_| b"[]".to_vec());
    json(body)
}

fn stats(stats: &Stats) -> Response<Body> {
    let body = serde_json::json!({
        "events_requests": stats.events_requests.load(Ordering::Relaxed),
        "no_content": stats.no_content.load(Ordering::Relaxed),
    });
    json(body.to_string().into_bytes())
}

async fn broadcast(hub: &Hub, req: Request<Incoming>) -> Response<Body> {
    let (event, data) = match read_event(req).await {
        Ok(parts) => parts,
        Err(res) => return res,
    };
    let n = hub.broadcast(&event.data(data));
    text(StatusCode::OK, &n.to_string())
}

async fn send_to(hub: &Hub, raw_id: &str, req: Request<Incoming>) -> Response<Body> {
    let Some(id) = session_id(raw_id) else {
        return text(StatusCode::NOT_FOUND, "no such session");
    };
    let Some(session) = hub.session(id.as_str()) else {
        return text(StatusCode::NOT_FOUND, "no such session");
    };
    let (event, data) = match read_event(req).await {
        Ok(parts) => parts,
        Err(res) => return res,
    };
    match session.send_event(&event.data(data)) {
        Ok(()) => text(StatusCode::ACCEPTED, "queued"),
        Err(sse_hyper::Error::Backpressure { .. }) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "the session reads too slowly and was disconnected",
        ),
        Err(_) => text(StatusCode::NOT_FOUND, "the session has ended"),
    }
}

fn end_session(hub: &Hub, raw_id: &str, close: bool) -> Response<Body> {
    let Some(session) = session_id(raw_id).and_then(|id| hub.session(id.as_str())) else {
        return text(StatusCode::NOT_FOUND, "no such session");
    };
    if close {
        session.close();
    } else {
        session.disconnect();
    }
    text(StatusCode::NO_CONTENT, "")
}

fn session_id(raw: &str) -> Option<SessionId> {
    SessionId::parse_percent_encoded(raw.as_bytes(), sse_hyper::DEFAULT_MAX_ID_LEN).ok()
}

/// Reads `?event=NAME` and the UTF-8 body into an event, or answers 4xx.
async fn read_event(req: Request<Incoming>) -> Result<(Event, String), Response<Body>> {
    let name = req.uri().query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "event")
            .map(|(_, v)| v.into_owned())
    });
    let event = match name {
        None => Event::new(),
        Some(name) => Event::new()
            .event(name)
            .map_err(|e| text(StatusCode::BAD_REQUEST, &format!("bad event name: {e}")))?,
    };
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => {
            return Err(text(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body too large or cut short",
            ));
        }
    };
    let data = String::from_utf8(body.to_vec())
        .map_err(|_| text(StatusCode::BAD_REQUEST, "the body must be UTF-8 text"))?;
    Ok((event, data))
}

fn text(status: StatusCode, body: &str) -> Response<Body> {
    let mut res = Response::new(Either::Right(Full::new(Batch::from(
        Bytes::copy_from_slice(body.as_bytes()),
    ))));
    *res.status_mut() = status;
    if !body.is_empty() {
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
    }
    res
}

fn json(body: Vec<u8>) -> Response<Body> {
    let mut res = Response::new(Either::Right(Full::new(Batch::from(Bytes::from(body)))));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    res
}

/// The current UTC time as RFC 3339 (`2026-11-25T07:30:00.123Z`).
fn utc_now() -> String {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}
