//! The adaptive write window, on a fake clock: a writer quiet for the window's length writes
//! at once; one that wrote within it waits until the window's length after that write and
//! takes everything in one batch; the end of a stream never waits.

use super::coalesce::{Driver, Writer};
use super::*;

const WINDOW: Duration = Duration::from_millis(10);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A connection of session `id` and its writer.
fn open(hub: &Hub, id: &str, t0: Instant) -> (Session, Writer) {
    let (session, outlet) = connect(hub, &format!("/e?id={id}"), t0);
    (session, Writer::new(outlet))
}

fn adaptive_hub(t0: Instant) -> (Hub, ManualClock) {
    let clock = ManualClock::starting_at(t0);
    let hub = Hub::builder()
        .keep_alive(None)
        .write_window(WriteWindow::Adaptive(WINDOW))
        .build(clock.clone());
    (hub, clock)
}

#[test]
fn a_quiet_writer_writes_at_once() {
    let t0 = Instant::now();
    let (hub, clock) = adaptive_hub(t0);
    let driver = Driver::new();
    let (s, mut w) = open(&hub, "a", t0);
    // Primed at t0: its last write.
    w.prime(&s, t0);
    // A window's length later (and long after): each send wakes the writer at once.
    for (i, at) in [t0 + WINDOW, t0 + ms(500)].into_iter().enumerate() {
        clock.set(at);
        s.send("quiet").expect("open");
        assert_eq!(w.woken(), i + 1, "woken at once");
        assert_eq!(driver.poll(&hub, at), None, "no window");
        assert_eq!(
            w.drain(at),
            (Poll::Ready(Some(1)), b"data: quiet\n\n".to_vec())
        );
        assert_eq!(w.drain(at).0, Poll::Pending);
    }
    assert_eq!(driver.woken.count(), 0, "the timers never had a window");
}

#[test]
fn a_busy_writer_batches_until_a_window_after_its_last_write() {
    let t0 = Instant::now();
    let (hub, clock) = adaptive_hub(t0);
    let driver = Driver::new();
    let (s, mut w) = open(&hub, "a", t0);
    w.prime(&s, t0);

    // Quiet: the first event goes at once, at t1.
    let t1 = t0 + ms(50);
    clock.set(t1);
    s.send("1").expect("open");
    assert_eq!(w.woken(), 1);
    assert_eq!(w.drain(t1).0, Poll::Ready(Some(1)));
    assert_eq!(w.drain(t1).0, Poll::Pending);

    // Within the window's length of that write: held until t1 + WINDOW, whenever it came.
    clock.set(t1 + ms(3));
    s.send("2").expect("open");
    clock.set(t1 + ms(7));
    s.send("3").expect("open");
    assert_eq!(hub.broadcast(&Event::new().data("4")), 1);
    assert_eq!(w.woken(), 1, "held");
    assert_eq!(driver.poll(&hub, t1 + ms(7)), Some(t1 + WINDOW));
    // Polled early (a keep-alive timer, say), the writer takes nothing.
    assert_eq!(w.drain(t1 + ms(8)), (Poll::Pending, vec![]));
    assert_eq!(driver.poll(&hub, t1 + WINDOW), None);
    assert_eq!(w.woken(), 2, "woken when the window ends");
    let t2 = t1 + WINDOW;
    assert_eq!(
        w.drain(t2),
        (
            Poll::Ready(Some(3)),
            b"data: 2\n\ndata: 3\n\ndata: 4\n\n".to_vec()
        )
    );

    // Busy writing that batch, more comes (it wakes nobody); back from the write, the
    // writer holds it until a window after its last write (t2), not a window from now.
    clock.set(t2 + ms(4));
    s.send("5").expect("open");
    assert_eq!(w.woken(), 2);
    assert_eq!(w.drain(t2 + ms(4)), (Poll::Pending, vec![]));
    assert_eq!(driver.poll(&hub, t2 + ms(4)), Some(t2 + WINDOW));
    s.send("6").expect("open");
    assert_eq!(driver.poll(&hub, t2 + WINDOW), None);
    assert_eq!(w.woken(), 3);
    assert_eq!(
        w.drain(t2 + WINDOW),
        (Poll::Ready(Some(2)), b"data: 5\n\ndata: 6\n\n".to_vec())
    );

    // Back from a write with nothing queued it waits; a window's length later, quiet again.
    assert_eq!(w.drain(t2 + WINDOW).0, Poll::Pending);
    let t3 = t2 + WINDOW + WINDOW;
    clock.set(t3);
    s.send("7").expect("open");
    assert_eq!(w.woken(), 4, "at once");
    assert_eq!(w.drain(t3).0, Poll::Ready(Some(1)));
}

#[test]
fn windows_of_writers_that_wrote_at_different_times_end_in_their_order() {
    let t0 = Instant::now();
    let (hub, clock) = adaptive_hub(t0);
    let driver = Driver::new();
    let (a, mut wa) = open(&hub, "a", t0);
    let (b, mut wb) = open(&hub, "b", t0);
    // `b` last wrote after `a`: a broadcast to both is held longer for `b`.
    wa.prime(&a, t0);
    wb.prime(&b, t0 + ms(6));
    clock.set(t0 + ms(8));
    // `b` first, so that its window (ending later) is handed to the timers first.
    b.send("b only").expect("open");
    assert_eq!(hub.broadcast(&Event::new().data("all")), 2);
    assert_eq!((wa.woken(), wb.woken()), (0, 0));
    assert_eq!(driver.poll(&hub, t0 + ms(8)), Some(t0 + WINDOW));
    assert_eq!(driver.poll(&hub, t0 + WINDOW), Some(t0 + ms(16)));
    assert_eq!((wa.woken(), wb.woken()), (1, 0));
    assert_eq!(
        wa.drain(t0 + WINDOW),
        (Poll::Ready(Some(1)), b"data: all\n\n".to_vec())
    );
    assert_eq!(driver.poll(&hub, t0 + ms(16)), None);
    assert_eq!((wa.woken(), wb.woken()), (1, 1));
    assert_eq!(
        wb.drain(t0 + ms(16)),
        (
            Poll::Ready(Some(2)),
            b"data: b only\n\ndata: all\n\n".to_vec()
        )
    );
}

#[test]
fn close_and_shutdown_never_wait_for_the_window() {
    let t0 = Instant::now();
    let (hub, clock) = adaptive_hub(t0);
    let driver = Driver::new();
    let (s, mut w) = open(&hub, "a", t0);
    let (other, mut wo) = open(&hub, "b", t0);
    w.prime(&s, t0);
    wo.prime(&other, t0);
    clock.set(t0 + ms(1));
    s.send("held").expect("open");
    other.send("held too").expect("open");
    assert_eq!((w.woken(), wo.woken()), (0, 0), "both held");

    // A close wakes the writer at once; it writes what was queued and ends.
    assert!(s.close());
    assert_eq!(w.woken(), 1);
    assert_eq!(
        w.drain(t0 + ms(1)),
        (Poll::Ready(Some(1)), b"data: held\n\n".to_vec())
    );
    assert_eq!(w.drain(t0 + ms(1)).0, Poll::Ready(None));

    // So does a shutdown.
    hub.shutdown();
    assert_eq!(wo.woken(), 1);
    assert_eq!(
        wo.drain(t0 + ms(1)),
        (Poll::Ready(Some(1)), b"data: held too\n\n".to_vec())
    );
    assert_eq!(wo.drain(t0 + ms(1)).0, Poll::Ready(None));
    // The windows still come due, and find nothing to do.
    assert_eq!(
        driver.poll(&hub, t0 + WINDOW),
        Some(t0 + ms(1) + Duration::from_secs(1))
    );
}

#[test]
fn a_busy_writer_back_with_a_close_queued_does_not_wait() {
    let t0 = Instant::now();
    let (hub, clock) = adaptive_hub(t0);
    let (s, mut w) = open(&hub, "a", t0);
    w.prime(&s, t0);
    clock.set(t0 + ms(2));
    // Sent and closed while the writer was busy with its first batch.
    s.send("last").expect("open");
    assert!(s.close());
    assert_eq!(
        w.drain(t0 + ms(2)),
        (Poll::Ready(Some(1)), b"data: last\n\n".to_vec())
    );
    assert_eq!(w.drain(t0 + ms(2)).0, Poll::Ready(None));
}

#[test]
fn a_writer_that_asks_after_its_window_ended_takes_the_batch_without_the_timers() {
    let t0 = Instant::now();
    let (hub, clock) = adaptive_hub(t0);
    let (s, mut w) = open(&hub, "a", t0);
    w.prime(&s, t0);
    clock.set(t0 + ms(1));
    s.send("held").expect("open");
    assert_eq!(
        w.drain(t0 + ms(2)),
        (Poll::Pending, vec![]),
        "the window is open"
    );
    // Nothing drove the hub's timers; the writer asks again after the window's end (its
    // keep-alive timer, say): it takes what was held.
    assert_eq!(
        w.drain(t0 + WINDOW),
        (Poll::Ready(Some(1)), b"data: held\n\n".to_vec())
    );
    // The timers, driven late, find the window gone and wake nobody.
    assert_eq!(Driver::new().poll(&hub, t0 + WINDOW), None);
    assert_eq!(w.woken(), 0);
}

#[test]
fn a_fan_out_that_finds_most_writers_busy_marks_the_hub_saturated() {
    let t0 = Instant::now();
    let (hub, clock) = adaptive_hub(t0);
    let mut tabs: Vec<(Session, Writer)> = (0..64)
        .map(|i| {
            let (s, mut w) = open(&hub, &format!("t{i}"), t0);
            w.prime(&s, t0);
            s.join("few").expect("no rule: every join");
            (s, w)
        })
        .collect();
    let saturated = || {
        hub.inner
            .saturated
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    // Every writer waits, quiet for long: each is woken at once, and the hub is quiet.
    let later = t0 + ms(500);
    clock.set(later);
    hub.broadcast(&Event::new().data("one"));
    assert!(!saturated());
    // The next fan-out finds them woken and not back yet.
    hub.broadcast(&Event::new().data("two"));
    assert!(saturated());
    // A few of them back and waiting: a publish to fewer streams than the sample says
    // nothing of the hub either way.
    for (s, w) in &mut tabs[..8] {
        assert_eq!(w.drain(later).0, Poll::Ready(Some(2)));
        assert_eq!(w.drain(later).0, Poll::Pending);
        s.leave("few").expect("left");
    }
    let few = hub.topic("few").expect("valid");
    for (s, _) in &tabs[..8] {
        s.join("few").expect("joined");
    }
    for (s, _) in &tabs[8..] {
        s.leave("few").expect("left");
    }
    clock.set(later + ms(500));
    few.send("to the few").expect("sent");
    assert!(saturated());
    // All back and waiting, quiet for long: the next fan-out finds the hub quiet.
    for (_, w) in &mut tabs[8..] {
        assert_eq!(w.drain(later).0, Poll::Ready(Some(2)));
        assert_eq!(w.drain(later).0, Poll::Pending);
    }
    for (_, w) in &mut tabs[..8] {
        assert_eq!(w.drain(later + ms(500)).0, Poll::Ready(Some(1)));
        assert_eq!(w.drain(later + ms(500)).0, Poll::Pending);
    }
    clock.set(later + ms(1_000));
    hub.broadcast(&Event::new().data("three"));
    assert!(!saturated());
}
