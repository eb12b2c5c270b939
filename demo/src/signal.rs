//! The shutdown signal of every demo: the first SIGINT (Ctrl-C) or SIGTERM starts a graceful
//! shutdown. `async-signal` watches them on any executor (tokio's or async-std's).

use futures_lite::StreamExt;

/// Resolves on the first SIGINT or SIGTERM; never, if signals cannot be watched.
pub async fn shutdown() {
    use async_signal::{Signal, Signals};
    match Signals::new([Signal::Int, Signal::Term]) {
        Ok(mut signals) => {
            signals.next().await;
        }
        Err(_) => std::future::pending().await,
    }
}
