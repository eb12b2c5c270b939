//! Fuzz targets for sse-proto and sse-http1. The checks live in `checks.rs` and `groups.rs`
//! (the core) and `request.rs` (the HTTP/1.1 reader), which the two crates' tests also
//! include to replay the checked-in corpus under plain `cargo test`.

#[path = "checks.rs"]
mod checks;
#[path = "groups.rs"]
mod groups;
#[path = "request.rs"]
mod request;

pub use checks::{decode, handshake, roundtrip};
pub use groups::groups;
pub use request::request;
