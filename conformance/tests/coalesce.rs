//! Write coalescing (`--coalesce-ms`) against all three demos: what is sent in one window
//! leaves in one write, nothing is lost or reordered, and the end of a stream (a close, a
//! drop, a shutdown) never waits for the window.
//!
//! What the core defines for an end during a window: the writer is woken at once, writes
//! what was queued before the end, then ends the stream (a close also marks the id, so the
//! tab's reconnect gets 204). The rules assert exactly that. They assert no timing: "at
//! once" is shown with a window of a minute, far past the harness's patience (10 s), so a
//! stream that waited for its window would fail the rule.

#![allow(clippy::panic, clippy::unwrap_used)] // a test reports failure by panicking

use std::io::{Read, Write};
use std::net::TcpStream;

use sse_conformance::{Demo, EventStream, PATIENCE, percent_encode};

/// Generates one `#[test]` per rule and demo.
macro_rules! rules {
    ($($rule:ident),* $(,)?) => {
        mod hyper {
            $(#[test] fn $rule() { super::$rule(env!("CARGO_BIN_EXE_demo-hyper")); })*
        }
        mod tokio {
            $(#[test] fn $rule() { super::$rule(env!("CARGO_BIN_EXE_demo-tokio")); })*
        }
        mod async_std {
            $(#[test] fn $rule() { super::$rule(env!("CARGO_BIN_EXE_demo-async-std")); })*
        }
    };
}

rules!(
    help_lists_the_flag,
    events_sent_in_one_window_leave_in_one_chunk,
    events_in_quick_succession_all_arrive_in_order,
    a_close_or_a_drop_in_the_window_ends_the_stream_after_what_was_queued,
    a_shutdown_in_the_window_ends_the_streams_after_what_was_queued,
);

/// The window of the rules about what is delivered.
const WINDOW_MS: &str = "200";
/// The window of the rules about ends: a minute, so that an end that waited for it would
/// leave the stream open past the harness's patience.
const LONG_WINDOW_MS: &str = "60000";

/// A demo with a window, no ticks and no keep-alive: streams carry only what a rule sends.
fn start(bin: &str, window_ms: &str) -> Demo {
    Demo::start(
        bin,
        &[
            "--coalesce-ms",
            window_ms,
            "--tick-ms",
            "0",
            "--keep-alive-ms",
            "0",
        ],
    )
    .unwrap()
}

/// `--help` lists `--coalesce-ms` and `--write-window`, and a value that is neither a
/// number nor a window is refused (exit 2).
fn help_lists_the_flag(bin: &str) {
    let help = std::process::Command::new(bin)
        .arg("--help")
        .output()
        .unwrap();
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("--coalesce-ms N"), "{help}");
    assert!(help.contains("--write-window W"), "{help}");
    for bad in [
        ["--coalesce-ms", "soon"],
        ["--write-window", "soon"],
        ["--write-window", "adaptive:x"],
        ["--write-window", "sliding:5"],
    ] {
        let out = std::process::Command::new(bin)
            .args(["--addr", "127.0.0.1:0"])
            .args(bad)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
    }
}

/// `POST target` on `client` with `body`: the status.
fn post(client: &mut sse_conformance::Client, target: &str, body: &[u8]) -> u16 {
    client
        .request("POST", target, &[], body)
        .unwrap()
        .head
        .status
}

/// The data of the `m` events `stream` has read, in order.
fn data_of_m(stream: &EventStream) -> Vec<String> {
    stream
        .events()
        .iter()
        .filter(|e| e.event == "m")
        .map(|e| e.data.clone())
        .collect()
}

fn events_target(id: &str, event: &str) -> String {
    format!(
        "/sessions/{}/events?event={}",
        percent_encode(id.as_bytes()),
        percent_encode(event.as_bytes())
    )
}

/// An event stream read as the server framed it: the chunks of its HTTP/1.1 chunked body.
struct Chunks {
    sock: TcpStream,
    buf: Vec<u8>,
}

impl Chunks {
    /// `GET target` as an event-stream request; the head is read (200, chunked).
    fn open(demo: &Demo, target: &str) -> Chunks {
        let mut sock = demo.connect().unwrap();
        let request = format!(
            "GET {target} HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n"
        );
        sock.write_all(request.as_bytes()).unwrap();
        let mut chunks = Chunks {
            sock,
            buf: Vec::new(),
        };
        let len = loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut head = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(len) = head.parse(&chunks.buf).unwrap() {
                assert_eq!(head.code, Some(200));
                let chunked = head.headers.iter().any(|h| {
                    h.name.eq_ignore_ascii_case("transfer-encoding")
                        && h.value.eq_ignore_ascii_case(b"chunked")
                });
                assert!(chunked, "an HTTP/1.1 event stream is chunked");
                break len;
            }
            chunks.fill();
        };
        chunks.buf.drain(..len);
        chunks
    }

    /// Reads more bytes; panics at EOF or after [`PATIENCE`].
    fn fill(&mut self) {
        let mut scratch = [0u8; 16 * 1024];
        let n = self.sock.read(&mut scratch).unwrap();
        assert!(n > 0, "the stream ended");
        self.buf.extend_from_slice(&scratch[..n]);
    }

    /// The next chunk's data, exactly as the server framed it; `None` for the last chunk.
    fn next(&mut self) -> Option<Vec<u8>> {
        loop {
            if let httparse::Status::Complete((len, size)) =
                httparse::parse_chunk_size(&self.buf).unwrap()
            {
                let size = usize::try_from(size).unwrap();
                if self.buf.len() >= len + size + 2 {
                    let data = self.buf[len..len + size].to_vec();
                    assert_eq!(&self.buf[len + size..len + size + 2], b"\r\n");
                    self.buf.drain(..len + size + 2);
                    return (size > 0).then_some(data);
                }
            }
            self.fill();
        }
    }
}

/// Ten events sent to a stream one after the other (each POST answered before the next is
/// sent, a few milliseconds in all) come out as one chunk of the chunked body: one batch,
/// one write. Without a window the writer wakes for the first and writes it as a chunk of
/// its own (unless, by chance, it is not scheduled before the ten are in).
fn events_sent_in_one_window_leave_in_one_chunk(bin: &str) {
    let demo = start(bin, WINDOW_MS);
    let id = "coalesced-tab";
    let mut stream = Chunks::open(&demo, &format!("/events?id={id}"));
    // The first batch (preamble and `connect`) is never held.
    let mut first = Vec::new();
    while !String::from_utf8_lossy(&first).contains("event: connect\n") {
        first.extend(stream.next().expect("the stream is open"));
    }
    let mut client = demo.client().unwrap();
    let mut expected = String::new();
    for i in 1..=10 {
        assert_eq!(
            post(
                &mut client,
                &events_target(id, "n"),
                format!("{i}").as_bytes()
            ),
            202
        );
        expected += &format!("event: n\ndata: {i}\n\n");
    }
    let chunk = stream.next().expect("the stream is open");
    assert_eq!(
        String::from_utf8_lossy(&chunk),
        expected,
        "the ten events in one chunk"
    );
}

/// Sends to two streams and broadcasts, interleaved and as fast as the client goes: every
/// event arrives, in the order it was sent, across many windows.
fn events_in_quick_succession_all_arrive_in_order(bin: &str) {
    let demo = start(bin, WINDOW_MS);
    let mut a = demo.events("/events?id=tab-a", &[]).unwrap();
    let mut b = demo.events("/events?id=tab-b", &[]).unwrap();
    a.next_named("connect").unwrap();
    b.next_named("connect").unwrap();
    let mut client = demo.client().unwrap();
    let (mut to_a, mut to_b) = (Vec::new(), Vec::new());
    for i in 0..60 {
        if i % 4 == 0 {
            let body = format!("all-{i}");
            let r = client.request("POST", "/broadcast?event=m", &[], body.as_bytes());
            assert_eq!(r.unwrap().text(), "2");
            to_a.push(body.clone());
            to_b.push(body);
        } else {
            let (id, sent) = if i % 2 == 0 {
                ("tab-a", &mut to_a)
            } else {
                ("tab-b", &mut to_b)
            };
            let body = format!("{id}-{i}");
            assert_eq!(
                post(&mut client, &events_target(id, "m"), body.as_bytes()),
                202
            );
            sent.push(body);
        }
    }
    for (stream, sent) in [(&mut a, &to_a), (&mut b, &to_b)] {
        stream
            .wait_for(|s| data_of_m(s).len() >= sent.len())
            .unwrap();
        assert_eq!(&data_of_m(stream), sent, "all of them, in order");
    }
}

/// A close and a drop while a frame waits for the window: each stream gets what was queued
/// before, then ends, well before the window would have passed. The closed id is marked
/// (its reconnect gets 204); the dropped one is not.
fn a_close_or_a_drop_in_the_window_ends_the_stream_after_what_was_queued(bin: &str) {
    let demo = start(bin, LONG_WINDOW_MS);
    let mut client = demo.client().unwrap();
    for (id, route) in [("closed-tab", "close"), ("dropped-tab", "drop")] {
        let mut stream = demo.events(&format!("/events?id={id}"), &[]).unwrap();
        stream.next_named("connect").unwrap();
        for i in 0..3 {
            let body = format!("queued-{i}");
            assert_eq!(
                post(&mut client, &events_target(id, "m"), body.as_bytes()),
                202
            );
        }
        assert_eq!(
            post(&mut client, &format!("/sessions/{id}/{route}"), b""),
            204
        );
        assert!(
            stream.wait_end(PATIENCE).unwrap(),
            "{route}: the stream ends without waiting for the window"
        );
        assert_eq!(
            data_of_m(&stream),
            ["queued-0", "queued-1", "queued-2"],
            "{route}"
        );
        let again = demo
            .events("/events", &[("Last-Event-ID", id.as_bytes())])
            .unwrap();
        let status = if route == "close" { 204 } else { 200 };
        assert_eq!(again.head.status, status, "{route}: the reconnect");
    }
}

/// SIGTERM while frames wait for the window: every stream gets what was queued before, then
/// ends, and the demo exits, without waiting for the window.
fn a_shutdown_in_the_window_ends_the_streams_after_what_was_queued(bin: &str) {
    let mut demo = start(bin, LONG_WINDOW_MS);
    let mut client = demo.client().unwrap();
    let mut streams = Vec::new();
    for id in ["tab-1", "tab-2"] {
        let mut stream = demo.events(&format!("/events?id={id}"), &[]).unwrap();
        stream.next_named("connect").unwrap();
        assert_eq!(
            post(&mut client, &events_target(id, "m"), id.as_bytes()),
            202
        );
        streams.push((id, stream));
    }
    drop(client);
    demo.signal("TERM").unwrap();
    for (id, mut stream) in streams {
        assert!(
            stream.wait_end(PATIENCE).unwrap(),
            "{id}: the stream ends without waiting for the window"
        );
        assert_eq!(data_of_m(&stream), [id]);
    }
    assert!(
        demo.wait_exit(PATIENCE).unwrap().is_some(),
        "the demo exits"
    );
}
