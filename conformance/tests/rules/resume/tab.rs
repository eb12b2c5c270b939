//! A tab as resume mode sees it: its stream read up to `connect`, the positions in its event
//! ids (read from the wire, independently of `sse_proto::Position`), how it loses its stream
//! and how it comes back.

use std::thread;
use std::time::{Duration, Instant};

use sse_conformance::{Client, Demo, EventStream, percent_encode};
pub(crate) use sse_conformance::{Position, to_base36};
use sse_proto::MessageEvent;

use crate::rules::{connect_data, post};

/// The position in `event_id`, which must be `<id>~<epoch>.<seq>[.<shard><seq>]…`.
pub(crate) fn position_of(id: &str, event_id: &str) -> Position {
    Position::parse(id, event_id)
        .unwrap_or_else(|| panic!("event id {event_id:?} is not `{id}~<epoch>.<seq>…`"))
}

/// Checks that every event carries its own id of session `id` with a position past `after`
/// and past the one before it; returns the last position.
pub(crate) fn assert_positions_increase(
    id: &str,
    after: Position,
    events: &[MessageEvent],
) -> Position {
    events.iter().fold(after, |before, e| {
        let at = position_of(id, &e.last_event_id);
        assert!(
            at > before,
            "{:?} ({}) is not past {before:?}",
            e.data,
            e.last_event_id
        );
        at
    })
}

/// The `(event, data)` pairs of `events`.
pub(crate) fn names_and_data(events: &[MessageEvent]) -> Vec<(&str, &str)> {
    events
        .iter()
        .map(|e| (e.event.as_str(), e.data.as_str()))
        .collect()
}

/// An accepted stream, read up to its `connect` event.
pub(crate) struct Tab {
    pub(crate) stream: EventStream,
    /// The session id, as `connect` gave it.
    pub(crate) id: String,
    /// Whether `connect` said the session was resumed.
    pub(crate) resumed: bool,
}

impl Tab {
    pub(crate) fn open(demo: &Demo, target: &str, headers: &[(&str, &[u8])]) -> Tab {
        let mut stream = demo.events(target, headers).unwrap();
        assert_eq!(stream.head.status, 200, "GET {target} {headers:?}");
        let (id, resumed) = connect_data(&stream.next_named("connect").unwrap().data);
        Tab {
            stream,
            id,
            resumed,
        }
    }

    /// The events before `connect`: a replay.
    pub(crate) fn replayed(&self) -> Vec<MessageEvent> {
        let events = self.stream.events();
        let connect = events.iter().position(|e| e.event == "connect").unwrap();
        events[..connect].iter().map(|&e| e.clone()).collect()
    }

    /// The events after `connect`: live.
    pub(crate) fn live(&self) -> Vec<MessageEvent> {
        let events = self.stream.events();
        let connect = events.iter().position(|e| e.event == "connect").unwrap();
        events[connect + 1..].iter().map(|&e| e.clone()).collect()
    }

    /// What the tab's `EventSource` would offer if it reconnected now.
    pub(crate) fn last_event_id(&self) -> String {
        self.stream.last_event_id().to_owned()
    }

    /// Waits for the event whose data is `data` and returns it.
    pub(crate) fn wait_data(&mut self, data: &str) -> MessageEvent {
        self.stream
            .wait_for(|s| s.events().iter().any(|e| e.data == data))
            .unwrap();
        let event = self.stream.events().into_iter().find(|e| e.data == data);
        event
            .cloned()
            .unwrap_or_else(|| panic!("no event with data {data:?} on {}", self.id))
    }
}

/// How a tab offers its last event id when it comes back.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Offer {
    /// `Last-Event-ID`, as `EventSource` reconnects.
    Header,
    /// `?id=`, as the demo page does on a reload.
    Query,
}

pub(crate) fn reconnect(demo: &Demo, last_event_id: &str, offer: Offer) -> Tab {
    match offer {
        Offer::Header => Tab::open(
            demo,
            "/events",
            &[("Last-Event-ID", last_event_id.as_bytes())],
        ),
        Offer::Query => Tab::open(
            demo,
            &format!("/events?id={}", percent_encode(last_event_id.as_bytes())),
            &[],
        ),
    }
}

pub(crate) fn session_route(id: &str, action: &str) -> String {
    format!("/sessions/{}/{action}", percent_encode(id.as_bytes()))
}

/// Sends plain messages to one session over a keep-alive connection, for rules that send
/// thousands.
pub(crate) struct Sender {
    client: Client,
    target: String,
}

impl Sender {
    pub(crate) fn new(demo: &Demo, id: &str) -> Sender {
        Sender {
            client: demo.client().unwrap(),
            target: session_route(id, "events"),
        }
    }

    /// The status of `POST /sessions/{id}/events` with `data`.
    pub(crate) fn send(&mut self, data: &str) -> u16 {
        let response = self
            .client
            .request("POST", &self.target, &[], data.as_bytes());
        response.unwrap().head.status
    }
}

/// How a stream ends without closing its session.
#[derive(Debug, Clone, Copy)]
pub(crate) enum End {
    /// `POST /sessions/{id}/drop`.
    Drop,
    /// The client hangs up.
    HangUp,
}

/// Ends the tab's stream and waits until `GET /sessions` no longer lists it.
pub(crate) fn detach(demo: &Demo, mut tab: Tab, end: End) {
    match end {
        End::Drop => {
            assert_eq!(post(demo, &session_route(&tab.id, "drop"), b"").0, 204);
            assert!(
                tab.stream.wait_end(Duration::from_secs(5)).unwrap(),
                "the dropped stream ends"
            );
        }
        End::HangUp => tab.stream.hang_up(),
    }
    let ids = demo
        .wait_sessions(Duration::from_secs(5), |ids| !ids.contains(&tab.id))
        .unwrap();
    assert!(
        !ids.contains(&tab.id),
        "GET /sessions lists only live connections, not the detached {} ({end:?})",
        tab.id
    );
}

/// Polls `ready` every millisecond for at most [`sse_conformance::PATIENCE`].
pub(crate) fn wait_until(mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + sse_conformance::PATIENCE;
    while !ready() {
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(1));
    }
    true
}
