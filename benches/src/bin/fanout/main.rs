//! End-to-end fan-out on loopback: N idle connections, then M broadcasts through a server's
//! `POST /broadcast`, measured from a separate load-client process (this one), for several
//! servers in one run, each against the floor measured in the same run.
//!
//! ```text
//! cargo build --release -p sse-conformance -p sse-benches --bins
//! target/release/fanout --conns 1000,10000 --size 64,4096 --runs 3 \
//!     --server target/release/demo-tokio \
//!     --server "target/release/demo-tokio --coalesce-ms 5" \
//!     --server target/release/demo-hyper --server axum \
//!     --server "h2:target/release/demo-hyper --tls"
//! ```
//!
//! Servers (`--server`, repeated): `floor`, `axum`, or a demo binary with flags of its own in
//! the same argument (`--server-args` gives flags to every demo); `topic:` before a demo's
//! path makes every stream join one topic (`/events?topic=bench`) and sends each event as a
//! publish to it (`POST /topics/bench/events`) instead of a broadcast.
//!
//! `h2:` before a demo's path (also as `topic:h2:`) serves it over TLS and measures it over
//! HTTP/2 ([`h2`]): the demo gets `--cert`/`--key` for a certificate made for the run (which
//! imply its `--tls`; giving `--tls` too changes nothing), which the client trusts, offering
//! only `h2` through ALPN. The N streams are multiplexed on C connections as a browser's tabs
//! share one (`--h2-conns C`, default N / 100 rounded up: 100 streams per connection, half
//! of the 200 that hyper's HTTP/2 server takes by default, which the demo keeps); a run that
//! would put more on a connection than the server's SETTINGS allow fails. The broadcasts go
//! as HTTP/2 `POST`s on one more connection, opened once the streams are idle and kept (an
//! HTTP/1.1 server gets a new connection per broadcast). The server's CPU then includes TLS
//! and HTTP/2 framing, and its RSS per idle stream the TLS and HTTP/2 state of a connection
//! spread over its streams. The floor
//! ([`floor`]: std only, one thread, one `write` of one shared buffer per stream) runs first
//! in every configuration unless `--no-floor`; `axum` is this same binary serving axum's
//! `Sse` over a `tokio::sync::broadcast` channel ([`axum`]). Every server runs in its own
//! process, so its RSS and CPU are its own; the demos run with keep-alive and ticks off.
//!
//! For each number of streams (`--conns`, a list), each event size (`--size`, a list) and
//! each run (`--runs`), every server is measured in turn (so a disturbance on the machine
//! touches all of them); a line per measurement goes to stderr, and at the end a Markdown
//! table with the median of the runs goes to stdout: deliveries per second (N × M over the
//! time from the first broadcast to the last delivery), the server's CPU time per delivery
//! (user + system, from `/proc`, over the same span: what the server spends, whatever the
//! client's speed; and how much of it is user space) and its ratio to the floor's, its write
//! system calls per delivery (below 1 when it coalesces events into one write), delivery
//! latency p50/p99 (from the broadcast's send to the client's read), and the server's RSS per
//! idle stream.
//!
//! `--broadcasts M` defaults to 200 000 / N (200 at 1 000 streams, 20 at 10 000). They go
//! back to back (each `POST` once the previous one is answered) unless `--pace-ms P` sends
//! broadcast k at P × k ms from the first (on tokio's timer, 1 ms resolution): the rate at
//! which a coalescing window (`--coalesce-ms`) gathers events decides what it saves.

mod axum;
mod floor;
mod h2;
mod load;

use load::{Error, Figures, Spec};

struct Args {
    servers: Vec<String>,
    /// Extra flags for every demo server (`--server-args "--resume-ms 60000"`).
    server_args: Vec<String>,
    conns: Vec<usize>,
    /// Connections of an `h2:` server's streams; `None`: one per 100 streams.
    h2_conns: Option<usize>,
    broadcasts: Option<usize>,
    sizes: Vec<usize>,
    runs: usize,
    floor: bool,
    /// Time between broadcasts' starts; zero: back to back.
    pace: std::time::Duration,
}

fn list(value: &str, flag: &str) -> Result<Vec<usize>, String> {
    value
        .split(',')
        .map(|v| v.trim().parse().map_err(|e| format!("{flag}: {e}")))
        .collect()
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut args = std::env::args().skip(1);
    let mut out = Args {
        servers: Vec::new(),
        server_args: Vec::new(),
        conns: vec![1000],
        h2_conns: None,
        broadcasts: None,
        sizes: vec![64],
        runs: 1,
        floor: true,
        pace: std::time::Duration::ZERO,
    };
    while let Some(flag) = args.next() {
        if flag == "--no-floor" {
            out.floor = false;
            continue;
        }
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--serve-axum" | "--serve-floor" => {
                let addr = value()?;
                let addr = addr.parse().map_err(|e| format!("{flag}: {e}"))?;
                if flag == "--serve-axum" {
                    axum::serve(addr);
                } else {
                    floor::serve(addr);
                }
                return Ok(None);
            }
            "--server" => out.servers.push(value()?),
            "--server-args" => {
                out.server_args = value()?.split_whitespace().map(str::to_owned).collect()
            }
            "--conns" => out.conns = list(&value()?, "--conns")?,
            "--h2-conns" => {
                let c: usize = value()?.parse().map_err(|e| format!("--h2-conns: {e}"))?;
                out.h2_conns = Some(c.max(1));
            }
            "--size" => out.sizes = list(&value()?, "--size")?,
            "--broadcasts" => {
                out.broadcasts = Some(value()?.parse().map_err(|e| format!("--broadcasts: {e}"))?)
            }
            "--runs" => out.runs = value()?.parse().map_err(|e| format!("--runs: {e}"))?,
            "--pace-ms" => {
                let ms = value()?.parse().map_err(|e| format!("--pace-ms: {e}"))?;
                out.pace = std::time::Duration::from_millis(ms);
            }
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if out.servers.is_empty() && !out.floor {
        out.servers.push("axum".to_owned());
    }
    out.runs = out.runs.max(1);
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

/// The median of each figure over the runs of one server in one configuration.
fn median(runs: &[Figures]) -> Figures {
    let mid = |f: fn(&Figures) -> f64| {
        let mut v: Vec<f64> = runs.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    Figures {
        deliveries_per_s: mid(|f| f.deliveries_per_s),
        cpu_us: mid(|f| f.cpu_us),
        user_us: mid(|f| f.user_us),
        client_sleeps: mid(|f| f.client_sleeps),
        writes: mid(|f| f.writes),
        p50_ms: mid(|f| f.p50_ms),
        p99_ms: mid(|f| f.p99_ms),
        rss_per_conn: mid(|f| f.rss_per_conn),
    }
}

async fn run(args: Args) -> Result<(), Error> {
    let mut specs = Vec::new();
    if args.floor {
        specs.push(Spec::parse("floor", &[])?);
    }
    for s in &args.servers {
        specs.push(Spec::parse(s, &args.server_args)?);
    }
    if !args.pace.is_zero() {
        println!("Broadcasts paced: one every {:?}.\n", args.pace);
    }
    println!(
        "| N | S | server | deliveries/s | CPU per delivery | of which user | vs floor | writes per delivery | p50 | p99 | RSS per idle stream |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for &conns in &args.conns {
        let broadcasts = args.broadcasts.unwrap_or((200_000 / conns.max(1)).max(1));
        let h2_conns = args
            .h2_conns
            .unwrap_or(conns.div_ceil(100))
            .clamp(1, conns.max(1));
        for &size in &args.sizes {
            let mut all: Vec<Vec<Figures>> = vec![Vec::new(); specs.len()];
            for run in 0..args.runs {
                for (spec, figures) in specs.iter().zip(&mut all) {
                    let f =
                        load::measure(spec, conns, h2_conns, broadcasts, size, args.pace).await?;
                    eprintln!(
                        "run {run}: {}: conns={conns} broadcasts={broadcasts} size={size}B deliveries/s={:.0} server_cpu/delivery={:.2}us (user {:.2}us) writes/delivery={:.2} client_sleeps/1k={:.1} p50={:.2}ms p99={:.2}ms rss/conn={:.0}B",
                        label(spec, h2_conns),
                        f.deliveries_per_s,
                        f.cpu_us,
                        f.user_us,
                        f.writes,
                        f.client_sleeps,
                        f.p50_ms,
                        f.p99_ms,
                        f.rss_per_conn
                    );
                    figures.push(f);
                }
            }
            let medians: Vec<Figures> = all.iter().map(|runs| median(runs)).collect();
            let floor = args.floor.then(|| medians[0].cpu_us);
            for (spec, m) in specs.iter().zip(&medians) {
                let ratio = floor.map_or("-".to_owned(), |f| format!("{:.2}×", m.cpu_us / f));
                println!(
                    "| {} | {} | {} | {:.0} | {:.2} µs | {:.2} µs | {ratio} | {:.2} | {:.1} ms | {:.1} ms | {:.0} B |",
                    sse_benches::process::thousands(conns as u64),
                    human_size(size),
                    label(spec, h2_conns),
                    m.deliveries_per_s,
                    m.cpu_us,
                    m.user_us,
                    m.writes,
                    m.p50_ms,
                    m.p99_ms,
                    m.rss_per_conn
                );
            }
        }
    }
    Ok(())
}

/// A server's name in the report; an `h2:` server's says so, with its connections.
fn label(spec: &Spec, h2_conns: usize) -> String {
    if spec.h2 {
        let s = if h2_conns == 1 { "" } else { "s" };
        format!("{} (h2 over TLS, {h2_conns} connection{s})", spec.label)
    } else {
        spec.label.clone()
    }
}

fn human_size(bytes: usize) -> String {
    if bytes >= 1024 && bytes % 1024 == 0 {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} B")
    }
}
