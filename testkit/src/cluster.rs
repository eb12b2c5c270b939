//! A Redis Cluster of the test's own: masters and replicas on loopback ports, made with
//! `redis-cli --cluster create`, every node killed and its files removed when dropped.
//!
//! Each node runs with `--cluster-enabled yes`, its own directory (for `nodes.conf`), no
//! persistence, and a node timeout of 1 s, so a killed master's replica is promoted within a
//! few seconds.

use std::io;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::redis::RedisServer;

/// How long the cluster may take to agree on its slots once created.
const READY_LIMIT: Duration = Duration::from_secs(30);

/// A Redis Cluster started for one test.
#[derive(Debug)]
pub struct RedisCluster {
    /// Its nodes, masters first (as `--cluster create` was given them; a failover may have
    /// changed who is master since).
    pub nodes: Vec<RedisServer>,
    dir: PathBuf,
}

impl RedisCluster {
    /// Starts `masters` masters with `replicas` replicas each and waits until every node
    /// says the cluster is up and every slot is served. A start that fails (a port taken
    /// between choosing it and the server's bind, say) is tried again on other ports.
    pub fn start(masters: usize, replicas: usize) -> io::Result<RedisCluster> {
        let mut last = None;
        for _ in 0..3 {
            match RedisCluster::start_once(masters, replicas) {
                Ok(cluster) => return Ok(cluster),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("the Redis Cluster did not start")))
    }

    fn start_once(masters: usize, replicas: usize) -> io::Result<RedisCluster> {
        let count = masters * (1 + replicas);
        let ports = cluster_ports(count)?;
        let dir = std::env::temp_dir().join(format!(
            "sse-testkit-cluster-{}-{}",
            std::process::id(),
            ports[0]
        ));
        std::fs::create_dir_all(&dir)?;
        let mut cluster = RedisCluster {
            nodes: Vec::with_capacity(count),
            dir,
        };
        for &port in &ports {
            let node_dir = cluster.dir.join(port.to_string());
            std::fs::create_dir_all(&node_dir)?;
            let node_dir = node_dir.to_string_lossy().into_owned();
            let server = RedisServer::start_with(
                port,
                &[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-node-timeout",
                    "1000",
                    // A replica syncs at once, not after the default 5 s (the time the
                    // master waits for more replicas to serve them with one transfer).
                    "--repl-diskless-sync-delay",
                    "0",
                    "--dir",
                    &node_dir,
                ],
            )?;
            cluster.nodes.push(server);
        }
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for port in &ports {
            create.arg(format!("127.0.0.1:{port}"));
        }
        // redis-cli waits for the nodes to join for as long as it takes: a node that died
        // (its port taken) would hold it for good.
        let mut child = create
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let deadline = Instant::now() + READY_LIMIT;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(io::Error::other(
                    "redis-cli --cluster create did not finish",
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        if !status.success() {
            return Err(io::Error::other(format!(
                "redis-cli --cluster create: {status}"
            )));
        }
        cluster.wait_ready()?;
        Ok(cluster)
    }

    /// Waits until every running node says `cluster_state:ok` with all 16 384 slots served,
    /// and every running replica has synced with its master (`master_link_status:up`), so
    /// that a write can be acknowledged by a replica (`WAIT`).
    pub fn wait_ready(&self) -> io::Result<()> {
        let deadline = Instant::now() + READY_LIMIT;
        loop {
            let ready = self.running().all(|node| {
                let up = node.cli(&["CLUSTER", "INFO"]).is_ok_and(|info| {
                    info.contains("cluster_state:ok") && info.contains("cluster_slots_ok:16384")
                });
                up && node.cli(&["INFO", "replication"]).is_ok_and(|info| {
                    !info.contains("role:slave") || info.contains("master_link_status:up")
                })
            });
            if ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(io::Error::other("the Redis Cluster did not come up"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The nodes that are running.
    fn running(&self) -> impl Iterator<Item = &RedisServer> {
        self.nodes.iter().filter(|n| n.is_running())
    }

    /// Its URL for sse-redis and the demos: `redis+cluster://` and every node.
    pub fn url(&self) -> String {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", nodes.join(","))
    }

    /// Runs one command through `redis-cli -c` on a running node (following redirects to the
    /// node that owns a key) and returns its raw output.
    pub fn cli(&self, args: &[&str]) -> io::Result<String> {
        let node = self
            .running()
            .next()
            .ok_or_else(|| io::Error::other("no node of the cluster runs"))?;
        let mut all = vec!["-c"];
        all.extend_from_slice(args);
        node.cli(&all)
    }

    /// The slot a key hashes to, as the cluster computes it (`CLUSTER KEYSLOT`).
    pub fn keyslot(&self, key: &str) -> io::Result<u16> {
        let out = self.cli(&["CLUSTER", "KEYSLOT", key])?;
        out.trim()
            .parse()
            .map_err(|_| io::Error::other(format!("CLUSTER KEYSLOT {key}: {out}")))
    }

    /// Every key on every running master matching `pattern` (`KEYS` on each).
    pub fn keys(&self, pattern: &str) -> io::Result<Vec<String>> {
        let mut all = Vec::new();
        for node in self.running() {
            let role = node.cli(&["ROLE"])?;
            if !role.starts_with("master") {
                continue;
            }
            all.extend(lines(&node.cli(&["KEYS", pattern])?));
        }
        Ok(all)
    }
}

impl RedisCluster {
    /// The index in [`nodes`](Self::nodes) of the master that serves `key`'s slot now.
    pub fn master_of(&self, key: &str) -> io::Result<usize> {
        let slot = self.keyslot(key)?;
        let table = self.cli(&["CLUSTER", "NODES"])?;
        for line in table.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 9 || !fields[2].contains("master") || fields[2].contains("fail") {
                continue;
            }
            let serves = fields[8..].iter().any(|range| {
                let (lo, hi) = range.split_once('-').unwrap_or((range, range));
                matches!((lo.parse::<u16>(), hi.parse::<u16>()), (Ok(lo), Ok(hi)) if lo <= slot && slot <= hi)
            });
            let port = fields[1]
                .split(['@', ':'])
                .nth(1)
                .and_then(|p| p.parse::<u16>().ok());
            if let (true, Some(port)) = (serves, port) {
                if let Some(i) = self.nodes.iter().position(|n| n.port == port) {
                    return Ok(i);
                }
            }
        }
        Err(io::Error::other(format!("no master serves slot {slot}")))
    }

    /// The indexes in [`nodes`](Self::nodes) of the replicas of master `index`, as the
    /// master itself lists them (`INFO replication`: the replicas connected to it, those a
    /// `WAIT` counts). Another node's `CLUSTER NODES` learns who replicates whom by gossip,
    /// and right after the start it may not know yet (a test once read no replica there).
    pub fn replicas_of(&self, index: usize) -> io::Result<Vec<usize>> {
        let info = self.nodes[index].cli(&["INFO", "replication"])?;
        let mut out = Vec::new();
        for line in info.lines() {
            // `slave0:ip=127.0.0.1,port=7003,state=online,offset=…,lag=0`
            let Some((name, fields)) = line.trim().split_once(':') else {
                continue;
            };
            let numbered = name
                .strip_prefix("slave")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            if !numbered {
                continue;
            }
            let port = fields
                .split(',')
                .find_map(|kv| kv.strip_prefix("port="))
                .and_then(|p| p.parse::<u16>().ok());
            if let Some(i) = port.and_then(|p| self.nodes.iter().position(|n| n.port == p)) {
                out.push(i);
            }
        }
        Ok(out)
    }

    /// Moves `key`'s slot, with its keys, to master `to`, as `redis-cli --cluster reshard`
    /// does for each slot it moves: [`open_slot`](Self::open_slot), every key moved
    /// ([`move_keys`](Self::move_keys)), then [`close_slot`](Self::close_slot). Clients see
    /// `ASK` and `TRYAGAIN` while it runs, and `MOVED` after.
    pub fn migrate_slot(&self, key: &str, to: usize) -> io::Result<()> {
        if self.master_of(key)? == to {
            return Ok(());
        }
        self.open_slot(key, to)?;
        self.move_keys(key, to, None)?;
        self.close_slot(key, to)
    }

    /// Starts moving `key`'s slot from the master that serves it to master `to`: the
    /// target importing, the source migrating. The source goes on serving the keys it
    /// holds and redirects the others (`ASK`).
    pub fn open_slot(&self, key: &str, to: usize) -> io::Result<()> {
        let slot = self.keyslot(key)?.to_string();
        let from = self.master_of(key)?;
        let (from_id, to_id) = (self.id(from)?, self.id(to)?);
        let (source, target) = (&self.nodes[from], &self.nodes[to]);
        expect_ok(target.cli(&["CLUSTER", "SETSLOT", &slot, "IMPORTING", &from_id])?)?;
        expect_ok(source.cli(&["CLUSTER", "SETSLOT", &slot, "MIGRATING", &to_id])?)
    }

    /// `MIGRATE`s keys of `key`'s slot, opened towards master `to`, in batches of ten:
    /// `only` those (each that the source still holds), or every key it holds. A key the
    /// target holds already is an error (`BUSYKEY`), as in `redis-cli --cluster reshard`.
    pub fn move_keys(&self, key: &str, to: usize, only: Option<&[&str]>) -> io::Result<()> {
        let slot = self.keyslot(key)?.to_string();
        let source = &self.nodes[self.master_of(key)?];
        let port = self.nodes[to].port.to_string();
        let mut listed = only.map(<[&str]>::to_vec);
        loop {
            let keys = match listed.take() {
                Some(keys) => keys.into_iter().map(str::to_owned).collect(),
                None if only.is_some() => break,
                None => lines(&source.cli(&["CLUSTER", "GETKEYSINSLOT", &slot, "10"])?),
            };
            if keys.is_empty() {
                break;
            }
            let mut args = vec!["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"];
            args.extend(keys.iter().map(String::as_str));
            let out = source.cli(&args)?;
            if !out.trim().starts_with("OK") && !out.trim().starts_with("NOKEY") {
                return Err(io::Error::other(format!("MIGRATE {keys:?}: {out}")));
            }
        }
        Ok(())
    }

    /// Ends moving `key`'s slot to master `to`: every master told its new owner.
    pub fn close_slot(&self, key: &str, to: usize) -> io::Result<()> {
        let slot = self.keyslot(key)?.to_string();
        let to_id = self.id(to)?;
        for node in self.running() {
            if node.cli(&["ROLE"])?.starts_with("master") {
                expect_ok(node.cli(&["CLUSTER", "SETSLOT", &slot, "NODE", &to_id])?)?;
            }
        }
        Ok(())
    }

    /// The keys of `key`'s slot that node `index` holds (`CLUSTER GETKEYSINSLOT`; a master
    /// importing the slot lists those it has received), sorted.
    pub fn keys_in_slot(&self, index: usize, key: &str) -> io::Result<Vec<String>> {
        let slot = self.keyslot(key)?.to_string();
        let mut keys =
            lines(&self.nodes[index].cli(&["CLUSTER", "GETKEYSINSLOT", &slot, "1000"])?);
        keys.sort();
        Ok(keys)
    }

    fn id(&self, index: usize) -> io::Result<String> {
        Ok(self.nodes[index]
            .cli(&["CLUSTER", "MYID"])?
            .trim()
            .to_owned())
    }

    /// Waits until every replica of master `index` has everything it wrote (their
    /// replication offsets equal its own), for at most 10 s.
    pub fn wait_replicated(&self, index: usize) -> io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let info = self.nodes[index].cli(&["INFO", "replication"])?;
            let value = |line: &str, name: &str| {
                line.split(',')
                    .find_map(|kv| kv.trim().strip_prefix(name)?.parse::<u64>().ok())
            };
            let own = info.lines().find_map(|l| value(l, "master_repl_offset:"));
            let replicas: Vec<u64> = info
                .lines()
                .filter(|l| l.starts_with("slave"))
                .filter_map(|l| value(l.split_once(':').map_or(l, |(_, v)| v), "offset="))
                .collect();
            if own.is_some() && !replicas.is_empty() && replicas.iter().all(|&r| Some(r) == own) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(io::Error::other(format!("replicas behind: {info}")));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.stop();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The non-empty lines of `redis-cli`'s answer: one key each.
fn lines(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

fn expect_ok(out: String) -> io::Result<()> {
    if out.trim() == "OK" {
        Ok(())
    } else {
        Err(io::Error::other(out))
    }
}

/// `count` ports such that each and its cluster bus port (the port + 10 000) are free now.
/// Both stay below 32 768, where Linux's ephemeral ports begin, so that no outgoing
/// connection of another test takes one between the choice and the server's bind.
fn cluster_ports(count: usize) -> io::Result<Vec<u16>> {
    const FIRST: u16 = 20_000;
    const LAST: u16 = 32_767 - 10_000;
    static TAKEN: AtomicU32 = AtomicU32::new(0);
    let mut ports = Vec::with_capacity(count);
    // Start where another cluster (of this process, or another's) is unlikely to look.
    let offset = (std::process::id() % 500) * 16 + TAKEN.fetch_add(count as u32, Ordering::Relaxed);
    let mut candidate = FIRST + (offset % u32::from(LAST - FIRST)) as u16;
    let mut wrapped = false;
    while ports.len() < count {
        if candidate > LAST {
            if wrapped {
                return Err(io::Error::other("no free ports for a Redis Cluster"));
            }
            wrapped = true;
            candidate = FIRST;
        }
        let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
        if free(candidate) && free(candidate + 10_000) {
            ports.push(candidate);
        }
        candidate += 1;
    }
    Ok(ports)
}
