//! The harness of the conformance suite: starts a demo binary on a free loopback port and
//! talks to it over real sockets with a small blocking HTTP/1.1 client.
//!
//! The client is deliberately raw (std `TcpStream`, `httparse` for heads and chunk sizes,
//! `sse_proto::Decoder` for the event stream) so a test controls every byte: it can send a
//! hostile header, stop reading, or hang up mid-stream.
//!
//! The rules themselves are in `tests/rules/`, written once and run against every demo; the
//! cluster rules (`tests/cluster/`) run two demos on a [`RedisServer`] of their own, or on
//! a [`RedisCluster`].

use std::time::Duration;

mod demo;
mod http;
mod position;
mod stream;

pub use demo::Demo;
pub use http::{Client, Head, Response};
pub use position::{Position, in_log_order, to_base36};
pub use stream::EventStream;

pub use sse_testkit::{RedisCluster, RedisServer};

/// The README's Rust snippets, compiled as doctests (`cargo test -p sse-conformance --doc`):
/// this crate depends on every adapter, so each snippet can use what a reader's would.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeSnippets;

/// How long any single wait of the harness may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// What went wrong talking to a demo.
pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Percent-encodes every byte that is not ASCII alphanumeric, for a query or path segment.
pub fn percent_encode(bytes: &[u8]) -> String {
    percent_encoding::percent_encode(bytes, percent_encoding::NON_ALPHANUMERIC).to_string()
}
