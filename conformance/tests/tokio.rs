//! The conformance suite (`rules/`) against the tokio demo.

mod rules;

rules::suite!(env!("CARGO_BIN_EXE_demo-tokio"));
