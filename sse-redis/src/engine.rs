//! [`RedisEngine`]: the connection to Redis, the hub it prepares, and the answers to a
//! handshake's lookups; its commands to the sessions of every node are in `commands.rs`.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::Waker;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::Value;
use sse_proto::{
    Answers, BoxFuture, Claimed, ClosedPolicy, GapReason, HubBuilder, IdGenerator, LogBounds,
    MemoryHistory, Offer, RelayConfig, RelayPort, SessionEvent, SessionId, Store,
};

use crate::conn::{Conn, Endpoint};
use crate::once::{DeliveredHere, MessageIds};
use crate::reply;
use crate::scripts::{self, Keys};

/// Settings of a [`RedisEngine`].
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// Where Redis is: one server (`redis://127.0.0.1:6379`), or a Redis Cluster named by
    /// any of its nodes, comma-separated (`redis+cluster://10.0.0.1:7000,10.0.0.2:7000`;
    /// the client learns the rest, and follows slots as they move and replicas as they are
    /// promoted).
    pub url: String,
    /// What every key starts with (default `sse:`), so deployments can share a Redis. Keys
    /// are written `{<prefix>}<name>`: the prefix is a Redis Cluster hash tag, which puts all
    /// of a deployment's keys in one slot, so it must not be empty or hold `{` or `}`.
    pub prefix: String,
    /// This node's name, unique among the nodes (default: random).
    pub node: String,
    /// How often this node tells Redis it is alive (default 2 s), one write whatever its
    /// number of sessions. A node silent for three of these is found dead by the others,
    /// and its sessions detached: each then has the resume grace to come back on another
    /// node.
    pub heartbeat: Duration,
    /// How long a closed id stays marked (default one hour).
    pub closed_ttl: Duration,
    /// What answering 204 does to a closed id's mark (default: the first 204 consumes it).
    pub closed_policy: ClosedPolicy,
    /// Most entries kept in the broadcast log and in each node's delivery stream.
    pub stream_max: usize,
    /// How long a command may wait for Redis before it counts as unavailable (default 2 s).
    pub timeout: Duration,
    /// How many replicas must have a write before it counts as done (default 0: the master's
    /// answer). Redis replicates asynchronously, so a master that dies loses what it had not
    /// yet passed on; with 1 or more, each send, broadcast, publish, close, join and leave
    /// waits (`WAIT`, up to `timeout`) until that many replicas have it, and one that no
    /// replica took in time fails with [`Error::Unavailable`](sse_proto::Error::Unavailable)
    /// (it may still take effect, once, as after any timeout). What was acknowledged then
    /// survives a failover. Each write costs a round trip to the replicas more.
    pub replicas: usize,
}

impl RedisConfig {
    /// Defaults for `url`.
    pub fn new(url: impl Into<String>) -> RedisConfig {
        RedisConfig {
            url: url.into(),
            prefix: "sse:".to_owned(),
            node: format!("node-{:016x}", random_u64()),
            heartbeat: Duration::from_secs(2),
            closed_ttl: Duration::from_secs(3600),
            closed_policy: ClosedPolicy::ConsumeOnFirst,
            stream_max: 100_000,
            timeout: Duration::from_secs(2),
            replicas: 0,
        }
    }
}

/// Several hubs, on several nodes, sharing their sessions through one Redis: a [`Store`].
///
/// Connect with [`connect`](Self::connect) and give the engine to an adapter's server
/// (`sse_hyper::Server::with_store`, and the same in sse-tokio and sse-async-std), which
/// prepares its hub for it (relay mode, and in resume mode a log in the store's epoch), runs
/// its work beside the hub, and asks it on every handshake: a reconnect then resumes on any
/// node, a closed id gets 204 on every node, and what the hub sends reaches every node.
/// [`send_to`](Self::send_to), [`broadcast`](Self::broadcast), [`close`](Self::close) and
/// [`sessions`](Self::sessions) reach every node and say what Redis answered.
///
/// When Redis is away, this node keeps serving its own connections: sends to them are
/// delivered without a position (their logs record a gap), sends that need Redis fail with
/// [`Error::Unavailable`](sse_proto::Error::Unavailable), and new streams are decided from
/// the hub's own stores. Everything queued for Redis is sent once it is back.
#[derive(Clone)]
pub struct RedisEngine {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) endpoint: Endpoint,
    pub(crate) conn: Conn,
    pub(crate) config: RedisConfig,
    pub(crate) keys: Keys,
    pub(crate) epoch: AtomicU64,
    pub(crate) up: AtomicBool,
    pub(crate) grace: Mutex<Option<Duration>>,
    pub(crate) bounds: Mutex<LogBounds>,
    /// Session changes for the presence task, coalesced per session (bounded by sessions).
    pub(crate) presence: Mutex<Presence>,
    /// Scripts, loaded once.
    pub(crate) scripts: Scripts,
    /// Where the reader starts: the sequence number when the engine connected, so that
    /// nothing sent after [`RedisEngine::connect`] returned is missed.
    pub(crate) read_from: Mutex<Option<u64>>,
    /// The ids of this engine's sends and broadcasts.
    pub(crate) messages: MessageIds,
    /// What this node delivered to its own connections while Redis was away.
    pub(crate) delivered_here: Mutex<DeliveredHere>,
    /// The relay port of the hub this engine serves, once a server runs it.
    pub(crate) port: OnceLock<RelayPort>,
    /// The application's observer of presence on every node, if it set one.
    pub(crate) presence_observer: OnceLock<PresenceObserver>,
}

/// An observer of joins and leaves on every node.
pub(crate) type PresenceObserver = Box<dyn Fn(&crate::PresenceEvent) + Send + Sync>;

pub(crate) struct Scripts {
    pub(crate) send: redis::Script,
    pub(crate) broadcast: redis::Script,
    pub(crate) end: redis::Script,
    pub(crate) claim: redis::Script,
    pub(crate) publish: redis::Script,
    pub(crate) join: redis::Script,
    pub(crate) leave: redis::Script,
    pub(crate) here: redis::Script,
    pub(crate) gone: redis::Script,
    pub(crate) orphan: redis::Script,
    pub(crate) rejoin: redis::Script,
    pub(crate) sweep: redis::Script,
}

/// What the presence task has to tell Redis.
#[derive(Default)]
pub(crate) struct Presence {
    pub(crate) changes: HashMap<SessionId, Change>,
    pub(crate) waker: Option<Waker>,
}

/// The latest state of one session, to write to Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    Attached,
    Detached,
    Gone,
}

impl fmt::Debug for RedisEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisEngine")
            .field("node", &self.shared.config.node)
            .field("epoch", &self.epoch())
            .field("up", &self.shared.up.load(Ordering::Relaxed))
            .finish()
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A random u64, from a fresh UUID v4 (the randomness `sse-proto` already uses).
fn random_u64() -> u64 {
    let id = sse_proto::UuidV4.random_bytes();
    u64::from_le_bytes([id[0], id[1], id[2], id[3], id[4], id[5], id[6], id[7]])
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl RedisEngine {
    /// Connects to Redis and reads (or, on an empty Redis, starts) the store's epoch.
    ///
    /// Fails when Redis cannot be reached, when the URL is not one redis-rs reads (or a
    /// `redis+cluster://` URL without a node), and when the prefix is not a valid hash tag.
    pub async fn connect(config: RedisConfig) -> Result<RedisEngine, redis::RedisError> {
        let keys = Keys::new(&config.prefix).ok_or_else(|| {
            redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "the key prefix is a hash tag: not empty, without `{` or `}`",
                config.prefix.clone(),
            ))
        })?;
        let endpoint = Endpoint::open(&config.url, config.timeout, crate::driver::BLOCK)?;
        let mut conn = endpoint.commands(config.timeout, config.replicas).await?;
        let epoch = epoch(&mut conn, &keys).await?;
        let seq: Option<u64> = redis::cmd("GET")
            .arg(keys.seq())
            .query_async(&mut conn)
            .await?;
        Ok(RedisEngine {
            shared: Arc::new(Shared {
                endpoint,
                conn,
                config,
                keys,
                epoch: AtomicU64::new(epoch),
                up: AtomicBool::new(true),
                grace: Mutex::new(None),
                bounds: Mutex::new(LogBounds::default()),
                presence: Mutex::new(Presence::default()),
                scripts: Scripts {
                    send: scripts::send(),
                    broadcast: scripts::broadcast(),
                    end: scripts::end(),
                    claim: scripts::claim(),
                    publish: crate::groups::publish(),
                    join: crate::groups::join(),
                    leave: crate::groups::leave(),
                    here: crate::groups::here(),
                    gone: crate::groups::gone(),
                    orphan: crate::groups::orphan(),
                    rejoin: crate::groups::rejoin(),
                    sweep: scripts::sweep(),
                },
                read_from: Mutex::new(Some(seq.unwrap_or(0))),
                messages: MessageIds::new(random_u64()),
                delivered_here: Mutex::new(DeliveredHere::default()),
                port: OnceLock::new(),
                presence_observer: OnceLock::new(),
            }),
        })
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.shared.config.node
    }

    /// The store's epoch: positions are only comparable within it.
    pub fn epoch(&self) -> u64 {
        self.shared.epoch.load(Ordering::Acquire)
    }

    /// Whether the last command reached Redis.
    pub fn is_up(&self) -> bool {
        self.shared.up.load(Ordering::Acquire)
    }

    /// The relay port of the hub this engine serves; `None` until a server runs the engine.
    pub(crate) fn port(&self) -> Option<&RelayPort> {
        self.shared.port.get()
    }

    /// Answers what an event-stream request needs looked up, from Redis: is the id closed
    /// (on any node)? What did the session miss (resume mode)? It also makes this node the
    /// session's owner, so that what is sent to it from now on comes here. `None` with
    /// Redis away.
    async fn answer_offer(&self, offer: &Offer) -> Option<Answers> {
        let lookup = offer.lookup();
        let Some(id) = lookup.closed else {
            return Some(Answers::default());
        };
        let position = lookup.history.map(|(_, p)| p);
        let after = match position {
            Some(Claimed::At(p)) if p.epoch() == self.epoch() => Some(p.position().seq),
            _ => None,
        };
        let shared = &self.shared;
        let bounds = *lock(&shared.bounds);
        let ttl = shared.owner_ttl(true);
        let keys = &shared.keys;
        let consume = shared.config.closed_policy == ClosedPolicy::ConsumeOnFirst;
        let mut tries = 0;
        let (items, mem) = loop {
            tries += 1;
            // What the session is in decides the keys the claim touches: read it first.
            let Ok(mem) = self.read_mem(id.as_str()).await else {
                shared.set_up(false);
                return None;
            };
            let topics = mem.topic_names();
            let mut invocation = shared.scripts.claim.prepare_invoke();
            invocation
                .key(keys.closed(id.as_str()))
                .key(keys.owner(id.as_str()))
                .key(keys.log(id.as_str()))
                .key(keys.bcast())
                .key(keys.mem(id.as_str()))
                .key(keys.ulog(&mem.user_hex))
                .key(keys.us(&mem.user_hex))
                .key(keys.un(&mem.user_hex));
            for t in &topics {
                invocation
                    .key(keys.tlog(t.as_str()))
                    .key(keys.tn(t.as_str()))
                    .key(keys.tm(t.as_str()));
            }
            invocation
                .key(keys.seq())
                .arg(if consume { "1" } else { "0" })
                .arg(&shared.config.node)
                .arg(millis(ttl))
                .arg(after.map_or("-1".to_owned(), |s| s.to_string()))
                .arg(bounds.max_events + 1)
                .arg(mem.fields.join(","))
                .arg(&mem.user_hex)
                .arg(id.as_str())
                .arg(millis(shared.mem_ttl(true)));
            for t in &topics {
                invocation.arg(t.as_str());
            }
            let mut conn = shared.conn.clone();
            let reply: Value = match invocation.invoke_async(&mut conn).await {
                Ok(v) => {
                    shared.set_up(true);
                    v
                }
                Err(_) => {
                    shared.set_up(false);
                    return None;
                }
            };
            let items = reply::array(&reply).to_vec();
            match items.first().and_then(reply::int) {
                // Its memberships changed in between: read them again.
                Some(2) if tries < 5 => continue,
                Some(2) => return None,
                _ => break (items, mem),
            }
        };
        if items.first().and_then(reply::int) == Some(1) {
            return Some(Answers {
                closed: true,
                history: None,
            });
        }
        let existed = items.get(1).and_then(reply::int) == Some(1);
        // The sequence number now: no position past it was issued.
        let issued = items.get(10).and_then(reply::int);
        let issued = issued.and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
        let history = match position {
            // Without resume mode nothing is logged.
            None => None,
            Some(Claimed::None) if existed => Some(Err(GapReason::NoPosition)),
            Some(Claimed::None) => None,
            Some(Claimed::Invalid) => Some(Err(GapReason::InvalidPosition)),
            Some(Claimed::At(_)) if after.is_none() => Some(Err(GapReason::UnknownEpoch)),
            Some(Claimed::At(_)) if !existed => Some(Err(GapReason::Expired)),
            // A position the store never issued: forged, or from a store that lost what it
            // had issued. Nothing after it can be told apart from what the tab saw.
            Some(Claimed::At(p)) if p.position().seq > issued => {
                Some(Err(GapReason::InvalidPosition))
            }
            Some(Claimed::At(p)) => Some(crate::fetch::fetched(
                &items,
                id,
                p.position().seq,
                mem,
                self.epoch(),
                bounds,
            )),
        };
        Some(Answers {
            closed: false,
            history,
        })
    }
}

impl Store for RedisEngine {
    /// Relay mode, the observer that keeps the sessions' marks in Redis, and in resume mode
    /// (the builder's [`resume_config`](HubBuilder::resume_config)) a log in the store's
    /// epoch with the same bounds.
    fn prepare(&self, builder: HubBuilder) -> HubBuilder {
        let shared = self.shared.clone();
        let resume = builder.resume_config().copied();
        let mut builder = builder
            .relay(RelayConfig::default())
            .observe(move |event| shared.observe(event));
        if let Some(resume) = resume {
            *lock(&self.shared.grace) = Some(resume.grace);
            *lock(&self.shared.bounds) = resume.bounds;
            builder = builder.history(MemoryHistory::new(
                self.epoch(),
                resume.bounds,
                resume.max_total_bytes,
            ));
        }
        builder
    }

    /// With Redis away, `None`: the hub answers from its own stores, so the connection is
    /// served, and a resume is a gap unless this node holds the session's log.
    fn answer<'a>(&'a self, offer: &'a Offer) -> BoxFuture<'a, Option<Answers>> {
        Box::pin(self.answer_offer(offer))
    }

    /// The node's three tasks (reading what Redis delivers here, relaying what the hub
    /// sends, keeping presence), until the hub is dropped.
    fn run(&self, port: RelayPort) -> BoxFuture<'static, ()> {
        let _ = self.shared.port.set(port.clone());
        Box::pin(self.clone().tasks(port))
    }
}

impl Shared {
    /// Records whether the last command reached Redis; a change is logged (feature
    /// `tracing`): unreachable at `warn`, back at `info`.
    pub(crate) fn set_up(&self, up: bool) {
        let was = self.up.swap(up, Ordering::AcqRel);
        #[cfg(feature = "tracing")]
        match (was, up) {
            (true, false) => tracing::warn!(
                target: "sse",
                node = %self.config.node,
                "Redis unreachable: serving this node's connections only"
            ),
            (false, true) => {
                tracing::info!(target: "sse", node = %self.config.node, "Redis reachable again")
            }
            _ => {}
        }
        let _ = was;
    }

    /// The hub's observer: records the session's latest state for the presence task.
    fn observe(&self, event: &SessionEvent) {
        let change = match event {
            SessionEvent::Attached { .. } => Change::Attached,
            SessionEvent::Detached { .. } => Change::Detached,
            SessionEvent::Ended {
                reason: sse_proto::EndReason::Shutdown,
                ..
            } => Change::Detached,
            // Memberships are Redis's own record (the relay numbers them).
            SessionEvent::Joined { .. } | SessionEvent::Left { .. } => return,
            _ => Change::Gone,
        };
        let waker = {
            let mut presence = lock(&self.presence);
            presence.changes.insert(event.id().clone(), change);
            presence.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// How long an owner mark lasts: while attached, three heartbeats and (resume mode) the
    /// grace, so that the tabs of a node that dies can still resume elsewhere; once detached,
    /// the grace (or three heartbeats without resume mode) and a heartbeat of slack.
    pub(crate) fn owner_ttl(&self, attached: bool) -> Duration {
        let beats = self.config.heartbeat * 3;
        match (*lock(&self.grace), attached) {
            (None, _) => beats,
            (Some(grace), true) => beats + grace,
            (Some(grace), false) => grace + self.config.heartbeat,
        }
    }

    /// How long a session's mem (its memberships and user) lasts: its owner mark's TTL and
    /// [`mem_slack`](Self::mem_slack), so that a node can still read it to clean up after a
    /// session whose own node died before ending it (see `RedisEngine::orphans`).
    pub(crate) fn mem_ttl(&self, attached: bool) -> Duration {
        self.owner_ttl(attached) + self.mem_slack()
    }

    /// How much longer than its marks a session's mem lasts: two alive marks (a minute at
    /// least), in which some live node's heartbeat cleans up after it.
    pub(crate) fn mem_slack(&self) -> Duration {
        self.alive_ttl() * 2
    }

    /// How long a node's `nodes` entry lasts without being renewed: three heartbeats.
    pub(crate) fn live_ttl(&self) -> Duration {
        self.config.heartbeat * 3
    }

    /// How long a node's alive mark lasts without being renewed: three heartbeats, and at
    /// least 30 s. A publish skips a node without the mark, so the mark must outlast a node
    /// that is alive but slow to renew it (a heartbeat that waits behind a loaded Redis):
    /// with three heartbeats alone, 100 000 sessions on the 2 s default let one lapse and a
    /// publish miss a live node's members (BENCHMARKS.md, section 9). A dead node's stream
    /// gets the topics' publishes for that long, trimmed like any node stream.
    pub(crate) fn alive_ttl(&self) -> Duration {
        self.live_ttl().max(Duration::from_secs(30))
    }
}

/// Reads the store's epoch, starting one when Redis is empty.
pub(crate) async fn epoch(conn: &mut Conn, keys: &Keys) -> redis::RedisResult<u64> {
    let fresh = fresh_epoch();
    let _: Value = redis::cmd("SET")
        .arg(keys.epoch())
        .arg(fresh)
        .arg("NX")
        .query_async(conn)
        .await?;
    redis::cmd("GET").arg(keys.epoch()).query_async(conn).await
}

/// A new epoch: 40 random bits (8 base-36 digits in an id).
pub(crate) fn fresh_epoch() -> u64 {
    random_u64() & ((1 << 40) - 1)
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
