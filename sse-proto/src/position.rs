//! Positions in a session's event log, and the event ids that carry them.
//!
//! In resume mode every logged event goes out with `id: <session>~<epoch>.<seq>`: the browser
//! sends the last one back as `Last-Event-ID`, which says both who the tab is and what it saw.
//! `<epoch>` names the log store's run (a restarted server has another, so its positions are
//! never mistaken for ours) and `<seq>` is the event's place in the store's single sequence,
//! which increases with every logged event, so a session's positions increase too. Both are
//! lowercase base 36. `~` never appears in a resumable session id, so the token splits at its
//! last `~`. With a sharded store the part after the `~` is a [`Cursor`](crate::Cursor),
//! which names a number for each shard the tab reads; a position is a cursor of shard 0 alone.

use std::fmt;

use bytes::{BufMut, BytesMut};

use crate::cursor::{Cursor, Kept};
use crate::frame::{Frame, INLINE_CAP};
use crate::id::SessionId;

/// Separates the session id from its position in an event id.
pub const POSITION_SEPARATOR: u8 = b'~';

/// Longest position suffix: `~`, a 64-bit epoch and a 64-bit sequence number in base 36 (13
/// digits each), and the `.` between them. A resumable session id is this much shorter than
/// the id limit, so that an event id never exceeds it.
pub const MAX_POSITION_LEN: usize = 1 + 13 + 1 + 13;

/// Where an event sits in a log store: the store's epoch and the event's sequence number.
///
/// Sequence numbers start at 1; `seq == 0` is the position before any event, which is where a
/// session created on an empty store starts.
///
/// ```
/// use sse_proto::Position;
///
/// let p = Position::new(0x2a, 1000);
/// assert_eq!(p.to_string(), "16.rs");
/// assert_eq!(Position::parse(b"16.rs"), Some(p));
/// assert_eq!(Position::parse(b"16.RS"), None); // lowercase only: one spelling per position
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position {
    /// The log store's epoch.
    pub epoch: u64,
    /// The sequence number within the epoch.
    pub seq: u64,
}

impl Position {
    /// The position `seq` of `epoch`.
    pub const fn new(epoch: u64, seq: u64) -> Position {
        Position { epoch, seq }
    }

    /// Reads `<epoch>.<seq>` in lowercase base 36, as [`Display`](fmt::Display) writes it.
    /// Returns `None` for anything else: other characters, leading zeros, overflow, a
    /// missing part.
    pub fn parse(raw: &[u8]) -> Option<Position> {
        let dot = raw.iter().position(|&b| b == b'.')?;
        Some(Position {
            epoch: parse_base36(&raw[..dot])?,
            seq: parse_base36(&raw[dot + 1..])?,
        })
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 13];
        f.write_str(base36(self.epoch, &mut buf))?;
        f.write_str(".")?;
        f.write_str(base36(self.seq, &mut buf))
    }
}

/// Writes `n` in lowercase base 36 at the end of `buf` and returns it as text.
pub(crate) fn base36(mut n: u64, buf: &mut [u8; 13]) -> &str {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = DIGITS[(n % 36) as usize];
        n /= 36;
        if n == 0 {
            break;
        }
    }
    // Only ASCII digits and letters were written.
    std::str::from_utf8(&buf[i..]).unwrap_or("0")
}

pub(crate) fn parse_base36(raw: &[u8]) -> Option<u64> {
    if raw.is_empty() || raw.len() > 13 || (raw.len() > 1 && raw[0] == b'0') {
        return None;
    }
    raw.iter().try_fold(0u64, |n, &b| {
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'z' => b - b'a' + 10,
            _ => return None,
        };
        n.checked_mul(36)?.checked_add(u64::from(digit))
    })
}

/// What a client-supplied event id says about the position, in resume mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claimed {
    /// No position: the client offered a bare session id.
    None,
    /// A well-formed position: a [`Cursor`], which names shard 0 alone unless the store is
    /// sharded.
    At(Cursor),
    /// Something after the separator that is not a position: forged, truncated or from a
    /// client that mangled it. The session id before it is still usable.
    Invalid,
}

/// Splits a client-supplied event id at its last `~` into the session id part and what the
/// rest claims. Without a `~` the whole value is the session id.
pub(crate) fn split_token(raw: &[u8]) -> (&[u8], Claimed) {
    match raw.iter().rposition(|&b| b == POSITION_SEPARATOR) {
        None => (raw, Claimed::None),
        Some(i) => {
            let claimed = match Cursor::parse(&raw[i + 1..]) {
                Some(p) => Claimed::At(p),
                None => Claimed::Invalid,
            };
            (&raw[..i], claimed)
        }
    }
}

/// A logged event's place, for the connections it is queued on: its shard and sequence
/// number, and for shard 0 the end of its `id:` line, `~<epoch>.<seq>\n`, written once for
/// every tab whose cursor names shard 0 alone.
pub(crate) struct Stamp {
    pub(crate) shard: u8,
    pub(crate) seq: u64,
    epoch: u64,
    suffix: Option<Suffix>,
}

impl Stamp {
    pub(crate) fn new(epoch: u64, shard: u8, seq: u64) -> Stamp {
        Stamp {
            shard,
            seq,
            epoch,
            suffix: (shard == 0).then(|| Suffix::new(Position::new(epoch, seq))),
        }
    }

    /// The `id:` line for session `id`, whose cursor (this event included) is `seen`.
    #[inline]
    pub(crate) fn line(&self, id: &SessionId, seen: &Kept) -> Frame {
        match &self.suffix {
            Some(suffix) if seen.is_base() => suffix.line(id),
            _ => cursor_line(id, &seen.cursor(self.epoch)),
        }
    }

    /// [`line`](Self::line), given the cursor whole.
    pub(crate) fn line_of(&self, id: &SessionId, cursor: &Cursor) -> Frame {
        match &self.suffix {
            Some(suffix) if cursor.len() == 1 => suffix.line(id),
            _ => cursor_line(id, cursor),
        }
    }
}

/// The `id:` line of a logged event: `id: <session>~<cursor>\n`.
pub(crate) fn cursor_line(id: &SessionId, cursor: &Cursor) -> Frame {
    let text = cursor.to_string();
    let mut buf = BytesMut::with_capacity(6 + id.len() + text.len());
    buf.put_slice(b"id: ");
    buf.put_slice(id.as_bytes());
    buf.put_u8(POSITION_SEPARATOR);
    buf.put_slice(text.as_bytes());
    buf.put_u8(b'\n');
    Frame::from_bytes(buf.freeze())
}

/// The end of an `id:` line, `~<position>\n`, written once for an event and put after each
/// session's id: a broadcast formats its position once, not once per connection.
pub(crate) struct Suffix {
    buf: [u8; MAX_POSITION_LEN + 1],
    len: usize,
}

impl Suffix {
    pub(crate) fn new(at: Position) -> Suffix {
        let mut buf = [0u8; MAX_POSITION_LEN + 1];
        let mut digits = [0u8; 13];
        let epoch = base36(at.epoch, &mut digits).as_bytes();
        let mut len = 0;
        for part in [&[POSITION_SEPARATOR][..], epoch] {
            buf[len..len + part.len()].copy_from_slice(part);
            len += part.len();
        }
        let seq = base36(at.seq, &mut digits).as_bytes();
        for part in [&b"."[..], seq, b"\n"] {
            buf[len..len + part.len()].copy_from_slice(part);
            len += part.len();
        }
        Suffix { buf, len }
    }

    /// `id: <id>~<position>\n`. Short lines (a UUID session and a sequence number under
    /// 36⁶) live inside the frame, so a broadcast allocates nothing per connection for them.
    #[inline]
    pub(crate) fn line(&self, id: &SessionId) -> Frame {
        let suffix = &self.buf[..self.len];
        let len = 4 + id.len() + suffix.len();
        if len <= INLINE_CAP {
            let mut buf = [0u8; INLINE_CAP];
            buf[..4].copy_from_slice(b"id: ");
            buf[4..4 + id.len()].copy_from_slice(id.as_bytes());
            buf[4 + id.len()..len].copy_from_slice(suffix);
            // `len <= INLINE_CAP`, which fits in a u8.
            return Frame::inline(buf, len as u8);
        }
        let mut buf = BytesMut::with_capacity(len);
        buf.put_slice(b"id: ");
        buf.put_slice(id.as_bytes());
        buf.put_slice(suffix);
        Frame::from_bytes(buf.freeze())
    }
}

/// The value of an event id that carries a cursor: `<session>~<cursor>`.
pub(crate) fn token(id: &SessionId, at: &Cursor) -> String {
    format!("{id}~{at}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> SessionId {
        SessionId::parse(s.as_bytes(), 128).expect("valid")
    }

    #[test]
    fn positions_round_trip_in_one_spelling() {
        for (epoch, seq) in [(0, 0), (1, 35), (36, 36), (u64::MAX, u64::MAX), (0xfff, 7)] {
            let p = Position::new(epoch, seq);
            let text = p.to_string();
            assert!(text.len() < MAX_POSITION_LEN, "{text}"); // the `~` is not in it
            assert_eq!(Position::parse(text.as_bytes()), Some(p), "{text}");
        }
        for bad in [
            &b""[..],
            b".",
            b"1.",
            b".1",
            b"01.1",
            b"1.01",
            b"1.A",
            b"1.1.1",
            b"1 .1",
            b"-1.1",
            b"zzzzzzzzzzzzzz.1",
            b"3w5e11264sgsg.0", // u64::MAX + 1
            b"\xff.1",
        ] {
            assert_eq!(
                Position::parse(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn tokens_split_at_the_last_separator() {
        assert_eq!(split_token(b"tab"), (&b"tab"[..], Claimed::None));
        assert_eq!(
            split_token(b"a~b~1.2"),
            (&b"a~b"[..], Claimed::At(Cursor::new(1, 2)))
        );
        assert_eq!(split_token(b"tab~"), (&b"tab"[..], Claimed::Invalid));
        assert_eq!(split_token(b"tab~x"), (&b"tab"[..], Claimed::Invalid));
        assert_eq!(
            split_token(b"~1.1"),
            (&b""[..], Claimed::At(Cursor::new(1, 1)))
        );
    }

    #[test]
    fn id_lines_stay_inline_for_uuid_sessions() {
        let sid = id("0f8fad5b-d9cb-469f-a165-70867728950e");
        let seq = 36u64.pow(6) - 1;
        let stamp = Stamp::new(u64::from(u32::MAX), 0, seq);
        let cursor = Cursor::new(u64::from(u32::MAX), seq);
        let line = stamp.line(&sid, &Kept::new(&cursor));
        let text = line.to_bytes();
        assert_eq!(
            &text[..],
            b"id: 0f8fad5b-d9cb-469f-a165-70867728950e~1z141z3.zzzzzz\n"
        );
        assert_eq!(line.segment_count(), 1);
        assert!(!line.is_dispatched());
        // The same bytes as the cursor's own line.
        assert_eq!(cursor_line(&sid, &cursor).to_bytes(), text);
        // A long one spills to the heap with the same bytes.
        let long = id(&"x".repeat(100));
        let line = Stamp::new(1, 0, 2).line(&long, &Kept::Base(2));
        assert_eq!(line.to_bytes(), format!("id: {}~1.2\n", "x".repeat(100)));
        assert_eq!(
            token(&long, &Cursor::new(1, 2)),
            format!("{}~1.2", "x".repeat(100))
        );
    }

    #[test]
    fn a_cursor_naming_several_shards_is_written_whole() {
        let sid = id("tab");
        let mut cursor = Cursor::new(1, 5);
        cursor.set(3, 9).unwrap();
        // An event of shard 3 (seq 9) for a tab that reads shards 0 and 3.
        let kept = Kept::new(&cursor);
        let line = Stamp::new(1, 3, 9).line(&sid, &kept);
        assert_eq!(line.to_bytes(), "id: tab~1.5.39\n");
        // An event of shard 0 for the same tab: its suffix alone would drop shard 3.
        let line = Stamp::new(1, 0, 5).line(&sid, &kept);
        assert_eq!(line.to_bytes(), "id: tab~1.5.39\n");
    }
}
