//! The rules of resume mode (`--resume-ms N`, DESIGN.md "Modes past the original").
//!
//! A session outlives its connection for the grace period; every logged event goes out with
//! `id: <session>~<epoch>.<seq>`; a reconnect that offers such an id (`Last-Event-ID`, or a
//! reloaded page's `?id=`) gets exactly the events logged after it, in order, before its
//! `connect` event, or else a gap (`resumed: false`, the same id, nothing replayed), never a
//! wrong range. And one id per tab: two tabs that offer one id settle on two ids.
//!
//! The tab's side (positions, offers, detaching) is in `resume/tab.rs`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use sse_conformance::{Demo, EventStream};
use sse_proto::MessageEvent;

use super::{emit, post, quiet, settled, start};

pub(crate) mod tab;

use tab::{
    End, Offer, Sender, Tab, assert_positions_increase, detach, names_and_data, position_of,
    reconnect, session_route, to_base36, wait_until,
};

/// The grace period of the rules that do not wait for expiry: longer than any rule runs.
pub(crate) const GRACE_MS: &str = "10000";

/// A quiet demo in resume mode with a grace period of `grace_ms`.
pub(crate) fn resumable(bin: &str, grace_ms: &str) -> Demo {
    start(
        bin,
        &[
            "--tick-ms",
            "0",
            "--keep-alive-ms",
            "0",
            "--resume-ms",
            grace_ms,
        ],
    )
}

/// A tab that saw one logged event loses its stream (a server drop, then a hang-up); what is
/// sent to it and broadcast meanwhile comes back on the reconnect, exactly, in order, before
/// `connect`, with increasing positions; then it is live.
pub(crate) fn replay_after_a_drop(bin: &str) {
    let demo = resumable(bin, GRACE_MS);
    replay_after(&demo, End::Drop, Offer::Header);
    replay_after(&demo, End::HangUp, Offer::Header);
}

/// A reloaded page offers its stored last event id with `?id=` (no `Last-Event-ID`).
pub(crate) fn resume_via_query_after_a_reload(bin: &str) {
    let demo = resumable(bin, GRACE_MS);
    replay_after(&demo, End::HangUp, Offer::Query);
}

fn replay_after(demo: &Demo, end: End, offer: Offer) {
    let mut tab = Tab::open(demo, "/events", &[]);
    let id = tab.id.clone();
    assert!(!tab.resumed, "a fresh session is not resumed");
    let preamble = position_of(&id, &tab.last_event_id());
    assert_eq!(emit(demo, &id, Some("note"), b"seen"), 202);
    let seen = tab.wait_data("seen");
    let seen_at = position_of(&id, &seen.last_event_id);
    assert!(
        seen_at > preamble,
        "{seen_at:?} after the preamble's {preamble:?}"
    );
    let last = tab.last_event_id();
    assert_eq!(last, seen.last_event_id);
    detach(demo, tab, end);

    assert_eq!(
        emit(demo, &id, Some("note"), b"missed 1"),
        202,
        "a send to a detached session is queued"
    );
    assert_eq!(
        post(demo, "/broadcast?event=news", b"missed 2"),
        (200, "1".to_owned()),
        "a broadcast counts the detached session"
    );
    assert_eq!(emit(demo, &id, None, b"missed 3"), 202);

    let mut back = reconnect(demo, &last, offer);
    assert_eq!(
        (back.id.as_str(), back.resumed),
        (id.as_str(), true),
        "{end:?}, offered by {offer:?}"
    );
    let wire = String::from_utf8_lossy(&back.stream.raw).into_owned();
    let preamble = format!("retry: {}\nid: {last}\n\n", back.stream.retries()[0]);
    assert!(
        wire.starts_with(&preamble),
        "the preamble sets the offered id (a stream cut during the replay comes back from \
         where the tab really is): {wire}"
    );
    let replayed = back.replayed();
    // Exactly the missed events, in order, before `connect` (on several shards, the
    // broadcast may come anywhere among the session's own sends).
    super::in_log_order(
        &names_and_data(&replayed),
        &[
            ("note", "missed 1"),
            ("news", "missed 2"),
            ("message", "missed 3"),
        ],
        &[
            &[("note", "missed 1"), ("message", "missed 3")],
            &[("news", "missed 2")],
        ],
    );
    let replayed_to = assert_positions_increase(&id, seen_at, &replayed);
    assert!(back.live().is_empty(), "{wire}");
    let connect = back.stream.next_named("connect").unwrap();
    assert_eq!(
        connect.last_event_id, replayed[2].last_event_id,
        "`connect` is volatile: it moves no position"
    );

    assert_eq!(emit(demo, &id, Some("note"), b"live"), 202);
    let live = back.wait_data("live");
    assert!(position_of(&id, &live.last_event_id) > replayed_to);
    assert!(settled(
        || demo.sessions().unwrap() == std::slice::from_ref(&id)
    ));
    // Closed, so that a later run on this demo counts its own session only.
    assert_eq!(post(demo, &session_route(&id, "close"), b"").0, 204);
    assert!(back.stream.wait_end(Duration::from_secs(5)).unwrap());
}

/// Past the grace period a detached session is gone: sends get 404, and the reconnect keeps
/// the id with `resumed: false` and nothing replayed.
pub(crate) fn expiry_gives_404_and_resumed_false(bin: &str) {
    const GRACE: Duration = Duration::from_millis(300);
    let demo = resumable(bin, "300");
    let mut tab = Tab::open(&demo, "/events", &[]);
    let id = tab.id.clone();
    assert_eq!(emit(&demo, &id, Some("note"), b"seen"), 202);
    tab.wait_data("seen");
    let last = tab.last_event_id();
    let dropped = Instant::now();
    detach(&demo, tab, End::Drop);
    assert_eq!(
        emit(&demo, &id, Some("note"), b"missed"),
        202,
        "detached, within the grace period"
    );
    let expired = loop {
        let status = emit(&demo, &id, Some("probe"), b"probe");
        let waited = dropped.elapsed();
        match status {
            202 if waited < Duration::from_secs(3) => thread::sleep(Duration::from_millis(20)),
            404 => break waited,
            other => panic!("a send {waited:?} after the drop: {other}, not 202 then 404"),
        }
    };
    assert!(
        expired >= GRACE,
        "expired {expired:?} after the drop, before its grace period"
    );
    assert_eq!(post(&demo, "/broadcast", b"x"), (200, "0".to_owned()));
    assert_eq!(post(&demo, &session_route(&id, "drop"), b"").0, 404);
    assert_eq!(post(&demo, &session_route(&id, "close"), b"").0, 404);

    let back = reconnect(&demo, &last, Offer::Header);
    assert_eq!((back.id.as_str(), back.resumed), (id.as_str(), false));
    assert!(back.replayed().is_empty(), "{:?}", back.replayed());
}

/// A detached session whose log overflows (16 MiB queued against the default 1 MiB log) comes
/// back as a gap: `resumed: false`, the same id, nothing replayed. And the log really is
/// bounded: the demo's memory does not grow with what was queued.
pub(crate) fn log_overflow_is_a_gap_and_memory_stays_bounded(bin: &str) {
    const EVENTS: usize = 128;
    const SIZE: usize = 128 * 1024; // 16 MiB in all, 16 times the log's 1 MiB
    let demo = resumable(bin, GRACE_MS);
    let tab = Tab::open(&demo, "/events", &[]);
    let id = tab.id.clone();
    let last = tab.last_event_id();
    detach(&demo, tab, End::Drop);

    let before = demo.rss_kib();
    let mut peak = 0;
    for i in 0..EVENTS {
        let mut body = format!("{i:08}").into_bytes();
        body.resize(SIZE, b'x');
        assert_eq!(emit(&demo, &id, Some("bulk"), &body), 202, "event {i}");
        peak = peak.max(demo.rss_kib().unwrap_or(0));
    }
    let mut back = reconnect(&demo, &last, Offer::Header);
    assert_eq!(
        (back.id.as_str(), back.resumed),
        (id.as_str(), false),
        "an overflowed log is a gap"
    );
    assert!(back.replayed().is_empty(), "nothing of an overflowed log");
    // A log that kept everything would hold 16 MiB (the RSS then grows by about 16.5 MiB).
    // A bounded one holds 1 MiB; the rest is request buffers and allocator slack (about
    // 2 MiB in all on the three demos): 8 MiB sits well between the two.
    if let (Some(before), true) = (before, peak > 0) {
        let growth = peak.saturating_sub(before);
        assert!(
            growth < 8 * 1024,
            "RSS grew by {growth} KiB while 16 MiB were queued to a 1 MiB log"
        );
    }
    // The gap is over: from here the session resumes again.
    assert_eq!(emit(&demo, &id, Some("note"), b"live"), 202);
    back.wait_data("live");
    let last = back.last_event_id();
    detach(&demo, back, End::Drop);
    assert_eq!(emit(&demo, &id, Some("note"), b"missed"), 202);
    let again = reconnect(&demo, &last, Offer::Header);
    assert_eq!((again.id.as_str(), again.resumed), (id.as_str(), true));
    assert_eq!(names_and_data(&again.replayed()), [("note", "missed")]);
}

/// Reconnects while a backlog is replayed and other threads keep sending: every event
/// arrives exactly once over the tab's successive streams, in increasing position order,
/// each sender's in the order its POSTs were answered. The streams end in turn by a server
/// drop and by a hang-up followed at once by a reconnect (which takes the session over from
/// the connection the server still holds).
pub(crate) fn order_under_concurrent_sends_during_replay(bin: &str) {
    const BACKLOG: usize = 1000; // well inside the log's 4096 events and 1 MiB
    const SENDERS: usize = 2;
    const STREAMS: usize = 6;
    let demo = resumable(bin, GRACE_MS);
    let tab = Tab::open(&demo, "/events", &[]);
    let id = tab.id.clone();
    let first = tab.last_event_id();
    detach(&demo, tab, End::Drop);
    let mut sender = Sender::new(&demo, &id);
    for i in 0..BACKLOG {
        assert_eq!(sender.send(&format!("backlog {i}")), 202);
    }

    // The logged events the tab got, over all its streams, in order.
    let mut got: Vec<MessageEvent> = Vec::new();
    let stop = AtomicBool::new(false);
    let answered: [AtomicUsize; SENDERS] = Default::default();
    let (mut tab, sent) = thread::scope(|scope| {
        // However the rest ends, the senders stop.
        struct StopOnDrop<'a>(&'a AtomicBool);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Release);
            }
        }
        let _stop = StopOnDrop(&stop);
        let senders: Vec<_> = (0..SENDERS)
            .map(|t| {
                let (demo, id, stop, answered) = (&demo, &id, &stop, &answered[t]);
                scope.spawn(move || {
                    let mut sender = Sender::new(demo, id);
                    let mut sent = Vec::new();
                    while !stop.load(Ordering::Acquire) {
                        let data = format!("sender {t} #{}", sent.len());
                        assert_eq!(sender.send(&data), 202, "{data}");
                        sent.push(data);
                        answered.fetch_add(1, Ordering::Release);
                    }
                    sent
                })
            })
            .collect();
        assert!(wait_until(|| answered
            .iter()
            .all(|a| a.load(Ordering::Acquire) >= 10)));
        // Each stream runs until it has had some of the senders' events live.
        let mut last = first.clone();
        let mut stream = 0;
        let tab = loop {
            let mut tab = reconnect(&demo, &last, Offer::Header);
            assert_eq!(
                (tab.id.as_str(), tab.resumed),
                (id.as_str(), true),
                "stream {stream}"
            );
            let live_from_senders = |s: &EventStream| {
                let events = s.events();
                let connect = events.iter().position(|e| e.event == "connect");
                connect.is_some_and(|at| events.len() - at > 20)
            };
            assert!(tab.stream.wait_for(live_from_senders).unwrap());
            stream += 1;
            if stream == STREAMS {
                break tab;
            }
            if stream % 2 == 0 {
                assert_eq!(post(&demo, &session_route(&id, "drop"), b"").0, 204);
                assert!(tab.stream.wait_end(Duration::from_secs(5)).unwrap());
            }
            got.extend(tab.replayed());
            got.extend(tab.live());
            last = tab.last_event_id();
            tab.stream.hang_up();
        };
        stop.store(true, Ordering::Release);
        let sent: Vec<Vec<String>> = senders.into_iter().map(|h| h.join().unwrap()).collect();
        (tab, sent)
    });
    assert_eq!(emit(&demo, &id, None, b"end"), 202);
    tab.wait_data("end");
    got.extend(tab.replayed());
    got.extend(tab.live());

    assert_positions_increase(&id, position_of(&id, &first), &got);
    let data: Vec<&str> = got.iter().map(|e| e.data.as_str()).collect();
    let expected: Vec<String> = (0..BACKLOG)
        .map(|i| format!("backlog {i}"))
        .chain(sent.iter().flatten().cloned())
        .chain(["end".to_owned()])
        .collect();
    let arrived: HashSet<&str> = data.iter().copied().collect();
    let missing: Vec<&String> = expected
        .iter()
        .filter(|e| !arrived.contains(e.as_str()))
        .collect();
    let mut sorted = data.clone();
    sorted.sort_unstable();
    let twice: Vec<&str> = sorted
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0])
        .collect();
    assert!(
        missing.is_empty() && twice.is_empty() && data.len() == expected.len(),
        "every event exactly once: {} of {} arrived, missing {missing:?}, twice {twice:?}",
        data.len(),
        expected.len()
    );
    let backlog: Vec<String> = (0..BACKLOG).map(|i| format!("backlog {i}")).collect();
    assert_eq!(data[..BACKLOG], backlog, "the backlog first, in order");
    for (t, sent) in sent.iter().enumerate() {
        let prefix = format!("sender {t} #");
        let theirs: Vec<&str> = data
            .iter()
            .copied()
            .filter(|d| d.starts_with(&prefix))
            .collect();
        assert_eq!(
            theirs, *sent,
            "sender {t}'s events, in the order of its 202s"
        );
    }
    assert_eq!(data.last(), Some(&"end"));
}

/// A log holds the default 4096 events: a tab that missed exactly that many gets them all,
/// in order; one that missed one more (the same tab offering an older position, as a stale
/// copy of its storage would) gets a gap: `resumed: false`, the same id, nothing replayed.
pub(crate) fn a_log_holds_4096_events_and_one_more_is_a_gap(bin: &str) {
    const MAX_EVENTS: usize = 4096; // the default bound, which the demo uses
    let demo = resumable(bin, GRACE_MS);
    let mut tab = Tab::open(&demo, "/events", &[]);
    let id = tab.id.clone();
    let before_all = tab.last_event_id();
    assert_eq!(emit(&demo, &id, None, b"first"), 202);
    let first = tab.wait_data("first").last_event_id;
    detach(&demo, tab, End::Drop);
    let mut sender = Sender::new(&demo, &id);
    for i in 0..MAX_EVENTS {
        assert_eq!(sender.send(&i.to_string()), 202, "event {i}");
    }
    let back = reconnect(&demo, &first, Offer::Header);
    assert_eq!((back.id.as_str(), back.resumed), (id.as_str(), true));
    let replayed = back.replayed();
    let data: Vec<&str> = replayed.iter().map(|e| e.data.as_str()).collect();
    let sent: Vec<String> = (0..MAX_EVENTS).map(|i| i.to_string()).collect();
    assert!(data == sent, "{} of {MAX_EVENTS} replayed", data.len());
    assert_positions_increase(&id, position_of(&id, &first), &replayed);

    detach(&demo, back, End::Drop);
    let again = reconnect(&demo, &before_all, Offer::Header);
    assert_eq!(
        (again.id.as_str(), again.resumed),
        (id.as_str(), false),
        "4097 missed events are a gap"
    );
    assert!(
        again.replayed().is_empty(),
        "{} replayed",
        again.replayed().len()
    );
}

/// A connection that died without the server noticing (half-open) swallowed what was sent
/// to it; the tab's reconnect offers the last event it really got, takes the session over
/// and gets the rest, a broadcast included.
pub(crate) fn a_reconnect_after_a_half_open_connection_gets_what_it_swallowed(bin: &str) {
    let demo = resumable(bin, GRACE_MS);
    let mut dead = Tab::open(&demo, "/events", &[]);
    let id = dead.id.clone();
    assert_eq!(emit(&demo, &id, Some("note"), b"got"), 202);
    dead.wait_data("got");
    let last = dead.last_event_id();
    // On Redis, a session is counted once its node has told Redis it is attached.
    assert!(super::settled(|| demo.sessions().unwrap() == [id.clone()]));
    // Sent to the live connection; the tab never reads them.
    assert_eq!(emit(&demo, &id, Some("note"), b"swallowed 1"), 202);
    assert_eq!(
        post(&demo, "/broadcast?event=news", b"swallowed 2"),
        (200, "1".to_owned())
    );
    let back = reconnect(&demo, &last, Offer::Header);
    assert_eq!((back.id.as_str(), back.resumed), (id.as_str(), true));
    super::in_log_order(
        &names_and_data(&back.replayed()),
        &[("note", "swallowed 1"), ("news", "swallowed 2")],
        &[&[("note", "swallowed 1")], &[("news", "swallowed 2")]],
    );
    assert_positions_increase(&id, position_of(&id, &last), &back.replayed());
    assert_eq!(demo.sessions().unwrap(), [id]);
}

/// Volatile events (`connect`, `sync-time`) carry no id, so they move no position, and are
/// never replayed.
pub(crate) fn volatile_events_are_never_replayed(bin: &str) {
    let demo = start(
        bin,
        &[
            "--tick-ms",
            "20",
            "--keep-alive-ms",
            "0",
            "--resume-ms",
            GRACE_MS,
        ],
    );
    let ticks = |events: &[&MessageEvent]| events.iter().filter(|e| e.event == "sync-time").count();
    let mut tab = Tab::open(&demo, "/events", &[]);
    let id = tab.id.clone();
    assert_eq!(emit(&demo, &id, Some("note"), b"seen"), 202);
    let seen = tab.wait_data("seen");
    let two_ticks_after_seen = |s: &EventStream| {
        let events = s.events();
        let seen = events.iter().position(|e| e.data == "seen");
        seen.is_some_and(|at| ticks(&events[at + 1..]) >= 2)
    };
    assert!(tab.stream.wait_for(two_ticks_after_seen).unwrap());
    let last = tab.last_event_id();
    assert_eq!(last, seen.last_event_id, "ticks moved the last event id");
    detach(&demo, tab, End::Drop);
    // Ticks go on while the tab is away: a witness sees two.
    let mut witness = Tab::open(&demo, "/events", &[]);
    let witnessed = witness.stream.wait_for(|s| ticks(&s.events()) >= 2);
    assert!(witnessed.unwrap(), "no ticks while the tab was away");
    let back = reconnect(&demo, &last, Offer::Header);
    assert_eq!((back.id.as_str(), back.resumed), (id.as_str(), true));
    assert!(back.replayed().is_empty(), "{:?}", back.replayed());
}

/// A detached session can be closed; its reconnect then gets 204.
pub(crate) fn close_while_detached_gives_204(bin: &str) {
    let demo = resumable(bin, GRACE_MS);
    let mut tab = Tab::open(&demo, "/events", &[]);
    let id = tab.id.clone();
    assert_eq!(emit(&demo, &id, Some("note"), b"seen"), 202);
    tab.wait_data("seen");
    let last = tab.last_event_id();
    detach(&demo, tab, End::Drop);
    assert_eq!(emit(&demo, &id, Some("note"), b"missed"), 202);
    assert_eq!(post(&demo, &session_route(&id, "close"), b"").0, 204);
    assert_eq!(
        emit(&demo, &id, Some("note"), b"after close"),
        404,
        "a closed session is gone"
    );
    let again = demo
        .events("/events", &[("Last-Event-ID", last.as_bytes())])
        .unwrap();
    assert_eq!(
        again.head.status, 204,
        "the reconnect of a session closed while detached"
    );
}

/// A tab that saw everything comes back to nothing to replay (`resumed: true`), whether it
/// saw logged events or only its preamble.
pub(crate) fn an_up_to_date_reconnect_replays_nothing(bin: &str) {
    let demo = resumable(bin, GRACE_MS);
    let tab = Tab::open(&demo, "/events", &[]);
    let id = tab.id.clone();
    let preamble = tab.last_event_id();
    detach(&demo, tab, End::Drop);
    let mut back = reconnect(&demo, &preamble, Offer::Header);
    assert_eq!((back.id.as_str(), back.resumed), (id.as_str(), true));
    assert!(back.replayed().is_empty(), "{:?}", back.replayed());

    for data in ["one", "two"] {
        assert_eq!(emit(&demo, &id, Some("note"), data.as_bytes()), 202);
        back.wait_data(data);
    }
    let last = back.last_event_id();
    detach(&demo, back, End::HangUp);
    let mut again = reconnect(&demo, &last, Offer::Header);
    assert_eq!((again.id.as_str(), again.resumed), (id.as_str(), true));
    assert!(again.replayed().is_empty(), "{:?}", again.replayed());
    assert_eq!(emit(&demo, &id, Some("note"), b"three"), 202);
    let three = again.wait_data("three");
    assert!(position_of(&id, &three.last_event_id) > position_of(&id, &last));
    assert_eq!(again.live().len(), 1, "{:?}", again.live());
}

/// An offer that cannot be replayed exactly is a gap: the same id, `resumed: false`, nothing
/// replayed. A bare id, malformed positions, a position not yet issued, another epoch,
/// cursors naming shards the store does not have, and a restarted server (another demo
/// process).
pub(crate) fn unusable_positions_are_a_gap(bin: &str) {
    let demo = resumable(bin, GRACE_MS);
    let mut tab = Tab::open(&demo, "/events", &[]);
    let id = tab.id.clone();
    assert_eq!(emit(&demo, &id, Some("note"), b"seen"), 202);
    let seen = position_of(&id, &tab.wait_data("seen").last_event_id);
    let (epoch, seq) = (seen.epoch, seen.seq);
    let offers = [
        id.clone(),
        format!("{id}~"),
        format!("{id}~garbage"),
        format!("{id}~{}", to_base36(epoch)),
        format!("{id}~{}.", to_base36(epoch)),
        format!("{id}~{}.{}", to_base36(epoch), to_base36(seq + 1000)),
        format!("{id}~{}.{}", to_base36(epoch + 1), to_base36(seq)),
        format!(
            "{id}~{}.{}",
            to_base36(epoch.wrapping_sub(1)),
            to_base36(seq)
        ),
        // Cursors naming shards the store does not have (it has one), too many shards, or
        // shards out of order.
        format!("{id}~{}.{}.31", to_base36(epoch), to_base36(seq)),
        format!(
            "{id}~{}.{}.1a.2a.3a.4a.5a.6a",
            to_base36(epoch),
            to_base36(seq)
        ),
        format!("{id}~{}.{}.a1.31", to_base36(epoch), to_base36(seq)),
    ];
    for offer in offers {
        detach(&demo, tab, End::Drop);
        assert_eq!(emit(&demo, &id, Some("note"), b"missed"), 202);
        tab = reconnect(&demo, &offer, Offer::Header);
        assert_eq!(
            (tab.id.as_str(), tab.resumed),
            (id.as_str(), false),
            "offered {offer:?}"
        );
        assert!(
            tab.replayed().is_empty(),
            "offered {offer:?}: {:?}",
            tab.replayed()
        );
    }
    // The same steps with the tab's real last event id do resume: the rule is not vacuous.
    let last = tab.last_event_id();
    detach(&demo, tab, End::Drop);
    assert_eq!(emit(&demo, &id, Some("note"), b"missed"), 202);
    let back = reconnect(&demo, &last, Offer::Header);
    assert_eq!((back.id.as_str(), back.resumed), (id.as_str(), true));
    assert_eq!(names_and_data(&back.replayed()), [("note", "missed")]);
    // A restarted server knows nothing of the session.
    let restarted = resumable(bin, GRACE_MS);
    let elsewhere = reconnect(&restarted, &back.last_event_id(), Offer::Header);
    assert_eq!(
        (elsewhere.id.as_str(), elsewhere.resumed),
        (id.as_str(), false)
    );
    assert!(elsewhere.replayed().is_empty());
}

/// A duplicated tab offers the original's id; the newer connection takes the session, the
/// older one is handed a fresh id and comes back as a new session; then both stay.
pub(crate) fn duplicated_tabs_settle_on_distinct_ids(bin: &str) {
    let demo = resumable(bin, GRACE_MS);
    let mut a = Tab::open(&demo, "/events", &[]);
    let original = a.id.clone();
    assert_eq!(emit(&demo, &original, Some("note"), b"seen"), 202);
    a.wait_data("seen");
    // The duplicate starts with a copy of A's sessionStorage and offers it on load.
    let copied = a.last_event_id();
    let mut b = reconnect(&demo, &copied, Offer::Query);
    assert_eq!(b.id, original, "the newer connection takes the session");

    assert!(
        a.stream.wait_end(Duration::from_secs(5)).unwrap(),
        "the older stream ends"
    );
    let fresh = a.last_event_id();
    let wire = String::from_utf8_lossy(&a.stream.raw).into_owned();
    assert!(
        !fresh.is_empty() && fresh != original && !fresh.contains('~'),
        "the older stream's last id is a fresh bare id: {wire}"
    );
    assert!(
        wire.ends_with(&format!("\n\nid: {fresh}\n\n")),
        "its last block is `id: <fresh id>`: {wire}"
    );

    // A's EventSource reconnects with it: a new session, nothing of the original's.
    let mut a2 = reconnect(&demo, &fresh, Offer::Header);
    assert_eq!((a2.id.as_str(), a2.resumed), (fresh.as_str(), false));
    assert!(a2.replayed().is_empty(), "{:?}", a2.replayed());

    // Settled: neither takes the other's session again.
    assert!(
        !a2.stream.wait_end(Duration::from_secs(1)).unwrap(),
        "A's new stream ended"
    );
    assert!(
        !b.stream.wait_end(Duration::from_millis(10)).unwrap(),
        "B's stream ended"
    );
    let mut ids = demo.sessions().unwrap();
    ids.sort();
    let mut both = vec![original.clone(), fresh.clone()];
    both.sort();
    assert_eq!(ids, both);
    assert_eq!(emit(&demo, &original, Some("note"), b"for b"), 202);
    assert_eq!(emit(&demo, &fresh, Some("note"), b"for a"), 202);
    b.wait_data("for b");
    a2.wait_data("for a");
    assert!(b.live().iter().all(|e| e.data != "for a"));
    assert!(a2.live().iter().all(|e| e.data != "for b"));
}

/// Without `--resume-ms` a session ends with its connection: sends get 404, and the tab's
/// reconnect keeps its id, with `resumed: false` and nothing replayed.
pub(crate) fn without_resume_mode_a_dropped_tab_starts_over(bin: &str) {
    let demo = quiet(bin);
    let mut tab = Tab::open(&demo, "/events", &[]);
    let id = tab.id.clone();
    assert!(!tab.resumed);
    assert_eq!(tab.last_event_id(), id, "a bare id, no position");
    assert_eq!(emit(&demo, &id, Some("note"), b"seen"), 202);
    assert_eq!(
        tab.wait_data("seen").last_event_id,
        id,
        "events carry no id"
    );
    let last = tab.last_event_id();
    detach(&demo, tab, End::Drop);
    assert_eq!(emit(&demo, &id, Some("note"), b"missed"), 404);
    assert_eq!(post(&demo, "/broadcast", b"x"), (200, "0".to_owned()));
    let back = reconnect(&demo, &last, Offer::Header);
    assert_eq!((back.id.as_str(), back.resumed), (id.as_str(), false));
    assert!(back.replayed().is_empty(), "{:?}", back.replayed());
}
