//! The floor: the least a server can do to fan one event out over HTTP/1.1 streams, so that
//! every other server's cost is read as a multiple of it.
//!
//! Standard library only, one thread, no runtime, no task, no lock, no queue: it accepts
//! connections one at a time and reads each request whole (blocking). `GET /events` gets the
//! response head and a preamble and its socket joins a list; `POST /broadcast?event=NAME`
//! encodes its body once as one chunk of the chunked stream (`event:` and `data:` lines, as
//! the demos write it) and writes that one buffer to every socket in turn, one `write` system
//! call each, then answers 200 with the count. A socket whose write fails leaves the list.
//!
//! What it leaves out is what any real server needs (a slow reader blocks every other one,
//! a silent client holds the accept loop up to its read timeout, nothing is coalesced): the
//! floor is a measure, not a design.

use std::io::{IoSlice, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// How long a request may take to arrive before its connection is dropped.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request head and body read.
const MAX_REQUEST: usize = 1 << 20;

const STREAM_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\n\
content-type: text/event-stream\r\n\
cache-control: no-cache, no-transform\r\n\
x-accel-buffering: no\r\n\
connection: keep-alive\r\n\
transfer-encoding: chunked\r\n\r\n";

/// Serves on `addr` until killed. Prints `listening on http://ADDR` once it accepts.
pub(crate) fn serve(addr: SocketAddr) {
    let listener = match TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("fanout: floor: bind {addr}: {e}");
            return;
        }
    };
    if let Ok(local) = listener.local_addr() {
        println!("listening on http://{local}");
    }
    let mut streams: Vec<TcpStream> = Vec::new();
    let mut next_id = 0u64;
    for conn in listener.incoming() {
        let Ok(mut sock) = conn else { continue };
        let _ = sock.set_nodelay(true);
        let _ = sock.set_read_timeout(Some(READ_TIMEOUT));
        let Some((head, body)) = read_request(&mut sock) else {
            continue;
        };
        let line = head.lines().next().unwrap_or_default();
        let mut parts = line.split(' ');
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        match (method, path) {
            ("GET", "/events") => {
                next_id += 1;
                let preamble = format!("retry: 3000\nid: floor-{next_id}\n\n");
                let mut out = STREAM_HEAD.to_vec();
                out.extend_from_slice(&chunk(preamble.as_bytes()));
                if sock.write_all(&out).is_ok() {
                    streams.push(sock);
                }
            }
            ("POST", "/broadcast") => {
                let name = query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("event="))
                    .filter(|n| !n.is_empty());
                let frame = chunk(&encode(name, &body));
                // The whole cost of a delivery: one write of one shared buffer (`writev`, as
                // the other servers write, so that `/proc`'s count of writes sees it: std's
                // `write` on a socket is a `send`, which it does not count).
                streams.retain_mut(|s| write_all(s, &frame));
                let count = streams.len().to_string();
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{count}",
                    count.len()
                );
                let _ = sock.write_all(reply.as_bytes());
            }
            _ => {
                let _ = sock.write_all(
                    b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
            }
        }
    }
}

/// Writes all of `buf` with `writev`; false when the peer is gone.
fn write_all(sock: &mut TcpStream, mut buf: &[u8]) -> bool {
    while !buf.is_empty() {
        match sock.write_vectored(&[IoSlice::new(buf)]) {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf = &buf[n..],
        }
    }
    true
}

/// Reads one request: its head, and a body of `content-length` bytes.
fn read_request(sock: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::with_capacity(1024);
    let mut scratch = [0u8; 4096];
    let end = loop {
        let n = sock.read(&mut scratch).ok().filter(|&n| n > 0)?;
        buf.extend_from_slice(&scratch[..n]);
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if buf.len() > MAX_REQUEST {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let length = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0)
        .min(MAX_REQUEST);
    let mut body = buf.split_off(end);
    while body.len() < length {
        let n = sock.read(&mut scratch).ok().filter(|&n| n > 0)?;
        body.extend_from_slice(&scratch[..n]);
    }
    body.truncate(length);
    Some((head, body))
}

/// The event as the demos write it: `event: NAME`, then one `data:` line per line.
fn encode(name: Option<&str>, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 32);
    if let Some(name) = name {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
    }
    for line in data.split(|&b| b == b'\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
        out.push(b'\n');
    }
    out.push(b'\n');
    out
}

/// `data` as one chunk of a chunked body.
fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}
