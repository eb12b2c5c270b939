//! The sse-tokio demo (`sse-tokio/examples/demo.rs`), built as a binary of this crate.

#[path = "../../../sse-tokio/examples/demo.rs"]
mod demo;

fn main() {
    demo::main();
}
