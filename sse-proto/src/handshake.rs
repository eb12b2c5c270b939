//! The handshake: from a borrowed request head to a [`Decision`] the adapter acts on.

use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};

use crate::closed::ClosedSet;
use crate::event::put_decimal;
use crate::frame::Frame;
use crate::id::{DEFAULT_MAX_ID_LEN, IdGenerator, IdSource, RejectedId, SessionId};

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
    method: &'a [u8],
    target: &'a [u8],
    version: HttpVersion,
    accepts: bool,
    last_event_id: Option<&'a [u8]>,
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
        }
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

    /// The raw `Last-Event-ID` value, if the header was present.
    pub fn last_event_id(&self) -> Option<&'a [u8]> {
        self.last_event_id
    }

    /// The raw (still percent-encoded) value of the first `id` query parameter.
    pub fn query_id(&self) -> Option<&'a [u8]> {
        let q = self.target.iter().position(|&b| b == b'?')?;
        let query = &self.target[q + 1..];
        let query = match query.iter().position(|&b| b == b'#') {
            Some(h) => &query[..h],
            None => query,
        };
        query.split(|&b| b == b'&').find_map(|pair| match pair {
            [b'i', b'd'] => Some(&pair[2..]),
            [b'i', b'd', b'=', rest @ ..] => Some(rest),
            _ => None,
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

const NO_CONTENT_HEADERS: &[(&str, &str)] = &[("cache-control", "no-cache, no-transform")];

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

    /// The head of a 204 No Content answer to a closed session, which stops the browser.
    pub fn no_content() -> ResponseHead {
        ResponseHead {
            status: 204,
            headers: NO_CONTENT_HEADERS,
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

/// Why a request is not an event-stream request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotEventStream {
    /// The method is not `GET`.
    Method,
    /// `Accept` does not list `text/event-stream` with q > 0.
    Accept,
}

/// An accepted event stream: the session, and what to write before any event.
#[derive(Debug, Clone)]
pub struct Accept {
    /// The resolved session id.
    pub session: SessionId,
    /// Where the id came from.
    pub source: IdSource,
    /// Client ids that were offered and refused, with the reason, for logs.
    pub rejected: Vec<RejectedId>,
    /// The response head to send.
    pub head: ResponseHead,
    /// The bytes to send right after the head: `retry:` and `id:` then a blank line, which
    /// sets the browser's last event id without dispatching an event.
    pub preamble: Frame,
    /// The reconnection delay sent in the preamble (jitter included).
    pub retry: Duration,
}

impl Accept {
    /// Whether no valid client id was used: the id was generated for this connection.
    pub fn is_new(&self) -> bool {
        self.source == IdSource::Generated
    }
}

/// What the adapter must do with a request.
#[must_use]
#[derive(Debug, Clone)]
pub enum Decision {
    /// Not an event-stream request: give it back to the application's routing.
    NotEventStream(NotEventStream),
    /// The session was closed by the server: answer [`ResponseHead::no_content`] and stop.
    NoContent {
        /// The closed id that came back.
        session: SessionId,
        /// Where it came from.
        source: IdSource,
    },
    /// Serve an event stream.
    Accept(Accept),
}

/// Handshake settings: reconnection delay, its jitter, and the longest client id accepted.
///
/// ```
/// use std::time::{Duration, Instant};
/// use sse_proto::{Decision, Handshake, HttpVersion, MemoryClosedSet, Request, UuidV4};
///
/// let handshake = Handshake::new().retry(Duration::from_secs(2));
/// let mut closed = MemoryClosedSet::default();
/// let mut req = Request::new(b"GET", b"/events?id=tab-7", HttpVersion::Http11);
/// req.header(b"accept", b"text/event-stream");
/// match handshake.decide(&req, &mut closed, &UuidV4, Instant::now()) {
///     Decision::Accept(a) => {
///         assert_eq!(a.session.as_str(), "tab-7");
///         assert_eq!(a.preamble.to_bytes(), &b"retry: 2000\nid: tab-7\n\n"[..]);
///     }
///     other => panic!("{other:?}"),
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handshake {
    retry: Duration,
    jitter: Duration,
    max_id_len: usize,
}

impl Default for Handshake {
    fn default() -> Self {
        Handshake::new()
    }
}

impl Handshake {
    /// Defaults: retry 3 s, no jitter, ids of at most 128 bytes.
    pub fn new() -> Handshake {
        Handshake {
            retry: Duration::from_secs(3),
            jitter: Duration::ZERO,
            max_id_len: DEFAULT_MAX_ID_LEN,
        }
    }

    /// Sets the reconnection delay sent to each browser.
    pub fn retry(mut self, retry: Duration) -> Handshake {
        self.retry = retry;
        self
    }

    /// Adds up to `jitter` to each connection's delay, derived from its id (stable per
    /// session, spread across sessions), so a restart does not bring every tab back at once.
    pub fn jitter(mut self, jitter: Duration) -> Handshake {
        self.jitter = jitter;
        self
    }

    /// Sets the longest client id accepted, in bytes.
    pub fn max_id_len(mut self, max: usize) -> Handshake {
        self.max_id_len = max;
        self
    }

    /// The longest client id accepted, in bytes.
    pub fn max_id_len_value(&self) -> usize {
        self.max_id_len
    }

    /// Decides what to do with `req`.
    ///
    /// The id is resolved as `Last-Event-ID`, else `?id=` (percent-decoded), else a fresh one
    /// from `ids`; an invalid client id counts as absent and is listed in
    /// [`Accept::rejected`]. A client id that `closed` holds gets [`Decision::NoContent`]
    /// (which may consume the mark, per the set's policy).
    pub fn decide(
        &self,
        req: &Request<'_>,
        closed: &mut dyn ClosedSet,
        ids: &dyn IdGenerator,
        now: Instant,
    ) -> Decision {
        if req.method != b"GET" {
            return Decision::NotEventStream(NotEventStream::Method);
        }
        if !req.accepts {
            return Decision::NotEventStream(NotEventStream::Accept);
        }
        let mut rejected = Vec::new();
        let mut resolved = None;
        if let Some(raw) = req.last_event_id {
            match SessionId::parse(raw.trim_ascii(), self.max_id_len) {
                Ok(id) => resolved = Some((id, IdSource::LastEventId)),
                Err(reason) => rejected.push(RejectedId {
                    source: IdSource::LastEventId,
                    reason,
                }),
            }
        }
        if resolved.is_none() {
            if let Some(raw) = req.query_id() {
                match SessionId::parse_percent_encoded(raw, self.max_id_len) {
                    Ok(id) => resolved = Some((id, IdSource::Query)),
                    Err(reason) => rejected.push(RejectedId {
                        source: IdSource::Query,
                        reason,
                    }),
                }
            }
        }
        let (session, source) = match resolved {
            Some((id, source)) => {
                if closed.check(&id, now) {
                    return Decision::NoContent {
                        session: id,
                        source,
                    };
                }
                (id, source)
            }
            None => (ids.generate(), IdSource::Generated),
        };
        let retry = self.retry + self.jitter_for(&session);
        let preamble = preamble(&session, retry);
        Decision::Accept(Accept {
            session,
            source,
            rejected,
            head: ResponseHead::event_stream(req.version),
            preamble,
            retry,
        })
    }

    fn jitter_for(&self, id: &SessionId) -> Duration {
        let span = u64::try_from(self.jitter.as_millis()).unwrap_or(u64::MAX);
        if span == 0 {
            return Duration::ZERO;
        }
        // FNV-1a: cheap, stable, and spreads similar ids.
        let hash = id
            .as_bytes()
            .iter()
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
        Duration::from_millis(hash % span.saturating_add(1))
    }
}

/// `retry: <ms>\nid: <id>\n\n`.
fn preamble(id: &SessionId, retry: Duration) -> Frame {
    let mut buf = BytesMut::with_capacity(32 + id.len());
    buf.put_slice(b"retry: ");
    put_decimal(
        &mut buf,
        u64::try_from(retry.as_millis()).unwrap_or(u64::MAX),
    );
    buf.put_slice(b"\nid: ");
    buf.put_slice(id.as_bytes());
    buf.put_slice(b"\n\n");
    Frame::from_bytes(buf.freeze())
}

#[cfg(feature = "http")]
mod http_impl {
    use super::{HttpVersion, Request, ResponseHead};

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
            Request::from_http(&parts.method, &parts.uri, parts.version, &parts.headers)
        }
    }

    impl<'a, B> From<&'a http::Request<B>> for Request<'a> {
        fn from(req: &'a http::Request<B>) -> Request<'a> {
            Request::from_http(req.method(), req.uri(), req.version(), req.headers())
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
mod tests;
