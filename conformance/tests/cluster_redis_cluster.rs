//! The cluster rules (`cluster/`) against two nodes of the tokio demo on a Redis Cluster of
//! 3 masters and 3 replicas, all but those that freeze, kill or restart the one
//! redis-server (a cluster's faults are failovers). The engine is one crate for every
//! adapter, so one demo shows it; the other demos run the rules on one Redis.

mod cluster;

cluster::suite!(@on_redis_cluster env!("CARGO_BIN_EXE_demo-tokio"));
