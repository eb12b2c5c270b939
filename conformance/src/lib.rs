//! The harness of the conformance suite: starts a demo binary on a free loopback port and
//! talks to it over real sockets with a small blocking HTTP/1.1 client.
//!
//! The client is deliberately raw (std `TcpStream`, `httparse` for heads and chunk sizes,
//! `sse_proto::Decoder` for the event stream) so a test controls every byte: it can send a
//! hostile header, stop reading, or hang up mid-stream.
//!
//! The rules themselves are in `tests/rules/`, written once and run against every demo; the
//! cluster rules (`tests/cluster/`) run two demos on a [`RedisServer`] of their own.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sse_proto::{Decoder, Item, MessageEvent};

#[path = "../../sse-redis/tests/common/server.rs"]
pub mod redis;
pub use redis::RedisServer;

/// The README's Rust snippets, compiled as doctests (`cargo test -p sse-conformance --doc`):
/// this crate depends on every adapter, so each snippet can use what a reader's would.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeSnippets;

/// How long any single wait of the harness may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// What went wrong talking to a demo.
pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// A running demo server, killed when dropped.
#[derive(Debug)]
pub struct Demo {
    child: Child,
    addr: SocketAddr,
}

impl Demo {
    /// Starts the demo binary at `bin` on `127.0.0.1:0` with extra flags, and waits for its
    /// `listening on http://ADDR` line.
    pub fn start(bin: &str, flags: &[&str]) -> Result<Demo> {
        Demo::start_with_env(bin, flags, &[])
    }

    /// [`Demo::start`] with environment variables set for the demo (the server limits of
    /// `demo/limits.rs`, `SSE_DEMO_*`).
    pub fn start_with_env(bin: &str, flags: &[&str], env: &[(&str, &str)]) -> Result<Demo> {
        let mut child = Command::new(bin)
            .args(["--addr", "127.0.0.1:0"])
            .args(flags)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start {bin}: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let Some(line) = lines.next() else {
                let status = child.wait()?;
                return Err(format!("{bin} exited ({status}) before listening").into());
            };
            if let Some(addr) = line?.strip_prefix("listening on http://") {
                break addr.trim().parse()?;
            }
        };
        // Keep draining stdout so the demo never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Ok(Demo { child, addr })
    }

    /// The address the demo listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The demo's resident set size in KiB (Linux), from `/proc/<pid>/status`.
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// Whether the demo still holds open its end of the TCP connection whose client end is
    /// `client` (Linux: the connection in `/proc/<pid>/net/tcp{,6}`, its inode among the
    /// demo's open files). A socket the demo closed with bytes still unsent lingers in the
    /// kernel, but no longer as a file of the demo's: this tells a server that dropped a
    /// connection from one that still has it, whatever the client has read.
    pub fn holds_connection_from(&self, client: std::net::SocketAddr) -> Result<bool> {
        let pid = self.child.id();
        let mut inodes = Vec::new();
        for table in ["tcp", "tcp6"] {
            let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}"))?;
            for line in text.lines().skip(1) {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let port = |field: &str| {
                    field
                        .rsplit(':')
                        .next()
                        .and_then(|hex| u16::from_str_radix(hex, 16).ok())
                };
                let (Some(local), Some(remote), Some(inode)) =
                    (fields.get(1), fields.get(2), fields.get(9))
                else {
                    continue;
                };
                if port(local) == Some(self.addr.port()) && port(remote) == Some(client.port()) {
                    inodes.push(format!("socket:[{inode}]"));
                }
            }
        }
        for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))? {
            let Ok(target) = std::fs::read_link(entry?.path()) else {
                continue;
            };
            if inodes.iter().any(|i| target.as_os_str() == i.as_str()) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Sends the demo a signal (`"INT"`, `"TERM"`) with `kill`.
    pub fn signal(&self, name: &str) -> Result<()> {
        let status = Command::new("kill")
            .args(["-s", name, &self.child.id().to_string()])
            .status()?;
        if !status.success() {
            return Err(format!("kill -s {name} failed: {status}").into());
        }
        Ok(())
    }

    /// Waits up to `limit` for the demo to exit; its exit status, or `None` if it still runs.
    pub fn wait_exit(&mut self, limit: Duration) -> Result<Option<std::process::ExitStatus>> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Connects a new socket to the demo.
    pub fn connect(&self) -> Result<TcpStream> {
        let sock = TcpStream::connect(self.addr)?;
        sock.set_read_timeout(Some(PATIENCE))?;
        sock.set_write_timeout(Some(PATIENCE))?;
        sock.set_nodelay(true)?;
        Ok(sock)
    }

    /// One request on its own connection (`Connection: close`), read to the end.
    pub fn request(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &[u8])],
        body: &[u8],
    ) -> Result<Response> {
        let mut conn = Conn::new(self.connect()?);
        conn.exchange(&request_bytes(method, target, headers, body, true), method)
    }

    /// Opens a keep-alive connection for many requests in a row, as a page's `fetch` reuses
    /// one: much faster than a connection per [`Demo::request`], and in order.
    pub fn client(&self) -> Result<Client> {
        Ok(Client {
            conn: Conn::new(self.connect()?),
        })
    }

    /// `GET target` with `Accept: text/event-stream` and the extra headers; the head is
    /// read, the body is left to the returned stream.
    pub fn events(&self, target: &str, headers: &[(&str, &[u8])]) -> Result<EventStream> {
        let mut all: Vec<(&str, &[u8])> = vec![("Accept", b"text/event-stream")];
        all.extend_from_slice(headers);
        let mut sock = self.connect()?;
        sock.write_all(&request_bytes("GET", target, &all, b"", false))?;
        let mut conn = Conn::new(sock);
        let head = conn.read_head()?;
        Ok(EventStream {
            chunked: head.header("transfer-encoding") == Some(b"chunked".as_slice()),
            head,
            conn,
            chunk_left: 0,
            ended: false,
            raw: Vec::new(),
            decoder: Decoder::new(),
            items: Vec::new(),
        })
    }

    /// Connected session ids, from `GET /sessions`.
    pub fn sessions(&self) -> Result<Vec<String>> {
        let response = self.request("GET", "/sessions", &[], b"")?;
        if response.head.status != 200 {
            return Err(format!("GET /sessions: {}", response.head.status).into());
        }
        match serde_json::from_slice(&response.body)? {
            serde_json::Value::Array(ids) => Ok(ids
                .into_iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()),
            other => Err(format!("GET /sessions gave {other}").into()),
        }
    }

    /// Polls `GET /sessions` until `done` holds for it, for at most `limit`.
    pub fn wait_sessions(
        &self,
        limit: Duration,
        done: impl Fn(&[String]) -> bool,
    ) -> Result<Vec<String>> {
        let deadline = Instant::now() + limit;
        loop {
            let ids = self.sessions()?;
            if done(&ids) || Instant::now() >= deadline {
                return Ok(ids);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn request_bytes(
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
/// (`Content-Length` or chunked, or no body), from [`Demo::client`].
#[derive(Debug)]
pub struct Client {
    conn: Conn,
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
struct Conn {
    sock: TcpStream,
    buf: Vec<u8>,
    eof: bool,
}

impl Conn {
    fn new(sock: TcpStream) -> Conn {
        Conn {
            sock,
            buf: Vec::new(),
            eof: false,
        }
    }

    /// Reads more bytes into `buf`; `Ok(0)` at EOF. A timeout is an error.
    fn fill(&mut self) -> Result<usize> {
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
    fn exchange(&mut self, request: &[u8], method: &str) -> Result<Response> {
        self.sock.write_all(request)?;
        let head = self.read_head()?;
        let mut body = Vec::new();
        if method != "HEAD" && head.status != 204 && head.status != 304 {
            self.read_body_to_end(&head, &mut body)?;
        }
        Ok(Response { head, body })
    }

    fn read_head(&mut self) -> Result<Head> {
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

    fn read_body_to_end(&mut self, head: &Head, body: &mut Vec<u8>) -> Result<()> {
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

enum Chunk {
    Data,
    End,
    NeedMore,
}

/// Moves de-chunked bytes from `buf` to `out`; `left` is what remains of the current chunk.
fn next_chunk(buf: &mut Vec<u8>, left: &mut usize, out: &mut Vec<u8>) -> Result<Chunk> {
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

/// An open event stream: the response head and a body read on demand.
#[derive(Debug)]
pub struct EventStream {
    /// The response head.
    pub head: Head,
    conn: Conn,
    chunked: bool,
    chunk_left: usize,
    ended: bool,
    /// Every body byte received so far (de-chunked), comments included.
    pub raw: Vec<u8>,
    decoder: Decoder,
    items: Vec<Item>,
}

impl EventStream {
    /// Reads whatever arrives within `limit` (at least one read unless the stream ended).
    /// Returns false once the stream has ended (terminating chunk or EOF).
    fn pump(&mut self, limit: Duration) -> Result<bool> {
        if self.ended {
            return Ok(false);
        }
        // Bytes that came in with the head (or with the last read) go first.
        if !self.take_buffered()? {
            self.conn
                .sock
                .set_read_timeout(Some(limit.max(Duration::from_millis(1))))?;
            match self.conn.fill() {
                Ok(0) => self.ended = true,
                Ok(_) => {}
                Err(e) if is_timeout(e.as_ref()) => return Ok(true),
                Err(e) => return Err(e),
            }
            self.take_buffered()?;
        }
        Ok(!self.ended)
    }

    /// Moves what the connection buffered into `raw` and the decoder; whether anything moved.
    fn take_buffered(&mut self) -> Result<bool> {
        let before = self.raw.len();
        if self.chunked {
            loop {
                match next_chunk(&mut self.conn.buf, &mut self.chunk_left, &mut self.raw)? {
                    Chunk::Data => {}
                    Chunk::End => {
                        self.ended = true;
                        break;
                    }
                    Chunk::NeedMore => break,
                }
            }
        } else {
            self.raw.append(&mut self.conn.buf);
        }
        self.decoder.feed(&self.raw[before..])?;
        while let Some(item) = self.decoder.poll_item() {
            self.items.push(item);
        }
        Ok(self.raw.len() > before || self.ended)
    }

    /// Waits up to [`PATIENCE`] for `done` to hold on the stream. Returns whether it did.
    pub fn wait_for(&mut self, mut done: impl FnMut(&EventStream) -> bool) -> Result<bool> {
        self.wait_for_within(PATIENCE, &mut done)
    }

    /// Waits up to `limit` for `done` to hold on the stream.
    pub fn wait_for_within(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&EventStream) -> bool,
    ) -> Result<bool> {
        let deadline = Instant::now() + limit;
        loop {
            if done(self) {
                return Ok(true);
            }
            let now = Instant::now();
            if now >= deadline || !self.pump(deadline - now)? {
                return Ok(done(self));
            }
        }
    }

    /// The session id the preamble set (the decoder's last event id), once it arrived.
    pub fn session_id(&mut self) -> Result<String> {
        self.wait_for(|s| !s.decoder.last_event_id().is_empty())?;
        match self.decoder.last_event_id() {
            "" => Err("no `id:` in the preamble".into()),
            id => Ok(id.to_owned()),
        }
    }

    /// The last event id so far, as `EventSource` keeps it (an `id:` field takes effect at
    /// the blank line that ends its block, the preamble's included): what a browser would
    /// send back as `Last-Event-ID` if the stream ended now. Empty before any `id:` arrived.
    pub fn last_event_id(&self) -> &str {
        self.decoder.last_event_id()
    }

    /// The events dispatched so far.
    pub fn events(&self) -> Vec<&MessageEvent> {
        self.items
            .iter()
            .filter_map(|i| match i {
                Item::Event(e) => Some(e),
                Item::Retry(_) => None,
            })
            .collect()
    }

    /// Retry values received so far.
    pub fn retries(&self) -> Vec<u64> {
        self.items
            .iter()
            .filter_map(|i| match i {
                Item::Retry(ms) => Some(*ms),
                Item::Event(_) => None,
            })
            .collect()
    }

    /// Waits for the first event named `name` and returns it.
    pub fn next_named(&mut self, name: &str) -> Result<MessageEvent> {
        self.wait_for(|s| s.events().iter().any(|e| e.event == name))?;
        self.events()
            .into_iter()
            .find(|e| e.event == name)
            .cloned()
            .ok_or_else(|| format!("no `{name}` event within {PATIENCE:?}").into())
    }

    /// Waits up to `limit` for the server to end the stream. Returns whether it did.
    pub fn wait_end(&mut self, limit: Duration) -> Result<bool> {
        self.wait_for_within(limit, |s| s.ended)
    }

    /// Whether the server ended the stream.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Hangs up (both directions), as a closed tab does.
    pub fn hang_up(self) {
        let _ = self.conn.sock.shutdown(Shutdown::Both);
    }

    /// The socket, for tests that need to stop reading (a slow client).
    pub fn socket(&self) -> &TcpStream {
        &self.conn.sock
    }
}

fn is_timeout(e: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    e.downcast_ref::<io::Error>().is_some_and(|e| {
        matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        )
    })
}

/// Percent-encodes every byte that is not ASCII alphanumeric, for a query or path segment.
pub fn percent_encode(bytes: &[u8]) -> String {
    percent_encoding::percent_encode(bytes, percent_encoding::NON_ALPHANUMERIC).to_string()
}
