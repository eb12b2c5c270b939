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
//! replica is promoted. Every key a script touches is declared to it. One deployment is one
//! slot, so a cluster brings it failover and room beside other data, not more throughput
//! than one master gives.
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
mod lineage;
mod once;
mod presence;
mod reply;
mod scripts;

pub use engine::{RedisConfig, RedisEngine};
pub use groups::{Members, PresenceEvent, SessionInfo};
