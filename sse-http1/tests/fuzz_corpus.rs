//! Replays the checked-in corpus of the `request` fuzz target (`fuzz/corpus/request/*`)
//! through the check the cargo-fuzz target runs, so CI exercises it on stable without the
//! fuzzer.

#![allow(clippy::panic, clippy::unwrap_used)] // a test reports failure by panicking

#[path = "../../fuzz/src/request.rs"]
#[allow(unreachable_pub)]
mod request;

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
fn request_corpus() {
    replay("request", request::request);
}
