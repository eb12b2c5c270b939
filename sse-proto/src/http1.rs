//! HTTP/1.1 for the raw-socket adapters (feature `http1`): read a request head with
//! `httparse`, write response heads and chunked framing. Bytes in, values out; no I/O.

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version};

use crate::error::HeadError;
use crate::frame::{Batch, Frame, INLINE_CAP};
use crate::request::ResponseHead;

mod pump;

pub use pump::{Next, Pump};

/// Default limit on a request head, in bytes.
pub const DEFAULT_MAX_HEAD: usize = 16 * 1024;
/// Most header lines read from one request.
pub const MAX_HEADERS: usize = 64;
/// The chunk that ends a chunked body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Parses a request head from the start of `buf`.
///
/// Returns `Ok(None)` when the head is not complete yet (read more, unless `buf` already
/// holds `max_head` bytes, which is then [`HeadError::TooLarge`]), or the request and the
/// number of bytes the head took; what follows is the body.
///
/// ```
/// use sse_proto::http1::parse_request;
///
/// let raw = b"GET /events?id=t HTTP/1.1\r\nAccept: text/event-stream\r\n\r\n";
/// let (req, len) = parse_request(raw, 16 * 1024).unwrap().unwrap();
/// assert_eq!(req.uri().query(), Some("id=t"));
/// assert_eq!(len, raw.len());
/// assert!(parse_request(&raw[..20], 16 * 1024).unwrap().is_none());
/// ```
pub fn parse_request(
    buf: &[u8],
    max_head: usize,
) -> Result<Option<(http::Request<()>, usize)>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let window = &buf[..buf.len().min(max_head)];
    let len = match req.parse(window) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if window.len() >= max_head => {
            return Err(HeadError::TooLarge { limit: max_head });
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HeadError::TooLarge { limit: max_head });
        }
        Err(_) => return Err(HeadError::Malformed("request line or header syntax")),
    };
    let method = Method::from_bytes(req.method.unwrap_or_default().as_bytes())
        .map_err(|_| HeadError::Malformed("method"))?;
    let version = match req.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let mut out = http::Request::builder()
        .method(method)
        .uri(req.path.unwrap_or("/"))
        .version(version)
        .body(())
        .map_err(|_| HeadError::Malformed("request target"))?;
    let map = out.headers_mut();
    for h in req.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| HeadError::Malformed("header name"))?;
        let value =
            HeaderValue::from_bytes(h.value).map_err(|_| HeadError::Malformed("header value"))?;
        map.append(name, value);
    }
    Ok(Some((out, len)))
}

/// The length of the request body: `Content-Length`, or 0 without one.
///
/// Fails for `Transfer-Encoding` (chunked request bodies are not read here) and for a
/// malformed or repeated-and-different `Content-Length`.
pub fn body_length(headers: &HeaderMap) -> Result<usize, HeadError> {
    if headers.contains_key(http::header::TRANSFER_ENCODING) {
        return Err(HeadError::UnsupportedBody);
    }
    let mut len = None;
    for value in headers.get_all(http::header::CONTENT_LENGTH) {
        let n = value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .ok_or(HeadError::Malformed("content-length"))?;
        if len.is_some_and(|l| l != n) {
            return Err(HeadError::Malformed("content-length"));
        }
        len = Some(n);
    }
    Ok(len.unwrap_or(0))
}

/// Whether the client asked to close the connection after this request.
pub fn wants_close<B>(req: &http::Request<B>) -> bool {
    let close = req
        .headers()
        .get_all(http::header::CONNECTION)
        .iter()
        .any(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
    close || req.version() == Version::HTTP_10
}

/// Writes a status line and `headers`, without the blank line that ends the head.
pub fn write_status_and_headers(status: StatusCode, headers: &HeaderMap, buf: &mut BytesMut) {
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
pub fn stream_head(head: &ResponseHead, extra: &HeaderMap, chunked: bool) -> Bytes {
    let mut buf = BytesMut::with_capacity(256);
    head.write_http1(&mut buf);
    put_headers(extra, &mut buf);
    if chunked {
        buf.put_slice(b"transfer-encoding: chunked\r\n");
    }
    buf.put_slice(b"\r\n");
    buf.freeze()
}

/// The 204 answer to a closed session's reconnect, with the core's headers.
pub fn no_content() -> http::Response<Bytes> {
    ResponseHead::no_content().response(Bytes::new())
}

/// Writes a whole response with a fixed body: status line, `headers`, `content-length`,
/// `connection: close` when `close`, and the body.
pub fn write_response(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    close: bool,
    buf: &mut BytesMut,
) {
    write_status_and_headers(status, headers, buf);
    // 1xx, 204 and 304 answers carry no body and no length.
    if !(status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED)
    {
        buf.put_slice(b"content-length: ");
        crate::event::put_decimal(buf, body.len() as u64);
        buf.put_slice(b"\r\n");
    }
    if close {
        buf.put_slice(b"connection: close\r\n");
    }
    buf.put_slice(b"\r\n");
    buf.put_slice(body);
}

/// Frames `batch` as one chunk of a chunked body: size line, the frames, CRLF.
/// Nothing is copied or allocated: the size line is a small inline frame.
pub fn chunk(mut batch: Batch) -> Batch {
    use bytes::Buf;
    // Hex digits of the size, then CRLF: at most 18 bytes.
    let mut line = [0u8; INLINE_CAP];
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
    // `n + 2 <= 18`, which fits in a u8.
    batch.push_front(Frame::inline(line, (n + 2) as u8));
    batch.push(Frame::from_static(b"\r\n"));
    batch
}

/// The end of a chunked body, as a batch.
pub fn last_chunk() -> Batch {
    Batch::from(Bytes::from_static(LAST_CHUNK))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Buf;

    #[test]
    fn parses_heads_and_bounds_them() {
        let raw = b"POST /a?b=c HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc";
        let (req, len) = parse_request(raw, 1024).expect("valid").expect("complete");
        assert_eq!(req.method(), Method::POST);
        assert_eq!(&raw[len..], b"abc");
        assert_eq!(body_length(req.headers()), Ok(3));
        assert!(!wants_close(&req));

        assert!(matches!(
            parse_request(b"GET / HTTP/1.1\r\nHost: x\r\n", 1024),
            Ok(None)
        ));
        let long = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(2000));
        assert_eq!(
            parse_request(long.as_bytes(), 1024).map(|r| r.is_some()),
            Err(HeadError::TooLarge { limit: 1024 })
        );
        assert!(matches!(
            parse_request(b"\x00\x01garbage\r\n\r\n", 1024),
            Err(HeadError::Malformed(_))
        ));
        let many: String = (0..100).map(|i| format!("h{i}: v\r\n")).collect();
        let many = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert_eq!(
            parse_request(many.as_bytes(), 64 * 1024).map(|r| r.is_some()),
            Err(HeadError::TooLarge { limit: 64 * 1024 })
        );
    }

    #[test]
    fn reader_handles_pipelining_split_reads_and_limits() {
        let mut r = RequestReader::new(ReaderLimits {
            max_head: 256,
            max_body: 8,
        });
        let raw = b"POST /a HTTP/1.1\r\ncontent-length: 3\r\n\r\nabcGET /b HTTP/1.1\r\n\r\n";
        let mut got = Vec::new();
        for byte in raw.chunks(1) {
            r.handle_read(byte);
            while let Some(req) = r.poll_request().expect("valid") {
                got.push(req);
            }
        }
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].uri().path(), "/a");
        assert_eq!(got[0].body().as_ref(), b"abc");
        assert_eq!(got[1].uri().path(), "/b");
        assert!(got[1].body().is_empty());
        assert!(!r.is_mid_request());

        r.handle_read(b"POST / HTTP/1.1\r\ncontent-length: 9\r\n\r\n");
        assert_eq!(
            r.poll_request().map(|_| ()),
            Err(HeadError::BodyTooLarge { limit: 8 })
        );
        let mut r = RequestReader::new(ReaderLimits {
            max_head: 64,
            max_body: 8,
        });
        r.handle_read(&[b'A'; 100]);
        assert!(r.poll_request().is_err());
    }

    #[test]
    fn body_length_rules() {
        let mut h = HeaderMap::new();
        assert_eq!(body_length(&h), Ok(0));
        h.append("content-length", HeaderValue::from_static("5"));
        h.append("content-length", HeaderValue::from_static("6"));
        assert!(body_length(&h).is_err());
        let mut h = HeaderMap::new();
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        assert_eq!(body_length(&h), Err(HeadError::UnsupportedBody));
        let mut h = HeaderMap::new();
        h.insert("content-length", HeaderValue::from_static("-1"));
        assert!(body_length(&h).is_err());
    }

    #[test]
    fn writes_responses_and_chunks() {
        let mut buf = BytesMut::new();
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_static("text/plain"));
        write_response(StatusCode::NOT_FOUND, &h, b"nope", true, &mut buf);
        assert_eq!(
            &buf[..],
            &b"HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\ncontent-length: 4\r\nconnection: close\r\n\r\nnope"[..]
        );
        let mut buf = BytesMut::new();
        write_response(
            StatusCode::NO_CONTENT,
            &HeaderMap::new(),
            b"",
            false,
            &mut buf,
        );
        assert_eq!(&buf[..], b"HTTP/1.1 204 No Content\r\n\r\n");

        let mut batch = Batch::from(Bytes::from(vec![b'x'; 300]));
        batch.push(Frame::from_static(b"yz"));
        let mut framed = chunk(batch);
        let bytes = framed.copy_to_bytes(framed.remaining());
        assert!(bytes.starts_with(b"12e\r\nxxx"));
        assert!(bytes.ends_with(b"yz\r\n"));
        assert_eq!(bytes.len(), 5 + 302 + 2);
    }
}

/// Limits of a [`RequestReader`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReaderLimits {
    /// Longest request head, in bytes (default 16 KiB).
    pub max_head: usize,
    /// Longest request body, in bytes (default 1 MiB).
    pub max_body: usize,
}

impl Default for ReaderLimits {
    fn default() -> Self {
        ReaderLimits {
            max_head: DEFAULT_MAX_HEAD,
            max_body: 1 << 20,
        }
    }
}

/// Reads HTTP/1.1 requests (head and `Content-Length` body) from the bytes of one
/// connection, without I/O.
///
/// Feed what the socket gave with [`handle_read`](Self::handle_read), then drain
/// [`poll_request`](Self::poll_request) until `Ok(None)`. Memory is bounded by the limits;
/// an idle reader holds no buffer. After an error the connection should be answered with
/// [`HeadError::status`] and closed.
///
/// ```
/// use sse_proto::http1::{ReaderLimits, RequestReader};
///
/// let mut reader = RequestReader::new(ReaderLimits::default());
/// reader.handle_read(b"POST /broadcast HTTP/1.1\r\nContent-Length: 2\r\n\r\nh");
/// assert!(reader.poll_request().unwrap().is_none());
/// reader.handle_read(b"i");
/// let req = reader.poll_request().unwrap().unwrap();
/// assert_eq!(req.body().as_ref(), b"hi");
/// ```
#[derive(Debug)]
pub struct RequestReader {
    limits: ReaderLimits,
    buf: BytesMut,
    /// A parsed head waiting for `len` bytes of body.
    pending: Option<(http::Request<()>, usize)>,
}

impl RequestReader {
    /// A reader with `limits`.
    pub fn new(limits: ReaderLimits) -> RequestReader {
        RequestReader {
            limits,
            buf: BytesMut::new(),
            pending: None,
        }
    }

    /// The buffer to read the connection into (at least `hint` spare bytes reserved); then
    /// call [`poll_request`](Self::poll_request). An alternative to
    /// [`handle_read`](Self::handle_read) that saves a copy.
    pub fn read_buf(&mut self, hint: usize) -> &mut BytesMut {
        self.buf.reserve(hint);
        &mut self.buf
    }

    /// Takes bytes read from the connection.
    pub fn handle_read(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Whether bytes of an unfinished request are buffered.
    pub fn is_mid_request(&self) -> bool {
        self.pending.is_some() || !self.buf.is_empty()
    }

    /// The next complete request, `Ok(None)` if more bytes are needed.
    pub fn poll_request(&mut self) -> Result<Option<http::Request<Bytes>>, HeadError> {
        if self.pending.is_none() {
            let Some((head, len)) = parse_request(&self.buf, self.limits.max_head)? else {
                if self.buf.len() >= self.limits.max_head {
                    return Err(HeadError::TooLarge {
                        limit: self.limits.max_head,
                    });
                }
                return Ok(None);
            };
            let body_len = body_length(head.headers())?;
            if body_len > self.limits.max_body {
                return Err(HeadError::BodyTooLarge {
                    limit: self.limits.max_body,
                });
            }
            let _ = self.buf.split_to(len);
            self.pending = Some((head, body_len));
        }
        let Some((_, body_len)) = &self.pending else {
            return Ok(None);
        };
        if self.buf.len() < *body_len {
            self.buf.reserve(*body_len - self.buf.len());
            return Ok(None);
        }
        let body = self.buf.split_to(*body_len).freeze();
        if self.buf.is_empty() {
            // Give the memory back between requests: an idle connection holds nothing.
            self.buf = BytesMut::new();
        }
        Ok(self.pending.take().map(|(head, _)| head.map(|()| body)))
    }
}
