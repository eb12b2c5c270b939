//! Hub broadcast of one event to 10 000 in-memory connections: encode once and share the
//! frame (`Hub::broadcast`) against encoding per connection (`Session::send_event` in a loop,
//! what a server without a shared frame does). Only the send is timed; every outlet is
//! drained (untimed) after each round so queues stay empty.

// criterion_group! defines an undocumented `pub fn benches`.
#![allow(missing_docs)]

use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sse_proto::{Batch, Decision, Event, HttpVersion, Hub, Outlet, Request, ResumeConfig, Session};

const CONNECTIONS: usize = 10_000;

fn connect_all(hub: &Hub) -> Vec<(Session, Outlet)> {
    let now = Instant::now();
    (0..CONNECTIONS)
        .map(|i| {
            let target = format!("/events?id=conn-{i}");
            let mut req = Request::new(b"GET", target.as_bytes(), HttpVersion::Http11);
            req.header(b"accept", b"text/event-stream");
            let Decision::Accept(accepted) = hub.decide(&req, now) else {
                unreachable!("a valid event-stream request")
            };
            (accepted.session, accepted.outlet)
        })
        .collect()
}

fn drain(conns: &mut [(Session, Outlet)]) {
    let mut cx = Context::from_waker(Waker::noop());
    let now = Instant::now();
    for (_, outlet) in conns.iter_mut() {
        let mut batch = Batch::new();
        let _ = outlet.poll_drain(&mut cx, now, &mut batch);
    }
}

fn broadcast(c: &mut Criterion) {
    // No write window: these hubs are drained without their timers (fanout measures it).
    let hub = Hub::builder()
        .write_window(sse_proto::WriteWindow::Off)
        .keep_alive(None)
        .budget(64 << 20)
        .build(Instant::now);
    let mut conns = connect_all(&hub);
    drain(&mut conns); // the preambles
    // The same connections on a hub in resume mode: each broadcast is also logged, and goes
    // out with a per-session `id:` line carrying its position.
    let resumable = Hub::builder()
        .write_window(sse_proto::WriteWindow::Off)
        .keep_alive(None)
        .budget(64 << 20)
        .resume(ResumeConfig::new(Duration::from_secs(600)))
        .build(Instant::now);
    let mut resumable_conns = connect_all(&resumable);
    drain(&mut resumable_conns);
    let mut group = c.benchmark_group("broadcast-10k");
    group.throughput(Throughput::Elements(CONNECTIONS as u64));
    for (label, size) in [("64B", 64), ("4KiB", 4096)] {
        let event = Event::new()
            .event("tick")
            .expect("valid")
            .data("x".repeat(size));
        group.bench_with_input(
            BenchmarkId::new("sse-proto-encode-once", label),
            &event,
            |b, e| {
                b.iter_custom(|iters| {
                    let mut spent = Duration::ZERO;
                    for _ in 0..iters {
                        let start = Instant::now();
                        assert_eq!(hub.broadcast(e), CONNECTIONS);
                        spent += start.elapsed();
                        drain(&mut conns);
                    }
                    spent
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("sse-proto-resume-mode", label),
            &event,
            |b, e| {
                b.iter_custom(|iters| {
                    let mut spent = Duration::ZERO;
                    for _ in 0..iters {
                        let start = Instant::now();
                        assert_eq!(resumable.broadcast(e), CONNECTIONS);
                        spent += start.elapsed();
                        drain(&mut resumable_conns);
                    }
                    spent
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("encode-per-connection", label),
            &event,
            |b, e| {
                b.iter_custom(|iters| {
                    let mut spent = Duration::ZERO;
                    for _ in 0..iters {
                        let start = Instant::now();
                        for (session, _) in &conns {
                            session.send_event(e).expect("live");
                        }
                        spent += start.elapsed();
                        drain(&mut conns);
                    }
                    spent
                })
            },
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = broadcast
}
criterion_main!(benches);
