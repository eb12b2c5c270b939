use std::sync::atomic::AtomicUsize;
use std::task::{Context, Poll, Wake, Waker};

use std::time::Instant;

use bytes::Buf;

use super::*;
use crate::clock::ManualClock;
use crate::frame::Batch;
use crate::request::{HttpVersion, Principal, Request};

mod adaptive;
mod coalesce;
mod relay;
mod resume;
mod shards;
#[cfg(feature = "signing")]
mod signing;
mod topics;

/// A waker that counts its wake-ups.
#[derive(Default)]
struct Counter(AtomicUsize);

impl Wake for Counter {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl Counter {
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// A hub builder whose writers are woken at once (no write window): these tests drain at
/// one instant and are about what is written, not when (`adaptive.rs` and `coalesce.rs` are).
fn unwindowed() -> HubBuilder {
    Hub::builder().write_window(WriteWindow::Off)
}

fn connect(hub: &Hub, target: &str, now: Instant) -> (Session, Outlet) {
    let mut req = Request::new(b"GET", target.as_bytes(), HttpVersion::Http11);
    req.header(b"accept", b"text/event-stream");
    match hub.decide(&req, now) {
        Decision::Accept(a) => (a.session, a.outlet),
        other => panic!("expected accept: {other:?}"),
    }
}

fn drain(outlet: &mut Outlet, now: Instant) -> (Poll<Option<usize>>, Vec<u8>) {
    let waker = Waker::from(Arc::new(Counter::default()));
    let mut cx = Context::from_waker(&waker);
    let mut batch = Batch::new();
    let poll = outlet.poll_drain(&mut cx, now, &mut batch);
    (poll, batch.copy_to_bytes(batch.remaining()).to_vec())
}

#[test]
fn preamble_then_events_to_one_session() {
    let now = Instant::now();
    let hub = unwindowed().build(Instant::now);
    let (a, mut oa) = connect(&hub, "/e?id=a", now);
    let (_b, mut ob) = connect(&hub, "/e?id=b", now);
    assert_eq!(hub.len(), 2);
    assert!(!a.is_new());
    let (_, bytes) = drain(&mut oa, now);
    assert!(bytes.starts_with(b"retry: 3000\nid: a\n\n"));
    assert!(drain(&mut ob, now).0.is_ready());

    hub.send_to("a", &Event::new().data("only a"))
        .expect("live");
    a.emit("ev", "x").expect("valid name");
    assert_eq!(
        drain(&mut oa, now),
        (
            Poll::Ready(Some(3)),
            b"id: a\ndata: only a\n\nevent: ev\ndata: x\n\n".to_vec()
        )
    );
    assert_eq!(drain(&mut ob, now), (Poll::Pending, vec![]));
    assert_eq!(hub.send_to("zzz", &Event::new()), Err(Error::NotConnected));
    assert!(matches!(
        a.emit("bad\nname", "x"),
        Err(Error::InvalidField(_))
    ));
}

#[test]
fn an_idle_writer_keeps_room_for_a_few_frames_only() {
    let now = Instant::now();
    let hub = unwindowed().build(Instant::now);
    let (session, mut outlet) = connect(&hub, "/e", now);
    let waker = Waker::from(Arc::new(Counter::default()));
    let mut cx = Context::from_waker(&waker);
    let mut batch = Batch::new();
    assert!(outlet.poll_drain(&mut cx, now, &mut batch).is_ready()); // preamble
    batch.advance(batch.remaining());
    for i in 0..32 {
        session.send(format!("burst {i}")).unwrap();
    }
    // The 32 events (after the session's id line, sent with the first).
    assert_eq!(
        outlet.poll_drain(&mut cx, now, &mut batch),
        Poll::Ready(Some(33))
    );
    assert!(batch.capacity() >= 33);
    // Written, and nothing more queued: the writer waits with room for a few frames.
    batch.advance(batch.remaining());
    assert!(outlet.poll_drain(&mut cx, now, &mut batch).is_pending());
    assert!(
        batch.capacity() <= crate::frame::IDLE_FRAMES,
        "{}",
        batch.capacity()
    );
    // And the next event still goes out.
    session.send("after").unwrap();
    assert_eq!(
        outlet.poll_drain(&mut cx, now, &mut batch),
        Poll::Ready(Some(1))
    );
}

#[test]
fn writer_is_woken_by_send_and_broadcast_shares_one_frame() {
    let now = Instant::now();
    let hub = unwindowed().build(Instant::now);
    let mut outlets: Vec<Outlet> = (0..3)
        .map(|i| connect(&hub, &format!("/e?id={i}"), now).1)
        .collect();
    let counters: Vec<Arc<Counter>> = (0..3).map(|_| Arc::new(Counter::default())).collect();
    for (o, c) in outlets.iter_mut().zip(&counters) {
        let waker = Waker::from(c.clone());
        let mut cx = Context::from_waker(&waker);
        let mut batch = Batch::new();
        assert!(o.poll_drain(&mut cx, now, &mut batch).is_ready()); // preamble
        assert!(o.poll_drain(&mut cx, now, &mut batch).is_pending());
    }
    let payload = bytes::Bytes::from(vec![b'p'; 4096]);
    assert_eq!(hub.broadcast(&Event::new().data(payload.clone())), 3);
    let mut ptrs = Vec::new();
    for (o, c) in outlets.iter_mut().zip(&counters) {
        assert_eq!(c.count(), 1);
        let waker = Waker::from(c.clone());
        let mut cx = Context::from_waker(&waker);
        let mut batch = Batch::new();
        // The session's id line, then the shared frame.
        assert_eq!(o.poll_drain(&mut cx, now, &mut batch), Poll::Ready(Some(2)));
        let mut io = [std::io::IoSlice::new(&[]); 8];
        assert_eq!(batch.chunks_vectored(&mut io), 4);
        assert!(io[0].starts_with(b"id: "));
        ptrs.push(io[2].as_ptr());
    }
    assert!(
        ptrs.iter().all(|&p| p == payload.as_ptr()),
        "every session shares the payload"
    );
}

#[test]
fn close_drains_marks_and_reconnect_gets_204() {
    let now = Instant::now();
    let hub = unwindowed().build(Instant::now);
    let (s, mut o) = connect(&hub, "/e?id=tab", now);
    assert!(drain(&mut o, now).0.is_ready());
    s.send("last words").expect("open");
    assert!(s.close());
    assert!(!s.close());
    assert!(s.is_closed());
    assert_eq!(s.send("late"), Err(Error::Closed));
    assert_eq!(
        drain(&mut o, now),
        (
            Poll::Ready(Some(2)),
            b"id: tab\ndata: last words\n\n".to_vec()
        )
    );
    assert_eq!(drain(&mut o, now).0, Poll::Ready(None));
    assert!(hub.is_empty());
    let waker = Waker::from(Arc::new(Counter::default()));
    assert_eq!(
        s.poll_end(&mut Context::from_waker(&waker)),
        Poll::Ready(EndReason::Closed)
    );

    let mut req = Request::new(b"GET", b"/e", HttpVersion::Http11);
    req.header(b"accept", b"text/event-stream")
        .header(b"last-event-id", b"tab");
    assert!(matches!(hub.decide(&req, now), Decision::NoContent { .. }));
    // The mark was consumed: a new load with ?id=tab starts afresh.
    let (s2, _o2) = connect(&hub, "/e?id=tab", now);
    assert!(!s2.is_new());
    assert_eq!(hub.close("nobody"), Err(Error::NotConnected));
}

#[test]
fn dropping_the_outlet_removes_the_session_and_wakes_end_waiters() {
    let now = Instant::now();
    let hub = unwindowed().build(Instant::now);
    let (s, o) = connect(&hub, "/e", now);
    assert!(s.is_new());
    let counter = Arc::new(Counter::default());
    let waker = Waker::from(counter.clone());
    let mut cx = Context::from_waker(&waker);
    assert!(s.poll_end(&mut cx).is_pending());
    assert!(s.poll_end(&mut cx).is_pending());
    drop(o);
    assert!(hub.is_empty());
    assert_eq!(counter.count(), 1);
    assert_eq!(s.poll_end(&mut cx), Poll::Ready(EndReason::PeerGone));
    assert_eq!(s.send("x"), Err(Error::Closed));
    // Not marked: the id may come back.
    let mut req = Request::new(b"GET", b"/e", HttpVersion::Http11);
    let id = s.id().to_string();
    req.header(b"accept", b"text/event-stream")
        .header(b"last-event-id", id.as_bytes());
    assert!(matches!(hub.decide(&req, now), Decision::Accept(_)));
}

#[test]
fn duplicate_id_replaces_the_old_connection_and_renames_its_tab() {
    let now = Instant::now();
    let hub = unwindowed()
        .id_generator(|| SessionId::parse(b"fresh", 128).expect("valid"))
        .build(Instant::now);
    let (old, mut old_out) = connect(&hub, "/e?id=dup", now);
    old.send("before").expect("open");
    let (new, mut new_out) = connect(&hub, "/e?id=dup", now);
    assert_eq!(hub.len(), 1);
    // One session, now served by the new connection.
    assert_eq!(old.id(), new.id());
    assert!(old.end_reason().is_none());
    assert_eq!(old_out.end_reason(), Some(EndReason::Replaced));
    // The old stream's last block gives its tab a fresh id, and nothing else.
    assert_eq!(
        drain(&mut old_out, now),
        (Poll::Ready(Some(1)), b"id: fresh\n\n".to_vec())
    );
    assert_eq!(drain(&mut old_out, now).0, Poll::Ready(None));
    // The old writer finishing must not touch the new connection.
    assert_eq!(hub.len(), 1);
    assert_eq!(hub.stats().attached, 1);
    hub.send_to("dup", &Event::new().data("n")).expect("live");
    let (_, bytes) = drain(&mut new_out, now);
    assert!(bytes.starts_with(b"retry: 3000\nid: dup\n\n"));
    assert!(bytes.ends_with(b"data: n\n\n"));
    assert!(new.end_reason().is_none());
}

#[test]
fn a_guard_is_woken_when_its_stream_ends_without_a_cut_off() {
    let now = Instant::now();
    let hub = unwindowed().build(Instant::now);
    let (_s, o) = connect(&hub, "/e", now);
    let guard = Arc::new(Counter::default());
    let waker = Waker::from(guard.clone());
    let mut cx = Context::from_waker(&waker);
    let cutoff = o.cutoff();
    assert_eq!(cutoff.poll(&mut cx), Poll::Pending);
    assert!(!cutoff.is_done());
    // The writer is done with it (hyper dropped the body): the guard hears of it, so that
    // what it knows of the stream (open, reads discarded) is looked at again.
    drop(o);
    assert_eq!(guard.count(), 1);
    assert!(cutoff.is_done());
    assert_eq!(cutoff.poll(&mut cx), Poll::Pending, "over, not cut off");
}

#[test]
fn slow_reader_is_cut_off_and_others_are_not() {
    let now = Instant::now();
    let hub = unwindowed().budget(1000).build(Instant::now);
    let (slow, mut slow_out) = connect(&hub, "/e?id=slow", now);
    let (_fast, mut fast_out) = connect(&hub, "/e?id=fast", now);
    let ev = Event::new().data(vec![b'x'; 300]);
    // A transport guard of the slow connection waits for a cut-off.
    let guard = Arc::new(Counter::default());
    let guard_waker = Waker::from(guard.clone());
    let mut cx = Context::from_waker(&guard_waker);
    let cutoff = slow_out.cutoff();
    assert_eq!(cutoff.poll(&mut cx), Poll::Pending);
    let mut delivered = 0;
    for _ in 0..10 {
        delivered += hub.broadcast(&ev);
        let (_, bytes) = drain(&mut fast_out, now);
        assert!(!bytes.is_empty());
    }
    assert_eq!(slow.end_reason(), Some(EndReason::TooSlow));
    // Cut off at once: the guard was woken, and the session left the hub before its
    // writer noticed anything.
    assert!(guard.0.load(Ordering::SeqCst) >= 1, "the guard was woken");
    assert_eq!(cutoff.poll(&mut cx), Poll::Ready(EndReason::TooSlow));
    assert_eq!(
        slow_out.poll_cut_off(&mut cx),
        Poll::Ready(EndReason::TooSlow)
    );
    assert!(hub.session("slow").is_none());
    assert!(slow.queued_bytes() == 0);
    assert_eq!(
        delivered,
        10 + 3,
        "fast took all ten, slow three before it was cut"
    );
    assert_eq!(drain(&mut slow_out, now).0, Poll::Ready(None));
    assert!(cutoff.is_done());
    assert_eq!(
        hub.ids(),
        vec![SessionId::parse(b"fast", 128).expect("valid")]
    );
}

#[test]
fn keep_alive_through_the_outlet() {
    let t0 = Instant::now();
    let hub = unwindowed()
        .keep_alive(Some(Duration::from_secs(5)))
        .build(Instant::now);
    let (_s, mut o) = connect(&hub, "/e", t0);
    assert!(drain(&mut o, t0).0.is_ready());
    assert_eq!(o.poll_timeout(), Some(t0 + Duration::from_secs(5)));
    assert_eq!(drain(&mut o, t0 + Duration::from_secs(4)).0, Poll::Pending);
    assert_eq!(
        drain(&mut o, t0 + Duration::from_secs(5)),
        (Poll::Ready(Some(1)), b":\n\n".to_vec())
    );
}

#[test]
fn poll_timeout_follows_writes_and_the_end() {
    let t0 = Instant::now();
    let s = Duration::from_secs(1);
    let clock = ManualClock::starting_at(t0);
    let hub = unwindowed().keep_alive(Some(5 * s)).build(clock.clone());
    let (session, mut o) = connect(&hub, "/e?id=a", t0);
    assert_eq!(
        o.poll_timeout(),
        Some(t0 + 5 * s),
        "before a drain: the connection's"
    );
    assert!(drain(&mut o, t0).0.is_ready());
    session.send("x").expect("open");
    assert!(drain(&mut o, t0 + 2 * s).0.is_ready());
    assert_eq!(
        o.poll_timeout(),
        Some(t0 + 7 * s),
        "the write moved keep-alive"
    );
    // A writer that waits is woken by a change of its deadline, and its drain reads it.
    let writer = Arc::new(Counter::default());
    let waker = Waker::from(writer.clone());
    let mut batch = Batch::new();
    let mut cx = Context::from_waker(&waker);
    assert!(o.poll_drain(&mut cx, t0 + 3 * s, &mut batch).is_pending());
    clock.set(t0 + 3 * s);
    assert_eq!(hub.shutdown(), 1);
    assert_eq!(writer.count(), 1, "the shutdown woke the writer");
    assert_eq!(drain(&mut o, t0 + 3 * s).0, Poll::Ready(None));
    assert_eq!(o.poll_timeout(), None, "an ended stream has no deadline");
}

#[test]
fn shutdown_ends_every_stream_without_marking() {
    let now = Instant::now();
    let hub = unwindowed().build(Instant::now);
    let (s, mut o) = connect(&hub, "/e?id=x", now);
    assert_eq!(hub.shutdown(), 1);
    assert!(hub.is_shutting_down());
    assert_eq!(drain(&mut o, now).0, Poll::Ready(Some(1))); // the preamble still goes out
    assert_eq!(drain(&mut o, now).0, Poll::Ready(None));
    assert_eq!(s.end_reason(), Some(EndReason::Shutdown));
    // New streams are told to come back later, elsewhere: the id is not marked.
    let mut req = Request::new(b"GET", b"/e?id=x", HttpVersion::Http11);
    req.header(b"accept", b"text/event-stream");
    match hub.decide(&req, now) {
        Decision::GoAway { head, body } => {
            assert_eq!(head.status(), 200);
            assert!(head.headers().contains(&("connection", "close")));
            assert_eq!(body.to_bytes(), &b"retry: 3000\n\n"[..]);
        }
        other => panic!("expected go-away: {other:?}"),
    }
    assert!(hub.is_empty());
}

#[test]
fn a_shutdown_cuts_what_does_not_drain_in_time() {
    let t0 = Instant::now();
    let hub = unwindowed()
        .keep_alive(None)
        .shutdown_grace(Duration::from_secs(1))
        .build(ManualClock::starting_at(t0));
    let (slow, mut slow_out) = connect(&hub, "/e?id=slow", t0);
    let (_fast, mut fast_out) = connect(&hub, "/e?id=fast", t0);
    slow.send("never read").expect("open");
    let guard = Arc::new(Counter::default());
    let guard_waker = Waker::from(guard.clone());
    let cutoff = slow_out.cutoff();
    assert!(
        cutoff
            .poll(&mut Context::from_waker(&guard_waker))
            .is_pending()
    );
    let timer = Arc::new(Counter::default());
    let timer_waker = Waker::from(timer.clone());
    let mut cx = Context::from_waker(&timer_waker);
    assert_eq!(hub.poll_timers(&mut cx, t0), None);
    assert_eq!(hub.shutdown(), 2);
    assert_eq!(timer.count(), 1, "the timer driver learns of the deadline");
    let deadline = t0 + Duration::from_secs(1);
    assert_eq!(hub.poll_timers(&mut cx, t0), Some(deadline));
    // The fast one drains and ends; the slow one's writer never comes back.
    assert_eq!(drain(&mut fast_out, t0).0, Poll::Ready(Some(1)));
    assert_eq!(drain(&mut fast_out, t0).0, Poll::Ready(None));
    assert_eq!(hub.poll_timers(&mut cx, deadline), None);
    assert_eq!(
        guard.count(),
        1,
        "the transport guard was woken to drop the socket"
    );
    assert_eq!(
        cutoff.poll(&mut Context::from_waker(&guard_waker)),
        Poll::Ready(EndReason::Shutdown)
    );
    assert_eq!(drain(&mut slow_out, deadline).0, Poll::Ready(None));
    assert_eq!(slow.end_reason(), Some(EndReason::Shutdown));
    assert!(hub.is_empty());
}

#[test]
fn dropping_the_stream_ends_without_marking() {
    let now = Instant::now();
    let hub = unwindowed().build(Instant::now);
    let (s, mut o) = connect(&hub, "/e?id=d", now);
    assert!(s.drop_stream());
    assert!(!s.drop_stream());
    assert_eq!(drain(&mut o, now).0, Poll::Ready(Some(1)));
    assert_eq!(drain(&mut o, now).0, Poll::Ready(None));
    assert_eq!(s.end_reason(), Some(EndReason::Dropped));
    let mut req = Request::new(b"GET", b"/e", HttpVersion::Http11);
    req.header(b"accept", b"text/event-stream")
        .header(b"last-event-id", b"d");
    assert!(matches!(hub.decide(&req, now), Decision::Accept(_)));
}

#[test]
fn drained_once_every_writer_dropped_its_outlet() {
    let now = Instant::now();
    let hub = unwindowed().keep_alive(None).build(Instant::now);
    let waiter = Arc::new(Counter::default());
    let waker = Waker::from(waiter.clone());
    let mut cx = Context::from_waker(&waker);
    assert!(hub.poll_drained(&mut cx).is_ready(), "no stream yet");
    let (_a, out_a) = connect(&hub, "/e?id=a", now);
    let (_b, mut out_b) = connect(&hub, "/e?id=b", now);
    assert!(hub.poll_drained(&mut cx).is_pending());
    assert_eq!(hub.shutdown(), 2);
    // A shut-down stream is over for the hub only when its writer is done with it.
    assert_eq!(drain(&mut out_b, now).0, Poll::Ready(Some(1)));
    assert_eq!(drain(&mut out_b, now).0, Poll::Ready(None));
    assert!(hub.poll_drained(&mut cx).is_pending());
    drop(out_b);
    assert!(hub.poll_drained(&mut cx).is_pending());
    assert_eq!(waiter.count(), 0);
    drop(out_a);
    assert_eq!(waiter.count(), 1, "the last stream's end wakes the waiter");
    assert!(hub.poll_drained(&mut cx).is_ready());
}
