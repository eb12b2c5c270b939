//! [`HeadError`]: why a request was refused, and the status to answer it with.

use std::fmt;

/// Why an HTTP/1.1 request was refused.
///
/// [`status`](Self::status) is the answer to send before closing the connection, except for
/// [`Idle`](Self::Idle), which closes without an answer.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// The head (or a chunked body's trailer section) is longer than the limit (answer 431).
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The head is not valid HTTP/1.x (the part that failed is named; answer 400).
    Malformed(&'static str),
    /// A `Transfer-Encoding` body where only `Content-Length` is read (answer 411).
    UnsupportedBody,
    /// The request body is longer than the limit (answer 413).
    BodyTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// An HTTP/1.1 request without a `Host` header (RFC 9112 §3.2; answer 400).
    MissingHost,
    /// More than one `Host` line, or a `Host` that is not `host[:port]` (RFC 9112 §3.2;
    /// answer 400).
    BadHost,
    /// `Content-Length` is not one decimal number, or its lines disagree (RFC 9110 §8.6,
    /// RFC 9112 §6.3; answer 400).
    BadContentLength,
    /// Both `Transfer-Encoding` and `Content-Length`: a request smuggling attempt or a broken
    /// intermediary (RFC 9112 §6.1, §6.3; answer 400).
    LengthAndTransferEncoding,
    /// `Transfer-Encoding` that does not end in one `chunked`, or on HTTP/1.0, so the body's
    /// end cannot be known (RFC 9112 §6.1, §6.3; answer 400).
    BadTransferEncoding,
    /// A transfer coding other than `chunked` before the final `chunked` (RFC 9112 §6.1;
    /// answer 501).
    UnsupportedTransferCoding,
    /// The chunked framing of the body is broken (the part that failed is named; answer 400).
    BadChunk(&'static str),
    /// An `Expect` other than `100-continue` (RFC 9110 §10.1.1; answer 417).
    ExpectationFailed,
    /// The head did not arrive whole within its deadline (answer 408).
    HeadTimeout,
    /// The body did not arrive within its deadline, at the minimum rate, or before the
    /// ceiling on body time (answer 408).
    BodyTimeout,
    /// The server's [`BodyBudget`] for request bodies in flight has not enough left for
    /// this body: answer 503 with `Retry-After`, without reading it.
    ///
    /// [`BodyBudget`]: super::BodyBudget
    OverBudget {
        /// The server's budget in bytes.
        limit: usize,
    },
    /// No request started within the idle deadline: close the connection without answering
    /// (RFC 9112 §9.5). [`status`](Self::status) says 408 for completeness only.
    Idle,
}

impl HeadError {
    /// The status code to answer with: 400, 408, 411, 413, 417, 431, 501 or 503.
    pub fn status(&self) -> u16 {
        match self {
            HeadError::TooLarge { .. } => 431,
            HeadError::BodyTooLarge { .. } => 413,
            HeadError::UnsupportedBody => 411,
            HeadError::Malformed(_)
            | HeadError::MissingHost
            | HeadError::BadHost
            | HeadError::BadContentLength
            | HeadError::LengthAndTransferEncoding
            | HeadError::BadTransferEncoding
            | HeadError::BadChunk(_) => 400,
            HeadError::UnsupportedTransferCoding => 501,
            HeadError::ExpectationFailed => 417,
            HeadError::HeadTimeout | HeadError::BodyTimeout | HeadError::Idle => 408,
            HeadError::OverBudget { .. } => 503,
        }
    }
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeadError::TooLarge { limit } => write!(
                f,
                "request head larger than {limit} bytes; send fewer or shorter header fields"
            ),
            HeadError::Malformed(what) => write!(f, "malformed request: {what}"),
            HeadError::UnsupportedBody => {
                f.write_str("chunked request bodies are not supported; send Content-Length")
            }
            HeadError::BodyTooLarge { limit } => {
                write!(f, "request body larger than {limit} bytes; send a smaller body")
            }
            HeadError::MissingHost => {
                f.write_str("HTTP/1.1 requests need a Host header; add one")
            }
            HeadError::BadHost => {
                f.write_str("send exactly one Host header of the form host[:port]")
            }
            HeadError::BadContentLength => f.write_str(
                "Content-Length must be one decimal number (repeated lines must agree)",
            ),
            HeadError::LengthAndTransferEncoding => f.write_str(
                "both Transfer-Encoding and Content-Length were sent; send only one",
            ),
            HeadError::BadTransferEncoding => f.write_str(
                "Transfer-Encoding must end in a single chunked, and only on HTTP/1.1; send Content-Length or chunked",
            ),
            HeadError::UnsupportedTransferCoding => {
                f.write_str("only the chunked transfer coding is supported; send the body plain")
            }
            HeadError::BadChunk(what) => write!(f, "malformed chunked body: {what}"),
            HeadError::ExpectationFailed => {
                f.write_str("only the 100-continue expectation is supported; drop Expect")
            }
            HeadError::HeadTimeout => {
                f.write_str("request head not received in time; send it at once")
            }
            HeadError::BodyTimeout => {
                f.write_str("request body not received in time; send it faster")
            }
            HeadError::Idle => f.write_str("connection idle between requests; reconnect"),
            HeadError::OverBudget { limit } => write!(
                f,
                "request bodies under way hold the server's whole budget ({limit} bytes); retry later"
            ),
        }
    }
}

impl std::error::Error for HeadError {}
