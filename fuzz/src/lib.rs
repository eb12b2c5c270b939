//! Fuzz targets for sse-proto. The checks live in `checks.rs`, which `sse-proto`'s tests
//! also include to replay the checked-in corpus under plain `cargo test`.

#[path = "checks.rs"]
mod checks;

pub use checks::{decode, handshake, request, roundtrip};
