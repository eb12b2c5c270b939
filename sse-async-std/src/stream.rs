//! The writer loop of one stream: the core's [`Pump`] says what to write, this performs it
//! on `futures-io` (vectored writes, keep-alive on an `async-io` timer, EOF noticed by a read).

use std::future::{Future, poll_fn};
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::Poll;
use std::time::Instant;

use async_io::Timer;
use bytes::{Buf, Bytes};
use futures_io::{AsyncRead, AsyncWrite};
use sse_proto::http1::{Next, Pump};
use sse_proto::{EndReason, Outlet};

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
    let mut timer = Timer::never();
    // The deadline `timer` is armed for. A fired one-shot `Timer` stays pending until it is
    // set again, so this is cleared when it fires.
    let mut armed: Option<Instant> = None;
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
                    if armed != Some(deadline) {
                        timer.set_at(deadline);
                        armed = Some(deadline);
                    }
                    if Pin::new(&mut timer).poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    // Keep-alive is due: the next drain queues it.
                    armed = None;
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
