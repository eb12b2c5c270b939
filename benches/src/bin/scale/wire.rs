//! What the parent and the clients share on the wire: the wall clock in µs, the chunked
//! decoding of a stream's body, and one admin request to a node.

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::Error;

/// The wall clock, in µs since the Unix epoch: the send time in each measured event's data,
/// and the receive time it is subtracted from (one machine, one clock).
pub(crate) fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Where a chunked body's decoding is.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// Reading a chunk-size line.
    Size,
    /// Inside a chunk: this many bytes of data to come.
    Data(usize),
    /// After a chunk's data: this many bytes of its CRLF to skip.
    End(usize),
}

/// Decodes an HTTP/1.1 chunked body as it arrives (or passes an identity body through).
#[derive(Debug)]
pub(crate) struct Dechunk {
    chunked: bool,
    step: Step,
    /// An unfinished chunk-size line.
    size_line: Vec<u8>,
}

impl Dechunk {
    /// A decoder for a body that is `chunked` or not.
    pub(crate) fn new(chunked: bool) -> Dechunk {
        Dechunk {
            chunked,
            step: Step::Size,
            size_line: Vec::new(),
        }
    }

    /// Appends the data of `input` (the body's next bytes, as read) to `out`.
    pub(crate) fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        if !self.chunked {
            out.extend_from_slice(input);
            return Ok(());
        }
        while !input.is_empty() {
            match self.step {
                Step::Size => match memchr::memchr(b'\n', input) {
                    Some(nl) => {
                        self.size_line.extend_from_slice(&input[..nl]);
                        input = &input[nl + 1..];
                        let line = std::str::from_utf8(&self.size_line)?;
                        let hex = line.split(';').next().unwrap_or_default().trim();
                        let size = usize::from_str_radix(hex, 16)
                            .map_err(|_| format!("bad chunk size {line:?}"))?;
                        self.size_line.clear();
                        if size == 0 {
                            return Err("the server ended the stream".into());
                        }
                        self.step = Step::Data(size);
                    }
                    None => {
                        self.size_line.extend_from_slice(input);
                        if self.size_line.len() > 64 {
                            return Err("a chunk-size line over 64 bytes".into());
                        }
                        return Ok(());
                    }
                },
                Step::Data(left) => {
                    let take = left.min(input.len());
                    out.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    self.step = if take == left {
                        Step::End(2)
                    } else {
                        Step::Data(left - take)
                    };
                }
                Step::End(left) => {
                    let take = left.min(input.len());
                    input = &input[take..];
                    self.step = if take == left {
                        Step::Size
                    } else {
                        Step::End(left - take)
                    };
                }
            }
        }
        Ok(())
    }
}

/// `POST path` with `body` to a node, on a connection of its own: the status and the body of
/// the answer.
pub(crate) async fn post(addr: SocketAddr, path: &str, body: &str) -> Result<(u16, String), Error> {
    let mut sock = TcpStream::connect(addr).await?;
    sock.set_nodelay(true)?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: scale\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    sock.write_all(request.as_bytes()).await?;
    let mut reply = Vec::new();
    sock.read_to_end(&mut reply).await?;
    let text = String::from_utf8_lossy(&reply);
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("POST {path}: no answer head in {text:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("POST {path}: bad status line in {head:?}"))?;
    let mut out = Vec::new();
    Dechunk::new(
        head.to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
    )
    .feed(rest.as_bytes(), &mut out)
    .or_else(|e| {
        // The last chunk (size 0) ends a chunked answer: what came before it is the body.
        if e.to_string().contains("ended the stream") {
            Ok(())
        } else {
            Err(e)
        }
    })?;
    Ok((status, String::from_utf8_lossy(&out).trim().to_owned()))
}
