//! [`ChunkedDecoder`]: the chunked transfer coding of a request body (RFC 9112 §7.1), decoded
//! incrementally with bounded memory.

use bytes::{Buf, BytesMut};

use super::error::HeadError;

/// Longest chunk-size line (size, whitespace and extensions), in bytes. Extensions are
/// checked against their grammar and skipped, never stored; the bound only keeps one line
/// from going on for ever.
pub const MAX_CHUNK_LINE: usize = 4096;

/// Most bytes of chunk extensions in one body, all chunks together. Extensions buy no time
/// (the body's rate counts decoded data) and carry nothing this server reads, so a body
/// of a million one-byte chunks each with a long extension is refused well before its end
/// (hyper has the same bound per body).
pub const MAX_CHUNK_EXTENSIONS: usize = 16 * 1024;

/// Where the decoder is in the chunked grammar of RFC 9112 §7.1:
///
/// ```text
/// chunked-body = *chunk last-chunk trailer-section CRLF
/// chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first hex digit of a chunk-size.
    Start,
    /// In the hex digits.
    Size,
    /// After the digits, in whitespace before `;` or CR (hyper accepts this too).
    SizeSpace,
    /// After a `;`, in whitespace before an extension's name.
    ExtStart,
    /// In an extension's name (a token).
    ExtName,
    /// After a name, in whitespace before `=`, `;` or CR.
    ExtAfterName,
    /// After `=`, in whitespace before the value.
    ExtBeforeValue,
    /// In a value that is a token.
    ExtToken,
    /// In a value that is a quoted-string.
    ExtQuoted,
    /// After a backslash in a quoted-string.
    ExtEscape,
    /// After a value, in whitespace before `;` or CR.
    ExtAfterValue,
    /// After the CR of the size line.
    SizeLf,
    /// In chunk data, `left` bytes to go.
    Data,
    /// After the chunk data, expecting CR.
    DataCr,
    /// After the chunk data's CR, expecting LF.
    DataLf,
    /// At the start of a trailer line, or of the final CRLF.
    LineStart,
    /// In a trailer field line.
    Trailer,
    /// After the CR of a trailer line.
    TrailerLf,
    /// After the CR of the final empty line.
    EndLf,
    /// The body is complete.
    Done,
}

/// Progress of a [`ChunkedDecoder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Progress {
    /// All given bytes were consumed; the body needs more.
    NeedMore,
    /// The body (with its trailer section) is complete.
    Done,
}

/// Decodes a chunked request body from the bytes of a connection.
///
/// Framing is consumed as it arrives, data is appended to the body; what stays in memory is
/// the decoded body (at most `max_body` bytes) and the trailer section (at most
/// `max_trailers` bytes, checked with `httparse` at the end, then dropped). Bare LF is
/// refused everywhere in the framing, so there is one way to find the end of the body.
#[derive(Debug)]
pub(crate) struct ChunkedDecoder {
    state: State,
    /// Size of the chunk being read; bytes of it still to come in [`State::Data`].
    left: u64,
    /// Bytes of the current size line.
    line: usize,
    /// Bytes of chunk extensions so far, all lines together.
    extensions: usize,
    trailers: BytesMut,
}

impl ChunkedDecoder {
    pub(crate) fn new() -> ChunkedDecoder {
        ChunkedDecoder {
            state: State::Start,
            left: 0,
            line: 0,
            extensions: 0,
            trailers: BytesMut::new(),
        }
    }

    /// Bytes the decoder holds itself (the trailer section read so far).
    pub(crate) fn buffered(&self) -> usize {
        self.trailers.len()
    }

    /// Consumes framing and data from the front of `buf`, appending data to `body`.
    ///
    /// Stops at the end of the body and leaves what follows (the next request) in `buf`.
    pub(crate) fn decode(
        &mut self,
        buf: &mut BytesMut,
        body: &mut BytesMut,
        max_body: usize,
        max_trailers: usize,
    ) -> Result<Progress, HeadError> {
        let mut i = 0;
        while i < buf.len() && self.state != State::Done {
            if self.state == State::Data {
                // Whole runs of data at once; the rest is one byte at a time.
                let avail = buf.len() - i;
                let n = usize::try_from(self.left).map_or(avail, |left| left.min(avail));
                body.extend_from_slice(&buf[i..i + n]);
                i += n;
                self.left -= n as u64;
                if self.left == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            let b = buf[i];
            i += 1;
            self.state = self.step(b, body.len(), max_body, max_trailers)?;
        }
        buf.advance(i);
        if self.state == State::Done {
            self.check_trailers()?;
            Ok(Progress::Done)
        } else {
            Ok(Progress::NeedMore)
        }
    }

    /// One byte of framing.
    fn step(
        &mut self,
        b: u8,
        body_len: usize,
        max_body: usize,
        max_trailers: usize,
    ) -> Result<State, HeadError> {
        use State::*;
        let in_extension = matches!(
            self.state,
            ExtStart
                | ExtName
                | ExtAfterName
                | ExtBeforeValue
                | ExtToken
                | ExtQuoted
                | ExtEscape
                | ExtAfterValue
        );
        if in_extension || matches!(self.state, Start | Size | SizeSpace | SizeLf) {
            self.line += 1;
            if self.line > MAX_CHUNK_LINE {
                return Err(HeadError::BadChunk("chunk-size line too long"));
            }
        }
        if in_extension {
            self.extensions += 1;
            if self.extensions > MAX_CHUNK_EXTENSIONS {
                return Err(HeadError::BadChunk("too many bytes of chunk extensions"));
            }
        }
        if matches!(self.state, LineStart | Trailer | TrailerLf | EndLf) {
            if self.trailers.len() >= max_trailers {
                return Err(HeadError::TooLarge {
                    limit: max_trailers,
                });
            }
            self.trailers.extend_from_slice(&[b]);
        }
        let next = match (self.state, b) {
            // chunk-size = 1*HEXDIG: at least one digit.
            (Start | Size, _) if b.is_ascii_hexdigit() => {
                // A size past u64 is past any body limit: refuse it as too large.
                let digit = u64::from(hex(b));
                self.left = self
                    .left
                    .checked_mul(16)
                    .and_then(|n| n.checked_add(digit))
                    .ok_or(HeadError::BodyTooLarge { limit: max_body })?;
                Size
            }
            (Start, _) => return Err(HeadError::BadChunk("missing chunk size")),
            (Size | SizeSpace, b' ' | b'\t') => SizeSpace,
            (Size | SizeSpace | ExtAfterName | ExtToken | ExtAfterValue, b';') => ExtStart,
            (Size | SizeSpace | ExtName | ExtAfterName | ExtToken | ExtAfterValue, b'\r') => SizeLf,
            (Size | SizeSpace, _) => return Err(HeadError::BadChunk("chunk size")),
            // RFC 9112 §7.1.1, with BWS = *( SP / HTAB ):
            //   chunk-ext      = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
            //   chunk-ext-name = token
            //   chunk-ext-val  = token / quoted-string
            // The content is skipped (unknown extensions are ignored), but only what the
            // grammar allows passes: a front end that reads extensions otherwise (a NUL, a
            // bare LF, an unclosed quote) would find another end of the line.
            (ExtStart, b' ' | b'\t') => ExtStart,
            (ExtStart | ExtName, _) if is_tchar(b) => ExtName,
            (ExtName | ExtAfterName, b' ' | b'\t') => ExtAfterName,
            (ExtName | ExtAfterName, b'=') => ExtBeforeValue,
            (ExtBeforeValue, b' ' | b'\t') => ExtBeforeValue,
            (ExtBeforeValue, b'"') => ExtQuoted,
            (ExtBeforeValue | ExtToken, _) if is_tchar(b) => ExtToken,
            (ExtToken | ExtAfterValue, b' ' | b'\t') => ExtAfterValue,
            (ExtQuoted, b'"') => ExtAfterValue,
            (ExtQuoted, b'\\') => ExtEscape,
            // qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
            (ExtQuoted, b'\t' | b' ' | 0x21..=0x7e | 0x80..=0xff) => ExtQuoted,
            // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
            (ExtEscape, b'\t' | b' ' | 0x21..=0x7e | 0x80..=0xff) => ExtQuoted,
            (
                ExtStart | ExtName | ExtAfterName | ExtBeforeValue | ExtToken | ExtQuoted
                | ExtEscape | ExtAfterValue,
                _,
            ) => {
                return Err(HeadError::BadChunk(
                    "chunk extension outside its grammar (token or quoted-string)",
                ));
            }
            (SizeLf, b'\n') => {
                self.line = 0;
                if self.left == 0 {
                    // last-chunk: the trailer section follows.
                    LineStart
                } else {
                    let room = max_body.saturating_sub(body_len) as u64;
                    if self.left > room {
                        return Err(HeadError::BodyTooLarge { limit: max_body });
                    }
                    Data
                }
            }
            (SizeLf, _) => return Err(HeadError::BadChunk("chunk-size line must end in CRLF")),
            (DataCr, b'\r') => DataLf,
            (DataLf, b'\n') => Start,
            (DataCr | DataLf, _) => return Err(HeadError::BadChunk("chunk data must end in CRLF")),
            (LineStart, b'\r') => EndLf,
            (LineStart | Trailer, b'\n') => return Err(HeadError::BadChunk("bare LF in trailer")),
            (Trailer, b'\r') => TrailerLf,
            (LineStart | Trailer, _) => Trailer,
            (TrailerLf, b'\n') => LineStart,
            (TrailerLf, _) => return Err(HeadError::BadChunk("trailer line must end in CRLF")),
            (EndLf, b'\n') => Done,
            (EndLf, _) => return Err(HeadError::BadChunk("chunked body must end in CRLF")),
            (Data | Done, _) => self.state,
        };
        Ok(next)
    }

    /// The trailer section must be field lines (RFC 9112 §7.1.2); they are then dropped:
    /// nothing in this server reads trailers.
    fn check_trailers(&mut self) -> Result<(), HeadError> {
        if self.trailers.len() > 2 {
            let mut headers = [httparse::EMPTY_HEADER; super::MAX_HEADERS];
            match httparse::parse_headers(&self.trailers, &mut headers) {
                Ok(httparse::Status::Complete(_)) => {}
                _ => return Err(HeadError::BadChunk("trailer field syntax")),
            }
        }
        self.trailers = BytesMut::new();
        Ok(())
    }
}

/// `tchar` of RFC 9110 §5.6.2: the bytes of a token.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn hex(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(wire: &[u8], max_body: usize) -> Result<(Vec<u8>, Vec<u8>), HeadError> {
        let mut d = ChunkedDecoder::new();
        let mut buf = BytesMut::from(wire);
        let mut body = BytesMut::new();
        match d.decode(&mut buf, &mut body, max_body, 256)? {
            Progress::Done => Ok((body.to_vec(), buf.to_vec())),
            Progress::NeedMore => Err(HeadError::Malformed("incomplete")),
        }
    }

    #[test]
    fn decodes_valid_bodies() {
        let cases: &[(&[u8], &[u8], &[u8])] = &[
            (b"0\r\n\r\n", b"", b""),
            (b"3\r\nabc\r\n0\r\n\r\nNEXT", b"abc", b"NEXT"),
            (b"3;ext=1\r\nabc\r\n0;last\r\n\r\n", b"abc", b""),
            (b"3 ;x\r\nabc\r\n0\r\n\r\n", b"abc", b""),
            (b"3\t\r\nabc\r\n0\r\n\r\n", b"abc", b""),
            (
                b"3 ; a = b ;c=\"q \\\" \\\\ \xe9\";d\r\nabc\r\n0;e=!#$%&'*+-.^_`|~09\r\n\r\n",
                b"abc",
                b"",
            ),
            (
                b"A\r\n0123456789\r\n1\r\nx\r\n0\r\n\r\n",
                b"0123456789x",
                b"",
            ),
            (b"0003\r\nabc\r\n000\r\n\r\n", b"abc", b""),
            (b"3\r\nabc\r\n0\r\nX-T: 1\r\nY: 2\r\n\r\n", b"abc", b""),
            (b"2\r\n\r\n\r\n0\r\n\r\n", b"\r\n", b""),
        ];
        for (wire, body, rest) in cases {
            assert_eq!(
                run(wire, 1024),
                Ok((body.to_vec(), rest.to_vec())),
                "{:?}",
                String::from_utf8_lossy(wire)
            );
        }
    }

    #[test]
    fn refuses_broken_framing() {
        let cases: &[&[u8]] = &[
            b"\r\n\r\n",
            b"g\r\nabc\r\n0\r\n\r\n",
            b"-3\r\nabc\r\n0\r\n\r\n",
            b"0x3\r\nabc\r\n0\r\n\r\n",
            b"3\nabc\r\n0\r\n\r\n",
            b"3\r\nabcd\r\n0\r\n\r\n",
            b"3\r\nabc\n0\r\n\r\n",
            b"3;a\nb\r\nabc\r\n0\r\n\r\n",
            b"3 4\r\nabc\r\n0\r\n\r\n",
            // Chunk extensions outside the grammar of RFC 9112 §7.1.1.
            b"5;a=\x00\r\nabcde\r\n0\r\n\r\n",
            b"3;a\x00\r\nabc\r\n0\r\n\r\n",
            b"3;\r\nabc\r\n0\r\n\r\n",
            b"3;=v\r\nabc\r\n0\r\n\r\n",
            b"3;a=\r\nabc\r\n0\r\n\r\n",
            b"3;a=\"open\r\nabc\r\n0\r\n\r\n",
            b"3;a=\"x\"y\r\nabc\r\n0\r\n\r\n",
            b"3;a=\"\x7f\"\r\nabc\r\n0\r\n\r\n",
            b"3;a=\"\\\x01\"\r\nabc\r\n0\r\n\r\n",
            b"3;a b\r\nabc\r\n0\r\n\r\n",
            b"3;a=b c\r\nabc\r\n0\r\n\r\n",
            b"3;a=(b)\r\nabc\r\n0\r\n\r\n",
            b"3;a:b\r\nabc\r\n0\r\n\r\n",
            b"3;a=b\x0b\r\nabc\r\n0\r\n\r\n",
            b"3;a\rb\r\nabc\r\n0\r\n\r\n",
            b"0\r\n\n",
            b"0\r\nX: 1\n\r\n",
            b"0\r\nX: 1\r\n\n",
            b"0\r\nbad trailer\r\n\r\n",
            b"0\r\n folded\r\n\r\n",
        ];
        for wire in cases {
            assert!(
                matches!(run(wire, 1024), Err(HeadError::BadChunk(_))),
                "{:?}: {:?}",
                String::from_utf8_lossy(wire),
                run(wire, 1024)
            );
        }
    }

    #[test]
    fn bounds_body_line_and_trailers() {
        assert_eq!(
            run(b"5\r\nabcde\r\n0\r\n\r\n", 4),
            Err(HeadError::BodyTooLarge { limit: 4 })
        );
        assert_eq!(
            run(b"2\r\nab\r\n3\r\nabc\r\n0\r\n\r\n", 4),
            Err(HeadError::BodyTooLarge { limit: 4 })
        );
        assert_eq!(
            run(b"fffffffffffffffff\r\n", 4),
            Err(HeadError::BodyTooLarge { limit: 4 })
        );
        let long = format!("1;{}\r\na\r\n0\r\n\r\n", "x".repeat(MAX_CHUNK_LINE));
        assert!(matches!(
            run(long.as_bytes(), 1024),
            Err(HeadError::BadChunk(_))
        ));
        // Extensions are bounded per body too: many short lines add up.
        let many = format!(
            "{}0\r\n\r\n",
            format!("1;{}\r\na\r\n", "e".repeat(1000)).repeat(17)
        );
        assert_eq!(
            run(many.as_bytes(), 1024),
            Err(HeadError::BadChunk("too many bytes of chunk extensions"))
        );
        let trailers = format!("0\r\nX: {}\r\n\r\n", "t".repeat(300));
        assert_eq!(
            run(trailers.as_bytes(), 1024),
            Err(HeadError::TooLarge { limit: 256 })
        );
    }

    #[test]
    fn any_split_gives_the_same_body() {
        let wire = b"3;e=\"q\"\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nT: v\r\n\r\nREST";
        for step in 1..wire.len() {
            let mut d = ChunkedDecoder::new();
            let mut body = BytesMut::new();
            let mut buf = BytesMut::new();
            let mut done = false;
            for part in wire.chunks(step) {
                buf.extend_from_slice(part);
                if !done {
                    done = d.decode(&mut buf, &mut body, 64, 64) == Ok(Progress::Done);
                }
            }
            assert!(done, "step {step}");
            assert_eq!(&body[..], b"abc0123456789abcdef");
            assert_eq!(&buf[..], b"REST");
        }
    }
}
