//! Property tests of the handshake: no input panics it, and no client id gets a second
//! field into the preamble.

use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use bytes::Buf;
use proptest::prelude::*;
use sse_proto::{
    Batch, Decision, HandshakeConfig, HttpVersion, Hub, IdSource, MAX_POSITION_LEN, Position,
    Request, ResumeConfig, SessionId, TopicName,
};

fn header_name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"accept".to_vec()),
        Just(b"Accept".to_vec()),
        Just(b"last-event-id".to_vec()),
        Just(b"LAST-EVENT-ID".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..20),
    ]
}

fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"text/event-stream".to_vec()),
        Just(b"text/event-stream;q=0".to_vec()),
        Just(b"tab-1".to_vec()),
        Just(b"a\nevent: x".to_vec()),
        Just(b"a\rid: y".to_vec()),
        Just(b"tab~1.2".to_vec()),
        Just(b"tab~1.2~".to_vec()),
        Just(b"tab~1.2.31".to_vec()),
        Just(b"tab~\n.1".to_vec()),
        Just(b"~1.1".to_vec()),
        "[a-z~.0-9]{0,40}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..300),
    ]
}

fn target() -> impl Strategy<Value = Vec<u8>> {
    let query_value = prop_oneof![
        Just(b"tab".to_vec()),
        Just(b"%0Aevent:%20x".to_vec()),
        Just(b"%0D%0A".to_vec()),
        Just(b"%00".to_vec()),
        Just(b"%".to_vec()),
        Just(b"%FF%FE".to_vec()),
        Just(b"tab~1.2".to_vec()),
        Just(b"tab%7E1.2".to_vec()),
        Just(b"tab%7E%0A".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..400),
    ];
    let topic_value = prop_oneof![
        Just(b"room".to_vec()),
        Just(b"{room}".to_vec()),
        Just(b"a%20b".to_vec()),
        Just(vec![b'x'; 65]),
        proptest::collection::vec(any::<u8>(), 0..80),
    ];
    let topics = proptest::collection::vec(topic_value, 0..4);
    (
        proptest::collection::vec(any::<u8>(), 0..20),
        query_value,
        topics,
    )
        .prop_map(|(path, q, topics)| {
            let mut t = b"/events".to_vec();
            t.extend_from_slice(&path);
            t.extend_from_slice(b"?id=");
            t.extend_from_slice(&q);
            for topic in topics {
                t.extend_from_slice(b"&topic=");
                t.extend_from_slice(&topic);
            }
            t
        })
}

fn method() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"GET".to_vec()),
        Just(b"get".to_vec()),
        Just(b"POST".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..10),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn handshake_never_panics_nor_injects(
        method in method(),
        target in target(),
        headers in proptest::collection::vec((header_name(), header_value()), 0..6),
        http2 in any::<bool>(),
        max_id_len in 1usize..200,
        resumable in any::<bool>(),
    ) {
        let version = if http2 { HttpVersion::Http2 } else { HttpVersion::Http11 };
        let mut req = Request::new(&method, &target, version);
        for (n, v) in &headers {
            req.header(n, v);
        }
        let fixed = || SessionId::parse(b"fresh", 128).expect("valid");
        // No write window: nothing here drives the hub's timers, which end one.
        let mut builder = Hub::builder()
        .write_window(sse_proto::WriteWindow::Off)
            .handshake(HandshakeConfig::new().max_id_len(max_id_len))
            .id_generator(fixed)
            .topic_rule(|_, _| true);
        if resumable {
            builder = builder.resume(ResumeConfig::new(Duration::from_secs(60)));
        }
        let hub = builder.build(Instant::now);
        match hub.decide(&req, Instant::now()) {
            Decision::Accept(mut a) => {
                prop_assert!(method == b"GET");
                let id = a.session.id().as_bytes().to_vec();
                prop_assert!(!id.is_empty() && id.len() <= max_id_len.max(5));
                prop_assert!(!id.iter().any(|&b| b < 0x20 || b == 0x7f));
                // The preamble is exactly two fields and a blank line.
                let mut batch = Batch::new();
                let mut cx = Context::from_waker(Waker::noop());
                prop_assert!(a.outlet.poll_drain(&mut cx, Instant::now(), &mut batch).is_ready());
                let preamble = batch.copy_to_bytes(batch.remaining());
                let lines: Vec<&[u8]> = preamble.split(|&b| b == b'\n').collect();
                prop_assert_eq!(lines.len(), 4, "{:?}", String::from_utf8_lossy(&preamble));
                prop_assert!(lines[0].starts_with(b"retry: "));
                let token = lines[1].strip_prefix(b"id: ").unwrap_or_default();
                prop_assert!(token.len() <= max_id_len.max(5 + MAX_POSITION_LEN));
                if resumable {
                    // The session id, then its position: nothing else.
                    let (sid, position) = token.split_at(id.len());
                    prop_assert_eq!(sid, id.as_slice());
                    prop_assert!(position.first() == Some(&b'~'));
                    prop_assert!(Position::parse(&position[1..]).is_some());
                } else {
                    prop_assert_eq!(token, id.as_slice());
                }
                prop_assert!(lines[2].is_empty() && lines[3].is_empty());
                prop_assert!(!preamble.contains(&b'\r') && !preamble.contains(&0));
                if a.source == IdSource::Generated {
                    prop_assert_eq!(a.session.id().as_str(), "fresh");
                }
                // Every topic asked for was a valid name, and was granted.
                let asked: Vec<&[u8]> = req.query_topics().collect();
                prop_assert!(a.topics.len() <= asked.len());
                for topic in &a.topics {
                    prop_assert!(asked.contains(&topic.as_str().as_bytes()));
                }
                let has_connection = a.head.headers().iter().any(|(n, _)| *n == "connection");
                prop_assert_eq!(has_connection, !http2);
            }
            Decision::NoContent { .. } => prop_assert!(false, "nothing was marked closed"),
            Decision::GoAway { .. } => prop_assert!(false, "the hub is not shutting down"),
            Decision::NotEventStream(_) => {}
            Decision::BadRequest(_) => {
                // Only for a topic parameter that is no topic name, or too many of them.
                let topics: Vec<&[u8]> = req.query_topics().collect();
                prop_assert!(
                    topics.len() > 64 || topics.iter().any(|t| TopicName::parse(t).is_err()),
                    "{:?}", topics
                );
            }
        }
    }
}
