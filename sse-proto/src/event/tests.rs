use super::*;
use crate::error::FieldReason;

fn wire(e: &Event) -> Vec<u8> {
    e.encode().to_bytes().to_vec()
}

#[test]
fn data_lines_split_on_every_break_once() {
    let e = Event::new().data("a\nb\r\nc\rd\r\n\re");
    assert_eq!(
        wire(&e),
        b"data: a\ndata: b\ndata: c\ndata: d\ndata: \ndata: e\n\n"
    );
    let e = Event::new().data("x\r\n");
    assert_eq!(wire(&e), b"data: x\ndata: \n\n");
}

#[test]
fn empty_data_and_name_only_still_dispatch() {
    assert_eq!(wire(&Event::new().data("")), b"data: \n\n");
    let named = Event::new().event("connect").expect("valid");
    assert_eq!(wire(&named), b"event: connect\ndata: \n\n");
    assert!(named.is_dispatched());
}

#[test]
fn leading_space_survives() {
    assert_eq!(wire(&Event::new().data("  two")), b"data:   two\n\n");
}

#[test]
fn comment_and_retry_only() {
    let e = Event::new()
        .comment("hi")
        .expect("valid")
        .retry(Duration::from_millis(1500));
    assert_eq!(wire(&e), b": hi\nretry: 1500\n\n");
    assert!(!e.is_dispatched());
    let e = Event::new().comment("").expect("valid");
    assert_eq!(wire(&e), b":\n\n");
}

#[test]
fn hostile_names_and_comments_are_errors() {
    for bad in ["a\nb", "a\rb", "a\0b", "\n"] {
        let err = Event::new().event(bad).expect_err("must refuse");
        assert!(matches!(
            err,
            crate::Error::InvalidField(FieldError {
                field: Field::Event,
                reason: FieldReason::ForbiddenByte(_)
            })
        ));
        assert!(Event::new().comment(bad).is_err());
    }
    assert!(matches!(
        Event::new().event("").expect_err("empty"),
        crate::Error::InvalidField(FieldError {
            reason: FieldReason::Empty,
            ..
        })
    ));
}

#[test]
fn large_payload_is_referenced_not_copied() {
    let payload = Bytes::from(vec![b'x'; 1 << 20]);
    let frame = Event::new()
        .event("big")
        .expect("valid")
        .data(payload.clone())
        .encode();
    assert_eq!(frame.len(), (1 << 20) + b"event: big\ndata: \n\n".len());
    assert_eq!(frame.segment_count(), 3);
    let mut io = [std::io::IoSlice::new(&[]); 4];
    use bytes::Buf;
    assert_eq!(frame.chunks_vectored(&mut io), 3);
    assert_eq!(
        io[1].as_ptr(),
        payload.as_ptr(),
        "payload must be shared, not copied"
    );
    assert_eq!(&*io[0], b"event: big\ndata: ");
    assert_eq!(&*io[2], b"\n\n");
}

#[test]
fn mixed_long_and_short_lines() {
    let mut s = String::new();
    s.push_str("short\n");
    s.push_str(&"L".repeat(2000));
    s.push_str("\r\nend");
    let frame = Event::new().data(s.clone()).encode();
    let mut want = b"data: short\ndata: ".to_vec();
    want.extend_from_slice("L".repeat(2000).as_bytes());
    want.extend_from_slice(b"\ndata: end\n\n");
    assert_eq!(frame.to_bytes(), want);
    assert_eq!(frame.segment_count(), 3);
    let mut flat = BytesMut::new();
    Event::new().data(s).encode_into(&mut flat);
    assert_eq!(flat, want);
}

#[test]
fn decimal() {
    for n in [0u64, 7, 10, 1234567890, u64::MAX] {
        let mut b = BytesMut::new();
        put_decimal(&mut b, n);
        assert_eq!(b, n.to_string().as_bytes());
    }
}

#[cfg(feature = "json")]
#[test]
fn json_data_is_one_line() {
    let v = serde_json_value();
    let e = Event::new()
        .event("j")
        .expect("valid")
        .json(&v)
        .expect("serializes");
    assert_eq!(
        wire(&e),
        b"event: j\ndata: {\"a\":\"x\\ny\",\"b\":[1,2]}\n\n"
    );
}

#[cfg(feature = "json")]
fn serde_json_value() -> serde_json::Value {
    serde_json::json!({"a": "x\ny", "b": [1, 2]})
}
