//! The fuzz checks: each takes arbitrary bytes and panics only when sse-proto breaks a rule.
//!
//! Shared by the cargo-fuzz targets (`fuzz/fuzz_targets/`) and by
//! `sse-proto/tests/fuzz_corpus.rs`, which replays `fuzz/corpus/*` on stable. The `request`
//! check is sse-http1's, in `request.rs`.

use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use bytes::Buf;
use sse_proto::{
    Batch, Continuity, Cursor, Decision, Decoder, Event, GapReason, HttpVersion, Hub, IdSource,
    Item, Limits, LogBounds, MemoryHistory, Placement, Request, ResumeConfig, SessionId, TopicName,
};

/// Splits `data` on 0xFF into at most `n` parts (missing parts are empty).
fn parts(data: &[u8], n: usize) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = data.splitn(n, |&b| b == 0xff).collect();
    out.resize(n, &[]);
    out
}

/// Decodes `data` in chunks whose sizes come from its first byte: never panics, memory
/// stays within the limits, and the items do not depend on the chunking.
pub fn decode(data: &[u8]) {
    let Some((&step, stream)) = data.split_first() else {
        return;
    };
    let limits = Limits {
        max_line_len: 4096,
        max_event_size: 8192,
    };
    let whole = run_decoder(limits, stream, stream.len().max(1));
    let chunked = run_decoder(limits, stream, usize::from(step % 17) + 1);
    assert_eq!(whole, chunked, "chunking changed the result");
}

fn run_decoder(limits: Limits, stream: &[u8], step: usize) -> (Vec<Item>, bool) {
    let mut decoder = Decoder::with_limits(limits);
    let mut items = Vec::new();
    let mut failed = false;
    for chunk in stream.chunks(step) {
        if decoder.feed(chunk).is_err() {
            failed = true;
            break;
        }
        while let Some(item) = decoder.poll_item() {
            if let Item::Event(e) = &item {
                // U+FFFD replacing one invalid byte takes three.
                assert!(
                    e.data.len() <= 3 * limits.max_event_size,
                    "event over the limit"
                );
            }
            items.push(item);
        }
    }
    if !failed {
        decoder.finish();
        while let Some(item) = decoder.poll_item() {
            items.push(item);
        }
    }
    // A failure may be noticed at a different item depending on the chunking; compare the
    // items only for streams that decoded cleanly.
    if failed {
        items.clear();
    }
    (items, failed)
}

/// Builds an event from `data` (name, comment, payload, retry), encodes it, decodes the
/// frame in arbitrary chunks, and checks the browser would see the same event.
pub fn roundtrip(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let p = parts(rest, 3);
    let payload = String::from_utf8_lossy(p[2]).into_owned();
    let mut event = Event::new();
    let mut name = None;
    if flags & 1 != 0 {
        let candidate = String::from_utf8_lossy(p[0]).into_owned();
        match Event::new().event(candidate.clone()) {
            Ok(e) => {
                event = e;
                name = Some(candidate);
            }
            Err(_) => {
                assert!(
                    candidate.is_empty() || candidate.contains(['\r', '\n', '\0']),
                    "a valid name was refused: {candidate:?}"
                );
                return;
            }
        }
    }
    if flags & 2 != 0 {
        let comment = String::from_utf8_lossy(p[1]).into_owned();
        match event.clone().comment(comment.clone()) {
            Ok(e) => event = e,
            Err(_) => assert!(comment.contains(['\r', '\n', '\0'])),
        }
    }
    let retry = (flags & 4 != 0).then(|| u64::from(flags) * 37);
    if let Some(ms) = retry {
        event = event.retry(std::time::Duration::from_millis(ms));
    }
    let dispatched = flags & 8 != 0 || name.is_some();
    if flags & 8 != 0 {
        event = event.data(payload.clone());
    }

    let mut frame = event.encode();
    let wire = frame.copy_to_bytes(frame.remaining());
    assert!(
        !wire.starts_with(b"\xef\xbb\xbf"),
        "the encoder never writes a BOM"
    );
    assert!(
        !wire.contains(&b'\r'),
        "the encoder writes LF line endings only"
    );
    let mut decoder = Decoder::new();
    let step = usize::from(flags >> 4) + 1;
    for chunk in wire.chunks(step) {
        decoder
            .feed(chunk)
            .expect("our own output is within the default limits");
    }
    let mut items = Vec::new();
    while let Some(item) = decoder.poll_item() {
        items.push(item);
    }
    let mut expected = Vec::new();
    if let Some(ms) = retry {
        expected.push(Item::Retry(ms));
    }
    if dispatched {
        let data = if flags & 8 != 0 {
            payload.replace("\r\n", "\n").replace('\r', "\n")
        } else {
            String::new()
        };
        expected.push(Item::Event(sse_proto::MessageEvent {
            event: name.unwrap_or_else(|| "message".to_owned()),
            data,
            last_event_id: String::new(),
        }));
    }
    assert_eq!(
        items,
        expected,
        "wire: {:?}",
        String::from_utf8_lossy(&wire)
    );
}

/// Runs the handshake on an arbitrary method, target and headers, with or without resume
/// mode, on a log of one shard or of four (the first byte decides): never panics, the
/// preamble sets the session id (and in resume mode a well-formed cursor after it) and
/// nothing else, a reconnect with whatever the client sent never replays what that session
/// was not sent, and a cursor naming a shard the log does not have is a gap.
pub fn handshake(data: &[u8]) {
    let Some((&mode, data)) = data.split_first() else {
        return;
    };
    let p = parts(data, 8);
    let mut req = Request::new(p[0], p[1], HttpVersion::Http11);
    for pair in p[2..].chunks(2) {
        if let [name, value] = pair {
            req.header(name, value);
        }
    }
    let fixed = || SessionId::parse(b"fresh-id", 128).expect("valid");
    let mut builder = Hub::builder().id_generator(fixed).keep_alive(None);
    let resumable = mode & 1 == 1;
    let shards = if mode & 8 == 8 { 4 } else { 1 };
    if resumable {
        let placement = Placement::new(shards).expect("a shard count");
        let log = MemoryHistory::new(7, LogBounds::default(), 1 << 20).placed(placement);
        builder = builder
            .resume(ResumeConfig::new(Duration::from_secs(60)))
            .history(log);
    }
    let now = Instant::now();
    let hub = builder.build(sse_proto::ManualClock::starting_at(now));
    // A session the client may be trying to resume (or take): "tab", with one event.
    if mode & 2 == 2 {
        let mut seed = Request::new(b"GET", b"/e?id=tab", HttpVersion::Http11);
        seed.header(b"accept", b"text/event-stream");
        if let Decision::Accept(a) = hub.decide(&seed, now) {
            a.session.send("for tab only").expect("live");
            if mode & 4 == 4 {
                drop(a.outlet); // detached: resumable, or gone without resume mode
            }
        }
    }
    match hub.decide(&req, now) {
        Decision::Accept(mut accepted) => {
            assert_eq!(p[0], b"GET");
            let mut batch = Batch::new();
            let mut cx = Context::from_waker(Waker::noop());
            let _ = accepted.outlet.poll_drain(&mut cx, now, &mut batch);
            let wire = batch.copy_to_bytes(batch.remaining());
            let mut decoder = Decoder::new();
            decoder.feed(&wire).expect("the preamble is tiny");
            let mut items = Vec::new();
            while let Some(item) = decoder.poll_item() {
                items.push(item);
            }
            let id = accepted.session.id().as_str();
            let replayed = match accepted.continuity {
                Continuity::Resumed { replayed } => replayed,
                _ => 0,
            };
            // A cursor naming a shard the log does not have was never the log's: a gap.
            if resumable && accepted.source == IdSource::LastEventId {
                let offered = p[2..]
                    .chunks(2)
                    .find(|h| h.len() == 2 && h[0].eq_ignore_ascii_case(b"last-event-id"))
                    .map_or(&[][..], |h| h[1].trim_ascii());
                let pos = offered.iter().rposition(|&b| b == b'~');
                let cursor = pos.and_then(|i| Cursor::parse(&offered[i + 1..]));
                if cursor.is_some_and(|c| usize::from(c.last_shard()) >= shards) {
                    let reason = GapReason::InvalidPosition;
                    assert_eq!(accepted.continuity, Continuity::Gap(reason));
                }
            }
            // The retry, then only what was sent to this very session.
            assert!(matches!(items.first(), Some(Item::Retry(_))), "{items:?}");
            assert_eq!(items.len(), 1 + replayed, "{items:?}");
            for item in &items[1..] {
                let Item::Event(e) = item else {
                    panic!("only events after the retry: {items:?}")
                };
                assert_eq!((id, e.data.as_str()), ("tab", "for tab only"));
            }
            let last = decoder.last_event_id();
            if resumable {
                let (sid, cursor) = last.rsplit_once('~').expect("a cursor");
                assert_eq!(sid, id);
                let cursor = Cursor::parse(cursor.as_bytes()).expect("well-formed");
                assert!(usize::from(cursor.last_shard()) < shards, "{last}");
                assert!(last.len() <= 128, "{last}");
            } else {
                assert_eq!(last, id);
            }
            if accepted.source == IdSource::Generated {
                assert_eq!(id, "fresh-id");
            }
        }
        Decision::NoContent { .. } => panic!("nothing was marked closed"),
        Decision::GoAway { .. } => panic!("the hub is not shutting down"),
        Decision::NotEventStream(_) => {}
        Decision::BadRequest(_) => {
            // Only for a topic parameter that is no topic name, or too many of them.
            let topics: Vec<&[u8]> = req.query_topics().collect();
            assert!(
                topics.len() > 64 || topics.iter().any(|t| TopicName::parse(t).is_err()),
                "{topics:?}"
            );
        }
    }
}
