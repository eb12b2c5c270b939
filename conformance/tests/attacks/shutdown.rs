//! The ends of connections: a peer that leaves is noticed at once, and a shutdown ends
//! every stream and lets the server exit promptly.

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use sse_conformance::Demo;

use super::{Health, Server, is_closed, raw, read_until, read_until_closed, start, start_with};

/// How a client goes away.
#[derive(Debug, Clone, Copy)]
enum Leave {
    /// A FIN, as a closed tab's socket sends.
    Fin,
    /// A reset (`SO_LINGER` 0), as a crashed client or a middlebox sends.
    Reset,
}

fn leave(sock: TcpStream, how: Leave) {
    match how {
        Leave::Fin => {
            let _ = sock.shutdown(Shutdown::Both);
        }
        Leave::Reset => {
            socket2::SockRef::from(&sock)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
        }
    }
    drop(sock);
}

/// `GET /events` with `extra` bytes right after the head in the same write; the socket and
/// the session id, once the preamble has arrived.
fn open_stream(demo: &Demo, extra: &[u8]) -> (TcpStream, String) {
    let mut sock = raw(demo);
    let mut request =
        b"GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n".to_vec();
    request.extend_from_slice(extra);
    sock.write_all(&request).unwrap();
    let got = read_until(&mut sock, Duration::from_secs(5), |got| {
        let text = String::from_utf8_lossy(got);
        text.find("\nid: ")
            .is_some_and(|at| text[at + 5..].contains('\n'))
    });
    let text = String::from_utf8_lossy(&got);
    let id = text
        .lines()
        .find_map(|l| l.strip_prefix("id: "))
        .unwrap_or_else(|| panic!("no id in {text}"))
        .to_owned();
    (sock, id)
}

/// Whether `id` left `GET /sessions` within `limit`.
fn leaves_within(demo: &Demo, id: &str, limit: Duration) -> bool {
    let ids = demo
        .wait_sessions(limit, |ids| !ids.iter().any(|i| i == id))
        .unwrap();
    !ids.iter().any(|i| i == id)
}

/// A client that goes away from an idle stream, with a FIN or a reset, after sending stray
/// bytes or not: its session leaves within a second, with nothing written to the stream
/// (no keep-alive comments here). A writer that stops reading after the first bytes
/// registers no interest in the socket and would sleep through the FIN.
pub(crate) fn a_peer_that_leaves_is_noticed_at_once(bin: &str, _server: Server) {
    let demo = start(bin);
    let health = Health::before(&demo);
    for stray in [&b""[..], b"xyz\r\n", &[b'z'; 3000]] {
        for how in [Leave::Fin, Leave::Reset] {
            let (mut sock, id) = open_stream(&demo, b"");
            if !stray.is_empty() {
                sock.write_all(stray).unwrap();
                // Let the server read the stray bytes on their own, before the end.
                thread::sleep(Duration::from_millis(100));
            }
            assert!(demo.sessions().unwrap().contains(&id));
            leave(sock, how);
            assert!(
                leaves_within(&demo, &id, Duration::from_secs(1)),
                "{how:?} after {} stray bytes: the session is still listed",
                stray.len()
            );
        }
    }
    health.check(&demo, 4 * 1024);
}

/// Stray bytes in the same segment as `GET /events`, then a FIN or a reset.
///
/// The driver drops the request reader (and what it buffered) when the stream starts, and
/// reads on: noticed at once. hyper keeps those bytes in its own read buffer as the start
/// of a next request and stops reading while the response streams, so no guard on the
/// socket sees the end: it is noticed only when writes fail, which keep-alive comments
/// (every 200 ms here) bring about within two of them.
pub(crate) fn stray_bytes_with_the_request_then_gone(bin: &str, server: Server) {
    let demo = match server {
        Server::Driver => start(bin),
        Server::Hyper => start_with(bin, &["--keep-alive-ms", "200"], super::ENV),
    };
    for how in [Leave::Fin, Leave::Reset] {
        let (sock, id) = open_stream(&demo, b"GET /x HTTP/1.1\r\nHost: x\r\n");
        leave(sock, how);
        assert!(
            leaves_within(&demo, &id, Duration::from_secs(1)),
            "{how:?}: the session is still listed"
        );
    }
}

/// SIGTERM with 1 000 open streams: every stream ends (with the last chunk: ended, not
/// cut), the demo exits within a second, and an event-stream request made during the
/// shutdown gets the go-away answer (a `retry:` and `Connection: close`) or no connection.
pub(crate) fn shutdown_with_1000_open_streams(bin: &str, _server: Server) {
    const STREAMS: usize = 1000;
    let _crowd = super::crowd();
    let mut demo = start(bin);
    let health = Health::before(&demo);
    let mut streams: Vec<TcpStream> = (0..STREAMS).map(|_| open_stream(&demo, b"").0).collect();
    health.check(&demo, 64 * 1024);
    assert_eq!(demo.sessions().unwrap().len(), STREAMS);

    let signalled = Instant::now();
    demo.signal("TERM").unwrap();
    // Once the first stream has ended, the hub is shutting down.
    let first = &mut streams[0];
    let (tail, closed) = read_until_closed(first, Duration::from_secs(1));
    assert!(
        closed && tail.ends_with(b"0\r\n\r\n"),
        "{:?}",
        String::from_utf8_lossy(&tail)
    );
    late_request_is_turned_away(&demo);
    let status = demo.wait_exit(Duration::from_secs(1)).unwrap();
    let took = signalled.elapsed();
    assert!(
        status.is_some(),
        "the demo still runs {took:?} after SIGTERM"
    );
    eprintln!("{bin}: exited {took:?} after SIGTERM with {STREAMS} streams");
    for (i, sock) in streams.iter_mut().enumerate().skip(1) {
        let (tail, closed) = read_until_closed(sock, Duration::from_secs(1));
        assert!(
            closed && tail.ends_with(b"0\r\n\r\n"),
            "stream {i} did not end cleanly: {:?}",
            String::from_utf8_lossy(&tail)
        );
    }
}

/// An event-stream request during shutdown: refused, closed unanswered, or the go-away.
fn late_request_is_turned_away(demo: &Demo) {
    let Ok(mut sock) = TcpStream::connect(demo.addr()) else {
        return; // refused: the listener is gone
    };
    let request = b"GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n";
    if sock.write_all(request).is_err() {
        return;
    }
    let (got, closed) = read_until_closed(&mut sock, Duration::from_secs(1));
    let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
    assert!(closed, "a request during shutdown is kept open: {text}");
    if !got.is_empty() {
        assert!(text.starts_with("http/1.1 200"), "{text}");
        assert!(text.contains("connection: close"), "{text}");
        assert!(
            text.contains("retry:") && !text.contains("\nid:"),
            "a go-away: {text}"
        );
    }
}

/// SIGINT with an idle keep-alive connection and an open stream: the idle connection is
/// closed, the stream ends, and the demo exits within a second.
pub(crate) fn shutdown_closes_idle_keep_alive_connections(bin: &str, _server: Server) {
    let mut demo = start(bin);
    let mut client = demo.client().unwrap();
    assert_eq!(
        client
            .request("GET", "/stats", &[], b"")
            .unwrap()
            .head
            .status,
        200
    );
    let idle = client.into_socket();
    let (mut stream, _) = open_stream(&demo, b"");
    let signalled = Instant::now();
    demo.signal("INT").unwrap();
    let status = demo.wait_exit(Duration::from_secs(1)).unwrap();
    assert!(
        status.is_some(),
        "the demo still runs {:?} after SIGINT",
        signalled.elapsed()
    );
    assert!(is_closed(&idle), "the idle connection was not closed");
    let (tail, closed) = read_until_closed(&mut stream, Duration::from_secs(1));
    assert!(closed && tail.ends_with(b"0\r\n\r\n"));
}
