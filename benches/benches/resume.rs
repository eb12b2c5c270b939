//! Resume mode: how fast a reconnect gets its backlog (accept, replay into the outbox, and
//! the writer's drain), and what a send to a detached session costs.

// criterion_group! defines an undocumented `pub fn benches`.
#![allow(missing_docs)]

use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use bytes::Buf;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sse_proto::{
    Batch, Continuity, Decision, Event, HttpVersion, Hub, LogBounds, Outlet, Request, ResumeConfig,
};

const BACKLOG: usize = 10_000;

fn hub() -> Hub {
    let config = ResumeConfig::new(Duration::from_secs(600)).bounds(LogBounds {
        max_events: 2 * BACKLOG,
        max_bytes: 256 << 20,
    });
    // No write window: these hubs are drained without their timers (fanout measures it).
    Hub::builder()
        .write_window(sse_proto::WriteWindow::Off)
        .keep_alive(None)
        .budget(256 << 20)
        .resume(config)
        .build(Instant::now)
}

fn connect(hub: &Hub, last_event_id: Option<&str>) -> (sse_proto::Accepted, Instant) {
    let now = Instant::now();
    let mut req = Request::new(b"GET", b"/events", HttpVersion::Http11);
    req.header(b"accept", b"text/event-stream");
    if let Some(id) = last_event_id {
        req.header(b"last-event-id", id.as_bytes());
    }
    let Decision::Accept(accepted) = hub.decide(&req, now) else {
        unreachable!("a valid event-stream request")
    };
    (accepted, now)
}

/// Everything the outlet has queued, as the writer takes it: returns the bytes.
fn drain(outlet: &mut Outlet, now: Instant) -> usize {
    let mut cx = Context::from_waker(Waker::noop());
    let mut batch = Batch::new();
    let _ = outlet.poll_drain(&mut cx, now, &mut batch);
    batch.remaining()
}

/// The last event id a browser would hold after reading the preamble of `outlet`.
fn preamble_id(outlet: &mut Outlet, now: Instant) -> String {
    let mut cx = Context::from_waker(Waker::noop());
    let mut batch = Batch::new();
    let _ = outlet.poll_drain(&mut cx, now, &mut batch);
    let bytes = batch.copy_to_bytes(batch.remaining());
    let text = String::from_utf8_lossy(&bytes);
    text.lines()
        .find_map(|l| l.strip_prefix("id: "))
        .unwrap_or_default()
        .to_owned()
}

fn replay(c: &mut Criterion) {
    let mut group = c.benchmark_group("replay-10k");
    group.throughput(Throughput::Elements(BACKLOG as u64));
    for (label, size) in [("64B", 64), ("1KiB", 1024)] {
        let hub = hub();
        let (accepted, now) = connect(&hub, None);
        let mut outlet = accepted.outlet;
        let position = preamble_id(&mut outlet, now);
        drop(outlet); // detached
        let event = Event::new()
            .event("tick")
            .expect("valid")
            .data("x".repeat(size));
        for _ in 0..BACKLOG {
            accepted.session.send_event(&event).expect("logged");
        }
        group.bench_function(
            BenchmarkId::new("sse-proto/reconnect-and-drain", label),
            |b| {
                b.iter(|| {
                    let (again, now) = connect(&hub, Some(&position));
                    assert_eq!(again.continuity, Continuity::Resumed { replayed: BACKLOG });
                    let mut outlet = again.outlet;
                    assert!(drain(&mut outlet, now) > BACKLOG * size);
                    drop(outlet); // detached again, for the next iteration
                })
            },
        );
    }
    group.finish();

    let mut group = c.benchmark_group("send-to-detached");
    group.throughput(Throughput::Elements(1));
    let hub = Hub::builder()
        .write_window(sse_proto::WriteWindow::Off)
        .keep_alive(None)
        .resume(ResumeConfig::new(Duration::from_secs(600)))
        .build(Instant::now);
    let (accepted, _) = connect(&hub, None);
    drop(accepted.outlet);
    let event = Event::new()
        .event("tick")
        .expect("valid")
        .data("x".repeat(64));
    group.bench_function("sse-proto/64B", |b| {
        b.iter(|| accepted.session.send_event(&event).expect("logged"))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = replay
}
criterion_main!(benches);
