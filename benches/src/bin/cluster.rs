//! Several nodes on one Redis, measured in one process: hubs with `sse-redis` engines, each
//! holding T sessions whose outlets a sweeper drains, against the same on one node, in the
//! same run.
//!
//! ```text
//! cargo run --release -p sse-benches --bin cluster -- --tabs 1000 --broadcasts 20 --sends 200
//! ```
//!
//! It starts its own `redis-server` on a free loopback port (the testkit's). It prints, for
//! one node and for two nodes (the sender on the other node from half the tabs):
//!
//! - broadcast delivery latency p50/p99 (from the broadcast call to the outlet holding the
//!   event) and deliveries per second over back-to-back broadcasts;
//! - send-by-id latency p50/p99 (one tab at a time, sent from the node that does not serve it
//!   when there are two);
//! - Redis memory per idle resumable session (`used_memory` before and after N sessions that
//!   attached then detached);
//! - topics: two nodes whose tabs are all in one topic and a third node whose tabs are not,
//!   the publishes sent from the third: delivery latency p50/p99 and deliveries per second,
//!   and how many of the publishes reached the third node's delivery stream (none should).

use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use sse_proto::{
    Batch, Decision, Event, HttpVersion, Hub, Outlet, RelayPort, Request, ResumeConfig, Store,
};
use sse_redis::{RedisConfig, RedisEngine};
use sse_testkit::RedisServer;

struct Args {
    tabs: usize,
    broadcasts: usize,
    sends: usize,
}

fn args() -> Args {
    let mut out = Args {
        tabs: 1000,
        broadcasts: 20,
        sends: 200,
    };
    sse_benches::flags::numbers(
        "cluster [--tabs N] [--broadcasts N] [--sends N]",
        &mut [
            ("--tabs", &mut out.tabs),
            ("--broadcasts", &mut out.broadcasts),
            ("--sends", &mut out.sends),
        ],
    );
    out
}

struct Node {
    /// Kept alive for as long as the node runs: the engine's task ends with it.
    _hub: Hub,
    engine: RedisEngine,
    outlets: Vec<Outlet>,
    ids: Vec<String>,
}

async fn node(url: &str, name: &str, tabs: usize) -> Result<Node, String> {
    node_with(url, name, tabs, "/events").await
}

/// A node whose `tabs` tabs open `target`.
async fn node_with(url: &str, name: &str, tabs: usize, target: &str) -> Result<Node, String> {
    let mut config = RedisConfig::new(url);
    config.node = name.to_owned();
    let engine = RedisEngine::connect(config)
        .await
        .map_err(|e| e.to_string())?;
    let resume = ResumeConfig::new(Duration::from_secs(600));
    // What an adapter's server does with a store, by hand: the hub prepared for it, its
    // task beside the hub, and its answers to every handshake.
    let hub = engine
        .prepare(
            // No write window: these hubs are drained without their timers (fanout measures it).
            Hub::builder()
                .write_window(sse_proto::WriteWindow::Off)
                .keep_alive(None)
                .resume(resume)
                .topic_rule(|_, _| true),
        )
        .build(Instant::now);
    tokio::spawn(engine.run(RelayPort::claim(&hub).ok_or("relay mode")?));
    let mut outlets = Vec::with_capacity(tabs);
    let mut ids = Vec::with_capacity(tabs);
    for _ in 0..tabs {
        let mut req = Request::new(b"GET", target.as_bytes(), HttpVersion::Http11);
        req.header(b"accept", b"text/event-stream");
        let Decision::Accept(a) = hub.handshake(&req, Some(&engine)).await else {
            return Err("not accepted".into());
        };
        ids.push(a.session.id().to_string());
        outlets.push(a.outlet);
    }
    Ok(Node {
        _hub: hub,
        engine,
        outlets,
        ids,
    })
}

/// Drains one outlet; returns how many logged events it had (each is two frames: its `id:`
/// line and the event).
fn drain(outlet: &mut Outlet) -> usize {
    let mut batch = Batch::new();
    match outlet.poll_drain(
        &mut Context::from_waker(Waker::noop()),
        Instant::now(),
        &mut batch,
    ) {
        std::task::Poll::Ready(Some(frames)) => frames / 2,
        _ => 0,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Sweeps every outlet of `nodes` until each has taken `want` more events, recording when
/// each tab's events arrived (relative to `start`).
async fn sweep(nodes: &mut [Node], start: Instant, want: usize) -> Vec<Duration> {
    let total: usize = nodes.iter().map(|n| n.outlets.len()).sum();
    let mut got = vec![0usize; total];
    let mut when = Vec::with_capacity(total * want);
    let deadline = start + Duration::from_secs(60);
    loop {
        let mut i = 0;
        for node in nodes.iter_mut() {
            for outlet in &mut node.outlets {
                let n = drain(outlet);
                if n > 0 {
                    for _ in 0..n.min(want - got[i].min(want)) {
                        when.push(start.elapsed());
                    }
                    got[i] += n;
                }
                i += 1;
            }
        }
        if got.iter().all(|&g| g >= want) || Instant::now() > deadline {
            return when;
        }
        tokio::task::yield_now().await;
    }
}

async fn broadcasts(nodes: &mut [Node], count: usize) -> (Duration, Duration, f64) {
    let event = Event::named(sse_proto::event_name!("tick")).data("x".repeat(64));
    for node in nodes.iter_mut() {
        for outlet in &mut node.outlets {
            drain(outlet);
        }
    }
    let frame = event.encode();
    // Latency: one broadcast at a time, from the last node.
    let mut lat = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let sender = nodes.len() - 1;
        let _ = nodes[sender].engine.broadcast(frame.clone()).await;
        lat.extend(sweep(nodes, start, 1).await);
    }
    lat.sort();
    // Throughput: `count` back to back.
    let start = Instant::now();
    let sender = nodes.len() - 1;
    for _ in 0..count {
        let _ = nodes[sender].engine.broadcast(frame.clone()).await;
    }
    let done = sweep(nodes, start, count).await;
    let took = done.iter().max().copied().unwrap_or_default();
    let tabs: usize = nodes.iter().map(|n| n.outlets.len()).sum();
    let rate = (tabs * count) as f64 / took.as_secs_f64().max(1e-9);
    (percentile(&lat, 0.5), percentile(&lat, 0.99), rate)
}

async fn sends(nodes: &mut [Node], count: usize) -> (Duration, Duration) {
    let frame = Event::new().data("x".repeat(64)).encode();
    let sender = nodes.len() - 1;
    let mut lat = Vec::with_capacity(count);
    for k in 0..count {
        // A tab on the first node: on the other node than the sender when there are two.
        let i = k % nodes[0].outlets.len();
        let id = nodes[0].ids[i].clone();
        let start = Instant::now();
        let engine = nodes[sender].engine.clone();
        let _ = engine.send_to(&id, frame.clone()).await;
        let deadline = start + Duration::from_secs(5);
        while drain(&mut nodes[0].outlets[i]) == 0 && Instant::now() < deadline {
            tokio::task::yield_now().await;
        }
        lat.push(start.elapsed());
    }
    lat.sort();
    (percentile(&lat, 0.5), percentile(&lat, 0.99))
}

/// Publishes to `room` from `sender` (a node without members): latency of one at a time,
/// then `count` back to back, delivered to the members' nodes.
async fn publishes(
    members: &mut [Node],
    sender: &RedisEngine,
    count: usize,
) -> (Duration, Duration, f64) {
    let frame = Event::named(sse_proto::event_name!("said"))
        .data("x".repeat(64))
        .encode();
    let mut lat = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let _ = sender.publish("room", frame.clone()).await;
        lat.extend(sweep(members, start, 1).await);
    }
    lat.sort();
    let start = Instant::now();
    for _ in 0..count {
        let _ = sender.publish("room", frame.clone()).await;
    }
    let done = sweep(members, start, count).await;
    let took = done.iter().max().copied().unwrap_or_default();
    let tabs: usize = members.iter().map(|n| n.outlets.len()).sum();
    let rate = (tabs * count) as f64 / took.as_secs_f64().max(1e-9);
    (percentile(&lat, 0.5), percentile(&lat, 0.99), rate)
}

/// The publishes (`t` = `p`) in `node`'s delivery stream.
async fn publishes_to(url: &str, node: &str) -> Result<usize, String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())?;
    let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(format!("{{sse:}}node:{node}"))
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    Ok(entries
        .iter()
        .filter(|(_, f)| f.iter().any(|(k, v)| k == "t" && v == "p"))
        .count())
}

async fn used_memory(url: &str) -> Result<u64, String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())?;
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| "no used_memory".into())
}

async fn run(args: Args) -> Result<(), String> {
    println!(
        "cluster: {} tabs per node, {} broadcasts of 64 B, {} sends by id",
        args.tabs, args.broadcasts, args.sends
    );
    for nodes_n in [1usize, 2] {
        let redis = RedisServer::start().map_err(|e| e.to_string())?;
        let mut nodes = Vec::new();
        for n in 0..nodes_n {
            nodes.push(node(&redis.url(), &format!("n{n}"), args.tabs).await?);
        }
        // Let presence settle.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (b50, b99, rate) = broadcasts(&mut nodes, args.broadcasts).await;
        let (s50, s99) = sends(&mut nodes, args.sends).await;
        println!(
            "{nodes_n} node(s), {} tabs: broadcast p50={:.2}ms p99={:.2}ms deliveries/s={:.0}; send-by-id p50={:.2}ms p99={:.2}ms",
            nodes_n * args.tabs,
            b50.as_secs_f64() * 1e3,
            b99.as_secs_f64() * 1e3,
            rate,
            s50.as_secs_f64() * 1e3,
            s99.as_secs_f64() * 1e3,
        );
        drop(nodes);
    }
    // Topics: members on n0 and n1, none on n2, which publishes.
    {
        let redis = RedisServer::start().map_err(|e| e.to_string())?;
        let mut members = vec![
            node_with(&redis.url(), "n0", args.tabs, "/events?topic=room").await?,
            node_with(&redis.url(), "n1", args.tabs, "/events?topic=room").await?,
        ];
        let outside = node_with(&redis.url(), "n2", args.tabs, "/events?topic=hall").await?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while outside
            .engine
            .members("room")
            .await
            .map_or(0, |m| m.sessions.len())
            < 2 * args.tabs
        {
            if Instant::now() > deadline {
                return Err("the joins were not numbered within 30 s".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (p50, p99, rate) = publishes(&mut members, &outside.engine, args.broadcasts).await;
        let idle = publishes_to(&redis.url(), "n2").await?;
        let reached = publishes_to(&redis.url(), "n0").await?;
        println!(
            "topic of {} members on 2 nodes, published from a third: p50={:.2}ms p99={:.2}ms deliveries/s={:.0}; publishes in the delivery stream of the node without members: {idle} (of a member node: {reached})",
            2 * args.tabs,
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
            rate,
        );
    }
    // Redis memory per idle resumable session.
    let redis = RedisServer::start().map_err(|e| e.to_string())?;
    let before = used_memory(&redis.url()).await?;
    let mut n = node(&redis.url(), "m", args.tabs).await?;
    n.outlets.clear(); // every session detached, resumable
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = used_memory(&redis.url()).await?;
    println!(
        "redis memory per idle resumable session: {:.0} B ({} sessions)",
        (after.saturating_sub(before)) as f64 / args.tabs as f64,
        args.tabs
    );
    Ok(())
}

fn main() {
    let args = args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build();
    match rt {
        Ok(rt) => {
            if let Err(e) = rt.block_on(run(args)) {
                eprintln!("cluster: {e}");
                std::process::exit(1);
            }
        }
        Err(e) => eprintln!("cluster: {e}"),
    }
}
