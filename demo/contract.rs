//! The parts of the demo contract (DESIGN.md) that do not depend on the adapter: options,
//! the admin routes over the hub, and the page. Each adapter's `examples/<adapter>-demo.rs`
//! includes this file with `#[path]` and adds its own server loop and `GET /events` handshake.
//! With `--redis URL` the admin routes go through the Redis engine to every node
//! (`cluster.rs`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, StatusCode};
use sse_proto::{
    Continuity, DEFAULT_MAX_ID_LEN, Error, Event, Hub, HubBuilder, Key, KeyRing, Principal,
    ResumeConfig, Session, SessionId,
};
use sse_redis::{RedisConfig, RedisEngine};

/// Several nodes on one Redis: connecting, and the admin routes that reach every node.
#[path = "cluster.rs"]
mod cluster;
pub(crate) use cluster::connect;

/// The page served at `GET /`.
pub(crate) const PAGE: &str = include_str!("index.html");
/// Largest request body the admin routes read.
pub(crate) const MAX_BODY: usize = 1 << 20;

/// Command-line options shared by every demo.
pub(crate) struct Options {
    pub(crate) addr: std::net::SocketAddr,
    pub(crate) keep_alive: Option<Duration>,
    pub(crate) retry: Duration,
    pub(crate) tick: Duration,
    /// Resume mode's grace period; `None` (the default, `--resume-ms 0`) keeps it off.
    pub(crate) resume: Option<Duration>,
    /// The write-coalescing window (`--coalesce-ms`); zero (the default) keeps it off.
    pub(crate) coalesce: Duration,
    /// Signed ids: the key (`--secret`, 64 hex digits).
    pub(crate) secret: Option<Key>,
    /// Several nodes on one Redis (`--redis URL`, with `--heartbeat-ms` and
    /// `--redis-timeout-ms`): the engine's settings.
    pub(crate) redis: Option<RedisConfig>,
    /// HTTPS with HTTP/2 (`--tls`, `--cert FILE --key FILE`): the hyper demo serves it, the
    /// HTTP/1.1-only demos refuse it.
    pub(crate) tls: Option<Tls>,
}

/// Where the certificate of `--tls` comes from.
pub(crate) enum Tls {
    /// `--tls` alone: a certificate made at start, self-signed for localhost.
    SelfSigned,
    /// `--cert FILE --key FILE`: a certificate chain and its private key, PEM files.
    #[allow(dead_code)] // Read by the hyper demo's tls.rs only.
    Files {
        cert: std::path::PathBuf,
        key: std::path::PathBuf,
    },
}

/// How to use the demo, for `--help` and for a bad flag.
const USAGE: &str = "usage: demo [--addr HOST:PORT] [--keep-alive-ms N] [--retry-ms N] [--tick-ms N] [--resume-ms N] [--coalesce-ms N]
            [--secret HEX] [--redis URL [--heartbeat-ms N] [--redis-timeout-ms N]] [--tls [--cert FILE --key FILE]]

  --addr HOST:PORT     where to listen (default 127.0.0.1:8080; port 0 picks a free one)
  --keep-alive-ms N    keep-alive comment interval on idle streams (default 15000; 0 = off)
  --retry-ms N         reconnection delay sent to browsers (default 3000)
  --tick-ms N          sync-time tick interval (default 1000; 0 = no ticks)
  --resume-ms N        resume mode: sessions outlive their connection for N ms and a
                       reconnect gets exactly what it missed (default 0 = off)
  --coalesce-ms N      write coalescing: a stream's writer, woken by an event, waits up
                       to N ms for more and writes them all at once (one vectored write);
                       closes and shutdowns never wait (default 0 = off)
  --secret HEX         signed ids: a 32-byte key as 64 hex digits; ids are bound to the
                       `user` cookie, which stands in for a login (default: unsigned ids)
  --redis URL          several nodes on one Redis (redis://HOST:PORT): any node reaches,
                       closes, lists and (with --resume-ms) resumes any node's sessions.
                       The demo waits for Redis before it listens: it retries with a
                       backoff, one line on stderr per failed attempt; a URL that is not
                       redis://… is refused (exit code 2)
  --heartbeat-ms N     with --redis: how often this node renews its sessions' marks; a
                       node killed loses them after three (default 2000)
  --redis-timeout-ms N with --redis: how long a command waits for Redis before it counts
                       as away (default 2000)
  --tls                HTTPS, with HTTP/2 offered through ALPN, so that every tab of a
                       browser shares one connection (over HTTP/1.1 a browser opens six
                       per origin, one per tab's stream, and a seventh tab cannot load).
                       The hyper demo only (the tokio and async-std demos speak HTTP/1.1:
                       put a TLS-terminating proxy in front of them). Without --cert, a
                       certificate self-signed for localhost and 127.0.0.1 is made at
                       start (its SHA-256 fingerprint goes to stderr). Prints
                       `listening on https://ADDR`
  --cert FILE          with --key: serve this certificate chain (PEM, leaf first) instead
  --key FILE           the private key of --cert (PEM); the two imply --tls";

impl Options {
    /// Reads the flags, or exits with a usage message; and starts logging to stderr, at
    /// `info` unless `RUST_LOG` says otherwise (`RUST_LOG=sse=debug` shows every session's
    /// life).
    pub(crate) fn from_args() -> Options {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init();
        let args: Vec<String> = std::env::args().skip(1).collect();
        if args.iter().any(|a| a == "--help" || a == "-h") {
            println!("{USAGE}");
            std::process::exit(0);
        }
        match Options::parse(args.into_iter()) {
            Ok(opts) => opts,
            Err(msg) => {
                eprintln!("demo: {msg}\n{USAGE}");
                std::process::exit(2);
            }
        }
    }

    fn parse(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
        let mut opts = Options {
            addr: std::net::SocketAddr::from(([127, 0, 0, 1], 8080)),
            keep_alive: Some(Duration::from_secs(15)),
            retry: Duration::from_secs(3),
            tick: Duration::from_secs(1),
            resume: None,
            coalesce: Duration::ZERO,
            secret: None,
            redis: None,
            tls: None,
        };
        let (mut heartbeat, mut timeout) = (None, None);
        let (mut tls, mut cert, mut key) = (false, None, None);
        while let Some(flag) = args.next() {
            if flag == "--tls" {
                tls = true;
                continue;
            }
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
                "--keep-alive-ms" => opts.keep_alive = Some(ms()?).filter(|d| !d.is_zero()),
                "--retry-ms" => opts.retry = ms()?,
                "--tick-ms" => opts.tick = ms()?,
                "--resume-ms" => opts.resume = Some(ms()?).filter(|d| !d.is_zero()),
                "--coalesce-ms" => opts.coalesce = ms()?,
                "--secret" => {
                    opts.secret =
                        Some(Key::from_hex("k1", &value).map_err(|e| format!("--secret: {e}"))?)
                }
                "--redis" => {
                    if !value.starts_with("redis://") {
                        return Err(format!("--redis: not a redis:// URL: {value}"));
                    }
                    opts.redis = Some(RedisConfig::new(value));
                }
                "--heartbeat-ms" => heartbeat = Some(ms()?).filter(|d| !d.is_zero()),
                "--redis-timeout-ms" => timeout = Some(ms()?).filter(|d| !d.is_zero()),
                "--cert" => cert = Some(std::path::PathBuf::from(value)),
                "--key" => key = Some(std::path::PathBuf::from(value)),
                _ => return Err(format!("unknown flag {flag}")),
            }
        }
        match &mut opts.redis {
            Some(config) => {
                config.heartbeat = heartbeat.unwrap_or(config.heartbeat);
                config.timeout = timeout.unwrap_or(config.timeout);
            }
            None if heartbeat.is_some() || timeout.is_some() => {
                return Err("--heartbeat-ms and --redis-timeout-ms need --redis".to_owned());
            }
            None => {}
        }
        opts.tls = match (tls, cert, key) {
            (_, Some(cert), Some(key)) => Some(Tls::Files { cert, key }),
            (_, Some(_), None) => return Err("--cert needs --key".to_owned()),
            (_, None, Some(_)) => return Err("--key needs --cert".to_owned()),
            (true, None, None) => Some(Tls::SelfSigned),
            (false, None, None) => None,
        };
        Ok(opts)
    }
}

/// The hub settings the options ask for; an adapter's server builds the hub (with its
/// clock, and with the Redis engine as its store under `--redis`).
pub(crate) fn settings(opts: &Options) -> HubBuilder {
    let mut builder = Hub::builder()
        .retry(opts.retry)
        .keep_alive(opts.keep_alive)
        .coalesce(opts.coalesce);
    if let Some(resume) = opts.resume {
        builder = builder.resume(ResumeConfig::new(resume));
    }
    if let Some(key) = &opts.secret {
        builder = builder.signing(KeyRing::new(key.clone()));
    }
    builder
}

/// Longest `user` cookie taken as a principal.
const MAX_USER: usize = 128;

/// The demo's stand-in for a login: the `user` cookie names the principal that signed ids are
/// bound to (an application would take it from its session or token instead), put in the
/// request's extensions where the adapters' handshake reads it.
pub(crate) fn log_in<B>(req: &mut http::Request<B>) {
    if let Some(user) = principal(req.headers()) {
        req.extensions_mut().insert(user);
    }
}

/// The `user` cookie as a principal: `None` without the cookie, or when it is empty or longer
/// than 128 bytes.
fn principal(headers: &http::HeaderMap) -> Option<Principal> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b';'))
        .find_map(|pair| pair.trim_ascii().strip_prefix(b"user="))
        .filter(|user| !user.is_empty() && user.len() <= MAX_USER)
        .map(Principal::new)
}

/// Greets an accepted stream with the `connect` event: `{"id": "<session id>", "resumed":
/// <bool>}`. It is volatile (never logged or replayed): it describes this connection only.
pub(crate) fn greet(session: &Session, continuity: Continuity) {
    let data = serde_json::json!({
        "id": session.id().as_str(),
        "resumed": continuity.is_resumed(),
    });
    if let Ok(event) = Event::new().event("connect") {
        // The stream was just accepted and holds its preamble (and any replay) only.
        let _ = session.send_volatile(&event.data(data.to_string()));
    }
}

/// Sends a `sync-time` tick to every attached tab (volatile: old ticks are worth nothing).
pub(crate) fn tick(hub: &Hub) {
    if let Some(event) = sync_time() {
        hub.broadcast_volatile(&event);
    }
}

/// Counters behind `GET /stats`.
#[derive(Default)]
pub(crate) struct Stats {
    events_requests: AtomicU64,
    no_content: AtomicU64,
}

impl Stats {
    /// Counts a `GET /events` request.
    pub(crate) fn event_request(&self) {
        self.events_requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a 204 answer.
    pub(crate) fn no_content(&self) {
        self.no_content.fetch_add(1, Ordering::Relaxed);
    }
}

/// A fixed response.
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) content_type: Option<&'static str>,
    pub(crate) body: Bytes,
}

impl Reply {
    pub(crate) fn text(status: StatusCode, body: &str) -> Reply {
        Reply {
            status,
            content_type: (!body.is_empty()).then_some("text/plain; charset=utf-8"),
            body: Bytes::copy_from_slice(body.as_bytes()),
        }
    }

    fn json(body: Vec<u8>) -> Reply {
        Reply {
            status: StatusCode::OK,
            content_type: Some("application/json"),
            body: Bytes::from(body),
        }
    }

    /// The answer to a `GET /events` that is not an event-stream request.
    pub(crate) fn not_acceptable() -> Reply {
        Reply::text(
            StatusCode::NOT_ACCEPTABLE,
            "this is an event stream: GET it with `Accept: text/event-stream` (an EventSource does)",
        )
    }
}

/// Where a request goes.
pub(crate) enum Route {
    /// `/events`: the adapter runs the handshake.
    Events,
    /// Anything else: answered with this.
    Reply(Reply),
}

/// Whether the route for `method` and `path` reads a request body (so the adapter reads it,
/// at most [`MAX_BODY`] bytes, before calling [`route`]).
#[allow(dead_code)] // Demos that read every body up front (sse-tokio) do not ask.
pub(crate) fn wants_body(method: &Method, path: &str) -> bool {
    method == Method::POST && path != "/events"
}

/// Routes a request. `body` is the request body for routes that [`wants_body`]. With
/// `engine` (`--redis`), the routes that reach sessions go to every node through Redis.
pub(crate) async fn route(
    hub: &Hub,
    engine: Option<&RedisEngine>,
    stats: &Stats,
    method: &Method,
    path: &str,
    query: Option<&str>,
    body: &[u8],
) -> Route {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if let Some(engine) = engine {
        if let Some(reply) = cluster::route(engine, hub, method, &segments, query, body).await {
            return Route::Reply(reply);
        }
    }
    let reply = match (method, segments.as_slice()) {
        (_, ["events"]) => return Route::Events,
        (&Method::GET, [""]) => Reply {
            status: StatusCode::OK,
            content_type: Some("text/html; charset=utf-8"),
            body: Bytes::from_static(PAGE.as_bytes()),
        },
        (&Method::GET, ["sessions"]) => {
            let ids: Vec<String> = hub.ids().iter().map(|id| id.to_string()).collect();
            Reply::json(serde_json::to_vec(&ids).unwrap_or_else(|_| b"[]".to_vec()))
        }
        (&Method::GET, ["stats"]) => Reply::json(
            serde_json::json!({
                "events_requests": stats.events_requests.load(Ordering::Relaxed),
                "no_content": stats.no_content.load(Ordering::Relaxed),
            })
            .to_string()
            .into_bytes(),
        ),
        (&Method::POST, ["broadcast"]) => match event_from(query, body) {
            Ok(event) => Reply::text(StatusCode::OK, &hub.broadcast(&event).to_string()),
            Err(reply) => reply,
        },
        (&Method::POST, ["sessions", id, "events"]) => send_to(hub, id, query, body),
        (&Method::POST, ["sessions", id, "close"]) => end_session(hub, id, true),
        (&Method::POST, ["sessions", id, "drop"]) => end_session(hub, id, false),
        (_, [""] | ["sessions"] | ["stats"] | ["broadcast"])
        | (_, ["sessions", _, "events" | "close" | "drop"]) => {
            Reply::text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        _ => Reply::text(StatusCode::NOT_FOUND, "not found"),
    };
    Route::Reply(reply)
}

fn send_to(hub: &Hub, raw_id: &str, query: Option<&str>, body: &[u8]) -> Reply {
    let Some(session) = session_id(raw_id).and_then(|id| hub.session(id.as_str())) else {
        return Reply::text(StatusCode::NOT_FOUND, "no such session");
    };
    let event = match event_from(query, body) {
        Ok(event) => event,
        Err(reply) => return reply,
    };
    match session.send_event(&event) {
        Ok(()) => Reply::text(StatusCode::ACCEPTED, "queued"),
        Err(Error::Backpressure { .. }) => Reply::text(
            StatusCode::SERVICE_UNAVAILABLE,
            "the session reads too slowly and was disconnected",
        ),

        Err(_) => Reply::text(StatusCode::NOT_FOUND, "the session has ended"),
    }
}

fn end_session(hub: &Hub, raw_id: &str, close: bool) -> Reply {
    let Some(session) = session_id(raw_id).and_then(|id| hub.session(id.as_str())) else {
        return Reply::text(StatusCode::NOT_FOUND, "no such session");
    };
    if close {
        session.close();
    } else {
        session.drop_stream();
    }
    Reply::text(StatusCode::NO_CONTENT, "")
}

fn session_id(raw: &str) -> Option<SessionId> {
    SessionId::parse_percent_encoded(raw.as_bytes(), DEFAULT_MAX_ID_LEN).ok()
}

/// The event of `?event=NAME` (none: a plain message) with the UTF-8 `body` as data.
fn event_from(query: Option<&str>, body: &[u8]) -> Result<Event, Reply> {
    let name = query.and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "event")
            .map(|(_, v)| v.into_owned())
    });
    let event = match name {
        None => Event::new(),
        Some(name) => Event::new()
            .event(name)
            .map_err(|e| Reply::text(StatusCode::BAD_REQUEST, &format!("bad event name: {e}")))?,
    };
    let data = std::str::from_utf8(body)
        .map_err(|_| Reply::text(StatusCode::BAD_REQUEST, "the body must be UTF-8 text"))?;
    Ok(event.data(data.to_owned()))
}

/// The `sync-time` event: the current UTC time as RFC 3339 (`2026-11-25T07:30:00.123Z`).
fn sync_time() -> Option<Event> {
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
    let time = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    );
    Event::new().event("sync-time").ok().map(|e| e.data(time))
}
