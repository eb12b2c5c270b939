//! The cluster rules (`cluster/`) against two nodes of the tokio demo on a Redis Cluster of
//! 3 masters and 3 replicas, all but those that freeze, kill or restart the one
//! redis-server (a cluster's faults are failovers, tested in sse-redis). The engine is one
//! crate for every adapter; it runs on tokio here and on smol in
//! `cluster_redis_cluster_async_std.rs`.

mod cluster;

cluster::suite!(@on_redis_cluster env!("CARGO_BIN_EXE_demo-tokio"));
