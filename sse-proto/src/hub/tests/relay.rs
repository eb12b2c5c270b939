//! Relay mode: sends go to the relay and come back numbered; closes are shared; the queue is
//! bounded; deliveries without a position leave a gap, never a silent loss.

use super::*;
use crate::decode::{Decoder, Item};
use crate::lifecycle::{Continuity, GapReason};
use crate::relay::{Recipient, RelayConfig, Relayed};

/// A hub in relay and resume mode, and the port its relay holds.
fn relayed(config: RelayConfig) -> (Hub, RelayPort) {
    let hub = unwindowed()
        .keep_alive(None)
        .resume(ResumeConfig::new(Duration::from_secs(60)))
        .relay(config)
        .build(Instant::now);
    let port = RelayPort::claim(&hub).expect("relay mode");
    assert!(RelayPort::claim(&hub).is_none(), "one port per hub");
    (hub, port)
}

fn attach(hub: &Hub, last: Option<&str>) -> Accepted {
    let mut req = Request::new(b"GET", b"/e", HttpVersion::Http11);
    req.header(b"accept", b"text/event-stream");
    if let Some(v) = last {
        req.header(b"last-event-id", v.as_bytes());
    }
    match hub.decide(&req, Instant::now()) {
        Decision::Accept(a) => a,
        other => panic!("expected accept: {other:?}"),
    }
}

fn taken(port: &RelayPort) -> Vec<Relayed> {
    let mut out = Vec::new();
    let _ = port.poll_outbound(&mut Context::from_waker(Waker::noop()), &mut out);
    out
}

/// `(last event id, data)` of the events queued on `outlet`, and the last event id.
fn read(outlet: &mut Outlet, decoder: &mut Decoder) -> (Vec<(String, String)>, String) {
    let (_, bytes) = drain(outlet, Instant::now());
    decoder.feed(&bytes).expect("well-formed");
    let mut events = Vec::new();
    while let Some(item) = decoder.poll_item() {
        if let Item::Event(e) = item {
            events.push((e.last_event_id, e.data));
        }
    }
    (events, decoder.last_event_id().to_owned())
}

#[test]
fn sends_go_to_the_relay_and_come_back_numbered() {
    let (hub, port) = relayed(RelayConfig::default());
    let a = attach(&hub, None);
    let id = a.session.id().clone();
    let mut tab = Decoder::new();
    let mut outlet = a.outlet;
    let _ = read(&mut outlet, &mut tab);
    let counter = Arc::new(Counter::default());
    let relay_waker = Waker::from(counter.clone());
    let mut out = Vec::new();
    assert!(
        port.poll_outbound(&mut Context::from_waker(&relay_waker), &mut out)
            .is_pending()
    );

    a.session.send("one").expect("queued for the relay");
    assert_eq!(counter.count(), 1, "the relay is woken");
    hub.send_to("on-another-node", &Event::new().data("two"))
        .expect("relayed");
    assert_eq!(hub.broadcast(&Event::new().data("three")), 1);
    assert!(a.session.send_volatile(&Event::new().data("local")).is_ok());
    // Nothing numbered is delivered before the relay hands it back.
    let (events, _) = read(&mut outlet, &mut tab);
    assert_eq!(events.len(), 1, "only the volatile one: {events:?}");
    let items = taken(&port);
    assert_eq!(items.len(), 3);
    assert!(matches!(&items[0], Relayed::Event { to: Recipient::Session(s), .. } if *s == id));
    assert!(
        matches!(&items[1], Relayed::Event { to: Recipient::Session(s), .. } if s.as_str() == "on-another-node")
    );
    assert!(matches!(
        &items[2],
        Relayed::Event {
            to: Recipient::All,
            ..
        }
    ));

    // The relay numbers them in the store's sequence (others' events in between).
    for (seq, item) in [(41, &items[0]), (43, &items[2])] {
        let Relayed::Event { to, frame } = item else {
            panic!("an event")
        };
        assert_eq!(port.deliver(seq, to, frame.clone()), 1);
    }
    assert_eq!(
        port.deliver(43, &Recipient::All, Event::new().data("dup").encode()),
        0
    );
    let (events, last) = read(&mut outlet, &mut tab);
    let seqs: Vec<(String, String)> = events;
    assert_eq!(seqs.len(), 2);
    assert!(seqs[0].0.ends_with(".15") && seqs[0].1 == "one", "{seqs:?}"); // 41 in base 36
    assert!(
        seqs[1].0.ends_with(".17") && seqs[1].1 == "three",
        "{seqs:?}"
    );
    assert_eq!(seqs[1].0, last);
}

#[test]
fn an_event_numbered_after_its_unsequenced_delivery_only_moves_the_position() {
    let (hub, port) = relayed(RelayConfig::default());
    let a = attach(&hub, None);
    let id = a.session.id().clone();
    let mut tab = Decoder::new();
    let mut outlet = a.outlet;
    let (_, before) = read(&mut outlet, &mut tab);

    // The relay is away: the tab gets the event at once, without a position.
    let event = Event::new().data("while away").encode();
    assert_eq!(port.deliver_unsequenced(&Recipient::All, event.clone()), 1);
    let (events, last) = read(&mut outlet, &mut tab);
    assert_eq!(events, [(before.clone(), "while away".to_owned())]);
    assert_eq!(last, before);

    // The store applied it after all, as 5: the tab's position moves to it, nothing fires.
    assert_eq!(port.deliver_known(5, &Recipient::All, event.clone()), 1);
    let (_, bytes) = drain(&mut outlet, Instant::now());
    let text = String::from_utf8(bytes.clone()).expect("utf-8");
    assert!(
        text.starts_with(&format!("id: {id}~"))
            && text.ends_with(".5\n\n")
            && text.lines().count() == 2,
        "an id line and a blank line: {text:?}"
    );
    tab.feed(&bytes).expect("well-formed");
    assert!(tab.poll_item().is_none(), "an id alone dispatches nothing");
    let known = tab.last_event_id().to_owned();
    assert!(known.ends_with(".5"), "{known}");
    // It is numbered now: the same again is a duplicate, and what follows goes on from it.
    assert_eq!(port.deliver(5, &Recipient::All, event), 0);
    let next = Event::new().data("next").encode();
    assert_eq!(port.deliver(6, &Recipient::Session(id.clone()), next), 1);
    let (events, _) = read(&mut outlet, &mut tab);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].1, "next");

    // A reconnect from the known position is exact: only what came after it is replayed.
    drop(outlet);
    let again = attach(&hub, Some(&known));
    assert_eq!(again.continuity, Continuity::Resumed { replayed: 1 });
    let mut outlet = again.outlet;
    let mut tab = Decoder::new();
    let (events, _) = read(&mut outlet, &mut tab);
    let data: Vec<&str> = events.iter().map(|(_, d)| d.as_str()).collect();
    assert!(
        data.ends_with(&["next"]) && !data.contains(&"while away"),
        "{data:?}"
    );
}

#[test]
fn without_resume_mode_a_known_event_is_left_alone() {
    let hub = unwindowed()
        .keep_alive(None)
        .relay(RelayConfig::default())
        .build(Instant::now);
    let port = RelayPort::claim(&hub).expect("relay mode");
    let a = attach(&hub, None);
    let mut outlet = a.outlet;
    let _ = drain(&mut outlet, Instant::now());
    let event = Event::new().data("x").encode();
    assert_eq!(port.deliver_known(5, &Recipient::All, event), 0);
    assert_eq!(drain(&mut outlet, Instant::now()).0, Poll::Pending);
}

#[test]
fn a_reconnect_gets_what_was_delivered_while_away() {
    let (hub, port) = relayed(RelayConfig::default());
    let a = attach(&hub, None);
    let id = a.session.id().clone();
    let mut tab = Decoder::new();
    let mut outlet = a.outlet;
    let (_, last) = read(&mut outlet, &mut tab);
    drop(outlet);
    let to = Recipient::Session(id.clone());
    assert_eq!(
        port.deliver(5, &to, Event::new().data("while away").encode()),
        1
    );
    // An event for a session served elsewhere is logged here too: its tab may come here.
    let other = Recipient::Session(SessionId::parse(b"elsewhere", 128).expect("valid"));
    assert_eq!(
        port.deliver(6, &other, Event::new().data("not ours").encode()),
        0
    );
    let b = attach(&hub, Some(&last));
    assert_eq!(b.continuity, Continuity::Resumed { replayed: 1 });
    let mut outlet = b.outlet;
    let (events, last) = read(&mut outlet, &mut tab);
    assert_eq!(
        events.iter().map(|e| e.1.as_str()).collect::<Vec<_>>(),
        ["while away"]
    );

    // The relay was away: delivered live to the attached tab without a position, and a
    // reconnect from before it is a gap.
    assert_eq!(
        port.deliver_unsequenced(&to, Event::new().data("unlogged").encode()),
        1
    );
    let (events, _) = read(&mut outlet, &mut tab);
    assert_eq!(events.len(), 1);
    drop(outlet);
    let c = attach(&hub, Some(&last));
    assert_eq!(c.continuity, Continuity::Gap(GapReason::Overflow));
}

#[test]
fn closes_are_shared_and_not_echoed() {
    let (hub, port) = relayed(RelayConfig::default());
    let a = attach(&hub, None);
    let id = a.session.id().clone();
    assert!(a.session.close());
    assert!(matches!(&taken(&port)[..], [Relayed::Closed { id: c }] if *c == id));
    hub.close("remote-tab").expect("relayed");
    assert!(matches!(&taken(&port)[..], [Relayed::Closed { id: c }] if c.as_str() == "remote-tab"));
    // A close from the relay ends the session here without going back to it.
    let b = attach(&hub, None);
    assert!(port.close(b.session.id()));
    assert_eq!(b.session.end_reason(), Some(EndReason::Closed));
    assert!(taken(&port).is_empty());
}

#[test]
fn the_queue_for_the_relay_is_bounded() {
    let (hub, port) = relayed(RelayConfig {
        max_items: 2,
        max_bytes: 1 << 20,
    });
    let a = attach(&hub, None);
    a.session.send("1").expect("queued");
    a.session.send("2").expect("queued");
    assert_eq!(a.session.send("3"), Err(Error::Unavailable));
    assert_eq!(hub.broadcast(&Event::new().data("4")), 0);
    assert!(a.session.close(), "a close is queued whatever the bounds");
    assert_eq!(port.backlog(), 3);
    assert_eq!(taken(&port).len(), 3);
    assert_eq!(port.backlog(), 0);
}

#[test]
fn after_a_new_epoch_an_attached_connection_gets_the_events_numbered_from_its_start() {
    let (hub, port) = relayed(RelayConfig::default());
    let a = attach(&hub, None);
    let to = Recipient::Session(a.session.id().clone());
    let mut tab = Decoder::new();
    let mut outlet = a.outlet;
    let _ = read(&mut outlet, &mut tab);
    assert_eq!(port.deliver(7, &to, Event::new().data("old").encode()), 1);
    // The store came back empty: its sequence starts again, below what the connection has.
    port.restart_log(99);
    assert_eq!(port.deliver(1, &to, Event::new().data("new 1").encode()), 1);
    let frame = Event::new().data("new 2").encode();
    assert_eq!(port.deliver(2, &Recipient::All, frame), 1);
    let (events, last) = read(&mut outlet, &mut tab);
    let data: Vec<&str> = events.iter().map(|(_, d)| d.as_str()).collect();
    assert_eq!(data, ["old", "new 1", "new 2"]);
    assert!(last.ends_with("~2r.2"), "epoch 99, sequence 2: {last}");
    // Once: the new epoch's numbers are not delivered twice either.
    assert_eq!(port.deliver(2, &Recipient::All, Event::new().encode()), 0);
}
