use super::*;

fn decode_with(limits: Limits, chunks: &[&[u8]]) -> Result<Vec<Item>, DecodeError> {
    let mut decoder = Decoder::with_limits(limits);
    let mut items = Vec::new();
    for chunk in chunks {
        decoder.feed(chunk)?;
        while let Some(item) = decoder.poll_item() {
            items.push(item);
        }
    }
    Ok(items)
}

fn decode(chunks: &[&[u8]]) -> Vec<Item> {
    decode_with(Limits::DEFAULT, chunks).unwrap()
}

fn event(event: &str, data: &str, id: &str) -> Item {
    Item::Event(MessageEvent {
        event: event.into(),
        data: data.into(),
        last_event_id: id.into(),
    })
}

fn message(data: &str) -> Item {
    event("message", data, "")
}

#[test]
fn every_line_break_ends_a_line() {
    let expected = vec![message("a\nb\nc")];
    assert_eq!(decode(&[b"data: a\ndata: b\ndata: c\n\n"]), expected);
    assert_eq!(decode(&[b"data: a\rdata: b\rdata: c\r\r"]), expected);
    assert_eq!(
        decode(&[b"data: a\r\ndata: b\r\ndata: c\r\n\r\n"]),
        expected
    );
    assert_eq!(decode(&[b"data: a\r\ndata: b\rdata: c\n\r\n"]), expected);
}

#[test]
fn crlf_split_across_chunks_is_one_break() {
    assert_eq!(
        decode(&[b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]),
        vec![message("a\nb")]
    );
    // An empty chunk between CR and LF changes nothing.
    assert_eq!(decode(&[b"data: a\r", b"", b"\n\r\n"]), vec![message("a")]);
}

#[test]
fn a_lone_cr_dispatches_at_once() {
    // No waiting for a possible LF: the CR already ends the blank line.
    let mut decoder = Decoder::new();
    decoder.feed(b"data: x\r\r").unwrap();
    assert_eq!(decoder.poll_item(), Some(message("x")));
    decoder.feed(b"\ndata: y\n\n").unwrap();
    assert_eq!(decoder.poll_item(), Some(message("y")));
    assert_eq!(decoder.poll_item(), None);
}

#[test]
fn bom_is_skipped_once_even_when_split() {
    assert_eq!(decode(&[b"\xef\xbb\xbfdata: a\n\n"]), vec![message("a")]);
    assert_eq!(
        decode(&[b"\xef", b"\xbb", b"\xbfdata: a\n\n"]),
        vec![message("a")]
    );
    // A second BOM is part of the first field name, which is then unknown.
    assert_eq!(decode(&[b"\xef\xbb\xbf\xef\xbb\xbfdata: a\n\n"]), vec![]);
    // A partial BOM is content.
    assert_eq!(decode(&[b"\xef", b"\xbbdata: a\n\n"]), vec![]);
    assert_eq!(
        decode(&[b"\xef\xbb\ndata: a\n\n"]),
        vec![message("a")],
        "the partial BOM is a line of its own"
    );
}

#[test]
fn field_rules() {
    // One leading space is stripped, not two; no colon means an empty value.
    assert_eq!(decode(&[b"data:  two\n\n"]), vec![message(" two")]);
    assert_eq!(decode(&[b"data:none\n\n"]), vec![message("none")]);
    assert_eq!(decode(&[b"data\n\n"]), vec![message("")]);
    assert_eq!(decode(&[b"data\ndata\n\n"]), vec![message("\n")]);
    // Comments and unknown fields are ignored; field names are case-sensitive.
    assert_eq!(
        decode(&[b": hi\nDATA: x\nfoo: y\ndata: z\n\n"]),
        vec![message("z")]
    );
    // The value keeps later colons.
    assert_eq!(decode(&[b"data: a: b\n\n"]), vec![message("a: b")]);
}

#[test]
fn event_type_applies_once_and_resets() {
    assert_eq!(
        decode(&[b"event: a\ndata: 1\n\ndata: 2\n\n"]),
        vec![event("a", "1", ""), message("2")]
    );
    // A named event without data is not dispatched, and its name does not leak.
    assert_eq!(decode(&[b"event: a\n\ndata: 2\n\n"]), vec![message("2")]);
    // An empty name means "message".
    assert_eq!(decode(&[b"event:\ndata: 2\n\n"]), vec![message("2")]);
}

#[test]
fn id_persists_and_nul_is_ignored() {
    let mut decoder = Decoder::new();
    decoder.feed(b"id: 1\ndata: a\n\ndata: b\n\n").unwrap();
    assert_eq!(decoder.poll_item(), Some(event("message", "a", "1")));
    assert_eq!(decoder.poll_item(), Some(event("message", "b", "1")));
    decoder.feed(b"id: x\0y\ndata: c\n\n").unwrap();
    assert_eq!(decoder.poll_item(), Some(event("message", "c", "1")));
    // An empty id resets it.
    decoder.feed(b"id\ndata: d\n\n").unwrap();
    assert_eq!(decoder.poll_item(), Some(event("message", "d", "")));
}

#[test]
fn id_without_data_takes_effect_at_the_blank_line() {
    let mut decoder = Decoder::new();
    decoder.feed(b"retry: 3000\nid: session-1\n").unwrap();
    assert_eq!(decoder.last_event_id(), "", "not before the blank line");
    decoder.feed(b"\n").unwrap();
    assert_eq!(decoder.last_event_id(), "session-1");
    assert_eq!(decoder.poll_item(), Some(Item::Retry(3000)));
    assert_eq!(decoder.poll_item(), None, "no data, no event");
}

#[test]
fn retry_takes_digits_only() {
    assert_eq!(decode(&[b"retry: 10\n"]), vec![Item::Retry(10)]);
    assert_eq!(
        decode(&[b"retry: 1x\nretry: -1\nretry: \nretry: 1.5\nretry:  7\n"]),
        vec![]
    );
    assert_eq!(
        decode(&[b"retry: 99999999999999999999999\n"]),
        vec![Item::Retry(u64::MAX)]
    );
    let mut decoder = Decoder::new();
    decoder.feed(b"retry: 5\nretry: x\n").unwrap();
    assert_eq!(decoder.retry(), Some(5));
}

#[test]
fn invalid_utf8_becomes_replacement_characters() {
    assert_eq!(decode(&[b"data: a\xffb\n\n"]), vec![message("a\u{fffd}b")]);
    // A multi-byte character split across chunks is kept whole.
    assert_eq!(decode(&[b"data: \xc3", b"\xa9\n\n"]), vec![message("é")]);
}

#[test]
fn finish_discards_the_incomplete_event_and_keeps_the_id() {
    let mut decoder = Decoder::new();
    decoder
        .feed(b"id: 9\n\ndata: half\ndata: partial line")
        .unwrap();
    decoder.finish();
    decoder.feed(b"\n\ndata: next\n\n").unwrap();
    assert_eq!(decoder.poll_item(), Some(event("message", "next", "9")));
    assert_eq!(decoder.poll_item(), None);
}

#[test]
fn line_limit_is_an_error_and_sticky() {
    let limits = Limits {
        max_line_len: 8,
        max_event_size: 1024,
    };
    assert_eq!(
        decode_with(limits, &[b"data: 12\n\n"]).unwrap(),
        vec![message("12")]
    );
    let err = decode_with(limits, &[b"data: 123\n"]).unwrap_err();
    assert_eq!(err, DecodeError::LineTooLong { limit: 8 });
    // Without a line break, chunk by chunk.
    let mut decoder = Decoder::with_limits(limits);
    decoder.feed(b"data").unwrap();
    decoder.feed(b": 12").unwrap();
    assert_eq!(
        decoder.feed(b"3"),
        Err(DecodeError::LineTooLong { limit: 8 })
    );
    assert_eq!(
        decoder.feed(b"\n\n"),
        Err(DecodeError::LineTooLong { limit: 8 })
    );
    assert_eq!(decoder.poll_item(), None);
}

#[test]
fn event_limit_counts_every_data_line() {
    let limits = Limits {
        max_line_len: 64,
        max_event_size: 8,
    };
    // "abc\nde\n" is 7 bytes: fits.
    assert_eq!(
        decode_with(limits, &[b"data: abc\ndata: de\n\n"]).unwrap(),
        vec![message("abc\nde")]
    );
    let err = decode_with(limits, &[b"data: abc\ndata: def\ndata: g\n\n"]).unwrap_err();
    assert_eq!(err, DecodeError::EventTooLarge { limit: 8 });
    // Each dispatch starts the count again.
    let stream = b"data: abcdef\n\n".repeat(100);
    assert_eq!(decode_with(limits, &[&stream]).unwrap().len(), 100);
}

#[test]
fn events_before_an_error_can_still_be_polled() {
    let limits = Limits {
        max_line_len: 16,
        max_event_size: 64,
    };
    let mut decoder = Decoder::with_limits(limits);
    assert!(
        decoder
            .feed(b"data: ok\n\ndata: this line is far too long\n")
            .is_err()
    );
    assert_eq!(decoder.poll_item(), Some(message("ok")));
    decoder.finish();
    decoder.feed(b"data: again\n\n").unwrap();
    assert_eq!(decoder.poll_item(), Some(message("again")));
}
