//! Differential test: our decoder against `eventsource-parser` (npm), a parser nobody here
//! wrote, on the same chunked byte streams.
//!
//! The streams are generated (grammar pieces and random bytes, our encoder's output for random
//! events) and hand-made (every rule's corner). Both parsers must hand out the same events and
//! retries. `tests-js/parse.mjs` runs the npm parser; `scripts/test` installs it with `npm ci`.
//! A missing Node.js or `tests-js/node_modules` fails this test, it is never skipped.
//!
//! Where the two disagree on a hand-made stream, the WHATWG text ("Interpreting an event
//! stream", HTML §9.2.6) decides; each such case is in [`SETTLED_BY_WHATWG`] with the rule.

#![allow(clippy::panic, clippy::unwrap_used)] // a test reports failure by panicking

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use bytes::Buf;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use serde_json::{Value, json};
use sse_proto::{Decoder, Item};

/// One stream, as the chunks it arrives in.
#[derive(Debug, Clone)]
struct Case {
    what: String,
    chunks: Vec<Vec<u8>>,
}

impl Case {
    fn whole(what: impl Into<String>, bytes: &[u8]) -> Case {
        Case {
            what: what.into(),
            chunks: vec![bytes.to_vec()],
        }
    }
}

/// Hand-made streams on which both parsers agree, one per rule.
const HAND_MADE: &[(&str, &[u8])] = &[
    ("LF line ends", b"data: a\ndata: b\n\n"),
    ("CR line ends", b"data: a\rdata: b\r\r"),
    ("CRLF line ends", b"data: a\r\ndata: b\r\n\r\n"),
    ("mixed line ends", b"data: a\r\ndata: b\rdata: c\n\r\n"),
    ("BOM stripped once", b"\xef\xbb\xbfdata: a\n\n"),
    (
        "second BOM is part of the field name",
        b"\xef\xbb\xbf\xef\xbb\xbfdata: a\n\ndata: b\n\n",
    ),
    ("one leading space stripped", b"data:  x\ndata:y\n\n"),
    ("field without colon", b"data\n\n"),
    (
        "comment and unknown fields ignored",
        b": c\nfoo: x\nData: y\ndata: z\n\n",
    ),
    (
        "event type resets after dispatch",
        b"event: a\ndata: 1\n\ndata: 2\n\n",
    ),
    (
        "event without data not dispatched",
        b"event: a\n\ndata: 2\n\n",
    ),
    ("id persists", b"id: 1\ndata: a\n\ndata: b\n\n"),
    ("id with NUL ignored", b"id: 1\n\nid: 2\x003\ndata: a\n\n"),
    ("empty id resets", b"id: 1\n\nid\ndata: a\n\n"),
    ("id set by a block without data", b"id: s\n\ndata: a\n\n"),
    (
        "retry digits only",
        b"retry: 10\nretry: 1x\nretry: -1\nretry:\nretry: 20\n\n",
    ),
    ("incomplete event discarded at EOF", b"data: a\n\ndata: b\n"),
    ("incomplete line discarded at EOF", b"data: a\n\ndata: b"),
    ("invalid UTF-8 replaced", b"data: a\xffb\xc3\n\n"),
    ("colon in value kept", b"data: a: b\n\n"),
    ("lone CR ends the stream's last blank line", b"data: x\n\r"),
    ("empty data is an event", b"data\n\ndata:\n\n"),
    (
        "our preamble",
        b"retry: 3000\nid: 5d0c3b4e\n\n: keep-alive\n\n",
    ),
];

/// Streams on which `eventsource-parser` 3.0.6 and the WHATWG text part ways; 4.1.3 (the
/// version the agreement test uses) follows the text, as our decoder does.
/// (stream, the rule that settles it, what the text yields.)
const SETTLED_BY_WHATWG: &[(&[u8], &str, &str)] = &[
    (
        b"data: x\n\r",
        "a line ends at CRLF, LF or CR (the end-of-line production): the final lone CR ends a \
         blank line, which dispatches; 3.x waits for an LF that never comes",
        r#"[{"data":"x","event":"message","id":""}]"#,
    ),
    (
        b"data: x\r\r",
        "a CR alone ends a line, so CR CR is a line and a blank line; 3.x holds the last CR back",
        r#"[{"data":"x","event":"message","id":""}]"#,
    ),
];

fn node_modules() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests-js")
}

/// Runs `tests-js/parse.mjs` with the given parser package over every case at once.
fn npm_parser(package: &str, cases: &[Case]) -> Vec<Value> {
    let dir = node_modules();
    assert!(
        dir.join("node_modules/eventsource-parser").is_dir(),
        "{}/node_modules is missing: run scripts/test (or `npm ci` in tests-js/)",
        dir.display()
    );
    let input = json!(
        cases
            .iter()
            .map(|c| json!({ "chunks": c.chunks }))
            .collect::<Vec<_>>()
    );
    let mut child = Command::new("node")
        .args(["parse.mjs", package])
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node is on the PATH (Node.js 20+)");
    let mut stdin = child.stdin.take().expect("piped stdin");
    let writer = std::thread::spawn(move || stdin.write_all(input.to_string().as_bytes()));
    let output = child.wait_with_output().expect("node ran");
    writer
        .join()
        .expect("writer thread")
        .expect("stdin written");
    assert!(
        output.status.success(),
        "parse.mjs failed: {}",
        output.status
    );
    match serde_json::from_slice(&output.stdout).expect("parse.mjs prints JSON") {
        Value::Array(results) => results,
        other => panic!("parse.mjs printed {other}"),
    }
}

/// Our decoder, as JSON in the shape `parse.mjs` prints.
fn ours(case: &Case) -> Value {
    let mut decoder = Decoder::new();
    let mut items = Vec::new();
    for chunk in &case.chunks {
        decoder.feed(chunk).expect("within the default limits");
        while let Some(item) = decoder.poll_item() {
            items.push(item);
        }
    }
    decoder.finish();
    assert_eq!(decoder.poll_item(), None, "finish dispatches nothing");
    Value::Array(items.into_iter().map(to_json).collect())
}

/// JSON numbers are doubles in Node: retries beyond 2^53 are compared at that precision.
fn to_json(item: Item) -> Value {
    match item {
        Item::Event(e) => json!({ "event": e.event, "data": e.data, "id": e.last_event_id }),
        Item::Retry(ms) => json!({ "retry": ms as f64 }),
    }
}

fn normalize(value: &Value) -> Value {
    match value {
        Value::Array(items) => Value::Array(items.iter().map(normalize).collect()),
        Value::Object(map) => match map.get("retry").and_then(Value::as_f64) {
            // parseInt("99999999999999999999999") is 1e23; we saturate at u64::MAX. The text
            // gives no bound; both are "longer than anyone waits".
            Some(ms) => json!({ "retry": ms.min(u64::MAX as f64) }),
            None => value.clone(),
        },
        other => other.clone(),
    }
}

/// Splits a stream at generated cut points (so CRLF, BOM and UTF-8 sequences get split).
fn chunked(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    let mut chunks = Vec::new();
    let mut start = 0;
    for end in cuts.into_iter().chain([bytes.len()]) {
        chunks.push(bytes[start..end].to_vec());
        start = end;
    }
    chunks
}

fn generated(runner: &mut TestRunner, n: usize) -> Vec<Case> {
    let cuts = proptest::collection::vec(0usize..10_000, 0..10);
    let mut cases = Vec::new();
    for i in 0..n {
        let stream = common::stream().new_tree(runner).expect("tree").current();
        let cuts = cuts.new_tree(runner).expect("tree").current();
        cases.push(Case {
            what: format!("generated stream {i}"),
            chunks: chunked(&stream, &cuts),
        });
    }
    let specs = proptest::collection::vec(common::spec(), 1..6);
    for i in 0..n {
        let mut wire = Vec::new();
        for spec in specs.new_tree(runner).expect("tree").current() {
            let mut frame = spec.event().encode();
            wire.extend_from_slice(&frame.copy_to_bytes(frame.remaining()));
        }
        let cuts = cuts.new_tree(runner).expect("tree").current();
        cases.push(Case {
            what: format!("encoder output {i}"),
            chunks: chunked(&wire, &cuts),
        });
    }
    cases
}

#[test]
fn agrees_with_eventsource_parser() {
    let mut cases: Vec<Case> = HAND_MADE
        .iter()
        .map(|(what, bytes)| Case::whole(*what, bytes))
        .collect();
    // Every hand-made stream again, one byte at a time.
    for (what, bytes) in HAND_MADE {
        cases.push(Case {
            what: format!("{what}, byte by byte"),
            chunks: bytes.chunks(1).map(<[u8]>::to_vec).collect(),
        });
    }
    cases.extend(generated(&mut TestRunner::deterministic(), 1500));

    let theirs = npm_parser("eventsource-parser", &cases);
    assert_eq!(theirs.len(), cases.len());
    let mut events = 0;
    for (case, theirs) in cases.iter().zip(&theirs) {
        let ours = ours(case);
        events += ours.as_array().map_or(0, Vec::len);
        assert_eq!(
            normalize(&ours),
            normalize(theirs),
            "{}: {:?}",
            case.what,
            case.chunks
                .iter()
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect::<Vec<_>>()
        );
    }
    assert!(events > 1000, "the streams dispatch real events ({events})");
}

#[test]
fn disagreements_follow_the_whatwg_text() {
    for (stream, rule, expected) in SETTLED_BY_WHATWG {
        let case = Case::whole(*rule, stream);
        assert_eq!(ours(&case).to_string(), *expected, "{rule}");
        let cases = std::slice::from_ref(&case);
        let latest = npm_parser("eventsource-parser", cases);
        assert_eq!(latest[0].to_string(), *expected, "4.x: {rule}");
        let old = npm_parser("eventsource-parser-v3", cases);
        assert_ne!(old[0].to_string(), *expected, "3.x departs here: {rule}");
    }
}
