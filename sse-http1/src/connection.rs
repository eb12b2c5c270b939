//! The keep-alive request loop of one connection: read requests with the core's
//! [`RequestReader`] and its deadlines, answer each with the caller's handler, and hand the
//! connection to an accepted event stream.

use std::future::{Future, poll_fn};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::proto::HeadError;
use crate::proto::{self as http1, HeadSlot, RequestReader};
use bytes::{Bytes, BytesMut};
use futures_io::{AsyncRead, AsyncWrite};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};

use crate::config::{Reply, ServeConfig};
use crate::drain::DrainSignal;
use crate::runtime::{Runtime, Transport};
use crate::timer::Deadline;

/// Bytes read from the socket at a time while a request comes in.
const READ_CHUNK: usize = 8 * 1024;
/// After an error answer, how long the connection keeps reading (and discarding) before it
/// is dropped, and how much it reads at most: see [`linger`].
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 256 * 1024;
/// The `Retry-After` of a 503 (seconds).
const RETRY_AFTER: &str = "5";

/// Serves HTTP/1.1 requests on one connection until it closes.
///
/// Each request, with its body read (at most `config.limits.max_body` bytes), goes to
/// `handler`. A fixed response keeps the connection open for the next request unless the
/// client asked to close or the response says `Connection: close` (a go-away answer does);
/// a stream runs until it ends, and then the connection closes.
///
/// Refusals, each answered with the core's status and a closed connection: a malformed or
/// oversized request (400, 413 as soon as a `Content-Length` says so, 417, 431, 501), a
/// head or body that misses its deadline (408), an unfinished head evicted by a newer one
/// when [`ServeConfig::head_slots`] are all taken, a body that does not fit in what is left
/// of [`ServeConfig::body_budget`] (503 with `Retry-After`). An idle connection is closed
/// without an answer. `Expect: 100-continue` is answered before the body is read, and a
/// `HEAD` response carries no body. Clone one [`ServeConfig`] for every connection of a
/// server, so that they share the cap on unfinished heads.
///
/// The connection is ended with `poll_close`, which should close the transport for writing
/// (a FIN on TCP), as tokio's `shutdown` and smol's streams do: after a refusal the driver
/// keeps reading for up to a second (a lingering close) and the client should see the end
/// meanwhile. async-std's `TcpStream` only flushes there (`sse_async_std::serve` wraps it).
pub async fn serve_connection<R, S, H, F>(
    mut io: S,
    config: ServeConfig,
    handler: H,
) -> io::Result<()>
where
    R: Transport<S>,
    H: FnMut(http::Request<Bytes>) -> F,
    F: Future<Output = Reply>,
{
    let mut io = R::bridge(&mut io);
    connection::<R, _, _, _>(&mut io, &config, handler, None).await
}

/// What woke a connection waiting for request bytes.
enum Wake {
    /// Bytes were read and handed to the reader.
    Read,
    /// The reader's deadline passed.
    Timeout,
    /// A newer unfinished head took this connection's slot.
    Evicted,
    /// The server is shutting down and no request is under way.
    Drain,
    /// The peer closed or the transport failed.
    Closed,
}

/// A stream a request opened: its response head, its outlet, and whether it is chunked.
type Opened = (Bytes, sse_proto::Outlet, bool);

pub(crate) async fn connection<R, T, H, F>(
    io: &mut T,
    config: &ServeConfig,
    handler: H,
    drain: Option<&DrainSignal>,
) -> io::Result<()>
where
    R: Runtime,
    T: AsyncRead + AsyncWrite + Unpin + ?Sized,
    H: FnMut(http::Request<Bytes>) -> F,
    F: Future<Output = Reply>,
{
    // Boxed: the request loop's state (the reader, a request, its answer, the handler) is
    // over a kilobyte, and a task is as large as its largest state, so an idle stream's task
    // would keep room for it as long as the stream lives. Boxed, it is freed when the loop
    // hands the connection to a stream (one allocation per connection).
    let opened = Box::pin(requests::<R, _, _, _>(io, config, handler, drain)).await?;
    let Some((head, outlet, chunked)) = opened else {
        return Ok(());
    };
    crate::stream::run::<R, _>(io, head, outlet, chunked).await?;
    close::<R, _>(io, config).await
}

/// Reads and answers requests until one opens a stream, which it returns, or until the
/// connection is over (closed, refused or idle): `None`.
async fn requests<R, T, H, F>(
    io: &mut T,
    config: &ServeConfig,
    mut handler: H,
    drain: Option<&DrainSignal>,
) -> io::Result<Option<Opened>>
where
    R: Runtime,
    T: AsyncRead + AsyncWrite + Unpin + ?Sized,
    H: FnMut(http::Request<Bytes>) -> F,
    F: Future<Output = Reply>,
{
    let draining = || drain.is_some_and(DrainSignal::is_draining);
    let mut reader = RequestReader::with_timeouts(config.limits, config.timeouts)
        .with_body_budget(&config.body_budget);
    let mut deadline = Deadline::<R>::new();
    let mut slot: Option<HeadSlot> = None;
    reader.handle_ready(R::now());
    loop {
        let req = loop {
            match reader.poll_request() {
                Ok(Some(req)) => break req,
                Ok(None) => {}
                Err(HeadError::Idle) => return close::<R, _>(io, config).await.map(|()| None),
                Err(e) => {
                    let status =
                        StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
                    #[cfg(feature = "tracing")]
                    tracing::debug!(target: "sse", %status, error = %e, "request refused");
                    refuse::<R, _>(io, config, status, &e.to_string()).await?;
                    return Ok(None);
                }
            }
            // Only a head that is still coming holds one of the server's slots.
            if !reader.is_mid_head() {
                slot = None;
            } else if slot.is_none() {
                slot = Some(config.head_slots.acquire(R::now()));
            }
            if let Some(interim) = reader.poll_interim() {
                write_all::<R, _>(io, interim.as_bytes(), config.write_timeout).await?;
            }
            let wake = poll_fn(|cx| {
                poll_request_bytes(cx, io, &mut reader, slot.as_ref(), &mut deadline, &draining)
            })
            .await;
            match wake {
                Wake::Read => {}
                Wake::Timeout => reader.handle_timeout(R::now()),
                Wake::Drain | Wake::Closed => {
                    return close::<R, _>(io, config).await.map(|()| None);
                }
                Wake::Evicted => {
                    let text = "too many unfinished requests: try again";
                    refuse::<R, _>(io, config, StatusCode::SERVICE_UNAVAILABLE, text).await?;
                    return Ok(None);
                }
            }
        };
        slot = None;
        let wants_close = http1::wants_close(&req);
        let method = req.method().clone();
        // Boxed: the handler's future lives for one request, so an idle stream's task does not
        // keep room for the largest state of the application's handler (one allocation per
        // request; an async handler with a store's round trip in it is kilobytes).
        match Box::pin(handler(req)).await {
            // The stream never reads another request: the reader, its buffer and its
            // deadline go with this loop's state.
            Reply::Stream(accepted) => return Ok(Some(accepted.into_stream())),
            Reply::Response(res) => {
                let (parts, body) = res.into_parts();
                let says_close = has_close(&parts.headers);
                let close_after = wants_close || says_close || draining();
                let mut buf = BytesMut::with_capacity(128 + body.len());
                http1::write_response_to(
                    &method,
                    parts.status,
                    &parts.headers,
                    &body,
                    close_after && !says_close,
                    &mut buf,
                );
                write_all::<R, _>(io, &buf, config.write_timeout).await?;
                if close_after {
                    return close::<R, _>(io, config).await.map(|()| None);
                }
                reader.handle_ready(R::now());
            }
        }
    }
}

/// Waits for request bytes, the reader's deadline, an eviction or a shutdown, whichever
/// comes first. The read buffer is on the stack of this poll only: an idle connection keeps
/// no buffer between polls.
fn poll_request_bytes<R, T>(
    cx: &mut Context<'_>,
    io: &mut T,
    reader: &mut RequestReader,
    slot: Option<&HeadSlot>,
    deadline: &mut Deadline<R>,
    draining: &impl Fn() -> bool,
) -> Poll<Wake>
where
    R: Runtime,
    T: AsyncRead + Unpin + ?Sized,
{
    if draining() && !reader.is_mid_request() {
        return Poll::Ready(Wake::Drain);
    }
    if slot.is_some_and(|slot| slot.poll_evicted(cx).is_ready()) {
        return Poll::Ready(Wake::Evicted);
    }
    let mut buf = [0u8; READ_CHUNK];
    match Pin::new(&mut *io).poll_read(cx, &mut buf) {
        Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(Wake::Closed),
        Poll::Ready(Ok(n)) => {
            reader.handle_read(buf.get(..n).unwrap_or(&buf), R::now());
            return Poll::Ready(Wake::Read);
        }
        Poll::Pending => {}
    }
    deadline
        .poll_at(cx, reader.poll_timeout())
        .map(|()| Wake::Timeout)
}

/// Whether `Connection` lists `close` (RFC 9112 §9.6): the connection ends after this
/// response.
fn has_close(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("close"))
}

/// Answers a refused request with `status` and a short text, then closes the connection.
async fn refuse<R, T>(
    io: &mut T,
    config: &ServeConfig,
    status: StatusCode,
    text: &str,
) -> io::Result<()>
where
    R: Runtime,
    T: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if status == StatusCode::SERVICE_UNAVAILABLE {
        // RFC 9110 §10.2.3: when to try again. The server is full of unfinished heads or
        // bodies, which its deadlines clear within seconds.
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER));
    }
    let mut buf = BytesMut::new();
    http1::write_response_to(
        &Method::GET,
        status,
        &headers,
        text.as_bytes(),
        true,
        &mut buf,
    );
    write_all::<R, _>(io, &buf, config.write_timeout).await?;
    close::<R, _>(io, config).await?;
    linger::<R, _>(io).await;
    Ok(())
}

/// Reads and discards what the client still sends after its connection was closed for
/// writing, until it closes too, for at most [`LINGER`] and [`LINGER_BYTES`].
///
/// RFC 9112 §9.6: a server that closes while the client may still be sending (the rest of
/// a refused body) should half-close and keep reading for a while; dropping a socket with
/// unread bytes makes the kernel send a reset, which can destroy the answer before the
/// client reads it.
async fn linger<R, T>(io: &mut T)
where
    R: Runtime,
    T: AsyncRead + Unpin + ?Sized,
{
    let until = R::now() + LINGER;
    let mut deadline = Deadline::<R>::new();
    let mut left = LINGER_BYTES;
    poll_fn(|cx| {
        let mut buf = [0u8; 4096];
        loop {
            match Pin::new(&mut *io).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(n)) if n > 0 && n < left => left -= n,
                Poll::Ready(_) => return Poll::Ready(()),
                Poll::Pending => return deadline.poll_at(cx, Some(until)),
            }
        }
    })
    .await;
}

/// Writes all of `buf` and flushes, within `limit`.
async fn write_all<R, T>(io: &mut T, mut buf: &[u8], limit: Duration) -> io::Result<()>
where
    R: Runtime,
    T: AsyncWrite + Unpin + ?Sized,
{
    let until = R::now() + limit;
    let mut deadline = Deadline::<R>::new();
    poll_fn(|cx| {
        while !buf.is_empty() {
            match Pin::new(&mut *io).poll_write(cx, buf) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => buf = &buf[n.min(buf.len())..],
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return timed_out(cx, &mut deadline, until),
            }
        }
        match Pin::new(&mut *io).poll_flush(cx) {
            Poll::Pending => timed_out(cx, &mut deadline, until),
            ready => ready,
        }
    })
    .await
}

/// Closes the transport for writing (a FIN on TCP), within the write timeout.
async fn close<R, T>(io: &mut T, config: &ServeConfig) -> io::Result<()>
where
    R: Runtime,
    T: AsyncWrite + Unpin + ?Sized,
{
    let until = R::now() + config.write_timeout;
    let mut deadline = Deadline::<R>::new();
    poll_fn(|cx| match Pin::new(&mut *io).poll_close(cx) {
        Poll::Pending => timed_out(cx, &mut deadline, until),
        ready => ready,
    })
    .await
}

fn timed_out<R: Runtime>(
    cx: &mut Context<'_>,
    deadline: &mut Deadline<R>,
    until: Instant,
) -> Poll<io::Result<()>> {
    deadline
        .poll_at(cx, Some(until))
        .map(|()| Err(io::ErrorKind::TimedOut.into()))
}
