//! Encodes the small bench event (a name and 20 bytes) `N` times with one implementation, for
//! instruction counts under callgrind, which do not depend on what else the machine runs:
//!
//! ```text
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/encode-count sse-proto 100000
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/encode-count axum 100000
//! ```
//!
//! The difference between runs of 100 000 and 200 000 events, divided by 100 000, is the
//! cost of one event without start-up.

use std::hint::black_box;

use bytes::{Buf, Bytes};

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_default();
    let n: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let input = &sse_benches::inputs::all()[0];
    let (name, data) = (input.name, input.data.clone());
    let shared = Bytes::from(data.clone());
    let mut total = 0usize;
    match which.as_str() {
        "sse-proto" => {
            for _ in 0..n {
                let frame = sse_proto::Event::new()
                    .event(black_box(name))
                    .map(|e| e.data(black_box(&shared).clone()).encode());
                total += frame.map_or(0, |f| f.remaining());
            }
        }
        "build-only" => {
            for _ in 0..n {
                let event = sse_proto::Event::new()
                    .event(black_box(name))
                    .map(|e| e.data(black_box(&shared).clone()));
                total += event.map_or(0, |e| usize::from(e.is_dispatched()));
            }
        }
        "clone-only" => {
            for _ in 0..n {
                total += black_box(&shared).clone().len();
            }
        }
        "build-static" => {
            let data: &'static str = Box::leak(data.clone().into_boxed_str());
            for _ in 0..n {
                let event = sse_proto::Event::new()
                    .event(black_box(name))
                    .map(|e| e.data(black_box(data)));
                total += event.map_or(0, |e| usize::from(e.is_dispatched()));
            }
        }
        "encode-only" => {
            let event = sse_proto::Event::new()
                .event(name)
                .map(|e| e.data(shared.clone()));
            for _ in 0..n {
                total += black_box(&event)
                    .as_ref()
                    .map_or(0, |e| e.encode().remaining());
            }
        }
        "axum" => {
            for _ in 0..n {
                let event = axum::response::sse::Event::default()
                    .event(black_box(name))
                    .data(black_box(data.as_str()));
                total += std::mem::size_of_val(&black_box(event));
            }
        }
        _ => {
            eprintln!("usage: encode-count sse-proto|axum [N]");
            std::process::exit(2);
        }
    }
    println!("{which}: {n} events ({total})");
}
