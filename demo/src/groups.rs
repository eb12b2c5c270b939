//! The v3 routes of the demo contract: topics (join, leave, publish, members) and users
//! (send, close, list), and the demo's topic rule.

use http::{Method, StatusCode};
use sse_proto::{Error, Hub, TopicName};

use crate::routes::{Reply, event_from, session_id};

/// The demo's topic rule, standing in for an application's: every topic, except those whose
/// name begins with `staff-`, which only the user `staff` gets.
pub fn grants(topic: &TopicName, user: Option<&[u8]>) -> bool {
    !topic.as_str().starts_with("staff-") || user == Some(b"staff")
}

/// Answers the topic and user routes; `None` for any other route.
pub fn route(
    hub: &Hub,
    method: &Method,
    segments: &[&str],
    query: Option<&str>,
    body: &[u8],
) -> Option<Reply> {
    let reply = match (method, segments) {
        (&Method::POST, ["sessions", id, "topics", topic]) => membership(hub, id, topic, true),
        (&Method::DELETE, ["sessions", id, "topics", topic]) => membership(hub, id, topic, false),
        (&Method::POST, ["topics", topic, "events"]) => {
            match (hub.topic(topic), event_from(query, body)) {
                (Err(e), _) => bad_topic(&e),
                (_, Err(reply)) => reply,
                (Ok(topic), Ok(event)) => counted(topic.send_event(&event)),
            }
        }
        (&Method::GET, ["topics", topic, "members"]) => match hub.topic(topic) {
            Err(e) => bad_topic(&e),
            Ok(topic) => {
                let sessions: Vec<String> =
                    topic.members().iter().map(|id| id.to_string()).collect();
                let users = topic.users().len();
                json(&serde_json::json!({ "sessions": sessions, "users": users }))
            }
        },
        (&Method::POST, ["users", user, "events"]) => match event_from(query, body) {
            Err(reply) => reply,
            Ok(event) => counted(hub.user(user).send_event(&event)),
        },
        (&Method::POST, ["users", user, "close"]) => counted(hub.user(user).close()),
        (&Method::GET, ["users", user, "sessions"]) => {
            let ids: Vec<String> = hub
                .user(user)
                .sessions()
                .iter()
                .map(|id| id.to_string())
                .collect();
            json(&serde_json::json!(ids))
        }
        (_, ["sessions", _, "topics", _])
        | (_, ["topics", _, "events" | "members"])
        | (_, ["users", _, "events" | "close" | "sessions"]) => {
            Reply::text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        _ => return None,
    };
    Some(reply)
}

/// Join (`join`) or leave a topic: 204, 400 for a bad name, 403 when the rule does not grant
/// it, 404 for an unknown session.
fn membership(hub: &Hub, raw_id: &str, topic: &str, join: bool) -> Reply {
    if let Err(e) = TopicName::new(topic) {
        return bad_topic(&Error::InvalidTopic(e));
    }
    let Some(session) = session_id(raw_id).and_then(|id| hub.session(id.as_str())) else {
        return Reply::text(StatusCode::NOT_FOUND, "no such session");
    };
    let done = if join {
        session.join(topic)
    } else {
        session.leave(topic)
    };
    match done {
        Ok(_) => Reply::text(StatusCode::NO_CONTENT, ""),
        Err(Error::TopicRefused) => Reply::text(
            StatusCode::FORBIDDEN,
            "the topic is not granted to the session's user",
        ),
        Err(e @ Error::TooManyTopics { .. }) => Reply::text(StatusCode::CONFLICT, &e.to_string()),
        Err(e) => failed(&e),
    }
}

/// A count of sessions reached, as a plain number.
fn counted(sent: Result<usize, Error>) -> Reply {
    match sent {
        Ok(n) => Reply::text(StatusCode::OK, &n.to_string()),
        Err(e @ Error::InvalidField(_)) => Reply::text(StatusCode::BAD_REQUEST, &e.to_string()),
        Err(e) => failed(&e),
    }
}

fn failed(e: &Error) -> Reply {
    match e {
        Error::Closed | Error::NotConnected => {
            Reply::text(StatusCode::NOT_FOUND, "the session has ended")
        }
        e => Reply::text(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

fn bad_topic(e: &Error) -> Reply {
    Reply::text(StatusCode::BAD_REQUEST, &e.to_string())
}

fn json(value: &serde_json::Value) -> Reply {
    Reply::json(value.to_string().into_bytes())
}
