//! The sse-async-std demo (`sse-async-std/examples/async-std-demo.rs`), built as a binary of this crate.

#[path = "../../../sse-async-std/examples/async-std-demo.rs"]
mod demo;

fn main() {
    demo::main();
}
