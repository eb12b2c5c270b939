//! The attack rules (`attacks/`) against the async-std demo.

mod attacks;

attacks::suite!(
    env!("CARGO_BIN_EXE_demo-async-std"),
    attacks::Server::Driver
);
