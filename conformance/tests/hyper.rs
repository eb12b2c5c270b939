//! The conformance suite (`rules/`) against the hyper demo.

mod rules;

rules::suite!(env!("CARGO_BIN_EXE_demo-hyper"));
