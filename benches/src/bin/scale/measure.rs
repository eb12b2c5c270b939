//! One Redis setup measured: Redis and the nodes started, every stream opened, then memory,
//! broadcasts, publishes and sends by id, in that order.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::client::Target;
use crate::fleet::Fleet;
use crate::node::{Node, cpu, rss};
use crate::redis::{Kind, Redis};
use crate::wire::{now_us, post};
use crate::{Args, Error};

/// Longest wait for one measurement (every stream to have one event, or one send to arrive).
const MEASUREMENT_LIMIT: Duration = Duration::from_secs(120);

/// The idle window over which everyone's CPU is read with every stream open.
pub(crate) const IDLE_WINDOW: Duration = Duration::from_secs(10);

/// One node's figures.
pub(crate) struct NodeFigures {
    /// Its streams, and how many of them are in `room`.
    pub(crate) streams: usize,
    pub(crate) room: usize,
    /// RSS before any stream and with its streams open and idle, bytes.
    pub(crate) rss_before: u64,
    pub(crate) rss_open: u64,
    /// CPU time over the broadcasts, and over the idle window.
    pub(crate) cpu_broadcasts: Duration,
    pub(crate) cpu_idle: Duration,
    /// How many times it found Redis away (its log's `Redis unreachable` lines).
    pub(crate) times_away: usize,
}

/// The deliveries of a series of events.
#[derive(Default)]
pub(crate) struct Series {
    /// Events sent, and how many of them reached every stream they were for.
    pub(crate) sent: usize,
    pub(crate) events: usize,
    /// The events that failed (their POST refused, their deliveries late), with why.
    pub(crate) failures: Vec<String>,
    /// Every delivery's latency, µs, sorted.
    pub(crate) lat: Vec<u64>,
    /// Deliveries to a stream that had the event already.
    pub(crate) dups: usize,
    /// Per event, from its send to its last delivery, µs.
    pub(crate) until_last: Vec<u64>,
    /// What each `POST` answered: the sessions it was for, as Redis counts them.
    pub(crate) answered: Vec<usize>,
}

impl Series {
    /// Records that event `tag` failed.
    fn fail(&mut self, tag: &str, why: String) {
        eprintln!("scale: {tag}: {why}");
        self.failures.push(format!("{tag}: {why}"));
    }
}

/// What one setup measured.
pub(crate) struct Figures {
    /// Which Redis, and its URL.
    pub(crate) kind: Kind,
    pub(crate) url: String,
    /// Each node's figures.
    pub(crate) nodes: Vec<NodeFigures>,
    /// How long opening every stream took, and then until Redis's memory stopped growing.
    pub(crate) connect: Duration,
    pub(crate) settle: Duration,
    /// Redis `used_memory` before and after the streams.
    pub(crate) redis_before: u64,
    pub(crate) redis_after: u64,
    /// Redis's and the clients' CPU over the broadcasts, and over the idle window.
    pub(crate) redis_cpu_broadcasts: Duration,
    pub(crate) clients_cpu_broadcasts: Duration,
    pub(crate) redis_cpu_idle: Duration,
    pub(crate) clients_cpu_idle: Duration,
    /// How long the broadcasts took, from the first send to the last delivery.
    pub(crate) broadcasts_span: Duration,
    /// The broadcasts, the publishes and the sends by id.
    pub(crate) broadcast: Series,
    pub(crate) publish: Series,
    pub(crate) send: Series,
}

impl Figures {
    /// The events that failed, with why.
    pub(crate) fn failures(&self) -> Vec<String> {
        [&self.broadcast, &self.publish, &self.send]
            .iter()
            .flat_map(|s| s.failures.iter().cloned())
            .collect()
    }
}

/// Which streams each client opens: stream g of N goes to node g × nodes / N and client
/// g × clients / N; every tenth joins `room`.
fn plan(args: &Args, addrs: &[std::net::SocketAddr]) -> Vec<Vec<Target>> {
    let mut plans: Vec<Vec<Target>> = vec![Vec::new(); args.clients];
    for g in 0..args.streams {
        let node = g * args.nodes / args.streams;
        let client = g * args.clients / args.streams;
        let room = usize::from(g % 10 == 0);
        let targets = &mut plans[client];
        match targets.last_mut() {
            Some(t) if t.node == node => {
                t.streams += 1;
                t.room += room;
            }
            _ => targets.push(Target {
                addr: addrs[node],
                node,
                streams: 1,
                room,
            }),
        }
    }
    plans
}

/// Sums the CPU time of `pids`.
fn cpu_of(pids: &[u32]) -> Duration {
    pids.iter().map(|&p| cpu(p)).sum()
}

/// An error unless every node still runs.
fn check(nodes: &mut [Node]) -> Result<(), Error> {
    for (i, n) in nodes.iter_mut().enumerate() {
        n.check(i)?;
    }
    Ok(())
}

/// Starts Redis of `kind`, the nodes and the clients, and measures.
pub(crate) async fn setup(kind: Kind, args: &Args, dir: &Path) -> Result<Figures, Error> {
    let redis = Redis::start(kind, dir)?;
    let mut nodes = Vec::with_capacity(args.nodes);
    for i in 0..args.nodes {
        nodes.push(Node::start(
            &args.demo,
            i,
            &redis.url,
            &args.node_args,
            dir,
        )?);
    }
    let addrs: Vec<_> = nodes.iter().map(|n| n.addr).collect();
    let node_pids: Vec<u32> = nodes.iter().map(Node::pid).collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let redis_before = redis.used_memory()?;
    let rss_before: Vec<u64> = node_pids.iter().map(|&p| rss(p)).collect();

    let plans = plan(args, &addrs);
    let mut per_node = vec![(0usize, 0usize); args.nodes];
    for t in plans.iter().flatten() {
        per_node[t.node].0 += t.streams;
        per_node[t.node].1 += t.room;
    }
    let room_total: usize = per_node.iter().map(|n| n.1).sum();
    let started = Instant::now();
    let mut fleet = Fleet::spawn(&plans, args.in_flight.div_ceil(args.clients))?;
    let limit = MEASUREMENT_LIMIT + Duration::from_millis(args.streams as u64);
    fleet.wait_ready(limit).await?;
    let connect = started.elapsed();
    eprintln!(
        "scale: {} streams open in {:.1} s",
        args.streams,
        connect.as_secs_f64()
    );
    check(&mut nodes)?;
    // The nodes write each new session to Redis after it opened (presence): wait until that
    // is done (Redis's memory stops growing), then read memory.
    let settle = Instant::now();
    settled(&redis).await?;
    let settle = settle.elapsed();
    eprintln!(
        "scale: Redis settled {:.1} s after the last stream opened",
        settle.as_secs_f64()
    );
    let rss_open: Vec<u64> = node_pids.iter().map(|&p| rss(p)).collect();
    let redis_after = redis.used_memory()?;

    let (redis_pids, client_pids) = (redis.pids(), fleet.pids());
    // CPU time so far: each node's, Redis's, the clients'.
    let snapshot = || {
        (
            node_pids.iter().map(|&p| cpu(p)).collect::<Vec<_>>(),
            cpu_of(&redis_pids),
            cpu_of(&client_pids),
        )
    };
    let idle0 = snapshot();
    tokio::time::sleep(IDLE_WINDOW).await;
    let idle1 = snapshot();

    // Broadcasts, each once the previous one has reached every stream.
    let b0 = snapshot();
    let span = Instant::now();
    let broadcast = series(&mut fleet, &nodes, args, 'b', args.streams).await?;
    let broadcasts_span = span.elapsed();
    let b1 = snapshot();
    check(&mut nodes)?;
    let publish = series(&mut fleet, &nodes, args, 'p', room_total).await?;
    check(&mut nodes)?;
    let send = sends(&mut fleet, &nodes, args).await?;
    check(&mut nodes)?;
    fleet.quit().await;

    let node_figures = per_node
        .iter()
        .enumerate()
        .map(|(i, &(streams, room))| NodeFigures {
            streams,
            room,
            rss_before: rss_before[i],
            rss_open: rss_open[i],
            cpu_broadcasts: b1.0[i].saturating_sub(b0.0[i]),
            cpu_idle: idle1.0[i].saturating_sub(idle0.0[i]),
            times_away: nodes[i].times_away(),
        })
        .collect();
    Ok(Figures {
        kind,
        url: redis.url.clone(),
        nodes: node_figures,
        connect,
        settle,
        redis_before,
        redis_after,
        redis_cpu_broadcasts: b1.1.saturating_sub(b0.1),
        clients_cpu_broadcasts: b1.2.saturating_sub(b0.2),
        redis_cpu_idle: idle1.1.saturating_sub(idle0.1),
        clients_cpu_idle: idle1.2.saturating_sub(idle0.2),
        broadcasts_span,
        broadcast,
        publish,
        send,
    })
}

/// Waits until Redis's `used_memory` has moved by less than 0.5 % over three seconds (at
/// most [`MEASUREMENT_LIMIT`]; then it goes on, and says so).
async fn settled(redis: &Redis) -> Result<(), Error> {
    let start = Instant::now();
    let mut samples = vec![redis.used_memory()?];
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = redis.used_memory()?;
        samples.push(now);
        if let [.., before, _, _, _] = samples.as_slice() {
            if now.abs_diff(*before) * 200 < now {
                return Ok(());
            }
        }
        if start.elapsed() > MEASUREMENT_LIMIT {
            eprintln!("scale: Redis's memory still moves after 120 s; measuring all the same");
            return Ok(());
        }
    }
}

/// `--broadcasts` events of `kind` (`b`: `POST /broadcast`, `p`: `POST /topics/room/events`)
/// on node 0, each once the previous one has reached its `want` streams. A POST that fails
/// is recorded and the next event sent; a delivery timeout ends the series.
async fn series(
    fleet: &mut Fleet,
    nodes: &[Node],
    args: &Args,
    kind: char,
    want: usize,
) -> Result<Series, Error> {
    let path = if kind == 'b' {
        "/broadcast"
    } else {
        "/topics/room/events"
    };
    let mut out = Series::default();
    for seq in 0..args.broadcasts {
        let tag = format!("{kind}{seq}");
        let sent = now_us();
        out.sent += 1;
        match post(nodes[0].addr, path, &format!("~{tag} {sent}")).await {
            Ok((200, body)) => {
                let answered = body.parse::<usize>().ok();
                if answered != Some(want) {
                    eprintln!("scale: {tag}: POST {path} answered {body:?}, for {want} streams");
                }
                out.answered.push(answered.unwrap_or(0));
            }
            Ok((status, body)) => {
                out.fail(&tag, format!("POST {path} answered {status} {body}"));
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(e) => {
                out.fail(&tag, format!("POST {path}: {e}"));
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        }
        let last = match fleet.wait_done(&tag, MEASUREMENT_LIMIT).await? {
            Ok(last) => last,
            Err(e) => {
                out.fail(&tag, e);
                break;
            }
        };
        let got = fleet.collect(&tag).await?;
        let until = last.saturating_sub(sent);
        eprintln!(
            "scale: {tag}: {} deliveries, the last {:.1} ms after the send",
            got.lat.len(),
            until as f64 / 1e3
        );
        out.events += 1;
        out.until_last.push(until);
        out.lat.extend(got.lat);
        out.dups += got.dups;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    out.lat.sort_unstable();
    Ok(out)
}

/// `--sends` sends by id, one at a time, each to a random tab through another node than its
/// own. A POST that fails is recorded and the next one sent; a send that has not arrived
/// within [`MEASUREMENT_LIMIT`] of the first ends the series.
async fn sends(fleet: &mut Fleet, nodes: &[Node], args: &Args) -> Result<Series, Error> {
    let mut out = Series::default();
    if args.sends == 0 {
        return Ok(out);
    }
    let tabs = fleet
        .sample_ids(args.sends.div_ceil(args.clients) + 1)
        .await?;
    if tabs.is_empty() {
        return Err("no session to send to".into());
    }
    let deadline = Instant::now() + MEASUREMENT_LIMIT;
    let n = nodes.len();
    for k in 0..args.sends {
        // Stride through the sample (grouped by client) so that the clients take turns.
        let (client, node, id) = &tabs[(k * 7919) % tabs.len()];
        let via = if n > 1 {
            (node + 1 + k % (n - 1)) % n
        } else {
            *node
        };
        let tag = format!("s{k}");
        let sent = now_us();
        let path = format!("/sessions/{id}/events");
        out.sent += 1;
        match post(nodes[via].addr, &path, &format!("~{tag} {sent}")).await {
            Ok((202, _)) => {}
            Ok((status, body)) => {
                out.fail(
                    &tag,
                    format!("POST {path} on node {via} answered {status} {body}"),
                );
                continue;
            }
            Err(e) => {
                out.fail(&tag, format!("POST {path} on node {via}: {e}"));
                continue;
            }
        }
        match fleet.wait_got(*client, &tag, deadline).await? {
            Some(lat) => {
                out.events += 1;
                out.lat.push(lat);
            }
            None => {
                out.fail(
                    &tag,
                    format!(
                        "its tab (client {client}) did not get it; {} of {} sends had arrived \
                         within {} s",
                        out.events,
                        args.sends,
                        MEASUREMENT_LIMIT.as_secs()
                    ),
                );
                break;
            }
        }
    }
    out.lat.sort_unstable();
    Ok(out)
}
