use super::*;
use crate::event::Event;

fn conn(config: ConnectionConfig, now: Instant) -> Connection {
    Connection::new(config, now)
}

fn frame(len: usize) -> Frame {
    Frame::from_bytes(bytes::Bytes::from(vec![b'x'; len]))
}

#[test]
fn keep_alive_deadlines_on_a_fake_clock() {
    let t0 = Instant::now();
    let s = Duration::from_secs(1);
    let cfg = ConnectionConfig {
        keep_alive: Some(10 * s),
        ..Default::default()
    };
    let mut c = conn(cfg, t0);
    assert_eq!(c.poll_timeout(), Some(t0 + 10 * s));
    c.handle_timeout(t0 + 9 * s); // early: nothing
    assert!(c.poll_transmit().is_none());
    // Writing at 5 s moves the deadline.
    c.send(Event::new().data("a").encode()).expect("open");
    assert!(c.poll_transmit_at(t0 + 5 * s).is_some());
    assert_eq!(c.poll_timeout(), Some(t0 + 15 * s));
    c.handle_timeout(t0 + 15 * s);
    assert_eq!(
        c.poll_transmit().map(|f| f.to_bytes()),
        Some(KEEP_ALIVE.into())
    );
    c.handle_timeout(t0 + 15 * s); // repeated: nothing more
    assert!(c.poll_transmit().is_none());
    assert_eq!(c.poll_timeout(), Some(t0 + 25 * s));
}

#[test]
fn first_dispatched_event_repeats_the_id_once() {
    let t0 = Instant::now();
    let preamble = Frame::from_static(b"retry: 1\nid: tab\n\n");
    let line = Frame::from_static(b"id: tab\n");
    let mut c = Connection::with_preamble(ConnectionConfig::default(), preamble, line, t0);
    c.send(Event::new().comment("x").expect("valid").encode())
        .expect("open");
    c.send(Event::new().data("a").encode()).expect("open");
    c.send(Event::new().data("b").encode()).expect("open");
    let mut batch = Batch::new();
    c.drain_into(&mut batch, t0);
    let wire = batch.copy_to_bytes(batch.remaining());
    assert_eq!(
        &wire[..],
        b"retry: 1\nid: tab\n\n: x\n\nid: tab\ndata: a\n\ndata: b\n\n"
    );
}

#[test]
fn keep_alive_off() {
    let t0 = Instant::now();
    let mut c = conn(
        ConnectionConfig {
            keep_alive: None,
            ..Default::default()
        },
        t0,
    );
    assert_eq!(c.poll_timeout(), None);
    c.handle_timeout(t0 + Duration::from_secs(3600));
    assert!(c.poll_transmit().is_none());
}

#[test]
fn budget_overflow_ends_the_connection() {
    let t0 = Instant::now();
    let mut c = conn(
        ConnectionConfig {
            budget: 100,
            ..Default::default()
        },
        t0,
    );
    // One frame larger than the budget still goes to an empty queue.
    c.send(frame(150)).expect("empty queue takes it");
    assert!(c.poll_transmit().is_some());
    c.send(frame(60)).expect("fits");
    c.send(frame(40)).expect("exactly the budget");
    let err = c.send(frame(1)).expect_err("over budget");
    assert_eq!(
        err,
        Error::Backpressure {
            queued: 100,
            budget: 100
        }
    );
    assert_eq!(c.end_reason(), Some(EndReason::TooSlow));
    assert!(c.is_finished());
    assert_eq!(c.queued_bytes(), 0);
    assert!(c.poll_transmit().is_none());
    assert_eq!(c.send(frame(1)), Err(Error::Closed));
}

#[test]
fn close_drains_then_ends() {
    let t0 = Instant::now();
    let mut c = conn(ConnectionConfig::default(), t0);
    c.send(frame(3)).expect("open");
    c.send(frame(4)).expect("open");
    assert!(c.close());
    assert!(!c.close(), "second close is idempotent");
    assert_eq!(c.send(frame(1)), Err(Error::Closed));
    assert!(!c.is_finished());
    assert_eq!(c.poll_timeout(), None);
    let mut batch = Batch::new();
    assert_eq!(c.drain_into(&mut batch, t0), 2);
    assert_eq!(batch.remaining(), 7);
    assert!(c.is_finished());
    assert_eq!(c.end_reason(), Some(EndReason::Closed));
}

#[test]
fn logged_events_carry_their_own_id() {
    let t0 = Instant::now();
    let preamble = Frame::from_static(b"retry: 1\nid: tab~1.0\n\n");
    let line = Frame::from_static(b"id: tab~1.0\n");
    let mut c = Connection::with_preamble(ConnectionConfig::default(), preamble, line, t0);
    let own = Frame::from_static(b"id: tab~1.1\n");
    c.send_logged(own, Event::new().data("a").encode())
        .expect("open");
    c.send(Event::new().data("b").encode()).expect("open");
    let mut batch = Batch::new();
    c.drain_into(&mut batch, t0);
    let wire = batch.copy_to_bytes(batch.remaining());
    // No repeat of the preamble's id: the first event had its own.
    assert_eq!(
        &wire[..],
        b"retry: 1\nid: tab~1.0\n\nid: tab~1.1\ndata: a\n\ndata: b\n\n"
    );
}

#[test]
fn a_shutdown_that_does_not_drain_in_time_is_cut() {
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(1);
    let mut c = conn(ConnectionConfig::default(), t0);
    c.send(frame(3)).expect("open");
    assert!(c.shutdown_by(deadline));
    assert_eq!(c.poll_timeout(), Some(deadline));
    c.handle_timeout(deadline - Duration::from_millis(1));
    assert!(!c.is_finished());
    c.handle_timeout(deadline);
    assert!(c.is_finished() && c.is_cut_off());
    assert_eq!(c.end_reason(), Some(EndReason::Shutdown));
    assert!(c.poll_transmit().is_none(), "the queue was dropped");
    // One that drains in time just ends.
    let mut c = conn(ConnectionConfig::default(), t0);
    c.send(frame(3)).expect("open");
    assert!(c.shutdown_by(deadline));
    assert!(c.poll_transmit().is_some());
    assert!(c.is_finished() && !c.is_cut_off());
    assert_eq!(c.poll_timeout(), None);
    // An empty one ends at once, with no deadline.
    let mut c = conn(ConnectionConfig::default(), t0);
    assert!(c.shutdown_by(deadline));
    assert!(c.is_finished() && !c.is_cut_off());
}

#[test]
fn a_replaced_connection_writes_only_its_last_block() {
    let t0 = Instant::now();
    let mut c = conn(ConnectionConfig::default(), t0);
    c.send(frame(3)).expect("open");
    c.replaced(Frame::from_static(b"id: fresh\n\n"));
    assert_eq!(c.send(frame(1)), Err(Error::Closed));
    assert!(!c.is_cut_off());
    let mut batch = Batch::new();
    assert_eq!(c.drain_into(&mut batch, t0), 1);
    assert_eq!(
        batch.copy_to_bytes(batch.remaining()),
        &b"id: fresh\n\n"[..]
    );
    assert!(c.is_finished());
    assert_eq!(c.end_reason(), Some(EndReason::Replaced));
}

#[test]
fn peer_gone_and_shutdown_do_not_mark() {
    let t0 = Instant::now();
    let mut c = conn(ConnectionConfig::default(), t0);
    c.send(frame(3)).expect("open");
    c.peer_gone();
    assert!(c.is_finished());
    assert_eq!(c.end_reason(), Some(EndReason::PeerGone));
    assert!(c.poll_transmit().is_none());

    let mut c = conn(ConnectionConfig::default(), t0);
    c.send(frame(3)).expect("open");
    assert!(c.shutdown());
    assert!(c.poll_transmit().is_some());
    assert!(c.is_finished());
    assert_eq!(c.end_reason(), Some(EndReason::Shutdown));

    let mut c = conn(ConnectionConfig::default(), t0);
    c.replaced(Frame::from_static(b"id: x\n\n"));
    assert_eq!(c.end_reason(), Some(EndReason::Replaced));
    // An end reason, once set, stays.
    c.peer_gone();
    assert_eq!(c.end_reason(), Some(EndReason::Replaced));
}
