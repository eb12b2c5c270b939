//! The cluster rules (`cluster/`) against two nodes of the hyper demo on one Redis.

mod cluster;

cluster::suite!(env!("CARGO_BIN_EXE_demo-hyper"));
