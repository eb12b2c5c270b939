//! The HTTP/1.1 server driver of sse-rs, written once over `futures-io` for every runtime.
//!
//! The core (`sse-proto`) decides everything about HTTP/1.1 and event streams without doing
//! I/O; this crate performs those decisions on a socket: the keep-alive request loop with the
//! core's deadlines, the writer of each event stream, the graceful shutdown. What it needs
//! from a runtime (a clock, a timer, spawning, and its sockets seen as `futures-io`) is the
//! [`Runtime`] and [`Transport`] traits; `sse-tokio` and `sse-async-std` implement them in a
//! few lines each and wrap this crate's [`Server`] with the runtime filled in, so
//! applications use those crates, not this one.
//!
//! What the driver guarantees, whatever a client sends:
//!
//! - a request head must arrive whole within its deadline from its first byte, and a body
//!   within its deadline plus a minimum-rate credit, up to a ceiling: never a timeout that
//!   restarts with every byte ([`ServeConfig::timeouts`]);
//! - a server-wide cap on connections holding an unfinished head, which evicts the oldest
//!   ([`ServeConfig::head_slots`]), so a slowloris cannot lock legitimate clients out, and
//!   a server-wide budget for bodies still arriving ([`ServeConfig::body_budget`]), so slow
//!   bodies cannot add up to more memory than it allows, whatever the number of sockets;
//! - the `Host`, `Content-Length`, `Transfer-Encoding` and `Expect` rules of RFC 9112 and
//!   RFC 9110, checked by the core, with a 4xx answer for every refusal; `HEAD` answered
//!   without a body;
//! - an event stream notices its peer going away (FIN or reset) at once, even after stray
//!   bytes, and a go-away answer closes its connection;
//! - [`serve`] stops accepting on a shutdown, closes idle connections and returns within a
//!   bound.
//!
//! # Feature flags
//!
#![doc = document_features::document_features!()]
#![deny(missing_docs)]

mod config;
mod connection;
mod drain;
mod handshake;
pub mod proto;
mod runtime;
mod serve;
mod server;
mod stream;
mod timer;

pub use config::{DEFAULT_MAX_UNFINISHED_HEADS, Reply, ServeConfig};
pub use connection::serve_connection;
pub use handshake::{Accepted, Outcome};
pub use proto::{BodyBudget, HeadError, HeadSlots, ReaderLimits, ReaderTimeouts};
pub use runtime::{Runtime, Transport};
pub use serve::{Listener, serve};
pub use server::Server;
pub use stream::MAX_STRAY_BYTES;
