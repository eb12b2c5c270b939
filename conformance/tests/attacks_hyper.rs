//! The attack rules (`attacks/`) against the hyper demo.

mod attacks;

attacks::suite!(env!("CARGO_BIN_EXE_demo-hyper"), attacks::Server::Hyper);
