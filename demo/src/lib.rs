//! The demo servers' shared code (not published): the demo contract of DESIGN.md that does
//! not depend on the adapter. Each adapter crate's `examples/<adapter>-demo.rs` is its server
//! set-up and its handshake on top of this.
//!
//! - [`options`]: the command line, and the hub settings it asks for;
//! - [`routes`]: the admin routes over the hub (through Redis with `--redis`: `cluster`),
//!   the page, the `connect` greeting, the `sync-time` tick, the stand-in login, the stats;
//! - [`groups`]: the topic and user routes, and the demo's topic rule;
//! - [`limits`]: the server limits, which environment variables shorten for the attack rules;
//! - [`raw`]: what the two raw-socket demos (sse-tokio's, sse-async-std's) share;
//! - [`tls`]: the hyper demo's certificate (`--tls`);
//! - [`signal`]: the shutdown signal.

mod cluster;
pub mod groups;
pub mod limits;
pub mod options;
pub mod raw;
pub mod routes;
pub mod signal;
pub mod tls;

use sse_proto::Hub;
use sse_redis::RedisEngine;

pub use cluster::connect;
pub use options::Options;
pub use routes::{Reply, Route, Stats};

/// What a demo's handlers share: the hub, the Redis engine with `--redis`, the stats.
pub struct App {
    /// The hub of the adapter's server.
    pub hub: Hub,
    /// `--redis`: the engine that shares the sessions of every node.
    pub engine: Option<RedisEngine>,
    /// The counters behind `GET /stats`.
    pub stats: Stats,
}
