//! Slow clients: whatever they send, and however slowly, each request has a deadline as a
//! whole, and a crowd of them cannot lock a legitimate client out.

use std::io::Write;
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use super::{
    BODY_DEADLINE, HEAD_DEADLINE, HEAD_SLOTS, Health, SLACK, Server, is_closed, raw,
    read_until_closed, start, start_with, status, text, trickle,
};

/// A head trickled one byte a second: every byte is well within any per-read timeout, the
/// head is not within its deadline. Cut at the head deadline, never kept open.
pub(crate) fn trickled_head_is_cut_at_its_deadline(bin: &str, server: Server) {
    let demo = start(bin);
    let health = Health::before(&demo);
    let mut sock = raw(&demo);
    let started = Instant::now();
    let writer = sock.try_clone().unwrap();
    let stop = started + HEAD_DEADLINE + SLACK * 3;
    let trickler = thread::spawn(move || {
        trickle(
            writer,
            b"GET /stats HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaa",
            Duration::from_secs(1),
            stop,
        )
    });
    thread::sleep(Duration::from_millis(700));
    health.check(&demo, 4 * 1024);
    let (got, closed) = read_until_closed(&mut sock, HEAD_DEADLINE + SLACK * 3);
    let took = started.elapsed();
    assert!(closed, "a trickled head is never cut off ({took:?})");
    assert!(
        took >= HEAD_DEADLINE - Duration::from_millis(100) && took < HEAD_DEADLINE + SLACK,
        "cut after {took:?}, the deadline is {HEAD_DEADLINE:?}"
    );
    match server {
        Server::Driver => assert_eq!(status(&got), Some(408), "{}", text(&got)),
        // hyper closes without an answer: it writes automatic answers for parse errors
        // only (hyper's `Server::on_error`), and its header timeout is not one.
        Server::Hyper => assert!(got.is_empty(), "{}", text(&got)),
    }
    trickler.join().unwrap();
}

/// 200 connections that each hold an unfinished head (a slowloris): a legitimate client is
/// still served at once, memory stays bounded, and every attacker is cut off.
///
/// The driver caps unfinished heads server-wide (16 here) and evicts the oldest: all but
/// the newest 16 attackers are answered 503 and closed at once, the rest at the head
/// deadline. hyper has no such cap (and no limit on connections): it keeps every attacker
/// until its header timeout, and serves the legitimate client meanwhile because nothing
/// there is shared; its cost is memory per connection.
pub(crate) fn slowloris_does_not_lock_out_a_legitimate_client(bin: &str, server: Server) {
    const ATTACKERS: usize = 200;
    let _crowd = super::crowd();
    let demo = start(bin);
    let health = Health::before(&demo);
    let started = Instant::now();
    let attackers: Vec<TcpStream> = (0..ATTACKERS)
        .map(|_| {
            let mut sock = raw(&demo);
            sock.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Never: ends")
                .unwrap();
            sock
        })
        .collect();
    let set_up = started.elapsed();
    eprintln!("{bin}: {ATTACKERS} attackers set up in {set_up:?}");
    // Before the head deadline: the driver has evicted every attacker past its cap.
    thread::sleep(Duration::from_millis(200));
    let closed = attackers.iter().filter(|s| is_closed(s)).count();
    let checked = started.elapsed();
    assert!(
        checked < HEAD_DEADLINE,
        "the attack took too long to set up: {set_up:?}, checked at {checked:?}"
    );
    match server {
        Server::Driver => assert!(
            closed >= ATTACKERS - HEAD_SLOTS,
            "{closed} of {ATTACKERS} attackers evicted with {HEAD_SLOTS} slots"
        ),
        Server::Hyper => assert_eq!(closed, 0, "hyper evicts nobody"),
    }
    for _ in 0..5 {
        health.check(&demo, 24 * 1024);
        thread::sleep(Duration::from_millis(20));
    }
    // After the head deadline of the last attacker, every attacker is gone. (The server may
    // have accepted the crowd late, and its deadlines run from the first byte it read: twice
    // the slack.)
    let last = started + set_up;
    thread::sleep((last + HEAD_DEADLINE + SLACK * 2).saturating_duration_since(Instant::now()));
    let open = attackers.iter().filter(|s| !is_closed(s)).count();
    assert_eq!(open, 0, "attackers still open after the head deadline");
    health.check(&demo, 24 * 1024);
}

/// A body trickled a byte every 200 ms after `Content-Length: 100000`: cut at the body
/// deadline (1 s plus a second per 4 KiB received, so barely more) with 408.
pub(crate) fn trickled_body_is_cut_off(bin: &str, _server: Server) {
    let demo = start(bin);
    let health = Health::before(&demo);
    let mut sock = raw(&demo);
    sock.write_all(b"POST /broadcast HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        .unwrap();
    let started = Instant::now();
    let writer = sock.try_clone().unwrap();
    let stop = started + BODY_DEADLINE + SLACK * 3;
    let trickler = thread::spawn(move || trickle(writer, b"x", Duration::from_millis(200), stop));
    thread::sleep(Duration::from_millis(500));
    health.check(&demo, 4 * 1024);
    let (got, closed) = read_until_closed(&mut sock, BODY_DEADLINE + SLACK * 3);
    let took = started.elapsed();
    assert_eq!(status(&got), Some(408), "after {took:?}: {}", text(&got));
    assert!(closed && took < BODY_DEADLINE + SLACK, "cut after {took:?}");
    trickler.join().unwrap();
}

/// 30 bodies that stop after 1 KiB of a `Content-Length: 1000000`: each is answered 408
/// at its deadline, and the memory they hold meanwhile stays bounded.
pub(crate) fn stalled_bodies_are_cut_off(bin: &str, _server: Server) {
    const CLIENTS: usize = 30;
    let demo = start(bin);
    let health = Health::before(&demo);
    let started = Instant::now();
    let mut socks: Vec<TcpStream> = (0..CLIENTS)
        .map(|_| {
            let mut sock = raw(&demo);
            sock.write_all(
                b"POST /broadcast HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n",
            )
            .unwrap();
            sock.write_all(&[b'x'; 1024]).unwrap();
            sock
        })
        .collect();
    health.check(&demo, 16 * 1024);
    // 1 s, plus a quarter second of credit for 1 KiB.
    let deadline = BODY_DEADLINE + Duration::from_millis(250);
    for sock in &mut socks {
        let left = (started + deadline + SLACK).saturating_duration_since(Instant::now());
        let (got, closed) = read_until_closed(sock, left + Duration::from_millis(10));
        assert_eq!(status(&got), Some(408), "{}", text(&got));
        assert!(closed);
    }
    assert!(
        started.elapsed() < deadline + SLACK,
        "cut after {:?}",
        started.elapsed()
    );
    health.check(&demo, 16 * 1024);
}

/// A chunked body that never ends (a small chunk every 200 ms): cut at the body deadline
/// with 408, however many chunks keep coming.
pub(crate) fn endless_chunked_body_is_cut_off(bin: &str, _server: Server) {
    let demo = start(bin);
    let health = Health::before(&demo);
    let mut sock = raw(&demo);
    sock.write_all(b"POST /broadcast HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    let started = Instant::now();
    let mut writer = sock.try_clone().unwrap();
    let stop = started + BODY_DEADLINE + SLACK * 3;
    let chunker = thread::spawn(move || {
        while Instant::now() < stop && writer.write_all(b"4\r\ndata\r\n").is_ok() {
            thread::sleep(Duration::from_millis(200));
        }
    });
    thread::sleep(Duration::from_millis(500));
    health.check(&demo, 4 * 1024);
    let (got, closed) = read_until_closed(&mut sock, BODY_DEADLINE + SLACK * 3);
    let took = started.elapsed();
    assert_eq!(status(&got), Some(408), "after {took:?}: {}", text(&got));
    assert!(closed && took < BODY_DEADLINE + SLACK, "cut after {took:?}");
    chunker.join().unwrap();
}

/// The one idle rule, with the demos' defaults: a connection that never sends anything and a
/// keep-alive connection after its response are both closed quietly 10 s after they went
/// quiet, not before, on every demo.
///
/// hyper has one timer for both: its header read timeout runs from the moment it waits
/// for a head, idle time included, so the idle wait is the head deadline's length on every
/// adapter. A connection that sends nothing is held by hyper-util's auto builder (it waits
/// for bytes to tell HTTP/1.1 from HTTP/2) before hyper's timer runs; the hyper demo bounds
/// that wait itself.
pub(crate) fn idle_keep_alive_connection_is_closed(bin: &str, _server: Server) {
    const IDLE: Duration = Duration::from_secs(10);
    let demo = start_with(bin, &[], &[]);
    let health = Health::before(&demo);
    let mut client = demo.client().unwrap();
    let response = client.request("GET", "/stats", &[], b"").unwrap();
    assert_eq!(response.head.status, 200);
    let mut silent = raw(&demo);
    let started = Instant::now();
    let mut kept = client.into_socket();
    thread::sleep(IDLE - SLACK);
    assert!(!is_closed(&kept), "closed before the idle deadline");
    assert!(!is_closed(&silent), "closed before the idle deadline");
    health.check(&demo, 4 * 1024);
    for sock in [&mut kept, &mut silent] {
        let left = (started + IDLE + SLACK).saturating_duration_since(Instant::now());
        let (got, closed) = read_until_closed(sock, left);
        assert!(
            closed,
            "an idle connection is still open after {:?}",
            started.elapsed()
        );
        assert!(got.is_empty(), "closed quietly: {}", text(&got));
    }
}
