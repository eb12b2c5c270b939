//! What sse-redis's tests share: a redis-server of the test's own (the workspace's test kit)
//! and a simulated browser tab on a hub.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::panic)]

use std::task::{Context, Waker};
use std::time::{Duration, Instant};

pub mod proxy;

use bytes::Buf;
use sse_proto::{
    Accepted, Batch, Continuity, Decision, Decoder, Event, HttpVersion, Hub, HubBuilder, Item,
    Outlet, RelayPort, Request, Store,
};
use sse_redis::{RedisConfig, RedisEngine};
pub use sse_testkit::{RedisCluster, RedisServer};

/// A Redis of the test's own: one server or a cluster.
pub trait Redis {
    fn url(&self) -> String;
}

impl Redis for RedisServer {
    fn url(&self) -> String {
        RedisServer::url(self)
    }
}

impl Redis for proxy::Proxy {
    fn url(&self) -> String {
        proxy::Proxy::url(self)
    }
}

impl Redis for RedisCluster {
    fn url(&self) -> String {
        RedisCluster::url(self)
    }
}

thread_local! {
    /// How many shards the nodes a test starts on this thread use (see [`on_shards!`]).
    static SHARDS: std::cell::Cell<usize> = const { std::cell::Cell::new(1) };
}

/// Makes the nodes this thread's test starts use `shards` shards.
pub fn set_shards(shards: usize) {
    SHARDS.with(|s| s.set(shards));
}

/// How many shards this thread's nodes use.
pub fn shards() -> usize {
    SHARDS.with(std::cell::Cell::get)
}

/// The hash tag of `shard`'s keys, under the default prefix.
pub fn tag(shard: u8) -> String {
    match shard {
        0 => "{sse:}".to_owned(),
        k => format!("{{sse:#{k}}}"),
    }
}

/// The hash tag of the keys of the session, topic or user named `name` (a user by the bytes
/// of its principal).
pub fn tag_of(name: &[u8]) -> String {
    tag(sse_proto::Placement::new(shards()).unwrap().of_name(name))
}

/// Every shard's tag.
pub fn tags() -> Vec<String> {
    (0..shards()).map(|k| tag(k as u8)).collect()
}

/// Runs each of the test functions named (async, without arguments) as two tests: on one
/// shard (`one_shard::<name>`) and on four (`four_shards::<name>`), where sessions, topics,
/// users and broadcasts spread over the shards.
#[macro_export]
macro_rules! on_shards {
    ($($name:ident),* $(,)?) => {
        mod one_shard {
            $(
                #[tokio::test]
                async fn $name() {
                    $crate::common::set_shards(1);
                    super::$name().await
                }
            )*
        }
        mod four_shards {
            $(
                #[tokio::test]
                async fn $name() {
                    $crate::common::set_shards(4);
                    super::$name().await
                }
            )*
        }
    };
}

/// A node: a hub with its engine, and the engine's task beside it (stopped when dropped, as a
/// killed node's would be).
pub struct Node {
    pub hub: Hub,
    pub engine: RedisEngine,
    pub task: tokio::task::JoinHandle<()>,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts node `name` on `redis` with heartbeats every 200 ms, the settings `configure`
/// changes, and the hub of `builder`: what an adapter's server does with a store (the hub
/// prepared for it, its task beside the hub, its answers to every handshake).
pub async fn start_node(
    redis: &impl Redis,
    name: &str,
    configure: impl FnOnce(&mut RedisConfig),
    builder: HubBuilder,
) -> Node {
    let mut config = RedisConfig::new(redis.url());
    config.node = name.to_owned();
    config.heartbeat = Duration::from_millis(200);
    config.timeout = Duration::from_millis(300);
    config.shards = shards();
    configure(&mut config);
    let engine = RedisEngine::connect(config).await.unwrap();
    // No write window: a tab here drains without the hub's timers, which end one (the
    // adapters drive them).
    let builder = builder.write_window(sse_proto::WriteWindow::Off);
    let hub = engine.prepare(builder).build(Instant::now);
    let task = tokio::spawn(engine.run(RelayPort::claim(&hub).unwrap()));
    Node { hub, engine, task }
}

/// Waits until `node`'s hub shows `tab` in `topic` (the relay numbered the join).
pub async fn member(node: &Node, tab: &Tab, topic: &str) -> bool {
    until(async || {
        node.hub
            .session(&tab.id)
            .is_some_and(|s| s.topics().iter().any(|t| t.as_str() == topic))
    })
    .await
}

/// Waits until the tab has the last of each log in `logs` (what was acknowledged, per log),
/// and checks that each acknowledged event arrived once, each log in its order, and that
/// nothing arrived twice.
pub async fn arrived_per_log(tab: &mut Tab, logs: &[&[String]]) {
    let lasts: Vec<&String> = logs.iter().filter_map(|log| log.last()).collect();
    assert!(
        until(async || {
            tab.read();
            lasts.iter().all(|l| tab.data().contains(&l.as_str()))
        })
        .await,
        "acknowledged {logs:?}, got {:?}",
        tab.data()
    );
    let got: Vec<String> = tab.data().iter().map(|s| (*s).to_owned()).collect();
    let distinct: std::collections::BTreeSet<&String> = got.iter().collect();
    assert_eq!(distinct.len(), got.len(), "twice: {got:?}");
    for log in logs {
        let order: Vec<&String> = got.iter().filter(|d| log.contains(d)).collect();
        assert_eq!(order, log.iter().collect::<Vec<_>>(), "got {got:?}");
    }
}

/// Node `name` on a Redis Cluster (or any Redis): resume mode with a 30 s grace, every
/// topic granted, a 2 s command timeout (a cluster fails over within it).
pub async fn cluster_node(redis: &impl Redis, name: &str) -> Node {
    let builder = sse_proto::Hub::builder()
        .keep_alive(None)
        .resume(sse_proto::ResumeConfig::new(Duration::from_secs(30)))
        .topic_rule(|_, _| true);
    start_node(redis, name, |c| c.timeout = Duration::from_secs(2), builder).await
}

/// A tab of `user` that asks for `target`.
pub fn user_tab(target: &str, user: &str) -> Tab {
    Tab {
        target: target.to_owned(),
        user: Some(user.to_owned()),
        ..Tab::new()
    }
}

/// A frame of plain `text`.
pub fn frame(text: &str) -> sse_proto::Frame {
    Event::new().data(text.to_owned()).encode()
}

/// Waits until `done` holds, for at most 5 s.
pub async fn until(mut done: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done().await {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// A connection of the test's own, for reading Redis back.
pub async fn raw(redis: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// A simulated browser tab: a connection to a hub, and what it read.
pub struct Tab {
    pub outlet: Option<Outlet>,
    pub decoder: Decoder,
    pub events: Vec<(String, String, String)>,
    pub continuity: Option<Continuity>,
    pub id: String,
    /// The request target (`/events` unless a test asks for topics).
    pub target: String,
    /// The principal the application names for the tab's requests.
    pub user: Option<String>,
    /// What the last accept said: the session's topics, and those with a gap.
    pub topics: Vec<String>,
    pub gaps: Vec<String>,
}

impl Default for Tab {
    fn default() -> Tab {
        Tab {
            outlet: None,
            decoder: Decoder::new(),
            events: Vec::new(),
            continuity: None,
            id: String::new(),
            target: "/events".to_owned(),
            user: None,
            topics: Vec::new(),
            gaps: Vec::new(),
        }
    }
}

impl Tab {
    pub fn new() -> Tab {
        Tab::default()
    }

    /// Connects to `hub` through `engine`, offering the last event id it has (if any); the
    /// decision when it is not accepted.
    pub async fn connect(&mut self, hub: &Hub, engine: &RedisEngine) -> Result<(), Decision> {
        let last = self.decoder.last_event_id().to_owned();
        let mut req = Request::new(b"GET", self.target.as_bytes(), HttpVersion::Http11);
        req.header(b"accept", b"text/event-stream");
        if let Some(user) = &self.user {
            req.principal(user.as_bytes());
        }
        if !last.is_empty() {
            req.header(b"last-event-id", last.as_bytes());
        }
        match hub.handshake(&req, Some(engine)).await {
            Decision::Accept(Accepted {
                session,
                outlet,
                continuity,
                topics,
                topic_gaps,
                ..
            }) => {
                self.topics = topics.iter().map(|t| t.to_string()).collect();
                self.gaps = topic_gaps.iter().map(|t| t.to_string()).collect();
                self.id = session.id().to_string();
                self.continuity = Some(continuity);
                self.outlet = Some(outlet);
                self.read();
                Ok(())
            }
            other => Err(other),
        }
    }

    /// Reads what is queued; returns how many events it got.
    pub fn read(&mut self) -> usize {
        let Some(outlet) = &mut self.outlet else {
            return 0;
        };
        let mut batch = Batch::new();
        let mut cx = Context::from_waker(Waker::noop());
        let _ = outlet.poll_drain(&mut cx, Instant::now(), &mut batch);
        let bytes = batch.copy_to_bytes(batch.remaining());
        self.decoder.feed(&bytes).unwrap();
        let mut n = 0;
        while let Some(item) = self.decoder.poll_item() {
            if let Item::Event(e) = item {
                self.events.push((e.event, e.data, e.last_event_id));
                n += 1;
            }
        }
        n
    }

    /// Reads until `count` events arrived in all, for at most 5 s.
    pub async fn wait_for(&mut self, count: usize) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.events.len() < count {
            self.read();
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// The data of every event read so far.
    pub fn data(&self) -> Vec<&str> {
        self.events.iter().map(|(_, d, _)| d.as_str()).collect()
    }

    /// Drops the connection (the network went away).
    pub fn drop_connection(&mut self) {
        self.outlet = None;
    }
}
