//! The sse-hyper demo (`sse-hyper/examples/hyper-demo.rs`), built as a binary of this crate.

#[path = "../../../sse-hyper/examples/hyper-demo.rs"]
mod demo;

fn main() {
    demo::main();
}
