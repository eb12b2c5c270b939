//! The resume and topic rules (`rules/`), and those of sending and closing, against the
//! tokio demo on a Redis Cluster of 3 masters and 3 replicas (`--redis redis+cluster://…`):
//! what one node does through Redis is what it does on its own. Each rule starts its own
//! cluster.

mod rules;

rules::suite!(@on_redis_cluster env!("CARGO_BIN_EXE_demo-tokio"));
