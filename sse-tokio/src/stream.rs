//! The writer loop of one stream: drain the outlet, write vectored, keep alive, notice EOF.

use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::Poll;

use bytes::{Buf, Bytes};
use sse_proto::{Batch, EndReason, Outlet, http1};
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
    let mut pending = Batch::from(head);
    let mut timer: Option<Pin<Box<Sleep>>> = None;
    let mut drained = false;
    let mut flushed = true;
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
            if !pending.has_remaining() {
                if !flushed {
                    match Pin::new(&mut *io).poll_flush(cx) {
                        Poll::Ready(Ok(())) => flushed = true,
                        Poll::Ready(Err(_)) => return gone(&mut outlet),
                        Poll::Pending => return Poll::Pending,
                    }
                }
                if drained {
                    let reason = outlet.end_reason().unwrap_or(EndReason::PeerGone);
                    return Poll::Ready(Ok(reason));
                }
                let mut batch = Batch::new();
                match outlet.poll_drain(cx, crate::handshake::now(), &mut batch) {
                    Poll::Ready(Some(_)) => {
                        pending = if chunked { http1::chunk(batch) } else { batch };
                    }
                    Poll::Ready(None) => {
                        drained = true;
                        if chunked {
                            pending = http1::last_chunk();
                        }
                        continue;
                    }
                    Poll::Pending => {
                        let Some(deadline) = outlet.poll_timeout() else {
                            return Poll::Pending;
                        };
                        let deadline = tokio::time::Instant::from_std(deadline);
                        let sleep = timer
                            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                        if sleep.deadline() != deadline {
                            sleep.as_mut().reset(deadline);
                        }
                        if sleep.as_mut().poll(cx).is_pending() {
                            return Poll::Pending;
                        }
                        continue; // keep-alive is due: poll_drain queues it
                    }
                }
            }
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let n = pending.chunks_vectored(&mut slices);
            match Pin::new(&mut *io).poll_write_vectored(cx, &slices[..n]) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return gone(&mut outlet),
                Poll::Ready(Ok(written)) => {
                    pending.advance(written);
                    flushed = false;
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    })
    .await
}

fn gone(outlet: &mut Outlet) -> Poll<io::Result<EndReason>> {
    outlet.peer_gone();
    Poll::Ready(Ok(outlet.end_reason().unwrap_or(EndReason::PeerGone)))
}
