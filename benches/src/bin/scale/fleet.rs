//! The parent's side of the load clients: each one this binary re-executed as `client`, its
//! stdout read line by line into one channel, its stdin taking the parent's commands (the
//! protocol is in [`crate::client`]). The clients are killed when the fleet is dropped.

use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

use crate::Error;
use crate::client::Target;

/// One client process.
struct Proc {
    child: Child,
    stdin: ChildStdin,
    /// How many streams it opens, and how many of them join `room`.
    streams: usize,
    room: usize,
}

/// The running clients.
pub(crate) struct Fleet {
    procs: Vec<Proc>,
    lines: mpsc::UnboundedReceiver<(usize, String)>,
    /// Per node: its streams, and how many of them are in `room`.
    per_node: Vec<(usize, usize)>,
}

/// What the clients reported for one measured event.
pub(crate) struct Deliveries {
    /// Every delivery's latency, µs.
    pub(crate) lat: Vec<u64>,
    /// Deliveries to a stream that had the event already.
    pub(crate) dups: usize,
    /// Deliveries per node.
    pub(crate) by_node: Vec<usize>,
}

impl Fleet {
    /// Starts one client per entry of `plans`, each opening its targets' streams with at most
    /// `in_flight` connects under way.
    pub(crate) fn spawn(plans: &[Vec<Target>], in_flight: usize) -> Result<Fleet, Error> {
        let me = std::env::current_exe()?;
        let (tx, lines) = mpsc::unbounded_channel();
        let mut procs = Vec::new();
        let mut per_node = Vec::new();
        for t in plans.iter().flatten() {
            if per_node.len() <= t.node {
                per_node.resize(t.node + 1, (0, 0));
            }
            per_node[t.node].0 += t.streams;
            per_node[t.node].1 += t.room;
        }
        for (c, targets) in plans.iter().enumerate() {
            let mut child = Command::new(&me)
                .arg("client")
                .args(["--targets", &Target::encode(targets)])
                .args(["--in-flight", &in_flight.to_string()])
                .args([
                    "--source",
                    &format!("127.0.{}.{}", 1 + c / 250, 2 + c % 250),
                ])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .kill_on_drop(true)
                .spawn()?;
            let stdin = child.stdin.take().ok_or("no stdin")?;
            let stdout = child.stdout.take().ok_or("no stdout")?;
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut reader = tokio::io::BufReader::new(stdout).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    let _ = tx.send((c, line));
                }
                let _ = tx.send((c, "eof".to_owned()));
            });
            procs.push(Proc {
                child,
                stdin,
                streams: targets.iter().map(|t| t.streams).sum(),
                room: targets.iter().map(|t| t.room).sum(),
            });
        }
        Ok(Fleet {
            procs,
            lines,
            per_node,
        })
    }

    /// The clients' process ids.
    pub(crate) fn pids(&self) -> Vec<u32> {
        self.procs.iter().filter_map(|p| p.child.id()).collect()
    }

    /// Sends one command line to client `c`.
    async fn send(&mut self, c: usize, line: &str) -> Result<(), Error> {
        let stdin = &mut self.procs[c].stdin;
        stdin.write_all(format!("{line}\n").as_bytes()).await?;
        stdin.flush().await?;
        Ok(())
    }

    /// The next line of any client, or `None` at `deadline`; a client's `error` line or its
    /// end is an error.
    async fn next(&mut self, deadline: Instant) -> Result<Option<(usize, String)>, Error> {
        let wait = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(wait, self.lines.recv()).await {
            Err(_) => Ok(None),
            Ok(None) => Err("every client has gone".into()),
            Ok(Some((c, line))) => {
                if let Some(msg) = line.strip_prefix("error ") {
                    return Err(format!("client {c}: {msg}").into());
                }
                if line == "eof" {
                    return Err(format!("client {c} exited").into());
                }
                Ok(Some((c, line)))
            }
        }
    }

    /// Waits until every client has opened all its streams, printing the progress on stderr
    /// every few seconds; an error after `limit`.
    pub(crate) async fn wait_ready(&mut self, limit: Duration) -> Result<(), Error> {
        let start = Instant::now();
        let mut open = vec![0usize; self.procs.len()];
        let mut ready = vec![false; self.procs.len()];
        let mut shown = Instant::now();
        while !ready.iter().all(|&r| r) {
            let Some((c, line)) = self.next(start + limit).await? else {
                return Err(format!(
                    "only {} of {} streams were open after {} s",
                    open.iter().sum::<usize>(),
                    self.procs.iter().map(|p| p.streams).sum::<usize>(),
                    limit.as_secs()
                )
                .into());
            };
            let mut words = line.split_whitespace();
            match (words.next(), words.next().and_then(|n| n.parse().ok())) {
                (Some("progress"), Some(n)) => open[c] = n,
                (Some("ready"), Some(n)) => (open[c], ready[c]) = (n, true),
                _ => {}
            }
            if shown.elapsed() > Duration::from_secs(5) {
                shown = Instant::now();
                eprintln!(
                    "scale: {} streams open after {:.0} s",
                    open.iter().sum::<usize>(),
                    start.elapsed().as_secs_f64()
                );
            }
        }
        Ok(())
    }

    /// Waits until every client has all its deliveries of `tag` (each client's streams for a
    /// broadcast, its `room` members for a publish): the wall-clock time (µs) of the last
    /// delivery. After `limit`, what says how many streams got it, per node.
    pub(crate) async fn wait_done(
        &mut self,
        tag: &str,
        limit: Duration,
    ) -> Result<Result<u64, String>, Error> {
        let start = Instant::now();
        let room = tag.starts_with('p');
        let want = |p: &Proc| if room { p.room } else { p.streams };
        let mut pending: Vec<bool> = self.procs.iter().map(|p| want(p) > 0).collect();
        let mut last = 0;
        while pending.iter().any(|&p| p) {
            match self.next(start + limit).await? {
                Some((c, line)) => {
                    let mut words = line.split_whitespace();
                    if (words.next(), words.next()) == (Some("done"), Some(tag)) {
                        let at: u64 = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
                        last = last.max(at);
                        pending[c] = false;
                    }
                }
                None => {
                    let got = self.collect(tag).await?;
                    let all: usize = self.procs.iter().map(want).sum();
                    let by_node: Vec<String> = self
                        .per_node
                        .iter()
                        .enumerate()
                        .map(|(i, &(streams, members))| {
                            let of = if room { members } else { streams };
                            let n = got.by_node.get(i).copied().unwrap_or(0);
                            format!("node {i}: {n} of {of}")
                        })
                        .collect();
                    return Ok(Err(format!(
                        "only {} of {all} streams got it within {} s ({})",
                        got.lat.len(),
                        limit.as_secs(),
                        by_node.join(", ")
                    )));
                }
            }
        }
        Ok(Ok(last))
    }

    /// Every client's latencies of `tag` (and forgets them).
    pub(crate) async fn collect(&mut self, tag: &str) -> Result<Deliveries, Error> {
        let mut out = Deliveries {
            lat: Vec::new(),
            dups: 0,
            by_node: vec![0; self.per_node.len()],
        };
        for c in 0..self.procs.len() {
            self.send(c, &format!("report {tag}")).await?;
        }
        let mut left = self.procs.len();
        let deadline = Instant::now() + Duration::from_secs(60);
        while left > 0 {
            let (_, line) = self
                .next(deadline)
                .await?
                .ok_or("the clients did not report their latencies")?;
            let mut words = line.split_whitespace();
            if (words.next(), words.next()) != (Some("lat"), Some(tag)) {
                continue;
            }
            let _count = words.next();
            out.dups += words
                .next()
                .and_then(|w| w.parse::<usize>().ok())
                .unwrap_or(0);
            for pair in words.next().unwrap_or("-").split(';') {
                if let Some((node, n)) = pair.split_once(':') {
                    let (node, n): (usize, usize) = (node.parse()?, n.parse()?);
                    if let Some(slot) = out.by_node.get_mut(node) {
                        *slot += n;
                    }
                }
            }
            let list = words.next().unwrap_or("-");
            if list != "-" {
                for v in list.split(',') {
                    out.lat.push(v.parse()?);
                }
            }
            left -= 1;
        }
        Ok(out)
    }

    /// About `per_client` sessions of each client, picked at random: (client, node, id).
    pub(crate) async fn sample_ids(
        &mut self,
        per_client: usize,
    ) -> Result<Vec<(usize, usize, String)>, Error> {
        for c in 0..self.procs.len() {
            self.send(c, &format!("ids {per_client}")).await?;
        }
        let mut out = Vec::new();
        let mut left = self.procs.len();
        let deadline = Instant::now() + Duration::from_secs(60);
        while left > 0 {
            let (c, line) = self
                .next(deadline)
                .await?
                .ok_or("the clients did not name their sessions")?;
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["ids", "end"] => left -= 1,
                ["id", node, id] => out.push((c, node.parse()?, (*id).to_owned())),
                _ => {}
            }
        }
        Ok(out)
    }

    /// Waits for client `c` to say that the send `tag` arrived: its latency in µs; `None`
    /// at `deadline`.
    pub(crate) async fn wait_got(
        &mut self,
        c: usize,
        tag: &str,
        deadline: Instant,
    ) -> Result<Option<u64>, Error> {
        loop {
            let Some((from, line)) = self.next(deadline).await? else {
                return Ok(None);
            };
            let mut words = line.split_whitespace();
            if from == c && (words.next(), words.next()) == (Some("got"), Some(tag)) {
                return Ok(Some(words.next().and_then(|w| w.parse().ok()).unwrap_or(0)));
            }
        }
    }

    /// Asks every client to end, and waits (briefly) for them; the rest are killed on drop.
    pub(crate) async fn quit(mut self) {
        for c in 0..self.procs.len() {
            let _ = self.send(c, "quit").await;
        }
        for p in &mut self.procs {
            let _ = tokio::time::timeout(Duration::from_secs(5), p.child.wait()).await;
        }
    }
}
