//! One measurement: a server in its own process, N idle streams from this (one-thread)
//! client, M broadcasts through `POST /broadcast`, and the figures read from `/proc`.
//! Streams and broadcasts are HTTP/1.1, or HTTP/2 over TLS for `h2:` servers ([`crate::h2`]).

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

pub(crate) type Error = Box<dyn std::error::Error + Send + Sync>;

/// Longest wait for every stream to have every broadcast.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(180);

/// Which server to start, and how to name it in the report.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    /// `floor`, `axum`, or a demo binary's file name with its extra flags.
    pub(crate) label: String,
    pub(crate) program: String,
    pub(crate) args: Vec<String>,
    /// A demo: it gets the demo contract's `--addr`, no ticks and no keep-alive.
    pub(crate) demo: bool,
    /// A demo whose streams join this topic (`/events?topic=T`) and whose events are
    /// published to it (`POST /topics/T/events`) instead of broadcast.
    pub(crate) topic: Option<String>,
    /// A demo served over TLS (with a certificate made for it), to which the streams and
    /// the broadcasts go over HTTP/2.
    pub(crate) h2: bool,
}

/// The topic of `topic:` servers.
const TOPIC: &str = "bench";

impl Spec {
    /// `floor`, `axum`, or `PATH [FLAGS…]` (a demo binary and flags of its own), which
    /// `topic:` before the path turns into a topic's publishes and `h2:` into HTTP/2 over
    /// TLS (the two in either order); `common` are flags for every demo (`--server-args`).
    pub(crate) fn parse(spec: &str, common: &[String]) -> Result<Spec, Error> {
        if let Some(demo) = spec.strip_prefix("h2:") {
            let mut spec = Spec::parse(demo, common)?;
            if !spec.demo {
                return Err(format!("h2: needs a demo that serves TLS, not {demo}").into());
            }
            spec.h2 = true;
            return Ok(spec);
        }
        if let Some(demo) = spec.strip_prefix("topic:") {
            let mut spec = Spec::parse(demo, common)?;
            if !spec.demo {
                return Err(format!("topic: needs a demo, not {demo}").into());
            }
            spec.label = format!("{} (topic)", spec.label);
            spec.topic = Some(TOPIC.to_owned());
            return Ok(spec);
        }
        let me = std::env::current_exe()?.to_string_lossy().into_owned();
        let mut words = spec.split_whitespace().map(str::to_owned);
        let program = words.next().ok_or("an empty --server")?;
        let own: Vec<String> = words.collect();
        Ok(match program.as_str() {
            "floor" | "axum" => Spec {
                label: program.clone(),
                args: vec![format!("--serve-{program}"), "127.0.0.1:0".to_owned()],
                program: me,
                demo: false,
                topic: None,
                h2: false,
            },
            _ => {
                let name = std::path::Path::new(&program)
                    .file_name()
                    .map_or(program.clone(), |n| n.to_string_lossy().into_owned());
                let args: Vec<String> = common.iter().chain(&own).cloned().collect();
                let label = std::iter::once(name)
                    .chain(args.iter().cloned())
                    .collect::<Vec<_>>()
                    .join(" ");
                Spec {
                    label,
                    program,
                    args,
                    demo: true,
                    topic: None,
                    h2: false,
                }
            }
        })
    }
}

/// What one run measured.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Figures {
    pub(crate) deliveries_per_s: f64,
    /// Server CPU (user + system) per delivery, in µs.
    pub(crate) cpu_us: f64,
    /// Of which user space, in µs.
    pub(crate) user_us: f64,
    /// Times the load client's thread went to sleep (voluntary context switches), per
    /// 1 000 deliveries: each sleep is a wake-up that some server write pays for.
    pub(crate) client_sleeps: f64,
    pub(crate) writes: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    /// RSS per idle stream, in bytes.
    pub(crate) rss_per_conn: f64,
}

struct Server {
    child: Child,
    addr: SocketAddr,
    /// `h2:` servers: their certificate, and a client that trusts it.
    tls: Option<crate::h2::Tls>,
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM first: the demos end their streams on a signal.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        for _ in 0..40 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(spec: &Spec) -> Result<Server, Error> {
        let mut cmd = Command::new(&spec.program);
        if spec.demo {
            cmd.args([
                "--addr",
                "127.0.0.1:0",
                "--tick-ms",
                "0",
                "--keep-alive-ms",
                "0",
            ]);
        }
        cmd.args(&spec.args);
        let tls = if spec.h2 {
            let tls = crate::h2::Tls::new()?;
            cmd.args(tls.flags());
            Some(tls)
        } else {
            None
        };
        let mut child = cmd.stdout(Stdio::piped()).stdin(Stdio::null()).spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)?;
        let scheme = if spec.h2 { "https" } else { "http" };
        let addr = line
            .trim()
            .strip_prefix(&format!("listening on {scheme}://"))
            .ok_or(format!(
                "{} printed {line:?} (a demo served over TLS needs h2: before its path)",
                spec.label
            ))?
            .parse()?;
        Ok(Server { child, addr, tls })
    }

    /// CPU time the server has used, user and system apart.
    fn cpu(&self) -> (Duration, Duration) {
        sse_benches::process::cpu_times(self.child.id())
    }

    /// Write-type system calls the server has made (`syscw` of `/proc/<pid>/io`).
    fn write_calls(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/io", self.child.id()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("syscw:")?.trim().parse().ok())
            .unwrap_or(0)
    }

    fn rss_kib(&self) -> u64 {
        sse_benches::process::rss_kib(self.child.id())
    }
}

/// What one stream saw: the receive time of each broadcast sequence number.
pub(crate) struct Seen {
    received: Vec<Option<Instant>>,
}

/// Finds the broadcasts' marks in a stream's bytes, whatever the pieces it comes in.
pub(crate) struct Marks {
    seen: Seen,
    /// A tail of what came that may hold the start of a mark.
    carry: Vec<u8>,
    got: usize,
}

impl Marks {
    pub(crate) fn new(broadcasts: usize) -> Marks {
        Marks {
            seen: Seen {
                received: vec![None; broadcasts],
            },
            carry: Vec::new(),
            got: 0,
        }
    }

    /// Every broadcast has come.
    pub(crate) fn done(&self) -> bool {
        self.got >= self.seen.received.len()
    }

    /// Records the broadcasts whose marks `bytes` completes as received at `now`.
    pub(crate) fn feed(&mut self, bytes: &[u8], now: Instant) -> Result<(), Error> {
        let carry = &mut self.carry;
        carry.extend_from_slice(bytes);
        // Each broadcast's data starts with `#<seq>.`.
        let mut last_end = 0;
        for at in memchr::memmem::find_iter(carry, b"data: #") {
            let digits = &carry[at + 7..];
            let Some(dot) = memchr::memchr(b'.', digits) else {
                break;
            };
            let seq: usize = std::str::from_utf8(&digits[..dot])?.parse()?;
            if let Some(slot @ None) = self.seen.received.get_mut(seq) {
                *slot = Some(now);
                self.got += 1;
            }
            last_end = at + 7 + dot;
        }
        // Keep a tail that may hold the start of a marker.
        let keep_from = last_end.max(carry.len().saturating_sub(32));
        carry.drain(..keep_from);
        Ok(())
    }

    pub(crate) fn into_seen(self) -> Seen {
        self.seen
    }
}

/// One idle stream: connects, then records when each broadcast arrives. `connecting` is
/// released and `ready` credited once the response head is in.
async fn client(
    addr: SocketAddr,
    target: Arc<str>,
    broadcasts: usize,
    connecting: OwnedSemaphorePermit,
    ready: Arc<Semaphore>,
) -> Result<Seen, Error> {
    let mut connecting = Some(connecting);
    let mut sock = TcpStream::connect(addr).await?;
    sock.set_nodelay(true)?;
    let head = format!("GET {target} HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n");
    sock.write_all(head.as_bytes()).await?;
    let mut marks = Marks::new(broadcasts);
    let mut buf = vec![0u8; 16 * 1024];
    let mut answer: Vec<u8> = Vec::new();
    let mut headed = false;
    while !marks.done() {
        let n = sock.read(&mut buf).await?;
        if n == 0 {
            return Err("server closed a stream".into());
        }
        let now = Instant::now();
        if headed {
            marks.feed(&buf[..n], now)?;
            continue;
        }
        answer.extend_from_slice(&buf[..n]);
        if let Some(at) = memchr::memmem::find(&answer, b"\r\n\r\n") {
            headed = true;
            connecting.take();
            ready.add_permits(1);
            marks.feed(&answer[at + 4..], now)?;
        }
    }
    Ok(marks.into_seen())
}

async fn post_broadcast(addr: SocketAddr, path: &str, body: &[u8]) -> Result<usize, Error> {
    let mut sock = TcpStream::connect(addr).await?;
    let head = format!(
        "POST {path}?event=bulk HTTP/1.1\r\nHost: bench\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    sock.write_all(head.as_bytes()).await?;
    sock.write_all(body).await?;
    let mut reply = Vec::new();
    sock.read_to_end(&mut reply).await?;
    let text = String::from_utf8_lossy(&reply);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no reply head")?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("broadcast: {head}").into());
    }
    // A chunked reply has the number on its second line.
    let count = body
        .lines()
        .find_map(|l| l.trim().parse::<usize>().ok().filter(|_| !l.is_empty()));
    Ok(count.unwrap_or(0))
}

/// Where the broadcasts go: a new HTTP/1.1 connection each, or one HTTP/2 connection.
enum Broadcaster {
    Http1(SocketAddr),
    H2(crate::h2::Poster),
}

impl Broadcaster {
    async fn post(&mut self, path: &str, body: &[u8]) -> Result<usize, Error> {
        match self {
            Broadcaster::Http1(addr) => post_broadcast(*addr, path, body).await,
            Broadcaster::H2(poster) => poster.post(path, body).await,
        }
    }
}

/// Starts the server of `spec`, opens `conns` streams (over `h2_conns` connections for an
/// `h2:` server), sends `broadcasts` events of `size` bytes one after the other (the next
/// one `pace` after the previous one started, or as soon as it is answered when `pace` is
/// zero), and waits until every stream has every one.
pub(crate) async fn measure(
    spec: &Spec,
    conns: usize,
    h2_conns: usize,
    broadcasts: usize,
    size: usize,
    pace: Duration,
) -> Result<Figures, Error> {
    let server = Server::start(spec)?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_before = server.rss_kib();

    // At most 256 connects in flight; each stream then stays open, idle.
    let (target, path): (Arc<str>, String) = match &spec.topic {
        Some(t) => (
            format!("/events?topic={t}").into(),
            format!("/topics/{t}/events"),
        ),
        None => ("/events".into(), "/broadcast".to_owned()),
    };
    let ready = Arc::new(Semaphore::new(0));
    let connecting = Arc::new(Semaphore::new(256));
    let mut tasks: Vec<JoinHandle<Result<Vec<Seen>, Error>>> = Vec::with_capacity(conns);
    match &server.tls {
        None => {
            for _ in 0..conns {
                let permit = connecting.clone().acquire_owned().await?;
                let stream = client(
                    server.addr,
                    target.clone(),
                    broadcasts,
                    permit,
                    ready.clone(),
                );
                tasks.push(tokio::spawn(async move { Ok(vec![stream.await?]) }));
            }
        }
        Some(tls) => {
            // The streams spread evenly: the first N mod C connections get one more.
            let h2_conns = h2_conns.clamp(1, conns.max(1));
            for i in 0..h2_conns {
                let streams = conns / h2_conns + usize::from(i < conns % h2_conns);
                let permit = connecting.clone().acquire_owned().await?;
                tasks.push(tokio::spawn(crate::h2::connection(
                    tls.connector(),
                    server.addr,
                    target.clone(),
                    streams,
                    broadcasts,
                    permit,
                    ready.clone(),
                )));
            }
        }
    }
    let all = u32::try_from(conns)?;
    let accepted = tokio::time::timeout(Duration::from_secs(60), ready.acquire_many(all));
    tokio::select! {
        accepted = accepted => {
            let _ = accepted.map_err(|_| "not every stream was accepted within 60 s")??;
        }
        // A connection that failed before its streams were in: its error, not a timeout.
        failed = first_failure(&mut tasks) => return Err(failed),
    }
    // Let the server settle, then read its memory with every stream idle.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_idle = server.rss_kib();
    let rss_per_conn = (rss_idle.saturating_sub(rss_before) as f64 * 1024.0) / conns as f64;
    let mut broadcaster = match &server.tls {
        None => Broadcaster::Http1(server.addr),
        Some(tls) => {
            Broadcaster::H2(crate::h2::Poster::connect(&tls.connector(), server.addr).await?)
        }
    };

    let (user_before, sys_before) = server.cpu();
    let writes_before = server.write_calls();
    let sleeps_before = client_sleeps();
    let mut sent_at = Vec::with_capacity(broadcasts);
    let start = Instant::now();
    for seq in 0..broadcasts {
        let mut body = format!("#{seq}.").into_bytes();
        body.resize(size.max(body.len()), b'x');
        if !pace.is_zero() {
            let due = start + pace * u32::try_from(seq)?;
            tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
        }
        sent_at.push(Instant::now());
        let count = broadcaster.post(&path, &body).await?;
        if count != conns {
            return Err(format!("broadcast {seq} reached {count} of {conns}").into());
        }
    }
    let mut latencies = Vec::with_capacity(conns * broadcasts);
    let mut last = start;
    let collect = async {
        for task in tasks {
            for seen in task.await?? {
                for (seq, at) in seen.received.iter().enumerate() {
                    let at = at.ok_or("missed a broadcast")?;
                    last = last.max(at);
                    latencies.push(at.duration_since(sent_at[seq]));
                }
            }
        }
        Ok::<(), Error>(())
    };
    tokio::time::timeout(DELIVERY_TIMEOUT, collect)
        .await
        .map_err(|_| format!("{}: not every broadcast arrived", spec.label))??;
    let elapsed = last.duration_since(start);
    let (user_after, sys_after) = server.cpu();
    let user = user_after.saturating_sub(user_before);
    let cpu = user + sys_after.saturating_sub(sys_before);
    let writes = server.write_calls().saturating_sub(writes_before);
    let sleeps = client_sleeps().saturating_sub(sleeps_before);
    latencies.sort_unstable();
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
    let deliveries = (conns * broadcasts) as f64;
    Ok(Figures {
        deliveries_per_s: deliveries / elapsed.as_secs_f64(),
        cpu_us: cpu.as_secs_f64() * 1e6 / deliveries,
        user_us: user.as_secs_f64() * 1e6 / deliveries,
        writes: writes as f64 / deliveries,
        client_sleeps: sleeps as f64 * 1000.0 / deliveries,
        p50_ms: pct(0.50).as_secs_f64() * 1e3,
        p99_ms: pct(0.99).as_secs_f64() * 1e3,
        rss_per_conn,
    })
}

/// The error of the first task to fail; pending while none has failed.
async fn first_failure(tasks: &mut [JoinHandle<Result<Vec<Seen>, Error>>]) -> Error {
    loop {
        for task in tasks.iter_mut() {
            if task.is_finished() {
                return match task.await {
                    Err(e) => e.into(),
                    Ok(Err(e)) => e,
                    Ok(Ok(_)) => "a stream ended before the broadcasts".into(),
                };
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Voluntary context switches of this thread (the load client runs on one), from
/// `/proc/thread-self/status`.
fn client_sleeps() -> u64 {
    std::fs::read_to_string("/proc/thread-self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}
