//! The conformance suite (`rules/`) against the async-std demo.

mod rules;

rules::suite!(env!("CARGO_BIN_EXE_demo-async-std"));
