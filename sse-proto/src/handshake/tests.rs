use std::time::Duration;

use super::*;
use crate::cursor::Cursor;

fn offer(target: &[u8], headers: &[(&[u8], &[u8])], resumable: bool) -> Offer {
    try_offer(b"GET", target, headers, resumable).expect("an event-stream request")
}

fn try_offer(
    method: &[u8],
    target: &[u8],
    headers: &[(&[u8], &[u8])],
    resumable: bool,
) -> Result<Offer, NotEventStream> {
    let mut req = Request::new(method, target, HttpVersion::Http11);
    req.header(b"accept", b"text/event-stream");
    for (n, v) in headers {
        req.header(n, v);
    }
    HandshakeConfig::new().offer(&req, resumable)
}

fn claimed(o: &Offer) -> (&str, Claimed) {
    let c = o.claim().expect("a claim");
    (c.session.as_str(), c.position)
}

#[test]
fn not_event_stream() {
    assert_eq!(
        try_offer(b"POST", b"/events", &[], false).map(|_| ()),
        Err(NotEventStream::Method)
    );
    let req = Request::new(b"GET", b"/events", HttpVersion::Http11);
    assert_eq!(
        HandshakeConfig::new().offer(&req, false).map(|_| ()),
        Err(NotEventStream::Accept)
    );
    // A second Accept header can list it.
    let mut req = Request::new(b"GET", b"/", HttpVersion::Http11);
    req.header(b"accept", b"text/html")
        .header(b"ACCEPT", b"text/event-stream");
    let o = HandshakeConfig::new().offer(&req, false).expect("accepted");
    assert!(o.claim().is_none());
    assert_eq!(o.source(), IdSource::Generated);
}

#[test]
fn resolution_order() {
    let o = offer(
        b"/events?x=1&id=from%20query",
        &[(b"Last-Event-ID", b"from-header")],
        false,
    );
    assert_eq!(claimed(&o), ("from-header", Claimed::None));
    assert_eq!(o.source(), IdSource::LastEventId);

    let o = offer(b"/events?x=1&id=from%20query", &[], false);
    assert_eq!(claimed(&o), ("from query", Claimed::None));
    assert_eq!(o.source(), IdSource::Query);

    // A bad header falls back to the query id.
    let o = offer(b"/events?id=q", &[(b"last-event-id", b"")], false);
    assert_eq!(claimed(&o).0, "q");
    assert_eq!(
        o.rejected(),
        [RejectedId {
            source: IdSource::LastEventId,
            reason: IdRejection::Empty
        }]
    );
    // Both offered and refused: none.
    let o = offer(b"/events?id=%0A", &[(b"last-event-id", b"\x01")], true);
    assert!(o.claim().is_none());
    assert_eq!(o.rejected().len(), 2);
    assert_eq!(
        o.lookup(),
        Lookup {
            closed: None,
            history: None
        }
    );
}

#[test]
fn hostile_ids_are_refused_with_their_reason() {
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
    for resumable in [false, true] {
        for (target, reason) in &cases {
            let o = offer(target, &[], resumable);
            assert!(o.claim().is_none(), "{}", String::from_utf8_lossy(target));
            assert_eq!(
                o.rejected(),
                [RejectedId {
                    source: IdSource::Query,
                    reason: *reason
                }]
            );
        }
        let headers: &[&[u8]] = &[b"a\rb", b"a\nb", b"\0", b"\xff", long.as_bytes()];
        for h in headers {
            let o = offer(b"/e", &[(b"last-event-id", h)], resumable);
            assert!(o.claim().is_none());
            assert_eq!(o.rejected()[0].source, IdSource::LastEventId);
        }
    }
}

#[test]
fn resume_tokens_split_into_session_and_position() {
    let o = offer(b"/e", &[(b"last-event-id", b"tab~1.a")], true);
    assert_eq!(claimed(&o), ("tab", Claimed::At(Cursor::new(1, 10))));
    assert_eq!(
        o.lookup().history,
        Some((
            &o.claim().expect("claim").session,
            Claimed::At(Cursor::new(1, 10))
        ))
    );
    // Through the query, percent-encoded.
    let o = offer(b"/e?id=tab%7E1.a", &[], true);
    assert_eq!(claimed(&o), ("tab", Claimed::At(Cursor::new(1, 10))));
    // Forged, truncated or bare: the session survives, the position does not.
    for raw in [
        &b"tab~"[..],
        b"tab~1.",
        b"tab~-1.1",
        b"tab~1.A",
        b"tab~\xff",
    ] {
        let o = offer(b"/e", &[(b"last-event-id", raw)], true);
        assert_eq!(claimed(&o), ("tab", Claimed::Invalid), "{raw:?}");
    }
    let o = offer(b"/e", &[(b"last-event-id", b"tab")], true);
    assert_eq!(claimed(&o), ("tab", Claimed::None));
    // Without resume mode the whole value is the id.
    let o = offer(b"/e", &[(b"last-event-id", b"tab~1.a")], false);
    assert_eq!(claimed(&o), ("tab~1.a", Claimed::None));
    assert_eq!(o.lookup().history, None);
    // Nothing before the separator: refused, as an empty id.
    let o = offer(b"/e", &[(b"last-event-id", b"~1.1")], true);
    assert!(o.claim().is_none());
    assert_eq!(o.rejected()[0].reason, IdRejection::Empty);
    // An id with a `~` of its own is kept, unless it reads as another id and a position:
    // once its session were gone, a call taking it would reach session `tab`.
    let o = offer(b"/e", &[(b"last-event-id", b"a~b~1.1")], true);
    assert_eq!(claimed(&o), ("a~b", Claimed::At(Cursor::new(1, 1))));
    for raw in [&b"tab~1.1~"[..], b"tab~1.1~2.2", b"tab~0.0~x"] {
        let o = offer(b"/e", &[(b"last-event-id", raw)], true);
        assert!(o.claim().is_none(), "{raw:?}");
        assert_eq!(o.rejected()[0].reason, IdRejection::HoldsPosition);
    }
    // Without resume mode no id is read as holding a position.
    let o = offer(b"/e", &[(b"last-event-id", b"tab~1.1~")], false);
    assert_eq!(claimed(&o), ("tab~1.1~", Claimed::None));
}

#[test]
fn resumable_session_ids_leave_room_for_the_position() {
    let max = DEFAULT_MAX_ID_LEN - MAX_POSITION_LEN;
    let fits = "s".repeat(max);
    let o = offer(b"/e", &[(b"last-event-id", fits.as_bytes())], true);
    assert_eq!(claimed(&o).0, fits);
    let over = "s".repeat(max + 1);
    let o = offer(b"/e", &[(b"last-event-id", over.as_bytes())], true);
    assert!(o.claim().is_none());
    assert_eq!(
        o.rejected()[0].reason,
        IdRejection::TooLong { len: max + 1, max }
    );
    // The whole token is bounded too.
    let token = format!("{}~{}", "s".repeat(max), "1".repeat(40));
    let o = offer(b"/e", &[(b"last-event-id", token.as_bytes())], true);
    assert!(o.claim().is_none());
}

#[test]
fn jitter_is_bounded_and_stable() {
    let hs = HandshakeConfig::new()
        .retry(Duration::from_millis(1000))
        .jitter(Duration::from_millis(500));
    let mut seen = std::collections::HashSet::new();
    for i in 0..50 {
        let id = SessionId::parse(format!("tab-{i}").as_bytes(), 128).expect("valid");
        let retry = hs.retry_for(&id);
        assert_eq!(retry, hs.retry_for(&id));
        assert!(retry >= Duration::from_millis(1000) && retry <= Duration::from_millis(1500));
        seen.insert(retry);
    }
    assert!(seen.len() > 10, "jitter should spread sessions: {seen:?}");
    let id = SessionId::parse(b"x", 128).expect("valid");
    assert_eq!(
        HandshakeConfig::new().retry_for(&id),
        Duration::from_secs(3)
    );
}

#[test]
fn preamble_bytes() {
    assert_eq!(
        preamble("tab~1.2", Duration::from_millis(2500)).to_bytes(),
        &b"retry: 2500\nid: tab~1.2\n\n"[..]
    );
    assert_eq!(id_line("tab").to_bytes(), &b"id: tab\n"[..]);
}
