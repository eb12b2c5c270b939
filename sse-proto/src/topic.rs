//! Topic names, and a session's membership of a topic over the log's sequence.

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

/// Most bytes in a topic name.
pub const MAX_TOPIC_LEN: usize = 64;

/// The name of a topic (a room, a channel): 1 to [`MAX_TOPIC_LEN`] bytes of `A`–`Z`, `a`–`z`,
/// `0`–`9`, `.`, `_` and `-`.
///
/// The alphabet needs no escaping in a URL, a header, a log line or a store's key, and holds
/// no separator a key layout could confuse. Clones share one allocation.
///
/// ```
/// use sse_proto::TopicName;
///
/// let room = TopicName::new("room-42")?;
/// assert_eq!(room.as_str(), "room-42");
/// assert!(TopicName::new("a b").is_err());
/// assert!(TopicName::new("{slot}").is_err());
/// # Ok::<(), sse_proto::TopicError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicName(Arc<str>);

/// Why a topic name was refused.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicError {
    /// The name is empty.
    Empty,
    /// The name is longer than [`MAX_TOPIC_LEN`] bytes (its length is given).
    TooLong(usize),
    /// The name holds a byte outside `A-Z a-z 0-9 . _ -` (the byte and its 0-based
    /// position are given).
    Forbidden {
        /// The byte.
        byte: u8,
        /// Where it is.
        at: usize,
    },
}

impl TopicName {
    /// Checks `name`.
    pub fn new(name: &str) -> Result<TopicName, TopicError> {
        TopicName::parse(name.as_bytes())
    }

    /// Checks raw bytes (a query value, a path segment) as a topic name. Nothing is
    /// percent-decoded: a name never needs escaping, so an escaped one is refused.
    pub fn parse(raw: &[u8]) -> Result<TopicName, TopicError> {
        if raw.is_empty() {
            return Err(TopicError::Empty);
        }
        if raw.len() > MAX_TOPIC_LEN {
            return Err(TopicError::TooLong(raw.len()));
        }
        if let Some(at) = raw.iter().position(|&b| !is_topic_byte(b)) {
            return Err(TopicError::Forbidden { byte: raw[at], at });
        }
        // Only ASCII passed.
        let name = std::str::from_utf8(raw).map_err(|_| TopicError::Empty)?;
        Ok(TopicName(Arc::from(name)))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_topic_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

impl fmt::Debug for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TopicName({})", self.0)
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for TopicName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for TopicName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for TopicName {
    type Err = TopicError;

    fn from_str(s: &str) -> Result<TopicName, TopicError> {
        TopicName::new(s)
    }
}

impl fmt::Display for TopicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopicError::Empty => f.write_str("topic name must not be empty"),
            TopicError::TooLong(len) => write!(
                f,
                "topic name is {len} bytes long; at most {MAX_TOPIC_LEN} are allowed"
            ),
            TopicError::Forbidden { byte, at } => write!(
                f,
                "topic name holds byte 0x{byte:02x} at {at}; only A-Z, a-z, 0-9, '.', '_' and '-' are allowed"
            ),
        }
    }
}

impl std::error::Error for TopicError {}

/// One stretch of a session's membership of a topic, in the log's sequence numbers: the
/// session is entitled to the topic's events numbered after `joined`, up to and including
/// `left` once it left.
///
/// A [`History`](crate::History) reads these to replay a session's topics: an event published
/// before the session joined is never replayed, nor one published after it left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// The topic.
    pub topic: TopicName,
    /// The log's head when the session joined: its entitlement starts after it.
    pub joined: u64,
    /// `None` while a member; once it left, the sequence number of the topic's last event
    /// before it left (a stretch without any event is not kept at all).
    pub left: Option<u64>,
}

impl Membership {
    /// Whether the session is a member now.
    pub fn is_open(&self) -> bool {
        self.left.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(TopicName::new("a").is_ok());
        assert!(TopicName::new("Room_1.b-c").is_ok());
        assert!(TopicName::new(&"x".repeat(64)).is_ok());
        assert_eq!(TopicName::new(""), Err(TopicError::Empty));
        assert_eq!(
            TopicName::new(&"x".repeat(65)),
            Err(TopicError::TooLong(65))
        );
        for bad in [
            "a b", "a/b", "{a}", "a:b", "a%20", "é", "a\r", "a~1.2", "a,b", "a\0",
        ] {
            assert!(
                matches!(TopicName::new(bad), Err(TopicError::Forbidden { .. })),
                "{bad:?}"
            );
        }
        assert_eq!(
            TopicName::parse(&[b'a', 0xff]),
            Err(TopicError::Forbidden { byte: 0xff, at: 1 })
        );
        let msg = TopicName::new("a{").unwrap_err().to_string();
        assert!(msg.contains("0x7b at 1"), "{msg}");
    }
}
