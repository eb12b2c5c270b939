//! Incremental decoder of `text/event-stream`, following the WHATWG HTML standard
//! (§9.2.6 "Interpreting an event stream").
//!
//! The decoder is what a client (or a test) uses to read what a server sent: it takes bytes
//! in chunks of any size and hands out the events an `EventSource` would dispatch. It is
//! chunk-invariant: splitting a stream anywhere, even between the CR and LF of a CRLF or
//! inside the byte-order mark, gives the same items.
//!
//! A hostile stream cannot make it grow without bound: a line longer than
//! [`Limits::max_line_len`] or an event whose data outgrows [`Limits::max_event_size`] is a
//! [`DecodeError`], and the decoder stays failed after that.

use std::collections::VecDeque;

use crate::error::DecodeError;

/// The UTF-8 byte-order mark, skipped once at the start of a stream.
const BOM: [u8; 3] = [0xef, 0xbb, 0xbf];

/// `Decoder::bom` once the start of the stream is behind us.
const BOM_DONE: u8 = u8::MAX;

/// Size limits of a [`Decoder`].
///
/// Both count raw bytes as received (before invalid UTF-8 is replaced with U+FFFD).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest line accepted, in bytes, not counting its line break.
    pub max_line_len: usize,
    /// Largest data buffer of one event, in bytes (the data lines plus one LF each).
    pub max_event_size: usize,
}

impl Limits {
    /// 8 MiB for a line and for the data of one event.
    pub const DEFAULT: Limits = Limits {
        max_line_len: 8 << 20,
        max_event_size: 8 << 20,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// One dispatched event, as `EventSource` would deliver it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MessageEvent {
    /// The event type (`"message"` when the stream gave none).
    pub event: String,
    /// The data, lines joined with `\n`.
    pub data: String,
    /// The last event id in force when the event was dispatched.
    pub last_event_id: String,
}

/// What the decoder hands out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// An event was dispatched.
    Event(MessageEvent),
    /// A valid `retry:` field set the reconnection time, in milliseconds.
    Retry(u64),
}

/// Incremental event-stream decoder.
///
/// ```
/// use sse_proto::{Decoder, Item};
///
/// let mut decoder = Decoder::new();
/// decoder.feed(b"id: 7\nevent: greet\ndata: hello\r")?;
/// decoder.feed(b"\ndata: world\n\n")?;
/// let Some(Item::Event(event)) = decoder.poll_item() else { panic!("one event") };
/// assert_eq!((event.event.as_str(), event.data.as_str()), ("greet", "hello\nworld"));
/// assert_eq!(decoder.last_event_id(), "7");
/// # Ok::<(), sse_proto::DecodeError>(())
/// ```
#[derive(Debug)]
pub struct Decoder {
    limits: Limits,
    /// Bytes of a line whose break has not arrived yet.
    line: Vec<u8>,
    /// The previous chunk ended with CR: an LF at the start of the next one is part of it.
    after_cr: bool,
    /// How many bytes of a leading BOM have been seen; `BOM_DONE` once the start is behind us.
    bom: u8,
    data: Vec<u8>,
    event_type: Vec<u8>,
    id_buffer: String,
    last_event_id: String,
    retry: Option<u64>,
    items: VecDeque<Item>,
    error: Option<DecodeError>,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

impl Decoder {
    /// A decoder with [`Limits::DEFAULT`].
    pub fn new() -> Self {
        Decoder::with_limits(Limits::DEFAULT)
    }

    /// A decoder with the given limits.
    pub fn with_limits(limits: Limits) -> Self {
        Decoder {
            limits,
            line: Vec::new(),
            after_cr: false,
            bom: 0,
            data: Vec::new(),
            event_type: Vec::new(),
            id_buffer: String::new(),
            last_event_id: String::new(),
            retry: None,
            items: VecDeque::new(),
            error: None,
        }
    }

    /// The limits this decoder enforces.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Feeds the next bytes of the stream.
    ///
    /// Complete events become available from [`poll_item`](Self::poll_item). After an error
    /// the stream is unusable: every later call returns the same error (items dispatched
    /// before it can still be polled) until [`finish`](Self::finish).
    pub fn feed(&mut self, mut chunk: &[u8]) -> Result<(), DecodeError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.bom != BOM_DONE {
            chunk = self.skip_bom(chunk);
        }
        if self.after_cr && !chunk.is_empty() {
            self.after_cr = false;
            if chunk[0] == b'\n' {
                chunk = &chunk[1..];
            }
        }
        let result = self.feed_lines(chunk);
        if let Err(e) = result {
            self.error = Some(e);
            self.line = Vec::new();
            self.data = Vec::new();
        }
        result
    }

    /// Consumes the BOM (or the part of it this chunk holds) at the very start of the stream.
    fn skip_bom<'a>(&mut self, mut chunk: &'a [u8]) -> &'a [u8] {
        while let Some((&byte, rest)) = chunk.split_first() {
            let seen = usize::from(self.bom);
            if byte != BOM[seen] {
                // Not a BOM after all: what matched so far is ordinary line content.
                self.line.extend_from_slice(&BOM[..seen]);
                self.bom = BOM_DONE;
                return chunk;
            }
            chunk = rest;
            self.bom += 1;
            if usize::from(self.bom) == BOM.len() {
                self.bom = BOM_DONE;
                return chunk;
            }
        }
        chunk
    }

    fn feed_lines(&mut self, mut chunk: &[u8]) -> Result<(), DecodeError> {
        while let Some(end) = memchr::memchr2(b'\r', b'\n', chunk) {
            let (head, rest) = chunk.split_at(end);
            let crlf = rest.starts_with(b"\r\n");
            if rest == b"\r" {
                // The LF that may complete this CRLF is in the next chunk.
                self.after_cr = true;
            }
            chunk = &rest[if crlf { 2 } else { 1 }..];
            if self.line.is_empty() {
                self.check_line(head.len())?;
                self.process_line(head)?;
            } else {
                self.check_line(self.line.len() + head.len())?;
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(head);
                let result = self.process_line(&line);
                line.clear();
                self.line = line;
                result?;
            }
        }
        self.check_line(self.line.len() + chunk.len())?;
        self.line.extend_from_slice(chunk);
        Ok(())
    }

    fn check_line(&self, len: usize) -> Result<(), DecodeError> {
        if len > self.limits.max_line_len {
            return Err(DecodeError::LineTooLong {
                limit: self.limits.max_line_len,
            });
        }
        Ok(())
    }

    fn process_line(&mut self, line: &[u8]) -> Result<(), DecodeError> {
        if line.is_empty() {
            self.dispatch();
            return Ok(());
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(0) => return Ok(()), // a comment
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        match field {
            b"data" => {
                let len = self.data.len() + value.len() + 1;
                if len > self.limits.max_event_size {
                    return Err(DecodeError::EventTooLarge {
                        limit: self.limits.max_event_size,
                    });
                }
                self.data.extend_from_slice(value);
                self.data.push(b'\n');
            }
            b"event" => {
                self.event_type.clear();
                self.event_type.extend_from_slice(value);
            }
            // An id holding NUL is ignored.
            b"id" if !value.contains(&0) => {
                self.id_buffer = String::from_utf8_lossy(value).into_owned();
            }
            // A retry that is not all ASCII digits is ignored.
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                let ms = value.iter().fold(0u64, |ms, &d| {
                    ms.saturating_mul(10).saturating_add(u64::from(d - b'0'))
                });
                self.retry = Some(ms);
                self.items.push_back(Item::Retry(ms));
            }
            _ => {}
        }
        Ok(())
    }

    /// The blank-line rule: the id takes effect, and the pending event goes out if it has data.
    fn dispatch(&mut self) {
        if self.last_event_id != self.id_buffer {
            self.last_event_id.clone_from(&self.id_buffer);
        }
        if self.data.is_empty() {
            self.event_type.clear();
            return;
        }
        self.data.pop(); // the LF after the last data line
        let data = into_string(std::mem::take(&mut self.data));
        let event = if self.event_type.is_empty() {
            "message".to_owned()
        } else {
            into_string(std::mem::take(&mut self.event_type))
        };
        self.items.push_back(Item::Event(MessageEvent {
            event,
            data,
            last_event_id: self.last_event_id.clone(),
        }));
    }

    /// The next dispatched event or retry, in stream order.
    pub fn poll_item(&mut self) -> Option<Item> {
        self.items.pop_front()
    }

    /// The end of the stream (the connection closed): an event still missing its blank line
    /// and a line still missing its break are discarded, as `EventSource` does.
    ///
    /// The decoder can then read a new connection's stream (a failed decoder is usable again);
    /// the last event id and the retry time are kept, as they are across an `EventSource`
    /// reconnect. Items already dispatched stay available from [`poll_item`](Self::poll_item).
    pub fn finish(&mut self) {
        self.line.clear();
        self.data.clear();
        self.event_type.clear();
        self.after_cr = false;
        self.bom = 0;
        self.error = None;
    }

    /// The last event id string: set by `id:` and taken over when an event is dispatched
    /// (even one without data). It is what a reconnect sends as `Last-Event-ID`.
    pub fn last_event_id(&self) -> &str {
        &self.last_event_id
    }

    /// The reconnection time from the last valid `retry:` field, in milliseconds.
    pub fn retry(&self) -> Option<u64> {
        self.retry
    }
}

/// UTF-8 decoding with U+FFFD for invalid sequences, without a copy when the bytes are valid.
fn into_string(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

#[cfg(test)]
mod tests;
