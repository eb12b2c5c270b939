//! The connections to Redis: one Redis server, independent servers the shards are spread
//! over, or a Redis Cluster.
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
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Client, Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, Value};

/// The scheme of a Redis Cluster URL: `redis+cluster://host:port,host:port,…`.
pub(crate) const CLUSTER_SCHEME: &str = "redis+cluster://";

/// The scheme of a URL naming independent servers, shard `k` on the `k mod n`th of `n`:
/// `redis+shards://host:port,host:port,…`.
pub(crate) const SHARDS_SCHEME: &str = "redis+shards://";

/// Where Redis is.
#[derive(Clone)]
pub(crate) enum Endpoint {
    /// One server (`redis://`, `rediss://`, `unix://`), or independent servers, each keeping
    /// the shards whose number modulo their count is its place in the list (client-side
    /// sharding, `redis+shards://`).
    Servers {
        clients: Vec<Client>,
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
    /// nodes; the client learns the rest), a `redis+shards://` URL independent servers, and
    /// anything else is one server's URL as redis-rs reads it.
    pub(crate) fn open(url: &str, timeout: Duration, block: Duration) -> RedisResult<Endpoint> {
        let servers = |urls: &[String]| {
            let clients = urls.iter().map(|url| Client::open(url.as_str()));
            Ok(Endpoint::Servers {
                clients: clients.collect::<RedisResult<_>>()?,
                read_timeout: block + timeout,
            })
        };
        if let Some(urls) = hosts(url, SHARDS_SCHEME)? {
            return servers(&urls);
        }
        let Some(seeds) = cluster_seeds(url)? else {
            return servers(&[url.to_owned()]);
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
            Endpoint::Servers { clients, .. } => {
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout));
                let mut servers = Vec::new();
                for client in clients {
                    let healing = Healing {
                        client: client.clone(),
                        config: config.clone(),
                        current: Mutex::new(None),
                        made: AtomicU64::new(0),
                    };
                    // Connect now, so that a Redis that cannot be reached fails `connect`.
                    healing.connection().await?;
                    servers.push(healing);
                }
                Ok(Link::Servers(Arc::new(servers)))
            }
            Endpoint::Cluster { commands, .. } => {
                Ok(Link::Cluster(commands.get_async_connection().await?))
            }
        }
    }

    /// A connection of the reader of `shard`'s own, where a blocking read holds up nothing
    /// else.
    pub(crate) async fn reader(&self, shard: u8, timeout: Duration) -> RedisResult<Conn> {
        match self {
            Endpoint::Servers {
                clients,
                read_timeout,
            } => {
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(*read_timeout));
                let client = &clients[usize::from(shard) % clients.len()];
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
    hosts(url, CLUSTER_SCHEME)
}

/// The servers a URL of `scheme` names, each as a `redis://` URL (the credentials are
/// every server's); `None` for a URL of another scheme.
fn hosts(url: &str, scheme: &str) -> RedisResult<Option<Vec<String>>> {
    let Some(rest) = url.strip_prefix(scheme) else {
        return Ok(None);
    };
    let hosts = rest.strip_suffix('/').unwrap_or(rest);
    let (auth, hosts) = match hosts.rsplit_once('@') {
        Some((auth, hosts)) => (format!("{auth}@"), hosts),
        None => (String::new(), hosts),
    };
    if hosts.split(',').any(|h| h.is_empty() || h.contains('/')) {
        let shape = if scheme == CLUSTER_SCHEME {
            "a cluster URL is redis+cluster://host:port[,host:port…]"
        } else {
            "a sharded URL is redis+shards://host:port[,host:port…]"
        };
        return Err(RedisError::from((
            ErrorKind::InvalidClientConfig,
            shape,
            url.to_owned(),
        )));
    }
    let urls = hosts
        .split(',')
        .map(|host| format!("redis://{auth}{host}/"));
    Ok(Some(urls.collect()))
}

/// The shard of a key (the number after `#` in its hash tag; 0 for a tag without one).
fn shard_of_key(key: &[u8]) -> usize {
    let Some(open) = key.iter().position(|&b| b == b'{') else {
        return 0;
    };
    let Some(len) = key[open + 1..].iter().position(|&b| b == b'}') else {
        return 0;
    };
    let tag = &key[open + 1..open + 1 + len];
    let Some(hash) = tag.iter().rposition(|&b| b == b'#') else {
        return 0;
    };
    std::str::from_utf8(&tag[hash + 1..])
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The first key `cmd` names; `None` for a command without one (`SCRIPT LOAD`, `WAIT`, a
/// script given no key).
fn first_key(cmd: &Cmd) -> Option<&[u8]> {
    let mut args = cmd.args_iter().map(|a| match a {
        redis::Arg::Simple(bytes) => bytes,
        _ => &[][..],
    });
    let name = args.next()?;
    let is = |word: &[u8]| name.eq_ignore_ascii_case(word);
    if is(b"SCRIPT") || is(b"WAIT") {
        None
    } else if is(b"EVAL") || is(b"EVALSHA") {
        args.next();
        match args.next()? {
            b"0" => None,
            _ => args.next(),
        }
    } else if is(b"XREAD") {
        args.find(|a| a.eq_ignore_ascii_case(b"STREAMS"))?;
        args.next()
    } else {
        args.next()
    }
}

/// Where a command goes among independent servers: the server of its first key's shard
/// (shard 0 for a script given no key), or every server for a command without a key
/// (`SCRIPT LOAD`, `WAIT`).
fn route(cmd: &Cmd) -> Option<usize> {
    match first_key(cmd) {
        Some(key) => Some(shard_of_key(key)),
        None if is_script(cmd) => Some(0),
        None => None,
    }
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
        self.confirm_where(None).await
    }

    /// Waits for the replicas of the master (or server) that `script` went to, or (`None`)
    /// of every one: on a cluster and among independent servers, each counts the replicas
    /// that have this connection's writes to it, and the least is the answer.
    async fn confirm_where(&mut self, script: Option<&Cmd>) -> RedisResult<()> {
        let Some(wait) = self.wait else {
            return Ok(());
        };
        let mut ask = redis::cmd("WAIT");
        ask.arg(wait.replicas).arg(wait.timeout_ms);
        let got = match script {
            Some(script) => self.link.send_where(&ask, script).await?,
            None => self.link.send(&ask).await?,
        };
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
    /// One server, the reader's own connection (the reader replaces it when it fails).
    Multiplexed(MultiplexedConnection),
    /// A cluster: a connection to each master, routed by slot.
    Cluster(ClusterConnection),
    /// One server, or independent servers routed by shard: a connection to each, shared by
    /// every command, replaced when it fails.
    Servers(Arc<Vec<Healing>>),
}

/// The server of `servers` that `cmd` goes to (`None`: to every one).
fn server_of(servers: &[Healing], cmd: &Cmd) -> Option<usize> {
    match servers.len() {
        1 => Some(0),
        n => route(cmd).map(|shard| shard % n),
    }
}

/// Sends `cmd` on one server's shared connection, replacing it when it failed.
async fn healing_send(h: &Healing, cmd: &Cmd) -> RedisResult<Value> {
    let (n, mut conn) = h.connection().await?;
    let reply = conn.req_packed_command(cmd).await;
    if let Err(e) = &reply {
        h.failed(n, e);
    }
    reply
}

impl Link {
    /// Sends `cmd`, a command without a key, where `like` went: the master of its first
    /// key's slot, or the server of its first key's shard; as [`send`](Self::send) when
    /// `like` names no key.
    async fn send_where(&mut self, cmd: &Cmd, like: &Cmd) -> RedisResult<Value> {
        match self {
            Link::Cluster(c) => {
                if let Some(key) = first_key(like) {
                    let at = Route::with_key(key, SlotAddr::Master);
                    let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(at));
                    return c.route_command(cmd.clone(), routing).await;
                }
            }
            Link::Servers(servers) => {
                if let Some(server) = server_of(servers, like) {
                    return healing_send(&servers[server], cmd).await;
                }
            }
            Link::Multiplexed(_) => {}
        }
        self.send(cmd).await
    }

    async fn send(&mut self, cmd: &Cmd) -> RedisResult<Value> {
        match self {
            Link::Multiplexed(c) => c.req_packed_command(cmd).await,
            Link::Cluster(c) => c.req_packed_command(cmd).await,
            Link::Servers(servers) => match server_of(servers, cmd) {
                Some(server) => healing_send(&servers[server], cmd).await,
                None => {
                    // To every server: the least of their counts answers a `WAIT`, and the
                    // first a `SCRIPT LOAD` (the same hash from each).
                    let mut least: Option<Value> = None;
                    for server in servers.iter() {
                        let reply = healing_send(server, cmd).await?;
                        let lower = match (&least, crate::reply::int(&reply)) {
                            (Some(v), Some(n)) => crate::reply::int(v).is_some_and(|m| n < m),
                            (None, _) => true,
                            _ => false,
                        };
                        if lower {
                            least = Some(reply);
                        }
                    }
                    Ok(least.unwrap_or(Value::Nil))
                }
            },
        }
    }
}

/// Whether `cmd` runs a script: every write the engine makes is one.
fn is_script(cmd: &Cmd) -> bool {
    matches!(
        cmd.args_iter().next(),
        Some(redis::Arg::Simple(name))
            if name.eq_ignore_ascii_case(b"EVALSHA") || name.eq_ignore_ascii_case(b"EVAL")
    )
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let reply = self.link.send(cmd).await?;
            if is_script(cmd) {
                self.confirm_where(Some(cmd)).await?;
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
            Link::Multiplexed(c) => c.req_packed_commands(cmd, offset, count),
            Link::Cluster(c) => c.req_packed_commands(cmd, offset, count),
            Link::Servers(servers) => Box::pin(async move {
                // A pipeline's keys share a shard (as on a cluster, where they share a slot).
                let server = cmd
                    .cmd_iter()
                    .find_map(|c| server_of(servers, c))
                    .unwrap_or(0);
                let h = &servers[server];
                let (n, mut conn) = h.connection().await?;
                let reply = conn.req_packed_commands(cmd, offset, count).await;
                if let Err(e) = &reply {
                    h.failed(n, e);
                }
                reply
            }),
        }
    }

    fn get_db(&self) -> i64 {
        match &self.link {
            Link::Multiplexed(c) => c.get_db(),
            Link::Cluster(c) => c.get_db(),
            Link::Servers(servers) => servers
                .first()
                .map_or(0, |h| h.client.get_connection_info().redis_settings().db()),
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

    #[test]
    fn commands_among_servers_go_to_their_keys_shard() {
        assert_eq!(shard_of_key(b"{sse:}seq"), 0);
        assert_eq!(shard_of_key(b"{sse:#7}owner:a"), 7);
        assert_eq!(shard_of_key(b"{a#b}x"), 0);
        assert_eq!(shard_of_key(b"no tag"), 0);
        let mut eval = redis::cmd("EVALSHA");
        eval.arg("abc")
            .arg(2)
            .arg("{sse:#3}x")
            .arg("{sse:#3}y")
            .arg("v");
        assert_eq!(route(&eval), Some(3));
        let mut read = redis::cmd("XREAD");
        read.arg("COUNT")
            .arg(5)
            .arg("STREAMS")
            .arg("{sse:#2}node:a")
            .arg("0-0");
        assert_eq!(route(&read), Some(2));
        let mut get = redis::cmd("GET");
        get.arg("{sse:#5}seq");
        assert_eq!(route(&get), Some(5));
        assert_eq!(
            route(redis::cmd("SCRIPT").arg("LOAD").arg("return 1")),
            None
        );
        assert_eq!(route(redis::cmd("WAIT").arg(1).arg(100)), None);
        assert_eq!(
            hosts("redis+shards://a:1,b:2", SHARDS_SCHEME).unwrap(),
            Some(vec!["redis://a:1/".to_owned(), "redis://b:2/".to_owned()])
        );
        assert!(hosts("redis+shards://", SHARDS_SCHEME).is_err());
    }
}
