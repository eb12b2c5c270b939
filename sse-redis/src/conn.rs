//! The connections to Redis: one Redis server, or a Redis Cluster.
//!
//! [`Endpoint`] is what [`RedisConfig::url`](crate::RedisConfig::url) names, and makes the
//! engine's two kinds of connection: the shared one every command goes through ([`Conn`],
//! reconnecting by itself), and the reader's own, which blocks in `XREAD`. On a cluster both
//! follow the slots as they move (`MOVED`, `ASK`, a replica promoted); every script's keys
//! share one hash slot (see `scripts.rs`), so each runs whole on the master that owns it.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, MultiplexedConnection};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Client, Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, Value};

/// The scheme of a Redis Cluster URL: `redis+cluster://host:port,host:port,…`.
pub(crate) const CLUSTER_SCHEME: &str = "redis+cluster://";

/// Where Redis is.
#[derive(Clone)]
pub(crate) enum Endpoint {
    /// One server (`redis://`, `rediss://`, `unix://`).
    One(Client),
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
            return Ok(Endpoint::One(Client::open(url)?));
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

    /// The connection every command shares.
    pub(crate) async fn commands(&self, timeout: Duration) -> RedisResult<Conn> {
        match self {
            Endpoint::One(client) => {
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout))
                    .set_number_of_retries(1);
                let manager = client.get_connection_manager_with_config(config).await?;
                Ok(Conn::Manager(manager))
            }
            Endpoint::Cluster { commands, .. } => {
                Ok(Conn::Cluster(commands.get_async_connection().await?))
            }
        }
    }

    /// A connection of the reader's own, where a blocking read holds up nothing else.
    pub(crate) async fn reader(&self, timeout: Duration) -> RedisResult<Conn> {
        match self {
            Endpoint::One(client) => {
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(None);
                let conn = client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                Ok(Conn::Multiplexed(conn))
            }
            Endpoint::Cluster { reader, .. } => {
                Ok(Conn::Cluster(reader.get_async_connection().await?))
            }
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
    let seeds = hosts.split(',').map(|host| format!("redis://{auth}{host}/"));
    Ok(Some(seeds.collect()))
}

/// A connection to Redis, whichever kind.
#[derive(Clone)]
pub(crate) enum Conn {
    /// One server, reconnecting by itself.
    Manager(ConnectionManager),
    /// One server, the reader's own connection.
    Multiplexed(MultiplexedConnection),
    /// A cluster: a connection to each master, routed by slot.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Manager(c) => c.req_packed_command(cmd),
            Conn::Multiplexed(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Manager(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Multiplexed(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Manager(c) => c.get_db(),
            Conn::Multiplexed(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
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
