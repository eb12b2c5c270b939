//! The handshake, in two steps: what a request claims ([`Offer`]), and, once the stores have
//! answered what the offer needs looked up ([`Lookup`] → [`Answers`]), the hub's
//! [`Decision`](crate::Decision).
//!
//! The split lets a store that answers asynchronously (a shared store for several nodes) do
//! its lookups outside every hub lock, the way rustls's `Acceptor` hands over the client hello
//! before a configuration is chosen: the offer is pure parsing, the answers are values, and
//! [`Hub::accept`](crate::Hub::accept) decides with them.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, BytesMut};

use crate::cursor::CURSOR_COMPONENT_LEN;
use crate::event::put_decimal;
use crate::frame::Frame;
use crate::history::{History, LogBounds, Logged, MemoryHistory, Target};
use crate::id::{DEFAULT_MAX_ID_LEN, IdRejection, IdSource, RejectedId, SessionId, percent_decode};
use crate::lifecycle::GapReason;
use crate::position::{Claimed, MAX_POSITION_LEN, split_token};
use crate::request::{HttpVersion, Principal, Request};
use crate::topic::{Membership, TopicError, TopicName};

/// Why a request is not an event-stream request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotEventStream {
    /// The method is not `GET`.
    Method,
    /// `Accept` does not list `text/event-stream` with q > 0.
    Accept,
}

/// The session a client offered, and what it said about its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The session id (validated, verified when ids are signed; without the position).
    pub session: SessionId,
    /// The position after the id, in resume mode ([`Claimed::None`] otherwise).
    pub position: Claimed,
    /// With signed ids: the id signed by a key that is no longer the current one, re-signed
    /// with the current key. The session continues under this id.
    pub resigned: Option<SessionId>,
}

/// What an id check ([`HandshakeConfig::offer_checked`]) says of a valid client id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// Use it.
    Accept,
    /// Use it, continuing the session under this other id (a signed id re-signed).
    AcceptAs(SessionId),
    /// Treat it as absent, without reporting it.
    Absent,
    /// Treat it as absent and report it with this reason.
    Refuse(IdRejection),
}

/// What an event-stream request claims: the session it offers, from where, and the offers
/// that were refused. Made by [`HandshakeConfig::offer`] (and by the hub's handshake)
/// without consulting any store.
#[derive(Debug, Clone)]
pub struct Offer {
    claim: Option<Claim>,
    source: IdSource,
    rejected: Vec<RejectedId>,
    version: HttpVersion,
    resumable: bool,
    principal: Option<Arc<[u8]>>,
    topics: Vec<TopicName>,
}

impl Offer {
    /// The offered session, if the client offered a valid one.
    pub fn claim(&self) -> Option<&Claim> {
        self.claim.as_ref()
    }

    /// Where the session id comes from ([`IdSource::Generated`] when none was offered).
    pub fn source(&self) -> IdSource {
        self.source
    }

    /// Client ids that were offered and refused, with the reason, for logs.
    pub fn rejected(&self) -> &[RejectedId] {
        &self.rejected
    }

    /// The request's HTTP version.
    pub fn version(&self) -> HttpVersion {
        self.version
    }

    /// The principal the application named for the request, if any.
    pub fn principal(&self) -> Option<&[u8]> {
        self.principal.as_deref()
    }

    /// The topics the tab asked for with `?topic=`, valid and without repeats (what the hub
    /// grants of them is up to its topic rule).
    pub fn topics(&self) -> &[TopicName] {
        &self.topics
    }

    /// Reads the `topic` parameters of `req`, at most `max` of them.
    pub(crate) fn read_topics(&mut self, req: &Request<'_>, max: usize) -> Result<(), BadRequest> {
        for raw in req.query_topics() {
            let topic = TopicName::parse(raw).map_err(BadRequest::Topic)?;
            if self.topics.contains(&topic) {
                continue;
            }
            if self.topics.len() >= max {
                return Err(BadRequest::TooManyTopics { limit: max });
            }
            self.topics.push(topic);
        }
        Ok(())
    }

    /// Fits the claim to a log of `shards` shards, with event ids of at most `max_id_len`
    /// bytes: a claimed cursor naming a shard the log does not have is malformed (the log
    /// never issued it), and with several shards a session id must leave room for its own
    /// shard beside shard 0 in its cursor (it is refused as too long otherwise).
    pub(crate) fn fit_shards(&mut self, shards: usize, max_id_len: usize) {
        let Some(claim) = &mut self.claim else {
            return;
        };
        if let Claimed::At(c) = claim.position {
            if usize::from(c.last_shard()) >= shards {
                claim.position = Claimed::Invalid;
            }
        }
        let max = max_id_len.saturating_sub(MAX_POSITION_LEN + CURSOR_COMPONENT_LEN);
        if shards > 1 && claim.session.len() > max {
            self.rejected.push(RejectedId {
                source: self.source,
                reason: IdRejection::TooLong {
                    len: claim.session.len(),
                    max,
                },
            });
            self.claim = None;
            self.source = IdSource::Generated;
        }
    }

    /// What the stores must answer before the hub can decide.
    pub fn lookup(&self) -> Lookup<'_> {
        let claim = self.claim.as_ref();
        Lookup {
            closed: claim.map(|c| &c.session),
            history: claim
                .filter(|_| self.resumable)
                .map(|c| (&c.session, c.position)),
        }
    }

    pub(crate) fn into_parts(self) -> OfferParts {
        OfferParts {
            claim: self.claim,
            source: self.source,
            rejected: self.rejected,
            version: self.version,
            principal: self.principal,
            topics: self.topics,
        }
    }
}

/// An [`Offer`] taken apart by the hub.
pub(crate) struct OfferParts {
    pub(crate) claim: Option<Claim>,
    pub(crate) source: IdSource,
    pub(crate) rejected: Vec<RejectedId>,
    pub(crate) version: HttpVersion,
    pub(crate) principal: Option<Arc<[u8]>>,
    pub(crate) topics: Vec<TopicName>,
}

/// Why an event-stream request was refused as malformed: the adapter answers
/// [`ResponseHead::bad_request`](crate::ResponseHead::bad_request) with this as the text.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadRequest {
    /// A `topic` query parameter is not a topic name.
    Topic(TopicError),
    /// More `topic` parameters than one session may be in.
    TooManyTopics {
        /// The most topics one session may be in.
        limit: usize,
    },
}

impl fmt::Display for BadRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadRequest::Topic(e) => write!(f, "bad topic parameter: {e}"),
            BadRequest::TooManyTopics { limit } => {
                write!(f, "more than {limit} topic parameters")
            }
        }
    }
}

impl std::error::Error for BadRequest {}

/// The questions an [`Offer`] needs answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lookup<'a> {
    /// Is this id marked closed? (Answering may consume the mark, per the store's policy.)
    pub closed: Option<&'a SessionId>,
    /// In resume mode: what did this session miss after this position?
    pub history: Option<(&'a SessionId, Claimed)>,
}

/// The stores' answers to a [`Lookup`].
#[derive(Debug, Default)]
pub struct Answers {
    /// The offered id is marked closed: the request gets 204.
    pub closed: bool,
    /// History fetched ahead of time by a store that cannot be read under the hub's lock:
    /// the session's logs after the claimed position and what it is in, or why they cannot be
    /// told. `None` reads the hub's own [`History`](crate::History) when the connection is
    /// accepted.
    pub history: Option<Result<Fetched, GapReason>>,
}

/// What a shared store read ahead of time for a session coming back (relay mode): every log
/// the session may be entitled to, after its position, and its memberships and user as the
/// store knows them. The hub replays from it with its own rules (the topic rule is asked
/// again, revoked topics are withheld), exactly as from its own [`History`](crate::History).
#[derive(Debug)]
pub struct Fetched {
    /// The logs' entries after the position (the session's own, the broadcasts, its user's,
    /// its topics'), with what each log lost ([`MemoryHistory::lose`]).
    pub log: MemoryHistory,
    /// The session's memberships, current and past.
    pub topics: Vec<Membership>,
    /// The session's user, and the sequence number from which the session was theirs.
    pub user: Option<(Principal, u64)>,
}

impl Fetched {
    /// A session the store knows, at position `after`, with the events `entries` after it
    /// (its own and the broadcasts, merged in order) and nothing else: no topic, no user.
    pub fn events(
        entries: Vec<Logged>,
        after: u64,
        epoch: u64,
        bounds: LogBounds,
        session: &SessionId,
    ) -> Fetched {
        let mut log = MemoryHistory::new(epoch, bounds, usize::MAX).with_head(after);
        for entry in entries {
            log.append_at(Target::Session(session), entry.seq, &entry.frame);
        }
        Fetched {
            log,
            topics: Vec::new(),
            user: None,
        }
    }
}

/// Handshake settings: reconnection delay, its jitter, and the longest client id accepted.
///
/// ```
/// use std::time::Duration;
/// use sse_proto::{Claimed, HandshakeConfig, HttpVersion, IdSource, Request};
///
/// let handshake = HandshakeConfig::new().retry(Duration::from_secs(2));
/// let mut req = Request::new(b"GET", b"/events?id=tab-7", HttpVersion::Http11);
/// req.header(b"accept", b"text/event-stream");
/// let offer = handshake.offer(&req, false).unwrap();
/// let claim = offer.claim().unwrap();
/// assert_eq!(claim.session.as_str(), "tab-7");
/// assert_eq!(claim.position, Claimed::None);
/// assert_eq!(offer.source(), IdSource::Query);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandshakeConfig {
    retry: Duration,
    jitter: Duration,
    max_id_len: usize,
}

impl Default for HandshakeConfig {
    fn default() -> Self {
        HandshakeConfig::new()
    }
}

impl HandshakeConfig {
    /// Defaults: retry 3 s, no jitter, ids of at most 128 bytes.
    pub fn new() -> HandshakeConfig {
        HandshakeConfig {
            retry: Duration::from_secs(3),
            jitter: Duration::ZERO,
            max_id_len: DEFAULT_MAX_ID_LEN,
        }
    }

    /// Sets the reconnection delay sent to each browser.
    pub fn retry(mut self, retry: Duration) -> HandshakeConfig {
        self.retry = retry;
        self
    }

    /// Adds up to `jitter` to each connection's delay, derived from its id (stable per
    /// session, spread across sessions), so a restart does not bring every tab back at once.
    pub fn jitter(mut self, jitter: Duration) -> HandshakeConfig {
        self.jitter = jitter;
        self
    }

    /// Sets the longest client id accepted, in bytes. In resume mode this bounds the whole
    /// event id, position included, so a session id is [`MAX_POSITION_LEN`] bytes shorter
    /// (with a sharded log, [`CURSOR_COMPONENT_LEN`] shorter still: see
    /// [`Cursor::max_shards`](crate::Cursor::max_shards)).
    pub fn max_id_len(mut self, max: usize) -> HandshakeConfig {
        self.max_id_len = max;
        self
    }

    /// The longest client id accepted, in bytes.
    pub fn max_id_len_value(&self) -> usize {
        self.max_id_len
    }

    /// The reconnection delay, before jitter.
    pub fn retry_value(&self) -> Duration {
        self.retry
    }

    /// The reconnection delay for `id`: the retry plus its share of the jitter.
    pub fn retry_for(&self, id: &SessionId) -> Duration {
        let span = u64::try_from(self.jitter.as_millis()).unwrap_or(u64::MAX);
        if span == 0 {
            return self.retry;
        }
        // FNV-1a: cheap, stable, and spreads similar ids.
        let hash = id
            .as_bytes()
            .iter()
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
        self.retry + Duration::from_millis(hash % span.saturating_add(1))
    }

    /// Reads what `req` claims, without consulting any store.
    ///
    /// The id is resolved as `Last-Event-ID`, else `?id=` (percent-decoded), else none (the
    /// hub generates one). An invalid client id counts as absent and is listed in
    /// [`Offer::rejected`]. With `resumable`, a value `<session>~<position>` is split at its
    /// last `~`: the session id must be valid on its own, and the position is reported as
    /// claimed, well-formed or not.
    pub fn offer(&self, req: &Request<'_>, resumable: bool) -> Result<Offer, NotEventStream> {
        self.offer_checked(req, resumable, &mut |_, _| Checked::Accept)
    }

    /// As [`offer`](Self::offer), with `check` asked about each valid client id in turn
    /// (signature, application policy) before it is used: an id it does not accept counts as
    /// absent, and the next candidate is tried.
    pub fn offer_checked(
        &self,
        req: &Request<'_>,
        resumable: bool,
        check: &mut dyn FnMut(&SessionId, IdSource) -> Checked,
    ) -> Result<Offer, NotEventStream> {
        if req.method != b"GET" {
            return Err(NotEventStream::Method);
        }
        if !req.accepts {
            return Err(NotEventStream::Accept);
        }
        let mut rejected = Vec::new();
        let mut claim = None;
        let mut source = IdSource::Generated;
        let candidates = [
            (
                IdSource::LastEventId,
                req.last_event_id.map(<[u8]>::trim_ascii),
            ),
            (IdSource::Query, req.query_id()),
        ];
        for (from, raw) in candidates {
            let Some(raw) = raw else { continue };
            let verdict = self
                .read_claim(raw, from == IdSource::Query, resumable)
                .map(|found| (check(&found.session, from), found));
            match verdict {
                Ok((Checked::Accept, found)) => {
                    claim = Some(found);
                    source = from;
                    break;
                }
                Ok((Checked::AcceptAs(id), found)) => {
                    claim = Some(Claim {
                        resigned: Some(id),
                        ..found
                    });
                    source = from;
                    break;
                }
                Ok((Checked::Absent, _)) => {}
                Ok((Checked::Refuse(reason), _)) | Err(reason) => rejected.push(RejectedId {
                    source: from,
                    reason,
                }),
            }
        }
        Ok(Offer {
            claim,
            source,
            rejected,
            version: req.version,
            resumable,
            principal: req.principal.map(Arc::from),
            topics: Vec::new(),
        })
    }

    fn read_claim(
        &self,
        raw: &[u8],
        percent_encoded: bool,
        resumable: bool,
    ) -> Result<Claim, IdRejection> {
        // Bound the work before decoding: an escape is at most three bytes per byte.
        let limit = if percent_encoded {
            self.max_id_len.saturating_mul(3)
        } else {
            self.max_id_len
        };
        if raw.len() > limit {
            return Err(IdRejection::TooLong {
                len: raw.len(),
                max: self.max_id_len,
            });
        }
        let decoded;
        let value = if percent_encoded {
            decoded = percent_decode(raw)?;
            &decoded[..]
        } else {
            raw
        };
        if !resumable {
            return Ok(Claim {
                session: SessionId::parse(value, self.max_id_len)?,
                position: Claimed::None,
                resigned: None,
            });
        }
        if value.len() > self.max_id_len {
            return Err(IdRejection::TooLong {
                len: value.len(),
                max: self.max_id_len,
            });
        }
        let (id, position) = split_token(value);
        // Such an id would name another session wherever an id is taken, once its own
        // session is gone.
        if matches!(split_token(id).1, Claimed::At(_)) {
            return Err(IdRejection::HoldsPosition);
        }
        let max = self.max_id_len.saturating_sub(MAX_POSITION_LEN);
        Ok(Claim {
            session: SessionId::parse(id, max)?,
            position,
            resigned: None,
        })
    }
}

/// The first bytes of a stream: `retry: <ms>\nid: <token>\n\n`, which sets the browser's last
/// event id without dispatching an event.
pub(crate) fn preamble(token: &str, retry: Duration) -> Frame {
    let mut buf = BytesMut::with_capacity(32 + token.len());
    buf.put_slice(b"retry: ");
    put_decimal(
        &mut buf,
        u64::try_from(retry.as_millis()).unwrap_or(u64::MAX),
    );
    buf.put_slice(b"\nid: ");
    buf.put_slice(token.as_bytes());
    buf.put_slice(b"\n\n");
    Frame::from_bytes(buf.freeze())
}

/// `retry: <ms>\n\n`: the whole body of a [`Decision::GoAway`](crate::Decision::GoAway).
pub(crate) fn retry_block(retry: Duration) -> Frame {
    let mut buf = BytesMut::with_capacity(32);
    buf.put_slice(b"retry: ");
    put_decimal(
        &mut buf,
        u64::try_from(retry.as_millis()).unwrap_or(u64::MAX),
    );
    buf.put_slice(b"\n\n");
    Frame::from_bytes(buf.freeze())
}

/// `id: <id>\n\n`: sets the browser's last event id, and nothing else.
pub(crate) fn id_block(id: &SessionId) -> Frame {
    let mut buf = BytesMut::with_capacity(id.len() + 6);
    buf.put_slice(b"id: ");
    buf.put_slice(id.as_bytes());
    buf.put_slice(b"\n\n");
    Frame::from_bytes(buf.freeze())
}

/// `id: <token>\n`, repeated once before the first dispatched event of a connection (see
/// the connection's preamble).
pub(crate) fn id_line(token: &str) -> Frame {
    let mut line = BytesMut::with_capacity(token.len() + 5);
    line.put_slice(b"id: ");
    line.put_slice(token.as_bytes());
    line.put_u8(b'\n');
    Frame::from_bytes(line.freeze())
}

#[cfg(test)]
mod tests;
