//! The `Stream` adapters: events out of a byte stream (one that ends, one that errors, one
//! over the limits), and a stream of events into a session (ending with it, slowed by the
//! budget, stopped by the session's end).

#![cfg(feature = "stream")]
#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use futures_lite::{StreamExt, future, stream};
use sse_proto::{
    Batch, Decision, Error, Event, HttpVersion, Hub, Limits, MessageStream, ReadError, Request,
};

fn chunks(parts: &[&'static str]) -> Vec<Result<Bytes, std::io::Error>> {
    parts.iter().map(|p| Ok(Bytes::from(*p))).collect()
}

#[test]
fn events_from_a_byte_stream_in_any_split() {
    let wire = "retry: 500\nid: s~1.1\ndata: a\n\nevent: x\ndata: b\r\n\r\n: c\n\ndata: partial";
    for step in [1, 3, 7, wire.len()] {
        let parts: Vec<Result<Bytes, std::io::Error>> = wire
            .as_bytes()
            .chunks(step)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let mut events = MessageStream::new(stream::iter(parts));
        let got: Vec<(String, String)> = future::block_on(async {
            let mut out = Vec::new();
            while let Some(e) = events.next().await {
                let e = e.unwrap();
                out.push((e.event, e.data));
            }
            out
        });
        assert_eq!(
            got,
            [
                ("message".to_owned(), "a".to_owned()),
                ("x".to_owned(), "b".to_owned())
            ],
            "an unfinished last event is dropped"
        );
        assert_eq!(events.last_event_id(), "s~1.1");
        assert_eq!(events.retry(), Some(Duration::from_millis(500)));
    }
}

#[test]
fn a_failing_or_oversized_byte_stream_ends_with_its_error() {
    let failing = vec![
        Ok(Bytes::from("data: one\n\n")),
        Err(std::io::Error::other("reset")),
        Ok(Bytes::from("data: never\n\n")),
    ];
    let mut events = MessageStream::new(stream::iter(failing));
    future::block_on(async {
        assert_eq!(events.next().await.unwrap().unwrap().data, "one");
        assert!(matches!(
            events.next().await,
            Some(Err(ReadError::Transport(_)))
        ));
        assert!(events.next().await.is_none(), "nothing after an error");
    });
    let limits = Limits {
        max_line_len: 16,
        max_event_size: 16,
    };
    let long = chunks(&["data: this line is much too long\n\n"]);
    let mut events = MessageStream::with_limits(stream::iter(long), limits);
    future::block_on(async {
        let err = events.next().await.unwrap().unwrap_err();
        assert!(matches!(err, ReadError::Decode(_)), "{err}");
        assert!(events.next().await.is_none());
    });
}

fn accept(hub: &Hub) -> sse_proto::Accepted {
    let mut req = Request::new(b"GET", b"/e", HttpVersion::Http11);
    req.header(b"accept", b"text/event-stream");
    match hub.decide(&req, Instant::now()) {
        Decision::Accept(a) => a,
        other => panic!("{other:?}"),
    }
}

#[derive(Default)]
struct Count(AtomicUsize);

impl std::task::Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_stream_forwarded_into_a_session_waits_for_room_and_ends_with_it() {
    // No write window: nothing here drives the hub's timers, which end one.
    let hub = Hub::builder()
        .write_window(sse_proto::WriteWindow::Off)
        .keep_alive(None)
        .budget(1000)
        .build(Instant::now);
    let accepted = accept(&hub);
    let mut outlet = accepted.outlet;
    let session = accepted.session.clone();
    // 20 events of 200 bytes: four times the budget.
    let events =
        stream::iter((0..20).map(|i| Event::new().data(format!("{i:03}{}", "x".repeat(197)))));
    let mut forward = Box::pin(session.forward(events));
    let woken = Arc::new(Count::default());
    let waker = Waker::from(woken.clone());
    let mut cx = Context::from_waker(&waker);
    let mut wire = Vec::new();
    let mut rounds = 0;
    let done = loop {
        if let Poll::Ready(result) = forward.as_mut().poll(&mut cx) {
            break result;
        }
        // It waits with at most a little over half the budget queued, never cut off.
        assert!(
            session.queued_bytes() <= 500 + 260,
            "{}",
            session.queued_bytes()
        );
        assert!(session.end_reason().is_none(), "the reader was not cut off");
        let mut batch = Batch::new();
        let mut noop = Context::from_waker(Waker::noop());
        let _ = outlet.poll_drain(&mut noop, Instant::now(), &mut batch);
        wire.extend_from_slice(&batch.copy_to_bytes(batch.remaining()));
        rounds += 1;
        assert!(rounds < 100);
    };
    assert_eq!(done, Ok(()));
    assert!(
        woken.0.load(Ordering::SeqCst) > 0,
        "the writer's drain woke it"
    );
    let mut batch = Batch::new();
    let _ = outlet.poll_drain(
        &mut Context::from_waker(Waker::noop()),
        Instant::now(),
        &mut batch,
    );
    wire.extend_from_slice(&batch.copy_to_bytes(batch.remaining()));
    let text = String::from_utf8(wire).unwrap();
    for i in 0..20 {
        assert_eq!(
            text.matches(&format!("data: {i:03}")).count(),
            1,
            "event {i}"
        );
    }
    assert!(rounds > 3, "it had to wait: {rounds} rounds");
}

#[test]
fn forwarding_stops_when_the_session_ends() {
    // No write window: nothing here drives the hub's timers, which end one.
    let hub = Hub::builder()
        .write_window(sse_proto::WriteWindow::Off)
        .keep_alive(None)
        .build(Instant::now);
    let accepted = accept(&hub);
    let session = accepted.session.clone();
    let endless = stream::repeat_with(|| Event::new().data("tick"));
    let mut forward = Box::pin(session.forward(endless));
    let mut cx = Context::from_waker(Waker::noop());
    // Nobody reads: it fills half the budget (1 MiB) and waits for room.
    assert!(forward.as_mut().poll(&mut cx).is_pending());
    assert!(session.queued_bytes() > 500_000);
    accepted.session.close();
    drop(accepted.outlet);
    let result = future::block_on(forward);
    assert_eq!(result, Err(Error::Closed));
}
