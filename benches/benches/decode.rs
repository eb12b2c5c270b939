//! Decoding throughput: sse-proto's `Decoder` against the `eventsource-stream` crate on the
//! same bytes, cut into the same 16 KiB chunks a socket read would give.

// criterion_group! defines an undocumented `pub fn benches`.
#![allow(missing_docs)]

use std::convert::Infallible;
use std::hint::black_box;
use std::time::Duration;

use bytes::{Buf, Bytes};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use eventsource_stream::Eventsource;
use futures_lite::StreamExt;
use sse_benches::inputs;
use sse_proto::{Decoder, Event, Item};

const CHUNK: usize = 16 * 1024;

/// About 4 MiB of one kind of event, and how many events that is.
fn stream_of(name: &'static str, data: &str) -> (Vec<Bytes>, usize) {
    let mut frame = Event::new()
        .event(name)
        .expect("valid")
        .data(data.to_owned())
        .encode();
    let one = frame.copy_to_bytes(frame.remaining());
    let count = (4 << 20) / one.len() + 1;
    let all: Vec<u8> = one.repeat(count);
    (
        all.chunks(CHUNK).map(Bytes::copy_from_slice).collect(),
        count,
    )
}

fn ours(chunks: &[Bytes]) -> usize {
    let mut decoder = Decoder::new();
    let mut events = 0;
    for chunk in chunks {
        decoder.feed(chunk).expect("valid stream");
        while let Some(item) = decoder.poll_item() {
            if let Item::Event(e) = item {
                black_box(&e);
                events += 1;
            }
        }
    }
    events
}

fn theirs(chunks: &[Bytes]) -> usize {
    let stream = futures_lite::stream::iter(chunks.iter().cloned().map(Ok::<Bytes, Infallible>));
    futures_lite::future::block_on(
        stream
            .eventsource()
            .map(|e| {
                black_box(&e);
            })
            .count(),
    )
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for input in inputs::all().into_iter().filter(|i| i.label != "1mib") {
        let (chunks, count) = stream_of(input.name, &input.data);
        assert_eq!(ours(&chunks), count);
        assert_eq!(
            theirs(&chunks),
            count,
            "eventsource-stream sees the same events"
        );
        let bytes: usize = chunks.iter().map(Bytes::len).sum();
        group.throughput(Throughput::Bytes(bytes as u64));
        group.bench_with_input(
            BenchmarkId::new("sse-proto", input.label),
            &chunks,
            |b, c| b.iter(|| ours(c)),
        );
        group.bench_with_input(
            BenchmarkId::new("eventsource-stream", input.label),
            &chunks,
            |b, c| b.iter(|| theirs(c)),
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
    targets = decode
}
criterion_main!(benches);
