//! Session ids: the validated [`SessionId`] type, where an id came from, and the generator trait.

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

use crate::error::SignatureError;

/// Longest client-supplied id accepted by default, in bytes.
pub const DEFAULT_MAX_ID_LEN: usize = 128;

/// A session id: non-empty UTF-8 without control characters, cheap to clone.
///
/// The id rides the SSE `id:` field, so the browser sends it back as `Last-Event-ID` on every
/// reconnect. A value of this type can never carry a second field into the stream: CR, LF, NUL
/// and every other ASCII control character are refused when it is made.
///
/// ```
/// use sse_proto::SessionId;
///
/// let id = SessionId::parse(b"tab-42", 128).unwrap();
/// assert_eq!(id.as_str(), "tab-42");
/// assert!(SessionId::parse(b"evil\nevent: x", 128).is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(Arc<str>);

impl SessionId {
    /// Validates `raw` as an id of at most `max_len` bytes.
    ///
    /// Returns why the value was refused: empty, too long, not UTF-8, or holding a control
    /// character (CR, LF, NUL, any other byte below 0x20, or DEL).
    pub fn parse(raw: &[u8], max_len: usize) -> Result<SessionId, IdRejection> {
        if raw.is_empty() {
            return Err(IdRejection::Empty);
        }
        if raw.len() > max_len {
            return Err(IdRejection::TooLong {
                len: raw.len(),
                max: max_len,
            });
        }
        if let Some(&b) = raw.iter().find(|&&b| b < 0x20 || b == 0x7f) {
            return Err(IdRejection::ControlByte(b));
        }
        match std::str::from_utf8(raw) {
            Ok(s) => Ok(SessionId(Arc::from(s))),
            Err(_) => Err(IdRejection::NotUtf8),
        }
    }

    /// Percent-decodes `raw` (a URL path segment or query value; `+` is a space) and
    /// validates the result as [`parse`](Self::parse) does.
    pub fn parse_percent_encoded(raw: &[u8], max_len: usize) -> Result<SessionId, IdRejection> {
        // Bound the work before decoding: an escape is at most three bytes per byte.
        if raw.len() > max_len.saturating_mul(3) {
            return Err(IdRejection::TooLong {
                len: raw.len(),
                max: max_len,
            });
        }
        SessionId::parse(&percent_decode(raw)?, max_len)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id's bytes, as they appear on the wire.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always `false`: an id is never empty. Present for API symmetry with `len`.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Borrow<str> for SessionId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for SessionId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Why a client-supplied id was not used.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdRejection {
    /// The value was empty.
    Empty,
    /// The value was longer than the limit.
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// The value was not valid UTF-8 (after percent-decoding, for `?id=`).
    NotUtf8,
    /// The value held a control character such as CR, LF or NUL (the byte is given).
    ControlByte(u8),
    /// A `%` in the query was not followed by two hex digits.
    BadPercentEncoding,
    /// Signed ids are required and this one does not verify: forged, altered, signed by an
    /// unknown key, or issued to another principal (feature `signing`).
    Signature(SignatureError),
    /// The application's id policy refused it ([`IdVerdict::Refuse`]).
    Refused,
    /// Resume mode: the id itself reads as another id and a position (`<id>~<epoch>.<seq>`),
    /// the form every call that takes an id resolves to that other session
    /// ([`Hub::session`](crate::Hub::session)).
    HoldsPosition,
}

impl fmt::Display for IdRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdRejection::Empty => f.write_str("empty id"),
            IdRejection::TooLong { len, max } => write!(f, "id of {len} bytes, limit is {max}"),
            IdRejection::NotUtf8 => f.write_str("id is not valid UTF-8"),
            IdRejection::ControlByte(b) => write!(f, "id holds control byte 0x{b:02x}"),
            IdRejection::BadPercentEncoding => f.write_str("id has a malformed %-escape"),
            IdRejection::Signature(e) => write!(f, "id does not verify: {e}"),
            IdRejection::Refused => f.write_str("id refused by the application's policy"),
            IdRejection::HoldsPosition => f.write_str("id reads as another id and a position"),
        }
    }
}

impl std::error::Error for IdRejection {}

/// Where the session id of an accepted connection came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdSource {
    /// The `Last-Event-ID` request header: a reconnection.
    LastEventId,
    /// The `id` query parameter: a tab offering the id it stored.
    Query,
    /// Made by the server's [`IdGenerator`].
    Generated,
}

/// What the application's id policy ([`HubBuilder::id_policy`](crate::HubBuilder::id_policy))
/// says of a client-offered id, which has passed every other check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdVerdict {
    /// Use it.
    Accept,
    /// Treat it as absent and report it ([`IdRejection::Refused`]): a fresh id is issued.
    Refuse,
    /// Treat it as absent without reporting it: a fresh id is issued (ids from before a
    /// login, say, that the application wants renewed).
    Reissue,
}

/// A client id that was offered and not used, with the reason (for logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RejectedId {
    /// Where it was offered (never [`IdSource::Generated`]).
    pub source: IdSource,
    /// Why it was refused.
    pub reason: IdRejection,
}

/// Makes fresh session ids. The core never draws randomness itself: the adapter passes one in.
///
/// An implementation must return ids that pass [`SessionId::parse`] with the configured limit.
pub trait IdGenerator: Send + Sync {
    /// Returns a new id, distinct from every live one with overwhelming probability.
    fn generate(&self) -> SessionId;

    /// Returns 16 fresh random bytes: the random part of a signed id (feature `signing`).
    ///
    /// The default folds a [`generate`](Self::generate)d id into 16 bytes, which keeps its
    /// randomness when the id carries at least 128 bits of it; override it otherwise.
    fn random_bytes(&self) -> [u8; 16] {
        let id = self.generate();
        let mut out = [0u8; 16];
        for (half, seed) in out
            .chunks_mut(8)
            .zip([0xcbf2_9ce4_8422_2325_u64, 0x84222325cbf29ce4])
        {
            let hash = id.as_bytes().iter().fold(seed, |h, &b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
            half.copy_from_slice(&hash.to_le_bytes());
        }
        out
    }
}

/// The default generator: a random UUID v4 in its hyphenated form (36 bytes).
#[derive(Debug, Clone, Copy, Default)]
pub struct UuidV4;

impl IdGenerator for UuidV4 {
    fn generate(&self) -> SessionId {
        let mut buf = uuid::Uuid::encode_buffer();
        let s = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf);
        SessionId(Arc::from(&*s))
    }

    /// A fresh UUID v4's bytes: 122 random bits.
    fn random_bytes(&self) -> [u8; 16] {
        *uuid::Uuid::new_v4().as_bytes()
    }
}

impl<F> IdGenerator for F
where
    F: Fn() -> SessionId + Send + Sync,
{
    fn generate(&self) -> SessionId {
        self()
    }
}

/// Percent-decodes a query value (`+` is a space, as in form encoding).
pub(crate) fn percent_decode(raw: &[u8]) -> Result<Vec<u8>, IdRejection> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'%' => {
                let hi = raw.get(i + 1).and_then(|&b| hex(b));
                let lo = raw.get(i + 2).and_then(|&b| hex(b));
                match (hi, lo) {
                    (Some(h), Some(l)) => out.push(h << 4 | l),
                    _ => return Err(IdRejection::BadPercentEncoding),
                }
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(out)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_ids() {
        let id = SessionId::parse("tab-1 ü".as_bytes(), 128).expect("valid");
        assert_eq!(id.as_str(), "tab-1 ü");
        assert_eq!(id.len(), 8);
    }

    #[test]
    fn refuses_hostile_ids() {
        let cases: &[(&[u8], IdRejection)] = &[
            (b"", IdRejection::Empty),
            (b"a\rb", IdRejection::ControlByte(b'\r')),
            (b"a\nevent: x", IdRejection::ControlByte(b'\n')),
            (b"a\0", IdRejection::ControlByte(0)),
            (b"\x7f", IdRejection::ControlByte(0x7f)),
            (b"\xff\xfe", IdRejection::NotUtf8),
        ];
        for (raw, want) in cases {
            assert_eq!(SessionId::parse(raw, 128), Err(*want), "{raw:?}");
        }
        let long = vec![b'a'; 10 * 1024];
        assert_eq!(
            SessionId::parse(&long, 128),
            Err(IdRejection::TooLong {
                len: 10240,
                max: 128
            })
        );
        assert!(SessionId::parse(&long[..128], 128).is_ok());
    }

    #[test]
    fn uuid_ids_are_valid_and_distinct() {
        let a = UuidV4.generate();
        let b = UuidV4.generate();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(SessionId::parse(a.as_bytes(), 36), Ok(a));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode(b"a%20b+c").as_deref(), Ok(&b"a b c"[..]));
        assert_eq!(percent_decode(b"%0A").as_deref(), Ok(&b"\n"[..]));
        assert_eq!(percent_decode(b"%zz"), Err(IdRejection::BadPercentEncoding));
        assert_eq!(percent_decode(b"%4"), Err(IdRejection::BadPercentEncoding));
    }
}
