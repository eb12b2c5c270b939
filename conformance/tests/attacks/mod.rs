//! The attack rules: what a hostile client does to a demo over real sockets, written once.
//!
//! Each rule is a function of the demo binary's path and of the [`Server`] behind it: the
//! sse-http1 driver (tokio and async-std demos) or hyper. Where hyper does something else by
//! design, the rule asserts what hyper does and says why. Every rule also checks, during the
//! attack, that a legitimate client is served promptly and that the demo's memory (RSS)
//! stays within a budget.
//!
//! The demos run with short deadlines from the environment (`demo/limits.rs`), so a rule
//! takes a few seconds: see [`ENV`].

#![allow(clippy::panic, clippy::unwrap_used, dead_code)] // a test reports failure by panicking

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use sse_conformance::Demo;

/// Slow request bodies in numbers, bounded together by the server's body budget.
mod bodies;
/// Requests that the server must refuse, each answered with its status.
mod http;
/// Taking someone else's session, with and without signed ids.
mod ids;
/// What goes on at the end of a connection: peers that leave, graceful shutdown.
mod shutdown;
/// Slow clients: trickled and stalled heads and bodies, slowloris, idle connections.
mod slow;

pub(crate) use bodies::*;
pub(crate) use http::*;
pub(crate) use ids::*;
pub(crate) use shutdown::*;
pub(crate) use slow::*;

/// The server behind a demo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Server {
    /// sse-http1's driver: the tokio and async-std demos.
    Driver,
    /// hyper (through hyper-util's auto builder): the hyper demo.
    Hyper,
}

/// Generates one `#[test]` per attack rule for the demo binary `$bin` served by `$server`.
macro_rules! suite {
    ($bin:expr, $server:expr) => {
        attacks::suite!(@tests $bin, $server;
            head_response_has_no_body,
            host_and_content_length_rules,
            expect_continue_gets_100_then_the_answer,
            oversized_content_length_gets_413_at_once,
            trickled_head_is_cut_at_its_deadline,
            slowloris_does_not_lock_out_a_legitimate_client,
            trickled_body_is_cut_off,
            stalled_bodies_are_cut_off,
            endless_chunked_body_is_cut_off,
            slow_bodies_are_bounded_by_the_budget,
            idle_keep_alive_connection_is_closed,
            a_peer_that_leaves_is_noticed_at_once,
            stray_bytes_with_the_request_then_gone,
            shutdown_with_1000_open_streams,
            shutdown_closes_idle_keep_alive_connections,
            a_copied_id_does_not_reach_another_user,
            a_chosen_or_forged_id_is_refused,
            signed_ids_resume_with_their_position,
        );
    };
    (@tests $bin:expr, $server:expr; $($rule:ident),* $(,)?) => {
        $(
            #[test]
            fn $rule() {
                attacks::$rule($bin, $server);
            }
        )*
    };
}
pub(crate) use suite;

/// The server limits the attack rules run the demos with (`demo/limits.rs`).
pub(crate) const ENV: &[(&str, &str)] = &[
    ("SSE_DEMO_HEAD_TIMEOUT_MS", "1500"),
    ("SSE_DEMO_BODY_TIMEOUT_MS", "1000"),
    ("SSE_DEMO_IDLE_TIMEOUT_MS", "5000"),
    ("SSE_DEMO_MAX_UNFINISHED_HEADS", "16"),
    ("SSE_DEMO_SHUTDOWN_TIMEOUT_MS", "3000"),
];
/// [`ENV`]'s head deadline.
pub(crate) const HEAD_DEADLINE: Duration = Duration::from_millis(1500);
/// [`ENV`]'s body deadline (before the rate credit).
pub(crate) const BODY_DEADLINE: Duration = Duration::from_millis(1000);
/// [`ENV`]'s cap on unfinished heads.
pub(crate) const HEAD_SLOTS: usize = 16;
/// How late a deadline may be enforced (timer granularity, a busy 2-core machine).
pub(crate) const SLACK: Duration = Duration::from_millis(1000);
/// How long a legitimate request may take during an attack.
pub(crate) const PROMPT: Duration = Duration::from_millis(500);

/// Held by the rules that open hundreds of sockets at once (the slowloris, 400 slow bodies,
/// 1 000 streams at shutdown), so that two of them never share the machine: each measures
/// deadlines and memory, which a neighbour's load would blur.
pub(crate) fn crowd() -> std::sync::MutexGuard<'static, ()> {
    static CROWD: std::sync::Mutex<()> = std::sync::Mutex::new(());
    CROWD
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A quiet demo (no ticks, no keep-alive comments) with the limits of [`ENV`].
pub(crate) fn start(bin: &str) -> Demo {
    start_with(bin, &[], ENV)
}

/// A quiet demo with extra flags and its own limits.
pub(crate) fn start_with(bin: &str, flags: &[&str], env: &[(&str, &str)]) -> Demo {
    let mut all = vec!["--tick-ms", "0", "--keep-alive-ms", "0"];
    all.extend_from_slice(flags);
    Demo::start_with_env(bin, &all, env).unwrap()
}

/// The demo's health before an attack: its RSS once it has served a few requests.
pub(crate) struct Health {
    rss_kib: u64,
}

impl Health {
    pub(crate) fn before(demo: &Demo) -> Health {
        for _ in 0..3 {
            legit(demo);
        }
        Health {
            rss_kib: demo.rss_kib().unwrap(),
        }
    }

    /// During the attack: a legitimate client is served within [`PROMPT`], and the demo's
    /// RSS has grown by at most `budget_kib`.
    pub(crate) fn check(&self, demo: &Demo, budget_kib: u64) {
        let took = legit(demo);
        assert!(
            took < PROMPT,
            "a legitimate request took {took:?} during the attack"
        );
        let rss = demo.rss_kib().unwrap();
        assert!(
            rss <= self.rss_kib + budget_kib,
            "RSS grew from {} KiB to {rss} KiB (budget {budget_kib} KiB)",
            self.rss_kib
        );
    }
}

/// `GET /stats` on a new connection; how long it took.
fn legit(demo: &Demo) -> Duration {
    let started = Instant::now();
    let response = demo.request("GET", "/stats", &[], b"").unwrap();
    assert_eq!(response.head.status, 200, "a legitimate GET /stats");
    assert!(response.text().contains("events_requests"));
    started.elapsed()
}

/// A new connection to the demo, as a hostile client uses it.
pub(crate) fn raw(demo: &Demo) -> TcpStream {
    demo.connect().unwrap()
}

/// Reads until the server closes the connection (EOF or a reset) or `limit` passes.
/// Returns what arrived and whether the connection was closed.
pub(crate) fn read_until_closed(sock: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (got, false);
        }
        sock.set_read_timeout(Some(left)).unwrap();
        match sock.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return (got, true),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return (got, false);
            }
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// Reads until `done` holds for what arrived, for at most `limit`; what arrived.
pub(crate) fn read_until(
    sock: &mut TcpStream,
    limit: Duration,
    done: impl Fn(&[u8]) -> bool,
) -> Vec<u8> {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    while !done(&got) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "timed out; got {:?}",
            String::from_utf8_lossy(&got)
        );
        sock.set_read_timeout(Some(left)).unwrap();
        match sock.read(&mut buf) {
            Ok(0) => panic!("closed early; got {:?}", String::from_utf8_lossy(&got)),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("read: {e}; got {:?}", String::from_utf8_lossy(&got)),
        }
    }
    got
}

/// Whether the server has closed `sock`, without waiting: EOF or a reset, after any bytes
/// it sent first.
pub(crate) fn is_closed(sock: &TcpStream) -> bool {
    sock.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 4096];
    let mut reader = sock;
    let closed = loop {
        match reader.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
            Err(_) => break true,
        }
    };
    sock.set_nonblocking(false).unwrap();
    closed
}

/// The status code of the first response in `bytes`.
pub(crate) fn status(bytes: &[u8]) -> Option<u16> {
    let line = bytes.split(|&b| b == b'\n').next()?;
    let text = std::str::from_utf8(line).ok()?;
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// Writes `bytes` one at a time, `every` apart, until `stop` passes or the write fails.
pub(crate) fn trickle(mut sock: TcpStream, bytes: &[u8], every: Duration, stop: Instant) {
    for byte in bytes.iter().cycle() {
        if Instant::now() >= stop || sock.write_all(&[*byte]).is_err() {
            return;
        }
        std::thread::sleep(every);
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
