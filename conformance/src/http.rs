//! A small blocking HTTP/1.1 client: a keep-alive [`Client`], response heads and bodies
//! (chunked or not).

use std::io::{self, Read, Write};
use std::net::TcpStream;

use crate::Result;

pub(crate) fn request_bytes(
    method: &str,
    target: &str,
    headers: &[(&str, &[u8])],
    body: &[u8],
    close: bool,
) -> Vec<u8> {
    let mut out = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n").into_bytes();
    for (name, value) in headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    if method != "GET" || !body.is_empty() {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// A keep-alive HTTP/1.1 connection to a demo, for requests whose responses have a length
/// (`Content-Length` or chunked, or no body), from [`Demo::client`](crate::Demo::client).
#[derive(Debug)]
pub struct Client {
    pub(crate) conn: Conn,
}

impl Client {
    /// One request on the connection, its response read to the end. Fails when the server
    /// closed the connection.
    pub fn request(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &[u8])],
        body: &[u8],
    ) -> Result<Response> {
        let request = request_bytes(method, target, headers, body, false);
        self.conn.exchange(&request, method)
    }

    /// The connection's socket, for a test that goes on by hand (bytes the client had
    /// read past the last response are dropped).
    pub fn into_socket(self) -> TcpStream {
        self.conn.sock
    }
}

/// A response head: status and headers (names lower-cased).
#[derive(Debug, Clone)]
pub struct Head {
    /// The status code.
    pub status: u16,
    /// The headers in order, names lower-cased.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Head {
    /// The first value of the header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// The header as text, or `""` when absent or not UTF-8.
    pub fn header_str(&self, name: &str) -> &str {
        self.header(name)
            .and_then(|v| std::str::from_utf8(v).ok())
            .unwrap_or("")
    }
}

/// A whole response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status and headers.
    pub head: Head,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl Response {
    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A socket with a read buffer.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) sock: TcpStream,
    pub(crate) buf: Vec<u8>,
    pub(crate) eof: bool,
}

impl Conn {
    pub(crate) fn new(sock: TcpStream) -> Conn {
        Conn {
            sock,
            buf: Vec::new(),
            eof: false,
        }
    }

    /// Reads more bytes into `buf`; `Ok(0)` at EOF. A timeout is an error.
    pub(crate) fn fill(&mut self) -> Result<usize> {
        if self.eof {
            return Ok(0);
        }
        let mut chunk = [0u8; 64 * 1024];
        let n = match self.sock.read(&mut chunk) {
            Ok(n) => n,
            // A reset after the server ended the stream counts as the end.
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => 0,
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            self.eof = true;
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Writes `request` (a `method` request) and reads its whole response.
    pub(crate) fn exchange(&mut self, request: &[u8], method: &str) -> Result<Response> {
        self.sock.write_all(request)?;
        let head = self.read_head()?;
        let mut body = Vec::new();
        if method != "HEAD" && head.status != 204 && head.status != 304 {
            self.read_body_to_end(&head, &mut body)?;
        }
        Ok(Response { head, body })
    }

    pub(crate) fn read_head(&mut self) -> Result<Head> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut response = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(len) = response.parse(&self.buf)? {
                let head = Head {
                    status: response.code.ok_or("no status")?,
                    headers: response
                        .headers
                        .iter()
                        .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
                        .collect(),
                };
                self.buf.drain(..len);
                return Ok(head);
            }
            if self.fill()? == 0 {
                return Err("connection closed before the response head".into());
            }
        }
    }

    pub(crate) fn read_body_to_end(&mut self, head: &Head, body: &mut Vec<u8>) -> Result<()> {
        if head.header("transfer-encoding") == Some(b"chunked".as_slice()) {
            let mut left = 0;
            loop {
                match next_chunk(&mut self.buf, &mut left, body)? {
                    Chunk::Data => {}
                    Chunk::End => return Ok(()),
                    Chunk::NeedMore => {
                        if self.fill()? == 0 {
                            return Err("connection closed inside a chunked body".into());
                        }
                    }
                }
            }
        }
        let length: Option<usize> = head
            .header("content-length")
            .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse().ok());
        loop {
            if length.is_some_and(|n| self.buf.len() >= n) {
                body.extend(self.buf.drain(..length.unwrap_or(0)));
                return Ok(());
            }
            if self.fill()? == 0 {
                if length.is_some() {
                    return Err("connection closed inside the body".into());
                }
                body.append(&mut self.buf);
                return Ok(());
            }
        }
    }
}

pub(crate) enum Chunk {
    Data,
    End,
    NeedMore,
}

/// Moves de-chunked bytes from `buf` to `out`; `left` is what remains of the current chunk.
pub(crate) fn next_chunk(buf: &mut Vec<u8>, left: &mut usize, out: &mut Vec<u8>) -> Result<Chunk> {
    if *left > 0 {
        if buf.is_empty() {
            return Ok(Chunk::NeedMore);
        }
        let n = (*left).min(buf.len());
        out.extend(buf.drain(..n));
        *left -= n;
        return Ok(Chunk::Data);
    }
    // Between chunks: the CRLF that ends the previous one, then a size line.
    if buf.starts_with(b"\r\n") {
        buf.drain(..2);
    }
    match httparse::parse_chunk_size(buf).map_err(|_| "bad chunk size")? {
        httparse::Status::Partial => Ok(Chunk::NeedMore),
        httparse::Status::Complete((len, 0)) => {
            buf.drain(..len);
            Ok(Chunk::End)
        }
        httparse::Status::Complete((len, size)) => {
            buf.drain(..len);
            *left = usize::try_from(size).map_err(|_| "chunk too large")?;
            Ok(Chunk::Data)
        }
    }
}
