//! Writing responses: status lines and headers, fixed-body responses (with the rules for
//! which responses carry no body), event-stream heads and chunked framing.

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, Method, StatusCode};

use std::fmt::Write as _;

use sse_proto::ResponseHead;
use sse_proto::{Batch, Frame};

/// The chunk that ends a chunked body.
pub(super) const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Writes a status line and `headers`, without the blank line that ends the head.
pub(super) fn write_status_and_headers(
    status: StatusCode,
    headers: &HeaderMap,
    buf: &mut BytesMut,
) {
    buf.put_slice(b"HTTP/1.1 ");
    buf.put_slice(status.as_str().as_bytes());
    buf.put_u8(b' ');
    buf.put_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    buf.put_slice(b"\r\n");
    put_headers(headers, buf);
}

/// Writes `name: value` lines.
fn put_headers(headers: &HeaderMap, buf: &mut BytesMut) {
    for (name, value) in headers {
        buf.put_slice(name.as_str().as_bytes());
        buf.put_slice(b": ");
        buf.put_slice(value.as_bytes());
        buf.put_slice(b"\r\n");
    }
}

/// The head of an accepted event stream: the core's status and headers, the caller's own
/// `extra` headers (CORS, cookies), `transfer-encoding: chunked` when `chunked`, and the
/// blank line. Shared by the adapters that write to a socket themselves.
pub(crate) fn stream_head(head: &ResponseHead, extra: &HeaderMap, chunked: bool) -> Bytes {
    let mut buf = BytesMut::with_capacity(256);
    head.write_http1(&mut buf);
    put_headers(extra, &mut buf);
    if chunked {
        buf.put_slice(b"transfer-encoding: chunked\r\n");
    }
    buf.put_slice(b"\r\n");
    buf.freeze()
}

/// Whether an event stream that answers a request of `version` is sent chunked.
///
/// Only to HTTP/1.1 (RFC 9112 §6.1: "A server MUST NOT send a response containing
/// Transfer-Encoding unless the corresponding request indicates HTTP/1.1 (or later minor
/// revisions)"); to HTTP/1.0 the stream is delimited by the end of the connection
/// (RFC 9112 §6.3, item 8).
pub(crate) fn stream_is_chunked(version: http::Version) -> bool {
    version == http::Version::HTTP_11
}

/// The 204 answer to a closed session's reconnect, with the core's headers.
pub(crate) fn no_content() -> http::Response<Bytes> {
    ResponseHead::no_content().response(Bytes::new())
}

/// Whether a response with `status` to a `method` request carries body bytes on the wire.
///
/// RFC 9110 §6.4.1 and RFC 9112 §6.3: responses to `HEAD`, and 1xx, 204 and 304 responses,
/// end with their head. Writing a body there would be read as the start of the next
/// response and desynchronise a keep-alive connection.
pub(super) fn body_allowed(method: &Method, status: StatusCode) -> bool {
    !(method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED)
}

/// Writes a whole response with a fixed body to a `GET`-like request; see
/// [`write_response_to`], which this is with `Method::GET`.
#[cfg(test)]
pub(super) fn write_response(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    close: bool,
    buf: &mut BytesMut,
) {
    write_response_to(&Method::GET, status, headers, body, close, buf);
}

/// Writes a whole response with a fixed body to a `method` request: status line, `headers`,
/// `content-length`, `connection: close` when `close`, and the body when
/// [`body_allowed`].
///
/// A `HEAD` response gets the `content-length` the `GET` would have had, and no body bytes
/// (RFC 9110 §9.3.2). 1xx, 204 and 304 answers get neither length nor body.
pub(crate) fn write_response_to(
    method: &Method,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    close: bool,
    buf: &mut BytesMut,
) {
    write_status_and_headers(status, headers, buf);
    let no_content = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    if !no_content {
        buf.put_slice(b"content-length: ");
        let _ = write!(buf, "{}", body.len());
        buf.put_slice(b"\r\n");
    }
    if close {
        buf.put_slice(b"connection: close\r\n");
    }
    buf.put_slice(b"\r\n");
    if body_allowed(method, status) {
        buf.put_slice(body);
    }
}

/// Frames `batch` as one chunk of a chunked body: size line, the frames, CRLF.
/// Nothing is copied or allocated: the size line is a small inline frame.
pub(crate) fn chunk(mut batch: Batch) -> Batch {
    use bytes::Buf;
    // Hex digits of the size, then CRLF: at most 18 bytes.
    let mut line = [0u8; 18];
    let mut digits = [0u8; 16];
    let mut len = batch.remaining();
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b"0123456789abcdef"[len & 0xf];
        len >>= 4;
        if len == 0 {
            break;
        }
    }
    let n = digits.len() - i;
    line[..n].copy_from_slice(&digits[i..]);
    line[n..n + 2].copy_from_slice(b"\r\n");
    batch.push_front(Frame::framing(&line[..n + 2]));
    batch.push(Frame::framing_static(b"\r\n"));
    batch
}

/// The end of a chunked body, as a batch.
pub(crate) fn last_chunk() -> Batch {
    Batch::from(Bytes::from_static(LAST_CHUNK))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodiless_responses() {
        let h = HeaderMap::new();
        let cases: &[(Method, StatusCode, &[u8])] = &[
            (
                Method::GET,
                StatusCode::OK,
                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi",
            ),
            (
                Method::HEAD,
                StatusCode::OK,
                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n",
            ),
            (
                Method::HEAD,
                StatusCode::NOT_FOUND,
                b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n",
            ),
            (
                Method::GET,
                StatusCode::NO_CONTENT,
                b"HTTP/1.1 204 No Content\r\n\r\n",
            ),
            (
                Method::POST,
                StatusCode::NOT_MODIFIED,
                b"HTTP/1.1 304 Not Modified\r\n\r\n",
            ),
        ];
        for (method, status, want) in cases {
            let mut buf = BytesMut::new();
            write_response_to(method, *status, &h, b"hi", false, &mut buf);
            assert_eq!(&buf[..], *want, "{method} {status}");
            assert_eq!(
                body_allowed(method, *status),
                buf.ends_with(b"hi"),
                "{method} {status}"
            );
        }
    }

    #[test]
    fn head_response_keeps_a_keep_alive_connection_in_step() {
        // Two responses on one connection: a client reading the first as a HEAD response
        // (head only) must find the second status line right after it.
        let mut buf = BytesMut::new();
        let h = HeaderMap::new();
        write_response_to(&Method::HEAD, StatusCode::OK, &h, b"body", false, &mut buf);
        write_response_to(&Method::GET, StatusCode::OK, &h, b"next", false, &mut buf);
        let mut headers = [httparse::EMPTY_HEADER; 4];
        let mut res = httparse::Response::new(&mut headers);
        let Ok(httparse::Status::Complete(n)) = res.parse(&buf) else {
            panic!("a complete head");
        };
        assert!(buf[n..].starts_with(b"HTTP/1.1 200 OK\r\n"));
    }
}
