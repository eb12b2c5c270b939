//! The routes of the demo contract (DESIGN.md) that do not depend on the adapter: the admin
//! routes over the hub, the page, the `connect` greeting, the `sync-time` tick, the stand-in
//! login, and the counters behind `GET /stats`. With `--redis URL` the admin routes go
//! through the Redis engine to every node (`cluster.rs`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, StatusCode};
use sse_proto::{
    Continuity, DEFAULT_MAX_ID_LEN, Error, Event, Hub, Principal, Session, SessionId, TopicName,
};
use sse_redis::RedisEngine;

use crate::cluster;

/// The page served at `GET /`.
pub const PAGE: &str = include_str!("index.html");
/// Largest request body the admin routes read.
pub const MAX_BODY: usize = 1 << 20;

/// Longest `user` cookie taken as a principal.
const MAX_USER: usize = 128;

/// The demo's stand-in for a login: the `user` cookie names the principal that signed ids are
/// bound to (an application would take it from its session or token instead), put in the
/// request's extensions where the adapters' handshake reads it.
pub fn log_in<B>(req: &mut http::Request<B>) {
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
/// <bool>, "topics": [..], "gaps": [..]}` (the session's topics, and those whose missed
/// events could not be replayed). It is volatile (never logged or replayed): it describes
/// this connection only.
pub fn greet(session: &Session, continuity: Continuity, topics: &[TopicName], gaps: &[TopicName]) {
    let names = |topics: &[TopicName]| {
        topics
            .iter()
            .map(|t| t.as_str().to_owned())
            .collect::<Vec<_>>()
    };
    let data = serde_json::json!({
        "id": session.id().as_str(),
        "resumed": continuity.is_resumed(),
        "topics": names(topics),
        "gaps": names(gaps),
    });
    if let Ok(event) = Event::new().event("connect") {
        // The stream was just accepted and holds its preamble (and any replay) only.
        let _ = session.send_volatile(&event.data(data.to_string()));
    }
}

/// Sends a `sync-time` tick to every attached tab (volatile: old ticks are worth nothing).
pub fn tick(hub: &Hub) {
    if let Some(event) = sync_time() {
        hub.broadcast_volatile(&event);
    }
}

/// Counters behind `GET /stats`.
#[derive(Default)]
pub struct Stats {
    events_requests: AtomicU64,
    no_content: AtomicU64,
}

impl Stats {
    /// Counts a `GET /events` request.
    pub fn event_request(&self) {
        self.events_requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a 204 answer.
    pub fn no_content(&self) {
        self.no_content.fetch_add(1, Ordering::Relaxed);
    }
}

/// A fixed response.
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The `Content-Type`, when there is a body.
    pub content_type: Option<&'static str>,
    /// The body.
    pub body: Bytes,
}

impl Reply {
    /// A plain-text answer.
    pub fn text(status: StatusCode, body: &str) -> Reply {
        Reply {
            status,
            content_type: (!body.is_empty()).then_some("text/plain; charset=utf-8"),
            body: Bytes::copy_from_slice(body.as_bytes()),
        }
    }

    pub(crate) fn json(body: Vec<u8>) -> Reply {
        Reply {
            status: StatusCode::OK,
            content_type: Some("application/json"),
            body: Bytes::from(body),
        }
    }

    /// The answer to a `GET /events` that is not an event-stream request.
    pub fn not_acceptable() -> Reply {
        Reply::text(
            StatusCode::NOT_ACCEPTABLE,
            "this is an event stream: GET it with `Accept: text/event-stream` (an EventSource does)",
        )
    }
}

/// Where a request goes.
pub enum Route {
    /// `/events`: the adapter runs the handshake.
    Events,
    /// Anything else: answered with this.
    Reply(Reply),
}

/// Routes a request, its `body` read. With
/// `engine` (`--redis`), the routes that reach sessions go to every node through Redis.
pub async fn route(
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
    if let Some(reply) = crate::groups::route(hub, method, &segments, query, body) {
        return Route::Reply(reply);
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

pub(crate) fn session_id(raw: &str) -> Option<SessionId> {
    SessionId::parse_percent_encoded(raw.as_bytes(), DEFAULT_MAX_ID_LEN).ok()
}

/// The event of `?event=NAME` (none: a plain message) with the UTF-8 `body` as data.
pub(crate) fn event_from(query: Option<&str>, body: &[u8]) -> Result<Event, Reply> {
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
