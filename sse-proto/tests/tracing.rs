//! The `tracing` feature: every change in a session's life is an event at `debug`, a shutdown
//! at `info`, and `info` stays quiet while sessions come and go.

#![cfg(feature = "tracing")]
#![allow(clippy::unwrap_used, clippy::panic)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use sse_proto::{Decision, Event, HttpVersion, Hub, Request};
use tracing::Level;

/// A writer into a shared buffer, for the subscriber under test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

fn decide(hub: &Hub, target: &str, last: Option<&str>) -> Decision {
    let mut req = Request::new(b"GET", target.as_bytes(), HttpVersion::Http11);
    req.header(b"accept", b"text/event-stream");
    if let Some(v) = last {
        req.header(b"last-event-id", v.as_bytes());
    }
    hub.decide(&req, Instant::now())
}

/// A session's life: accepted, a refused id, replaced, cut off, closed and back (204), and a
/// shutdown.
fn life() {
    // No write window: nothing here drives the hub's timers, which end one.
    let hub = Hub::builder()
        .write_window(sse_proto::WriteWindow::Off)
        .keep_alive(None)
        .budget(100)
        .build(Instant::now);
    let Decision::Accept(a) = decide(&hub, "/e?id=tab", None) else {
        panic!()
    };
    let Decision::Accept(_b) = decide(&hub, "/e?id=%0Aevil", None) else {
        panic!()
    };
    let Decision::Accept(c) = decide(&hub, "/e?id=tab", None) else {
        panic!()
    };
    for _ in 0..3 {
        let _ = c.session.send_event(&Event::new().data("x".repeat(80)));
    }
    drop(a);
    let Decision::Accept(d) = decide(&hub, "/e?id=kept", None) else {
        panic!()
    };
    d.session.close();
    drop(d);
    assert!(matches!(
        decide(&hub, "/e", Some("kept")),
        Decision::NoContent { .. }
    ));
    hub.shutdown();
}

fn run_at(level: Level) -> String {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, life);
    captured.text()
}

#[test]
fn every_change_is_an_event_at_debug() {
    let text = run_at(Level::DEBUG);
    for expected in [
        "stream accepted",
        "client id refused",
        "older stream replaced",
        "slow reader cut off",
        "session closed by the server",
        "closed session came back: 204",
        "session ended",
        "hub shutting down",
    ] {
        assert!(text.contains(expected), "no `{expected}` in:\n{text}");
    }
    assert!(text.contains("session=tab"), "{text}");
    assert!(
        text.contains(" sse:") || text.contains("sse:"),
        "target `sse`: {text}"
    );
}

#[test]
fn info_is_quiet_but_for_the_shutdown() {
    let text = run_at(Level::INFO);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(lines[0].contains("hub shutting down"), "{text}");
}
