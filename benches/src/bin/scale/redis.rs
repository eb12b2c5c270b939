//! The bench's own Redis: one `redis-server`, or a Redis Cluster of three masters without
//! replicas, on free loopback ports; every server killed (and the cluster's files removed)
//! when dropped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Error;

/// How long a server may take to answer, and a cluster to agree on its slots.
const START_LIMIT: Duration = Duration::from_secs(30);

/// Which Redis the nodes share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// One `redis-server`.
    Single,
    /// A Redis Cluster of three masters and no replicas.
    Cluster,
}

impl Kind {
    /// How the report names it.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Kind::Single => "one Redis",
            Kind::Cluster => "Redis Cluster, 3 masters",
        }
    }
}

/// Running Redis servers, and the URL the demos are given.
pub(crate) struct Redis {
    servers: Vec<(Child, u16)>,
    dir: Option<PathBuf>,
    /// `--redis` for the demos.
    pub(crate) url: String,
}

impl Drop for Redis {
    fn drop(&mut self) {
        for (child, _) in &mut self.servers {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Redis {
    /// Starts the Redis of `kind`; a cluster keeps its `nodes-<port>.conf` files in a new
    /// directory under `dir`.
    pub(crate) fn start(kind: Kind, dir: &Path) -> Result<Redis, Error> {
        match kind {
            Kind::Single => {
                let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
                let mut redis = Redis {
                    servers: Vec::new(),
                    dir: None,
                    url: format!("redis://127.0.0.1:{port}"),
                };
                redis.spawn(port, &[])?;
                Ok(redis)
            }
            Kind::Cluster => Redis::cluster(dir),
        }
    }

    fn cluster(dir: &Path) -> Result<Redis, Error> {
        let dir = dir.join("cluster");
        std::fs::create_dir_all(&dir)?;
        let ports = cluster_ports(3)?;
        let list: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let mut redis = Redis {
            servers: Vec::new(),
            dir: Some(dir.clone()),
            url: format!("redis+cluster://{}", list.join(",")),
        };
        let dir_arg = dir.to_string_lossy().into_owned();
        for &port in &ports {
            let conf = dir.join(format!("nodes-{port}.conf"));
            let conf = conf.to_string_lossy().into_owned();
            redis.spawn(
                port,
                &[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    &conf,
                    "--dir",
                    &dir_arg,
                ],
            )?;
        }
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&list)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .map_err(|e| format!("redis-cli: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "redis-cli --cluster create: {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stdout)
            )
            .into());
        }
        let deadline = Instant::now() + START_LIMIT;
        loop {
            let ok = ports.iter().all(|&p| {
                cli(p, &["CLUSTER", "INFO"]).is_ok_and(|info| {
                    info.contains("cluster_state:ok") && info.contains("cluster_slots_ok:16384")
                })
            });
            if ok {
                return Ok(redis);
            }
            if Instant::now() > deadline {
                return Err("the Redis Cluster did not say cluster_state:ok within 30 s".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts one `redis-server` on `port` with `extra` flags and waits until it answers.
    fn spawn(&mut self, port: u16, extra: &[&str]) -> Result<(), Error> {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start redis-server: {e}"))?;
        self.servers.push((child, port));
        let deadline = Instant::now() + START_LIMIT;
        while !cli(port, &["PING"]).is_ok_and(|r| r.trim() == "PONG") {
            if Instant::now() > deadline {
                return Err(format!("redis-server on port {port} did not answer").into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// `used_memory` of `INFO memory`, summed over every server (the cluster's masters).
    pub(crate) fn used_memory(&self) -> Result<u64, Error> {
        let mut sum = 0;
        for (_, port) in &self.servers {
            let info = cli(*port, &["INFO", "memory"])?;
            sum += info
                .lines()
                .find_map(|l| l.strip_prefix("used_memory:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or("no used_memory in INFO memory")?;
        }
        Ok(sum)
    }

    /// The servers' process ids (for their CPU time).
    pub(crate) fn pids(&self) -> Vec<u32> {
        self.servers.iter().map(|(c, _)| c.id()).collect()
    }
}

/// One command through `redis-cli` on `port`: its raw output.
fn cli(port: u16, args: &[&str]) -> Result<String, Error> {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "--raw"])
        .args(args)
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("redis-cli: {e}"))?;
    if !out.status.success() {
        return Err(format!("redis-cli {args:?}: {}", out.status).into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `count` ports below the ephemeral range (where the streams' own ports are) such that each
/// and its cluster bus port (the port + 10 000) are free now.
fn cluster_ports(count: usize) -> Result<Vec<u16>, Error> {
    let mut ports = Vec::with_capacity(count);
    let mut candidate = 21_000 + (std::process::id() % 400) as u16 * 16;
    let free = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
    while ports.len() < count {
        if candidate > 29_999 {
            return Err("no free ports for a Redis Cluster".into());
        }
        if free(candidate) && free(candidate + 10_000) {
            ports.push(candidate);
        }
        candidate += 1;
    }
    Ok(ports)
}
