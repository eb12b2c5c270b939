//! Topics and users: routing, membership, resume across groups, the rule, presence, bounds.

use std::sync::Mutex;

use super::*;
use crate::decode::{Decoder, Item};
use crate::history::{History, LogBounds, MemoryHistory, Target};
use crate::lifecycle::{Continuity, SessionEvent};
use crate::relay::{Recipient, Relayed};
use crate::topic::Membership;

const GRACE: Duration = Duration::from_secs(10);

/// A tab: its session, its outlet and what its browser parsed so far.
struct Tab {
    session: Session,
    outlet: Outlet,
    decoder: Decoder,
    topics: Vec<TopicName>,
    gaps: Vec<TopicName>,
    continuity: Continuity,
}

impl Tab {
    /// The data of every event dispatched since the last call.
    fn read(&mut self, now: Instant) -> Vec<String> {
        let (_, bytes) = drain(&mut self.outlet, now);
        self.decoder.feed(&bytes).expect("well-formed");
        let mut data = Vec::new();
        while let Some(item) = self.decoder.poll_item() {
            if let Item::Event(e) = item {
                data.push(e.data);
            }
        }
        data
    }

    fn last_id(&self) -> String {
        self.decoder.last_event_id().to_owned()
    }

    fn topics(&self) -> Vec<&str> {
        self.topics.iter().map(TopicName::as_str).collect()
    }

    fn gaps(&self) -> Vec<&str> {
        self.gaps.iter().map(TopicName::as_str).collect()
    }
}

fn request<'a>(target: &'a str, user: Option<&'a str>, last: Option<&'a str>) -> Request<'a> {
    let mut req = Request::new(b"GET", target.as_bytes(), HttpVersion::Http11);
    req.header(b"accept", b"text/event-stream");
    if let Some(user) = user {
        req.principal(user.as_bytes());
    }
    if let Some(last) = last {
        req.header(b"last-event-id", last.as_bytes());
    }
    req
}

/// Opens `target` as `user`, coming back from `last` when given.
fn open(hub: &Hub, target: &str, user: Option<&str>, last: Option<&str>, now: Instant) -> Tab {
    match hub.decide(&request(target, user, last), now) {
        Decision::Accept(a) => Tab {
            session: a.session,
            outlet: a.outlet,
            decoder: Decoder::new(),
            topics: a.topics,
            gaps: a.topic_gaps,
            continuity: a.continuity,
        },
        other => panic!("expected accept: {other:?}"),
    }
}

/// The demo's rule: every topic, but `staff-*` for the user `staff` alone.
fn demo_rule(topic: &TopicName, user: Option<&[u8]>) -> bool {
    !topic.as_str().starts_with("staff-") || user == Some(b"staff")
}

fn plain() -> Hub {
    unwindowed()
        .keep_alive(None)
        .topic_rule(demo_rule)
        .build(Instant::now)
}

fn resumable(bounds: LogBounds) -> Hub {
    unwindowed()
        .keep_alive(None)
        .resume(ResumeConfig::new(GRACE).bounds(bounds))
        .topic_rule(demo_rule)
        .build(Instant::now)
}

fn ids(tabs: &[&Tab]) -> Vec<SessionId> {
    let mut ids: Vec<SessionId> = tabs.iter().map(|t| t.session.id().clone()).collect();
    ids.sort();
    ids
}

#[test]
fn a_publish_reaches_the_members_only() {
    let t0 = Instant::now();
    let hub = plain();
    let mut a = open(&hub, "/e?topic=red&topic=blue", Some("ann"), None, t0);
    let mut b = open(&hub, "/e?topic=red", Some("bob"), None, t0);
    let mut c = open(&hub, "/e", None, None, t0);
    assert_eq!(a.topics(), ["blue", "red"]);
    assert_eq!(b.topics(), ["red"]);
    assert!(c.topics.is_empty());
    for tab in [&mut a, &mut b, &mut c] {
        tab.read(t0);
    }
    let red = hub.topic("red").expect("valid");
    assert_eq!(red.send("r1"), Ok(2));
    assert_eq!(hub.topic("blue").expect("valid").send("b1"), Ok(1));
    assert_eq!(hub.topic("green").expect("valid").send("g1"), Ok(0));
    assert_eq!(a.read(t0), ["r1", "b1"]);
    assert_eq!(b.read(t0), ["r1"]);
    assert!(c.read(t0).is_empty());
    assert_eq!(red.members(), ids(&[&a, &b]));
    assert_eq!(red.users(), [Principal::new("ann"), Principal::new("bob")]);

    // Joined and left by the application.
    assert_eq!(c.session.join("red"), Ok(true));
    assert_eq!(c.session.join("red"), Ok(false));
    assert_eq!(a.session.leave("red"), Ok(true));
    assert_eq!(a.session.leave("red"), Ok(false));
    assert_eq!(red.send("r2"), Ok(2));
    assert!(a.read(t0).is_empty());
    assert_eq!(b.read(t0), ["r2"]);
    assert_eq!(c.read(t0), ["r2"]);
    assert_eq!(red.users(), [Principal::new("bob")], "c has no user");

    // A session that ends leaves its topics.
    drop(b.outlet);
    assert_eq!(red.members(), ids(&[&c]));
    assert_eq!(red.send("r3"), Ok(1));
}

#[test]
fn a_user_is_every_session_of_its_principal() {
    let t0 = Instant::now();
    let hub = plain();
    let mut a1 = open(&hub, "/e", Some("ann"), None, t0);
    let mut a2 = open(&hub, "/e", Some("ann"), None, t0);
    let mut b = open(&hub, "/e", Some("bob"), None, t0);
    for tab in [&mut a1, &mut a2, &mut b] {
        tab.read(t0);
    }
    let ann = hub.user("ann");
    assert_eq!(ann.emit("notice", "hi ann"), Ok(2));
    assert_eq!(hub.user("nobody").send("x"), Ok(0));
    assert_eq!(a1.read(t0), ["hi ann"]);
    assert_eq!(a2.read(t0), ["hi ann"]);
    assert!(b.read(t0).is_empty());
    assert_eq!(ann.sessions(), ids(&[&a1, &a2]));
    assert_eq!(a1.session.user(), Some(Principal::new("ann")));

    // Closed everywhere: each id is marked, so each tab's reconnect is answered 204.
    assert_eq!(ann.close(), Ok(2));
    assert!(a1.session.is_closed() && a2.session.is_closed() && !b.session.is_closed());
    for tab in [&a1, &a2] {
        let target = format!("/e?id={}", tab.session.id());
        assert!(matches!(
            hub.decide(&request(&target, Some("ann"), None), t0),
            Decision::NoContent { .. }
        ));
    }
}

#[test]
fn bad_topics_are_refused_with_a_reason() {
    let t0 = Instant::now();
    let hub = unwindowed().max_topics(2).build(Instant::now);
    for target in [
        "/e?topic=a%20b",
        "/e?topic=",
        "/e?topic={x}",
        "/e?topic=a&topic=b&topic=c",
    ] {
        let decision = hub.decide(&request(target, None, None), t0);
        assert!(
            matches!(decision, Decision::BadRequest(_)),
            "{target}: {decision:?}"
        );
    }
    let long = format!("/e?topic={}", "x".repeat(65));
    let Decision::BadRequest(why) = hub.decide(&request(&long, None, None), t0) else {
        panic!("400")
    };
    assert!(why.to_string().contains("65 bytes"), "{why}");
    // Repeats are one topic; without a rule nothing a tab asks for is granted.
    let tab = open(&hub, "/e?topic=a&topic=a&topic=b", None, None, t0);
    assert!(tab.topics.is_empty());
    assert!(matches!(
        tab.session.join("a b"),
        Err(Error::InvalidTopic(_))
    ));
    assert!(matches!(hub.topic("{x}"), Err(Error::InvalidTopic(_))));
    assert_eq!(tab.session.join("a"), Ok(true));
    assert_eq!(tab.session.join("b"), Ok(true));
    assert_eq!(
        tab.session.join("c"),
        Err(Error::TooManyTopics { limit: 2 })
    );
    assert_eq!(
        tab.session.topics(),
        [TopicName::new("a").unwrap(), TopicName::new("b").unwrap()]
    );
}

#[test]
fn the_rule_decides_at_accept_and_at_join() {
    let t0 = Instant::now();
    let hub = plain();
    let ann = open(
        &hub,
        "/e?topic=staff-room&topic=lobby",
        Some("ann"),
        None,
        t0,
    );
    assert_eq!(ann.topics(), ["lobby"], "asked for, not granted: left out");
    assert_eq!(ann.session.join("staff-room"), Err(Error::TopicRefused));
    let staff = open(&hub, "/e?topic=staff-room", Some("staff"), None, t0);
    assert_eq!(staff.topics(), ["staff-room"]);
    assert_eq!(hub.topic("staff-room").unwrap().members(), ids(&[&staff]));
}

#[test]
fn a_tab_resumes_exactly_across_its_topics_its_user_and_its_own() {
    let t0 = Instant::now();
    let hub = resumable(LogBounds::default());
    let mut a = open(&hub, "/e?topic=red&topic=blue", Some("ann"), None, t0);
    let mut b = open(&hub, "/e?topic=red", Some("bob"), None, t0);
    a.read(t0);
    b.read(t0);
    let (red, blue) = (hub.topic("red").unwrap(), hub.topic("blue").unwrap());
    red.send("r1").unwrap();
    assert_eq!(a.read(t0), ["r1"]);
    let last = a.last_id();
    drop(a.outlet); // a's tab is away
    red.send("r2").unwrap();
    a.session.send("own").unwrap();
    blue.send("b1").unwrap();
    hub.user("ann").send("to ann").unwrap();
    hub.broadcast(&Event::new().data("all"));
    hub.user("bob").send("to bob").unwrap();
    hub.topic("green").unwrap().send("g1").unwrap();
    let target = "/e?topic=red&topic=blue".to_owned();
    let mut back = open(&hub, &target, Some("ann"), Some(&last), t0);
    assert_eq!(back.continuity, Continuity::Resumed { replayed: 5 });
    assert_eq!(back.read(t0), ["r2", "own", "b1", "to ann", "all"]);
    assert!(back.gaps.is_empty());
    assert_eq!(back.topics(), ["blue", "red"]);
    assert_eq!(b.read(t0), ["r1", "r2", "all", "to bob"]);
}

#[test]
fn joins_and_leaves_while_away_decide_what_is_replayed() {
    let t0 = Instant::now();
    let hub = resumable(LogBounds::default());
    let mut a = open(&hub, "/e?topic=red", None, None, t0);
    a.read(t0);
    let last = a.last_id();
    let session = a.session.clone();
    drop(a.outlet);
    let (red, blue) = (hub.topic("red").unwrap(), hub.topic("blue").unwrap());
    let _keeps_blue = open(&hub, "/e?topic=blue", None, None, t0);
    blue.send("b-before-join").unwrap();
    red.send("r-while-member").unwrap();
    assert_eq!(session.join("blue"), Ok(true), "joined while detached");
    blue.send("b-after-join").unwrap();
    assert_eq!(session.leave("red"), Ok(true), "left while detached");
    red.send("r-after-leave").unwrap();
    let mut back = open(&hub, "/e", None, Some(&last), t0);
    assert_eq!(back.read(t0), ["r-while-member", "b-after-join"]);
    assert_eq!(back.topics(), ["blue"]);
    // Coming back again from the same position replays the same (a stretch is kept).
    drop(back.outlet);
    let mut again = open(&hub, "/e", None, Some(&last), t0);
    assert_eq!(again.read(t0), ["r-while-member", "b-after-join"]);
}

#[test]
fn a_revoked_topic_is_left_and_withheld_on_resume() {
    let t0 = Instant::now();
    let hub = resumable(LogBounds::default());
    let mut tab = open(
        &hub,
        "/e?topic=staff-room&topic=lobby",
        Some("staff"),
        None,
        t0,
    );
    assert_eq!(tab.topics(), ["lobby", "staff-room"]);
    tab.read(t0);
    let last = tab.last_id();
    drop(tab.outlet);
    hub.topic("staff-room").unwrap().send("secret").unwrap();
    hub.topic("lobby").unwrap().send("hello").unwrap();
    // The tab comes back as someone else (the cookie changed): staff-room is not granted.
    let mut back = open(
        &hub,
        "/e?topic=staff-room&topic=lobby",
        Some("ann"),
        Some(&last),
        t0,
    );
    assert_eq!(back.topics(), ["lobby"]);
    assert!(back.continuity.is_resumed(), "{:?}", back.continuity);
    assert!(back.gaps.is_empty(), "withheld, not a gap");
    assert_eq!(back.read(t0), ["hello"]);
    assert!(hub.topic("staff-room").unwrap().is_empty());
}

#[test]
fn a_topic_that_overflowed_is_reported_while_the_rest_replays() {
    let t0 = Instant::now();
    let bounds = LogBounds {
        max_events: 3,
        max_bytes: 1 << 20,
    };
    let hub = resumable(bounds);
    let mut a = open(&hub, "/e?topic=busy&topic=calm", None, None, t0);
    a.read(t0);
    let last = a.last_id();
    drop(a.outlet);
    let busy = hub.topic("busy").unwrap();
    for i in 0..5 {
        busy.send(format!("busy {i}")).unwrap();
    }
    hub.topic("calm").unwrap().send("calm").unwrap();
    a.session.send("own").unwrap();
    let mut back = open(&hub, "/e", None, Some(&last), t0);
    assert_eq!(back.gaps(), ["busy"]);
    assert_eq!(back.continuity, Continuity::Resumed { replayed: 2 });
    assert_eq!(back.read(t0), ["calm", "own"]);
    // Live again: busy's next publish reaches the tab.
    busy.send("busy 5").unwrap();
    assert_eq!(back.read(t0), ["busy 5"]);
}

#[test]
fn a_user_send_reaches_a_detached_tab_but_not_a_later_one() {
    let t0 = Instant::now();
    let hub = resumable(LogBounds::default());
    let mut a = open(&hub, "/e", Some("ann"), None, t0);
    a.read(t0);
    let last = a.last_id();
    drop(a.outlet);
    assert_eq!(
        hub.user("ann").send("while away"),
        Ok(1),
        "counts the detached session"
    );
    let mut later = open(&hub, "/e", Some("ann"), None, t0);
    let mut back = open(&hub, "/e", Some("ann"), Some(&last), t0);
    assert_eq!(back.read(t0), ["while away"]);
    assert!(later.read(t0).is_empty());
    assert_eq!(hub.user("ann").sessions(), ids(&[&back, &later]));
}

#[test]
fn groups_and_their_logs_go_with_their_last_member() {
    let t0 = Instant::now();
    let clock = ManualClock::starting_at(t0);
    let hub = unwindowed()
        .keep_alive(None)
        .resume(ResumeConfig::new(GRACE))
        .topic_rule(demo_rule)
        .build(clock.clone());
    let a = open(&hub, "/e?topic=red", Some("ann"), None, t0);
    hub.topic("red").unwrap().send("r").unwrap();
    hub.user("ann").send("u").unwrap();
    assert_eq!(hub.stats().log.groups, 2);
    a.session.leave("red").unwrap();
    assert_eq!(
        hub.stats().log.groups,
        2,
        "red's stretch is kept for a's tab"
    );
    a.session.close();
    drop(a.outlet);
    assert_eq!(hub.stats().log.groups, 0);
    assert_eq!(hub.stats().log.events, 0);
    // A publish to a topic nobody is in logs nothing.
    assert_eq!(hub.topic("red").unwrap().send("r").unwrap(), 0);
    assert_eq!(hub.stats().log.events, 0);
}

#[test]
fn a_session_keeps_a_bounded_past() {
    let t0 = Instant::now();
    let hub = unwindowed()
        .keep_alive(None)
        .resume(ResumeConfig::new(GRACE))
        .max_topics(2)
        .build(Instant::now);
    let mut a = open(&hub, "/e", None, None, t0);
    a.read(t0);
    let last = a.last_id();
    let _other = open(&hub, "/e", None, None, t0);
    for round in 0..4 {
        let name = format!("t{round}");
        a.session.join(&name).unwrap();
        hub.topic(&name).unwrap().send(name.clone()).unwrap();
        a.session.leave(&name).unwrap();
    }
    // Four stretches, two kept: the tab's position is before the ones dropped, so its
    // resume is a gap rather than a replay that silently misses t0 and t1.
    drop(a.outlet);
    let back = open(&hub, "/e", None, Some(&last), t0);
    assert!(
        matches!(back.continuity, Continuity::Gap(_)),
        "{:?}",
        back.continuity
    );
}

#[test]
fn the_observer_hears_joins_and_leaves() {
    let t0 = Instant::now();
    let heard = Arc::new(Mutex::new(Vec::new()));
    let log = heard.clone();
    let hub = unwindowed()
        .keep_alive(None)
        .topic_rule(demo_rule)
        .observe(move |e| {
            let line = match e {
                SessionEvent::Joined { topic, .. } => format!("joined {topic}"),
                SessionEvent::Left { topic, .. } => format!("left {topic}"),
                SessionEvent::Ended { .. } => "ended".to_owned(),
                _ => return,
            };
            log.lock().unwrap().push(line);
        })
        .build(Instant::now);
    let a = open(&hub, "/e?topic=red", None, None, t0);
    a.session.join("blue").unwrap();
    a.session.leave("red").unwrap();
    a.session.join("green").unwrap();
    drop(a.outlet);
    assert_eq!(
        *heard.lock().unwrap(),
        [
            "joined red",
            "joined blue",
            "left red",
            "joined green",
            "ended",
            "left blue",
            "left green"
        ]
    );
}

#[test]
fn concurrent_publishers_give_every_member_one_order() {
    let t0 = Instant::now();
    let hub = plain();
    let mut tabs: Vec<Tab> = (0..3)
        .map(|_| open(&hub, "/e?topic=room", None, None, t0))
        .collect();
    for tab in &mut tabs {
        tab.read(t0);
    }
    let publishers: Vec<_> = (0..2)
        .map(|p| {
            let room = hub.topic("room").unwrap();
            std::thread::spawn(move || {
                for i in 0..200 {
                    room.send(format!("{p}-{i}")).unwrap();
                }
            })
        })
        .collect();
    for p in publishers {
        p.join().unwrap();
    }
    let orders: Vec<Vec<String>> = tabs.iter_mut().map(|t| t.read(t0)).collect();
    assert_eq!(orders[0].len(), 400);
    assert_eq!(orders[0], orders[1]);
    assert_eq!(orders[0], orders[2]);
}

/// A hub in relay and resume mode, its port, and what it queued for the relay.
fn relayed() -> (Hub, RelayPort) {
    let hub = unwindowed()
        .keep_alive(None)
        .resume(ResumeConfig::new(GRACE))
        .relay(crate::relay::RelayConfig::default())
        .topic_rule(demo_rule)
        .build(Instant::now);
    let port = RelayPort::claim(&hub).expect("relay mode");
    (hub, port)
}

fn outbound(port: &RelayPort) -> Vec<Relayed> {
    let mut out = Vec::new();
    let _ = port.poll_outbound(&mut Context::from_waker(Waker::noop()), &mut out);
    out
}

#[test]
fn in_relay_mode_joins_and_publishes_go_through_the_relay() {
    let t0 = Instant::now();
    let (hub, port) = relayed();
    let mut tab = open(&hub, "/e?topic=red&topic=staff-x", Some("ann"), None, t0);
    tab.read(t0);
    let id = tab.session.id().clone();
    let red = TopicName::new("red").unwrap();
    assert_eq!(tab.topics(), ["red"], "granted, joining once numbered");
    assert!(
        tab.session.topics().is_empty(),
        "not a member until the relay numbers it"
    );
    let items = outbound(&port);
    assert!(
        matches!(&items[..], [Relayed::Join { id: i, topic }] if i == &id && topic == &red),
        "{items:?}"
    );
    // The relay numbered the join 5: a member from then on.
    assert!(port.joined(5, &id, &red));
    assert!(!port.joined(5, &id, &red), "applied once");
    assert_eq!(tab.session.topics(), std::slice::from_ref(&red));
    // A publish goes to the relay, and comes back numbered, to the members here.
    assert_eq!(
        hub.topic("red").unwrap().send("r1"),
        Ok(1),
        "this node's members"
    );
    let items = outbound(&port);
    let [
        Relayed::Event {
            to: Recipient::Topic(to),
            frame,
        },
    ] = &items[..]
    else {
        panic!("{items:?}")
    };
    assert_eq!(to, &red);
    assert_eq!(
        port.deliver(7, &Recipient::Topic(red.clone()), frame.clone()),
        1
    );
    assert_eq!(tab.read(t0), ["r1"]);
    // A user send, the same way; a user close closes here and goes to the other nodes.
    assert_eq!(hub.user("ann").send("u1"), Ok(1));
    let items = outbound(&port);
    assert!(matches!(
        &items[..],
        [Relayed::Event {
            to: Recipient::User(_),
            ..
        }]
    ));
    // Left, numbered: the stretch (events after 5, up to 7) stays replayable.
    assert_eq!(tab.session.leave("red"), Ok(true));
    let items = outbound(&port);
    assert!(
        matches!(&items[..], [Relayed::Leave { keep: true, .. }]),
        "{items:?}"
    );
    assert!(port.left(&id, &red, 7, true));
    assert!(tab.session.topics().is_empty());
    assert_eq!(hub.user("ann").close(), Ok(1));
    let items = outbound(&port);
    assert!(
        items
            .iter()
            .any(|i| matches!(i, Relayed::CloseUser { user } if user.as_bytes() == b"ann")),
        "{items:?}"
    );
}

#[test]
fn in_relay_mode_a_session_from_another_node_takes_the_stores_memberships() {
    let t0 = Instant::now();
    let (hub, port) = relayed();
    let red = TopicName::new("red").unwrap();
    // A delivery for red comes before the session that moved here is accepted.
    let frame = Event::new().data("r2").encode();
    assert_eq!(port.deliver(9, &Recipient::Topic(red.clone()), frame), 0);
    assert_eq!(hub.stats().log.groups, 1, "kept for whoever claims it");
    // The store answers: the session was in red since 4, and in blue from 2 to 6; its
    // logs hold r1 (red, 5) and b1 (blue, 6), fetched up to 8.
    let id = SessionId::parse(b"moved", 128).unwrap();
    let epoch = port.log_epoch().unwrap();
    let mut log = MemoryHistory::new(epoch, LogBounds::default(), usize::MAX);
    let blue = TopicName::new("blue").unwrap();
    log.append_at(Target::Topic(&red), 5, &Event::new().data("r1").encode());
    log.append_at(Target::Topic(&blue), 6, &Event::new().data("b1").encode());
    let fetched = crate::Fetched {
        log,
        topics: vec![
            Membership {
                topic: red.clone(),
                joined: 4,
                left: None,
            },
            Membership {
                topic: blue.clone(),
                joined: 2,
                left: Some(6),
            },
        ],
        user: None,
    };
    let last = crate::position::token(&id, &crate::Cursor::new(epoch, 3));
    let req = request("/e", None, Some(&last));
    let offer = hub.offer(&req).unwrap();
    let mut answers = hub.answer(&offer.lookup(), t0);
    answers.history = Some(Ok(fetched));
    let Decision::Accept(a) = hub.accept(offer, answers, t0) else {
        panic!("accepted")
    };
    assert_eq!(a.continuity, Continuity::Resumed { replayed: 3 });
    assert_eq!(a.topics, std::slice::from_ref(&red));
    let mut tab = Tab {
        session: a.session,
        outlet: a.outlet,
        decoder: Decoder::new(),
        topics: a.topics,
        gaps: a.topic_gaps,
        continuity: a.continuity,
    };
    assert_eq!(
        tab.read(t0),
        ["r1", "b1", "r2"],
        "fetched, then what came here first"
    );
    assert_eq!(hub.topic("red").unwrap().members(), [id]);
}
