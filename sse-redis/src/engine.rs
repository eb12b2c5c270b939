//! [`RedisEngine`]: the connection to Redis, the hub it prepares, and the answers to a
//! handshake's lookups; its commands to the sessions of every node are in `commands.rs`.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::Waker;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sse_proto::{
    Answers, BoxFuture, ClosedPolicy, HubBuilder, IdGenerator, LogBounds, MemoryHistory, Offer,
    RelayConfig, RelayPort, SessionEvent, SessionId, Store,
};

use crate::conn::{Conn, Endpoint};
use crate::keys::Keys;
use crate::once::{DeliveredHere, MessageIds};
use crate::scripts;

/// Settings of a [`RedisEngine`].
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// Where Redis is: one server (`redis://127.0.0.1:6379`), a Redis Cluster named by
    /// any of its nodes, comma-separated (`redis+cluster://10.0.0.1:7000,10.0.0.2:7000`;
    /// the client learns the rest, and follows slots as they move and replicas as they are
    /// promoted), or independent servers that the [`shards`](Self::shards) are spread over,
    /// shard `k` on the `k mod n`th of `n` (`redis+shards://10.0.0.1:6379,10.0.0.2:6379`:
    /// client-side sharding; every node must list the same servers in the same order).
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
    /// How many shards the deployment keeps its keys on (default 1, at most 36). Each shard
    /// numbers its events in a sequence of its own, under a hash tag of its own, so that on
    /// a Redis Cluster the shards spread over the masters and no one master's core is the
    /// deployment's ceiling. Broadcasts are on shard 0; a session's, a topic's and a user's
    /// keys on the shard its name hashes to ([`Placement`](sse_proto::Placement)). Every
    /// node of a deployment must say the same number. A tab reads at most as many shards as
    /// its event id leaves room for (six with the default ids, four with signed ones): a
    /// join past that fails with [`Error::TooManyShards`](sse_proto::Error::TooManyShards).
    /// With one shard, the keys are what they always were.
    pub shards: usize,
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
            shards: 1,
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
    pub(crate) read_from: Mutex<Vec<Option<u64>>>,
    /// The epoch each shard was in when this node last checked it (shard 0's is `epoch`).
    pub(crate) shard_epochs: Mutex<Vec<u64>>,
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
    pub(crate) join_home: redis::Script,
    pub(crate) leave: redis::Script,
    pub(crate) here: redis::Script,
    pub(crate) gone: redis::Script,
    pub(crate) orphan: redis::Script,
    pub(crate) rejoin: redis::Script,
    pub(crate) sweep: redis::Script,
    pub(crate) beat: redis::Script,
    pub(crate) clean: redis::Script,
    pub(crate) ending: redis::Script,
}

/// What the presence task has to tell Redis.
#[derive(Default)]
pub(crate) struct Presence {
    pub(crate) changes: HashMap<SessionId, Change>,
    /// The sessions this node started without a claim (a new id) whose first mark has yet
    /// to reach Redis. Until it does, Redis holds no owner mark for them, and a claim of one
    /// (its tab back at once) must not take it for a session that ended. Bounded by the
    /// sessions: a round that writes a session's mark, and its end, take it out.
    pub(crate) fresh: HashSet<SessionId>,
    pub(crate) waker: Option<Waker>,
    /// The sessions this node is claiming, and joins and leaves that came for them early.
    pub(crate) claims: crate::late::Claims,
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
        let keys = Keys::new(&config.prefix, config.shards).ok_or_else(|| {
            redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "the key prefix is a hash tag (not empty, without `{` or `}`) and there are 1 \
                 to 36 shards",
                format!("prefix {:?}, {} shards", config.prefix, config.shards),
            ))
        })?;
        let endpoint = Endpoint::open(&config.url, config.timeout, crate::driver::BLOCK)?;
        let mut conn = endpoint.commands(config.timeout, config.replicas).await?;
        let mut new_run = agree_on_shards(&mut conn, &keys).await?;
        // Each shard's epoch (shard 0's is the deployment's, which positions carry; another
        // shard's, where its current run started) and where its sequence is.
        let mut epochs = Vec::new();
        let mut read_from = Vec::new();
        for shard in keys.every() {
            let (epoch, started) = open_shard(&mut conn, &keys, shard, new_run).await?;
            // A deployment epoch that starts now: every shard starts a first run.
            new_run |= shard == 0 && started;
            epochs.push(epoch);
            let seq: Option<u64> = redis::cmd("GET")
                .arg(keys.seq(shard))
                .query_async(&mut conn)
                .await?;
            read_from.push(Some(seq.unwrap_or(0)));
        }
        let epoch = epochs[0];
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
                    claim: crate::claim::claim(),
                    publish: crate::groups::publish(),
                    join: crate::groups::join(),
                    join_home: crate::groups::join_home(),
                    leave: crate::groups::leave(),
                    here: crate::groups::here(),
                    gone: crate::groups::gone(),
                    orphan: crate::groups::orphan(),
                    rejoin: crate::groups::rejoin(),
                    sweep: scripts::sweep(),
                    beat: scripts::beat(),
                    clean: crate::groups::clean(),
                    ending: crate::groups::ending(),
                },
                read_from: Mutex::new(read_from),
                shard_epochs: Mutex::new(epochs),
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
            builder = builder.history(
                MemoryHistory::new(self.epoch(), resume.bounds, resume.max_total_bytes)
                    .placed(self.shared.keys.placement()),
            );
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
            match change {
                Change::Attached => {
                    if !presence.claims.claiming(event.id()) {
                        presence.fresh.insert(event.id().clone());
                    }
                    presence.claims.attached(event.id());
                }
                Change::Gone => {
                    presence.fresh.remove(event.id());
                    presence.claims.ended(event.id());
                }
                Change::Detached => {}
            }
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

/// Records the number of shards, or checks it against the one recorded: a node that places
/// logs on another number of shards than the live nodes would number and read them on
/// other shards. With no live node, the new number is recorded and a new epoch started
/// (positions of the old one name other shards' events: they are gaps).
///
/// KEYS: shard 0's shards, nodes, epoch, from and seq. ARGV: the number, now (ms), a fresh
/// epoch. Returns 1 when it agrees, 2 when it started a new epoch, or the recorded number
/// (negated) when live nodes use it.
const SHARDS: &str = r"
local cur = redis.call('GET', KEYS[1])
if not cur or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1])
  return 1
end
if redis.call('ZCOUNT', KEYS[2], ARGV[2], '+inf') > 0 then return -tonumber(cur) end
redis.call('SET', KEYS[1], ARGV[1])
if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('SET', KEYS[3], ARGV[3])
  redis.call('SET', KEYS[4], redis.call('GET', KEYS[5]) or '0')
end
return 2
";

/// Checks that this node places logs on as many shards as the deployment's live nodes;
/// returns whether it started a new epoch of the deployment (no node was alive, and the
/// number recorded was another).
async fn agree_on_shards(conn: &mut Conn, keys: &Keys) -> redis::RedisResult<bool> {
    let shards = keys.placement().shards();
    let agreed: i64 = redis::Script::new(SHARDS)
        .key(keys.shards())
        .key(keys.nodes(0))
        .key(keys.epoch(0))
        .key(keys.from(0))
        .key(keys.seq(0))
        .arg(shards)
        .arg(now_ms())
        .arg(fresh_epoch())
        .invoke_async(conn)
        .await?;
    if agreed < 0 {
        return Err(redis::RedisError::from((
            redis::ErrorKind::InvalidClientConfig,
            "the deployment's live nodes use another number of shards",
            format!("{} live, {shards} here", -agreed),
        )));
    }
    Ok(agreed == 2)
}

/// Opens `shard`'s epoch, where it has none: shard 0's is a fresh epoch of the deployment
/// (numbered from 1). Another shard's epoch is where its current run started (positions on
/// it below that are gaps for its logs): 0 for a first run, which it is when the
/// deployment's epoch starts too (`new_run`); otherwise the shard lost its contents and
/// numbers on past every number it gave (see [`numbers_lua`](crate::scripts::numbers_lua)).
/// Returns the epoch and whether this call opened it.
///
/// KEYS: the shard's epoch and sequence. ARGV: a fresh epoch, `0` for shard 0, `1` for a
/// first run.
const OPEN: &str = concat!(
    crate::scripts::numbers_lua!(),
    r"
local e = redis.call('GET', KEYS[1])
if e then return {e, 0} end
if ARGV[2] == '0' or ARGV[3] == '1' then
  local at = redis.call('GET', KEYS[2]) or '0'
  redis.call('SET', KEYS[2], at)
  e = ARGV[2] == '0' and ARGV[1] or at
  redis.call('SET', KEYS[1], e)
  return {e, 1}
end
return {start_again(KEYS[2], KEYS[1]), 1}
"
);

/// Reads `shard`'s epoch, opening it where there is none (see [`OPEN`]); returns it and
/// whether this call opened it.
pub(crate) async fn open_shard(
    conn: &mut Conn,
    keys: &Keys,
    shard: u8,
    new_run: bool,
) -> redis::RedisResult<(u64, bool)> {
    let (epoch, opened): (String, i64) = redis::Script::new(OPEN)
        .key(keys.epoch(shard))
        .key(keys.seq(shard))
        .arg(fresh_epoch())
        .arg(shard)
        .arg(if new_run { "1" } else { "0" })
        .invoke_async(conn)
        .await?;
    let epoch = epoch.parse().map_err(|_| {
        redis::RedisError::from((
            redis::ErrorKind::UnexpectedReturnType,
            "a shard's epoch is not a number",
            epoch,
        ))
    })?;
    Ok((epoch, opened == 1))
}

/// A new epoch: 40 random bits (8 base-36 digits in an id).
pub(crate) fn fresh_epoch() -> u64 {
    random_u64() & ((1 << 40) - 1)
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
