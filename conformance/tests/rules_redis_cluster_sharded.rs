//! The resume and topic rules (`rules/`), and those of sending and closing, against the
//! tokio demo on a Redis Cluster of 3 masters and 3 replicas with the deployment's keys on
//! six shards (`--redis-shards 6`). Each rule starts its own cluster.

mod rules;

rules::suite!(@on_redis_cluster_sharded env!("CARGO_BIN_EXE_demo-tokio"));
