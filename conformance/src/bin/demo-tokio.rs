//! The sse-tokio demo (`sse-tokio/examples/tokio-demo.rs`), built as a binary of this crate.

#[path = "../../../sse-tokio/examples/tokio-demo.rs"]
mod demo;

fn main() {
    demo::main();
}
