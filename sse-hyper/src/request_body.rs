//! [`read_body`]: a request's body read whole, within a size limit, a deadline with a
//! ceiling, and a budget shared by every connection of the server.

use std::fmt;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body::Body;
use sse_http1::proto::{BodyBudget, ReaderTimeouts};

/// A chunked (or HTTP/2) body takes the budget in steps of this many bytes.
const BUDGET_STEP: usize = 16 * 1024;

/// How [`read_body`] reads a request body: the same rules the raw-socket adapters' reader
/// applies (`sse_http1::proto::RequestReader`), for hyper, where nothing bounds a body's
/// time or the sum of bodies held.
///
/// Cloning shares the [`budget`](Self::budget): build one per server.
///
/// ```
/// use std::time::Duration;
/// use sse_hyper::{BodyBudget, BodyLimits};
///
/// let limits = BodyLimits {
///     max_body: 64 * 1024,
///     budget: BodyBudget::new(16 << 20),
///     ..BodyLimits::default()
/// };
/// # let _ = limits;
/// ```
#[derive(Debug, Clone)]
pub struct BodyLimits {
    /// Longest body, in bytes (default 1 MiB). A `Content-Length` over it is refused before
    /// any of the body is read.
    pub max_body: usize,
    /// Time allowed for a body before the rate credit (default 10 s).
    pub body: Duration,
    /// Bytes received that buy one more second (default 4096: 4 KiB/s).
    pub min_body_rate: u32,
    /// Longest time a body may take in all (default 30 s).
    pub body_ceiling: Duration,
    /// Bytes of bodies under way, summed over the server's connections (default 64 MiB).
    pub budget: BodyBudget,
}

impl Default for BodyLimits {
    fn default() -> Self {
        let t = ReaderTimeouts::default();
        BodyLimits {
            max_body: 1 << 20,
            body: t.body,
            min_body_rate: t.min_body_rate,
            body_ceiling: t.body_ceiling,
            budget: BodyBudget::default(),
        }
    }
}

impl BodyLimits {
    fn timeouts(&self) -> ReaderTimeouts {
        ReaderTimeouts {
            body: self.body,
            min_body_rate: self.min_body_rate,
            body_ceiling: self.body_ceiling,
            ..ReaderTimeouts::default()
        }
    }
}

/// Why [`read_body`] refused a body.
#[derive(Debug)]
#[non_exhaustive]
pub enum BodyError {
    /// Longer than [`BodyLimits::max_body`] (413).
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// Not received within its deadline (408).
    Timeout,
    /// The server's [`BodyBudget`] has not enough left for it (503, with `Retry-After`).
    OverBudget {
        /// The budget in bytes.
        limit: usize,
    },
    /// The body failed (the client reset its stream, or sent broken framing: 400).
    Broken(Box<dyn std::error::Error + Send + Sync>),
}

impl BodyError {
    /// The status to answer with: 400, 408, 413 or 503.
    pub fn status(&self) -> StatusCode {
        match self {
            BodyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::Timeout => StatusCode::REQUEST_TIMEOUT,
            BodyError::OverBudget { .. } => StatusCode::SERVICE_UNAVAILABLE,
            BodyError::Broken(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// The answer: [`status`](Self::status), the message as text, and `Retry-After` on a
    /// 503 (RFC 9110 §10.2.3).
    pub fn to_response(&self) -> Response<Bytes> {
        let mut res = Response::new(Bytes::from(self.to_string()));
        *res.status_mut() = self.status();
        let headers = res.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if let BodyError::OverBudget { .. } = self {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        res
    }
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::TooLarge { limit } => {
                write!(
                    f,
                    "request body larger than {limit} bytes; send a smaller body"
                )
            }
            BodyError::Timeout => f.write_str("request body not received in time; send it faster"),
            BodyError::OverBudget { limit } => write!(
                f,
                "request bodies under way hold the server's whole budget ({limit} bytes); retry later"
            ),
            BodyError::Broken(e) => write!(f, "the request body was cut short: {e}"),
        }
    }
}

impl std::error::Error for BodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BodyError::Broken(e) => Some(&**e),
            _ => None,
        }
    }
}

/// Reads `req`'s body whole, within `limits`, on tokio's clock.
///
/// - A `Content-Length` over `max_body` is refused at once; a body that grows past it is
///   refused when it does.
/// - The body must arrive within `body` plus one second per `min_body_rate` bytes, and
///   never after `body_ceiling`, counted from the call.
/// - While it waits for more of a body, the call holds the body's bytes in
///   [`BodyLimits::budget`] (the declared length, or what has arrived, in 16 KiB steps),
///   and gives them back when it returns. When the budget has not enough left it returns
///   [`BodyError::OverBudget`] at once, without reading more. A body hyper already holds
///   whole never counts, so a full budget refuses no small request.
///
/// Answer an error with [`BodyError::to_response`]; hyper then closes an HTTP/1.1
/// connection (the body was not read to its end) or resets the HTTP/2 stream.
///
/// ```no_run
/// # async fn f(req: http::Request<hyper::body::Incoming>) {
/// let limits = sse_hyper::BodyLimits::default(); // one per server: it holds the budget
/// match sse_hyper::read_body(req, &limits).await {
///     Ok(req) => println!("{} bytes", req.body().len()),
///     Err(e) => { let _answer = e.to_response(); }
/// }
/// # }
/// ```
pub async fn read_body<B>(req: Request<B>, limits: &BodyLimits) -> Result<Request<Bytes>, BodyError>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let too_large = BodyError::TooLarge {
        limit: limits.max_body,
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body as u64) {
        return Err(too_large);
    }
    let declared = declared.map_or(0, |n| n as usize);
    let timeouts = limits.timeouts();
    let start = tokio::time::Instant::now().into_std();
    let (parts, body) = req.into_parts();
    let mut body = pin!(body);
    let mut grant = limits.budget.grant();
    let mut buf = BytesMut::new();
    loop {
        // `None`: past `Instant`'s range, no deadline.
        let deadline = timeouts.body_deadline(start, buf.len());
        if deadline.is_some_and(|d| tokio::time::Instant::now().into_std() >= d) {
            return Err(BodyError::Timeout);
        }
        // What is ready now is taken without the budget; waiting for more holds it.
        let ready = std::future::poll_fn(|cx| match body.as_mut().poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(Some(frame)),
            Poll::Pending => Poll::Ready(None),
        })
        .await;
        let frame = match ready {
            Some(frame) => frame,
            None => {
                let held = declared.max(buf.len()).next_multiple_of(BUDGET_STEP);
                if !grant.reserve_total(held.min(limits.max_body)) {
                    return Err(BodyError::OverBudget {
                        limit: limits.budget.limit(),
                    });
                }
                let next = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx));
                match deadline {
                    None => next.await,
                    Some(d) => match tokio::time::timeout_at(d.into(), next).await {
                        Ok(frame) => frame,
                        Err(_) => return Err(BodyError::Timeout),
                    },
                }
            }
        };
        match frame {
            None => return Ok(Request::from_parts(parts, buf.freeze())),
            Some(Err(e)) => return Err(BodyError::Broken(e.into())),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    if buf.len() + data.remaining() > limits.max_body {
                        return Err(too_large);
                    }
                    buf.put(data);
                }
            }
        }
    }
}
