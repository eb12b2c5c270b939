//! A demo node in a process of its own (`demo-tokio --redis …`), and what `/proc` says about
//! a process: its RSS and its CPU time.

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::Error;

/// How long a node may take to print `listening on …` (it waits for Redis first).
const START_LIMIT: Duration = Duration::from_secs(30);

/// A running demo node; stopped (SIGTERM, then SIGKILL) when dropped.
pub(crate) struct Node {
    child: Child,
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    /// Its stderr, in a file.
    log: PathBuf,
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .stderr(Stdio::null())
            .status();
        for _ in 0..60 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    /// Starts node `index` of `program` on Redis `url` with `extra` flags, its stderr going to
    /// `dir/node-<index>.log`, and waits until it listens.
    pub(crate) fn start(
        program: &Path,
        index: usize,
        url: &str,
        extra: &[String],
        dir: &Path,
    ) -> Result<Node, Error> {
        let log = dir.join(format!("node-{index}.log"));
        let mut child = Command::new(program)
            .args(["--addr", "127.0.0.1:0", "--redis", url])
            .args([
                "--tick-ms",
                "0",
                "--keep-alive-ms",
                "0",
                "--resume-ms",
                "60000",
            ])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads the first line, then drains the rest for as long as the node runs.
        std::thread::spawn(move || {
            let mut lines = std::io::BufReader::new(stdout).lines();
            let _ = tx.send(lines.next());
            for _ in lines {}
        });
        let mut node = Node {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
        };
        let line = match rx.recv_timeout(START_LIMIT) {
            Ok(Some(Ok(line))) => line,
            Ok(_) => {
                // Its stdout ended: it exited (a bad flag, a port taken, Redis refusing it).
                let status = node.child.wait()?;
                return Err(format!(
                    "node {index} exited before it listened ({status}){}",
                    node.stderr_tail()
                )
                .into());
            }
            Err(_) => {
                return Err(format!(
                    "node {index} did not listen within {} s (it waits for Redis){}",
                    START_LIMIT.as_secs(),
                    node.stderr_tail()
                )
                .into());
            }
        };
        node.addr = line
            .trim()
            .strip_prefix("listening on http://")
            .ok_or_else(|| format!("node {index} printed {line:?}"))?
            .parse()?;
        Ok(node)
    }

    /// An error unless the node still runs.
    pub(crate) fn check(&mut self, index: usize) -> Result<(), Error> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => {
                Err(format!("node {index} exited ({status}){}", self.stderr_tail()).into())
            }
        }
    }

    /// Its stderr, to quote in an error: the first three lines and the last three.
    fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let quoted = if lines.len() > 6 {
            let (head, tail) = (&lines[..3], &lines[lines.len() - 3..]);
            format!("{}\n  …\n  {}", head.join("\n  "), tail.join("\n  "))
        } else {
            lines.join("\n  ")
        };
        if quoted.is_empty() {
            String::new()
        } else {
            format!("; its stderr:\n  {quoted}")
        }
    }

    /// How many times it has logged that Redis went away (a command unanswered within its
    /// timeout, `--redis-timeout-ms`): it then serves its own connections only.
    pub(crate) fn times_away(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .matches("Redis unreachable")
            .count()
    }

    /// Its process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// `VmRSS` of process `pid`, in bytes (0 when it cannot be read).
pub(crate) fn rss(pid: u32) -> u64 {
    sse_benches::process::rss_kib(pid) * 1024
}

/// CPU time (user + system) process `pid` has used.
pub(crate) fn cpu(pid: u32) -> Duration {
    let (user, system) = sse_benches::process::cpu_times(pid);
    user + system
}

/// The soft limit on open files of this process (its children inherit it).
pub(crate) fn open_file_limit() -> Option<usize> {
    std::fs::read_to_string("/proc/self/limits")
        .ok()?
        .lines()
        .find(|l| l.starts_with("Max open files"))?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()
}
