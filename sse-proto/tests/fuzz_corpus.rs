//! Replays the checked-in fuzz corpus (`fuzz/corpus/<target>/*`) through the same checks the
//! cargo-fuzz targets run, so CI exercises them on stable without the fuzzer.

#![allow(clippy::panic, clippy::unwrap_used)] // a test reports failure by panicking

#[path = "../../fuzz/src/checks.rs"]
#[allow(unreachable_pub)]
mod checks;
#[path = "../../fuzz/src/groups.rs"]
#[allow(unreachable_pub)]
mod groups;

use std::path::PathBuf;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    entries.sort();
    assert!(!entries.is_empty(), "no corpus files in {}", dir.display());
    for path in &entries {
        let data = std::fs::read(path).expect("readable corpus file");
        let result = std::panic::catch_unwind(|| check(&data));
        assert!(result.is_ok(), "{target} failed on {}", path.display());
    }
    println!("{target}: replayed {} inputs", entries.len());
}

#[test]
fn decode_corpus() {
    replay("decode", checks::decode);
}

#[test]
fn roundtrip_corpus() {
    replay("roundtrip", checks::roundtrip);
}

#[test]
fn handshake_corpus() {
    replay("handshake", checks::handshake);
}

#[test]
fn groups_corpus() {
    replay("groups", groups::groups);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]

    /// The `groups` check on random bytes, on stable, without the fuzzer.
    #[test]
    fn groups_on_random_bytes(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
        groups::groups(&data);
    }
}
