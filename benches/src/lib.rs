//! Benchmark support for sse-rs: the inputs shared by the criterion benches (`benches/`) and
//! the report that turns criterion's estimates into side-by-side ratios (`src/bin/report.rs`).

pub mod inputs;
