//! What shards buy on a Redis Cluster: sends by id per second through one engine, with the
//! deployment's keys on one shard and on six, in the same run (alternating, each round on a
//! fresh prefix), and Redis's CPU per send, in all and on each master.
//!
//! ```text
//! cargo run --release -p sse-benches --bin shards -- --tabs 600 --sends 30000 --in-flight 128 --rounds 2
//! ```
//!
//! It starts its own Redis Cluster of three masters (no replicas) on free loopback ports.
//! Each round makes one node (a hub with its engine) holding `--tabs` detached resumable
//! sessions and stops it (what is sent to them waits in its delivery streams), then sends
//! `--sends` events to random ones from `--in-flight` tasks at once through another engine
//! (`RedisEngine::send_to`: the owner read, then one script on the session's home shard). On
//! one shard every send runs on one master; on six, the sessions' home shards spread over
//! the three. Redis's CPU is `used_cpu_sys` + `used_cpu_user` of each master's `INFO cpu`,
//! before and after.

use std::time::{Duration, Instant};

use sse_proto::{Decision, Event, HttpVersion, Hub, RelayPort, Request, ResumeConfig, Store};
use sse_redis::{RedisConfig, RedisEngine};
use sse_testkit::RedisCluster;

struct Args {
    tabs: usize,
    sends: usize,
    in_flight: usize,
    rounds: usize,
}

fn args() -> Args {
    let mut out = Args {
        tabs: 600,
        sends: 30_000,
        in_flight: 128,
        rounds: 2,
    };
    sse_benches::flags::numbers(
        "shards [--tabs N] [--sends N] [--in-flight N] [--rounds N]",
        &mut [
            ("--tabs", &mut out.tabs),
            ("--sends", &mut out.sends),
            ("--in-flight", &mut out.in_flight),
            ("--rounds", &mut out.rounds),
        ],
    );
    out
}

/// Each master's CPU time so far, in seconds.
fn cpu(cluster: &RedisCluster) -> Result<Vec<f64>, String> {
    let mut out = Vec::new();
    for node in &cluster.nodes {
        let info = node.cli(&["INFO", "cpu"]).map_err(|e| e.to_string())?;
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        out.push(field("used_cpu_sys:") + field("used_cpu_user:"));
    }
    Ok(out)
}

/// What one round measured.
struct Round {
    shards: usize,
    acked: usize,
    elapsed: Duration,
    /// Each master's CPU over the sends, in seconds.
    cpu: Vec<f64>,
}

async fn round(
    cluster: &RedisCluster,
    args: &Args,
    n: usize,
    shards: usize,
) -> Result<Round, String> {
    // An engine of this round's deployment (its own prefix), as node `name`.
    let connect = async |name: &str| {
        let mut config = RedisConfig::new(cluster.url());
        config.node = name.to_owned();
        config.prefix = format!("r{n}s{shards}:");
        config.shards = shards;
        RedisEngine::connect(config)
            .await
            .map_err(|e| e.to_string())
    };
    let engine = connect("bench").await?;
    let hub = engine
        .prepare(
            Hub::builder()
                .keep_alive(None)
                .resume(ResumeConfig::new(Duration::from_secs(600))),
        )
        .build(Instant::now);
    let task = tokio::spawn(engine.run(RelayPort::claim(&hub).ok_or("relay mode")?));
    let mut ids = Vec::with_capacity(args.tabs);
    for _ in 0..args.tabs {
        let mut req = Request::new(b"GET", b"/events", HttpVersion::Http11);
        req.header(b"accept", b"text/event-stream");
        let Decision::Accept(a) = hub.handshake(&req, Some(&engine)).await else {
            return Err("not accepted".into());
        };
        ids.push(a.session.id().to_string());
        // Dropped: the session is detached, and what is sent to it is logged.
    }
    // Let presence record them, then stop the node: what is sent to its sessions waits in
    // its delivery streams, read by nobody, so that the sender's side is the sends alone.
    tokio::time::sleep(Duration::from_millis(500)).await;
    task.abort();
    let engine = connect("sender").await?;
    let before = cpu(cluster)?;
    let start = Instant::now();
    let per_task = args.sends / args.in_flight.max(1);
    let mut tasks = Vec::new();
    for t in 0..args.in_flight {
        let engine = engine.clone();
        let ids = ids.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = 0;
            for i in 0..per_task {
                let id = &ids[(t * 7919 + i * 104_729) % ids.len()];
                let frame = Event::new().data("x".repeat(64)).encode();
                if engine.send_to(id, frame).await.is_ok() {
                    acked += 1;
                }
            }
            acked
        }));
    }
    let mut acked = 0;
    for task in tasks {
        acked += task.await.map_err(|e| e.to_string())?;
    }
    let elapsed = start.elapsed();
    let after = cpu(cluster)?;
    drop(hub);
    Ok(Round {
        shards,
        acked,
        elapsed,
        cpu: after.iter().zip(&before).map(|(a, b)| a - b).collect(),
    })
}

async fn run(args: Args) -> Result<(), String> {
    let cluster = RedisCluster::start(3, 0).map_err(|e| e.to_string())?;
    println!(
        "shards: {} detached sessions, {} sends by id from {} tasks at once, on a Redis Cluster of 3 masters; {} cores\n",
        args.tabs,
        args.sends,
        args.in_flight,
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    println!(
        "| round | shards | sends acknowledged | sends/s | Redis CPU per send | each master's CPU share |"
    );
    println!("|---|---|---|---|---|---|");
    for n in 0..args.rounds {
        for shards in [1, 6] {
            let r = round(&cluster, &args, n, shards).await?;
            let secs = r.elapsed.as_secs_f64();
            let total: f64 = r.cpu.iter().sum();
            let shares: Vec<String> = r
                .cpu
                .iter()
                .map(|c| format!("{:.0} %", 100.0 * c / secs))
                .collect();
            println!(
                "| {} | {} | {} | {:.0} | {:.1} µs | {} |",
                n + 1,
                r.shards,
                r.acked,
                r.acked as f64 / secs,
                1e6 * total / r.acked.max(1) as f64,
                shares.join(" / ")
            );
        }
    }
    Ok(())
}

fn main() {
    let args = args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build();
    let result = match rt {
        Ok(rt) => rt.block_on(run(args)),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = result {
        eprintln!("shards: {e}");
        std::process::exit(1);
    }
}
