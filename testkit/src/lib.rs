//! What the workspace's tests share (not published): a Redis server of a test's own
//! ([`RedisServer`]), or a Redis Cluster ([`RedisCluster`]). The demo harness is the
//! conformance crate's (`sse_conformance::Demo`), and the fake clock the core's
//! (`sse_proto::ManualClock`).

mod cluster;
mod redis;

pub use cluster::RedisCluster;
pub use redis::{RedisServer, free_port};
