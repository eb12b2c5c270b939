//! The [`Event`] builder and its encoder into [`Frame`]s.

use std::borrow::Cow;
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use crate::error::{Field, FieldError, FieldReason, check_field};
use crate::frame::{Frame, INLINE_CAP};

/// Lines of data at least this long are referenced by the frame, not copied into it.
///
/// Below it a copy is cheaper than an extra buffer in the vectored write.
pub const REFERENCE_THRESHOLD: usize = 1024;

/// The keep-alive frame: an empty comment and a blank line.
pub(crate) const KEEP_ALIVE: &[u8] = b":\n\n";

/// The payload of an event: bytes split into `data:` lines when encoded.
///
/// Made from `Bytes`, `&'static str`, `String`, `Vec<u8>` or `&'static [u8]` without copying.
/// Bytes that are not UTF-8 are sent as they are; a browser decodes them with replacement
/// characters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Data {
    bytes: Bytes,
    /// Known to hold no CR or LF (JSON from serde_json), so encoding skips the scan.
    single_line: bool,
}

impl Data {
    /// The payload bytes.
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }
}

impl From<Bytes> for Data {
    fn from(bytes: Bytes) -> Data {
        Data {
            bytes,
            single_line: false,
        }
    }
}

impl From<&'static str> for Data {
    fn from(s: &'static str) -> Data {
        Bytes::from_static(s.as_bytes()).into()
    }
}

impl From<&'static [u8]> for Data {
    fn from(s: &'static [u8]) -> Data {
        Bytes::from_static(s).into()
    }
}

impl From<String> for Data {
    fn from(s: String) -> Data {
        Bytes::from(s).into()
    }
}

impl From<Vec<u8>> for Data {
    fn from(v: Vec<u8>) -> Data {
        Bytes::from(v).into()
    }
}

/// An event name checked when the program is compiled: made by [`event_name!`](crate::event_name)
/// (or [`EventName::new`] in a `const`), given to [`Event::named`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventName(&'static str);

impl EventName {
    /// The name `name`, which must not be empty nor hold CR, LF or NUL. Call it in a `const`
    /// (as [`event_name!`](crate::event_name) does) so that a bad name fails the build; in a
    /// `const` it cannot fail at run time.
    pub const fn new(name: &'static str) -> EventName {
        let bytes = name.as_bytes();
        assert!(!bytes.is_empty(), "an event name must not be empty");
        let mut i = 0;
        while i < bytes.len() {
            assert!(
                !matches!(bytes[i], b'\r' | b'\n' | b'\0'),
                "an event name must not hold CR, LF or NUL"
            );
            i += 1;
        }
        EventName(name)
    }

    /// The name.
    pub const fn as_str(&self) -> &'static str {
        self.0
    }
}

/// An [`EventName`] checked at compile time: a name that is empty or holds CR, LF or NUL is a
/// build error, so [`Event::named`] needs no `?`.
///
/// ```
/// use sse_proto::{Event, event_name};
///
/// let event = Event::named(event_name!("chat")).data("hi");
/// assert_eq!(event.name(), Some("chat"));
/// ```
///
/// ```compile_fail
/// let bad = sse_proto::event_name!("two\nlines");
/// ```
#[macro_export]
macro_rules! event_name {
    ($name:expr) => {{
        const NAME: $crate::EventName = $crate::EventName::new($name);
        NAME
    }};
}

/// One server-sent event, built field by field and encoded to a [`Frame`].
///
/// An event with a name or data is dispatched by the browser: when it has a name but no data,
/// one empty `data:` line is written so that the browser still fires it. An event with only a
/// comment or a retry is not dispatched. Data is split on CR, LF and CRLF (one break each) into
/// `data: ` lines, so a leading space survives and no payload can start another field.
///
/// The `id` field is not settable: in session mode the connection owns it (it carries the
/// session id, sent once in the preamble).
///
/// ```
/// use std::time::Duration;
/// use bytes::Buf;
/// use sse_proto::Event;
///
/// let frame = Event::new()
///     .event("chat")?
///     .data("hello\r\nworld")
///     .retry(Duration::from_secs(3))
///     .encode();
/// assert_eq!(frame.chunk(), b"retry: 3000\nevent: chat\ndata: hello\ndata: world\n\n");
///
/// assert!(Event::new().event("evil\ndata: x").is_err());
/// # Ok::<(), sse_proto::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[must_use]
pub struct Event {
    name: Option<Cow<'static, str>>,
    comment: Option<Cow<'static, str>>,
    retry: Option<u64>,
    data: Option<Data>,
}

impl Event {
    /// An empty event. Give it data, a name, a comment or a retry.
    #[inline]
    pub fn new() -> Event {
        Event::default()
    }

    /// Sets the event name (the `event:` field), which selects the browser listener.
    ///
    /// Fails with [`Error::InvalidField`](crate::Error::InvalidField) when the name is empty or
    /// holds CR, LF or NUL. For a name known when the program is written, [`named`](Self::named)
    /// with [`event_name!`](crate::event_name) cannot fail.
    #[inline]
    pub fn event(mut self, name: impl Into<Cow<'static, str>>) -> Result<Event, crate::Error> {
        let name = name.into();
        if name.is_empty() {
            return Err(FieldError {
                field: Field::Event,
                reason: FieldReason::Empty,
            }
            .into());
        }
        check_field(Field::Event, name.as_bytes())?;
        self.name = Some(name);
        Ok(self)
    }

    /// An event with a name checked when the program was compiled (see
    /// [`event_name!`](crate::event_name)).
    ///
    /// ```
    /// use sse_proto::{Event, event_name};
    ///
    /// let frame = Event::named(event_name!("tick")).data("12:00").encode();
    /// assert_eq!(frame.to_bytes(), &b"event: tick\ndata: 12:00\n\n"[..]);
    /// ```
    #[inline]
    pub fn named(name: EventName) -> Event {
        Event {
            name: Some(Cow::Borrowed(name.0)),
            ..Event::default()
        }
    }

    /// Sets the data, replacing any set before.
    #[inline]
    pub fn data(mut self, data: impl Into<Data>) -> Event {
        self.data = Some(data.into());
        self
    }

    /// Sets a comment line (`: text`), which the browser ignores. Fails with
    /// [`Error::InvalidField`](crate::Error::InvalidField) on CR, LF or NUL.
    pub fn comment(mut self, text: impl Into<Cow<'static, str>>) -> Result<Event, crate::Error> {
        let text = text.into();
        check_field(Field::Comment, text.as_bytes())?;
        self.comment = Some(text);
        Ok(self)
    }

    /// Sets the browser's reconnection delay (the `retry:` field), in whole milliseconds.
    pub fn retry(mut self, delay: Duration) -> Event {
        self.retry = Some(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// Sets the data to `value` serialized as compact JSON (feature `json`).
    ///
    /// The JSON is written straight into one buffer that the encoded frame then shares;
    /// compact JSON holds no line break, so encoding does not scan it again.
    #[cfg(feature = "json")]
    pub fn json<T: serde::Serialize + ?Sized>(mut self, value: &T) -> Result<Event, crate::Error> {
        use bytes::BufMut as _;
        let mut w = BytesMut::with_capacity(128).writer();
        serde_json::to_writer(&mut w, value).map_err(|e| crate::Error::Json(e.to_string()))?;
        self.data = Some(Data {
            bytes: w.into_inner().freeze(),
            single_line: true,
        });
        Ok(self)
    }

    /// The event name, if set.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The data, if set.
    pub fn data_ref(&self) -> Option<&Data> {
        self.data.as_ref()
    }

    /// Whether a browser would dispatch this event (it has a name or data).
    #[inline]
    pub fn is_dispatched(&self) -> bool {
        self.name.is_some() || self.data.is_some()
    }

    /// Encodes the event into a frame.
    ///
    /// Small events become one buffer. Lines of data of [`REFERENCE_THRESHOLD`] bytes or more
    /// are referenced, not copied, so a 1 MiB payload costs a few small allocations.
    pub fn encode(&self) -> Frame {
        let data_len = self.data.as_ref().map_or(0, |d| d.bytes.len());
        if data_len < REFERENCE_THRESHOLD {
            let (len, one_line) = self.encoded_len();
            if len <= INLINE_CAP {
                // Small enough to live in the frame itself: no allocation at all.
                let mut out = Inline::default();
                self.write(&mut out, one_line);
                debug_assert_eq!(out.len, len, "encoded_len is exact");
                // `len <= INLINE_CAP`, which fits in a u8.
                let frame = Frame::inline(out.buf, out.len as u8);
                return frame.dispatching(self.is_dispatched());
            }
            // The exact size: a buffer that is exactly full freezes into `Bytes` without a
            // second allocation (one with spare room needs a shared header allocated).
            let mut buf = BytesMut::with_capacity(len);
            self.write(&mut buf, one_line);
            debug_assert_eq!(buf.len(), len, "encoded_len is exact");
            return Frame::from_bytes(buf.freeze()).dispatching(self.is_dispatched());
        }
        let mut out = Segmented {
            buf: BytesMut::with_capacity(self.head_len() + 32),
            segs: Vec::with_capacity(4),
        };
        self.write(&mut out, false);
        out.segs.push(out.buf.freeze());
        Frame::from_segments(out.segs).dispatching(self.is_dispatched())
    }

    /// Encodes the event at the end of `buf`, copying everything (for small events, or to
    /// coalesce several events into a caller's buffer).
    pub fn encode_into(&self, buf: &mut BytesMut) {
        let (len, one_line) = self.encoded_len();
        buf.reserve(len);
        self.write(buf, one_line);
    }

    /// The exact number of bytes [`write`](Self::write) produces, and whether the data is
    /// one line (so writing it needs no second scan).
    #[inline]
    fn encoded_len(&self) -> (usize, bool) {
        let mut one_line = true;
        let mut len = 1; // the blank line
        if let Some(comment) = &self.comment {
            len += if comment.is_empty() {
                2
            } else {
                comment.len() + 3
            };
        }
        if let Some(ms) = self.retry {
            len += b"retry: \n".len() + decimal_len(ms);
        }
        if let Some(name) = &self.name {
            len += b"event: \n".len() + name.len();
        }
        const LINE: usize = b"data: \n".len();
        match &self.data {
            Some(data) if data.single_line => len += LINE + data.bytes.len(),
            Some(data) => {
                let mut lines = 0;
                for (start, end) in DataLines::new(&data.bytes) {
                    len += LINE + end - start;
                    lines += 1;
                }
                one_line = lines == 1;
            }
            None if self.name.is_some() => len += LINE,
            None => {}
        }
        (len, one_line)
    }

    fn head_len(&self) -> usize {
        let field = |s: &Option<Cow<'static, str>>| s.as_ref().map_or(0, |s| s.len() + 8);
        field(&self.name) + field(&self.comment) + if self.retry.is_some() { 28 } else { 0 } + 8
    }

    /// Writes the event to `out`; a [`Segmented`] output references long data lines.
    /// `one_line`: the data is known to hold no line break.
    #[inline]
    fn write(&self, out: &mut impl Out, one_line: bool) {
        if let Some(comment) = &self.comment {
            if comment.is_empty() {
                out.put(b":\n");
            } else {
                put_line(out, b": ", comment.as_bytes());
            }
        }
        if let Some(ms) = self.retry {
            out.put(b"retry: ");
            put_decimal(out, ms);
            out.put(b"\n");
        }
        if let Some(name) = &self.name {
            put_line(out, b"event: ", name.as_bytes());
        }
        match &self.data {
            Some(data) if data.single_line || one_line => {
                put_data_line(out, &data.bytes, 0, data.bytes.len());
            }
            Some(data) => {
                for (start, end) in DataLines::new(&data.bytes) {
                    put_data_line(out, &data.bytes, start, end);
                }
            }
            None if self.name.is_some() => out.put(b"data: \n"),
            None => {}
        }
        out.put(b"\n");
    }
}

/// Where an event is written: a buffer, a frame's inline bytes, or segments.
pub(crate) trait Out {
    /// Appends bytes.
    fn put(&mut self, bytes: &[u8]);

    /// Appends `data[start..end]` by reference if this output does that for a line this
    /// long; returns whether it did.
    fn reference(&mut self, _data: &Bytes, _start: usize, _end: usize) -> bool {
        false
    }
}

impl Out for BytesMut {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// The bytes of a small frame, written in place before they become a [`Frame`].
struct Inline {
    buf: [u8; INLINE_CAP],
    len: usize,
}

impl Default for Inline {
    fn default() -> Inline {
        Inline {
            buf: [0; INLINE_CAP],
            len: 0,
        }
    }
}

impl Out for Inline {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        // The caller checked that the event fits; a write past the end is dropped (and
        // caught by the length check in debug builds), never a panic.
        if let Some(dst) = self.buf.get_mut(self.len..self.len + bytes.len()) {
            dst.copy_from_slice(bytes);
            self.len += bytes.len();
        }
    }
}

/// A large event: the head and short lines are copied into `buf`, long data lines are
/// referenced, each split point starting a new segment.
struct Segmented {
    buf: BytesMut,
    segs: Vec<Bytes>,
}

impl Out for Segmented {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    fn reference(&mut self, data: &Bytes, start: usize, end: usize) -> bool {
        if end - start < REFERENCE_THRESHOLD {
            return false;
        }
        self.segs.push(self.buf.split().freeze());
        self.segs.push(data.slice(start..end));
        true
    }
}

#[inline]
fn put_line(out: &mut impl Out, prefix: &[u8], value: &[u8]) {
    out.put(prefix);
    out.put(value);
    out.put(b"\n");
}

/// Writes `data[start..end]` as one `data:` line, referenced when the output does that.
#[inline]
fn put_data_line(out: &mut impl Out, data: &Bytes, start: usize, end: usize) {
    out.put(b"data: ");
    if !out.reference(data, start, end) {
        out.put(&data[start..end]);
    }
    out.put(b"\n");
}

/// The `start..end` of each line of event data, split on CR, LF and CRLF (one break each):
/// always at least one line, and an empty one after a final break.
struct DataLines<'a> {
    bytes: &'a [u8],
    /// Where the next line starts; `None` once the last line was given.
    start: Option<usize>,
}

impl<'a> DataLines<'a> {
    #[inline]
    fn new(bytes: &'a [u8]) -> DataLines<'a> {
        DataLines {
            bytes,
            start: Some(0),
        }
    }
}

impl Iterator for DataLines<'_> {
    type Item = (usize, usize);

    #[inline]
    fn next(&mut self) -> Option<(usize, usize)> {
        let start = self.start?;
        let bytes = self.bytes;
        match memchr::memchr2(b'\r', b'\n', &bytes[start..]) {
            Some(i) => {
                let end = start + i;
                let crlf = bytes[end] == b'\r' && bytes.get(end + 1) == Some(&b'\n');
                self.start = Some(end + if crlf { 2 } else { 1 });
                Some((start, end))
            }
            None => {
                self.start = None;
                Some((start, bytes.len()))
            }
        }
    }
}

/// The number of decimal digits of `n`.
fn decimal_len(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// Writes `n` in decimal without going through `fmt`.
pub(crate) fn put_decimal(out: &mut impl Out, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.put(&digits[i..]);
}

#[cfg(test)]
mod tests;
