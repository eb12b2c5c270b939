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
//!
//! The watch also keeps a peer that went away from lingering. While an HTTP/1.x response
//! streams, hyper reads only to notice the end of the connection, and once a read has
//! returned bytes (a client that sent anything after its request) it stops reading until
//! the response is over: a FIN or reset that follows would go unnoticed until a write
//! fails. So while a stream registered with [`Watch::register_http1`] is open, the guarded
//! socket reads on hyper's behalf, discards what the client sends (at most
//! [`MAX_STRAY_BYTES`]) and passes the end of the connection or an error through at once.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use sse_proto::Cutoff;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Most bytes a client may send on an HTTP/1.x connection after the request of an event
/// stream that is still open: they are discarded, and past this the connection is dropped.
pub const MAX_STRAY_BYTES: usize = 64 * 1024;

/// Most stray bytes discarded in one read call, so a flooding client cannot hold the task.
const STRAY_PER_POLL: usize = 16 * 1024;

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
    streams: Arc<Mutex<Vec<Watched>>>,
}

/// One stream of a [`Watch`].
#[derive(Debug, Clone)]
struct Watched {
    cutoff: Cutoff,
    /// An HTTP/1.x stream: it holds the connection until it ends.
    exclusive: bool,
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
            stray: 0,
        }
    }

    /// Watches one stream (the handshake does this when the request carries the watch).
    pub fn register(&self, stream: Cutoff) {
        self.push(stream, false);
    }

    /// Watches one HTTP/1.x stream, which holds its connection until it ends: while it is
    /// open, what the client sends is discarded and its FIN or reset ends the connection at
    /// once (see the module docs). The handshake calls this for HTTP/1.x requests.
    pub fn register_http1(&self, stream: Cutoff) {
        self.push(stream, true);
    }

    fn push(&self, cutoff: Cutoff, exclusive: bool) {
        let mut streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        // Streams that ended normally need no watching; this keeps the list to the streams
        // still open on a keep-alive connection.
        streams.retain(|s| !s.cutoff.is_done());
        streams.push(Watched { cutoff, exclusive });
    }

    /// Whether an HTTP/1.x stream is open on the connection.
    fn is_streaming_http1(&self) -> bool {
        let streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        streams.iter().any(|s| s.exclusive && !s.cutoff.is_done())
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
            if let Poll::Ready(reason) = stream.cutoff.poll(cx) {
                #[cfg(feature = "tracing")]
                tracing::debug!(target: "sse", ?reason, "connection dropped: its stream was cut off");
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
    /// Bytes discarded while an HTTP/1.x stream was open.
    stray: usize,
}

impl<T> Guarded<T> {
    /// The wrapped transport.
    pub fn get_ref(&self) -> &T {
        &self.io
    }

    /// The watch this transport answers to.
    pub fn watch(&self) -> &Watch {
        &self.watch
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Guarded<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let poll = if self.watch.is_streaming_http1() {
            self.discard(cx)
        } else {
            Pin::new(&mut self.io).poll_read(cx, buf)
        };
        self.watch.check(cx, poll)
    }
}

impl<T: AsyncRead + Unpin> Guarded<T> {
    /// Reads until the socket has nothing more, discarding what arrives; `Ready` (with
    /// nothing read: the end, for hyper) at EOF or past [`MAX_STRAY_BYTES`], or with the
    /// socket's error. Reading until `Pending` keeps the task registered for the next bytes,
    /// a FIN or a reset.
    fn discard(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut scratch = [0u8; 512];
        let mut this_poll = 0;
        loop {
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => {
                    let n = buf.filled().len();
                    self.stray += n;
                    this_poll += n;
                    if self.stray > MAX_STRAY_BYTES {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "too many bytes after the request of an event stream",
                        )));
                    }
                    if this_poll >= STRAY_PER_POLL {
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
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
