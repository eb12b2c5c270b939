//! Requests a server must refuse or answer exactly, each over its own socket.

use std::io::Write;
use std::time::{Duration, Instant};

use super::{Health, Server, raw, read_until, read_until_closed, start, status, text};

/// A `HEAD` answered with a body would desynchronise a keep-alive connection: the body
/// would be read as the start of the next response (RFC 9110 §9.3.2).
pub(crate) fn head_response_has_no_body(bin: &str, _server: Server) {
    let demo = start(bin);
    let health = Health::before(&demo);
    let mut sock = raw(&demo);
    // The routes answer only GET and POST: the HEAD gets 405, whose text must not follow.
    sock.write_all(
        b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let (got, closed) = read_until_closed(&mut sock, Duration::from_secs(5));
    assert!(closed, "the server closes after `Connection: close`");
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut head = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(len) = head.parse(&got).unwrap() else {
        panic!("a whole HEAD response: {}", text(&got));
    };
    assert_eq!(head.code, Some(405), "{}", text(&got));
    let length = head
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"));
    assert!(
        length.is_some_and(|h| h.value != b"0"),
        "the length the GET answer's body would have: {}",
        text(&got)
    );
    let rest = &got[len..];
    assert!(
        rest.starts_with(b"HTTP/1.1 200"),
        "the GET's answer follows the HEAD's head at once: {}",
        text(rest)
    );
    assert!(text(rest).contains("events_requests"), "{}", text(rest));
    health.check(&demo, 4 * 1024);
}

/// RFC 9112 §3.2: an HTTP/1.1 request without `Host`, or with two, gets 400; RFC 9110 §8.6:
/// `Content-Length` is digits only, so `+3` gets 400 (a front end that read it otherwise
/// would frame the body differently: request smuggling).
pub(crate) fn host_and_content_length_rules(bin: &str, _server: Server) {
    let demo = start(bin);
    let health = Health::before(&demo);
    let cases: &[(&str, &[u8], u16)] = &[
        ("with one Host", b"GET /stats HTTP/1.1\r\nHost: x\r\n", 200),
        ("without Host", b"GET /stats HTTP/1.1\r\n", 400),
        (
            "with two Host lines",
            b"GET /stats HTTP/1.1\r\nHost: x\r\nHost: y\r\n",
            400,
        ),
        (
            "with Content-Length: +3",
            b"POST /broadcast HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n",
            400,
        ),
    ];
    for (what, head, want) in cases {
        let mut sock = raw(&demo);
        sock.write_all(head).unwrap();
        sock.write_all(b"Connection: close\r\n\r\nabc").unwrap();
        let (got, _) = read_until_closed(&mut sock, Duration::from_secs(5));
        assert_eq!(
            status(&got),
            Some(*want),
            "a request {what}: {}",
            text(&got)
        );
    }
    health.check(&demo, 4 * 1024);
}

/// `Expect: 100-continue`: the client waits for `100 Continue` before it sends its body
/// (RFC 9110 §10.1.1); without it, it stalls for a second or more.
pub(crate) fn expect_continue_gets_100_then_the_answer(bin: &str, _server: Server) {
    let demo = start(bin);
    let health = Health::before(&demo);
    let mut sock = raw(&demo);
    sock.write_all(
        b"POST /broadcast?event=x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    )
    .unwrap();
    let interim = read_until(&mut sock, Duration::from_secs(1), |got| {
        got.windows(4).any(|w| w == b"\r\n\r\n")
    });
    assert!(
        interim.starts_with(b"HTTP/1.1 100 Continue\r\n"),
        "{}",
        text(&interim)
    );
    sock.write_all(b"hello").unwrap();
    let answer = read_until(&mut sock, Duration::from_secs(2), |got| {
        got.windows(4).any(|w| w == b"\r\n\r\n") && got.ends_with(b"0")
    });
    assert_eq!(status(&answer), Some(200), "{}", text(&answer));
    health.check(&demo, 4 * 1024);
}

/// A `Content-Length` past the body limit (1 MiB) is refused with 413 as soon as the head
/// is read: no waiting for a body that will be refused anyway, and no `100 Continue`.
pub(crate) fn oversized_content_length_gets_413_at_once(bin: &str, _server: Server) {
    let demo = start(bin);
    let health = Health::before(&demo);
    for expect in ["", "Expect: 100-continue\r\n"] {
        let mut sock = raw(&demo);
        let started = Instant::now();
        let head = format!(
            "POST /broadcast HTTP/1.1\r\nHost: x\r\n{expect}Content-Length: 2000000\r\n\r\n"
        );
        sock.write_all(head.as_bytes()).unwrap();
        let got = read_until(&mut sock, Duration::from_secs(2), |got| {
            got.windows(4).any(|w| w == b"\r\n\r\n")
        });
        assert_eq!(status(&got), Some(413), "{expect:?}: {}", text(&got));
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "413 took {:?}",
            started.elapsed()
        );
    }
    health.check(&demo, 4 * 1024);
}
