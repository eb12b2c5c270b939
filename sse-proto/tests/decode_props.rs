//! Property tests of the decoder: chunking never changes what it hands out, and whatever the
//! encoder writes decodes back to the same event.

#![allow(clippy::panic, clippy::unwrap_used)] // a test reports failure by panicking

mod common;

use bytes::Buf;
use common::{spec, stream};
use proptest::prelude::*;
use sse_proto::{Decoder, Item};

fn decode_in(stream: &[u8], cuts: &[usize]) -> Vec<Item> {
    let mut decoder = Decoder::new();
    let mut items = Vec::new();
    let mut start = 0;
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
    cuts.sort_unstable();
    for end in cuts.into_iter().chain([stream.len()]) {
        decoder.feed(&stream[start..end]).unwrap();
        start = end;
        while let Some(item) = decoder.poll_item() {
            items.push(item);
        }
    }
    items
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn chunking_never_changes_the_items(
        stream in stream(),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        prop_assert_eq!(decode_in(&stream, &cuts), decode_in(&stream, &[]));
    }

    #[test]
    fn byte_by_byte_equals_whole(stream in stream()) {
        let every: Vec<usize> = (0..stream.len()).collect();
        prop_assert_eq!(decode_in(&stream, &every), decode_in(&stream, &[]));
    }

    #[test]
    fn encode_then_decode_gives_the_event_back(
        specs in proptest::collection::vec(spec(), 1..6),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut wire = Vec::new();
        let mut expected = Vec::new();
        for spec in &specs {
            let mut frame = spec.event().encode();
            wire.extend_from_slice(&frame.copy_to_bytes(frame.remaining()));
            expected.extend(spec.expected());
        }
        prop_assert!(!wire.contains(&b'\r'), "the encoder writes LF line endings only");
        prop_assert!(!wire.starts_with(b"\xef\xbb\xbf"), "the encoder never writes a BOM");
        prop_assert_eq!(decode_in(&wire, &cuts), expected);
    }
}
