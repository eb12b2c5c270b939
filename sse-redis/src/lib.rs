//! Several sse-rs nodes on one Redis (a server or a Redis Cluster): any node reaches,
//! closes and resumes any session.
//!
//! Behind a load balancer a tab's reconnect lands on any node. With a [`RedisEngine`] every
//! node's hub shares, through Redis:
//!
//! - **the sequence and the logs**: every event sent to a session or to all is numbered by
//!   one counter and logged (a stream per session, one for broadcasts), so a reconnect to any
//!   node replays exactly what the tab missed, or reports a gap;
//! - **delivery**: a send to a session is handed to the node that serves it, a broadcast to
//!   every node, each node reading its deliveries and the broadcasts in one ordered stream;
//! - **closed ids**: a session closed on one node gets 204 on every node;
//! - **presence**: which sessions are attached (`GET /sessions` on any node lists them all);
//! - **topics and users**: a publish to a topic, a send to a user and a user's close reach the
//!   nodes that serve a member, and only those, in the one order; a session's memberships
//!   and user go with it to whichever node it resumes on; [`RedisEngine::members`] and
//!   [`RedisEngine::observe_presence`] tell who is in a topic, across nodes.
//!
//! The core stays sans-IO: the engine is a [`Store`](sse_proto::Store) that an adapter's
//! server holds beside its hub, which runs in relay mode and asks for nothing it would have
//! to wait for; the engine answers the handshake's lookups and does the relay's work
//! asynchronously, never under a hub lock. Give it to the server, and the rest is the same
//! as on one node:
//!
//! ```text
//! let engine = RedisEngine::connect(RedisConfig::new("redis://127.0.0.1:6379")).await?;
//! let server = sse_hyper::Server::with_store(Hub::builder().resume(resume), engine.clone());
//! ```
//!
//! (`sse_tokio::Server::with_store` and `sse_async_std::Server::with_store` alike; the
//! adapters' docs have the example that compiles.) Then `server.handshake(&req).await` for
//! each request, as on one node, and a send through `server.hub()` reaches the tab on
//! whichever node serves it; the engine's own [`RedisEngine::send_to`],
//! [`RedisEngine::broadcast`], [`RedisEngine::close`] and [`RedisEngine::sessions`] say what
//! Redis answered.
//!
//! # Redis Cluster
//!
//! [`RedisConfig::url`] may name a Redis Cluster: `redis+cluster://` and any of its nodes,
//! comma-separated. Every key is written `{<prefix>}<name>`, the prefix a hash tag, so all of
//! a deployment's keys hash to one slot: each script runs whole, with no `CROSSSLOT` error,
//! on the master that owns it, and the client follows the slot when it migrates or a
//! replica is promoted. Every key a script touches is declared to it. One slot brings a
//! cluster's failover and room beside other data, not more throughput than one master
//! gives: for that, shard the deployment.
//!
//! # Several shards
//!
//! With [`RedisConfig::shards`] above 1, the deployment keeps its keys on that many shards,
//! shard `k` under the hash tag `{<prefix>#<k>}` (shard 0 keeps `{<prefix>}`), each with a
//! sequence, inboxes and a presence stream of its own; on a Redis Cluster the shards'
//! slots spread over the masters. Broadcasts are on shard 0; a session's keys, a topic's
//! and a user's are on the shard its name hashes to, as
//! [`Placement`](sse_proto::Placement) says, and the hub's log is placed alike. A tab's
//! event id then carries a [`Cursor`](sse_proto::Cursor): one number for each shard it
//! reads, so a resume on any node is exact on each of them.
//!
//! - **Where the shards are:** on a Redis Cluster, each shard's slot on the master that owns
//!   it; or, with a `redis+shards://host:port,host:port,…` URL, on independent servers,
//!   shard `k` on the `k mod n`th of `n` (client-side sharding, each server with its own
//!   replicas if any). A node that cannot reach one server keeps serving what the others
//!   carry, and catches up with what that one was acknowledged once it can.
//! - **Order** is kept per log: a session's own sends, each topic, each user, the
//!   broadcasts. Events of two logs on two shards may reach a tab, live or replayed, in
//!   either order.
//! - **Reading:** each node reads each shard on a connection of its own.
//! - **Each script touches one shard.** What touches several is done in steps, each atomic on
//!   its shard and safe to run again: a claim runs on the session's home shard first
//!   (closed, owner, its own log, the shards it has memberships on), then on each other shard
//!   it reads, moving what routes to the session there to this node before reading the
//!   logs; a join off the home shard is listed there first, so every later claim visits
//!   it; a session's end cleans up the other shards first, the home shard last.
//! - **A tab reads at most** as many shards as its id leaves room for (six with the
//!   default ids, four with signed ones): a join past that fails with
//!   [`Error::TooManyShards`](sse_proto::Error::TooManyShards), and topics asked for at
//!   accept that do not fit are not granted. Name related topics so that they hash
//!   alike if a tab must be in many.
//! - **A shard that lost its contents** (restarted empty, or a replica promoted short of
//!   entries) is a gap for the logs on it only: it numbers on past every number it gave,
//!   and a tab from before comes back to a gap for its topics there (the rest replays), or
//!   a gap of the session where its own log or its user's is there. Shard 0 carries the
//!   deployment's epoch: losing it is a gap for every tab, as with one Redis.
//! - **Every node of a deployment says the same number of shards.** A node that says
//!   another while a node with the recorded number is alive does not connect; with none
//!   alive, it records its number and starts a new epoch (positions of the old one are
//!   gaps: their numbers name other shards' events).
//!
//! When the master that serves the slot dies, its replica is promoted and the nodes carry
//! on: commands fail with [`Error::Unavailable`](sse_proto::Error::Unavailable) until the
//! cluster has failed over, the relay's queue waits, and the reader goes on from the last
//! entry it saw. Redis replicates asynchronously, though: writes the dead master had not yet
//! passed to its replica are lost (acknowledged too, unless [`RedisConfig::replicas`] has
//! each write wait for replicas), and their numbers are given again.
//! The nodes notice (the sequence is below what one read, or the entry it read last is gone
//! or another), start a new epoch and end their streams: every tab comes back to a gap it
//! can report, never to a wrong replay or a silent loss.
//!
//! # When Redis is away
//!
//! A node keeps serving its own connections: what is sent to them is delivered at once,
//! without a position, and their logs record a gap (a later resume from before it is a gap,
//! never a silent loss). Sends to sessions on other nodes fail with
//! [`Error::Unavailable`](sse_proto::Error::Unavailable), and new streams are decided from the
//! hub's own stores. Everything the relay could not send waits, bounded, and goes out once
//! Redis is back; the reader goes on from the last entries it saw, so nothing Redis
//! acknowledged is lost. A Redis restarted empty starts a new epoch: positions of the old one
//! are gaps.
//!
//! A connection that dies silently (a partition whose close never arrives) is given up
//! after the command timeout, the reader's after its block time and that timeout, and a new
//! one is made: a node cut off from Redis catches up once the network heals.
//!
//! A command that timed out may still be applied: a frozen Redis applies it when it wakes.
//! It is applied once all the same. Every send and broadcast carries a message id; a retry
//! finds an earlier attempt among the newest 1 000 entries of its stream, and what this
//! node delivered itself while Redis was away (the last 4 096 messages) only moves its
//! connections' positions on when Redis numbers it
//! ([`RelayPort::deliver_known`](sse_proto::RelayPort::deliver_known)).
//!
//! # Feature flags
//!
#![doc = document_features::document_features!()]
#![deny(missing_docs)]

mod claim;
mod commands;
mod conn;
mod driver;
mod engine;
mod fetch;
mod groups;
mod keys;
mod late;
mod lineage;
mod once;
mod presence;
mod reply;
mod scripts;

pub use engine::{RedisConfig, RedisEngine};
pub use groups::{Members, PresenceEvent, SessionInfo};
