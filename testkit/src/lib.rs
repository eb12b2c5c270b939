//! What the workspace's tests share (not published): a Redis server of a test's own
//! ([`RedisServer`]). The demo harness is the conformance crate's (`sse_conformance::Demo`),
//! and the fake clock the core's (`sse_proto::ManualClock`).

mod redis;

pub use redis::{RedisServer, free_port};
