//! Cutting a connection off when its event stream is cut off.
//!
//! hyper polls a response body only when its write buffer has room. A client that stops
//! reading fills the socket, hyper stops polling the [`EventStream`](crate::EventStream), and
//! nothing in the body can end the connection. The hub still bounds the memory (the session
//! is ended as too slow, its queue dropped, and it leaves the hub at once), but the socket
//! would stay open until the kernel gives up on it.
//!
//! A [`Watch`] closes that gap: wrap each accepted socket with [`Watch::guard`] and put the
//! watch into each request's extensions; [`handshake`](crate::handshake) registers the
//! streams it accepts with it, and once one of them is cut off, the guarded socket's waiting
//! read or write fails (hyper is woken for it at once). hyper then drops the connection.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use sse_proto::Cutoff;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The event streams served on one connection. Cheap to clone: every clone is the same watch.
///
/// ```no_run
/// # async fn demo(listener: tokio::net::TcpListener) -> std::io::Result<()> {
/// let (tcp, _) = listener.accept().await?;
/// let watch = sse_hyper::Watch::new();
/// let io = watch.guard(tcp); // give `io` to hyper (through hyper-util's `TokioIo`)
/// // and in the service, before the handshake:
/// // req.extensions_mut().insert(watch.clone());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct Watch {
    streams: Arc<Mutex<Vec<Cutoff>>>,
}

impl Watch {
    /// A watch with no streams yet.
    pub fn new() -> Watch {
        Watch::default()
    }

    /// Wraps a connection's transport so that it fails once a watched stream is cut off.
    pub fn guard<T>(&self, io: T) -> Guarded<T> {
        Guarded {
            io,
            watch: self.clone(),
        }
    }

    /// Watches one stream (the handshake does this when the request carries the watch).
    pub fn register(&self, stream: Cutoff) {
        let mut streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        // Streams that ended normally need no watching; this keeps the list to the streams
        // still open on a keep-alive connection.
        streams.retain(|s| !s.is_done());
        streams.push(stream);
    }

    /// Passes an I/O result through, unless the I/O has to wait and a watched stream was
    /// cut off: then the error that makes hyper drop the connection. Only a waiting read or
    /// write looks at the streams, so a transport that keeps up costs nothing more.
    fn check<T>(&self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match poll {
            Poll::Pending => self.poll_cut(cx).map(Err),
            ready => ready,
        }
    }

    /// Ready with an error once a watched stream was cut off; registers `cx` otherwise.
    fn poll_cut(&self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        for stream in streams.iter() {
            if let Poll::Ready(reason) = stream.poll(cx) {
                return Poll::Ready(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    format!("event stream cut off: {reason:?}"),
                ));
            }
        }
        Poll::Pending
    }
}

/// A transport that fails once a stream of its [`Watch`] is cut off.
#[derive(Debug)]
pub struct Guarded<T> {
    io: T,
    watch: Watch,
}

impl<T> Guarded<T> {
    /// The wrapped transport.
    pub fn get_ref(&self) -> &T {
        &self.io
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Guarded<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.io).poll_read(cx, buf);
        self.watch.check(cx, poll)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Guarded<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write(cx, buf);
        self.watch.check(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.watch.check(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.io).poll_flush(cx);
        self.watch.check(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
