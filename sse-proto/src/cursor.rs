//! Cursors: where a tab stands in each shard of a sharded store.
//!
//! A store with one sequence gives every event a [`Position`]: the tab's last event id says
//! `<epoch>.<seq>`, and everything after `seq` is what it missed. A sharded store (one
//! sequence per shard, so no shard waits on another) cannot order its shards' events against
//! each other, so a tab's place is one sequence number per shard it reads: a [`Cursor`].
//!
//! Shard 0 carries the broadcasts, which every tab reads, so it is always named, first; a
//! cursor naming only shard 0 is spelled exactly as the position it is. Each other shard
//! the tab reads (its session's, its user's, its topics') follows, in ascending order:
//!
//! ```text
//! <epoch>.<seq of shard 0>[.<shard><seq>]…      e.g.  k3j2.1a4.3zz1.a9k
//! ```
//!
//! `<shard>` is one base-36 digit (`1`–`z`: shards 1 to 35), `<seq>` the shard's sequence
//! number in lowercase base 36 right after it; the epoch names the store's run, as in a
//! position. Only `0-9 a-z .` appear: URL-safe, never a `~`.
//!
//! A cursor rides the 128-byte event id beside the session id, so how many shards a tab
//! may read depends on its id's length ([`Cursor::max_shards`]): six after a UUID, four
//! after a signed id. Order is kept per shard (per topic, per user), not across shards.

use std::fmt;

use crate::position::{MAX_POSITION_LEN, Position, base36, parse_base36};

/// How many shards a sharded store may have: a shard is named by one base-36 digit.
pub const MAX_SHARDS: usize = 36;

/// The most shards one cursor names, shard 0 included.
pub const MAX_CURSOR_SHARDS: usize = 6;

/// The widest a sequence number of a shard other than 0 is written (base-36 digits): a
/// sequence reaches 36¹⁰ after a century at a million events a second.
pub const MAX_SHARD_SEQ_DIGITS: usize = 10;

/// The bytes one shard other than 0 adds to an event id at most: `.`, the shard's digit and
/// its sequence number.
pub const CURSOR_COMPONENT_LEN: usize = 2 + MAX_SHARD_SEQ_DIGITS;

/// The greatest sequence number a shard other than 0 may have in a cursor.
pub const MAX_SHARD_SEQ: u64 = 36u64.pow(MAX_SHARD_SEQ_DIGITS as u32) - 1;

/// Where a tab stands in each shard it reads: the store's epoch, and a sequence number for
/// shard 0 and for each other shard named.
///
/// ```
/// use sse_proto::{Cursor, Position};
///
/// let mut c = Cursor::new(0x2a, 1000);
/// assert_eq!(c.to_string(), "16.rs"); // one shard: a position's spelling
/// c.set(3, 71).unwrap();
/// c.set(10, 5).unwrap();
/// assert_eq!(c.to_string(), "16.rs.31z.a5");
/// assert_eq!(Cursor::parse(b"16.rs.31z.a5"), Some(c));
/// assert_eq!(c.seq(3), Some(71));
/// assert_eq!(c.seq(4), None);
/// assert_eq!(c.position(), Position::new(0x2a, 1000));
/// assert_eq!(Cursor::parse(b"16.rs.a5.31z"), None); // shards in ascending order only
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cursor {
    epoch: u64,
    len: u8,
    shards: [u8; MAX_CURSOR_SHARDS],
    seqs: [u64; MAX_CURSOR_SHARDS],
}

/// A cursor as a connection or a session keeps it: shard 0's number alone inline (what a
/// tab of a log with one shard has), a cursor naming more shards boxed; 16 bytes either way
/// where a cursor is 64. The epoch is not kept: whoever reads it knows the log's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kept {
    Base(u64),
    Full(Box<Cursor>),
}

impl Kept {
    pub(crate) fn new(cursor: &Cursor) -> Kept {
        match cursor.len() {
            1 => Kept::Base(cursor.seqs[0]),
            _ => Kept::Full(Box::new(Cursor {
                epoch: 0,
                ..*cursor
            })),
        }
    }

    /// The cursor, in `epoch`.
    pub(crate) fn cursor(&self, epoch: u64) -> Cursor {
        match self {
            Kept::Base(seq) => Cursor::new(epoch, *seq),
            Kept::Full(cursor) => Cursor { epoch, ..**cursor },
        }
    }

    /// The number of `shard`, when named.
    pub(crate) fn seq(&self, shard: u8) -> Option<u64> {
        match self {
            Kept::Base(seq) => (shard == 0).then_some(*seq),
            Kept::Full(cursor) => cursor.seq(shard),
        }
    }

    /// Whether it names shard 0 alone.
    pub(crate) fn is_base(&self) -> bool {
        matches!(self, Kept::Base(_))
    }

    /// As [`Cursor::set`].
    pub(crate) fn set(&mut self, shard: u8, seq: u64) -> Result<(), CursorFull> {
        match self {
            Kept::Base(base) if shard == 0 => {
                *base = seq;
                Ok(())
            }
            Kept::Base(base) => {
                let mut cursor = Cursor::new(0, *base);
                cursor.set(shard, seq)?;
                *self = Kept::Full(Box::new(cursor));
                Ok(())
            }
            Kept::Full(cursor) => cursor.set(shard, seq),
        }
    }

    /// As [`Cursor::raise`].
    pub(crate) fn raise(&mut self, shard: u8, seq: u64) -> Result<(), CursorFull> {
        match self.seq(shard) {
            Some(old) if old >= seq => Ok(()),
            _ => self.set(shard, seq),
        }
    }

    /// As [`Cursor::raise_all`].
    pub(crate) fn raise_all(&mut self, other: &Cursor) {
        for (shard, seq) in other.components() {
            let _ = self.raise(shard, seq);
        }
    }
}

/// A cursor would name more shards than it may ([`Cursor::set`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CursorFull;

impl fmt::Display for CursorFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a cursor names at most {MAX_CURSOR_SHARDS} shards")
    }
}

impl std::error::Error for CursorFull {}

impl Cursor {
    /// The cursor at `seq` of shard 0 in `epoch`, naming no other shard.
    pub const fn new(epoch: u64, seq: u64) -> Cursor {
        let mut seqs = [0; MAX_CURSOR_SHARDS];
        seqs[0] = seq;
        Cursor {
            epoch,
            len: 1,
            shards: [0; MAX_CURSOR_SHARDS],
            seqs,
        }
    }

    /// The store's epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Where the tab stands in shard 0, as a position.
    pub fn position(&self) -> Position {
        Position::new(self.epoch, self.seqs[0])
    }

    /// The sequence number of `shard`, when the cursor names it.
    pub fn seq(&self, shard: u8) -> Option<u64> {
        self.components()
            .find(|&(s, _)| s == shard)
            .map(|(_, seq)| seq)
    }

    /// The shards named, with their sequence numbers, in ascending order (shard 0 first).
    pub fn components(&self) -> impl Iterator<Item = (u8, u64)> + '_ {
        let n = usize::from(self.len);
        self.shards[..n]
            .iter()
            .copied()
            .zip(self.seqs[..n].iter().copied())
    }

    /// How many shards the cursor names, shard 0 included.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Always `false`: shard 0 is always named. Present for API symmetry with `len`.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The greatest shard named (0 for a position).
    pub fn last_shard(&self) -> u8 {
        self.shards[usize::from(self.len) - 1]
    }

    /// Sets the sequence number of `shard`, naming it when it was not. Fails when the
    /// cursor names [`MAX_CURSOR_SHARDS`] already, and (as a programming error) for a shard
    /// of [`MAX_SHARDS`] or more or a sequence number past [`MAX_SHARD_SEQ`] on a shard
    /// other than 0, which could not be written back.
    pub fn set(&mut self, shard: u8, seq: u64) -> Result<(), CursorFull> {
        let n = usize::from(self.len);
        if usize::from(shard) >= MAX_SHARDS || (shard != 0 && seq > MAX_SHARD_SEQ) {
            return Err(CursorFull);
        }
        let at = self.shards[..n].partition_point(|&s| s < shard);
        if at < n && self.shards[at] == shard {
            self.seqs[at] = seq;
            return Ok(());
        }
        if n == MAX_CURSOR_SHARDS {
            return Err(CursorFull);
        }
        self.shards.copy_within(at..n, at + 1);
        self.seqs.copy_within(at..n, at + 1);
        self.shards[at] = shard;
        self.seqs[at] = seq;
        self.len += 1;
        Ok(())
    }

    /// Raises the sequence number of `shard` to `seq` when it is lower, naming the shard
    /// when it was not (see [`set`](Self::set)).
    pub fn raise(&mut self, shard: u8, seq: u64) -> Result<(), CursorFull> {
        match self.seq(shard) {
            Some(old) if old >= seq => Ok(()),
            _ => self.set(shard, seq),
        }
    }

    /// The cursor without `shard` (shard 0 stays).
    pub fn without(mut self, shard: u8) -> Cursor {
        let n = usize::from(self.len);
        if shard == 0 {
            return self;
        }
        if let Some(at) = self.shards[..n].iter().position(|&s| s == shard) {
            self.shards.copy_within(at + 1..n, at);
            self.seqs.copy_within(at + 1..n, at);
            self.len -= 1;
        }
        self
    }

    /// How many shards, shard 0 included, a cursor may name after a session id of `id_len`
    /// bytes when event ids are limited to `max_id_len` bytes: the session id leaves room
    /// for a position ([`MAX_POSITION_LEN`]), and each other shard takes up to
    /// [`CURSOR_COMPONENT_LEN`] bytes more.
    ///
    /// ```
    /// use sse_proto::Cursor;
    ///
    /// assert_eq!(Cursor::max_shards(36, 128), 6); // a UUID
    /// assert_eq!(Cursor::max_shards(62, 128), 4); // a signed id, at its longest
    /// assert_eq!(Cursor::max_shards(100, 128), 1);
    /// ```
    pub fn max_shards(id_len: usize, max_id_len: usize) -> usize {
        let room = max_id_len.saturating_sub(MAX_POSITION_LEN + id_len);
        (1 + room / CURSOR_COMPONENT_LEN).min(MAX_CURSOR_SHARDS)
    }

    /// Reads a cursor as [`Display`](fmt::Display) writes it. Returns `None` for anything
    /// else: other characters, leading zeros, overflow, a missing part, shards out of order
    /// or repeated, more than [`MAX_CURSOR_SHARDS`].
    pub fn parse(raw: &[u8]) -> Option<Cursor> {
        let mut parts = raw.split(|&b| b == b'.');
        let epoch = parse_base36(parts.next()?)?;
        let mut cursor = Cursor::new(epoch, parse_base36(parts.next()?)?);
        for part in parts {
            let (&digit, seq) = part.split_first()?;
            let shard = shard_of(digit)?;
            let seq = parse_base36(seq).filter(|_| seq.len() <= MAX_SHARD_SEQ_DIGITS)?;
            if shard <= cursor.last_shard() || cursor.len() == MAX_CURSOR_SHARDS {
                return None;
            }
            cursor.set(shard, seq).ok()?;
        }
        Some(cursor)
    }
}

/// The shard a base-36 digit names, 1 to 35.
fn shard_of(digit: u8) -> Option<u8> {
    match digit {
        b'1'..=b'9' => Some(digit - b'0'),
        b'a'..=b'z' => Some(digit - b'a' + 10),
        _ => None,
    }
}

impl From<Position> for Cursor {
    fn from(p: Position) -> Cursor {
        Cursor::new(p.epoch, p.seq)
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.position(), f)?;
        let mut buf = [0u8; 13];
        for (shard, seq) in self.components().skip(1) {
            let digit = base36(u64::from(shard), &mut buf).to_owned();
            write!(f, ".{digit}{}", base36(seq, &mut buf))?;
        }
        Ok(())
    }
}

impl fmt::Debug for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cursor({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_of_shard_0_is_its_position() {
        for (epoch, seq) in [(0, 0), (1, 35), (u64::MAX, u64::MAX)] {
            let p = Position::new(epoch, seq);
            let c = Cursor::from(p);
            assert_eq!(c.to_string(), p.to_string());
            assert_eq!(Cursor::parse(p.to_string().as_bytes()), Some(c));
            assert_eq!(c.position(), p);
        }
    }

    #[test]
    fn cursors_round_trip_in_one_spelling() {
        let mut c = Cursor::new(7, 0);
        for (shard, seq) in [(35, MAX_SHARD_SEQ), (1, 0), (20, 36), (5, 1), (9, 9)] {
            c.set(shard, seq).unwrap();
            let text = c.to_string();
            assert_eq!(Cursor::parse(text.as_bytes()), Some(c), "{text}");
        }
        assert_eq!(c.len(), MAX_CURSOR_SHARDS);
        assert_eq!(c.set(2, 1), Err(CursorFull));
        // A named shard is updated, not added.
        c.set(20, 99).unwrap();
        assert_eq!(c.seq(20), Some(99));
        let shorter = c.without(20);
        assert_eq!(shorter.len(), MAX_CURSOR_SHARDS - 1);
        assert_eq!(shorter.seq(20), None);
        assert_eq!(shorter.without(0), shorter);
        let widest = c.to_string();
        assert!(
            widest.len() <= MAX_POSITION_LEN - 1 + 5 * CURSOR_COMPONENT_LEN,
            "{widest}"
        );
    }

    #[test]
    fn a_kept_cursor_boxes_only_past_shard_0() {
        assert_eq!(std::mem::size_of::<Kept>(), 16);
        let mut kept = Kept::new(&Cursor::new(9, 4));
        assert!(kept.is_base());
        kept.raise(0, 3).unwrap();
        assert_eq!(kept.seq(0), Some(4));
        kept.set(0, 5).unwrap();
        assert_eq!(kept, Kept::Base(5));
        kept.raise(7, 2).unwrap();
        assert!(!kept.is_base());
        assert_eq!(kept.cursor(9).to_string(), "9.5.72");
        assert_eq!(kept.seq(7), Some(2));
        assert_eq!(Kept::new(&kept.cursor(9)), kept);
    }

    #[test]
    fn hostile_cursors_are_refused() {
        for bad in [
            &b"1.1."[..],
            b"1.1.1",     // a shard without a sequence number
            b"1.1.01",    // shard 0 named twice
            b"1.1.a1.31", // out of order
            b"1.1.31.31",
            b"1.1.1a.1a.2a.3a.4a.5a", // seven shards
            b"1.1.A1",
            b"1.1.101",          // leading zero
            b"1.1.1zzzzzzzzzzz", // eleven digits
            b"1.1.-1",
            b"1..31",
            b"1.1.31.",
        ] {
            assert_eq!(
                Cursor::parse(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(Cursor::parse(b"1.1.1a.2a.3a.4a.5a").is_some());
        assert!(Cursor::parse(b"1.1.1zzzzzzzzzz").is_some());
        let mut c = Cursor::new(1, 1);
        assert_eq!(c.set(36, 1), Err(CursorFull));
        assert_eq!(c.set(1, MAX_SHARD_SEQ + 1), Err(CursorFull));
        assert!(c.set(0, u64::MAX).is_ok());
    }

    #[test]
    fn every_shard_a_cursor_may_name_fits_the_id_limit() {
        for id_len in 1..=128 - MAX_POSITION_LEN {
            let n = Cursor::max_shards(id_len, 128);
            let mut c = Cursor::new(u64::MAX, u64::MAX);
            for shard in (35 - n as u8 + 2)..=35 {
                c.set(shard, MAX_SHARD_SEQ).unwrap();
            }
            assert_eq!(c.len(), n);
            assert!(id_len + 1 + c.to_string().len() <= 128, "{id_len}: {c}");
        }
    }
}
