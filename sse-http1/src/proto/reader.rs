//! [`RequestReader`]: HTTP/1.1 requests (head, then a `Content-Length` or chunked body) from
//! the bytes of one connection, with size limits and deadlines, without I/O or a clock.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::Request;

use super::body_budget::{BodyBudget, BodyGrant};
use super::chunked::{ChunkedDecoder, Progress};
use super::error::HeadError;
use super::head::{BodyFraming, DEFAULT_MAX_HEAD, check_head, parse_request};

/// Size limits of a [`RequestReader`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReaderLimits {
    /// Longest request head, in bytes (default 16 KiB). A chunked body's trailer section has
    /// the same limit.
    pub max_head: usize,
    /// Longest request body, in bytes (default 1 MiB), after chunked decoding.
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

/// Deadlines of a [`RequestReader`], measured on the times the caller passes in.
///
/// A head or body that misses its deadline is [`HeadError::HeadTimeout`] or
/// [`HeadError::BodyTimeout`] (answer 408); an idle connection past `idle` is
/// [`HeadError::Idle`] (close without answering).
///
/// The defaults: a head within 10 s of its first byte; a body within 10 s, plus a second
/// per 4 KiB received, and never more than 30 s in all; 10 s of silence before a request,
/// on a new connection and between keep-alive requests alike. The idle wait is the head
/// deadline's length so that the same rule holds on every adapter: hyper has one timer for
/// both (it runs from the moment it waits for a head), and Node.js and Apache close an idle
/// keep-alive connection after 5 s, so a browser is used to reconnecting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReaderTimeouts {
    /// Longest time from the first byte of a request head to its end, however the bytes
    /// trickle in (default 10 s).
    pub head: Duration,
    /// Time allowed for a body before the rate credit (default 10 s).
    pub body: Duration,
    /// Bytes of (decoded) body that buy one more second for the body (default 4096, a
    /// minimum rate of 4 KiB/s). 0 makes `body` a plain total deadline.
    pub min_body_rate: u32,
    /// Longest time a body may take in all, however much credit its rate bought
    /// (default 30 s; Apache's `RequestReadTimeout body=20-40,MinRate=500` is the same
    /// idea). Without it a 1 MiB body trickled at the minimum rate would hold its bytes
    /// for 10 s + 1 MiB / 4 KiB/s = 266 s.
    pub body_ceiling: Duration,
    /// Longest wait for the first byte of a request: on a new connection, and between
    /// keep-alive requests (default 10 s, the head deadline's length).
    pub idle: Duration,
}

impl Default for ReaderTimeouts {
    fn default() -> Self {
        ReaderTimeouts {
            head: Duration::from_secs(10),
            body: Duration::from_secs(10),
            min_body_rate: 4096,
            body_ceiling: Duration::from_secs(30),
            idle: Duration::from_secs(10),
        }
    }
}

impl ReaderTimeouts {
    /// The deadline of a body that started at `start` (the end of its head) and of which
    /// `received` bytes (decoded) have arrived: `body` plus one second per
    /// `min_body_rate` bytes, at most `body_ceiling`. `None` past `Instant`'s range.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use sse_http1::proto::ReaderTimeouts;
    ///
    /// let t = ReaderTimeouts::default();
    /// let start = Instant::now();
    /// assert_eq!(t.body_deadline(start, 8192), Some(start + Duration::from_secs(12)));
    /// assert_eq!(t.body_deadline(start, 1 << 20), Some(start + t.body_ceiling));
    /// ```
    pub fn body_deadline(&self, start: Instant, received: usize) -> Option<Instant> {
        let credit = match self.min_body_rate {
            0 => Duration::ZERO,
            rate => {
                let nanos = received as u128 * 1_000_000_000 / u128::from(rate);
                Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
            }
        };
        start.checked_add(self.body.saturating_add(credit).min(self.body_ceiling))
    }

    /// The same `timeout` for the idle wait, the head and the body grace, with the default
    /// minimum body rate, and a body ceiling of three times `timeout`.
    pub fn uniform(timeout: Duration) -> ReaderTimeouts {
        ReaderTimeouts {
            head: timeout,
            body: timeout,
            body_ceiling: timeout.saturating_mul(3),
            idle: timeout,
            ..ReaderTimeouts::default()
        }
    }
}

/// An interim (1xx) response the adapter writes before reading on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
#[must_use]
pub enum Interim {
    /// `100 Continue`: the client sent `Expect: 100-continue` and waits for it before
    /// sending the body (RFC 9110 §10.1.1, §15.2.1).
    Continue,
}

impl Interim {
    /// The whole interim response on the wire.
    pub fn as_bytes(&self) -> &'static [u8] {
        match self {
            Interim::Continue => b"HTTP/1.1 100 Continue\r\n\r\n",
        }
    }
}

/// What the reader is doing, with the time its current deadline counts from (`None` until
/// the caller has passed a time in).
#[derive(Debug)]
enum State {
    /// No byte of a request is buffered.
    Idle { since: Option<Instant> },
    /// Bytes of a head are buffered (or are about to be parsed).
    Head { since: Option<Instant> },
    /// The head was read; its body is coming.
    Body {
        head: Box<Request<()>>,
        body: Body,
        since: Option<Instant>,
    },
    /// A request was refused or a deadline missed; nothing more is read.
    Failed(HeadError),
}

#[derive(Debug)]
enum Body {
    /// `Content-Length`: the bytes stay in the read buffer until all `len` are there.
    Length(usize),
    /// Chunked: data is decoded into `body` as it comes.
    Chunked {
        decoder: ChunkedDecoder,
        body: BytesMut,
    },
}

/// Reads HTTP/1.1 requests (head and `Content-Length` or chunked body) from the bytes of one
/// connection, without I/O and without a clock.
///
/// The adapter calls, in this order, and after every change drains the outputs:
///
/// - inputs: [`handle_ready`](Self::handle_ready) when the connection is ready for a request
///   (just accepted, or the last response was written), [`handle_read`](Self::handle_read)
///   with what the socket gave, [`handle_timeout`](Self::handle_timeout) when the deadline
///   from `poll_timeout` passes;
/// - outputs: [`poll_request`](Self::poll_request) until `Ok(None)`, then
///   [`poll_interim`](Self::poll_interim) (write what it gives before reading on), then
///   [`poll_timeout`](Self::poll_timeout) (the deadline to sleep until while reading).
///
/// On `Err(e)` answer [`HeadError::status`] and close (for [`HeadError::Idle`], close
/// without answering); the error repeats on every later call. After a request for which
/// [`wants_close`](super::wants_close) is true, close once the response is written.
///
/// Memory is bounded by the limits: a head of at most `max_head` bytes, a body of at most
/// `max_body`, a chunk-size line of at most [`MAX_CHUNK_LINE`](super::MAX_CHUNK_LINE), plus
/// the bytes handed in that belong to later requests. An idle reader holds no buffer, and a
/// failed one drops its buffer. Summed over the connections of a server, bodies still
/// arriving are bounded by a shared [`BodyBudget`] (see
/// [`with_body_budget`](Self::with_body_budget)); a body that does not fit is
/// [`HeadError::OverBudget`].
///
/// ```
/// use std::time::{Duration, Instant};
/// use sse_http1::proto::{ReaderLimits, RequestReader};
/// use sse_http1::proto::HeadError;
///
/// let start = Instant::now();
/// let mut reader = RequestReader::new(ReaderLimits::default());
/// reader.handle_ready(start);
/// reader.handle_read(b"POST /broadcast HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nh", start);
/// assert!(reader.poll_request().unwrap().is_none());
/// reader.handle_read(b"i", start);
/// let req = reader.poll_request().unwrap().unwrap();
/// assert_eq!(req.body().as_ref(), b"hi");
///
/// // A head trickled in too slowly is cut off at its deadline, not per read.
/// reader.handle_ready(start);
/// reader.handle_read(b"GET / HT", start);
/// assert!(reader.poll_request().unwrap().is_none());
/// let deadline = reader.poll_timeout().unwrap();
/// assert_eq!(deadline, start + Duration::from_secs(10));
/// reader.handle_timeout(deadline);
/// assert_eq!(reader.poll_request().map(|_| ()), Err(HeadError::HeadTimeout));
/// ```
#[derive(Debug)]
pub struct RequestReader {
    limits: ReaderLimits,
    timeouts: ReaderTimeouts,
    buf: BytesMut,
    state: State,
    /// The latest time passed in.
    now: Option<Instant>,
    /// A `100 Continue` is owed for the body being waited for.
    interim: bool,
    /// The bytes of the server's body budget this connection holds, when it has a budget.
    grant: Option<BodyGrant>,
}

impl RequestReader {
    /// A reader with `limits` and the default [`ReaderTimeouts`].
    ///
    /// Deadlines count from the times passed in: call [`handle_ready`](Self::handle_ready)
    /// first, or the idle deadline starts only with the first read.
    pub fn new(limits: ReaderLimits) -> RequestReader {
        RequestReader::with_timeouts(limits, ReaderTimeouts::default())
    }

    /// A reader with `limits` and `timeouts`.
    pub fn with_timeouts(limits: ReaderLimits, timeouts: ReaderTimeouts) -> RequestReader {
        RequestReader {
            limits,
            timeouts,
            buf: BytesMut::new(),
            state: State::Idle { since: None },
            now: None,
            interim: false,
            grant: None,
        }
    }

    /// Counts the bodies this reader holds while they arrive against `budget`, shared by
    /// every connection of the server.
    ///
    /// A body not complete in the bytes read so far takes its declared `Content-Length`
    /// from the budget (a chunked body: its decoded bytes as they arrive, in steps of
    /// 16 KiB); when the budget has not that much left the request fails with
    /// [`HeadError::OverBudget`] before more of it is read. The bytes are given back by
    /// [`handle_ready`](Self::handle_ready) (the response was written), on an error, and
    /// when the reader is dropped.
    pub fn with_body_budget(mut self, budget: &BodyBudget) -> RequestReader {
        self.grant = Some(budget.grant());
        self
    }

    /// The connection is ready for the next request at `now`: just accepted, or the
    /// response to the last request was written.
    ///
    /// Restarts the idle deadline, or the head deadline of a pipelined request whose bytes
    /// are already buffered (the client is not charged for the time the last response took),
    /// and gives back what the last body held of the body budget. Does nothing in the middle
    /// of a body or after an error.
    pub fn handle_ready(&mut self, now: Instant) {
        self.now = Some(now);
        match &mut self.state {
            State::Idle { since } | State::Head { since } => {
                *since = Some(now);
                if let Some(grant) = &mut self.grant {
                    grant.release();
                }
            }
            State::Body { .. } | State::Failed(_) => {}
        }
    }

    /// The buffer to read the connection into (at least `hint` spare bytes reserved). An
    /// alternative to [`handle_read`](Self::handle_read) that saves a copy: after filling it,
    /// call `handle_read(&[], now)` so the reader knows when the bytes came.
    pub fn read_buf(&mut self, hint: usize) -> &mut BytesMut {
        self.buf.reserve(hint);
        &mut self.buf
    }

    /// Takes bytes read from the connection at `now`.
    ///
    /// A deadline already past at `now` fails the reader first (as
    /// [`handle_timeout`](Self::handle_timeout) would); after an error bytes are dropped.
    pub fn handle_read(&mut self, data: &[u8], now: Instant) {
        self.handle_timeout(now);
        if let State::Failed(_) = self.state {
            return;
        }
        self.buf.extend_from_slice(data);
        if let State::Idle { .. } = self.state {
            if !self.buf.is_empty() {
                // The head's deadline counts from its first byte.
                self.state = State::Head { since: Some(now) };
            }
        }
        self.start_clock(now);
    }

    /// Tells the reader the time is `now`: a deadline that has passed fails the reader, and
    /// [`poll_request`](Self::poll_request) then returns the error. An early or extra call
    /// does nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = Some(now);
        self.start_clock(now);
        let Some(deadline) = self.poll_timeout() else {
            return;
        };
        if now < deadline {
            return;
        }
        let error = match self.state {
            State::Idle { .. } => HeadError::Idle,
            State::Head { .. } => HeadError::HeadTimeout,
            State::Body { .. } => HeadError::BodyTimeout,
            State::Failed(_) => return,
        };
        self.fail(error);
    }

    /// The first time seen starts the current phase's clock.
    fn start_clock(&mut self, now: Instant) {
        self.now = Some(now);
        match &mut self.state {
            State::Idle { since } | State::Head { since } | State::Body { since, .. } => {
                since.get_or_insert(now);
            }
            State::Failed(_) => {}
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) should be called next, `None` when no
    /// deadline runs (no time passed in yet, or the reader failed).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let t = &self.timeouts;
        match &self.state {
            State::Idle { since } => since.and_then(|s| s.checked_add(t.idle)),
            State::Head { since } => since.and_then(|s| s.checked_add(t.head)),
            State::Body { since, body, .. } => {
                let received = match body {
                    Body::Length(len) => self.buf.len().min(*len),
                    Body::Chunked { body, .. } => body.len(),
                };
                since.and_then(|s| t.body_deadline(s, received))
            }
            State::Failed(_) => None,
        }
    }

    /// Whether bytes of an unfinished request are buffered.
    pub fn is_mid_request(&self) -> bool {
        matches!(self.state, State::Body { .. }) || !self.buf.is_empty()
    }

    /// Whether bytes of an unfinished request head are buffered: what a
    /// [`HeadSlots`](super::HeadSlots) permit is held for.
    pub fn is_mid_head(&self) -> bool {
        matches!(self.state, State::Idle { .. } | State::Head { .. }) && !self.buf.is_empty()
    }

    /// Bytes of the server's body budget this reader holds now (0 without a budget).
    pub fn budget_held(&self) -> usize {
        self.grant.as_ref().map_or(0, BodyGrant::held)
    }

    /// Bytes the reader holds: buffered input and the decoded part of a chunked body.
    pub fn buffered(&self) -> usize {
        let body = match &self.state {
            State::Body {
                body: Body::Chunked { decoder, body },
                ..
            } => body.len() + decoder.buffered(),
            _ => 0,
        };
        self.buf.len() + body
    }

    /// The interim response to write now, before reading the body: `100 Continue` once for
    /// a request that asked for it (RFC 9110 §10.1.1).
    ///
    /// Call after [`poll_request`](Self::poll_request) returned `Ok(None)`. A body that
    /// arrives in full before this is called makes the interim moot; it is then never
    /// returned (a 1xx after the final response would desynchronise the client).
    #[must_use]
    pub fn poll_interim(&mut self) -> Option<Interim> {
        let waiting = matches!(self.state, State::Body { .. });
        std::mem::take(&mut self.interim)
            .then_some(Interim::Continue)
            .filter(|_| waiting)
    }

    /// The next complete request, `Ok(None)` if more bytes are needed.
    ///
    /// The framing decisions are made here, at the end of the head (the header rules of
    /// RFC 9112 §6): a body longer than `max_body` is refused at once
    /// with 413, before any of it is read.
    pub fn poll_request(&mut self) -> Result<Option<Request<Bytes>>, HeadError> {
        let result = self.advance();
        if let Err(e) = result {
            self.fail(e);
        }
        result
    }

    fn advance(&mut self) -> Result<Option<Request<Bytes>>, HeadError> {
        match &self.state {
            State::Failed(e) => return Err(*e),
            State::Idle { .. } | State::Head { .. } if self.buf.is_empty() => return Ok(None),
            State::Idle { since } | State::Head { since } => {
                let since = *since;
                // RFC 9112 §2.2: empty lines before a request line are ignored. Dropping
                // them here means a stray CRLF after a body is not an unfinished request.
                let blank = leading_empty_lines(&self.buf);
                if blank == self.buf.len() {
                    self.buf = BytesMut::new();
                    self.state = State::Idle { since };
                    return Ok(None);
                }
                let _ = self.buf.split_to(blank);
                let Some((head, len)) = parse_request(&self.buf, self.limits.max_head)? else {
                    self.state = State::Head { since };
                    return Ok(None);
                };
                let (framing, expect) = check_head(&head)?;
                let body = match framing {
                    BodyFraming::Length(n) => match usize::try_from(n) {
                        Ok(n) if n <= self.limits.max_body => Body::Length(n),
                        _ => {
                            return Err(HeadError::BodyTooLarge {
                                limit: self.limits.max_body,
                            });
                        }
                    },
                    BodyFraming::Chunked => Body::Chunked {
                        decoder: ChunkedDecoder::new(),
                        body: BytesMut::new(),
                    },
                };
                let _ = self.buf.split_to(len);
                self.interim = expect;
                // The body's deadline counts from the end of the head.
                self.state = State::Body {
                    head: Box::new(head),
                    body,
                    since: self.now,
                };
            }
            State::Body { .. } => {}
        }
        self.read_body()
    }

    /// Reads the body of the parsed head; hands out the request when it is complete.
    fn read_body(&mut self) -> Result<Option<Request<Bytes>>, HeadError> {
        let State::Body { body, .. } = &mut self.state else {
            return Ok(None);
        };
        let bytes = match body {
            Body::Length(len) => {
                if self.buf.len() < *len {
                    // The whole body is held until it is answered: take it from the budget
                    // before reserving room for it.
                    take_budget(&mut self.grant, *len)?;
                    self.buf.reserve(*len - self.buf.len());
                    return Ok(None);
                }
                self.buf.split_to(*len).freeze()
            }
            Body::Chunked { decoder, body } => {
                let max_body = self.limits.max_body;
                match decoder.decode(&mut self.buf, body, max_body, self.limits.max_head)? {
                    Progress::NeedMore => {
                        let held = body.len() + decoder.buffered() + self.buf.len();
                        take_budget(&mut self.grant, held.next_multiple_of(CHUNKED_STEP))?;
                        return Ok(None);
                    }
                    Progress::Done => std::mem::take(body).freeze(),
                }
            }
        };
        if self.buf.is_empty() {
            // Give the memory back between requests: an idle connection holds nothing.
            self.buf = BytesMut::new();
        }
        // The next request's clock runs from the last time seen, until `handle_ready`
        // restarts it when the response has been written.
        let next = if self.buf.is_empty() {
            State::Idle { since: self.now }
        } else {
            State::Head { since: self.now }
        };
        self.interim = false;
        match std::mem::replace(&mut self.state, next) {
            State::Body { head, .. } => Ok(Some((*head).map(|()| bytes))),
            _ => Ok(None),
        }
    }

    fn fail(&mut self, error: HeadError) {
        self.state = State::Failed(error);
        self.buf = BytesMut::new();
        self.interim = false;
        if let Some(grant) = &mut self.grant {
            grant.release();
        }
    }
}

/// A chunked body takes the budget in steps of this many bytes, so that a body of many
/// small chunks does not touch the shared counter on every read.
const CHUNKED_STEP: usize = 16 * 1024;

/// Grows `grant` (when there is a budget) to `total` bytes, or fails with
/// [`HeadError::OverBudget`].
fn take_budget(grant: &mut Option<BodyGrant>, total: usize) -> Result<(), HeadError> {
    if let Some(grant) = grant {
        if !grant.reserve_total(total) {
            return Err(HeadError::OverBudget {
                limit: grant.limit(),
            });
        }
    }
    Ok(())
}

/// How many bytes at the start of `buf` are whole empty lines (CRLF or LF).
fn leading_empty_lines(buf: &[u8]) -> usize {
    let mut i = 0;
    loop {
        match buf.get(i..) {
            Some([b'\r', b'\n', ..]) => i += 2,
            Some([b'\n', ..]) => i += 1,
            _ => return i,
        }
    }
}
