//! The connections to Redis: one Redis server, or a Redis Cluster.
//!
//! [`Endpoint`] is what [`RedisConfig::url`](crate::RedisConfig::url) names, and makes the
//! engine's two kinds of connection: the shared one every command goes through ([`Conn`],
//! replaced when it fails or times out, and waiting for replicas after a write when asked
//! to), and the reader's own, which blocks in `XREAD`. On a cluster both follow the slots as
//! they move (`MOVED`, `ASK`, a replica promoted); every script's keys share one hash slot
//! (see `scripts.rs`), so each runs whole on the master that owns it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Client, Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, Value};

/// The scheme of a Redis Cluster URL: `redis+cluster://host:port,host:port,…`.
pub(crate) const CLUSTER_SCHEME: &str = "redis+cluster://";

/// Where Redis is.
#[derive(Clone)]
pub(crate) enum Endpoint {
    /// One server (`redis://`, `rediss://`, `unix://`).
    One {
        client: Client,
        /// How long the reader waits for the answer to a blocking read: its block time and
        /// the command timeout. A connection that died silently (a partition whose close
        /// was lost) fails it, and the reader connects again.
        read_timeout: Duration,
    },
    /// A Redis Cluster, found from its seed nodes.
    Cluster {
        /// For commands: each waits at most the configured timeout.
        commands: Box<ClusterClient>,
        /// For the blocking reader: a read may wait its block time on top.
        reader: Box<ClusterClient>,
    },
}

impl Endpoint {
    /// Reads `url`: a `redis+cluster://` URL names the seed nodes of a cluster (any of its
    /// nodes; the client learns the rest), anything else is one server's URL as redis-rs
    /// reads it.
    pub(crate) fn open(url: &str, timeout: Duration, block: Duration) -> RedisResult<Endpoint> {
        let Some(seeds) = cluster_seeds(url)? else {
            return Ok(Endpoint::One {
                client: Client::open(url)?,
                read_timeout: block + timeout,
            });
        };
        let client = |response: Duration| {
            ClusterClient::builder(seeds.clone())
                .connection_timeout(timeout)
                .response_timeout(response)
                .retries(2)
                .build()
        };
        Ok(Endpoint::Cluster {
            commands: Box::new(client(timeout)?),
            reader: Box::new(client(block + timeout)?),
        })
    }

    /// The connection every command shares. With `replicas`, a script (every write) counts
    /// as done only once that many replicas have it (`WAIT`).
    pub(crate) async fn commands(&self, timeout: Duration, replicas: usize) -> RedisResult<Conn> {
        // Half the command timeout, so that Redis answers before the client gives up.
        let wait = (replicas > 0).then(|| Wait {
            replicas,
            timeout_ms: u64::try_from(timeout.as_millis() / 2)
                .unwrap_or(u64::MAX)
                .max(1),
        });
        let link = self.command_link(timeout).await?;
        Ok(Conn { link, wait })
    }

    async fn command_link(&self, timeout: Duration) -> RedisResult<Link> {
        match self {
            Endpoint::One { client, .. } => {
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout));
                let healing = Healing {
                    client: client.clone(),
                    config,
                    current: Mutex::new(None),
                    made: AtomicU64::new(0),
                };
                // Connect now, so that a Redis that cannot be reached fails `connect`.
                healing.connection().await?;
                Ok(Link::Healing(Arc::new(healing)))
            }
            Endpoint::Cluster { commands, .. } => {
                Ok(Link::Cluster(commands.get_async_connection().await?))
            }
        }
    }

    /// A connection of the reader's own, where a blocking read holds up nothing else.
    pub(crate) async fn reader(&self, timeout: Duration) -> RedisResult<Conn> {
        match self {
            Endpoint::One {
                client,
                read_timeout,
            } => {
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(*read_timeout));
                let conn = client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                Ok(Conn::from(Link::Multiplexed(conn)))
            }
            Endpoint::Cluster { reader, .. } => Ok(Conn::from(Link::Cluster(
                reader.get_async_connection().await?,
            ))),
        }
    }
}

/// The seed URLs of a `redis+cluster://` URL, `None` for any other URL.
///
/// `redis+cluster://user:pass@a:7000,b:7001/` gives `redis://user:pass@a:7000/` and
/// `redis://user:pass@b:7001/`: the credentials are every node's.
fn cluster_seeds(url: &str) -> RedisResult<Option<Vec<String>>> {
    let Some(rest) = url.strip_prefix(CLUSTER_SCHEME) else {
        return Ok(None);
    };
    let hosts = rest.strip_suffix('/').unwrap_or(rest);
    let (auth, hosts) = match hosts.rsplit_once('@') {
        Some((auth, hosts)) => (format!("{auth}@"), hosts),
        None => (String::new(), hosts),
    };
    if hosts.split(',').any(|h| h.is_empty() || h.contains('/')) {
        return Err(RedisError::from((
            ErrorKind::InvalidClientConfig,
            "a cluster URL is redis+cluster://host:port[,host:port…]",
            url.to_owned(),
        )));
    }
    let seeds = hosts
        .split(',')
        .map(|host| format!("redis://{auth}{host}/"));
    Ok(Some(seeds.collect()))
}

/// One server's shared connection, replaced when it fails: dropped, and also timed out. A
/// connection that died silently (a partition whose close was lost) answers nothing, ever;
/// redis-rs's `ConnectionManager` reconnects only when the connection reports itself
/// dropped, so it would time out every command from then on.
pub(crate) struct Healing {
    client: Client,
    config: redis::AsyncConnectionConfig,
    /// The connection in use and its number; `None` until one is made, or after it failed.
    current: Mutex<Option<(u64, MultiplexedConnection)>>,
    /// The number of the next connection made.
    made: AtomicU64,
}

impl Healing {
    /// The connection in use, connecting when there is none.
    async fn connection(&self) -> RedisResult<(u64, MultiplexedConnection)> {
        if let Some(current) = lock(&self.current).clone() {
            return Ok(current);
        }
        let conn = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        let n = self.made.fetch_add(1, Ordering::Relaxed);
        // Another command may have connected meanwhile: all use one connection.
        Ok(lock(&self.current).get_or_insert((n, conn)).clone())
    }

    /// Drops connection `n` after `error`, when the error says it may be dead.
    fn failed(&self, n: u64, error: &RedisError) {
        if error.is_timeout() || error.is_connection_dropped() || error.is_unrecoverable_error() {
            let mut current = lock(&self.current);
            if current.as_ref().is_some_and(|(m, _)| *m == n) {
                *current = None;
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A connection to Redis, whichever kind, and what a write waits for.
#[derive(Clone)]
pub(crate) struct Conn {
    link: Link,
    wait: Option<Wait>,
}

/// How a write waits for replicas: `WAIT replicas timeout` after each script.
#[derive(Debug, Clone, Copy)]
struct Wait {
    replicas: usize,
    timeout_ms: u64,
}

impl Conn {
    /// The same connection, its scripts waiting for no replica; [`confirm`](Self::confirm)
    /// then waits for those that wrote something.
    pub(crate) fn unwaited(&self) -> Conn {
        Conn {
            link: self.link.clone(),
            wait: None,
        }
    }

    /// Waits until as many replicas as this connection asks for have every write made on
    /// it, or on a connection [`unwaited`](Self::unwaited) from it (`WAIT`); an error if
    /// they do not within the timeout.
    pub(crate) async fn confirm(&mut self) -> RedisResult<()> {
        let Some(wait) = self.wait else {
            return Ok(());
        };
        // On a cluster, WAIT goes to every master; each counts the replicas that have this
        // connection's writes to it, and the least is the answer.
        let mut ask = redis::cmd("WAIT");
        ask.arg(wait.replicas).arg(wait.timeout_ms);
        let got = self.link.send(&ask).await?;
        let got = crate::reply::int(&got).unwrap_or(0);
        if usize::try_from(got).unwrap_or(0) < wait.replicas {
            return Err(RedisError::from((
                ErrorKind::Io,
                "a write did not reach enough replicas in time",
                format!("{got} of {}", wait.replicas),
            )));
        }
        Ok(())
    }
}

impl From<Link> for Conn {
    fn from(link: Link) -> Conn {
        Conn { link, wait: None }
    }
}

/// The connection itself.
#[derive(Clone)]
enum Link {
    /// One server, shared by every command, replaced when it fails.
    Healing(Arc<Healing>),
    /// One server, the reader's own connection (the reader replaces it when it fails).
    Multiplexed(MultiplexedConnection),
    /// A cluster: a connection to each master, routed by slot.
    Cluster(ClusterConnection),
}

impl Link {
    async fn send(&mut self, cmd: &Cmd) -> RedisResult<Value> {
        match self {
            Link::Healing(h) => {
                let (n, mut conn) = h.connection().await?;
                let reply = conn.req_packed_command(cmd).await;
                if let Err(e) = &reply {
                    h.failed(n, e);
                }
                reply
            }
            Link::Multiplexed(c) => c.req_packed_command(cmd).await,
            Link::Cluster(c) => c.req_packed_command(cmd).await,
        }
    }
}

/// Whether `cmd` runs a script: every write the engine makes is one.
fn is_script(cmd: &Cmd) -> bool {
    matches!(
        cmd.args_iter().next(),
        Some(redis::Arg::Simple(b"EVALSHA" | b"EVAL"))
    )
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let reply = self.link.send(cmd).await?;
            if is_script(cmd) {
                self.confirm().await?;
            }
            Ok(reply)
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match &mut self.link {
            Link::Healing(h) => Box::pin(async move {
                let (n, mut conn) = h.connection().await?;
                let reply = conn.req_packed_commands(cmd, offset, count).await;
                if let Err(e) = &reply {
                    h.failed(n, e);
                }
                reply
            }),
            Link::Multiplexed(c) => c.req_packed_commands(cmd, offset, count),
            Link::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match &self.link {
            Link::Healing(h) => h.client.get_connection_info().redis_settings().db(),
            Link::Multiplexed(c) => c.get_db(),
            Link::Cluster(c) => c.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_urls_name_their_seeds() {
        assert_eq!(cluster_seeds("redis://127.0.0.1:6379").unwrap(), None);
        assert_eq!(
            cluster_seeds("redis+cluster://a:7000,b:7001/").unwrap(),
            Some(vec![
                "redis://a:7000/".to_owned(),
                "redis://b:7001/".to_owned()
            ])
        );
        assert_eq!(
            cluster_seeds("redis+cluster://u:p@a:7000").unwrap(),
            Some(vec!["redis://u:p@a:7000/".to_owned()])
        );
        for bad in [
            "redis+cluster://",
            "redis+cluster://a:1,",
            "redis+cluster://a:1/0",
        ] {
            assert!(cluster_seeds(bad).is_err(), "{bad}");
        }
    }
}
