use std::time::{Duration, Instant};

use super::*;
use crate::closed::{ClosedPolicy, MemoryClosedSet};
use crate::id::{IdRejection, UuidV4};

fn fixed() -> SessionId {
    SessionId::parse(b"generated", 128).expect("valid")
}

fn gen_fixed() -> impl IdGenerator {
    fixed
}

fn decide(method: &[u8], target: &[u8], headers: &[(&[u8], &[u8])]) -> Decision {
    let mut closed = MemoryClosedSet::default();
    decide_with(&mut closed, method, target, headers)
}

fn decide_with(
    closed: &mut MemoryClosedSet,
    method: &[u8],
    target: &[u8],
    headers: &[(&[u8], &[u8])],
) -> Decision {
    let mut req = Request::new(method, target, HttpVersion::Http11);
    for (n, v) in headers {
        req.header(n, v);
    }
    Handshake::new().decide(&req, closed, &gen_fixed(), Instant::now())
}

fn accepted(d: Decision) -> Accept {
    match d {
        Decision::Accept(a) => a,
        other => panic!("expected accept, got {other:?}"),
    }
}

const ES: (&[u8], &[u8]) = (b"Accept", b"text/event-stream");

#[test]
fn accept_header_rules() {
    let yes: &[&[u8]] = &[
        b"text/event-stream",
        b"TEXT/Event-Stream",
        b"text/html, text/event-stream;q=0.5",
        b"text/event-stream; charset=utf-8",
        b" text/event-stream ;q=1.0",
        b"text/event-stream;Q=0.001",
    ];
    for v in yes {
        assert!(accepts_event_stream(v), "{}", String::from_utf8_lossy(v));
    }
    let no: &[&[u8]] = &[
        b"",
        b"*/*",
        b"text/*",
        b"text/html",
        b"text/event-stream;q=0",
        b"text/event-stream;q=0.000",
        b"text/event-stream;q=abc",
        b"text/event-stream;q=2",
        b"text/event-streams",
    ];
    for v in no {
        assert!(!accepts_event_stream(v), "{}", String::from_utf8_lossy(v));
    }
}

#[test]
fn not_event_stream() {
    assert!(matches!(
        decide(b"POST", b"/events", &[ES]),
        Decision::NotEventStream(NotEventStream::Method)
    ));
    assert!(matches!(
        decide(b"GET", b"/events", &[(b"accept", b"*/*")]),
        Decision::NotEventStream(NotEventStream::Accept)
    ));
    // A second Accept header can list it.
    let a = accepted(decide(
        b"GET",
        b"/",
        &[(b"accept", b"text/html"), (b"ACCEPT", b"text/event-stream")],
    ));
    assert!(a.is_new());
}

#[test]
fn fresh_id_and_preamble() {
    let a = accepted(decide(b"GET", b"/events", &[ES]));
    assert_eq!(a.session, fixed());
    assert_eq!(a.source, IdSource::Generated);
    assert!(a.is_new());
    assert!(a.rejected.is_empty());
    assert_eq!(
        a.preamble.to_bytes(),
        &b"retry: 3000\nid: generated\n\n"[..]
    );
    assert_eq!(a.head.status(), 200);
    assert!(a.head.headers().contains(&("connection", "keep-alive")));
}

#[test]
fn resolution_order() {
    let a = accepted(decide(
        b"GET",
        b"/events?x=1&id=from%20query",
        &[ES, (b"Last-Event-ID", b"from-header")],
    ));
    assert_eq!(a.session.as_str(), "from-header");
    assert_eq!(a.source, IdSource::LastEventId);
    assert!(!a.is_new());

    let a = accepted(decide(b"GET", b"/events?x=1&id=from%20query", &[ES]));
    assert_eq!(a.session.as_str(), "from query");
    assert_eq!(a.source, IdSource::Query);

    // A bad header falls back to the query id.
    let a = accepted(decide(
        b"GET",
        b"/events?id=q",
        &[ES, (b"last-event-id", b"")],
    ));
    assert_eq!(a.session.as_str(), "q");
    assert_eq!(
        a.rejected,
        vec![RejectedId {
            source: IdSource::LastEventId,
            reason: IdRejection::Empty
        }]
    );
}

#[test]
fn hostile_ids_are_never_echoed() {
    let long = "a".repeat(10 * 1024);
    let cases: Vec<(Vec<u8>, IdRejection)> = vec![
        (
            b"/e?id=a%0Aevent:%20x".to_vec(),
            IdRejection::ControlByte(b'\n'),
        ),
        (b"/e?id=a%0Db".to_vec(), IdRejection::ControlByte(b'\r')),
        (b"/e?id=a%00b".to_vec(), IdRejection::ControlByte(0)),
        (b"/e?id=%FF%FE".to_vec(), IdRejection::NotUtf8),
        (b"/e?id=".to_vec(), IdRejection::Empty),
        (b"/e?id".to_vec(), IdRejection::Empty),
        (b"/e?id=%G1".to_vec(), IdRejection::BadPercentEncoding),
        (
            format!("/e?id={long}").into_bytes(),
            IdRejection::TooLong {
                len: 10 * 1024,
                max: 128,
            },
        ),
    ];
    for (target, reason) in cases {
        let a = accepted(decide(b"GET", &target, &[ES]));
        assert_eq!(a.session, fixed(), "{}", String::from_utf8_lossy(&target));
        assert_eq!(
            a.rejected,
            vec![RejectedId {
                source: IdSource::Query,
                reason
            }]
        );
        assert_eq!(
            a.preamble.to_bytes(),
            &b"retry: 3000\nid: generated\n\n"[..]
        );
    }
    let headers: &[&[u8]] = &[b"a\rb", b"a\nb", b"\0", b"\xff", long.as_bytes()];
    for h in headers {
        let a = accepted(decide(b"GET", b"/e", &[ES, (b"last-event-id", h)]));
        assert_eq!(a.session, fixed());
        assert_eq!(a.rejected.len(), 1);
        assert_eq!(a.rejected[0].source, IdSource::LastEventId);
    }
}

#[test]
fn closed_ids_get_no_content_once() {
    let now = Instant::now();
    let mut closed = MemoryClosedSet::default();
    let id = SessionId::parse(b"tab", 128).expect("valid");
    closed.mark(&id, now);
    let d = decide_with(
        &mut closed,
        b"GET",
        b"/e",
        &[ES, (b"last-event-id", b"tab")],
    );
    assert!(
        matches!(d, Decision::NoContent { ref session, source: IdSource::LastEventId } if *session == id)
    );
    // Consumed: the next load with ?id= starts afresh with the same id.
    let a = accepted(decide_with(&mut closed, b"GET", b"/e?id=tab", &[ES]));
    assert_eq!(a.session, id);

    let mut keep = MemoryClosedSet::new(8, Duration::from_secs(60), ClosedPolicy::KeepUntilExpired);
    keep.mark(&id, now);
    for _ in 0..3 {
        let d = decide_with(&mut keep, b"GET", b"/e?id=tab", &[ES]);
        assert!(matches!(d, Decision::NoContent { .. }));
    }
}

#[test]
fn http2_head_has_no_connection_header() {
    let mut req = Request::new(b"GET", b"/e", HttpVersion::Http2);
    req.header(b"accept", b"text/event-stream");
    let a = accepted(Handshake::new().decide(
        &req,
        &mut MemoryClosedSet::default(),
        &UuidV4,
        Instant::now(),
    ));
    assert!(a.head.headers().iter().all(|(n, _)| *n != "connection"));
    assert!(
        a.head
            .headers()
            .contains(&("content-type", "text/event-stream"))
    );
}

#[test]
fn jitter_is_bounded_and_stable() {
    let hs = Handshake::new()
        .retry(Duration::from_millis(1000))
        .jitter(Duration::from_millis(500));
    let mut seen = std::collections::HashSet::new();
    for i in 0..50 {
        let target = format!("/e?id=tab-{i}");
        let mut req = Request::new(b"GET", target.as_bytes(), HttpVersion::Http11);
        req.header(b"accept", b"text/event-stream");
        let mut closed = MemoryClosedSet::default();
        let a = accepted(hs.decide(&req, &mut closed, &UuidV4, Instant::now()));
        let b = accepted(hs.decide(&req, &mut closed, &UuidV4, Instant::now()));
        assert_eq!(a.retry, b.retry);
        assert!(a.retry >= Duration::from_millis(1000) && a.retry <= Duration::from_millis(1500));
        seen.insert(a.retry);
    }
    assert!(seen.len() > 10, "jitter should spread sessions: {seen:?}");
}

#[test]
fn http1_head_bytes() {
    let mut buf = BytesMut::new();
    ResponseHead::no_content().write_http1(&mut buf);
    assert_eq!(
        &buf[..],
        b"HTTP/1.1 204 No Content\r\ncache-control: no-cache, no-transform\r\n"
    );
}

#[test]
fn query_id_edge_cases() {
    let q = |t: &'static [u8]| Request::new(b"GET", t, HttpVersion::Http11).query_id();
    assert_eq!(q(b"/e"), None);
    assert_eq!(q(b"/e?ids=1&xid=2"), None);
    assert_eq!(q(b"/e?id=1&id=2"), Some(&b"1"[..]));
    assert_eq!(q(b"/e?a&id=x#frag"), Some(&b"x"[..]));
    assert_eq!(q(b"http://h/e?id=abs"), Some(&b"abs"[..]));
}
