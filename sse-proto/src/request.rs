//! The request as the handshake reads it, and the response heads it answers with.

use bytes::{BufMut, BytesMut};

/// The HTTP version of the request, which decides the response headers.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HttpVersion {
    /// HTTP/1.0.
    Http10,
    /// HTTP/1.1.
    #[default]
    Http11,
    /// HTTP/2: connection-specific headers such as `Connection` are forbidden.
    Http2,
    /// HTTP/3: as HTTP/2.
    Http3,
}

impl HttpVersion {
    /// Whether this is HTTP/1.0 or HTTP/1.1.
    pub fn is_http1(self) -> bool {
        matches!(self, HttpVersion::Http10 | HttpVersion::Http11)
    }
}

/// A borrowed view of what the handshake reads from a request: method, request target
/// (path and query), HTTP version and two headers. Building it allocates nothing.
///
/// ```
/// use sse_proto::{HttpVersion, Request};
///
/// let mut req = Request::new(b"GET", b"/events?id=tab-1", HttpVersion::Http11);
/// req.header(b"Accept", b"text/event-stream");
/// assert!(req.is_event_stream());
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub(crate) method: &'a [u8],
    target: &'a [u8],
    pub(crate) version: HttpVersion,
    pub(crate) accepts: bool,
    pub(crate) last_event_id: Option<&'a [u8]>,
    pub(crate) principal: Option<&'a [u8]>,
}

impl<'a> Request<'a> {
    /// A request with `method` and `target` (`/path?query`, or an absolute URI).
    pub fn new(method: &'a [u8], target: &'a [u8], version: HttpVersion) -> Request<'a> {
        Request {
            method,
            target,
            version,
            accepts: false,
            last_event_id: None,
            principal: None,
        }
    }

    /// Names the principal the application authenticated for this request (its logged-in
    /// user): with signed ids, ids are issued to it and refused for anyone else.
    pub fn principal(&mut self, principal: &'a [u8]) -> &mut Request<'a> {
        self.principal = Some(principal);
        self
    }

    /// Offers one header; names are matched case-insensitively and unknown ones ignored.
    /// Call once per header line, repeated headers included.
    pub fn header(&mut self, name: &[u8], value: &'a [u8]) -> &mut Request<'a> {
        if name.eq_ignore_ascii_case(b"accept") {
            self.accepts |= accepts_event_stream(value);
        } else if name.eq_ignore_ascii_case(b"last-event-id") && self.last_event_id.is_none() {
            self.last_event_id = Some(value);
        }
        self
    }

    /// The HTTP version.
    pub fn version(&self) -> HttpVersion {
        self.version
    }

    /// Whether this is a `GET` whose `Accept` lists `text/event-stream` with q > 0.
    pub fn is_event_stream(&self) -> bool {
        self.method == b"GET" && self.accepts
    }

    /// The principal, if the application named one.
    pub fn principal_value(&self) -> Option<&'a [u8]> {
        self.principal
    }

    /// The raw `Last-Event-ID` value, if the header was present.
    pub fn last_event_id(&self) -> Option<&'a [u8]> {
        self.last_event_id
    }

    /// The raw (still percent-encoded) value of the first `id` query parameter.
    pub fn query_id(&self) -> Option<&'a [u8]> {
        self.query_values(b"id").next()
    }

    /// The raw (still percent-encoded) values of the `topic` query parameters, in order:
    /// the topics the tab asks for (see [`HubBuilder::topic_rule`](crate::HubBuilder::topic_rule)).
    ///
    /// ```
    /// use sse_proto::{HttpVersion, Request};
    ///
    /// let req = Request::new(b"GET", b"/events?topic=news&id=t&topic=room-1", HttpVersion::Http11);
    /// assert_eq!(req.query_topics().collect::<Vec<_>>(), [&b"news"[..], b"room-1"]);
    /// ```
    pub fn query_topics(&self) -> impl Iterator<Item = &'a [u8]> + use<'a> {
        self.query_values(b"topic")
    }

    /// The raw values of the query parameters named `name` (a parameter without `=` has an
    /// empty value).
    fn query_values(&self, name: &'static [u8]) -> impl Iterator<Item = &'a [u8]> + use<'a> {
        let query = match self.target.iter().position(|&b| b == b'?') {
            Some(q) => &self.target[q + 1..],
            None => &[][..],
        };
        let query = match query.iter().position(|&b| b == b'#') {
            Some(h) => &query[..h],
            None => query,
        };
        query
            .split(|&b| b == b'&')
            .filter(|pair| !pair.is_empty())
            .filter_map(move |pair| {
                let rest = pair.strip_prefix(name)?;
                match rest {
                    [] => Some(rest),
                    [b'=', value @ ..] => Some(value),
                    _ => None,
                }
            })
    }
}

/// Whether one `Accept` header value lists `text/event-stream` with a q-value above zero.
fn accepts_event_stream(value: &[u8]) -> bool {
    value.split(|&b| b == b',').any(|range| {
        let mut parts = range.split(|&b| b == b';');
        let media = parts.next().map(|m| m.trim_ascii()).unwrap_or_default();
        if !media.eq_ignore_ascii_case(b"text/event-stream") {
            return false;
        }
        let mut q_positive = true;
        for param in parts {
            let param = param.trim_ascii();
            if param.len() >= 2 && param[..2].eq_ignore_ascii_case(b"q=") {
                q_positive = q_is_positive(param[2..].trim_ascii());
            }
        }
        q_positive
    })
}

/// Reads a q-value (`0`, `0.5`, `1`, `1.000`): `false` for zero or a malformed value.
fn q_is_positive(q: &[u8]) -> bool {
    match q {
        [b'1'] => true,
        [b'1', b'.', rest @ ..] => rest.len() <= 3 && rest.iter().all(|&b| b == b'0'),
        [b'0'] => false,
        [b'0', b'.', rest @ ..] => {
            rest.len() <= 3
                && rest.iter().all(u8::is_ascii_digit)
                && rest.iter().any(|&b| b != b'0')
        }
        _ => false,
    }
}

/// The principal an application authenticated for a request: its logged-in user, as bytes
/// of its choosing (a user id). With signed ids, a session id is issued to one principal and
/// refused for any other.
///
/// The adapters read it from the `http::Request`'s extensions, where the application's auth
/// middleware puts it (this example needs the feature `http`):
///
#[cfg_attr(feature = "http", doc = "```")]
#[cfg_attr(not(feature = "http"), doc = "```ignore")]
/// use sse_proto::{Principal, Request};
///
/// let mut req = http::Request::new(());
/// req.extensions_mut().insert(Principal::new("user-42"));
/// assert_eq!(Request::from(&req).principal_value(), Some(&b"user-42"[..]));
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Principal(std::sync::Arc<[u8]>);

impl Principal {
    /// A principal named by these bytes.
    pub fn new(name: impl AsRef<[u8]>) -> Principal {
        Principal(std::sync::Arc::from(name.as_ref()))
    }

    /// The bytes that name it.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Principal({:?})", String::from_utf8_lossy(&self.0))
    }
}

/// The status and headers of a response the adapter writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHead {
    status: u16,
    headers: &'static [(&'static str, &'static str)],
}

const STREAM_HEADERS_H1: &[(&str, &str)] = &[
    ("content-type", "text/event-stream"),
    ("cache-control", "no-cache, no-transform"),
    ("x-accel-buffering", "no"),
    ("connection", "keep-alive"),
];

const GO_AWAY_HEADERS_H1: &[(&str, &str)] = &[
    ("content-type", "text/event-stream"),
    ("cache-control", "no-cache, no-transform"),
    ("x-accel-buffering", "no"),
    ("connection", "close"),
];

const NO_CONTENT_HEADERS: &[(&str, &str)] = &[("cache-control", "no-cache, no-transform")];

const BAD_REQUEST_HEADERS: &[(&str, &str)] = &[
    ("content-type", "text/plain; charset=utf-8"),
    ("cache-control", "no-store"),
];

impl ResponseHead {
    /// The head of an accepted event stream for `version`: `Connection: keep-alive` is sent
    /// on HTTP/1.x only, where HTTP/2 forbids it.
    pub fn event_stream(version: HttpVersion) -> ResponseHead {
        let headers = if version.is_http1() {
            STREAM_HEADERS_H1
        } else {
            &STREAM_HEADERS_H1[..3]
        };
        ResponseHead {
            status: 200,
            headers,
        }
    }

    /// The head of an event stream that ends at once, sent by a hub that is shutting down
    /// (see [`Decision::GoAway`](crate::Decision::GoAway)): `Connection: close` on HTTP/1.x,
    /// so the browser's reconnect opens a new connection, which a load balancer can send
    /// elsewhere.
    pub fn go_away(version: HttpVersion) -> ResponseHead {
        let headers = if version.is_http1() {
            GO_AWAY_HEADERS_H1
        } else {
            &GO_AWAY_HEADERS_H1[..3]
        };
        ResponseHead {
            status: 200,
            headers,
        }
    }

    /// The head of a 204 No Content answer to a closed session, which stops the browser.
    pub fn no_content() -> ResponseHead {
        ResponseHead {
            status: 204,
            headers: NO_CONTENT_HEADERS,
        }
    }

    /// The head of a 400 Bad Request answer to a malformed event-stream request (see
    /// [`Decision::BadRequest`](crate::Decision::BadRequest)): plain text saying why. An
    /// `EventSource` does not reconnect after it.
    pub fn bad_request() -> ResponseHead {
        ResponseHead {
            status: 400,
            headers: BAD_REQUEST_HEADERS,
        }
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The headers, names in lower case.
    pub fn headers(&self) -> &'static [(&'static str, &'static str)] {
        self.headers
    }

    /// Writes the status line and headers as HTTP/1.1, without the blank line that ends the
    /// head, so an adapter can append its caller's headers first.
    pub fn write_http1(&self, buf: &mut BytesMut) {
        buf.put_slice(match self.status {
            204 => b"HTTP/1.1 204 No Content\r\n",
            400 => b"HTTP/1.1 400 Bad Request\r\n",
            _ => b"HTTP/1.1 200 OK\r\n",
        });
        for (name, value) in self.headers {
            buf.put_slice(name.as_bytes());
            buf.put_slice(b": ");
            buf.put_slice(value.as_bytes());
            buf.put_slice(b"\r\n");
        }
    }
}

#[cfg(feature = "http")]
mod http_impl {
    use super::{HttpVersion, Principal, Request, ResponseHead};

    impl ResponseHead {
        /// This head as an `http::Response` carrying `body` (what the hyper adapter returns,
        /// and the 204 of the socket adapters).
        pub fn response<B>(&self, body: B) -> http::Response<B> {
            let mut res = http::Response::new(body);
            *res.status_mut() =
                http::StatusCode::from_u16(self.status).unwrap_or(http::StatusCode::OK);
            let headers = res.headers_mut();
            for (name, value) in self.headers {
                headers.insert(*name, http::HeaderValue::from_static(value));
            }
            res
        }
    }

    impl From<http::Version> for HttpVersion {
        fn from(v: http::Version) -> HttpVersion {
            match v {
                http::Version::HTTP_10 | http::Version::HTTP_09 => HttpVersion::Http10,
                http::Version::HTTP_2 => HttpVersion::Http2,
                http::Version::HTTP_3 => HttpVersion::Http3,
                _ => HttpVersion::Http11,
            }
        }
    }

    impl<'a> From<&'a http::request::Parts> for Request<'a> {
        fn from(parts: &'a http::request::Parts) -> Request<'a> {
            let mut req =
                Request::from_http(&parts.method, &parts.uri, parts.version, &parts.headers);
            if let Some(p) = parts.extensions.get::<Principal>() {
                req.principal(p.as_bytes());
            }
            req
        }
    }

    /// Reads the method, target, version, `Accept` and `Last-Event-ID`, and the
    /// [`Principal`] in the request's extensions, if the application put one there.
    impl<'a, B> From<&'a http::Request<B>> for Request<'a> {
        fn from(req: &'a http::Request<B>) -> Request<'a> {
            let mut view =
                Request::from_http(req.method(), req.uri(), req.version(), req.headers());
            if let Some(p) = req.extensions().get::<Principal>() {
                view.principal(p.as_bytes());
            }
            view
        }
    }

    impl<'a> Request<'a> {
        fn from_http(
            method: &'a http::Method,
            uri: &'a http::Uri,
            version: http::Version,
            headers: &'a http::HeaderMap,
        ) -> Request<'a> {
            let target = uri
                .path_and_query()
                .map_or(uri.path(), |pq| pq.as_str())
                .as_bytes();
            let mut req = Request::new(method.as_str().as_bytes(), target, version.into());
            for value in headers.get_all(http::header::ACCEPT) {
                req.header(b"accept", value.as_bytes());
            }
            if let Some(value) = headers.get("last-event-id") {
                req.header(b"last-event-id", value.as_bytes());
            }
            req
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_header_rules() {
        let yes: &[&[u8]] = &[
            b"text/event-stream",
            b"TEXT/Event-Stream",
            b"text/html, text/event-stream;q=0.5",
            b"text/event-stream; charset=utf-8",
            b" text/event-stream ;q=1.0",
            b"text/event-stream;Q=0.001",
        ];
        for v in yes {
            assert!(accepts_event_stream(v), "{}", String::from_utf8_lossy(v));
        }
        let no: &[&[u8]] = &[
            b"",
            b"*/*",
            b"text/*",
            b"text/html",
            b"text/event-stream;q=0",
            b"text/event-stream;q=0.000",
            b"text/event-stream;q=abc",
            b"text/event-stream;q=2",
            b"text/event-streams",
        ];
        for v in no {
            assert!(!accepts_event_stream(v), "{}", String::from_utf8_lossy(v));
        }
    }

    #[test]
    fn http1_head_bytes() {
        let mut buf = BytesMut::new();
        ResponseHead::no_content().write_http1(&mut buf);
        assert_eq!(
            &buf[..],
            b"HTTP/1.1 204 No Content\r\ncache-control: no-cache, no-transform\r\n"
        );
    }

    #[test]
    fn http2_head_has_no_connection_header() {
        let head = ResponseHead::event_stream(HttpVersion::Http2);
        assert!(head.headers().iter().all(|(n, _)| *n != "connection"));
        assert!(
            head.headers()
                .contains(&("content-type", "text/event-stream"))
        );
        let head = ResponseHead::event_stream(HttpVersion::Http11);
        assert!(head.headers().contains(&("connection", "keep-alive")));
    }

    #[test]
    fn query_id_edge_cases() {
        let q = |t: &'static [u8]| Request::new(b"GET", t, HttpVersion::Http11).query_id();
        assert_eq!(q(b"/e"), None);
        assert_eq!(q(b"/e?ids=1&xid=2"), None);
        assert_eq!(q(b"/e?id=1&id=2"), Some(&b"1"[..]));
        assert_eq!(q(b"/e?a&id=x#frag"), Some(&b"x"[..]));
        assert_eq!(q(b"http://h/e?id=abs"), Some(&b"abs"[..]));
    }
}
