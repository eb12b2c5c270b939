//! The writer loop of one stream: the core's [`Pump`] says what to write, this performs it
//! on tokio (vectored writes, keep-alive on `tokio::time`, EOF noticed by a read).

use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::Poll;

use bytes::{Buf, Bytes};
use sse_proto::http1::{Next, Pump};
use sse_proto::{EndReason, Outlet};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// Most buffers handed to one vectored write.
const MAX_IOVECS: usize = 64;

pub(crate) async fn run<S>(
    io: &mut S,
    head: Bytes,
    mut outlet: Outlet,
    chunked: bool,
) -> io::Result<EndReason>
where
    S: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    let mut pump = Pump::new(head, chunked);
    let mut timer: Option<Pin<Box<Sleep>>> = None;
    let mut scratch = [0u8; 32];
    poll_fn(|cx| {
        loop {
            // Cut off (too slow, or replaced): stop even mid-write. The outlet is dropped on
            // return, which ends the session with this reason, and the caller drops `io`.
            if let Poll::Ready(reason) = outlet.poll_aborted(cx) {
                return Poll::Ready(Ok(reason));
            }
            // A read that ends tells us the peer went away; stray bytes are dropped.
            let mut rb = ReadBuf::new(&mut scratch);
            match Pin::new(&mut *io).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) if rb.filled().is_empty() => return gone(&mut outlet),
                Poll::Ready(Err(_)) => return gone(&mut outlet),
                Poll::Ready(Ok(())) | Poll::Pending => {}
            }
            match pump.next(&mut outlet, cx, crate::handshake::now()) {
                Next::Write => {
                    let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
                    let n = pump.pending().chunks_vectored(&mut slices);
                    match Pin::new(&mut *io).poll_write_vectored(cx, &slices[..n]) {
                        Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return gone(&mut outlet),
                        Poll::Ready(Ok(written)) => pump.advance(written),
                        Poll::Pending => return Poll::Pending,
                    }
                }
                Next::Flush => match Pin::new(&mut *io).poll_flush(cx) {
                    Poll::Ready(Ok(())) => pump.flushed(),
                    Poll::Ready(Err(_)) => return gone(&mut outlet),
                    Poll::Pending => return Poll::Pending,
                },
                Next::Wait(None) => return Poll::Pending,
                Next::Wait(Some(deadline)) => {
                    let deadline = tokio::time::Instant::from_std(deadline);
                    let sleep =
                        timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                    if sleep.deadline() != deadline {
                        sleep.as_mut().reset(deadline);
                    }
                    if sleep.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    // Keep-alive is due: the next drain queues it.
                }
                Next::Done(reason) => return Poll::Ready(Ok(reason)),
            }
        }
    })
    .await
}

fn gone(outlet: &mut Outlet) -> Poll<io::Result<EndReason>> {
    outlet.peer_gone();
    Poll::Ready(Ok(outlet.end_reason().unwrap_or(EndReason::PeerGone)))
}
