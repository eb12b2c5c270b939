//! Encoding: sse-proto's `Event` against axum's `Event` and a naive `format!` encoder, on
//! the same inputs in the same run. `cargo run -p sse-benches --bin report` prints the ratios.
//!
//! axum's `Event` does its formatting in the builder (`event`, `data`); only appending the
//! final `\n` and freezing the buffer are private to axum, so its figure leaves out one
//! byte push that ours includes.

// criterion_group! defines an undocumented `pub fn benches`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use bytes::{Buf, Bytes};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sse_benches::inputs::{self, Input};

fn naive(name: &str, data: &str) -> String {
    let mut out = format!("event: {name}\n");
    for line in data.lines() {
        out += &format!("data: {line}\n");
    }
    out + "\n"
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    for Input { label, name, data } in inputs::all() {
        let bytes = Bytes::from(data.clone());
        let mut frame = sse_proto::Event::new()
            .event(name)
            .expect("valid name")
            .data(bytes.clone())
            .encode();
        group.throughput(Throughput::Bytes(frame.remaining() as u64));

        group.bench_with_input(BenchmarkId::new("sse-proto", label), &bytes, |b, data| {
            b.iter(|| {
                sse_proto::Event::new()
                    .event(black_box(name))
                    .expect("valid name")
                    .data(black_box(data).clone())
                    .encode()
            })
        });
        group.bench_with_input(BenchmarkId::new("axum", label), &data, |b, data| {
            b.iter(|| {
                axum::response::sse::Event::default()
                    .event(black_box(name))
                    .data(black_box(data.as_str()))
            })
        });
        group.bench_with_input(BenchmarkId::new("format", label), &data, |b, data| {
            b.iter(|| naive(black_box(name), black_box(data)))
        });
        // Same bytes on the wire as the naive encoder (which writes what a browser expects).
        let wire = frame.copy_to_bytes(frame.remaining());
        assert_eq!(wire, naive(name, &data).as_bytes(), "{label}");
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = encode
}
criterion_main!(benches);
