//! A small HTTP/1.1 server loop: read requests with the core's reader, answer each with the
//! caller's handler, and run accepted event streams.

use std::future::Future;
use std::io;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Response, StatusCode};
use sse_proto::HeadError;
use sse_proto::http1::{self, ReaderLimits, ReaderTimeouts, RequestReader};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::handshake::Accepted;

/// How a handler answers a request.
#[derive(Debug)]
pub enum Reply {
    /// A response with a fixed body.
    Response(Response<Bytes>),
    /// An accepted event stream: it takes the connection over until it ends.
    Stream(Accepted),
}

impl From<Response<Bytes>> for Reply {
    fn from(res: Response<Bytes>) -> Reply {
        Reply::Response(res)
    }
}

impl From<Accepted> for Reply {
    fn from(accepted: Accepted) -> Reply {
        Reply::Stream(accepted)
    }
}

/// Limits of [`serve_connection`].
#[derive(Debug, Clone, Copy)]
pub struct ServeConfig {
    /// Head and body size limits.
    pub limits: ReaderLimits,
    /// Longest wait for a request before an idle connection is closed, and longest time a
    /// request head (from its first byte) or body (plus the core's minimum-rate credit) may
    /// take before it gets 408 (default 10 s; see [`ReaderTimeouts::uniform`]).
    pub read_timeout: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            limits: ReaderLimits::default(),
            read_timeout: Duration::from_secs(10),
        }
    }
}

/// Serves HTTP/1.1 requests on one connection until it closes.
///
/// Each request, with its body read (at most `config.limits.max_body` bytes), goes to
/// `handler`. A fixed response keeps the connection open for the next request unless the
/// client asked to close; a stream runs until it ends and then the connection closes.
/// Malformed or oversized requests are answered with the core's status (400, 413, 417, 431,
/// 501) and the connection closes; a request whose head or body misses its deadline gets 408,
/// an idle connection is closed. `Expect: 100-continue` is answered before the body is read.
pub async fn serve_connection<S, H, F>(
    mut io: S,
    config: ServeConfig,
    mut handler: H,
) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
    H: FnMut(http::Request<Bytes>) -> F,
    F: Future<Output = Reply>,
{
    let timeouts = ReaderTimeouts::uniform(config.read_timeout);
    let mut reader = RequestReader::with_timeouts(config.limits, timeouts);
    // tokio's clock, so that paused time in tests moves the reader's deadlines too.
    let now = || tokio::time::Instant::now().into_std();
    reader.handle_ready(now());
    loop {
        let req = loop {
            match reader.poll_request() {
                Ok(Some(req)) => break req,
                Ok(None) => {}
                Err(HeadError::Idle) => return Ok(()),
                Err(e) => {
                    let status =
                        StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
                    return write_text(&mut io, status, &e.to_string()).await;
                }
            }
            if let Some(interim) = reader.poll_interim() {
                io.write_all(interim.as_bytes()).await?;
                io.flush().await?;
            }
            let deadline = reader.poll_timeout().map(tokio::time::Instant::from_std);
            let read = io.read_buf(reader.read_buf(2048));
            let read = match deadline {
                Some(deadline) => tokio::time::timeout_at(deadline, read).await,
                None => Ok(read.await),
            };
            match read {
                Ok(Ok(0)) | Ok(Err(_)) => return Ok(()),
                Ok(Ok(_)) => reader.handle_read(&[], now()),
                Err(_) => reader.handle_timeout(now()),
            }
        };
        let close = http1::wants_close(&req);
        let method = req.method().clone();
        match handler(req).await {
            Reply::Stream(accepted) => {
                // The stream never reads another request: free the head buffer now,
                // so an idle stream holds only what it needs.
                drop(reader);
                accepted.run(&mut io).await?;
                return io.shutdown().await;
            }
            Reply::Response(res) => {
                let (parts, body) = res.into_parts();
                let mut buf = BytesMut::with_capacity(128 + body.len());
                http1::write_response_to(
                    &method,
                    parts.status,
                    &parts.headers,
                    &body,
                    close,
                    &mut buf,
                );
                io.write_all(&buf).await?;
                io.flush().await?;
                if close {
                    return io.shutdown().await;
                }
                reader.handle_ready(now());
            }
        }
    }
}

async fn write_text<S: AsyncWrite + Unpin>(
    io: &mut S,
    status: StatusCode,
    text: &str,
) -> io::Result<()> {
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    let mut buf = BytesMut::new();
    http1::write_response(status, &headers, text.as_bytes(), true, &mut buf);
    io.write_all(&buf).await?;
    io.shutdown().await
}

/// Accepts connections from `listener` forever, serving each on its own task with
/// [`serve_connection`] and a clone of `handler`.
pub async fn serve<H, F>(listener: TcpListener, config: ServeConfig, handler: H) -> io::Result<()>
where
    H: FnMut(http::Request<Bytes>) -> F + Clone + Send + 'static,
    F: Future<Output = Reply> + Send,
{
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            // Out of file descriptors and the like: wait a little rather than spin.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        tokio::spawn(async move {
            let _ = serve_connection(stream, config, handler).await;
        });
    }
}
