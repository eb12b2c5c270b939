//! Tests of the HTTP/1.1 reader and writers: the tests kept
//! from before the split, the reader's rules table-driven, deadlines on a fake clock, and a
//! proptest that the split of the input never changes the result.

use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use proptest::prelude::*;

use super::head::{body_length, parse_request};
use super::response::write_response;
use super::*;
use sse_proto::{Batch, Frame};

#[test]
fn parses_heads_and_bounds_them() {
    let raw = b"POST /a?b=c HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc";
    let (req, len) = parse_request(raw, 1024).expect("valid").expect("complete");
    assert_eq!(req.method(), Method::POST);
    assert_eq!(&raw[len..], b"abc");
    assert_eq!(body_length(req.headers()), Ok(3));
    assert!(!wants_close(&req));

    assert!(matches!(
        parse_request(b"GET / HTTP/1.1\r\nHost: x\r\n", 1024),
        Ok(None)
    ));
    let long = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(2000));
    assert_eq!(
        parse_request(long.as_bytes(), 1024).map(|r| r.is_some()),
        Err(HeadError::TooLarge { limit: 1024 })
    );
    assert!(matches!(
        parse_request(b"\x00\x01garbage\r\n\r\n", 1024),
        Err(HeadError::Malformed(_))
    ));
    let many: String = (0..100).map(|i| format!("h{i}: v\r\n")).collect();
    let many = format!("GET / HTTP/1.1\r\n{many}\r\n");
    assert_eq!(
        parse_request(many.as_bytes(), 64 * 1024).map(|r| r.is_some()),
        Err(HeadError::TooLarge { limit: 64 * 1024 })
    );
}

#[test]
fn reader_handles_pipelining_split_reads_and_limits() {
    let t0 = Instant::now();
    let mut r = RequestReader::new(ReaderLimits {
        max_head: 256,
        max_body: 8,
    });
    // Host added when RFC 9112 §3.2 became a rule of the reader.
    let raw = b"POST /a HTTP/1.1\r\nHost: a\r\ncontent-length: 3\r\n\r\nabcGET /b HTTP/1.1\r\nHost: a\r\n\r\n";
    let mut got = Vec::new();
    for byte in raw.chunks(1) {
        r.handle_read(byte, t0);
        while let Some(req) = r.poll_request().expect("valid") {
            got.push(req);
        }
    }
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].uri().path(), "/a");
    assert_eq!(got[0].body().as_ref(), b"abc");
    assert_eq!(got[1].uri().path(), "/b");
    assert!(got[1].body().is_empty());
    assert!(!r.is_mid_request());

    r.handle_read(
        b"POST / HTTP/1.1\r\nHost: a\r\ncontent-length: 9\r\n\r\n",
        t0,
    );
    assert_eq!(
        r.poll_request().map(|_| ()),
        Err(HeadError::BodyTooLarge { limit: 8 })
    );
    let mut r = RequestReader::new(ReaderLimits {
        max_head: 64,
        max_body: 8,
    });
    r.handle_read(&[b'A'; 100], t0);
    assert!(r.poll_request().is_err());
}

#[test]
fn body_length_rules() {
    let mut h = HeaderMap::new();
    assert_eq!(body_length(&h), Ok(0));
    h.append("content-length", HeaderValue::from_static("5"));
    h.append("content-length", HeaderValue::from_static("6"));
    assert!(body_length(&h).is_err());
    let mut h = HeaderMap::new();
    h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
    assert_eq!(body_length(&h), Err(HeadError::UnsupportedBody));
    let mut h = HeaderMap::new();
    h.insert("content-length", HeaderValue::from_static("-1"));
    assert!(body_length(&h).is_err());
}

#[test]
fn writes_responses_and_chunks() {
    let mut buf = BytesMut::new();
    let mut h = HeaderMap::new();
    h.insert("content-type", HeaderValue::from_static("text/plain"));
    write_response(StatusCode::NOT_FOUND, &h, b"nope", true, &mut buf);
    assert_eq!(
            &buf[..],
            &b"HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\ncontent-length: 4\r\nconnection: close\r\n\r\nnope"[..]
        );
    let mut buf = BytesMut::new();
    write_response(
        StatusCode::NO_CONTENT,
        &HeaderMap::new(),
        b"",
        false,
        &mut buf,
    );
    assert_eq!(&buf[..], b"HTTP/1.1 204 No Content\r\n\r\n");

    let mut batch = Batch::from(Bytes::from(vec![b'x'; 300]));
    batch.push(Frame::framing_static(b"yz"));
    let mut framed = chunk(batch);
    let bytes = framed.copy_to_bytes(framed.remaining());
    assert!(bytes.starts_with(b"12e\r\nxxx"));
    assert!(bytes.ends_with(b"yz\r\n"));
    assert_eq!(bytes.len(), 5 + 302 + 2);
}

/// What a reader made of a byte stream: the requests, then the error that stopped it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Got {
    Req(String, String, Vec<u8>),
    Err(HeadError),
}

const LIMITS: ReaderLimits = ReaderLimits {
    max_head: 512,
    max_body: 64,
};

/// Feeds `parts` at one instant, draining after each; stops at the first error.
fn drive<'a>(parts: impl IntoIterator<Item = &'a [u8]>, limits: ReaderLimits) -> Vec<Got> {
    let t0 = Instant::now();
    let mut r = RequestReader::new(limits);
    r.handle_ready(t0);
    let mut got = Vec::new();
    for part in parts {
        r.handle_read(part, t0);
        loop {
            match r.poll_request() {
                Ok(Some(req)) => got.push(Got::Req(
                    req.method().to_string(),
                    req.uri().to_string(),
                    req.body().to_vec(),
                )),
                Ok(None) => break,
                Err(e) => {
                    got.push(Got::Err(e));
                    return got;
                }
            }
        }
        assert!(
            r.buffered() <= limits.max_head + limits.max_body + MAX_CHUNK_LINE,
            "{} bytes held",
            r.buffered()
        );
    }
    got
}

fn req(method: &str, target: &str, body: &[u8]) -> Got {
    Got::Req(method.into(), target.into(), body.to_vec())
}

#[test]
fn reader_rules() {
    use HeadError::*;
    let g = |t: &str| req("GET", t, b"");
    let cases: Vec<(&str, Vec<Got>)> = vec![
        ("GET /a HTTP/1.1\r\nHost: h\r\n\r\n", vec![g("/a")]),
        ("GET /a HTTP/1.1\nHost: h\n\n", vec![g("/a")]),
        ("\r\nGET /a HTTP/1.1\r\nHost: h\r\n\r\n", vec![g("/a")]),
        ("GET /a HTTP/1.0\r\n\r\n", vec![g("/a")]),
        ("GET /a HTTP/1.1\r\n\r\n", vec![Got::Err(MissingHost)]),
        (
            "GET /a HTTP/1.1\r\nHost: h\r\nHost: h\r\n\r\n",
            vec![Got::Err(BadHost)],
        ),
        (
            "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc",
            vec![req("POST", "/p", b"abc")],
        ),
        (
            "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
            vec![req("POST", "/p", b"abc")],
        ),
        (
            "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
            vec![Got::Err(BadContentLength)],
        ),
        (
            "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\nabc",
            vec![Got::Err(BadContentLength)],
        ),
        (
            "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\n\r\nabc",
            vec![Got::Err(BadContentLength)],
        ),
        (
            "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 65\r\n\r\n",
            vec![Got::Err(BodyTooLarge { limit: 64 })],
        ),
        (
            "POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            vec![Got::Err(LengthAndTransferEncoding)],
        ),
        (
            "POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\nGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
            vec![req("POST", "/p", b"abcde"), g("/n")],
        ),
        (
            "POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nz\r\n",
            vec![Got::Err(BadChunk("missing chunk size"))],
        ),
        (
            "POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3 ; a = \"b\\\"c\" ;d=e\r\nabc\r\n0;f\r\n\r\n",
            vec![req("POST", "/p", b"abc")],
        ),
        (
            "POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;a=\x00\r\nabcde\r\n0\r\n\r\n",
            vec![Got::Err(BadChunk(
                "chunk extension outside its grammar (token or quoted-string)",
            ))],
        ),
        (
            "POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;a=\"open\r\nabc\r\n0\r\n\r\n",
            vec![Got::Err(BadChunk(
                "chunk extension outside its grammar (token or quoted-string)",
            ))],
        ),
        (
            "POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;=v\r\nabc\r\n0\r\n\r\n",
            vec![Got::Err(BadChunk(
                "chunk extension outside its grammar (token or quoted-string)",
            ))],
        ),
        (
            "POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n41\r\n",
            vec![Got::Err(BodyTooLarge { limit: 64 })],
        ),
        (
            "POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
            vec![Got::Err(UnsupportedTransferCoding)],
        ),
        (
            "POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n",
            vec![Got::Err(BadTransferEncoding)],
        ),
        (
            "POST /p HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            vec![Got::Err(BadTransferEncoding)],
        ),
        (
            "POST /p HTTP/1.1\r\nHost: h\r\nExpect: teapot\r\nContent-Length: 1\r\n\r\nx",
            vec![Got::Err(ExpectationFailed)],
        ),
        (
            "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n",
            vec![Got::Err(Malformed("request line or header syntax"))],
        ),
        (
            "GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\nBAD\r\n\r\n",
            vec![
                g("/a"),
                g("/b"),
                Got::Err(Malformed("request line or header syntax")),
            ],
        ),
    ];
    for (raw, want) in cases {
        assert_eq!(drive([raw.as_bytes()], LIMITS), want, "{raw:?}");
        let bytes: Vec<&[u8]> = raw.as_bytes().chunks(1).collect();
        assert_eq!(drive(bytes, LIMITS), want, "{raw:?} byte by byte");
    }
}

#[test]
fn over_limit_length_is_refused_before_the_body() {
    let t0 = Instant::now();
    let mut r = RequestReader::new(LIMITS);
    r.handle_read(
        b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1000000\r\n\r\n",
        t0,
    );
    assert_eq!(
        r.poll_request().map(|_| ()),
        Err(HeadError::BodyTooLarge { limit: 64 })
    );
    assert_eq!(HeadError::BodyTooLarge { limit: 64 }.status(), 413);
    // No 100 Continue for a refused body, and the error sticks; the buffer is gone.
    assert_eq!(r.poll_interim(), None);
    r.handle_read(b"more", t0);
    assert_eq!(r.buffered(), 0);
    assert!(r.poll_request().is_err());
    assert_eq!(r.poll_timeout(), None);
}

#[test]
fn expect_continue_is_an_interim_value() {
    let t0 = Instant::now();
    let mut r = RequestReader::new(LIMITS);
    r.handle_read(
        b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n",
        t0,
    );
    assert!(r.poll_request().expect("valid").is_none());
    let interim = r.poll_interim().expect("the client waits for 100 Continue");
    assert_eq!(interim.as_bytes(), b"HTTP/1.1 100 Continue\r\n\r\n");
    assert_eq!(r.poll_interim(), None, "once");
    r.handle_read(b"ok", t0);
    assert_eq!(
        r.poll_request().expect("valid").expect("whole").body(),
        "ok"
    );

    // The body came with the head: no interim is left over for after the response.
    let mut r = RequestReader::new(LIMITS);
    r.handle_read(
        b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok",
        t0,
    );
    assert!(r.poll_request().expect("valid").is_some());
    assert_eq!(r.poll_interim(), None);

    // No body, no interim; chunked bodies get one too.
    for (raw, interim) in [
        (
            "GET / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n",
            false,
        ),
        (
            "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n",
            true,
        ),
        (
            "POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n",
            false,
        ),
    ] {
        let mut r = RequestReader::new(LIMITS);
        r.handle_read(raw.as_bytes(), t0);
        let _ = r.poll_request().expect("valid");
        assert_eq!(r.poll_interim().is_some(), interim, "{raw:?}");
    }
}

#[test]
fn a_trickled_head_is_cut_off_at_its_deadline() {
    let t0 = Instant::now();
    let timeouts = ReaderTimeouts::default();
    let mut r = RequestReader::with_timeouts(LIMITS, timeouts);
    assert_eq!(r.poll_timeout(), None, "no time passed in yet");
    r.handle_ready(t0);
    assert_eq!(r.poll_timeout(), Some(t0 + timeouts.idle));
    // One byte a second: every read is "recent", but the head's deadline does not move.
    let start = t0 + Duration::from_secs(5);
    for (i, byte) in b"GET / HTTP/1.1\r\nHost: h\r\nX-Slow: aaaa"
        .iter()
        .enumerate()
    {
        let now = start + Duration::from_secs(i as u64);
        r.handle_timeout(now);
        r.handle_read(&[*byte], now);
        if r.poll_request().is_err() {
            assert_eq!(i, 10, "cut off ten seconds after the first byte");
            break;
        }
        assert!(r.is_mid_head());
        assert_eq!(r.poll_timeout(), Some(start + timeouts.head));
    }
    assert_eq!(r.poll_request().map(|_| ()), Err(HeadError::HeadTimeout));
    assert_eq!(HeadError::HeadTimeout.status(), 408);
}

#[test]
fn body_deadline_grows_with_the_bytes_received() {
    let t0 = Instant::now();
    let timeouts = ReaderTimeouts {
        body: Duration::from_secs(2),
        min_body_rate: 10,
        ..ReaderTimeouts::default()
    };
    let mut r = RequestReader::with_timeouts(LIMITS, timeouts);
    r.handle_read(
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 40\r\n\r\n",
        t0,
    );
    assert!(r.poll_request().expect("valid").is_none());
    assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_secs(2)));
    r.handle_read(&[b'x'; 10], t0 + Duration::from_secs(1));
    // 10 bytes at 10 B/s buy one more second.
    assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_secs(3)));
    r.handle_timeout(t0 + Duration::from_millis(2999));
    assert!(r.poll_request().expect("not yet").is_none());
    r.handle_timeout(t0 + Duration::from_secs(3));
    assert_eq!(r.poll_request().map(|_| ()), Err(HeadError::BodyTimeout));

    // Chunked bodies count decoded bytes, so framing and extensions buy no time.
    let mut r = RequestReader::with_timeouts(LIMITS, timeouts);
    r.handle_read(
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
        t0,
    );
    assert!(r.poll_request().expect("valid").is_none());
    r.handle_read(b"1;padding-padding-padding\r\nx\r\n", t0);
    assert!(r.poll_request().expect("valid").is_none());
    assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_millis(2100)));

    // With no minimum rate the body deadline is a plain total.
    let total = ReaderTimeouts {
        min_body_rate: 0,
        ..timeouts
    };
    let mut r = RequestReader::with_timeouts(LIMITS, total);
    r.handle_read(
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 40\r\n\r\nxxxx",
        t0,
    );
    assert!(r.poll_request().expect("valid").is_none());
    assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_secs(2)));
}

#[test]
fn body_time_stops_at_the_ceiling() {
    let t0 = Instant::now();
    let timeouts = ReaderTimeouts::default();
    assert_eq!(timeouts.body_ceiling, Duration::from_secs(30));
    let limits = ReaderLimits {
        max_body: 1 << 20,
        ..LIMITS
    };
    let mut r = RequestReader::with_timeouts(limits, timeouts);
    r.handle_ready(t0);
    r.handle_read(
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1048576\r\n\r\n",
        t0,
    );
    assert!(r.poll_request().expect("valid").is_none());
    // Most of the body at once: its credit (255 s at 4 KiB/s) is far past the ceiling.
    r.handle_read(&vec![b'x'; (1 << 20) - 64], t0);
    assert!(r.poll_request().expect("valid").is_none());
    assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_secs(30)));
    // Then one byte a second: the deadline does not move past the ceiling.
    for s in 1..30 {
        let now = t0 + Duration::from_secs(s);
        r.handle_read(b"x", now);
        assert!(r.poll_request().expect("in time").is_none());
        assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_secs(30)));
    }
    r.handle_timeout(t0 + Duration::from_secs(30));
    assert_eq!(r.poll_request().map(|_| ()), Err(HeadError::BodyTimeout));

    // Below the ceiling the credit still counts: 10 s + 40 KiB at 4 KiB/s = 20 s.
    let mut r = RequestReader::with_timeouts(limits, timeouts);
    r.handle_read(
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100000\r\n\r\n",
        t0,
    );
    r.handle_read(&vec![b'x'; 40 * 1024], t0);
    assert!(r.poll_request().expect("valid").is_none());
    assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_secs(20)));
}

#[test]
fn bodies_under_way_share_the_servers_budget() {
    let t0 = Instant::now();
    let limits = ReaderLimits {
        max_body: 1 << 20,
        ..LIMITS
    };
    let budget = BodyBudget::new(100);
    let post = |len: usize| format!("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: {len}\r\n\r\n");
    let reader = || RequestReader::new(limits).with_body_budget(&budget);

    // A body still coming holds its declared length until it is answered.
    let mut a = reader();
    a.handle_read(post(60).as_bytes(), t0);
    a.handle_read(&[b'a'; 10], t0);
    assert!(a.poll_request().expect("valid").is_none());
    assert_eq!((a.budget_held(), budget.in_use()), (60, 60));

    // A second one that does not fit is refused at once with 503, and holds nothing.
    let mut b = reader();
    b.handle_read(post(41).as_bytes(), t0);
    assert_eq!(
        b.poll_request().map(|_| ()),
        Err(HeadError::OverBudget { limit: 100 })
    );
    assert_eq!(HeadError::OverBudget { limit: 100 }.status(), 503);
    assert_eq!((b.budget_held(), budget.in_use()), (0, 60));

    // A body that arrives whole with its head takes nothing, budget or not.
    let mut c = reader();
    c.handle_read(format!("{}{}", post(50), "c".repeat(50)).as_bytes(), t0);
    assert!(c.poll_request().expect("whole").is_some());
    assert_eq!(c.budget_held(), 0);

    // The finished body holds its bytes while the handler runs, and gives them back once
    // its response is written.
    a.handle_read(&[b'a'; 50], t0);
    assert!(a.poll_request().expect("whole").is_some());
    assert_eq!(budget.in_use(), 60);
    a.handle_ready(t0);
    assert_eq!(budget.in_use(), 0);

    // Chunked bodies take the budget as their decoded bytes arrive, in 16 KiB steps.
    let small = BodyBudget::new(20 * 1024);
    let mut d = RequestReader::new(limits).with_body_budget(&small);
    d.handle_read(
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        t0,
    );
    assert!(d.poll_request().expect("valid").is_none());
    assert_eq!(small.in_use(), 16 * 1024);
    let big = format!("4000\r\n{}\r\n", "x".repeat(0x4000));
    d.handle_read(big.as_bytes(), t0);
    assert_eq!(
        d.poll_request().map(|_| ()),
        Err(HeadError::OverBudget { limit: 20 * 1024 })
    );
    assert_eq!(small.in_use(), 0, "a failed reader gives its bytes back");

    // Dropping a reader mid-body gives its bytes back too.
    let mut e = reader();
    e.handle_read(post(90).as_bytes(), t0);
    assert!(e.poll_request().expect("valid").is_none());
    assert_eq!(budget.in_use(), 90);
    drop(e);
    assert_eq!(budget.in_use(), 0);
}

#[test]
fn idle_connections_close_and_ready_restarts_the_clock() {
    let t0 = Instant::now();
    let timeouts = ReaderTimeouts::uniform(Duration::from_secs(5));
    let mut r = RequestReader::with_timeouts(LIMITS, timeouts);
    r.handle_ready(t0);
    r.handle_read(
        b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHo",
        t0,
    );
    assert!(r.poll_request().expect("valid").is_some());
    assert!(r.poll_request().expect("valid").is_none());
    // The handler took 30 s; the pipelined head is not charged for it.
    let later = t0 + Duration::from_secs(30);
    r.handle_ready(later);
    assert_eq!(r.poll_timeout(), Some(later + Duration::from_secs(5)));
    r.handle_timeout(later + Duration::from_secs(4));
    r.handle_read(b"st: h\r\n\r\n", later + Duration::from_secs(4));
    assert!(r.poll_request().expect("valid").is_some());
    r.handle_ready(later + Duration::from_secs(4));
    // Idle past the deadline: `Idle`, which the adapter closes on without answering.
    r.handle_timeout(later + Duration::from_secs(9));
    assert_eq!(r.poll_request().map(|_| ()), Err(HeadError::Idle));
    assert_eq!(r.poll_timeout(), None);
}

#[test]
fn clock_oddities_do_not_panic() {
    let t0 = Instant::now();
    let huge = ReaderTimeouts {
        head: Duration::MAX,
        body: Duration::MAX,
        min_body_rate: 1,
        body_ceiling: Duration::MAX,
        idle: Duration::MAX,
    };
    let mut r = RequestReader::with_timeouts(LIMITS, huge);
    r.handle_ready(t0);
    assert_eq!(
        r.poll_timeout(),
        None,
        "a deadline past Instant's range is none"
    );
    r.handle_read(
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9\r\n\r\nab",
        t0,
    );
    assert!(r.poll_request().expect("valid").is_none());
    // Time going backwards is harmless.
    let mut r = RequestReader::with_timeouts(LIMITS, ReaderTimeouts::default());
    r.handle_ready(t0 + Duration::from_secs(100));
    r.handle_read(b"GET / HTTP/1.1\r\n", t0);
    r.handle_timeout(t0);
    r.handle_read(b"Host: h\r\n\r\n", t0 + Duration::from_secs(1));
    assert!(r.poll_request().expect("valid").is_some());
}

#[test]
fn every_refusal_has_its_status_and_a_message() {
    use HeadError::*;
    let cases = [
        (TooLarge { limit: 1 }, 431),
        (Malformed("x"), 400),
        (UnsupportedBody, 411),
        (BodyTooLarge { limit: 1 }, 413),
        (MissingHost, 400),
        (BadHost, 400),
        (BadContentLength, 400),
        (LengthAndTransferEncoding, 400),
        (BadTransferEncoding, 400),
        (UnsupportedTransferCoding, 501),
        (BadChunk("x"), 400),
        (ExpectationFailed, 417),
        (HeadTimeout, 408),
        (BodyTimeout, 408),
        (Idle, 408),
    ];
    for (error, status) in cases {
        assert_eq!(error.status(), status, "{error:?}");
        assert!(error.to_string().len() > 10, "{error:?}");
    }
}

#[test]
fn stray_empty_lines_are_not_a_request() {
    let t0 = Instant::now();
    let mut r = RequestReader::new(LIMITS);
    r.handle_ready(t0);
    r.handle_read(
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nok\r\n\n",
        t0,
    );
    assert!(r.poll_request().expect("valid").is_some());
    assert!(r.poll_request().expect("valid").is_none());
    assert!(!r.is_mid_request() && !r.is_mid_head());
    assert_eq!(r.buffered(), 0);
    // A lone CR may be the start of a CRLF: kept until the LF comes.
    r.handle_read(b"\r", t0);
    assert!(r.poll_request().expect("valid").is_none());
    assert!(r.is_mid_head());
    r.handle_read(b"\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", t0);
    assert!(r.poll_request().expect("valid").is_some());
}

#[test]
fn failed_reader_holds_no_memory() {
    let t0 = Instant::now();
    let mut r = RequestReader::new(LIMITS);
    r.handle_read(&[b'x'; 1000], t0);
    assert_eq!(
        r.poll_request().map(|_| ()),
        Err(HeadError::TooLarge { limit: 512 })
    );
    assert_eq!(r.buffered(), 0);
    assert!(!r.is_mid_request());
}

/// Pieces that build plausible and broken request streams.
const PIECES: &[&str] = &[
    "GET / HTTP/1.1\r\nHost: h\r\n\r\n",
    "GET /x?y HTTP/1.0\r\n\r\n",
    "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
    "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\nhi",
    "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n4;e=1\r\nwiki\r\n0\r\nT: v\r\n\r\n",
    "PUT /c HTTP/1.1\nHost: h\nTransfer-Encoding: chunked\n\n3\r\nabc\r\n0\r\n\r\n",
    "Content-Length: 3\r\n",
    "Transfer-Encoding: chunked\r\n",
    "Host: h\r\n",
    "\r\n",
    "\n",
    "0\r\n\r\n",
    "GET / HTTP/1.1\r\n",
    "3\r\nabc\r\n",
];

fn stream() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        4 => proptest::sample::select(PIECES).prop_map(|s| s.as_bytes().to_vec()),
        1 => proptest::collection::vec(any::<u8>(), 0..12),
    ];
    proptest::collection::vec(piece, 0..8).prop_map(|v| v.concat())
}

proptest! {
    /// Feeding a stream in any split gives the same requests and the same error as feeding it
    /// whole.
    #[test]
    fn any_split_reads_the_same(data in stream(), cuts in proptest::collection::vec(0usize..400, 0..12)) {
        let whole = drive([&data[..]], LIMITS);
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
        cuts.sort_unstable();
        let mut parts = Vec::new();
        let mut at = 0;
        for c in cuts.into_iter().chain([data.len()]) {
            parts.push(&data[at..c]);
            at = c;
        }
        prop_assert_eq!(drive(parts, LIMITS), whole);
    }
}
