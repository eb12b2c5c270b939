//! The cluster rules (`cluster/`) against two nodes of the async-std demo on a Redis Cluster
//! of 3 masters and 3 replicas: the engine's Redis Cluster client on smol's runtime (see
//! `cluster_redis_cluster.rs` for the rules left out).

mod cluster;

cluster::suite!(@on_redis_cluster env!("CARGO_BIN_EXE_demo-async-std"));
