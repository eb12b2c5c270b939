//! The `groups` check: arbitrary bytes drive a resumable hub through connects with hostile
//! `?topic=` parameters, joins, leaves and publishes with hostile topic names, user sends and
//! closes, drops, reconnects and time passing. Nothing may panic, a refused name is refused
//! with `InvalidTopic` (never taken for another name), and what the hub holds stays bounded:
//! each session's topics by `max_topics`, the logs by their bounds, the groups by the
//! sessions alive. A first byte of 0x80 or more puts the logs on four shards: a join past
//! what a tab's cursor can name is then refused with `TooManyShards`, and every event id
//! still fits 128 bytes.

use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use bytes::Buf;
use sse_proto::{
    Batch, Decision, Error, Event, HttpVersion, Hub, LogBounds, ManualClock, MemoryHistory, Outlet,
    Placement, Request, ResumeConfig, Session, TopicName,
};

const MAX_TOPICS: usize = 3;
const MAX_EVENTS: usize = 4;
const TABS: usize = 4;

/// Splits off a length-prefixed chunk (the length is the first byte, capped by what is left).
fn chunk(data: &mut &[u8]) -> Vec<u8> {
    let Some((&len, rest)) = data.split_first() else {
        return Vec::new();
    };
    let len = usize::from(len % 80).min(rest.len());
    let (taken, rest) = rest.split_at(len);
    *data = rest;
    taken.to_vec()
}

struct Tab {
    session: Session,
    outlet: Option<Outlet>,
    last: Vec<u8>,
}

/// Reads what the outlet queued; returns the last event id the stream set (never longer
/// than the 128 bytes a client may send back).
fn read(outlet: &mut Outlet, now: Instant) -> Option<Vec<u8>> {
    let mut batch = Batch::new();
    let mut cx = Context::from_waker(Waker::noop());
    let _ = outlet.poll_drain(&mut cx, now, &mut batch);
    let wire = batch.copy_to_bytes(batch.remaining());
    let mut decoder = sse_proto::Decoder::new();
    decoder.feed(&wire).ok()?;
    while decoder.poll_item().is_some() {}
    let last = decoder.last_event_id();
    assert!(last.len() <= 128, "{last}");
    (!last.is_empty()).then(|| last.as_bytes().to_vec())
}

/// See the module's documentation.
pub fn groups(data: &[u8]) {
    let start = Instant::now();
    let clock = ManualClock::starting_at(start);
    let bounds = LogBounds {
        max_events: MAX_EVENTS,
        max_bytes: 1 << 16,
    };
    let shards = if data.first().is_some_and(|&b| b >= 0x80) {
        4
    } else {
        1
    };
    let placement = Placement::new(shards).expect("a shard count");
    let hub = Hub::builder()
        .keep_alive(None)
        .resume(ResumeConfig::new(Duration::from_secs(10)).bounds(bounds))
        .history(MemoryHistory::new(1, bounds, 1 << 20).placed(placement))
        .max_topics(MAX_TOPICS)
        .topic_rule(|topic, user| !topic.as_str().starts_with('x') || user == Some(b"x"))
        .build(clock.clone());
    let mut now = start;
    let mut tabs: Vec<Tab> = Vec::new();
    let mut data = data;
    while let Some((&op, rest)) = data.split_first() {
        data = rest;
        let which = usize::from(op >> 4) % TABS;
        match op % 12 {
            // Connect, with whatever query and user the bytes hold.
            0 | 1 => {
                let query = chunk(&mut data);
                let user = chunk(&mut data);
                let mut target = b"/events?".to_vec();
                target.extend_from_slice(&query);
                let mut req = Request::new(b"GET", &target, HttpVersion::Http11);
                req.header(b"accept", b"text/event-stream");
                if !user.is_empty() {
                    req.principal(&user);
                }
                let last = tabs.get(which).map(|t| t.last.clone()).unwrap_or_default();
                if op % 12 == 1 && !last.is_empty() {
                    req.header(b"last-event-id", &last);
                }
                match hub.decide(&req, now) {
                    Decision::Accept(mut a) => {
                        assert!(a.topics.len() <= MAX_TOPICS, "{:?}", a.topics);
                        if a.continuity == sse_proto::Continuity::New {
                            for t in &a.topics {
                                let asked = req.query_topics().any(|q| q == t.as_str().as_bytes());
                                assert!(asked, "{t} was not asked for");
                            }
                        }
                        let last = read(&mut a.outlet, now).unwrap_or_default();
                        let tab = Tab {
                            session: a.session,
                            outlet: Some(a.outlet),
                            last,
                        };
                        if which < tabs.len() {
                            tabs[which] = tab;
                        } else {
                            tabs.push(tab);
                        }
                    }
                    Decision::BadRequest(_) => {
                        let topics: Vec<&[u8]> = req.query_topics().collect();
                        assert!(
                            topics.len() > MAX_TOPICS
                                || topics.iter().any(|t| TopicName::parse(t).is_err()),
                            "{topics:?}"
                        );
                    }
                    Decision::NoContent { .. } | Decision::NotEventStream(_) => {}
                    Decision::GoAway { .. } => panic!("the hub is not shutting down"),
                }
            }
            // Join or leave a topic named by arbitrary bytes.
            2 | 3 => {
                let name = chunk(&mut data);
                let Some(tab) = tabs.get(which) else { continue };
                let name = String::from_utf8_lossy(&name);
                let done = if op % 12 == 2 {
                    tab.session.join(&*name)
                } else {
                    tab.session.leave(&*name)
                };
                match (done, TopicName::new(&name)) {
                    (Err(Error::InvalidTopic(_)), Err(_)) => {}
                    (Err(Error::InvalidTopic(e)), Ok(_)) => panic!("{name:?} refused: {e}"),
                    (_, Err(e)) => panic!("{name:?} taken though invalid: {e}"),
                    (Ok(_) | Err(Error::TopicRefused | Error::TooManyTopics { .. }), Ok(_)) => {}
                    (Err(Error::TooManyShards { .. }), Ok(_)) => assert!(shards > 1),
                    (Err(Error::Closed), Ok(_)) => assert!(tab.session.is_closed()),
                    (Err(e), Ok(_)) => panic!("{name:?}: {e}"),
                }
                assert!(tab.session.topics().len() <= MAX_TOPICS);
            }
            // Publish to a topic named by arbitrary bytes.
            4 => {
                let name = chunk(&mut data);
                let payload = chunk(&mut data);
                let name = String::from_utf8_lossy(&name);
                match hub.topic(&*name) {
                    Ok(topic) => {
                        let members = topic.len();
                        let sent = topic.send(bytes::Bytes::from(payload));
                        assert_eq!(sent, Ok(members));
                    }
                    Err(Error::InvalidTopic(_)) => assert!(TopicName::new(&name).is_err()),
                    Err(e) => panic!("{e}"),
                }
            }
            5 => {
                let user = chunk(&mut data);
                let _ = hub.user(&user).send_event(&Event::new().data("to a user"));
            }
            6 => {
                let user = chunk(&mut data);
                let user = hub.user(&user);
                let sessions = user.sessions().len();
                assert_eq!(user.close(), Ok(sessions));
            }
            // The tab's connection drops (its position as far as it read).
            7 => {
                if let Some(tab) = tabs.get_mut(which) {
                    if let Some(mut outlet) = tab.outlet.take() {
                        if let Some(last) = read(&mut outlet, now) {
                            tab.last = last;
                        }
                    }
                }
            }
            8 => {
                if let Some(tab) = tabs.get_mut(which) {
                    if let Some(outlet) = &mut tab.outlet {
                        if let Some(last) = read(outlet, now) {
                            tab.last = last;
                        }
                    }
                }
            }
            9 => {
                now += Duration::from_millis(u64::from(op) * 97);
                clock.set(now);
                hub.poll_timers(&mut Context::from_waker(Waker::noop()), now);
            }
            10 => {
                let name = chunk(&mut data);
                if let Ok(topic) = hub.topic(String::from_utf8_lossy(&name)) {
                    assert!(topic.users().len() <= topic.len());
                }
            }
            _ => {
                let _ = hub.broadcast(&Event::new().data("to all"));
            }
        }
        // Bounded whatever the bytes: each group is a topic someone is (or was, with events
        // to replay) in, or a user of a live session.
        let stats = hub.stats();
        let sessions = stats.attached + stats.detached;
        assert!(
            stats.log.groups <= sessions * (2 * MAX_TOPICS + 1),
            "{stats:?}"
        );
        assert!(
            stats.log.events <= (stats.log.groups + stats.log.sessions + 1) * MAX_EVENTS,
            "{stats:?}"
        );
    }
}
