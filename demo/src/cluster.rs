//! Several nodes on one Redis (`--redis URL`, DESIGN.md "Several nodes"): connecting to it at
//! start, and the admin routes that reach the sessions of every node through the
//! [`RedisEngine`]. `routes.rs` routes here first in Redis mode.
//!
//! What each route answers when Redis is away: a send to a session of this node is delivered
//! here at once (202; without a position, so a later resume from before it is a gap), to any
//! other session 503; a close or drop of a session of this node ends it here (204; a close is
//! marked in Redis once it is back), of any other 503; a broadcast reaches this node's tabs
//! and answers 503; `GET /sessions` answers 503. A 503 is not an acknowledgement, and not a
//! promise: a command that reached a frozen Redis and was answered too late still takes
//! effect when it thaws, once (a send delivered here at once is not delivered again).

use std::future::Future;
use std::time::Duration;

use http::{Method, StatusCode};
use sse_proto::{Error, Hub, Principal, TopicName};
use sse_redis::{RedisConfig, RedisEngine};

use crate::routes::{Reply, event_from, session_id};

/// The first and the longest wait between attempts to reach Redis at start.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(2));

/// Connects to Redis, waiting for it as long as it takes: each failed attempt prints one line
/// on stderr and waits (`sleep`, the runtime's timer) a little longer than the one before, up
/// to two seconds. An error that another attempt cannot mend (Redis answers, but refuses us)
/// ends the process with exit code 1.
pub async fn connect<F: Future<Output = ()>>(
    config: RedisConfig,
    sleep: impl Fn(Duration) -> F,
) -> RedisEngine {
    let mut backoff = BACKOFF.0;
    loop {
        match RedisEngine::connect(config.clone()).await {
            Ok(engine) => return engine,
            Err(e) if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() => {
                eprintln!(
                    "demo: Redis at {} is not reachable ({e}); trying again in {} ms",
                    config.url,
                    backoff.as_millis()
                );
                sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF.1);
            }
            Err(e) => {
                eprintln!("demo: cannot use Redis at {}: {e}", config.url);
                std::process::exit(1);
            }
        }
    }
}

/// The answer to a route that reaches sessions on any node; `None` for the other routes
/// (the page, `/events`, `/stats`, a wrong method), which `contract::route` answers.
pub(crate) async fn route(
    engine: &RedisEngine,
    hub: &Hub,
    method: &Method,
    segments: &[&str],
    query: Option<&str>,
    body: &[u8],
) -> Option<Reply> {
    let reply = match (method, segments) {
        (&Method::GET, ["sessions"]) => match engine.sessions().await {
            Ok(ids) => Reply::json(serde_json::to_vec(&ids).unwrap_or_else(|_| b"[]".to_vec())),
            Err(_) => away("the sessions of the other nodes are not known"),
        },
        (&Method::POST, ["broadcast"]) => match event_from(query, body) {
            Ok(event) => match engine.broadcast(event.encode()).await {
                Ok(count) => Reply::text(StatusCode::OK, &count.to_string()),
                Err(_) => away("only this node's tabs got it"),
            },
            Err(reply) => reply,
        },
        (&Method::POST, ["sessions", id, "events"]) => send_to(engine, id, query, body).await,
        (&Method::POST, ["sessions", id, "close"]) => end_session(engine, hub, id, true).await,
        (&Method::POST, ["sessions", id, "drop"]) => end_session(engine, hub, id, false).await,
        (&Method::POST | &Method::DELETE, ["sessions", id, "topics", topic]) => {
            membership(engine, id, topic, method == Method::POST).await
        }
        (&Method::POST, ["topics", topic, "events"]) => match event_from(query, body) {
            Ok(event) => counted(engine.publish(topic, event.encode()).await),
            Err(reply) => reply,
        },
        (&Method::GET, ["topics", topic, "members"]) => match engine.members(topic).await {
            Ok(m) => Reply::json(
                serde_json::json!({ "sessions": m.sessions, "users": m.users })
                    .to_string()
                    .into_bytes(),
            ),
            Err(e) => failed(&e),
        },
        (&Method::POST, ["users", user, "events"]) => match event_from(query, body) {
            Ok(event) => counted(
                engine
                    .send_user(&Principal::new(user), event.encode())
                    .await,
            ),
            Err(reply) => reply,
        },
        (&Method::POST, ["users", user, "close"]) => {
            counted(engine.close_user(&Principal::new(user)).await)
        }
        (&Method::GET, ["users", user, "sessions"]) => {
            match engine.user_sessions(&Principal::new(user)).await {
                Ok(ids) => Reply::json(serde_json::json!(ids).to_string().into_bytes()),
                Err(e) => failed(&e),
            }
        }
        _ => return None,
    };
    Some(reply)
}

/// Join or leave, on whichever node serves the session: 204; 400 for a bad name; 403 when the
/// demo's rule does not grant the topic to the session's user; 404 for an unknown session.
async fn membership(engine: &RedisEngine, raw_id: &str, topic: &str, join: bool) -> Reply {
    let name = match TopicName::new(topic) {
        Ok(name) => name,
        Err(e) => return Reply::text(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let Some(id) = session_id(raw_id) else {
        return Reply::text(StatusCode::NOT_FOUND, "no such session");
    };
    let info = match engine.session_info(id.as_str()).await {
        Ok(Some(info)) => info,
        Ok(None) => return Reply::text(StatusCode::NOT_FOUND, "no such session"),
        Err(e) => return failed(&e),
    };
    let user = info.user.as_ref().map(Principal::as_bytes);
    if join && !crate::groups::grants(&name, user) {
        return Reply::text(
            StatusCode::FORBIDDEN,
            "the topic is not granted to the session's user",
        );
    }
    let done = if join {
        engine.join(id.as_str(), topic).await
    } else {
        engine.leave(id.as_str(), topic).await
    };
    match done {
        Ok(_) => Reply::text(StatusCode::NO_CONTENT, ""),
        Err(e) => failed(&e),
    }
}

/// A count across nodes, as a plain number.
fn counted(sent: Result<usize, Error>) -> Reply {
    match sent {
        Ok(n) => Reply::text(StatusCode::OK, &n.to_string()),
        Err(e) => failed(&e),
    }
}

fn failed(e: &Error) -> Reply {
    match e {
        Error::InvalidTopic(_) | Error::InvalidField(_) => {
            Reply::text(StatusCode::BAD_REQUEST, &e.to_string())
        }
        Error::NotConnected | Error::Closed => {
            Reply::text(StatusCode::NOT_FOUND, "no such session")
        }
        _ => away("what the route needs is on it"),
    }
}

async fn send_to(engine: &RedisEngine, raw_id: &str, query: Option<&str>, body: &[u8]) -> Reply {
    let Some(id) = session_id(raw_id) else {
        return Reply::text(StatusCode::NOT_FOUND, "no such session");
    };
    let event = match event_from(query, body) {
        Ok(event) => event,
        Err(reply) => return reply,
    };
    match engine.send_to(id.as_str(), event.encode()).await {
        Ok(()) => Reply::text(StatusCode::ACCEPTED, "queued"),
        Err(Error::Unavailable) => away("the session is not on this node"),
        Err(_) => Reply::text(StatusCode::NOT_FOUND, "no such session"),
    }
}

async fn end_session(engine: &RedisEngine, hub: &Hub, raw_id: &str, close: bool) -> Reply {
    let Some(id) = session_id(raw_id) else {
        return Reply::text(StatusCode::NOT_FOUND, "no such session");
    };
    let known = if close {
        engine.close(id.as_str()).await
    } else {
        engine.drop_stream(id.as_str()).await
    };
    match (known, hub.session(id.as_str())) {
        (Ok(true), _) => Reply::text(StatusCode::NO_CONTENT, ""),
        // Redis is away, or lost the session's marks (restarted): a session of this node
        // ends here, and the hub hands a close to Redis once it can.
        (_, Some(session)) => {
            if close {
                session.close();
            } else {
                session.drop_stream();
            }
            Reply::text(StatusCode::NO_CONTENT, "")
        }
        (Ok(false), None) => Reply::text(StatusCode::NOT_FOUND, "no such session"),
        (Err(_), None) => away("the session is not on this node"),
    }
}

/// 503: Redis is away, and what the route needs is on it.
fn away(detail: &str) -> Reply {
    Reply::text(
        StatusCode::SERVICE_UNAVAILABLE,
        &format!("Redis is away: {detail}"),
    )
}
