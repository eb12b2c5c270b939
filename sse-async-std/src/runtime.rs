//! async-std (and smol) as an sse-http1 [`Runtime`]: `async-io` timers (the reactor under
//! both), `std::time::Instant` as the clock, `async_std::task::spawn`, and any `futures-io`
//! transport as it is.

use std::future::Future;
use std::io::{self, IoSlice};
use std::net::Shutdown;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use async_std::net::{TcpListener, TcpStream};
use futures_io::{AsyncRead, AsyncWrite};
use sse_http1::{Listener, Runtime, Transport};

/// The async-std runtime, for sse-http1's driver. Its timers are `async-io`'s, so the
/// driver also runs under smol.
#[derive(Debug, Clone, Copy, Default)]
pub struct AsyncStd;

/// [`Runtime::sleep_until`] of [`AsyncStd`]: an `async-io` timer.
#[derive(Debug)]
pub struct Sleep(async_io::Timer);

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

impl Runtime for AsyncStd {
    type Sleep = Sleep;

    fn now() -> Instant {
        Instant::now()
    }

    fn sleep_until(deadline: Instant) -> Sleep {
        Sleep(async_io::Timer::at(deadline))
    }

    fn spawn<F>(task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        async_std::task::spawn(task);
    }
}

impl<S> Transport<S> for AsyncStd
where
    S: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    type Io<'a>
        = &'a mut S
    where
        S: 'a;

    fn bridge(io: &mut S) -> &mut S {
        io
    }
}

/// An async-std listener for sse-http1's accept loop; sockets get `TCP_NODELAY` (events
/// are small and should leave at once).
pub(crate) struct AsyncStdListener(pub(crate) TcpListener);

impl Listener for AsyncStdListener {
    type Io = HalfClose;

    async fn accept(&mut self) -> io::Result<HalfClose> {
        let (stream, _) = self.0.accept().await?;
        let _ = stream.set_nodelay(true);
        Ok(HalfClose(stream))
    }
}

/// An async-std `TcpStream` whose `poll_close` sends a FIN.
///
/// async-std's (`async-io`'s) `poll_close` only flushes, and the FIN leaves when the
/// socket is dropped. The driver closes for writing and then keeps reading for a moment
/// after an error answer (a lingering close, RFC 9112 §9.6), so the client must see the
/// end then, not a second later.
pub(crate) struct HalfClose(TcpStream);

impl AsyncRead for HalfClose {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for HalfClose {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.0).poll_close(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(self.0.shutdown(Shutdown::Write)),
            other => other,
        }
    }
}
