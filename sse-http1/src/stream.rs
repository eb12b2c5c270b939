//! The writer loop of one stream: the core's [`Pump`] says what to write, this performs it
//! on a `futures-io` transport (vectored writes, keep-alive on the runtime's timer), and
//! keeps reading so that a peer that goes away is noticed at once.

use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::proto::{Next, Pump};
use bytes::{Buf, Bytes};
use futures_io::{AsyncRead, AsyncWrite};
use sse_proto::{EndReason, Outlet};

use crate::runtime::Runtime;
use crate::timer::Deadline;

/// Most buffers handed to one vectored write.
const MAX_IOVECS: usize = 64;

/// Most bytes a client may send on a connection after the request that opened its event
/// stream. An event stream is a one-way channel: a browser sends nothing more, so these
/// bytes are discarded, and a client that keeps sending past this is cut off as gone.
pub const MAX_STRAY_BYTES: usize = 64 * 1024;

/// Most stray bytes discarded in one wake-up, so that a flooding client cannot keep the
/// writer's task busy; the task yields and goes on after what is due.
const STRAY_PER_POLL: usize = 16 * 1024;

pub(crate) async fn run<R, S>(
    io: &mut S,
    head: Bytes,
    mut outlet: Outlet,
    chunked: bool,
) -> io::Result<EndReason>
where
    R: Runtime,
    S: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    let mut pump = Pump::new(head, chunked);
    let mut keep_alive = Deadline::<R>::new();
    let mut stray = 0usize;
    poll_fn(|cx| {
        // Cut off (too slow, or replaced): stop even mid-write. The outlet is dropped on
        // return, which ends the session with this reason, and the caller drops `io`. Only
        // a writer with bytes pending can be waiting on the transport (registered below
        // when a write waits); an idle one learns of the end from its next drain, so the
        // common wake-up (drain, write, drain) takes the session's lock twice, not three
        // times.
        if pump.pending().has_remaining() {
            if let Poll::Ready(reason) = outlet.poll_cut_off(cx) {
                return Poll::Ready(Ok(reason));
            }
        }
        if let Poll::Ready(()) = poll_peer_gone(&mut *io, cx, &mut stray) {
            return gone(&mut outlet);
        }
        // One clock read per wake-up (and one more when keep-alive falls due): what it
        // decides is not finer than that.
        let mut now = R::now();
        loop {
            match pump.next(&mut outlet, cx, now) {
                Next::Write => {
                    let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
                    let n = pump.pending().chunks_vectored(&mut slices);
                    match Pin::new(&mut *io).poll_write_vectored(cx, &slices[..n]) {
                        Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return gone(&mut outlet),
                        Poll::Ready(Ok(written)) => pump.advance(written),
                        Poll::Pending => return wait_for_transport(&outlet, cx),
                    }
                }
                Next::Flush => match Pin::new(&mut *io).poll_flush(cx) {
                    Poll::Ready(Ok(())) => pump.flushed(),
                    Poll::Ready(Err(_)) => return gone(&mut outlet),
                    Poll::Pending => return wait_for_transport(&outlet, cx),
                },
                Next::Wait(deadline) => match keep_alive.poll_at(cx, deadline) {
                    // Keep-alive is due: the next drain, as of now, queues it.
                    Poll::Ready(()) => now = R::now(),
                    Poll::Pending => return Poll::Pending,
                },
                Next::Done(reason) => return Poll::Ready(Ok(reason)),
            }
        }
    })
    .await
}

/// Reads until the transport has nothing more (which registers `cx` for the next bytes, a
/// FIN or a reset), discarding what arrives. `Ready` when the peer is gone: EOF, an error,
/// or more than [`MAX_STRAY_BYTES`] in all.
///
/// Reading until `Pending` matters: a read that returned bytes registers no interest, and a
/// writer with nothing to write would then sleep through the peer's FIN or RST.
fn poll_peer_gone<S>(io: &mut S, cx: &mut Context<'_>, stray: &mut usize) -> Poll<()>
where
    S: AsyncRead + Unpin + ?Sized,
{
    let mut scratch = [0u8; 512];
    let mut this_poll = 0;
    loop {
        match Pin::new(&mut *io).poll_read(cx, &mut scratch) {
            Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(()),
            Poll::Ready(Ok(n)) => {
                *stray += n;
                this_poll += n;
                if *stray > MAX_STRAY_BYTES {
                    return Poll::Ready(());
                }
                if this_poll >= STRAY_PER_POLL {
                    // More may be waiting: come back after the writer had its turn.
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
            }
            Poll::Pending => return Poll::Pending,
        }
    }
}

/// The transport cannot take more now: wait for it, or for a cut-off, which must end the
/// stream even though the transport never becomes writable (a reader that stopped reading).
fn wait_for_transport(outlet: &Outlet, cx: &mut Context<'_>) -> Poll<io::Result<EndReason>> {
    match outlet.poll_cut_off(cx) {
        Poll::Ready(reason) => Poll::Ready(Ok(reason)),
        Poll::Pending => Poll::Pending,
    }
}

fn gone(outlet: &mut Outlet) -> Poll<io::Result<EndReason>> {
    outlet.peer_gone();
    Poll::Ready(Ok(outlet.end_reason().unwrap_or(EndReason::PeerGone)))
}
