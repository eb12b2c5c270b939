//! End-to-end fan-out on loopback: N idle connections, then M broadcasts through a server's
//! `POST /broadcast`, measured from a separate load-client process (this one).
//!
//! ```text
//! cargo build --release -p sse-conformance -p sse-benches
//! target/release/fanout --server target/release/demo-hyper --conns 1000 --broadcasts 50 --size 64
//! target/release/fanout --server axum --conns 1000 --broadcasts 50 --size 64
//! ```
//!
//! `--server axum` starts this same binary as an axum server (`--serve-axum`) that follows
//! the demo contract's `/events` and `/broadcast` with axum's own `Sse` and a
//! `tokio::sync::broadcast` channel: the way an axum application fans out, each connection
//! encoding the event itself. Every server runs in its own process, so its RSS is its own.
//!
//! Prints one line of figures: deliveries per second (N × M over the time from the first
//! broadcast to the last delivery), the server's CPU time per delivery (user + system, from
//! `/proc`, over the same span: what the server spends, whatever the client's speed), its
//! write system calls per delivery (below 1 when it coalesces events into one write),
//! delivery latency p50/p99 (from the broadcast's send to the client's read), and the
//! server's RSS per idle connection.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

struct Args {
    server: String,
    /// Extra flags for a demo server (`--server-args "--resume-ms 60000"`).
    server_args: Vec<String>,
    conns: usize,
    broadcasts: usize,
    size: usize,
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut args = std::env::args().skip(1);
    let mut out = Args {
        server: "axum".to_owned(),
        server_args: Vec::new(),
        conns: 1000,
        broadcasts: 50,
        size: 64,
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--serve-axum" => {
                let addr = value()?;
                serve_axum(addr.parse().map_err(|e| format!("--serve-axum: {e}"))?);
                return Ok(None);
            }
            "--server" => out.server = value()?,
            "--server-args" => {
                out.server_args = value()?.split_whitespace().map(str::to_owned).collect()
            }
            "--conns" => out.conns = value()?.parse().map_err(|e| format!("--conns: {e}"))?,
            "--broadcasts" => {
                out.broadcasts = value()?.parse().map_err(|e| format!("--broadcasts: {e}"))?
            }
            "--size" => out.size = value()?.parse().map_err(|e| format!("--size: {e}"))?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(Some(out))
}

fn main() {
    match parse_args() {
        Ok(Some(args)) => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match rt {
                Ok(rt) => {
                    if let Err(e) = rt.block_on(run(args)) {
                        eprintln!("fanout: {e}");
                        std::process::exit(1);
                    }
                }
                Err(e) => eprintln!("fanout: {e}"),
            }
        }
        Ok(None) => {}
        Err(e) => {
            eprintln!("fanout: {e}");
            std::process::exit(2);
        }
    }
}

type Error = Box<dyn std::error::Error + Send + Sync>;

struct Server {
    child: Child,
    addr: SocketAddr,
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
    fn start(server: &str, extra: &[String]) -> Result<Server, Error> {
        let (program, args): (String, Vec<&str>) = if server == "axum" {
            let me = std::env::current_exe()?.to_string_lossy().into_owned();
            (me, vec!["--serve-axum", "127.0.0.1:0"])
        } else {
            let flags = [
                "--addr",
                "127.0.0.1:0",
                "--tick-ms",
                "0",
                "--keep-alive-ms",
                "0",
            ];
            (server.to_owned(), flags.to_vec())
        };
        let mut cmd = Command::new(&program);
        cmd.args(args).args(extra);
        let mut child = cmd.stdout(Stdio::piped()).stdin(Stdio::null()).spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)?;
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .ok_or(format!("{server} printed {line:?}"))?
            .parse()?;
        Ok(Server { child, addr })
    }

    /// CPU time the server has used (user + system), from `/proc/<pid>/stat`.
    fn cpu(&self) -> Duration {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command name (which is in parentheses): utime is the 12th.
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<u64> = after
            .split_whitespace()
            .skip(11)
            .take(2)
            .filter_map(|f| f.parse().ok())
            .collect();
        // Clock ticks are 1/100 s on Linux.
        Duration::from_millis(fields.iter().sum::<u64>() * 10)
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
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0)
    }
}

/// What one client saw: the receive time of each broadcast sequence number.
struct Seen {
    received: Vec<Option<Instant>>,
}

/// One idle stream: connects, then records when each broadcast arrives. `connecting` is
/// released and `ready` credited once the response head is in.
async fn client(
    addr: SocketAddr,
    broadcasts: usize,
    connecting: OwnedSemaphorePermit,
    ready: Arc<Semaphore>,
) -> Result<Seen, Error> {
    let mut connecting = Some(connecting);
    let mut sock = TcpStream::connect(addr).await?;
    sock.set_nodelay(true)?;
    sock.write_all(b"GET /events HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n")
        .await?;
    let mut seen = Seen {
        received: vec![None; broadcasts],
    };
    let mut buf = vec![0u8; 16 * 1024];
    let mut carry: Vec<u8> = Vec::new();
    let mut headed = false;
    let mut got = 0;
    while got < broadcasts {
        let n = sock.read(&mut buf).await?;
        if n == 0 {
            return Err("server closed a stream".into());
        }
        let now = Instant::now();
        carry.extend_from_slice(&buf[..n]);
        if !headed {
            if memchr::memmem::find(&carry, b"\r\n\r\n").is_some() {
                headed = true;
                connecting.take();
                ready.add_permits(1);
            } else {
                continue;
            }
        }
        // Each broadcast's data starts with `#<seq>.`.
        let mut last_end = 0;
        for at in memchr::memmem::find_iter(&carry, b"data: #") {
            let digits = &carry[at + 7..];
            let Some(dot) = memchr::memchr(b'.', digits) else {
                break;
            };
            let seq: usize = std::str::from_utf8(&digits[..dot])?.parse()?;
            if let Some(slot @ None) = seen.received.get_mut(seq) {
                *slot = Some(now);
                got += 1;
            }
            last_end = at + 7 + dot;
        }
        // Keep a tail that may hold the start of a marker.
        let keep_from = last_end.max(carry.len().saturating_sub(32));
        carry.drain(..keep_from);
    }
    Ok(seen)
}

async fn post_broadcast(addr: SocketAddr, body: &[u8]) -> Result<usize, Error> {
    let mut sock = TcpStream::connect(addr).await?;
    let head = format!(
        "POST /broadcast?event=bulk HTTP/1.1\r\nHost: bench\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
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

async fn run(args: Args) -> Result<(), Error> {
    let server = Server::start(&args.server, &args.server_args)?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_before = server.rss_kib();

    // At most 256 connects in flight; each stream then stays open, idle.
    let ready = Arc::new(Semaphore::new(0));
    let connecting = Arc::new(Semaphore::new(256));
    let mut tasks = Vec::with_capacity(args.conns);
    for _ in 0..args.conns {
        let permit = connecting.clone().acquire_owned().await?;
        let ready = ready.clone();
        let (addr, m) = (server.addr, args.broadcasts);
        tasks.push(tokio::spawn(client(addr, m, permit, ready)));
    }
    let all = u32::try_from(args.conns)?;
    let _ = tokio::time::timeout(Duration::from_secs(60), ready.acquire_many(all))
        .await
        .map_err(|_| "not every stream was accepted within 60 s")??;
    // Let the server settle, then read its memory with every stream idle.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_idle = server.rss_kib();
    let per_conn = (rss_idle.saturating_sub(rss_before) as f64 * 1024.0) / args.conns as f64;

    let cpu_before = server.cpu();
    let writes_before = server.write_calls();
    let mut sent_at = Vec::with_capacity(args.broadcasts);
    let start = Instant::now();
    for seq in 0..args.broadcasts {
        let mut body = format!("#{seq}.").into_bytes();
        body.resize(args.size.max(body.len()), b'x');
        sent_at.push(Instant::now());
        let count = post_broadcast(server.addr, &body).await?;
        if count != args.conns {
            return Err(format!("broadcast {seq} reached {count} of {}", args.conns).into());
        }
    }
    let mut latencies = Vec::with_capacity(args.conns * args.broadcasts);
    let mut last = start;
    for task in tasks {
        let seen = task.await??;
        for (seq, at) in seen.received.iter().enumerate() {
            let at = at.ok_or("missed a broadcast")?;
            last = last.max(at);
            latencies.push(at.duration_since(sent_at[seq]));
        }
    }
    let elapsed = last.duration_since(start);
    let cpu = server.cpu().saturating_sub(cpu_before);
    let writes = server.write_calls().saturating_sub(writes_before);
    latencies.sort_unstable();
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
    let deliveries = args.conns * args.broadcasts;
    let name = std::path::Path::new(&args.server)
        .file_name()
        .map_or(args.server.clone(), |n| n.to_string_lossy().into_owned());
    println!(
        "{name}: conns={} broadcasts={} size={}B deliveries/s={:.0} server_cpu/delivery={:.2}us writes/delivery={:.2} p50={:.2}ms p99={:.2}ms rss_idle={}KiB rss/conn={:.0}B",
        args.conns,
        args.broadcasts,
        args.size,
        deliveries as f64 / elapsed.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / deliveries as f64,
        writes as f64 / deliveries as f64,
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        rss_idle,
        per_conn,
    );
    Ok(())
}

/// The axum comparison server: `/events` is axum's `Sse` over a broadcast receiver, each
/// connection encoding every event; `/broadcast` sends the body and answers the count.
fn serve_axum(addr: SocketAddr) {
    use axum::Router;
    use axum::extract::{Query, State};
    use axum::response::sse::{Event, Sse};
    use axum::routing::{get, post};
    use futures_lite::Stream;
    use tokio::sync::broadcast;

    type Tx = broadcast::Sender<(Option<String>, Arc<str>)>;

    async fn events(State(tx): State<Tx>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
        let rx = tx.subscribe();
        let stream = futures_lite::stream::unfold(rx, |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok((name, data)) => {
                        let mut event = Event::default().data(&*data);
                        if let Some(name) = name {
                            event = event.event(name);
                        }
                        return Some((Ok(event), rx));
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        Sse::new(stream)
    }

    async fn send(
        State(tx): State<Tx>,
        Query(q): Query<std::collections::HashMap<String, String>>,
        body: String,
    ) -> String {
        let n = tx
            .send((q.get("event").cloned(), Arc::from(body)))
            .unwrap_or(0);
        n.to_string()
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build();
    let Ok(rt) = rt else {
        eprintln!("fanout: no runtime");
        return;
    };
    rt.block_on(async move {
        let (tx, _) = broadcast::channel::<(Option<String>, Arc<str>)>(4096);
        let app = Router::new()
            .route("/events", get(events))
            .route("/broadcast", post(send))
            .with_state(tx);
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("fanout: bind {addr}: {e}");
                return;
            }
        };
        if let Ok(local) = listener.local_addr() {
            println!("listening on http://{local}");
        }
        // TCP_NODELAY as the sse-rs servers set it: an event goes out when it is written.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let _ = axum::serve(listener, app).await;
    });
}
