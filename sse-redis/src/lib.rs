//! Several sse-rs nodes on one Redis: any node reaches, closes and resumes any session.
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
//! - **presence**: which sessions are attached (`GET /sessions` on any node lists them all).
//!
//! The core stays sans-IO: the hub runs in relay mode and asks for nothing it would have to
//! wait for; this crate performs the lookups of the handshake ([`RedisEngine::answer`]) and
//! the relay's work ([`RedisEngine::run`]) asynchronously, never under a hub lock.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use sse_proto::{Decision, Hub, ResumeConfig};
//! use sse_redis::{RedisConfig, RedisEngine};
//!
//! let engine = RedisEngine::connect(RedisConfig::new("redis://127.0.0.1:6379")).await?;
//! let resume = ResumeConfig::new(Duration::from_secs(120));
//! let hub = engine.hub_builder(Hub::builder(), Some(resume)).build();
//! tokio::spawn(engine.run(&hub));
//!
//! // For each event-stream request (`req`, an `sse_proto::Request`):
//! # let req = sse_proto::Request::new(b"GET", b"/events", sse_proto::HttpVersion::Http11);
//! if let Ok(offer) = hub.offer(&req) {
//!     let answers = engine.answer(&hub, &offer).await;
//!     match hub.accept(offer, answers, std::time::Instant::now()) {
//!         Decision::Accept(accepted) => { /* stream it */ }
//!         _ => { /* 204, go away */ }
//!     }
//! }
//! # Ok(()) }
//! ```
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
//! A command that timed out may still be applied: a frozen Redis applies it when it wakes.
//! It is applied once all the same. Every send and broadcast carries a message id; a retry
//! finds an earlier attempt among the newest 1 000 entries of its stream, and what this
//! node delivered itself while Redis was away (the last 4 096 messages) only moves its
//! connections' positions on when Redis numbers it
//! ([`Hub::deliver_known`](sse_proto::Hub::deliver_known)).
//!
//! # Feature flags
//!
#![doc = document_features::document_features!()]

mod commands;
mod driver;
mod engine;
mod once;
mod reply;
mod scripts;

pub use engine::{RedisConfig, RedisEngine};
