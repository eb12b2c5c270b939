//! The cluster rules (`cluster/`) against two nodes of the tokio demo on a Redis Cluster of
//! 3 masters and 3 replicas, with the deployment's keys on six shards (`--redis-shards 6`),
//! whose slots spread over the masters: a tab's cursor names each shard it reads, and a
//! resume on the other node is exact on each.

mod cluster;

cluster::suite!(@on_redis_cluster_sharded env!("CARGO_BIN_EXE_demo-tokio"));
