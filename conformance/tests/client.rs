//! The Rust client example (`sse-hyper/examples/client.rs`) against the hyper demo in resume
//! mode, over a real socket: it reads events with `MessageStream`, reconnects after a dropped
//! stream offering `Last-Event-ID` (and waits the server's `retry:`), gets what it missed
//! replayed, and stops for good at the 204 that answers a closed session.

#![allow(clippy::unwrap_used, clippy::panic)] // a test reports failure by panicking

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sse_conformance::{Demo, percent_encode};

#[path = "../../sse-hyper/examples/client.rs"]
#[allow(dead_code, unreachable_pub)]
mod client;

use client::{End, follow};

/// What the client saw: (connection, event name, data).
type Seen = Arc<Mutex<Vec<(usize, String, String)>>>;

fn post(demo: &Demo, target: &str, body: &[u8]) -> u16 {
    demo.request("POST", target, &[], body).unwrap().head.status
}

fn id_of(connect_data: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(connect_data).unwrap();
    v["id"].as_str().unwrap().to_owned()
}

#[test]
fn the_client_example_resumes_after_a_drop_and_stops_at_close() {
    let demo = Demo::start(
        env!("CARGO_BIN_EXE_demo-hyper"),
        &[
            "--tick-ms",
            "0",
            "--keep-alive-ms",
            "0",
            "--resume-ms",
            "10000",
            "--retry-ms",
            "300",
        ],
    )
    .unwrap();
    let url = format!("http://{}/events", demo.addr());
    let seen: Seen = Arc::default();
    let mut dropped_at = None;
    let mut reconnected_after = None;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let end = runtime.block_on(follow(&url, |event, connection| {
        seen.lock()
            .unwrap()
            .push((connection, event.event.clone(), event.data.clone()));
        let route = |data: &str| format!("/sessions/{}", percent_encode(id_of(data).as_bytes()));
        match (connection, event.event.as_str()) {
            // First stream: one logged event, then the server drops the stream and sends
            // while the tab is away.
            (1, "connect") => {
                let session = route(&event.data);
                assert_eq!(
                    post(&demo, &format!("{session}/events?event=note"), b"seen"),
                    202
                );
            }
            (1, "note") => {
                let connect = seen.lock().unwrap()[0].2.clone();
                let session = route(&connect);
                assert_eq!(post(&demo, &format!("{session}/drop"), b""), 204);
                dropped_at = Some(Instant::now());
                assert_eq!(
                    post(&demo, &format!("{session}/events?event=note"), b"missed"),
                    202
                );
            }
            // Second stream: the missed event came first; close the session.
            (2, "connect") => {
                reconnected_after = dropped_at.map(|at| at.elapsed());
                assert_eq!(
                    post(&demo, &format!("{}/close", route(&event.data)), b""),
                    204
                );
            }
            _ => {}
        }
        connection <= 2
    }));

    assert_eq!(
        end.unwrap(),
        End::Closed,
        "the 204 after close() ends the client"
    );
    let seen = seen.lock().unwrap();
    let names: Vec<_> = seen
        .iter()
        .map(|(c, n, d)| (*c, n.as_str(), d.as_str()))
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");
    assert_eq!((names[0].0, names[0].1), (1, "connect"));
    assert_eq!(names[1], (1, "note", "seen"));
    assert_eq!(
        names[2],
        (2, "note", "missed"),
        "the missed event is replayed first"
    );
    assert_eq!((names[3].0, names[3].1), (2, "connect"));
    assert_eq!(
        id_of(names[0].2),
        id_of(names[3].2),
        "the same session resumed"
    );
    let resumed: serde_json::Value = serde_json::from_str(names[3].2).unwrap();
    assert_eq!(resumed["resumed"], true);
    let waited = reconnected_after.expect("reconnected");
    assert!(
        waited >= Duration::from_millis(300),
        "the client waits the server's retry: before reconnecting ({waited:?})"
    );
}
