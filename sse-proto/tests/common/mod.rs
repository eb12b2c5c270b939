//! Generators shared by the decoder's property tests and the differential test.

#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;
use sse_proto::{Event, Item, MessageEvent};

/// Pieces that exercise every rule of the grammar, plus arbitrary bytes.
pub fn piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\xef\xbb\xbf".to_vec()),
        Just(b"data".to_vec()),
        Just(b"data: ".to_vec()),
        Just(b"data:".to_vec()),
        Just(b"event: ".to_vec()),
        Just(b"id: ".to_vec()),
        Just(b"id:\0".to_vec()),
        Just(b"retry: ".to_vec()),
        Just(b": comment".to_vec()),
        "[0-9]{1,4}".prop_map(String::into_bytes),
        "[a-z é\u{1F600}:]{0,8}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..8),
    ]
}

pub fn stream() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(piece(), 0..60).prop_map(|pieces| pieces.concat())
}

/// Data with any mix of line breaks, unicode and empty lines.
pub fn data() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("\n".to_owned()),
            Just("\r".to_owned()),
            Just("\r\n".to_owned()),
            Just(String::new()),
            "[^\r\n]{0,12}",
            "[ :a-z]{0,4}",
        ],
        0..12,
    )
    .prop_map(|parts| parts.concat())
}

#[derive(Debug, Clone)]
pub struct Spec {
    pub name: Option<String>,
    pub comment: Option<String>,
    pub retry: Option<u64>,
    pub data: Option<String>,
    /// Send the data as one large `Bytes` (the referenced, zero-copy path).
    pub large: bool,
}

pub fn spec() -> impl Strategy<Value = Spec> {
    (
        proptest::option::of("[^\r\n\0]{1,16}"),
        proptest::option::of("[^\r\n\0]{0,16}"),
        proptest::option::of(0u64..100_000),
        proptest::option::of(data()),
        any::<bool>(),
    )
        .prop_map(|(name, comment, retry, data, large)| Spec {
            name,
            comment,
            retry,
            data,
            large,
        })
}

impl Spec {
    pub fn event(&self) -> Event {
        let mut event = Event::new();
        if let Some(name) = &self.name {
            event = event.event(name.clone()).unwrap();
        }
        if let Some(comment) = &self.comment {
            event = event.comment(comment.clone()).unwrap();
        }
        if let Some(ms) = self.retry {
            event = event.retry(Duration::from_millis(ms));
        }
        if let Some(data) = &self.data {
            event = if self.large {
                let padded = format!("{}{data}", "x".repeat(2048));
                event.data(Bytes::from(padded))
            } else {
                event.data(data.clone())
            };
        }
        event
    }

    pub fn expected(&self) -> Vec<Item> {
        let mut items = Vec::new();
        if let Some(ms) = self.retry {
            items.push(Item::Retry(ms));
        }
        if self.data.is_some() || self.name.is_some() {
            let data = self.data.as_deref().unwrap_or("");
            let data = if self.large && self.data.is_some() {
                format!("{}{data}", "x".repeat(2048))
            } else {
                data.to_owned()
            };
            items.push(Item::Event(MessageEvent {
                event: self.name.clone().unwrap_or_else(|| "message".to_owned()),
                data: data.replace("\r\n", "\n").replace('\r', "\n"),
                last_event_id: String::new(),
            }));
        }
        items
    }
}
