//! Encoded frames: the bytes of one event, cheap to clone, written with one vectored write.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The wire bytes of one encoded event (or comment, or preamble).
///
/// A frame is one contiguous buffer for small events. For a large payload it is a list of
/// segments: the `data: ` prefixes live in small buffers and the payload's lines are
/// slices of the caller's [`Bytes`], referenced rather than copied.
///
/// Cloning is cheap (reference counts only), so a broadcast encodes once and hands each
/// connection a clone. A frame implements [`Buf`]; each clone keeps its own read position,
/// and [`Buf::chunks_vectored`] returns every segment, so a writer sends it in one vectored
/// write.
///
/// ```
/// use bytes::Buf;
/// use sse_proto::Event;
///
/// let frame = Event::new().event("tick").unwrap().data("12:00").encode();
/// assert_eq!(frame.chunk(), b"event: tick\ndata: 12:00\n\n");
/// ```
#[derive(Clone, Debug)]
pub struct Frame {
    repr: Repr,
    /// Whether the frame ends with an event the browser dispatches.
    dispatched: bool,
}

/// Bytes of a small frame kept inside the frame itself: no allocation to encode it, no
/// reference count to share it (a clone copies these few bytes).
pub(crate) const INLINE_CAP: usize = 62;

#[derive(Clone, Debug)]
enum Repr {
    /// A small frame stored in place; `start..end` is unread.
    Inline {
        buf: [u8; INLINE_CAP],
        start: u8,
        end: u8,
    },
    /// One contiguous buffer; its own read position.
    One(Bytes),
    /// Several segments shared by every clone; `idx`/`off` is this clone's read position.
    Many {
        segs: Arc<[Bytes]>,
        idx: usize,
        off: usize,
        remaining: usize,
    },
}

impl Frame {
    /// A frame of fixed bytes, such as a pre-encoded keep-alive comment.
    pub(crate) fn from_static(bytes: &'static [u8]) -> Frame {
        Frame::from_bytes(Bytes::from_static(bytes))
    }

    /// A frame holding the first `len` bytes of `buf` in place.
    pub(crate) fn inline(buf: [u8; INLINE_CAP], len: u8) -> Frame {
        Frame {
            repr: Repr::Inline {
                buf,
                start: 0,
                end: len.min(INLINE_CAP as u8),
            },
            dispatched: false,
        }
    }

    /// Bytes of transport framing written around events, such as an HTTP/1.1 chunk's size
    /// line: copied into the frame itself when they fit (62 bytes), so that framing a
    /// [`Batch`] allocates nothing. Framing is not event-stream text; it goes to the socket
    /// beside the events, never to an event-stream decoder.
    ///
    /// ```
    /// use bytes::Buf;
    /// use sse_proto::Frame;
    ///
    /// let line = Frame::framing(b"1a\r\n");
    /// assert_eq!(line.chunk(), b"1a\r\n");
    /// ```
    pub fn framing(bytes: &[u8]) -> Frame {
        match u8::try_from(bytes.len()) {
            Ok(len) if bytes.len() <= INLINE_CAP => {
                let mut buf = [0u8; INLINE_CAP];
                buf[..bytes.len()].copy_from_slice(bytes);
                Frame::inline(buf, len)
            }
            _ => Frame::from_bytes(Bytes::copy_from_slice(bytes)),
        }
    }

    /// As [`framing`](Self::framing), for bytes that live for ever (a CRLF, a last chunk).
    pub fn framing_static(bytes: &'static [u8]) -> Frame {
        Frame::from_static(bytes)
    }

    /// A frame of one buffer. The caller guarantees it is well-formed event-stream text.
    pub(crate) fn from_bytes(bytes: Bytes) -> Frame {
        Frame {
            repr: Repr::One(bytes),
            dispatched: false,
        }
    }

    /// Marks the frame as holding an event the browser dispatches.
    pub(crate) fn dispatching(mut self, dispatched: bool) -> Frame {
        self.dispatched = dispatched;
        self
    }

    /// Whether the frame holds an event the browser dispatches (not only a comment, a
    /// `retry:` or the preamble).
    pub fn is_dispatched(&self) -> bool {
        self.dispatched
    }

    /// A frame from the bytes of one encoded event, as [`Event::encode`](crate::Event::encode)
    /// wrote them and a store gave them back (relay mode): checked, since the store is not
    /// trusted to keep the stream well formed.
    ///
    /// Fails unless the bytes are one block of field lines ending in one blank line, with no
    /// CR, no blank line before the end and no `id` field (positions are the hub's to give).
    ///
    /// ```
    /// use sse_proto::{Event, Frame};
    ///
    /// let bytes = Event::new().event("tick")?.data("1").encode().to_bytes();
    /// let frame = Frame::from_encoded(bytes).unwrap();
    /// assert!(frame.is_dispatched());
    /// assert!(Frame::from_encoded("data: a\n\ndata: b\n\n".into()).is_err());
    /// assert!(Frame::from_encoded("id: x\ndata: a\n\n".into()).is_err());
    /// # Ok::<(), sse_proto::Error>(())
    /// ```
    pub fn from_encoded(bytes: Bytes) -> Result<Frame, crate::Error> {
        let bad = crate::Error::Decode(crate::DecodeError::Malformed);
        let body = bytes.strip_suffix(b"\n\n").ok_or(bad.clone())?;
        if bytes.contains(&b'\r') {
            return Err(bad);
        }
        let mut dispatched = false;
        if !body.is_empty() {
            for line in body.split(|&b| b == b'\n') {
                let name = line.split(|&b| b == b':').next().unwrap_or_default();
                match name {
                    // An empty line before the end would start a second event; a comment
                    // line (empty name) is fine.
                    _ if line.is_empty() => return Err(bad),
                    b"id" => return Err(bad),
                    b"data" | b"event" => dispatched = true,
                    _ => {}
                }
            }
        }
        Ok(Frame::from_bytes(bytes).dispatching(dispatched))
    }

    /// A frame of several segments. Empty segments are dropped; one segment is kept flat.
    pub(crate) fn from_segments(mut segs: Vec<Bytes>) -> Frame {
        segs.retain(|s| !s.is_empty());
        if segs.len() <= 1 {
            return Frame::from_bytes(segs.pop().unwrap_or_default());
        }
        let remaining = segs.iter().map(Bytes::len).sum();
        Frame {
            repr: Repr::Many {
                segs: segs.into(),
                idx: 0,
                off: 0,
                remaining,
            },
            dispatched: false,
        }
    }

    /// Bytes not yet consumed through [`Buf::advance`].
    pub fn len(&self) -> usize {
        self.remaining()
    }

    /// Whether every byte has been consumed.
    pub fn is_empty(&self) -> bool {
        !self.has_remaining()
    }

    /// How many separate buffers the unread part spans (1 for a small event).
    pub fn segment_count(&self) -> usize {
        match &self.repr {
            Repr::Inline { start, end, .. } => usize::from(start < end),
            Repr::One(b) => usize::from(!b.is_empty()),
            Repr::Many { segs, idx, .. } => segs.len() - idx,
        }
    }

    /// The unread bytes as one buffer: free for a one-segment frame, a copy otherwise.
    pub fn to_bytes(&self) -> Bytes {
        match &self.repr {
            Repr::One(b) => b.clone(),
            Repr::Inline { .. } => Bytes::copy_from_slice(self.chunk()),
            Repr::Many { .. } => {
                let mut out = BytesMut::with_capacity(self.len());
                let mut this = self.clone();
                while this.has_remaining() {
                    let chunk = this.chunk();
                    let n = chunk.len();
                    out.extend_from_slice(chunk);
                    this.advance(n);
                }
                out.freeze()
            }
        }
    }
}

impl Buf for Frame {
    fn remaining(&self) -> usize {
        match &self.repr {
            Repr::Inline { start, end, .. } => usize::from(end - start),
            Repr::One(b) => b.len(),
            Repr::Many { remaining, .. } => *remaining,
        }
    }

    fn chunk(&self) -> &[u8] {
        match &self.repr {
            Repr::Inline { buf, start, end } => &buf[usize::from(*start)..usize::from(*end)],
            Repr::One(b) => b,
            Repr::Many { segs, idx, off, .. } => match segs.get(*idx) {
                Some(seg) => &seg[*off..],
                None => &[],
            },
        }
    }

    fn advance(&mut self, mut cnt: usize) {
        match &mut self.repr {
            Repr::Inline { start, end, .. } => {
                // `cnt` is capped by what is left, which fits in a u8.
                *start += u8::try_from(cnt.min(usize::from(*end - *start))).unwrap_or(0);
            }
            Repr::One(b) => b.advance(cnt.min(b.len())),
            Repr::Many {
                segs,
                idx,
                off,
                remaining,
            } => {
                cnt = cnt.min(*remaining);
                *remaining -= cnt;
                while cnt > 0 {
                    let Some(seg) = segs.get(*idx) else { break };
                    let left = seg.len() - *off;
                    if cnt < left {
                        *off += cnt;
                        break;
                    }
                    cnt -= left;
                    *idx += 1;
                    *off = 0;
                }
            }
        }
    }

    fn copy_to_bytes(&mut self, len: usize) -> Bytes {
        match &mut self.repr {
            // Shares the buffer (this is how axum turns a body's data into `Bytes`).
            Repr::One(b) => return b.split_to(len.min(b.len())),
            Repr::Inline { .. } => {
                let out = Bytes::copy_from_slice(&self.chunk()[..len.min(self.remaining())]);
                self.advance(len);
                return out;
            }
            // Within the current segment: a slice of it, shared too.
            Repr::Many { segs, idx, off, .. } => {
                if let Some(seg) = segs.get(*idx).filter(|seg| seg.len() - *off >= len) {
                    let out = seg.slice(*off..*off + len);
                    self.advance(len);
                    return out;
                }
            }
        }
        let mut out = BytesMut::with_capacity(len);
        out.put((&mut *self).take(len));
        out.freeze()
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        match &self.repr {
            Repr::One(_) | Repr::Inline { .. } => {
                let chunk = self.chunk();
                if chunk.is_empty() || dst.is_empty() {
                    return 0;
                }
                dst[0] = IoSlice::new(chunk);
                1
            }
            Repr::Many { segs, idx, off, .. } => {
                let mut n = 0;
                for (i, seg) in segs.iter().enumerate().skip(*idx) {
                    if n == dst.len() {
                        break;
                    }
                    let start = if i == *idx { *off } else { 0 };
                    dst[n] = IoSlice::new(&seg[start..]);
                    n += 1;
                }
                n
            }
        }
    }
}

/// Frames drained from an outbox, written as one: a [`Buf`] over a queue of [`Frame`]s.
///
/// A writer collects everything queued for a connection into a batch and hands it to one
/// vectored write, so a burst of events costs one system call rather than one each.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    frames: VecDeque<Frame>,
    remaining: usize,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Batch {
        Batch::default()
    }

    /// Appends a frame.
    pub fn push(&mut self, frame: Frame) {
        if frame.has_remaining() {
            self.remaining += frame.remaining();
            self.frames.push_back(frame);
        }
    }

    /// Puts a frame before the others (a chunk's size line).
    pub fn push_front(&mut self, frame: Frame) {
        if frame.has_remaining() {
            self.remaining += frame.remaining();
            self.frames.push_front(frame);
        }
    }

    /// Appends every frame of `other`.
    pub fn append(&mut self, mut other: Batch) {
        self.remaining += other.remaining;
        self.frames.append(&mut other.frames);
    }

    /// Number of frames not yet fully consumed.
    pub fn frame_count(&self) -> usize {
        self.frames.len()
    }

    /// Whether nothing is left to write.
    pub fn is_empty(&self) -> bool {
        self.remaining == 0
    }

    /// Drops everything.
    pub fn clear(&mut self) {
        self.frames.clear();
        self.remaining = 0;
    }

    /// Room for frames (tests).
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.frames.capacity()
    }

    /// Gives back the room a burst left, keeping room for [`IDLE_FRAMES`], once everything
    /// was written: an idle stream keeps only that much.
    pub(crate) fn release_spare(&mut self) {
        if self.frames.is_empty() {
            self.frames.shrink_to(IDLE_FRAMES);
        }
    }
}

/// Frames a batch or an outbox keeps room for while its stream is idle: a quiet stream's
/// event fits without an allocation, and a burst (a connection's preamble, a replay) gives
/// back the rest when it is over.
pub(crate) const IDLE_FRAMES: usize = 4;

impl Buf for Batch {
    fn remaining(&self) -> usize {
        self.remaining
    }

    fn chunk(&self) -> &[u8] {
        self.frames.front().map_or(&[], |f| f.chunk())
    }

    fn advance(&mut self, mut cnt: usize) {
        cnt = cnt.min(self.remaining);
        self.remaining -= cnt;
        while cnt > 0 {
            let Some(front) = self.frames.front_mut() else {
                break;
            };
            let len = front.remaining();
            if cnt < len {
                front.advance(cnt);
                break;
            }
            cnt -= len;
            self.frames.pop_front();
        }
    }

    fn copy_to_bytes(&mut self, len: usize) -> Bytes {
        match self.frames.front_mut() {
            // Within the front frame's current segment: share it rather than copy.
            Some(front) if front.chunk().len() >= len => {
                let out = front.copy_to_bytes(len);
                self.remaining -= len;
                if !front.has_remaining() {
                    self.frames.pop_front();
                }
                out
            }
            _ => {
                let mut out = BytesMut::with_capacity(len);
                out.put((&mut *self).take(len));
                out.freeze()
            }
        }
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for frame in &self.frames {
            if n == dst.len() {
                break;
            }
            n += frame.chunks_vectored(&mut dst[n..]);
        }
        n
    }
}

/// Plain bytes as a batch, so a fixed response body can share a body type with an event
/// stream. (A [`Frame`] cannot be made from unchecked bytes: only events encode to frames.)
impl From<Bytes> for Batch {
    fn from(bytes: Bytes) -> Batch {
        Batch::from(Frame::from_bytes(bytes))
    }
}

impl From<Frame> for Batch {
    fn from(frame: Frame) -> Batch {
        let mut batch = Batch::new();
        batch.push(frame);
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_batch_gives_back_the_room_a_burst_took() {
        let mut batch = Batch::new();
        for _ in 0..20 {
            batch.push(Frame::from_static(b"data: x\n\n"));
        }
        // Not written yet: kept.
        batch.release_spare();
        assert!(batch.frames.capacity() >= 20);
        batch.advance(batch.remaining());
        assert_eq!(batch.frame_count(), 0);
        batch.release_spare();
        assert!(batch.frames.capacity() <= IDLE_FRAMES);
        // A quiet stream's event fits in what is kept.
        let kept = batch.frames.capacity();
        batch.push(Frame::from_static(b"data: y\n\n"));
        assert_eq!(batch.frames.capacity(), kept);
    }

    #[test]
    fn copy_to_bytes_shares_single_buffers() {
        let shared = Bytes::from(vec![7u8; 100]);
        let mut batch = Batch::from(shared.clone());
        let out = batch.copy_to_bytes(100);
        assert_eq!(out.as_ptr(), shared.as_ptr());
        assert!(batch.is_empty());

        let mut batch = Batch::from(Bytes::from_static(b"abc"));
        batch.push(Frame::from_static(b"def"));
        assert_eq!(batch.copy_to_bytes(5), &b"abcde"[..]);
        assert_eq!(batch.remaining(), 1);
        assert_eq!(batch.frame_count(), 1);

        let mut f =
            Frame::from_segments(vec![Bytes::from_static(b"ab"), Bytes::from_static(b"cd")]);
        assert_eq!(f.copy_to_bytes(3), &b"abc"[..]);
        assert_eq!(f.chunk(), b"d");

        // Segment by segment, a large event's payload is shared, never copied.
        let payload = Bytes::from(vec![b'x'; 4096]);
        let mut batch = Batch::from(crate::Event::new().data(payload.clone()).encode());
        let mut shared = false;
        while batch.has_remaining() {
            let n = batch.chunk().len();
            let out = batch.copy_to_bytes(n);
            shared |= out.as_ptr() == payload.as_ptr();
        }
        assert!(shared, "the payload segment was handed out as is");
    }

    #[test]
    fn small_frames_live_inline_and_read_like_any_other() {
        let frame = crate::Event::new()
            .event("tick")
            .expect("valid")
            .data("42")
            .encode();
        assert!(matches!(frame.repr, Repr::Inline { .. }));
        assert!(frame.is_dispatched());
        let wire = b"event: tick\ndata: 42\n\n";
        assert_eq!(frame.chunk(), wire);
        let mut half = frame.clone();
        half.advance(7);
        assert_eq!(half.chunk(), &wire[7..]);
        assert_eq!(frame.remaining(), wire.len(), "clones read independently");
        let mut slices = [IoSlice::new(&[]); 2];
        assert_eq!(half.chunks_vectored(&mut slices), 1);
        assert_eq!(&*slices[0], &wire[7..]);
        assert_eq!(half.copy_to_bytes(4), &wire[7..11]);
        assert_eq!(half.to_bytes(), &wire[11..]);
        half.advance(1000);
        assert!(!half.has_remaining());
        assert_eq!(half.segment_count(), 0);
        // One byte over the inline capacity goes to the heap, same bytes.
        let big = crate::Event::new().data("x".repeat(INLINE_CAP));
        assert!(matches!(big.encode().repr, Repr::One(_)));
    }

    fn collect(mut buf: impl Buf) -> Vec<u8> {
        let mut out = Vec::new();
        while buf.has_remaining() {
            let c = buf.chunk();
            let n = c.len().min(3);
            out.extend_from_slice(&c[..n]);
            buf.advance(n);
        }
        out
    }

    #[test]
    fn multi_segment_frame_reads_in_order_and_clones_independently() {
        let f = Frame::from_segments(vec![
            Bytes::from_static(b"data: "),
            Bytes::from_static(b""),
            Bytes::from_static(b"hello world"),
            Bytes::from_static(b"\n\n"),
        ]);
        assert_eq!(f.segment_count(), 3);
        let mut g = f.clone();
        g.advance(8);
        assert_eq!(g.chunk(), b"llo world");
        assert_eq!(collect(f.clone()), b"data: hello world\n\n");
        assert_eq!(f.to_bytes(), &b"data: hello world\n\n"[..]);
        let mut io = [IoSlice::new(&[]); 8];
        assert_eq!(g.chunks_vectored(&mut io), 2);
        assert_eq!(&*io[0], b"llo world");
        assert_eq!(g.len(), 11);
    }

    #[test]
    fn batch_coalesces_frames() {
        let mut b = Batch::new();
        b.push(Frame::from_static(b":\n\n"));
        b.push(Frame::from_static(b""));
        b.push(Frame::from_segments(vec![
            Bytes::from_static(b"data: "),
            Bytes::from_static(b"x"),
            Bytes::from_static(b"\n\n"),
        ]));
        assert_eq!(b.frame_count(), 2);
        assert_eq!(b.remaining(), 12);
        let mut io = [IoSlice::new(&[]); 8];
        assert_eq!(b.chunks_vectored(&mut io), 4);
        let mut io2 = [IoSlice::new(&[]); 2];
        assert_eq!(b.chunks_vectored(&mut io2), 2);
        assert_eq!(collect(b.clone()), b":\n\ndata: x\n\n");
        b.advance(5);
        assert_eq!(b.chunk(), b"ta: ");
        b.advance(100);
        assert!(b.is_empty());
        assert_eq!(b.frame_count(), 0);
    }
}
