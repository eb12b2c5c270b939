//! What the driver needs from an async runtime: a clock, a timer, a way to spawn, and a way
//! to see the runtime's sockets as `futures-io` transports.

use std::future::Future;
use std::time::Instant;

use futures_io::{AsyncRead, AsyncWrite};

/// An async runtime, as the driver uses it. Implemented by a zero-sized marker type in each
/// runtime crate (`sse_tokio::Tokio`, `sse_async_std::AsyncStd`); every function of the
/// driver is generic over it.
///
/// Only the clock and the timer decide behaviour, so a runtime with a paused or simulated
/// clock (tokio's `start_paused` tests) moves every deadline of the driver with it.
pub trait Runtime: Send + Sync + 'static {
    /// The future of [`sleep_until`](Self::sleep_until).
    type Sleep: Future<Output = ()> + Send + 'static;

    /// The runtime's clock: what its timers measure against. It is also the clock of the
    /// hubs a [`Server`](crate::Server) builds, so sessions and sockets agree.
    fn now() -> Instant;

    /// A future that completes at `deadline` (at once if it has passed). The driver polls it
    /// until it completes once and then drops it; it never polls a completed sleep.
    fn sleep_until(deadline: Instant) -> Self::Sleep;

    /// Runs `task` to completion in the background (a connection of
    /// [`serve`](crate::serve), the hub's timer task).
    fn spawn<F>(task: F)
    where
        F: Future<Output = ()> + Send + 'static;
}

/// How a runtime's transports are seen as `futures-io` ones. `S` is the caller's transport
/// (a socket, a TLS stream) as the runtime's I/O traits know it.
///
/// `sse_async_std` implements it for every `futures-io` transport (as itself); `sse_tokio`
/// for every tokio one, through `tokio-util`'s `compat` layer.
pub trait Transport<S: ?Sized>: Runtime {
    /// `S` borrowed as a `futures-io` transport.
    type Io<'a>: AsyncRead + AsyncWrite + Unpin
    where
        S: 'a;

    /// Borrows `io` as a `futures-io` transport for as long as the driver runs on it.
    fn bridge(io: &mut S) -> Self::Io<'_>;
}
