//! The one error type of the core, with detail enums nested inside.

use std::fmt;

/// Everything that can go wrong in `sse-proto`.
///
/// Variants do not change with cargo features. Messages say what a caller can do about it.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A text field (event name, comment) holds a byte that would end the line or the stream.
    InvalidField(FieldError),
    /// The event stream being decoded broke one of the decoder's limits.
    Decode(DecodeError),
    /// A value could not be serialized to JSON (feature `json`).
    Json(String),
    /// The connection's outbox is over its byte budget: the peer reads too slowly.
    ///
    /// The connection has been ended with [`EndReason::TooSlow`](crate::EndReason::TooSlow);
    /// the adapter drops it and the client reconnects with its id.
    Backpressure {
        /// Bytes that were queued when the frame was refused.
        queued: usize,
        /// The budget in bytes.
        budget: usize,
    },
    /// The connection is closing or has ended; nothing more can be sent on it.
    Closed,
    /// No live connection has this session id.
    NotConnected,
    /// Relay mode: the relay to the other nodes is behind or away, and its queue is full; the
    /// event was not sent. Try again later (the relay reconnects by itself).
    Unavailable,
    /// A topic name was refused (see [`TopicName`](crate::TopicName)).
    InvalidTopic(crate::TopicError),
    /// The session is in as many topics as the hub allows
    /// ([`HubBuilder::max_topics`](crate::HubBuilder::max_topics)); it must leave one first.
    TooManyTopics {
        /// The most topics one session may be in.
        limit: usize,
    },
    /// The hub's topic rule ([`HubBuilder::topic_rule`](crate::HubBuilder::topic_rule)) does
    /// not grant the topic to the session's user.
    TopicRefused,
    /// With a sharded log: reading the topic would take the session onto more shards than
    /// its event id can name ([`Cursor::max_shards`](crate::Cursor::max_shards)). Leave a
    /// topic on another shard first, or use a shorter session id.
    TooManyShards {
        /// The most shards the session's cursor may name, shard 0 included.
        limit: usize,
    },
}

/// Which text field was refused, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldError {
    /// The field that was refused.
    pub field: Field,
    /// What was wrong with its value.
    pub reason: FieldReason,
}

/// A field of the event-stream format that carries caller text.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `event:` (the event name).
    Event,
    /// A `:` comment line.
    Comment,
    /// `id:`.
    Id,
}

/// Why a field value was refused.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldReason {
    /// The value is empty where a value is required.
    Empty,
    /// The value holds a carriage return, a line feed or a NUL (the byte is given).
    ForbiddenByte(u8),
}

/// A limit of the [`Decoder`](crate::Decoder) that the stream broke.
///
/// Once a decoder has returned one of these it stays failed: a hostile stream is not resumed.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// A line grew past `limit` bytes without a line break.
    LineTooLong {
        /// The configured limit in bytes.
        limit: usize,
    },
    /// The data of one event grew past `limit` bytes before it was dispatched.
    EventTooLarge {
        /// The configured limit in bytes.
        limit: usize,
    },
    /// Bytes given as one encoded event are not one well-formed event block
    /// ([`Frame::from_encoded`](crate::Frame::from_encoded)).
    Malformed,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidField(e) => e.fmt(f),
            Error::Decode(e) => e.fmt(f),
            Error::Json(msg) => write!(f, "cannot serialize event data as JSON: {msg}"),
            Error::Backpressure { queued, budget } => write!(
                f,
                "peer reads too slowly: {queued} bytes already queued, budget is {budget}; the connection was ended"
            ),
            Error::Closed => {
                f.write_str("the connection is closed; nothing more can be sent on it")
            }
            Error::NotConnected => f.write_str("no live connection has this session id"),
            Error::Unavailable => f.write_str(
                "the relay to the other nodes is behind or away and its queue is full; try again later",
            ),
            Error::InvalidTopic(e) => e.fmt(f),
            Error::TooManyTopics { limit } => write!(
                f,
                "the session is in {limit} topics, as many as the hub allows; leave one first"
            ),
            Error::TopicRefused => {
                f.write_str("the hub's topic rule does not grant this topic to the session's user")
            }
            Error::TooManyShards { limit } => write!(
                f,
                "the session would read more than {limit} shards of the log, as many as its event id can name; leave a topic first"
            ),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let field = match self.field {
            Field::Event => "event name",
            Field::Comment => "comment",
            Field::Id => "id",
        };
        match self.reason {
            FieldReason::Empty => write!(f, "{field} must not be empty"),
            FieldReason::ForbiddenByte(b) => write!(
                f,
                "{field} must not contain CR, LF or NUL (found byte 0x{b:02x}); split the text or escape it"
            ),
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::LineTooLong { limit } => {
                write!(f, "event-stream line longer than {limit} bytes")
            }
            DecodeError::EventTooLarge { limit } => {
                write!(f, "event data larger than {limit} bytes")
            }
            DecodeError::Malformed => f.write_str("not one well-formed encoded event"),
        }
    }
}

impl std::error::Error for Error {}
impl std::error::Error for FieldError {}
impl std::error::Error for DecodeError {}

impl From<FieldError> for Error {
    fn from(e: FieldError) -> Self {
        Error::InvalidField(e)
    }
}

impl From<crate::TopicError> for Error {
    fn from(e: crate::TopicError) -> Self {
        Error::InvalidTopic(e)
    }
}

impl From<DecodeError> for Error {
    fn from(e: DecodeError) -> Self {
        Error::Decode(e)
    }
}

/// Why a client's id was not accepted as one this server signed (feature `signing`).
///
/// Small and `Copy` so that the handshake can report it inside its id rejection. The type is
/// defined with or without the feature, so enums that hold it keep the same variants either way.
/// No variant tells whether the id was issued to another principal or forged: the MAC alone
/// decides, and both are [`BadMac`](SignatureError::BadMac).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    /// Not of the form `<key id>.<random>.<mac>`: wrong length, a `.` missing or extra, or a
    /// character outside the key-id or base64url alphabet.
    Malformed,
    /// The key id names no key in the ring: a retired key, or an id this server never issued.
    UnknownKey,
    /// The MAC does not match: the id was altered or forged, or issued to another principal.
    BadMac,
}

impl fmt::Display for SignatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SignatureError::Malformed => "id is not a signed session id (<key id>.<random>.<mac>)",
            SignatureError::UnknownKey => {
                "id was signed with a key that is not in the key ring (retired or foreign)"
            }
            SignatureError::BadMac => {
                "id signature does not match: altered, forged, or issued to another user"
            }
        })
    }
}

impl std::error::Error for SignatureError {}

/// Why a signing key or a change to the key ring was refused (feature `signing`).
///
/// Messages never include key material.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyError {
    /// The key id is empty, longer than 16 bytes, or holds a character other than
    /// `A`–`Z`, `a`–`z`, `0`–`9`, `-` and `_`.
    BadKeyId,
    /// The secret is not 64 hex digits (its length in bytes is given).
    HexLength(usize),
    /// The secret holds a character that is not a hex digit, at this 0-based position.
    HexDigit(usize),
    /// The ring already holds a key with this id.
    DuplicateKeyId,
    /// The ring holds no key with this id.
    UnknownKeyId,
    /// The current key cannot be retired: rotate to a new current key first.
    RetireCurrent,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::BadKeyId => {
                f.write_str("key id must be 1 to 16 characters of A-Z, a-z, 0-9, '-' and '_'")
            }
            KeyError::HexLength(len) => write!(
                f,
                "secret must be 64 hex digits (32 bytes), got {len} bytes"
            ),
            KeyError::HexDigit(at) => {
                write!(
                    f,
                    "secret holds a character that is not a hex digit at position {at}"
                )
            }
            KeyError::DuplicateKeyId => {
                f.write_str("the key ring already holds a key with this id")
            }
            KeyError::UnknownKeyId => f.write_str("the key ring holds no key with this id"),
            KeyError::RetireCurrent => {
                f.write_str("the current key cannot be retired; rotate to a new key first")
            }
        }
    }
}

impl std::error::Error for KeyError {}

/// Checks that `value` holds no CR, LF or NUL, naming `field` in the error.
#[inline]
pub(crate) fn check_field(field: Field, value: &[u8]) -> Result<(), FieldError> {
    // Names and comments are short: a plain loop beats `memchr`'s vector set-up there.
    let found = if value.len() < 32 {
        value
            .iter()
            .position(|&b| matches!(b, b'\r' | b'\n' | b'\0'))
    } else {
        memchr::memchr3(b'\r', b'\n', b'\0', value)
    };
    match found {
        Some(i) => Err(FieldError {
            field,
            reason: FieldReason::ForbiddenByte(value[i]),
        }),
        None => Ok(()),
    }
}
