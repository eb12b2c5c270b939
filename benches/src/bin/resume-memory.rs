//! Memory of resume mode, read from this process's RSS (`/proc/self/status`):
//!
//! - per detached resumable session (N sessions accepted, then their connections dropped),
//!   against the same N attached sessions without resume mode, in the same run;
//! - for one 1 KiB broadcast logged for all N detached sessions (the target: under 1 MiB);
//! - for one 1 KiB event sent to each detached session (what per-session logs cost);
//! - per membership: each of the N detached sessions joins 10 of 1 000 topics;
//! - for one 1 KiB publish to each of those 1 000 topics (what topic logs cost).
//!
//! ```text
//! cargo run --release -p sse-benches --bin resume-memory -- 10000
//! ```
//!
//! Each measurement runs in a child process of its own, so that memory freed by one does not
//! flatter the next.

use std::time::{Duration, Instant};

use sse_proto::{Decision, Event, HttpVersion, Hub, Request, ResumeConfig};

fn rss_kib() -> u64 {
    sse_benches::process::rss_kib(std::process::id())
}

fn accept(hub: &Hub) -> sse_proto::Accepted {
    let mut req = Request::new(b"GET", b"/events", HttpVersion::Http11);
    req.header(b"accept", b"text/event-stream");
    match hub.decide(&req, Instant::now()) {
        Decision::Accept(a) => a,
        _ => unreachable!("a valid event-stream request"),
    }
}

fn resumable() -> Hub {
    // No write window: these hubs are drained without their timers (fanout measures it).
    Hub::builder()
        .write_window(sse_proto::WriteWindow::Off)
        .keep_alive(None)
        .resume(ResumeConfig::new(Duration::from_secs(3600)))
        .build(Instant::now)
}

/// One measurement, in this process: prints `name value unit`.
fn measure(what: &str, n: usize) {
    let payload = bytes::Bytes::from(vec![b'x'; 1024]);
    match what {
        "attached" => {
            let hub = Hub::builder()
                .write_window(sse_proto::WriteWindow::Off)
                .keep_alive(None)
                .build(Instant::now);
            let before = rss_kib();
            let conns: Vec<_> = (0..n).map(|_| accept(&hub)).collect();
            let after = rss_kib();
            println!("{what} {:.0} B/session", per(after - before, n));
            drop(conns);
        }
        "detached" => {
            let hub = resumable();
            let before = rss_kib();
            let sessions: Vec<_> = (0..n).map(|_| accept(&hub).session).collect();
            let after = rss_kib();
            assert_eq!(hub.stats().detached, n);
            println!("{what} {:.0} B/session", per(after - before, n));
            drop(sessions);
        }
        "broadcast" => {
            let hub = resumable();
            let sessions: Vec<_> = (0..n).map(|_| accept(&hub).session).collect();
            let before = rss_kib();
            assert_eq!(hub.broadcast(&Event::new().data(payload)), n);
            let after = rss_kib();
            assert_eq!(hub.stats().log.events, 1);
            println!("{what} {} KiB", after - before);
            drop(sessions);
        }
        "send-each" => {
            let hub = resumable();
            let sessions: Vec<_> = (0..n).map(|_| accept(&hub).session).collect();
            let before = rss_kib();
            for s in &sessions {
                s.send(payload.clone()).expect("logged");
            }
            let after = rss_kib();
            println!("{what} {:.0} B/session", per(after - before, n));
        }
        "memberships" | "publish-each-topic" => {
            let hub = resumable();
            let sessions: Vec<_> = (0..n).map(|_| accept(&hub).session).collect();
            let before = rss_kib();
            for (i, s) in sessions.iter().enumerate() {
                for k in 0..10 {
                    s.join(format!("topic-{}", (i * 7 + k * 101) % 1000))
                        .expect("joined");
                }
            }
            let joined = rss_kib();
            if what == "memberships" {
                println!("{what} {:.0} B/membership", per(joined - before, n * 10));
                return;
            }
            for t in 0..1000 {
                let topic = hub.topic(format!("topic-{t}")).expect("valid");
                topic.send(payload.clone()).expect("published");
            }
            let after = rss_kib();
            assert_eq!(hub.stats().log.events, 1000);
            println!("{what} {} KiB for 1 000 publishes of 1 KiB", after - joined);
        }
        other => eprintln!("resume-memory: unknown measurement {other}"),
    }
}

fn per(kib: u64, n: usize) -> f64 {
    kib as f64 * 1024.0 / n as f64
}

fn main() {
    let mut args = std::env::args().skip(1);
    let first = args.next();
    if first.as_deref() == Some("--one") {
        let what = args.next().unwrap_or_default();
        let n = args.next().and_then(|n| n.parse().ok()).unwrap_or(10_000);
        measure(&what, n);
        return;
    }
    let n: usize = first.and_then(|n| n.parse().ok()).unwrap_or(10_000);
    let me = match std::env::current_exe() {
        Ok(me) => me,
        Err(e) => {
            eprintln!("resume-memory: {e}");
            std::process::exit(1);
        }
    };
    println!("resume-memory: {n} sessions, RSS deltas of a fresh process each");
    for what in [
        "attached",
        "detached",
        "broadcast",
        "send-each",
        "memberships",
        "publish-each-topic",
    ] {
        let out = std::process::Command::new(&me)
            .args(["--one", what, &n.to_string()])
            .output();
        match out {
            Ok(out) => print!("{}", String::from_utf8_lossy(&out.stdout)),
            Err(e) => eprintln!("resume-memory: {what}: {e}"),
        }
    }
}
