//! Slow request bodies in numbers: each is bounded by its deadline and ceiling, and all of
//! them together by the server's body budget, so no number of sockets pins more memory.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use super::{ENV, Health, PROMPT, Server, read_until_closed, start_with, status, text};

/// The attack's body: `Content-Length: 1 MiB`, all but the last 64 bytes sent at once.
const BODY: usize = 1 << 20;
/// The body ceiling the demos run with here.
const CEILING: Duration = Duration::from_millis(3000);
/// The body budget the demos run with here, in KiB: 16 slow bodies fit.
const BUDGET_KIB: u64 = 16 * 1024;
/// Slow bodies sent at once.
const ATTACKERS: usize = 400;
/// Every slow body is answered this long after its connect at the latest. The server owes
/// an answer within [`CEILING`] of reading the head, and reads the heads of this crowd (400
/// connections, 400 MiB behind them) late on a loaded machine: CI once took 3.2 s to reach
/// one. Without the ceiling a slow body would last its whole trickle, 64 s.
const ANSWERED_WITHIN: Duration = CEILING.saturating_add(Duration::from_secs(5));
/// How long a slow body trickles, and is waited for: past [`ANSWERED_WITHIN`], so that a
/// body still held then is seen held.
const TRICKLE_FOR: Duration = ANSWERED_WITHIN.saturating_add(Duration::from_secs(3));

/// What one slow body got: its answer's status and when, after its head was sent.
struct Answer {
    status: Option<u16>,
    after: Duration,
    got: Vec<u8>,
}

/// 400 connections that each send `POST /broadcast` with `Content-Length: 1048576`, the
/// first 1 MiB − 64 bytes at once and then one byte a second. Every one is answered within
/// the body ceiling: 503 (with `Retry-After`) at once when the budget is spent, 408 at the
/// ceiling otherwise. Meanwhile the demo's RSS grows by less than the budget plus a small
/// constant (without the budget, 400 MiB and more), and a legitimate client posts and
/// streams promptly: a small body arrives with its head and never needs the budget.
pub(crate) fn slow_bodies_are_bounded_by_the_budget(bin: &str, server: Server) {
    let _crowd = super::crowd();
    let budget = BUDGET_KIB.to_string();
    let ceiling = CEILING.as_millis().to_string();
    let mut env: Vec<(&str, &str)> = ENV.to_vec();
    env.push(("SSE_DEMO_BODY_BUDGET_KIB", &budget));
    env.push(("SSE_DEMO_BODY_CEILING_MS", &ceiling));
    // Heads get longer than the other rules give them: 400 of them arrive at once, each
    // with a megabyte behind it, and this rule is about the bodies.
    env.push(("SSE_DEMO_HEAD_TIMEOUT_MS", "5000"));
    let demo = start_with(bin, &[], &env);
    let health = Health::before(&demo);
    let rss_before = demo.rss_kib().unwrap();
    let mut stream = demo.events("/events", &[]).unwrap();
    let id = stream.session_id().unwrap();

    let (tx, answers) = mpsc::channel();
    let started = Instant::now();
    for _ in 0..ATTACKERS {
        let tx = tx.clone();
        let addr = demo.addr();
        thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(move || {
                let _ = tx.send(slow_body(addr));
            })
            .unwrap();
    }
    drop(tx);

    // While the slow bodies are held: memory within the budget, a legitimate client served.
    thread::sleep(Duration::from_millis(1500));
    // The constant: every connection's own state (hyper keeps ~20 KiB per connection) and
    // the allocator's slack.
    health.check(&demo, BUDGET_KIB + 24 * 1024);
    let rss_held = demo.rss_kib().unwrap();
    let posted = Instant::now();
    let response = demo
        .request("POST", "/broadcast?event=legit", &[], b"still served")
        .unwrap();
    assert_eq!(response.head.status, 200, "{}", response.text());
    assert!(
        stream
            .wait_for_within(PROMPT, |s| s.events().iter().any(|e| e.event == "legit"))
            .unwrap(),
        "the legitimate stream {id} did not get the broadcast within {PROMPT:?}"
    );
    assert!(posted.elapsed() < PROMPT * 2, "took {:?}", posted.elapsed());

    let answers: Vec<Answer> = answers.iter().collect();
    assert_eq!(answers.len(), ATTACKERS);
    let (mut refused, mut timed_out) = (0, 0);
    for a in &answers {
        match a.status {
            Some(503) => {
                refused += 1;
                let head = text(&a.got).to_ascii_lowercase();
                assert!(
                    head.contains("retry-after:"),
                    "a 503 without Retry-After: {head}"
                );
            }
            Some(408) => timed_out += 1,
            other => panic!(
                "a slow body got {other:?} after {:?}: {}",
                a.after,
                text(&a.got)
            ),
        }
        assert!(
            a.after < ANSWERED_WITHIN,
            "a slow body was answered {:?} after its connect ({:?}), past the ceiling \
             {CEILING:?} and the crowd's allowance ({ANSWERED_WITHIN:?})",
            a.after,
            a.status
        );
    }
    let latest = |code| {
        let after = answers.iter().filter(|a| a.status == Some(code));
        after.map(|a| a.after).max().unwrap_or_default()
    };
    eprintln!(
        "{bin}: {refused} refused (503, the last after {:?}), {timed_out} cut at the ceiling \
         (408, the last after {:?}), all within {:?}; RSS {rss_before} KiB before, \
         {rss_held} KiB while held",
        latest(503),
        latest(408),
        started.elapsed()
    );
    let fit = (BUDGET_KIB * 1024) as usize / BODY;
    assert!(
        timed_out <= fit,
        "{timed_out} slow bodies were held with room for {fit}"
    );
    assert!(timed_out >= 1, "no slow body was held at all");
    health.check(&demo, BUDGET_KIB + 24 * 1024);
    let _ = server;
}

/// One slow body: the head and all but 64 bytes of the body at once, then one byte a second
/// until the server answers; the answer is read as it comes, beside the writes.
fn slow_body(addr: SocketAddr) -> Answer {
    let sock = TcpStream::connect(addr).unwrap();
    let limit = TRICKLE_FOR;
    sock.set_write_timeout(Some(limit)).unwrap();
    let mut writer = sock.try_clone().unwrap();
    let started = Instant::now();
    let feeder = thread::Builder::new()
        .stack_size(64 * 1024)
        .spawn(move || {
            let head =
                format!("POST /broadcast HTTP/1.1\r\nHost: x\r\nContent-Length: {BODY}\r\n\r\n");
            let mut bulk = head.into_bytes();
            bulk.resize(bulk.len() + BODY - 64, b'x');
            if writer.write_all(&bulk).is_err() {
                return;
            }
            for _ in 0..64 {
                thread::sleep(Duration::from_secs(1));
                if started.elapsed() > limit || writer.write_all(b"x").is_err() {
                    return;
                }
            }
        })
        .unwrap();
    let mut reader = sock;
    let (got, _) = read_until_closed(&mut reader, limit);
    let after = started.elapsed();
    let _ = reader.shutdown(std::net::Shutdown::Both);
    let _ = feeder.join();
    Answer {
        status: status(&got),
        after,
        got,
    }
}
