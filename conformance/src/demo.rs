//! [`Demo`]: a demo binary started on a free loopback port, and what a test asks of it.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sse_proto::Decoder;

use crate::http::{Client, Conn, Response, request_bytes};
use crate::stream::EventStream;
use crate::{PATIENCE, Result};

thread_local! {
    /// Flags every demo this thread starts gets after its own ([`Demo::with_flags`]).
    static ADDED: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

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

    /// Runs `f` with `flags` added to every demo this thread starts: a rule written for one
    /// demo, run against demos on Redis (`--redis URL`), say.
    pub fn with_flags<T>(flags: &[&str], f: impl FnOnce() -> T) -> T {
        let before = ADDED.with(|a| {
            std::mem::replace(
                &mut *a.borrow_mut(),
                flags.iter().map(|f| (*f).to_owned()).collect(),
            )
        });
        let out = f();
        ADDED.with(|a| *a.borrow_mut() = before);
        out
    }

    /// [`Demo::start`] with environment variables set for the demo (the server limits of
    /// `demo/limits.rs`, `SSE_DEMO_*`).
    pub fn start_with_env(bin: &str, flags: &[&str], env: &[(&str, &str)]) -> Result<Demo> {
        let added = ADDED.with(|a| a.borrow().clone());
        let mut child = Command::new(bin)
            .args(["--addr", "127.0.0.1:0"])
            .args(flags)
            .args(&added)
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
