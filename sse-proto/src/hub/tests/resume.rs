//! Resume mode on a fake clock: detach, replay, gaps, expiry, replaced tabs, the observer.

use std::sync::Mutex;

use super::*;
use crate::decode::{Decoder, Item};
use crate::history::LogBounds;
use crate::id::IdSource;
use crate::lifecycle::{Continuity, GapReason, SessionEvent};
use crate::position::{Claimed, Position};

const GRACE: Duration = Duration::from_secs(10);

fn resumable() -> Hub {
    resumable_with(ResumeConfig::new(GRACE))
}

fn resumable_with(config: ResumeConfig) -> Hub {
    unwindowed()
        .keep_alive(None)
        .resume(config)
        .build(Instant::now)
}

/// Connects with `?id=`/`Last-Event-ID` as given; panics unless accepted.
fn attach(hub: &Hub, query: Option<&str>, last: Option<&str>, now: Instant) -> Accepted {
    match try_attach(hub, query, last, now) {
        Decision::Accept(a) => a,
        other => panic!("expected accept: {other:?}"),
    }
}

fn try_attach(hub: &Hub, query: Option<&str>, last: Option<&str>, now: Instant) -> Decision {
    let target = match query {
        Some(q) => format!("/e?id={q}"),
        None => "/e".to_owned(),
    };
    let mut req = Request::new(b"GET", target.as_bytes(), HttpVersion::Http11);
    req.header(b"accept", b"text/event-stream");
    if let Some(last) = last {
        req.header(b"last-event-id", last.as_bytes());
    }
    hub.decide(&req, now)
}

/// What a browser makes of everything the outlet has queued: `(last event id, data)` of
/// each dispatched event, and the last event id at the end.
fn read(
    outlet: &mut Outlet,
    decoder: &mut Decoder,
    now: Instant,
) -> (Vec<(String, String)>, String) {
    let (_, bytes) = drain(outlet, now);
    decoder.feed(&bytes).expect("well-formed");
    let mut events = Vec::new();
    while let Some(item) = decoder.poll_item() {
        if let Item::Event(e) = item {
            events.push((e.last_event_id, e.data));
        }
    }
    (events, decoder.last_event_id().to_owned())
}

fn data(events: &[(String, String)]) -> Vec<&str> {
    events.iter().map(|(_, d)| d.as_str()).collect()
}

#[test]
fn a_dropped_tab_gets_exactly_what_it_missed() {
    let t0 = Instant::now();
    let hub = resumable();
    let a = attach(&hub, None, None, t0);
    assert_eq!(a.continuity, Continuity::New);
    let id = a.session.id().to_string();
    let (session, mut outlet) = (a.session, a.outlet);
    let mut tab = Decoder::new();
    session.send("one").expect("live");
    let (events, last) = read(&mut outlet, &mut tab, t0);
    assert_eq!(data(&events), ["one"]);
    assert!(last.starts_with(&format!("{id}~")), "{last}");
    assert_eq!(events[0].0, last);

    // The connection drops; the session waits.
    drop(outlet);
    assert!(!session.is_closed());
    assert!(!session.is_attached());
    assert_eq!(hub.stats().detached, 1);
    assert!(hub.ids().is_empty());
    session.send("two").expect("logged while detached");
    hub.send_to(
        &id,
        &Event::new().event("named").expect("valid").data("three"),
    )
    .expect("by id too");
    assert_eq!(hub.broadcast(&Event::new().data("four")), 1, "counted");
    assert_eq!(
        session.send_volatile(&Event::new().data("lost")),
        Err(Error::NotConnected)
    );

    let b = attach(&hub, None, Some(&last), t0);
    assert_eq!(b.continuity, Continuity::Resumed { replayed: 3 });
    assert_eq!(b.session.id().as_str(), id);
    let mut outlet = b.outlet;
    session
        .send("five")
        .expect("live again, through the old handle");
    let (events, last) = read(&mut outlet, &mut tab, t0);
    assert_eq!(data(&events), ["two", "three", "four", "five"]);
    // Each carries its own position, increasing.
    let seqs: Vec<u64> = events
        .iter()
        .map(|(eid, _)| {
            let (_, pos) = eid.rsplit_once('~').expect("a position");
            Position::parse(pos.as_bytes()).expect("well-formed").seq
        })
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert_eq!(events.last().map(|e| e.0.as_str()), Some(last.as_str()));

    // Up to date: nothing to replay.
    drop(outlet);
    let c = attach(&hub, None, Some(&last), t0);
    assert_eq!(c.continuity, Continuity::Resumed { replayed: 0 });
    let mut outlet = c.outlet;
    let (events, _) = read(&mut outlet, &mut tab, t0);
    assert!(events.is_empty());
}

#[test]
fn a_reload_offers_its_last_event_id_in_the_query() {
    let t0 = Instant::now();
    let hub = resumable();
    let a = attach(&hub, None, None, t0);
    let mut tab = Decoder::new();
    let (mut outlet, session) = (a.outlet, a.session);
    let (_, stored) = read(&mut outlet, &mut tab, t0);
    drop(outlet);
    session.emit("missed", "while reloading").expect("logged");
    let encoded: String = stored.bytes().map(|b| format!("%{b:02X}")).collect();
    let b = attach(&hub, Some(&encoded), None, t0);
    assert_eq!(b.source, IdSource::Query);
    assert_eq!(b.continuity, Continuity::Resumed { replayed: 1 });
    let mut fresh_page = Decoder::new();
    let mut outlet = b.outlet;
    let (events, _) = read(&mut outlet, &mut fresh_page, t0);
    assert_eq!(data(&events), ["while reloading"]);
}

#[test]
fn gaps_keep_the_id_and_say_why() {
    let t0 = Instant::now();
    let hub = resumable_with(ResumeConfig::new(GRACE).bounds(LogBounds {
        max_events: 2,
        max_bytes: 1 << 20,
    }));
    let a = attach(&hub, None, None, t0);
    let id = a.session.id().to_string();
    let mut tab = Decoder::new();
    let mut outlet = a.outlet;
    let (_, position) = read(&mut outlet, &mut tab, t0);
    drop(outlet);

    let cases = [
        (id.clone(), GapReason::NoPosition),
        (format!("{id}~"), GapReason::InvalidPosition),
        (format!("{id}~1.2.3"), GapReason::InvalidPosition),
        (format!("{id}~0.0"), GapReason::UnknownEpoch),
    ];
    for (offered, reason) in cases {
        let b = attach(&hub, None, Some(&offered), t0);
        assert_eq!(b.continuity, Continuity::Gap(reason), "{offered}");
        assert_eq!(b.session.id().as_str(), id, "identity survives");
        let mut outlet = b.outlet;
        let (events, last) = read(&mut outlet, &mut Decoder::new(), t0);
        assert!(events.is_empty(), "nothing replayed");
        // The preamble moves the tab to the present, exactly.
        assert!(last.starts_with(&format!("{id}~")));
    }
    // From the future: a forged position.
    let (_, pos) = position.rsplit_once('~').expect("a position");
    let epoch = Position::parse(pos.as_bytes()).expect("ours").epoch;
    let forged = format!("{id}~{}", Position::new(epoch, 1_000_000));
    let b = attach(&hub, None, Some(&forged), t0);
    assert_eq!(b.continuity, Continuity::Gap(GapReason::InvalidPosition));
    drop(b);
    // A cursor naming a shard: this hub's stores have one sequence, so it is not theirs.
    let sharded = format!("{position}.31");
    let b = attach(&hub, None, Some(&sharded), t0);
    assert_eq!(b.continuity, Continuity::Gap(GapReason::InvalidPosition));
    assert_eq!(b.session.id().as_str(), id, "identity survives");
    drop(b);

    // Overflow: three events for a log that keeps two.
    for i in 0..3 {
        hub.send_to(&id, &Event::new().data(format!("e{i}")))
            .expect("logged");
    }
    let b = attach(&hub, None, Some(&position), t0);
    assert_eq!(b.continuity, Continuity::Gap(GapReason::Overflow));
}

#[test]
fn detached_sessions_expire_after_the_grace_period() {
    let t0 = Instant::now();
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let hub = unwindowed()
        .keep_alive(None)
        .resume(ResumeConfig::new(GRACE))
        .observe(move |e| seen.lock().expect("not poisoned").push(e.clone()))
        .build(Instant::now);
    let counter = Arc::new(Counter::default());
    let waker = Waker::from(counter.clone());
    let mut cx = Context::from_waker(&waker);
    assert_eq!(hub.poll_timers(&mut cx, t0), None);

    let a = attach(&hub, None, None, t0);
    let id = a.session.id().clone();
    let mut tab = Decoder::new();
    let mut outlet = a.outlet;
    let (_, last) = read(&mut outlet, &mut tab, t0);
    drop(outlet); // detached at the hub's clock, which is `Instant::now()` here
    assert_eq!(
        counter.count(),
        1,
        "the driver learns of the first deadline"
    );
    let deadline = hub.poll_timers(&mut cx, t0).expect("a deadline");
    assert!(deadline >= t0 + GRACE);
    assert_eq!(
        hub.poll_timers(&mut cx, deadline - Duration::from_millis(1)),
        Some(deadline)
    );
    assert!(hub.session(id.as_str()).is_some());
    assert_eq!(hub.poll_timers(&mut cx, deadline), None);
    assert!(hub.session(id.as_str()).is_none());
    assert_eq!(a.session.end_reason(), Some(EndReason::Expired));
    assert_eq!(
        hub.send_to(id.as_str(), &Event::new()),
        Err(Error::NotConnected)
    );
    assert_eq!(a.session.send("late"), Err(Error::Closed));
    assert_eq!(hub.stats(), HubStats::default());

    // The tab comes back late: same id, a gap, and a session that lives again.
    let b = attach(&hub, None, Some(&last), deadline);
    assert_eq!(b.continuity, Continuity::Gap(GapReason::Expired));
    assert_eq!(b.session.id(), &id);
    let log = events.lock().expect("not poisoned").clone();
    assert!(matches!(
        &log[0],
        SessionEvent::Attached {
            continuity: Continuity::New,
            ..
        }
    ));
    assert!(matches!(
        &log[1],
        SessionEvent::Detached {
            reason: EndReason::PeerGone,
            ..
        }
    ));
    assert!(matches!(&log[2], SessionEvent::Expired { .. }));
    assert!(matches!(
        &log[3],
        SessionEvent::Attached {
            continuity: Continuity::Gap(GapReason::Expired),
            ..
        }
    ));
    assert!(log.iter().all(|e| e.id() == &id));
}

#[test]
fn a_session_that_comes_back_in_time_does_not_expire() {
    let t0 = Instant::now();
    let hub = resumable();
    let mut cx = Context::from_waker(Waker::noop());
    let a = attach(&hub, None, None, t0);
    let mut tab = Decoder::new();
    let mut outlet = a.outlet;
    let (_, last) = read(&mut outlet, &mut tab, t0);
    drop(outlet);
    let b = attach(&hub, None, Some(&last), t0);
    assert!(b.continuity.is_resumed());
    assert_eq!(hub.poll_timers(&mut cx, t0 + 2 * GRACE), None);
    assert!(b.session.end_reason().is_none());
    assert!(b.session.is_attached());
}

#[test]
fn closing_a_detached_session_ends_it_and_its_reconnect_gets_204() {
    let t0 = Instant::now();
    let hub = resumable();
    let a = attach(&hub, None, None, t0);
    let id = a.session.id().to_string();
    let mut tab = Decoder::new();
    let mut outlet = a.outlet;
    let (_, last) = read(&mut outlet, &mut tab, t0);
    drop(outlet);
    hub.close(&id).expect("known while detached");
    assert_eq!(a.session.end_reason(), Some(EndReason::Closed));
    assert!(hub.session(&id).is_none());
    assert!(matches!(
        try_attach(&hub, None, Some(&last), t0),
        Decision::NoContent { .. }
    ));
    assert_eq!(hub.close(&id), Err(Error::NotConnected));
}

#[test]
fn a_duplicated_tab_gets_its_own_id_and_neither_loops() {
    let t0 = Instant::now();
    let hub = resumable();
    let a = attach(&hub, None, None, t0);
    let id = a.session.id().clone();
    let mut first = Decoder::new();
    let mut first_out = a.outlet;
    let (_, stored) = read(&mut first_out, &mut first, t0);
    hub.send_to(id.as_str(), &Event::new().data("x"))
        .expect("live");

    // The duplicate starts with a copy of the stored id: it takes the session...
    let b = attach(&hub, Some(&stored), None, t0);
    assert_eq!(b.session.id(), &id);
    assert_eq!(b.continuity, Continuity::Resumed { replayed: 1 });
    // ...and the first tab's stream ends with a fresh id for it.
    let (events, renamed) = read(&mut first_out, &mut first, t0);
    assert!(
        events.is_empty(),
        "the queued event goes to the session, not this tab"
    );
    assert_eq!(first_out.end_reason(), Some(EndReason::Replaced));
    assert!(
        !renamed.contains('~'),
        "a bare id: a new session, {renamed}"
    );
    assert_ne!(renamed, id.as_str());
    assert_eq!(drain(&mut first_out, t0).0, Poll::Ready(None));
    assert!(
        b.session.is_attached(),
        "the old writer ending leaves the new one"
    );

    // Its reconnect is a new session, and takes nothing from the duplicate.
    let c = attach(&hub, None, Some(&renamed), t0);
    assert_eq!(c.continuity, Continuity::New);
    assert_eq!(c.session.id().as_str(), renamed);
    assert!(b.session.is_attached());
    assert_eq!(hub.ids().len(), 2);
}

#[test]
fn a_slow_tab_is_cut_off_and_resumes_what_it_missed() {
    let t0 = Instant::now();
    let hub = unwindowed()
        .keep_alive(None)
        .budget(400)
        .resume(ResumeConfig::new(GRACE))
        .build(Instant::now);
    let a = attach(&hub, None, None, t0);
    let mut tab = Decoder::new();
    let mut outlet = a.outlet;
    let (_, last) = read(&mut outlet, &mut tab, t0);
    let cutoff = outlet.cutoff();
    for i in 0..10 {
        a.session
            .send(format!("{i}:{}", "x".repeat(100)))
            .expect("logged even when cut off");
    }
    assert_eq!(
        cutoff.poll(&mut Context::from_waker(Waker::noop())),
        Poll::Ready(EndReason::TooSlow)
    );
    assert!(!a.session.is_attached(), "detached at once");
    assert!(a.session.end_reason().is_none());
    assert_eq!(drain(&mut outlet, t0).0, Poll::Ready(None));
    let b = attach(&hub, None, Some(&last), t0);
    assert_eq!(b.continuity, Continuity::Resumed { replayed: 10 });
    let mut outlet = b.outlet;
    let (events, _) = read(&mut outlet, &mut tab, t0);
    let got: Vec<String> = events.iter().map(|(_, d)| d[..2].to_owned()).collect();
    let want: Vec<String> = (0..10).map(|i| format!("{i}:")).collect();
    assert_eq!(got, want);
}

#[test]
fn volatile_events_are_delivered_live_and_never_replayed() {
    let t0 = Instant::now();
    let hub = resumable();
    let a = attach(&hub, None, None, t0);
    let mut tab = Decoder::new();
    let mut outlet = a.outlet;
    a.session
        .send_volatile(&Event::new().event("connect").expect("valid").data("hi"))
        .expect("attached");
    assert_eq!(hub.broadcast_volatile(&Event::new().data("tick")), 1);
    let (events, last) = read(&mut outlet, &mut tab, t0);
    assert_eq!(data(&events), ["hi", "tick"]);
    // They carry the preamble's id, which they do not move.
    assert!(events.iter().all(|(eid, _)| *eid == last));
    drop(outlet);
    let b = attach(&hub, None, Some(&last), t0);
    assert_eq!(b.continuity, Continuity::Resumed { replayed: 0 });
    assert_eq!(hub.stats().log.events, 0);
}

#[test]
fn shutdown_ends_detached_sessions_too() {
    let t0 = Instant::now();
    let hub = resumable();
    let a = attach(&hub, None, None, t0);
    let b = attach(&hub, None, None, t0);
    drop(b.outlet);
    assert_eq!(hub.shutdown(), 1);
    assert_eq!(b.session.end_reason(), Some(EndReason::Shutdown));
    assert_eq!(a.session.end_reason(), Some(EndReason::Shutdown));
    drop(a.outlet);
    assert!(hub.is_empty());
}

#[test]
fn broadcasts_to_many_detached_sessions_are_logged_once() {
    let t0 = Instant::now();
    let hub = resumable();
    let mut sessions = Vec::new();
    for _ in 0..100 {
        let a = attach(&hub, None, None, t0);
        drop(a.outlet);
        sessions.push(a.session);
    }
    let payload = bytes::Bytes::from(vec![b'p'; 1024]);
    assert_eq!(hub.broadcast(&Event::new().data(payload)), 100);
    let stats = hub.stats();
    assert_eq!(stats.detached, 100);
    assert_eq!(stats.log.events, 1);
    assert!(stats.log.bytes < 1100, "{stats:?}");
}

#[test]
fn answers_fetched_ahead_of_time_are_merged_with_what_came_since() {
    let t0 = Instant::now();
    let hub = resumable();
    let a = attach(&hub, None, None, t0);
    let mut tab = Decoder::new();
    let mut outlet = a.outlet;
    let (_, last) = read(&mut outlet, &mut tab, t0);
    drop(outlet);
    a.session.send("one").expect("logged");
    let mut req = Request::new(b"GET", b"/e", HttpVersion::Http11);
    req.header(b"accept", b"text/event-stream")
        .header(b"last-event-id", last.as_bytes());
    let Ok(offer) = hub.offer(&req) else {
        panic!("an event stream")
    };
    // A store that answers asynchronously fetched "one"...
    let mut fetched = Vec::new();
    let claim = offer.claim().expect("claimed").clone();
    let Claimed::At(from) = claim.position else {
        panic!("a position")
    };
    let from = from.position();
    lock(&hub.inner.resume.as_ref().expect("resume").history)
        .replay(
            &crate::Scope::session(&claim.session),
            &crate::Cursor::from(from),
            &mut fetched,
        )
        .expect("in the log");
    let mut answers = hub.answer(&offer.lookup(), t0);
    let epoch = from.epoch;
    let fetched = crate::Fetched::events(
        fetched,
        from.seq,
        epoch,
        LogBounds::default(),
        &claim.session,
    );
    answers.history = Some(Ok(fetched));
    // ...and "two" was sent before the hub accepted.
    a.session.send("two").expect("logged");
    let Decision::Accept(b) = hub.accept(offer, answers, t0) else {
        panic!("accepted")
    };
    assert_eq!(b.continuity, Continuity::Resumed { replayed: 2 });
    let mut outlet = b.outlet;
    let (events, _) = read(&mut outlet, &mut tab, t0);
    assert_eq!(data(&events), ["one", "two"]);
}

#[test]
fn an_older_session_ends_before_its_id_is_attached_again() {
    let t0 = Instant::now();
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = log.clone();
    let hub = unwindowed()
        .resume(ResumeConfig::new(GRACE))
        .observe(move |e| seen.lock().expect("not poisoned").push(e.clone()))
        .build(Instant::now);
    let a = attach(&hub, None, None, t0);
    let id = a.session.id().to_string();
    a.session.close(); // its stream still has the preamble to write
    assert!(matches!(
        try_attach(&hub, None, Some(&id), t0),
        Decision::NoContent { .. }
    ));
    let b = attach(&hub, None, Some(&id), t0); // a reload: the mark was consumed
    assert_eq!(a.session.end_reason(), Some(EndReason::Closed));
    drop(a.outlet); // the closed stream's writer finishes
    assert!(b.session.is_attached());
    let kinds: Vec<String> = log
        .lock()
        .expect("not poisoned")
        .iter()
        .map(|e| format!("{e:?}").split(' ').next().unwrap_or("").to_owned())
        .collect();
    assert_eq!(kinds, ["Attached", "Ended", "Attached"]);
}

#[test]
fn a_stale_handle_does_not_close_its_ids_newer_session() {
    let t0 = Instant::now();
    let hub = resumable();
    let mut cx = Context::from_waker(Waker::noop());
    let a = attach(&hub, None, None, t0);
    let id = a.session.id().to_string();
    drop(a.outlet);
    let later = t0 + 2 * GRACE;
    assert_eq!(hub.poll_timers(&mut cx, later), None);
    assert_eq!(a.session.end_reason(), Some(EndReason::Expired));
    let b = attach(&hub, None, Some(&id), later); // comes back: a new session, same id
    drop(b.outlet);
    assert!(!a.session.close(), "that session is over");
    assert!(!b.session.is_closed());
    assert!(matches!(
        try_attach(&hub, None, Some(&id), later),
        Decision::Accept(_)
    ));
    // A handle to the session that holds the id does close it.
    assert!(b.session.close() || b.session.is_closed());
    assert!(matches!(
        try_attach(&hub, None, Some(&id), later),
        Decision::NoContent { .. }
    ));
}

#[test]
fn a_tabs_last_event_id_names_its_session_everywhere() {
    let t0 = Instant::now();
    let hub = resumable();
    let a = attach(&hub, Some("tab"), None, t0);
    let mut outlet = a.outlet;
    let mut tab = Decoder::new();
    a.session.send("one").expect("open");
    let (_, last) = read(&mut outlet, &mut tab, t0);
    // What the browser reports (`lastEventId`) is the id and a position.
    assert!(last.starts_with("tab~") && last.len() > 4, "{last}");
    assert_eq!(
        hub.session(&last).expect("the same session").id().as_str(),
        "tab"
    );
    hub.send_to(&last, &Event::new().data("two"))
        .expect("reached by its last event id");
    assert_eq!(data(&read(&mut outlet, &mut tab, t0).0), ["two"]);
    // A position that is not one names nothing.
    assert!(hub.session("tab~not-a-position").is_none());
    assert_eq!(
        hub.send_to("nobody~1.1", &Event::new().data("x")),
        Err(Error::NotConnected)
    );
    hub.close(&last).expect("closed by its last event id");
    assert!(a.session.is_closed());
    // Without resume mode an id is only ever itself (a `~` is a plain byte of it).
    let plain = unwindowed().keep_alive(None).build(Instant::now);
    let b = attach(&plain, Some("x~1.1"), None, t0);
    assert!(plain.session("x~1.1").is_some() && plain.session("x").is_none());
    drop(b);
}

#[test]
fn a_replaced_stream_ends_no_session() {
    let t0 = Instant::now();
    for resume in [false, true] {
        let events = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = events.clone();
        let mut builder = unwindowed()
            .keep_alive(None)
            .observe(move |e| seen.lock().expect("not poisoned").push(e.clone()));
        if resume {
            builder = builder.resume(ResumeConfig::new(GRACE));
        }
        let hub = builder.build(Instant::now);
        let first = attach(&hub, Some("tab"), None, t0);
        let second = attach(&hub, Some("tab"), None, t0);
        let mut old = first.outlet;
        assert_eq!(old.end_reason(), Some(EndReason::Replaced));
        // The old stream writes its last block and ends; the session goes on.
        let _ = drain(&mut old, t0);
        drop(old);
        assert!(second.session.send("still here").is_ok());
        let events = events.lock().expect("not poisoned");
        assert!(
            events
                .iter()
                .all(|e| !matches!(e, SessionEvent::Ended { .. })),
            "resume {resume}: {events:?}"
        );
        assert_eq!(
            events
                .iter()
                .filter(|e| matches!(e, SessionEvent::Attached { .. }))
                .count(),
            2
        );
    }
}
