//! The attack rules (`attacks/`) against the tokio demo.

mod attacks;

attacks::suite!(env!("CARGO_BIN_EXE_demo-tokio"), attacks::Server::Driver);
