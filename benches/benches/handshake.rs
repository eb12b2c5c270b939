//! Handshake decisions per second on a hostile mix of requests: valid `Last-Event-ID` and
//! `?id=` reuse, fresh ids (UUID v4 generation), injection attempts, 10 KB and non-UTF-8 ids,
//! and requests that are not event streams.

// criterion_group! defines an undocumented `pub fn benches`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sse_proto::{ClosedSet, HandshakeConfig, HttpVersion, MemoryClosedSet, Request};

struct Raw {
    method: &'static [u8],
    target: Vec<u8>,
    headers: Vec<(&'static [u8], Vec<u8>)>,
}

fn mix() -> Vec<Raw> {
    let sse = |target: &str, last: Option<Vec<u8>>| Raw {
        method: b"GET",
        target: target.as_bytes().to_vec(),
        headers: [
            Some((&b"accept"[..], b"text/event-stream".to_vec())),
            last.map(|v| (&b"last-event-id"[..], v)),
        ]
        .into_iter()
        .flatten()
        .collect(),
    };
    let long = format!("/events?id={}", "a".repeat(10 * 1024));
    vec![
        sse("/events", None),
        sse("/events?id=tab-1234", None),
        sse(
            "/events",
            Some(b"5d0c3b4e-aaaa-4bbb-8ccc-0123456789ab".to_vec()),
        ),
        sse("/events?id=x%0Aevent:%20pwned", None),
        sse("/events?id=%FF%FE", None),
        sse(&long, None),
        sse("/events", Some(b"a\rid: b".to_vec())),
        sse("/events?id=q", Some(vec![b'b'; 10 * 1024])),
        Raw {
            method: b"GET",
            target: b"/events".to_vec(),
            headers: vec![(b"accept", b"text/html".to_vec())],
        },
        Raw {
            method: b"POST",
            target: b"/events".to_vec(),
            headers: vec![(b"accept", b"text/event-stream".to_vec())],
        },
    ]
}

fn handshake(c: &mut Criterion) {
    let requests = mix();
    // Offer and answer: the decision up to registering a session (which the hub bench
    // measures), with the in-memory closed set consulted for every offered id.
    let handshake = HandshakeConfig::new();
    let mut closed = MemoryClosedSet::default();
    let now = Instant::now();
    let mut group = c.benchmark_group("handshake");
    group.throughput(Throughput::Elements(requests.len() as u64));
    group.bench_function("sse-proto/hostile-mix", |b| {
        b.iter(|| {
            let mut accepted = 0;
            for raw in &requests {
                let mut req = Request::new(raw.method, &raw.target, HttpVersion::Http11);
                for (name, value) in &raw.headers {
                    req.header(name, value);
                }
                if let Ok(offer) = handshake.offer(&req, false) {
                    let lookup = offer.lookup();
                    if !lookup.closed.is_some_and(|id| closed.check(id, now)) {
                        black_box(&offer);
                        accepted += 1;
                    }
                }
            }
            assert_eq!(accepted, 8);
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = handshake
}
criterion_main!(benches);
