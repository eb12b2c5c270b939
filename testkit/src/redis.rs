//! A redis-server of the test's own on a loopback port, killed when dropped: the Redis of
//! `sse-redis`'s tests and of the conformance suite's cluster rules.
//!
//! It runs with `--save '' --appendonly no`, so nothing reaches the disk and a restart starts
//! empty. No test talks to a Redis it did not start. `scripts/install-test-deps` installs
//! `redis-server` (Debian's package); the system service it may start is never used.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a redis-server may take to answer its first `PING`.
const START_LIMIT: Duration = Duration::from_secs(10);

/// A redis-server started for one test.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    /// The loopback port it listens on.
    pub port: u16,
}

impl RedisServer {
    /// Starts one on a free port and waits until it answers. A port taken between choosing
    /// it and the server's bind (another test's) is a failed start: it tries another.
    pub fn start() -> io::Result<RedisServer> {
        let mut last = None;
        for _ in 0..3 {
            match RedisServer::start_on(free_port()?) {
                Ok(server) => return Ok(server),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("redis-server did not start")))
    }

    /// Starts one on `port` (to bring a stopped one back where the nodes expect it) and waits
    /// until it answers.
    pub fn start_on(port: u16) -> io::Result<RedisServer> {
        RedisServer::start_with(port, &[])
    }

    /// Starts one on `port` with more arguments for redis-server, and waits until it answers.
    pub(crate) fn start_with(port: u16, extra: &[&str]) -> io::Result<RedisServer> {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(extra)
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "cannot start redis-server ({e}): scripts/install-test-deps installs it"
                    ),
                )
            })?;
        let mut server = RedisServer {
            child: Some(child),
            port,
        };
        let deadline = Instant::now() + START_LIMIT;
        while !server.answers() {
            let exited = match &mut server.child {
                Some(child) => child.try_wait()?.is_some(),
                None => true,
            };
            if exited || Instant::now() >= deadline {
                server.stop();
                return Err(io::Error::other(format!(
                    "redis-server did not start on port {port}"
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }

    /// Whether it answers `PING` with `PONG` within 200 ms.
    fn answers(&self) -> bool {
        let Ok(mut conn) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = conn.set_read_timeout(Some(Duration::from_millis(200)));
        let mut buf = [0u8; 16];
        conn.write_all(b"PING\r\n").is_ok()
            && conn
                .read(&mut buf)
                .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
    }

    /// Its URL, for `--redis`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Runs one command through `redis-cli` (which comes with redis-server) and returns its
    /// raw output: one line per value.
    pub fn cli(&self, args: &[&str]) -> io::Result<String> {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "--raw"])
            .args(args)
            .output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "redis-cli {args:?}: {}",
                out.status
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Whether it runs (was not stopped).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Freezes it (SIGSTOP): connections stay open, nothing answers, nothing is lost.
    pub fn pause(&self) -> io::Result<()> {
        self.signal("STOP")
    }

    /// Thaws it (SIGCONT).
    pub fn resume(&self) -> io::Result<()> {
        self.signal("CONT")
    }

    fn signal(&self, name: &str) -> io::Result<()> {
        let Some(child) = &self.child else {
            return Err(io::Error::other("redis-server is stopped"));
        };
        let status = Command::new("kill")
            .args(["-s", name, &child.id().to_string()])
            .status()?;
        if !status.success() {
            return Err(io::Error::other(format!("kill -s {name}: {status}")));
        }
        Ok(())
    }

    /// Stops it (SIGKILL: everything it held is gone). Its port is free again once this
    /// returns.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
