//! The load client: this binary re-executed as `scale client --targets … --in-flight N
//! --source 127.0.1.N`.
//!
//! One thread (a current-thread runtime with a `LocalSet`), one task per stream. It opens its
//! streams from its own loopback address (`--source`) and source ports it names, with at most
//! `--in-flight` connects under way, each `GET /events` (or `/events?topic=room`), and reads
//! them until their `connect` event (which names the session); then every stream stays open
//! and idle, and each event whose data starts with `~` is a measured delivery: `~K<seq> <sent
//! µs>` (`K`: `b` broadcast, `p` publish, `s` send by id), the sender's wall clock in the
//! data, so a delivery's latency is the receive time minus it.
//!
//! It talks to the parent in lines. On stdout: `progress N` (every 2 000 streams open),
//! `ready N` (all open), `done TAG LAST_US` (every stream that should have event TAG has it,
//! the last at LAST_US), `got TAG LAT_US` (a send by id arrived), `id NODE SID`… `ids end`
//! (a sample of its sessions), `lat TAG COUNT DUPS NODE:N;… V,V,…` (the deliveries of TAG
//! per node, and every latency, in µs), and `error …` (a stream refused or closed: the parent
//! gives up). On stdin: `ids K` (a sample of K sessions), `report TAG` (the latencies of TAG),
//! `quit`; the end of its input also ends it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::sync::Semaphore;

use crate::Error;
use crate::wire::{Dechunk, now_us};

/// The first source port of a client's streams (each client has a loopback address of its
/// own, so every client uses the same ports).
const FIRST_PORT: u16 = 20_000;

/// Streams of one client to one node: `room` of them (the first ones) join topic `room`.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The node's address.
    pub(crate) addr: SocketAddr,
    /// The node's index, reported with each session's id.
    pub(crate) node: usize,
    /// How many streams.
    pub(crate) streams: usize,
    /// How many of them join `room`.
    pub(crate) room: usize,
}

impl Target {
    /// The command-line form of a client's targets: `ADDR/NODE/STREAMS/ROOM,…`.
    pub(crate) fn encode(targets: &[Target]) -> String {
        let parts: Vec<String> = targets
            .iter()
            .map(|t| format!("{}/{}/{}/{}", t.addr, t.node, t.streams, t.room))
            .collect();
        parts.join(",")
    }

    /// Reads what [`encode`](Self::encode) wrote.
    fn decode(text: &str) -> Result<Vec<Target>, Error> {
        text.split(',')
            .map(|part| {
                let f: Vec<&str> = part.split('/').collect();
                let [addr, node, streams, room] = f.as_slice() else {
                    return Err(format!("bad target {part}").into());
                };
                Ok(Target {
                    addr: addr.parse()?,
                    node: node.parse()?,
                    streams: streams.parse()?,
                    room: room.parse()?,
                })
            })
            .collect()
    }
}

/// What one measured event (one tag) did on this client's streams.
#[derive(Default)]
struct Tally {
    /// Each delivery's latency, µs.
    lat: Vec<u64>,
    /// Deliveries of it to a stream that had it already.
    dups: usize,
    /// When the last delivery arrived (wall clock, µs).
    last_us: u64,
    /// Deliveries per node.
    by_node: std::collections::BTreeMap<usize, usize>,
}

/// The client's shared state (one thread: `Rc<RefCell>`).
#[derive(Default)]
struct State {
    total: usize,
    room: usize,
    ready: usize,
    /// Each open stream's node and session id.
    ids: Vec<(usize, String)>,
    tallies: HashMap<String, Tally>,
    /// The last source port taken.
    next_port: u16,
}

impl State {
    /// How many of this client's streams should get an event of kind `kind`.
    fn expected(&self, kind: u8) -> usize {
        match kind {
            b'b' => self.total,
            b'p' => self.room,
            _ => 1,
        }
    }

    /// Records one delivery of `tag` (kind `kind`) to a stream of `node`, `lat` µs after it
    /// was sent.
    fn deliver(&mut self, tag: &str, kind: u8, node: usize, lat: u64, at: u64, dup: bool) {
        let want = self.expected(kind);
        let tally = self.tallies.entry(tag.to_owned()).or_default();
        if dup {
            tally.dups += 1;
            return;
        }
        tally.lat.push(lat);
        *tally.by_node.entry(node).or_default() += 1;
        tally.last_us = tally.last_us.max(at);
        if kind == b's' {
            say(&format!("got {tag} {lat}"));
        } else if tally.lat.len() == want {
            say(&format!("done {tag} {}", tally.last_us));
        }
    }
}

/// Writes one line to the parent; a parent gone ends this process.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
        std::process::exit(0);
    }
}

/// Runs the `client` subcommand with its flags.
pub(crate) fn main(mut args: impl Iterator<Item = String>) -> Result<(), Error> {
    let (mut targets, mut in_flight) = (Vec::new(), 64);
    let mut source = std::net::IpAddr::from([127, 0, 0, 1]);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--targets" => targets = Target::decode(&value)?,
            "--in-flight" => in_flight = value.parse()?,
            "--source" => source = value.parse()?,
            _ => return Err(format!("client: unknown flag {flag}").into()),
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, run(targets, in_flight, source))
}

/// Opens every stream of `targets`, then answers the parent's commands.
async fn run(
    targets: Vec<Target>,
    in_flight: usize,
    source: std::net::IpAddr,
) -> Result<(), Error> {
    let state = Rc::new(RefCell::new(State {
        total: targets.iter().map(|t| t.streams).sum(),
        room: targets.iter().map(|t| t.room).sum(),
        next_port: FIRST_PORT - 1,
        ..State::default()
    }));
    let connecting = Arc::new(Semaphore::new(in_flight.max(1)));
    let mut index = 0;
    for t in &targets {
        for k in 0..t.streams {
            let path = if k < t.room {
                "/events?topic=room"
            } else {
                "/events"
            };
            let (state, connecting, t) = (state.clone(), connecting.clone(), t.clone());
            tokio::task::spawn_local(async move {
                let Ok(permit) = connecting.acquire_owned().await else {
                    return;
                };
                if let Err(e) = stream(&state, &t, source, path, permit).await {
                    say(&format!(
                        "error stream {index} of this client, on node {} ({}): {e}",
                        t.node, t.addr
                    ));
                }
            });
            index += 1;
        }
    }
    if index == 0 {
        say("ready 0");
    }
    commands(&state).await
}

/// Answers the parent's commands until `quit` or the end of its input.
async fn commands(state: &Rc<RefCell<State>>) -> Result<(), Error> {
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut seed = (u64::from(std::process::id()) ^ now_us()) | 1;
    while let Some(line) = lines.next_line().await? {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("ids"), Some(k)) => {
                let k: usize = k.parse()?;
                let st = state.borrow();
                let mut picked = std::collections::HashSet::new();
                while picked.len() < k.min(st.ids.len()) {
                    // xorshift64: any spread will do.
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    picked.insert((seed % st.ids.len() as u64) as usize);
                }
                for i in picked {
                    let (node, id) = &st.ids[i];
                    say(&format!("id {node} {id}"));
                }
                say("ids end");
            }
            (Some("report"), Some(tag)) => {
                let tally = state.borrow_mut().tallies.remove(tag).unwrap_or_default();
                let list: Vec<String> = tally.lat.iter().map(u64::to_string).collect();
                let list = if list.is_empty() {
                    "-".to_owned()
                } else {
                    list.join(",")
                };
                let by_node: Vec<String> = tally
                    .by_node
                    .iter()
                    .map(|(node, n)| format!("{node}:{n}"))
                    .collect();
                let by_node = if by_node.is_empty() {
                    "-".to_owned()
                } else {
                    by_node.join(";")
                };
                say(&format!(
                    "lat {tag} {} {} {by_node} {list}",
                    tally.lat.len(),
                    tally.dups
                ));
            }
            (Some("quit"), _) => break,
            _ => say(&format!("error unknown command {line:?}")),
        }
    }
    std::process::exit(0)
}

/// A socket bound to this client's own loopback address and the next free port of its own.
///
/// Letting the kernel pick the source port (at `connect`, or at `bind` to port 0) costs a
/// search over every port in use, so each of 100 000 connects is slower than the one before
/// (most of the clients' CPU, and minutes to connect); a port named at `bind` is one lookup.
fn open(state: &Rc<RefCell<State>>, source: std::net::IpAddr) -> Result<TcpSocket, Error> {
    let mut last = None;
    for _ in 0..1000 {
        let port = {
            let mut st = state.borrow_mut();
            st.next_port = st.next_port.checked_add(1).ok_or("out of source ports")?;
            st.next_port
        };
        let socket = TcpSocket::new_v4()?;
        // A port of the previous setup's streams may still be in TIME_WAIT.
        socket.set_reuseaddr(true)?;
        match socket.bind(SocketAddr::new(source, port)) {
            Ok(()) => return Ok(socket),
            Err(e) => last = Some(e),
        }
    }
    Err(format!("no source port free on {source}: {last:?}").into())
}

/// One stream: connects, waits for its `connect` event (then gives `permit` back and counts
/// itself ready), and records each measured delivery until the stream ends (an error).
async fn stream(
    state: &Rc<RefCell<State>>,
    target: &Target,
    source: std::net::IpAddr,
    path: &str,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> Result<(), Error> {
    let mut permit = Some(permit);
    let mut sock = open(state, source)?.connect(target.addr).await?;
    let head = format!("GET {path} HTTP/1.1\r\nHost: scale\r\nAccept: text/event-stream\r\n\r\n");
    sock.write_all(head.as_bytes()).await?;
    let mut buf = vec![0u8; 4096];
    let mut raw: Vec<u8> = Vec::new();
    let mut body: Vec<u8> = Vec::new();
    let mut dechunk: Option<Dechunk> = None;
    // The measured events this stream has had, to count a second delivery as a duplicate.
    let mut seen: Vec<String> = Vec::new();
    loop {
        let n = sock.read(&mut buf).await?;
        if n == 0 {
            return Err("the server closed the stream".into());
        }
        let at = now_us();
        let Some(chunks) = dechunk.as_mut() else {
            raw.extend_from_slice(&buf[..n]);
            let Some(end) = memchr::memmem::find(&raw, b"\r\n\r\n") else {
                if raw.len() > 16 * 1024 {
                    return Err("a response head over 16 KiB".into());
                }
                continue;
            };
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let status = head.lines().next().unwrap_or_default().to_owned();
            if !status.starts_with("http/1.1 200") {
                return Err(format!("refused: {status}").into());
            }
            let mut d = Dechunk::new(head.contains("transfer-encoding: chunked"));
            d.feed(&raw[end + 4..], &mut body)?;
            dechunk = Some(d);
            raw = Vec::new();
            lines(state, target, &mut body, &mut seen, &mut permit, at)?;
            continue;
        };
        chunks.feed(&buf[..n], &mut body)?;
        lines(state, target, &mut body, &mut seen, &mut permit, at)?;
    }
}

/// Takes the complete lines of `body`: the `connect` event's session id (the stream is
/// ready), and measured deliveries (received at `at`).
fn lines(
    state: &Rc<RefCell<State>>,
    target: &Target,
    body: &mut Vec<u8>,
    seen: &mut Vec<String>,
    permit: &mut Option<tokio::sync::OwnedSemaphorePermit>,
    at: u64,
) -> Result<(), Error> {
    let Some(last) = memchr::memrchr(b'\n', body) else {
        return Ok(());
    };
    for line in body[..last].split(|&b| b == b'\n') {
        if let Some(rest) = line.strip_prefix(b"data: ~") {
            let text = std::str::from_utf8(rest)?;
            let (tag, sent) = text
                .split_once(' ')
                .ok_or_else(|| format!("bad measured event {text:?}"))?;
            let sent: u64 = sent.trim().parse()?;
            let kind = tag.as_bytes().first().copied().unwrap_or(b'?');
            let dup = seen.iter().any(|s| s == tag);
            if !dup {
                seen.push(tag.to_owned());
            }
            state
                .borrow_mut()
                .deliver(tag, kind, target.node, at.saturating_sub(sent), at, dup);
        } else if permit.is_some() && line.starts_with(b"data: {") {
            let text = String::from_utf8_lossy(line);
            let value: serde_json::Value = serde_json::from_str(&text["data: ".len()..])?;
            let id = value["id"]
                .as_str()
                .ok_or("a connect event without an id")?
                .to_owned();
            permit.take();
            let mut st = state.borrow_mut();
            st.ids.push((target.node, id));
            st.ready += 1;
            if st.ready == st.total {
                say(&format!("ready {}", st.total));
            } else if st.ready % 2000 == 0 {
                say(&format!("progress {}", st.ready));
            }
        }
    }
    body.drain(..=last);
    Ok(())
}
