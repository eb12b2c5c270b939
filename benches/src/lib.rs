//! Benchmark support for sse-rs: the inputs shared by the criterion benches (`benches/`), and
//! what the benchmark binaries read of a process (`process`), and their command lines
//! (`flags`).

pub mod flags;
pub mod inputs;
pub mod process;
