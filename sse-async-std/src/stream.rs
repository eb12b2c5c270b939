//! The writer loop of one stream: drain the outlet, write vectored, keep alive, notice EOF.

use std::future::{Future, poll_fn};
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::Poll;
use std::time::Instant;

use async_io::Timer;
use bytes::{Buf, Bytes};
use futures_io::{AsyncRead, AsyncWrite};
use sse_proto::{Batch, EndReason, Outlet, http1};

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
    let mut timer = Timer::never();
    // The deadline `timer` is armed for. A fired one-shot `Timer` stays pending until it is
    // set again, so this is cleared when it fires.
    let mut armed: Option<Instant> = None;
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
            match Pin::new(&mut *io).poll_read(cx, &mut scratch) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return gone(&mut outlet),
                Poll::Ready(Ok(_)) | Poll::Pending => {}
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
                        if armed != Some(deadline) {
                            timer.set_at(deadline);
                            armed = Some(deadline);
                        }
                        if Pin::new(&mut timer).poll(cx).is_pending() {
                            return Poll::Pending;
                        }
                        armed = None;
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
