//! The request head: parsing it with `httparse` and the header rules that decide whether a
//! request is acceptable and how its body is framed.

use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Version, header};

use super::error::HeadError;

/// Default limit on a request head, in bytes.
pub(super) const DEFAULT_MAX_HEAD: usize = 16 * 1024;
/// Most header lines read from one request.
pub const MAX_HEADERS: usize = 64;

/// How the body of a request is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BodyFraming {
    /// Exactly this many bytes follow the head (`Content-Length`, or 0 without one).
    Length(u64),
    /// A chunked body follows (`Transfer-Encoding: chunked`, RFC 9112 §7.1).
    Chunked,
}

/// Parses a request head from the start of `buf`.
///
/// Returns `Ok(None)` when the head is not complete yet (read more, unless `buf` already
/// holds `max_head` bytes, which is then [`HeadError::TooLarge`]), or the request and the
/// number of bytes the head took; what follows is the body. Only the syntax is checked here;
/// [`check_head`] applies the header rules.
pub(super) fn parse_request(
    buf: &[u8],
    max_head: usize,
) -> Result<Option<(Request<()>, usize)>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let window = &buf[..buf.len().min(max_head)];
    // httparse accepts a bare LF as a line end and skips empty lines before the request
    // line, as RFC 9112 §2.2 allows; it refuses obs-fold in requests (RFC 9112 §5.2).
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
    let mut out = Request::builder()
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

/// Applies the header rules to a parsed head and says how its body is framed.
///
/// In order: `Host` (RFC 9112 §3.2), the body framing of [`body_framing`], and `Expect`
/// (RFC 9110 §10.1.1). Returns the framing and whether the client waits for
/// `100 Continue` before sending a body ([`expects_continue`]).
pub(super) fn check_head(req: &Request<()>) -> Result<(BodyFraming, bool), HeadError> {
    check_host(req)?;
    let framing = body_framing(req)?;
    let expect = expects_continue(req)?;
    Ok((framing, expect && framing != BodyFraming::Length(0)))
}

/// The `Host` rules of RFC 9112 §3.2: an HTTP/1.1 request needs one `Host` line, no request
/// may have two, and the value must be `host[:port]` (or empty).
///
/// "A server MUST respond with a 400 (Bad Request) status code to any HTTP/1.1 request
/// message that lacks a Host header field and to any request message that contains more than
/// one Host header field line or a Host header field with an invalid field value."
pub(super) fn check_host(req: &Request<()>) -> Result<(), HeadError> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (None, _) if req.version() == Version::HTTP_10 => Ok(()),
        (None, _) => Err(HeadError::MissingHost),
        (Some(_), Some(_)) => Err(HeadError::BadHost),
        (Some(host), None) => {
            let value = host.as_bytes();
            // Empty is allowed when the target has no authority (RFC 9112 §3.2); userinfo
            // is not part of Host (RFC 9110 §7.2).
            let valid = value.is_empty() || (!value.contains(&b'@') && is_host_and_port(value));
            if valid {
                Ok(())
            } else {
                Err(HeadError::BadHost)
            }
        }
    }
}

/// `uri-host [ ":" port ]` (RFC 9110 §7.2, RFC 3986 §3.2.2): a host the `http` crate accepts,
/// then nothing or a colon and digits.
fn is_host_and_port(value: &[u8]) -> bool {
    let Ok(authority) = http::uri::Authority::try_from(value) else {
        return false;
    };
    let host = authority.host().len();
    match value.get(host..) {
        Some([]) => host > 0,
        Some([b':', port @ ..]) => host > 0 && port.iter().all(u8::is_ascii_digit),
        _ => false,
    }
}

/// How the request body is delimited, by the rules of RFC 9112 §6.3 for requests.
///
/// - `Transfer-Encoding` on HTTP/1.0 is faulty framing (RFC 9112 §6.1): 400.
/// - `Transfer-Encoding` with `Content-Length` is refused (RFC 9112 §6.1 and §6.3 item 3
///   allow rejecting it; it is the classic request-smuggling vector): 400.
/// - `Transfer-Encoding` whose codings are exactly `chunked` is a chunked body.
/// - A final coding other than `chunked` leaves the length unknown (RFC 9112 §6.3 item 4:
///   "the server MUST respond with the 400 (Bad Request) status code"), and so does
///   `chunked` applied twice (RFC 9112 §6.1: "MUST NOT apply chunked more than once").
/// - Other codings before the final `chunked` are codings this reader does not decode:
///   501, as RFC 9112 §6.1 says ("SHOULD respond with 501 (Not Implemented)").
/// - Otherwise `Content-Length` ([`content_length`]), or no body.
pub(super) fn body_framing(req: &Request<()>) -> Result<BodyFraming, HeadError> {
    let headers = req.headers();
    if !headers.contains_key(header::TRANSFER_ENCODING) {
        return content_length(headers).map(|n| BodyFraming::Length(n.unwrap_or(0)));
    }
    if req.version() == Version::HTTP_10 {
        return Err(HeadError::BadTransferEncoding);
    }
    if headers.contains_key(header::CONTENT_LENGTH) {
        return Err(HeadError::LengthAndTransferEncoding);
    }
    // The codings of every line, in order; empty list elements are ignored
    // (RFC 9110 §5.6.1).
    let mut codings = Vec::new();
    for line in headers.get_all(header::TRANSFER_ENCODING) {
        let line = line.to_str().map_err(|_| HeadError::BadTransferEncoding)?;
        codings.extend(line.split(',').map(str::trim).filter(|c| !c.is_empty()));
    }
    let chunked = |c: &&str| c.eq_ignore_ascii_case("chunked");
    match codings.split_last() {
        Some((last, rest)) if chunked(last) => {
            if rest.iter().any(chunked) {
                Err(HeadError::BadTransferEncoding)
            } else if rest.is_empty() {
                Ok(BodyFraming::Chunked)
            } else {
                Err(HeadError::UnsupportedTransferCoding)
            }
        }
        _ => Err(HeadError::BadTransferEncoding),
    }
}

/// The value of `Content-Length`, `None` without one.
///
/// Each line must be `1*DIGIT` (RFC 9110 §8.6: no sign, no spaces inside, no hex, not
/// empty). Several lines with the same value count as one; lines that differ, and
/// comma-separated lists, are refused (RFC 9110 §8.6 allows either rejecting a list or
/// collapsing it; hyper rejects it, and so do we). A number too large for `u64` is refused
/// as malformed rather than overflowing.
pub(super) fn content_length(headers: &HeaderMap) -> Result<Option<u64>, HeadError> {
    let mut len = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        let n = parse_digits(value.as_bytes()).ok_or(HeadError::BadContentLength)?;
        if len.is_some_and(|l| l != n) {
            return Err(HeadError::BadContentLength);
        }
        len = Some(n);
    }
    Ok(len)
}

/// `1*DIGIT` as a `u64`, `None` if empty, not all digits, or too large.
fn parse_digits(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() {
        return None;
    }
    bytes.iter().try_fold(0u64, |n, &b| {
        if b.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

/// The length of the request body: `Content-Length`, or 0 without one.
///
/// Fails for `Transfer-Encoding` ([`HeadError::UnsupportedBody`]: this function does not
/// read chunked bodies; [`RequestReader`](super::RequestReader) does) and for a malformed
/// or repeated-and-different `Content-Length`.
#[cfg(test)]
pub(super) fn body_length(headers: &HeaderMap) -> Result<usize, HeadError> {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return Err(HeadError::UnsupportedBody);
    }
    let len = content_length(headers)?.unwrap_or(0);
    usize::try_from(len).map_err(|_| HeadError::BadContentLength)
}

/// Whether the client waits for `100 Continue` before it sends the body.
///
/// RFC 9110 §10.1.1: `100-continue` (case-insensitive) is the only expectation defined;
/// another one is refused with 417. An HTTP/1.0 request's `Expect` is ignored ("A server
/// that receives a 100-continue expectation in an HTTP/1.0 request MUST ignore that
/// expectation"; `Expect` is an HTTP/1.1 field).
pub(super) fn expects_continue(req: &Request<()>) -> Result<bool, HeadError> {
    if req.version() == Version::HTTP_10 {
        return Ok(false);
    }
    let mut expect = false;
    for line in req.headers().get_all(header::EXPECT) {
        for member in line.as_bytes().split(|&b| b == b',') {
            let member = member.trim_ascii();
            if member.eq_ignore_ascii_case(b"100-continue") {
                expect = true;
            } else if !member.is_empty() {
                return Err(HeadError::ExpectationFailed);
            }
        }
    }
    Ok(expect)
}

/// Whether the client asked to close the connection after this request: a `close` option
/// in any `Connection` line (a comma-separated list, RFC 9110 §7.6.1), or HTTP/1.0.
///
/// HTTP/1.0 `keep-alive` is not honoured (RFC 9112 §9.3 leaves that to the server), so an
/// HTTP/1.0 request is always the last on its connection.
pub fn wants_close<B>(req: &Request<B>) -> bool {
    let close = req.headers().get_all(header::CONNECTION).iter().any(|v| {
        v.as_bytes()
            .split(|&b| b == b',')
            .any(|option| option.trim_ascii().eq_ignore_ascii_case(b"close"))
    });
    close || req.version() == Version::HTTP_10
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str) -> Request<()> {
        let raw = raw.replace('\n', "\r\n") + "\r\n";
        parse_request(raw.as_bytes(), 8192)
            .expect("valid syntax")
            .expect("complete")
            .0
    }

    #[test]
    fn host_rules() {
        let cases: &[(&str, Result<(), HeadError>)] = &[
            ("GET / HTTP/1.1\nHost: a\n", Ok(())),
            ("GET / HTTP/1.1\nHost: a.example:8080\n", Ok(())),
            ("GET / HTTP/1.1\nHost: [::1]:80\n", Ok(())),
            ("GET / HTTP/1.1\nHost:\n", Ok(())),
            ("GET / HTTP/1.0\n", Ok(())),
            ("GET / HTTP/1.1\n", Err(HeadError::MissingHost)),
            ("GET http://a/ HTTP/1.1\n", Err(HeadError::MissingHost)),
            (
                "GET / HTTP/1.1\nHost: a\nHost: a\n",
                Err(HeadError::BadHost),
            ),
            (
                "GET / HTTP/1.0\nHost: a\nHost: b\n",
                Err(HeadError::BadHost),
            ),
            ("GET / HTTP/1.1\nHost: u@a\n", Err(HeadError::BadHost)),
            ("GET / HTTP/1.1\nHost: a b\n", Err(HeadError::BadHost)),
            ("GET / HTTP/1.1\nHost: a:port\n", Err(HeadError::BadHost)),
        ];
        for (raw, want) in cases {
            assert_eq!(check_host(&head(raw)), *want, "{raw:?}");
        }
    }

    #[test]
    fn content_length_grammar() {
        let ok: &[(&[&str], Option<u64>)] = &[
            (&[], None),
            (&["0"], Some(0)),
            (&["3"], Some(3)),
            (&["007"], Some(7)),
            (&["3", "3"], Some(3)),
            (&["18446744073709551615"], Some(u64::MAX)),
        ];
        for (values, want) in ok {
            let mut h = HeaderMap::new();
            for v in *values {
                h.append(header::CONTENT_LENGTH, HeaderValue::from_static(v));
            }
            assert_eq!(content_length(&h), Ok(*want), "{values:?}");
        }
        let bad: &[&[&str]] = &[
            &["+3"],
            &["-1"],
            &[" 3 3"],
            &["3 3"],
            &["0x10"],
            &[""],
            &["3, 3"],
            &["3,4"],
            &["3", "4"],
            &["1e3"],
            &["18446744073709551616"],
        ];
        for values in bad {
            let mut h = HeaderMap::new();
            for v in *values {
                h.append(header::CONTENT_LENGTH, HeaderValue::from_static(v));
            }
            assert_eq!(
                content_length(&h),
                Err(HeadError::BadContentLength),
                "{values:?}"
            );
        }
    }

    #[test]
    fn framing_rules() {
        use BodyFraming::*;
        let cases: &[(&str, Result<BodyFraming, HeadError>)] = &[
            ("POST / HTTP/1.1\nHost: a\n", Ok(Length(0))),
            (
                "POST / HTTP/1.1\nHost: a\nContent-Length: 5\n",
                Ok(Length(5)),
            ),
            ("POST / HTTP/1.1\nTransfer-Encoding: chunked\n", Ok(Chunked)),
            ("POST / HTTP/1.1\nTransfer-Encoding: Chunked\n", Ok(Chunked)),
            (
                "POST / HTTP/1.1\nTransfer-Encoding: chunked,\n",
                Ok(Chunked),
            ),
            (
                "POST / HTTP/1.1\nTransfer-Encoding: , chunked\n",
                Ok(Chunked),
            ),
            (
                "POST / HTTP/1.1\nTransfer-Encoding: chunked\nContent-Length: 3\n",
                Err(HeadError::LengthAndTransferEncoding),
            ),
            (
                "POST / HTTP/1.1\nContent-Length: 3\nTransfer-Encoding: chunked\n",
                Err(HeadError::LengthAndTransferEncoding),
            ),
            (
                "POST / HTTP/1.0\nTransfer-Encoding: chunked\n",
                Err(HeadError::BadTransferEncoding),
            ),
            (
                "POST / HTTP/1.1\nTransfer-Encoding: gzip\n",
                Err(HeadError::BadTransferEncoding),
            ),
            (
                "POST / HTTP/1.1\nTransfer-Encoding: chunked, gzip\n",
                Err(HeadError::BadTransferEncoding),
            ),
            (
                "POST / HTTP/1.1\nTransfer-Encoding: chunked\nTransfer-Encoding: chunked\n",
                Err(HeadError::BadTransferEncoding),
            ),
            (
                "POST / HTTP/1.1\nTransfer-Encoding: chunked;q=1\n",
                Err(HeadError::BadTransferEncoding),
            ),
            (
                "POST / HTTP/1.1\nTransfer-Encoding:\n",
                Err(HeadError::BadTransferEncoding),
            ),
            (
                "POST / HTTP/1.1\nTransfer-Encoding: gzip, chunked\n",
                Err(HeadError::UnsupportedTransferCoding),
            ),
            (
                "POST / HTTP/1.1\nTransfer-Encoding: gzip\nTransfer-Encoding: chunked\n",
                Err(HeadError::UnsupportedTransferCoding),
            ),
            (
                "POST / HTTP/1.1\nContent-Length: +3\n",
                Err(HeadError::BadContentLength),
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(body_framing(&head(raw)), *want, "{raw:?}");
        }
    }

    #[test]
    fn expect_rules() {
        let cases: &[(&str, Result<bool, HeadError>)] = &[
            ("POST / HTTP/1.1\n", Ok(false)),
            ("POST / HTTP/1.1\nExpect: 100-continue\n", Ok(true)),
            ("POST / HTTP/1.1\nExpect: 100-Continue\n", Ok(true)),
            ("POST / HTTP/1.1\nExpect: 100-continue,\n", Ok(true)),
            ("POST / HTTP/1.0\nExpect: 100-continue\n", Ok(false)),
            ("POST / HTTP/1.0\nExpect: fly\n", Ok(false)),
            (
                "POST / HTTP/1.1\nExpect: fly\n",
                Err(HeadError::ExpectationFailed),
            ),
            (
                "POST / HTTP/1.1\nExpect: 100-continue, fly\n",
                Err(HeadError::ExpectationFailed),
            ),
            (
                "POST / HTTP/1.1\nExpect: 200-ok\n",
                Err(HeadError::ExpectationFailed),
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(expects_continue(&head(raw)), *want, "{raw:?}");
        }
        // Only a request with a body waits for 100 Continue.
        let get = head("GET / HTTP/1.1\nHost: a\nExpect: 100-continue\n");
        assert_eq!(check_head(&get), Ok((BodyFraming::Length(0), false)));
        let post = head("POST / HTTP/1.1\nHost: a\nExpect: 100-continue\nContent-Length: 1\n");
        assert_eq!(check_head(&post), Ok((BodyFraming::Length(1), true)));
    }

    #[test]
    fn connection_close_is_a_list() {
        for (raw, close) in [
            ("GET / HTTP/1.1\nHost: a\n", false),
            ("GET / HTTP/1.1\nHost: a\nConnection: close\n", true),
            (
                "GET / HTTP/1.1\nHost: a\nConnection: keep-alive, Close\n",
                true,
            ),
            ("GET / HTTP/1.1\nHost: a\nConnection: keep-alive\n", false),
            ("GET / HTTP/1.1\nHost: a\nConnection: closed\n", false),
            ("GET / HTTP/1.0\nConnection: keep-alive\n", true),
        ] {
            assert_eq!(wants_close(&head(raw)), close, "{raw:?}");
        }
    }
}
