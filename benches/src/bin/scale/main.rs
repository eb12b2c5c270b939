//! 100 000 SSE streams on one machine across several demo nodes that share Redis: memory per
//! idle stream (server RSS and Redis), broadcast and publish latency to every stream, send by
//! id across nodes, and the nodes' CPU per delivery. First with one `redis-server`, then with
//! a Redis Cluster of three masters.
//!
//! ```text
//! cargo build --release -p sse-conformance --bin demo-tokio -p sse-benches --bin scale
//! target/release/scale --streams 100000 --nodes 6 --clients 6 --broadcasts 5 --sends 200
//! ```
//!
//! (Those are the defaults: `target/release/scale` alone runs the same; `--streams 2000
//! --nodes 2 --clients 2` is a quick run.) Everything runs on this machine, each in its own
//! process:
//!
//! - Redis, started by the bench on free loopback ports: one `redis-server --save ''
//!   --appendonly no`, then (unless `--skip-cluster`) three with `--cluster-enabled yes` made
//!   a cluster by `redis-cli --cluster create … --cluster-replicas 0` ([`redis`]);
//! - `--nodes` demo nodes (`demo-tokio`, next to this binary unless `--demo PATH`), each with
//!   `--redis URL --tick-ms 0 --keep-alive-ms 0 --resume-ms 60000` and any `--node-args`
//!   ([`node`]);
//! - `--clients` load clients: this binary re-executed as `scale client`, one thread each,
//!   talking to the parent in lines on stdin and stdout ([`client`], [`fleet`]). Stream g of
//!   N goes to node g × nodes / N and client g × clients / N, so every node and every client
//!   holds an equal share; one stream in ten joins topic `room` (`/events?topic=room`), spread
//!   the same way. At most `--in-flight` connects (384, over all clients) are under way. Each
//!   client connects from a loopback address of its own (127.0.1.2, 127.0.1.3, …) and names
//!   its source ports: left to the kernel, the search for a free port among 100 000 in use
//!   made each connect slower than the last (minutes, most of it the clients' CPU).
//!
//! Each measured event carries its send time (the wall clock in µs) in its data; each client
//! subtracts it from the time it read the event. What is printed, per Redis setup
//! ([`measure`], [`report`]):
//!
//! 1. each node's RSS (`VmRSS`) before any stream and with its streams open and idle (once
//!    Redis's memory has stopped growing: the nodes record each new session in Redis after it
//!    opened), and the difference per stream;
//! 2. Redis `used_memory` (summed over the cluster's masters) before and after the streams,
//!    per session;
//! 3. `--broadcasts` `POST /broadcast` on node 0, each once the previous one has reached every
//!    stream: latency p50/p99/max over every delivery, and the time until the last stream had
//!    each;
//! 4. as many `POST /topics/room/events` on node 0, measured over the members' deliveries;
//! 5. `--sends` `POST /sessions/{id}/events`, one at a time, each to a random tab through a
//!    node that does not serve it, from before the POST to its client reading it;
//! 6. each node's CPU time (user + system, `/proc/<pid>/stat`) from the first broadcast to
//!    the last delivery, per delivery; Redis's and the clients' beside it, and everyone's CPU
//!    over a 10 s idle window with every stream open (the nodes' heartbeats); and how many
//!    times each node logged `Redis unreachable` (a command unanswered within
//!    `--redis-timeout-ms`: it then serves its own connections only).
//!
//! A POST that a node refuses (a 503 when it finds Redis away) is listed and the next event
//! sent; the rows are over the events that reached every stream. Waiting for deliveries gives
//! up after 120 s, says how many streams got the event on each node, and ends that series. A
//! node that does not start or exits, a stream refused or closed, ends the run with the
//! reason; any failure makes the exit code 1, and keeps the nodes' stderr (its directory is
//! printed). Everything the bench started is stopped when it ends, on an error too.

mod client;
mod fleet;
mod measure;
mod node;
mod redis;
mod report;
mod wire;

use std::path::PathBuf;

/// Any error, with its message.
pub(crate) type Error = Box<dyn std::error::Error + Send + Sync>;

/// The command line.
#[derive(Debug, Clone)]
pub(crate) struct Args {
    /// Streams in all (`--streams`).
    pub(crate) streams: usize,
    /// Demo nodes (`--nodes`).
    pub(crate) nodes: usize,
    /// Load-client processes (`--clients`).
    pub(crate) clients: usize,
    /// Broadcasts, and publishes (`--broadcasts`).
    pub(crate) broadcasts: usize,
    /// Sends by id (`--sends`).
    pub(crate) sends: usize,
    /// Only the single Redis (`--skip-cluster`).
    pub(crate) skip_cluster: bool,
    /// Connects under way at once, over all clients (`--in-flight`).
    pub(crate) in_flight: usize,
    /// The demo binary (`--demo`).
    pub(crate) demo: PathBuf,
    /// More flags for every node (`--node-args "--heartbeat-ms 5000"`).
    pub(crate) node_args: Vec<String>,
}

/// How to use it, for a bad flag.
const USAGE: &str =
    "usage: scale [--streams N] [--nodes N] [--clients N] [--broadcasts M] [--sends K]
             [--skip-cluster] [--in-flight N] [--demo PATH] [--node-args \"FLAGS\"]";

/// Reads the flags, and checks that the run fits the open-file limit and the demo is built.
fn parse_args() -> Result<Args, Error> {
    let demo = std::env::current_exe()?
        .parent()
        .ok_or("no directory for this binary")?
        .join("demo-tokio");
    let mut out = Args {
        streams: 100_000,
        nodes: 6,
        clients: 6,
        broadcasts: 5,
        sends: 200,
        skip_cluster: false,
        in_flight: 384,
        demo,
        node_args: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--skip-cluster" {
            out.skip_cluster = true;
            continue;
        }
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let number = || -> Result<usize, Error> {
            Ok(value
                .parse()
                .map_err(|e| format!("{flag}: {value:?}: {e}"))?)
        };
        match flag.as_str() {
            "--streams" => out.streams = number()?,
            "--nodes" => out.nodes = number()?.max(1),
            "--clients" => out.clients = number()?.max(1),
            "--broadcasts" => out.broadcasts = number()?.max(1),
            "--sends" => out.sends = number()?,
            "--in-flight" => out.in_flight = number()?.max(1),
            "--demo" => out.demo = PathBuf::from(&value),
            "--node-args" => out.node_args = value.split_whitespace().map(str::to_owned).collect(),
            _ => return Err(format!("unknown flag {flag}\n{USAGE}").into()),
        }
    }
    if out.streams < out.nodes.max(out.clients) * 10 {
        return Err("--streams must give each node and each client ten streams at least".into());
    }
    // Each node and each client holds its streams' sockets, plus a few of its own.
    let most = out.streams.div_ceil(out.nodes.min(out.clients));
    if let Some(limit) = node::open_file_limit() {
        if most + 200 > limit {
            return Err(format!(
                "{most} streams on one node or client would pass the open-file limit ({limit}, \
                 `ulimit -n`): use more --nodes and --clients"
            )
            .into());
        }
    }
    if !out.demo.exists() {
        return Err(format!(
            "{} not found: cargo build --release -p sse-conformance --bin demo-tokio (or --demo PATH)",
            out.demo.display()
        )
        .into());
    }
    Ok(out)
}

/// `scale client …` (a load client, for the parent), or the bench.
fn main() {
    let mut argv = std::env::args().skip(1);
    if argv.next().as_deref() == Some("client") {
        if let Err(e) = client::main(argv) {
            println!("error {e}");
            std::process::exit(1);
        }
        return;
    }
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("scale: {e}");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let result = match rt {
        Ok(rt) => rt.block_on(run(&args)),
        Err(e) => Err(e.into()),
    };
    if let Err(e) = result {
        eprintln!("scale: {e}");
        std::process::exit(1);
    }
}

/// Each Redis setup in turn, its report printed as soon as it is measured.
async fn run(args: &Args) -> Result<(), Error> {
    let dir = std::env::temp_dir().join(format!("sse-scale-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut scratch = Scratch {
        dir: dir.clone(),
        keep: true,
    };
    println!(
        "scale: {} streams on {} demo nodes ({}), {} load clients, {} broadcasts, {} sends by id; {} cores\n",
        args.streams,
        args.nodes,
        args.demo.display(),
        args.clients,
        args.broadcasts,
        args.sends,
        std::thread::available_parallelism().map_or(0, usize::from),
    );
    let mut kinds = vec![redis::Kind::Single];
    if !args.skip_cluster {
        kinds.push(redis::Kind::Cluster);
    }
    let mut failures = Vec::new();
    for kind in kinds {
        eprintln!("scale: {}", kind.label());
        let figures = measure::setup(kind, args, &dir).await.map_err(|e| {
            format!(
                "{}: {e}\n(the nodes' stderr is kept in {})",
                kind.label(),
                dir.display()
            )
        })?;
        report::print(args, &figures);
        for failure in figures.failures() {
            failures.push(format!("{}: {failure}", kind.label()));
        }
    }
    if !failures.is_empty() {
        return Err(format!(
            "{}\n(the nodes' stderr is kept in {})",
            failures.join("\n"),
            dir.display()
        )
        .into());
    }
    scratch.keep = false;
    Ok(())
}

/// The bench's scratch directory (the nodes' stderr, the cluster's files): removed when
/// dropped, unless the run failed (`keep`), to read the nodes' logs.
struct Scratch {
    dir: PathBuf,
    keep: bool,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
