//! Topics on in-memory connections, each against the plain broadcast to the same number of
//! deliveries in the same run:
//!
//! - `topic-10k`: one publish to a topic of 10 000 members against one broadcast to the same
//!   10 000 sessions (without and with resume mode);
//! - `chat-100k`: the shape of a chat server, 100 000 sessions in 10 000 topics of 10: one
//!   publish to each topic (100 000 deliveries) against one broadcast to the 100 000;
//! - `replay-4096`: a reconnect that replays 4 096 missed events spread over 8 topics (the
//!   merge of eight logs) against one that replays 4 096 of the session's own (one log).
//!
//! Only the sends (or the reconnect) are timed; outlets are drained, untimed, after each.

// criterion_group! defines an undocumented `pub fn benches`.
#![allow(missing_docs)]

use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sse_proto::{
    Accepted, Batch, Continuity, Decision, Event, HttpVersion, Hub, LogBounds, Outlet, Request,
    ResumeConfig, Session,
};

fn hub(resume: bool) -> Hub {
    // No write window: these hubs are drained without their timers (fanout measures it).
    let mut builder = Hub::builder()
        .write_window(sse_proto::WriteWindow::Off)
        .keep_alive(None)
        .budget(64 << 20)
        .topic_rule(|_, _| true);
    if resume {
        builder = builder.resume(ResumeConfig::new(Duration::from_secs(600)));
    }
    builder.build(Instant::now)
}

fn accept(hub: &Hub, target: &str, last: Option<&str>) -> Accepted {
    let mut req = Request::new(b"GET", target.as_bytes(), HttpVersion::Http11);
    req.header(b"accept", b"text/event-stream");
    if let Some(last) = last {
        req.header(b"last-event-id", last.as_bytes());
    }
    match hub.decide(&req, Instant::now()) {
        Decision::Accept(accepted) => accepted,
        _ => unreachable!("a valid event-stream request"),
    }
}

fn connect(hub: &Hub, n: usize, topic: impl Fn(usize) -> String) -> Vec<(Session, Outlet)> {
    (0..n)
        .map(|i| {
            let a = accept(
                hub,
                &format!("/events?id=conn-{i}&topic={}", topic(i)),
                None,
            );
            (a.session, a.outlet)
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

/// Times `send` over `iters` rounds, draining `conns` after each.
fn rounds(iters: u64, conns: &mut [(Session, Outlet)], mut send: impl FnMut()) -> Duration {
    let mut spent = Duration::ZERO;
    for _ in 0..iters {
        let start = Instant::now();
        send();
        spent += start.elapsed();
        drain(conns);
    }
    spent
}

fn topic_10k(c: &mut Criterion) {
    const N: usize = 10_000;
    let mut group = c.benchmark_group("topic-10k");
    group.throughput(Throughput::Elements(N as u64));
    let event = Event::new()
        .event("tick")
        .expect("valid")
        .data("x".repeat(64));
    for resume in [false, true] {
        let mode = if resume { "resume" } else { "plain" };
        let hub = hub(resume);
        let mut conns = connect(&hub, N, |_| "room".to_owned());
        drain(&mut conns);
        let room = hub.topic("room").expect("valid");
        group.bench_function(BenchmarkId::new("topic-publish", mode), |b| {
            b.iter_custom(|iters| {
                rounds(iters, &mut conns, || {
                    assert_eq!(room.send_event(&event), Ok(N));
                })
            })
        });
        group.bench_function(BenchmarkId::new("broadcast", mode), |b| {
            b.iter_custom(|iters| {
                rounds(iters, &mut conns, || {
                    assert_eq!(hub.broadcast(&event), N);
                })
            })
        });
    }
    group.finish();
}

fn chat_100k(c: &mut Criterion) {
    const TOPICS: usize = 10_000;
    const MEMBERS: usize = 10;
    const N: usize = TOPICS * MEMBERS;
    let mut group = c.benchmark_group("chat-100k");
    group.throughput(Throughput::Elements(N as u64));
    group.sample_size(10);
    let hub = hub(true);
    let mut conns = connect(&hub, N, |i| format!("room-{}", i % TOPICS));
    drain(&mut conns);
    let rooms: Vec<_> = (0..TOPICS)
        .map(|t| hub.topic(format!("room-{t}")).expect("valid"))
        .collect();
    let frame = Event::new()
        .event("said")
        .expect("valid")
        .data("x".repeat(64))
        .encode();
    group.bench_function("publish-to-each-topic", |b| {
        b.iter_custom(|iters| {
            rounds(iters, &mut conns, || {
                for room in &rooms {
                    assert_eq!(room.send_frame(&frame), Ok(MEMBERS));
                }
            })
        })
    });
    group.bench_function("broadcast", |b| {
        b.iter_custom(|iters| {
            rounds(iters, &mut conns, || {
                assert_eq!(hub.broadcast_frame(&frame), N);
            })
        })
    });
    group.finish();
}

fn replay_4096(c: &mut Criterion) {
    const EVENTS: usize = 4096;
    const TOPICS: usize = 8;
    let mut group = c.benchmark_group("replay-4096");
    group.throughput(Throughput::Elements(EVENTS as u64));
    let bounds = LogBounds {
        max_events: EVENTS,
        max_bytes: 64 << 20,
    };
    let event = Event::new()
        .event("tick")
        .expect("valid")
        .data("x".repeat(64));
    // In 8 topics: 512 publishes each, interleaved.
    let topics = Hub::builder()
        .write_window(sse_proto::WriteWindow::Off)
        .keep_alive(None)
        .budget(64 << 20)
        .resume(ResumeConfig::new(Duration::from_secs(600)).bounds(bounds))
        .topic_rule(|_, _| true)
        .build(Instant::now);
    let target: String = (0..TOPICS).map(|t| format!("topic=t{t}&")).collect();
    let first = accept(&topics, &format!("/events?id=tab&{target}"), None);
    let last = format!("tab~{}.0", epoch_of(first.outlet));
    for i in 0..EVENTS {
        let room = topics.topic(format!("t{}", i % TOPICS)).expect("valid");
        room.send_event(&event).expect("logged");
    }
    // Its own: 4 096 sends.
    let own = Hub::builder()
        .write_window(sse_proto::WriteWindow::Off)
        .keep_alive(None)
        .budget(64 << 20)
        .resume(ResumeConfig::new(Duration::from_secs(600)).bounds(bounds))
        .build(Instant::now);
    let first = accept(&own, "/events?id=tab", None);
    let own_last = format!("tab~{}.0", epoch_of(first.outlet));
    for _ in 0..EVENTS {
        first.session.send_event(&event).expect("logged");
    }
    for (label, hub, last) in [("8-topics", &topics, &last), ("own-log", &own, &own_last)] {
        group.bench_function(label, |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let back = accept(hub, "/events", Some(last));
                    spent += start.elapsed();
                    assert_eq!(
                        back.continuity,
                        Continuity::Resumed { replayed: EVENTS },
                        "{label}"
                    );
                    drop(back.outlet); // detached again: the next round replays the same
                }
                spent
            })
        });
    }
    group.finish();
}

/// The epoch in the preamble of a fresh stream (`id: <id>~<epoch>.<seq>`), in base 36; the
/// outlet is dropped, so the session waits detached.
fn epoch_of(mut outlet: Outlet) -> String {
    let mut cx = Context::from_waker(Waker::noop());
    let mut batch = Batch::new();
    let _ = outlet.poll_drain(&mut cx, Instant::now(), &mut batch);
    let len = bytes::Buf::remaining(&batch);
    let bytes = bytes::Buf::copy_to_bytes(&mut batch, len);
    let text = String::from_utf8_lossy(&bytes);
    let token = text
        .lines()
        .find_map(|l| l.strip_prefix("id: "))
        .expect("a preamble");
    let (_, position) = token.rsplit_once('~').expect("a position");
    position.split_once('.').expect("epoch.seq").0.to_owned()
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = topic_10k, chat_100k, replay_4096
}
criterion_main!(benches);
