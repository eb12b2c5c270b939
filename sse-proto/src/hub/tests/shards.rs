//! A sharded log: cursors naming each shard a tab reads, exact resume per shard, and the
//! bound on how many shards one tab may read.

use super::*;
use crate::decode::{Decoder, Item};
use crate::history::{LogBounds, MemoryHistory, Target};
use crate::lifecycle::{Continuity, GapReason};
use crate::relay::Recipient;
use crate::{cursor::Cursor, placement::Placement};

const GRACE: Duration = Duration::from_secs(10);

fn sharded(shards: usize) -> Hub {
    let placement = Placement::new(shards).expect("a shard count");
    unwindowed()
        .keep_alive(None)
        .resume(ResumeConfig::new(GRACE))
        .history(MemoryHistory::new(7, LogBounds::default(), usize::MAX).placed(placement))
        .topic_rule(|_, _| true)
        .build(Instant::now)
}

/// The first name `<stem><n>` that `place` puts on `shard`.
fn named_on(stem: &str, shard: u8, place: impl Fn(&str) -> u8) -> String {
    (0..)
        .map(|n| format!("{stem}{n}"))
        .find(|name| place(name) == shard)
        .expect("some name lands on every shard")
}

fn topic_on(placement: Placement, shard: u8) -> String {
    named_on("t", shard, |name| {
        let topic = TopicName::new(name).expect("valid");
        placement.of(Target::Topic(&topic))
    })
}

fn id_on(placement: Placement, stem: &str, shard: u8) -> String {
    named_on(stem, shard, |name| {
        let id = SessionId::parse(name.as_bytes(), 128).expect("valid");
        placement.of(Target::Session(&id))
    })
}

/// Opens `target`, from `last` when given.
fn open(hub: &Hub, target: &str, last: Option<&str>) -> crate::Accepted {
    let mut req = Request::new(b"GET", target.as_bytes(), HttpVersion::Http11);
    req.header(b"accept", b"text/event-stream");
    if let Some(last) = last {
        req.header(b"last-event-id", last.as_bytes());
    }
    match hub.decide(&req, Instant::now()) {
        Decision::Accept(a) => a,
        other => panic!("expected accept: {other:?}"),
    }
}

/// Every event on the wire: its data and the last event id after it.
fn events(outlet: &mut Outlet, decoder: &mut Decoder) -> Vec<(String, String)> {
    let (_, bytes) = drain(outlet, Instant::now());
    decoder.feed(&bytes).expect("well-formed");
    let mut out = Vec::new();
    while let Some(item) = decoder.poll_item() {
        if let Item::Event(e) = item {
            out.push((e.data, e.last_event_id));
        }
    }
    out
}

fn cursor(last_event_id: &str) -> Cursor {
    let (_, cursor) = last_event_id.rsplit_once('~').expect("a cursor");
    Cursor::parse(cursor.as_bytes()).expect("well-formed")
}

#[test]
fn a_tab_resumes_each_shard_from_its_own_number() {
    let placement = Placement::new(4).expect("4");
    let hub = sharded(4);
    let id = id_on(placement, "tab-", 1);
    let (a, b) = (topic_on(placement, 2), topic_on(placement, 3));
    let target = format!("/e?id={id}&topic={a}&topic={b}");
    let mut first = open(&hub, &target, None);
    let mut tab = Decoder::new();
    assert!(events(&mut first.outlet, &mut tab).is_empty());
    // The preamble names every shard the tab reads, each at its head.
    assert_eq!(tab.last_event_id(), format!("{id}~7.0.10.20.30"));

    hub.topic(&a).expect("valid").send("a1").expect("sent");
    hub.send_to(&id, &Event::new().data("own1")).expect("sent");
    hub.broadcast(&Event::new().data("all1"));
    hub.topic(&b).expect("valid").send("b1").expect("sent");
    let got = events(&mut first.outlet, &mut tab);
    let data: Vec<&str> = got.iter().map(|(d, _)| d.as_str()).collect();
    assert_eq!(data, ["a1", "own1", "all1", "b1"]);
    // Each shard numbers its own events: one each.
    assert_eq!(got[3].1, format!("{id}~7.1.11.21.31"));
    let after_a1 = got[0].1.clone();
    assert_eq!(cursor(&after_a1).seq(2), Some(1));
    assert_eq!(cursor(&after_a1).seq(1), Some(0));
    drop(first);

    // While away: two more on shard 2, one on shard 0; and someone else's session on
    // shard 1 moves that shard's number on without concerning this tab.
    let other = id_on(placement, "other-", 1);
    let _other = open(&hub, &format!("/e?id={other}"), None);
    hub.send_to(&other, &Event::new().data("not yours"))
        .expect("sent");
    hub.topic(&a).expect("valid").send("a2").expect("sent");
    hub.broadcast(&Event::new().data("all2"));
    hub.topic(&a).expect("valid").send("a3").expect("sent");

    // From its last id: what it missed, each shard in its order.
    let mut back = open(&hub, &target, Some(&got[3].1));
    assert_eq!(back.continuity, Continuity::Resumed { replayed: 3 });
    let mut tab = Decoder::new();
    let replayed = events(&mut back.outlet, &mut tab);
    let data: Vec<&str> = replayed.iter().map(|(d, _)| d.as_str()).collect();
    assert_eq!(data, ["all2", "a2", "a3"]);
    assert_eq!(tab.last_event_id(), format!("{id}~7.2.11.23.31"));
    drop(back);

    // From after "a1" only: its own event, both broadcasts and shard 3's too.
    let mut older = open(&hub, &target, Some(&after_a1));
    assert_eq!(older.continuity, Continuity::Resumed { replayed: 6 });
    let replayed = events(&mut older.outlet, &mut Decoder::new());
    let mut data: Vec<&str> = replayed.iter().map(|(d, _)| d.as_str()).collect();
    data.sort_unstable();
    assert_eq!(data, ["a2", "a3", "all1", "all2", "b1", "own1"]);
}

#[test]
fn a_join_past_the_shards_a_cursor_can_name_is_refused() {
    let placement = Placement::new(36).expect("36");
    let hub = sharded(36);
    // 64 bytes: room for four shards in a 128-byte event id.
    let stem = "x".repeat(60);
    let id = id_on(placement, &stem, 1);
    assert_eq!(Cursor::max_shards(id.len(), 128), 4);
    let (t2, t3, t4) = (
        topic_on(placement, 2),
        topic_on(placement, 3),
        topic_on(placement, 4),
    );
    // Shards 0 and 1 (its own), and the two topics it asks for: four, all granted.
    let mut a = open(&hub, &format!("/e?id={id}&topic={t2}&topic={t3}"), None);
    let mut asked = [t2.as_str(), t3.as_str()];
    asked.sort_unstable();
    let names: Vec<&str> = a.topics.iter().map(TopicName::as_str).collect();
    assert_eq!(names, asked);
    assert_eq!(a.session.join(&t4), Err(Error::TooManyShards { limit: 4 }));
    // Another topic on a shard it reads already costs nothing.
    let again = named_on("u", 2, |name| {
        placement.of(Target::Topic(&TopicName::new(name).expect("valid")))
    });
    assert_eq!(a.session.join(&again), Ok(true));
    // The longest cursor it can have fits the event id.
    hub.topic(&t2).expect("valid").send("x").expect("sent");
    hub.topic(&t3).expect("valid").send("y").expect("sent");
    hub.send_to(&id, &Event::new().data("z")).expect("sent");
    let got = events(&mut a.outlet, &mut Decoder::new());
    let last = &got.last().expect("three events").1;
    assert!(last.len() <= 128, "{last}");
    assert_eq!(cursor(last).len(), 4);
    drop(a);

    // Asked for at accept: what does not fit is not granted.
    let other = id_on(placement, &stem, 5);
    let b = open(
        &hub,
        &format!("/e?id={other}&topic={t2}&topic={t3}&topic={t4}"),
        None,
    );
    let names: Vec<&str> = b.topics.iter().map(TopicName::as_str).collect();
    assert_eq!(names, asked);
}

#[test]
fn hostile_cursors_are_gaps_and_long_ids_are_refused() {
    let placement = Placement::new(4).expect("4");
    let hub = sharded(4);
    let id = id_on(placement, "tab-", 1);
    let mut a = open(&hub, &format!("/e?id={id}"), None);
    hub.send_to(&id, &Event::new().data("one")).expect("sent");
    let got = events(&mut a.outlet, &mut Decoder::new());
    let last = got[0].1.clone();
    assert_eq!(last, format!("{id}~7.0.11"));
    drop(a);
    for (offered, reason) in [
        // A shard the log does not have.
        (format!("{last}.91"), GapReason::InvalidPosition),
        // Past a shard's head: never issued.
        (format!("{id}~7.0.19"), GapReason::InvalidPosition),
        (format!("{id}~7.5.11"), GapReason::InvalidPosition),
        // Another epoch.
        (format!("{id}~8.0.11"), GapReason::UnknownEpoch),
    ] {
        let b = open(&hub, &format!("/e?id={id}"), Some(&offered));
        assert_eq!(b.continuity, Continuity::Gap(reason), "{offered}");
        assert_eq!(b.session.id().as_str(), id, "identity survives");
    }
    // Without its own shard: its own log from the start (what the cursor says it lacks).
    let b = open(&hub, &format!("/e?id={id}"), Some(&format!("{id}~7.0")));
    assert_eq!(b.continuity, Continuity::Resumed { replayed: 1 });
    drop(b);
    // An id too long to leave room for its own shard beside shard 0 is not used.
    let long = "y".repeat(128 - 28 - 11);
    let c = open(&hub, &format!("/e?id={long}"), None);
    assert_ne!(c.session.id().as_str(), long);
    assert_eq!(c.source, crate::IdSource::Generated);
    assert_eq!(c.rejected.len(), 1);
}

#[test]
fn a_shard_restarted_empty_is_a_gap_for_the_logs_on_it_only() {
    let placement = Placement::new(4).expect("4");
    let hub = unwindowed()
        .keep_alive(None)
        .resume(ResumeConfig::new(GRACE))
        .relay(crate::relay::RelayConfig::default())
        .history(MemoryHistory::new(7, LogBounds::default(), usize::MAX).placed(placement))
        .topic_rule(|_, _| true)
        .build(Instant::now);
    let port = RelayPort::claim(&hub).expect("relay mode");
    let id = id_on(placement, "tab-", 1);
    let other = id_on(placement, "tab-", 2);
    let (a, b) = (topic_on(placement, 2), topic_on(placement, 3));
    let target = format!("/e?id={id}&topic={a}&topic={b}");
    let mut tab = open(&hub, &target, None);
    let mut guest = open(&hub, &format!("/e?id={other}"), None);
    // The relay numbers the joins in each topic's shard, and the events in theirs.
    let session = SessionId::parse(id.as_bytes(), 128).expect("valid");
    let topic = |t: &str| TopicName::new(t).expect("valid");
    assert!(port.joined(1, &session, &topic(&a)));
    assert!(port.joined(1, &session, &topic(&b)));
    let frame = |data: &str| Event::new().data(data.to_owned()).encode();
    port.deliver(2, &Recipient::Topic(topic(&a)), frame("a1"));
    port.deliver(2, &Recipient::Topic(topic(&b)), frame("b1"));
    port.deliver(1, &Recipient::Session(session.clone()), frame("own1"));
    let guest_id = SessionId::parse(other.as_bytes(), 128).expect("valid");
    port.deliver(3, &Recipient::Session(guest_id), frame("guest1"));
    let got = events(&mut tab.outlet, &mut Decoder::new());
    assert_eq!(got.len(), 3);
    let last = got[2].1.clone();
    let guest_last = events(&mut guest.outlet, &mut Decoder::new())[0].1.clone();
    drop((tab, guest));

    // Shard 2 restarted empty; its numbers go on after 10.
    port.restart_shard(2, 10);
    port.deliver(11, &Recipient::Topic(topic(&a)), frame("a2"));
    port.deliver(3, &Recipient::Topic(topic(&b)), frame("b2"));

    // The topic on shard 2 is a gap; the rest replays.
    let mut back = open(&hub, &target, Some(&last));
    assert_eq!(back.continuity, Continuity::Resumed { replayed: 1 });
    let gaps: Vec<&str> = back.topic_gaps.iter().map(TopicName::as_str).collect();
    assert_eq!(gaps, [a.as_str()]);
    let replayed = events(&mut back.outlet, &mut Decoder::new());
    assert_eq!(replayed[0].0, "b2");
    drop(back);
    // A session whose own log is on shard 2 has a gap of its own.
    let guest = open(&hub, &format!("/e?id={other}"), Some(&guest_last));
    assert_eq!(guest.continuity, Continuity::Gap(GapReason::Lost));
}
