//! The fixed write window: a frame queued after a connection's first batch opens a window
//! that the hub's timers close, what is queued meanwhile leaves in one batch, and the end of
//! a stream never waits.

use super::*;

const WINDOW: Duration = Duration::from_millis(10);

/// Settings with the fixed window, and the fake clock (at `t0`) the hub will read to
/// date a window.
fn windowed_hub(t0: Instant) -> (HubBuilder, ManualClock) {
    let builder = Hub::builder().keep_alive(None).coalesce(WINDOW);
    (builder, ManualClock::starting_at(t0))
}

/// A connection's writer: its outlet and the waker it registers.
pub(super) struct Writer {
    pub(super) outlet: Outlet,
    woken: Arc<Counter>,
}

impl Writer {
    pub(super) fn new(outlet: Outlet) -> Writer {
        Writer {
            outlet,
            woken: Arc::new(Counter::default()),
        }
    }

    pub(super) fn drain(&mut self, now: Instant) -> (Poll<Option<usize>>, Vec<u8>) {
        let waker = Waker::from(self.woken.clone());
        let mut cx = Context::from_waker(&waker);
        let mut batch = Batch::new();
        let poll = self.outlet.poll_drain(&mut cx, now, &mut batch);
        (poll, batch.copy_to_bytes(batch.remaining()).to_vec())
    }

    /// As the demos do: a first event on accept, which goes out with the preamble (and
    /// repeats the id). Then the writer waits: it is primed and idle.
    pub(super) fn prime(&mut self, session: &Session, now: Instant) {
        session.emit("connect", "{}").expect("valid");
        assert_eq!(self.drain(now).0, Poll::Ready(Some(3)), "the first batch");
        assert_eq!(self.drain(now).0, Poll::Pending);
    }

    pub(super) fn woken(&self) -> usize {
        self.woken.count()
    }
}

/// What drives the hub's timers, with the waker it registers.
pub(super) struct Driver {
    pub(super) woken: Arc<Counter>,
}

impl Driver {
    pub(super) fn new() -> Driver {
        Driver {
            woken: Arc::new(Counter::default()),
        }
    }

    pub(super) fn poll(&self, hub: &Hub, now: Instant) -> Option<Instant> {
        let waker = Waker::from(self.woken.clone());
        hub.poll_timers(&mut Context::from_waker(&waker), now)
    }
}

#[test]
fn a_held_writer_is_woken_when_its_window_is_driven() {
    let t0 = Instant::now();
    let (builder, clock) = windowed_hub(t0);
    let hub = builder.build(clock.clone());
    let driver = Driver::new();
    assert_eq!(driver.poll(&hub, t0), None);
    let (s, outlet) = connect(&hub, "/e?id=a", t0);
    let mut w = Writer::new(outlet);
    w.prime(&s, t0);

    s.send("one").expect("open");
    assert_eq!(w.woken(), 0, "the wake-up is held");
    assert_eq!(driver.woken.count(), 1, "the driver learns of the window");
    let due = t0 + WINDOW;
    assert_eq!(driver.poll(&hub, t0), Some(due));
    assert_eq!(driver.poll(&hub, due - Duration::from_millis(1)), Some(due));
    assert_eq!(w.woken(), 0);
    // Polled before the window ends (a keep-alive timer, say): it takes nothing yet.
    assert_eq!(
        w.drain(due - Duration::from_millis(1)),
        (Poll::Pending, vec![])
    );
    assert_eq!(driver.poll(&hub, due), None);
    assert_eq!(w.woken(), 1, "woken when the window ends");
    assert_eq!(
        w.drain(due),
        (Poll::Ready(Some(1)), b"data: one\n\n".to_vec())
    );
    assert_eq!(w.drain(due).0, Poll::Pending);

    // The next event opens a new window, from when it was queued.
    let t1 = due + Duration::from_millis(3);
    clock.set(t1);
    s.send("two").expect("open");
    assert_eq!(driver.poll(&hub, t1), Some(t1 + WINDOW));
    assert_eq!(w.woken(), 1);
    assert_eq!(driver.poll(&hub, t1 + WINDOW), None);
    assert_eq!(w.woken(), 2);
    assert_eq!(
        w.drain(t1 + WINDOW),
        (Poll::Ready(Some(1)), b"data: two\n\n".to_vec())
    );
}

#[test]
fn what_is_queued_in_the_window_comes_out_as_one_batch() {
    let t0 = Instant::now();
    let (builder, clock) = windowed_hub(t0);
    let hub = builder.build(clock.clone());
    let driver = Driver::new();
    let (s, outlet) = connect(&hub, "/e?id=a", t0);
    let (b, other) = connect(&hub, "/e?id=b", t0);
    let mut w = Writer::new(outlet);
    let mut wb = Writer::new(other);
    w.prime(&s, t0);
    wb.prime(&b, t0);

    s.send("1").expect("open");
    clock.set(t0 + Duration::from_millis(4));
    hub.send_to("a", &Event::new().data("2")).expect("live");
    assert_eq!(hub.broadcast(&Event::new().data("3")), 2);
    s.emit("ev", "4").expect("valid");
    assert_eq!(
        (w.woken(), wb.woken()),
        (0, 0),
        "nothing wakes a held writer"
    );
    // One window for all, from the first held frame; the broadcast held `b` later.
    assert_eq!(
        driver.poll(&hub, t0 + WINDOW),
        Some(t0 + Duration::from_millis(14))
    );
    assert_eq!((w.woken(), wb.woken()), (1, 0));
    let (poll, bytes) = w.drain(t0 + WINDOW);
    assert_eq!(poll, Poll::Ready(Some(4)), "one batch");
    assert_eq!(
        bytes,
        b"data: 1\n\ndata: 2\n\ndata: 3\n\nevent: ev\ndata: 4\n\n".to_vec()
    );
    assert_eq!(w.drain(t0 + WINDOW).0, Poll::Pending);
    assert_eq!(driver.poll(&hub, t0 + Duration::from_millis(14)), None);
    assert_eq!(wb.woken(), 1);
    assert_eq!(
        wb.drain(t0 + Duration::from_millis(14)),
        (Poll::Ready(Some(1)), b"data: 3\n\n".to_vec())
    );
}

#[test]
fn the_first_batch_is_never_held() {
    let t0 = Instant::now();
    let (builder, clock) = windowed_hub(t0);
    let hub = builder.build(clock.clone());
    let driver = Driver::new();
    let (s, outlet) = connect(&hub, "/e?id=a", t0);
    let mut w = Writer::new(outlet);
    // As the demos do on accept: the first event goes with the preamble.
    s.emit("connect", "{}").expect("valid");
    let (poll, bytes) = w.drain(t0);
    assert_eq!(poll, Poll::Ready(Some(3)));
    assert!(bytes.starts_with(b"retry: 3000\nid: a\n\n"));
    assert!(bytes.ends_with(b"id: a\nevent: connect\ndata: {}\n\n"));
    assert_eq!(driver.poll(&hub, t0), None, "nothing was held");
    assert_eq!(driver.woken.count(), 0);
}

#[test]
fn a_busy_writer_waits_for_the_window_too() {
    let t0 = Instant::now();
    let (builder, clock) = windowed_hub(t0);
    let hub = builder.build(clock.clone());
    let driver = Driver::new();
    let (s, outlet) = connect(&hub, "/e?id=a", t0);
    let mut w = Writer::new(outlet);
    w.prime(&s, t0);
    s.send("1").expect("open");
    let t1 = t0 + WINDOW;
    assert_eq!(driver.poll(&hub, t1), None);
    // Woken: it takes a batch and writes it; meanwhile more comes, which opens a window.
    assert_eq!(w.drain(t1).0, Poll::Ready(Some(1)));
    clock.set(t1);
    s.send("2").expect("open");
    s.send("3").expect("open");
    assert_eq!(w.woken(), 1);
    assert_eq!(
        w.drain(t1).0,
        Poll::Pending,
        "back from its write, it waits"
    );
    assert_eq!(driver.poll(&hub, t1), Some(t1 + WINDOW));
    assert_eq!(driver.poll(&hub, t1 + WINDOW), None);
    assert_eq!(w.woken(), 2);
    assert_eq!(
        w.drain(t1 + WINDOW),
        (Poll::Ready(Some(2)), b"data: 2\n\ndata: 3\n\n".to_vec())
    );
}

#[test]
fn what_comes_between_a_window_end_and_the_drain_goes_with_it() {
    let t0 = Instant::now();
    let (builder, clock) = windowed_hub(t0);
    let hub = builder.build(clock.clone());
    let driver = Driver::new();
    let (s, outlet) = connect(&hub, "/e?id=a", t0);
    let mut w = Writer::new(outlet);
    w.prime(&s, t0);
    s.send("1").expect("open");
    let end = t0 + WINDOW;
    assert_eq!(driver.poll(&hub, end), None);
    assert_eq!(w.woken(), 1);
    // Woken, not yet run: a frame now opens no window of its own (which would hold the
    // first one for a second window) and goes with the batch.
    clock.set(end);
    s.send("2").expect("open");
    assert_eq!(driver.poll(&hub, end), None, "no window opened");
    assert_eq!(
        w.drain(end),
        (Poll::Ready(Some(2)), b"data: 1\n\ndata: 2\n\n".to_vec())
    );
    // After that drain, the next frame opens a window again.
    s.send("3").expect("open");
    assert_eq!(driver.poll(&hub, end), Some(end + WINDOW));
}

#[test]
fn close_shutdown_cut_and_replacement_wake_at_once_while_held() {
    let t0 = Instant::now();
    let (builder, clock) = windowed_hub(t0);
    let hub = builder
        .budget(1000)
        .id_generator(|| SessionId::parse(b"fresh", 128).expect("valid"))
        .build(clock.clone());
    let driver = Driver::new();
    let mut writers = Vec::new();
    let mut sessions = Vec::new();
    for id in ["closed", "cut", "replaced", "shut"] {
        let (s, outlet) = connect(&hub, &format!("/e?id={id}"), t0);
        let mut w = Writer::new(outlet);
        w.prime(&s, t0);
        s.send("queued").expect("open");
        assert_eq!(w.woken(), 0, "held");
        writers.push(w);
        sessions.push(s);
    }
    let [closed, cut, replaced, shut] = &mut writers[..] else {
        unreachable!()
    };

    // A close: woken at once; what was queued before it goes out, then the stream ends.
    assert!(sessions[0].close());
    assert_eq!(closed.woken(), 1);
    assert_eq!(
        closed.drain(t0),
        (Poll::Ready(Some(1)), b"data: queued\n\n".to_vec())
    );
    assert_eq!(closed.drain(t0).0, Poll::Ready(None));

    // Over budget: cut off at once.
    let big = "x".repeat(2000);
    assert!(sessions[1].send(big).is_err());
    assert_eq!(cut.woken(), 1);
    assert_eq!(cut.outlet.end_reason(), Some(EndReason::TooSlow));
    assert_eq!(cut.drain(t0).0, Poll::Ready(None));

    // Replaced by a new connection with its id: the old writer writes its last block now.
    let (_again, _new) = connect(&hub, "/e?id=replaced", t0);
    assert_eq!(replaced.woken(), 1);
    assert_eq!(replaced.outlet.end_reason(), Some(EndReason::Replaced));

    // A shutdown: woken at once; what was queued goes out, then the stream ends.
    hub.shutdown();
    assert_eq!(shut.woken(), 1);
    assert_eq!(
        shut.drain(t0),
        (Poll::Ready(Some(1)), b"data: queued\n\n".to_vec())
    );
    assert_eq!(shut.drain(t0).0, Poll::Ready(None));

    // The held wake-ups still come due; they find nothing to do.
    assert_eq!(
        driver.poll(&hub, t0 + WINDOW),
        Some(t0 + Duration::from_secs(1))
    );
}

#[test]
fn without_a_window_every_send_wakes_the_writer_at_once() {
    let t0 = Instant::now();
    let clock = ManualClock::starting_at(t0);
    for hub in [
        Hub::builder()
            .keep_alive(None)
            .write_window(WriteWindow::Off)
            .build(clock.clone()),
        Hub::builder()
            .keep_alive(None)
            .coalesce(Duration::ZERO)
            .build(clock.clone()),
        Hub::builder()
            .keep_alive(None)
            .write_window(WriteWindow::Adaptive(Duration::ZERO))
            .build(clock.clone()),
    ] {
        assert_eq!(hub.settings().write_window, WriteWindow::Off);
        let driver = Driver::new();
        let (s, outlet) = connect(&hub, "/e?id=a", t0);
        let mut w = Writer::new(outlet);
        w.prime(&s, t0);
        s.send("1").expect("open");
        assert_eq!(w.woken(), 1);
        assert_eq!(w.drain(t0).0, Poll::Ready(Some(1)));
        assert_eq!(w.drain(t0).0, Poll::Pending);
        hub.broadcast(&Event::new().data("2"));
        assert_eq!(w.woken(), 2);
        assert_eq!(driver.poll(&hub, t0), None);
        assert_eq!(driver.woken.count(), 0);
    }
}
