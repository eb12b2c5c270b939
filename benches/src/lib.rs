//! Benchmark support crate for sse-rs (the benches themselves live in `benches/`).
