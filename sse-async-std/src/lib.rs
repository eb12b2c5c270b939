//! Session-aware Server-Sent Events on async-std (and smol), for servers of your own.
//!
//! Works over any `futures_io::AsyncRead + AsyncWrite` (an async-std or smol `TcpStream`, a
//! TLS stream, a Unix socket). Keep-alive runs on `async-io` timers, the reactor under both
//! async-std and smol, so the same code serves on either executor.
//!
//! - If your server has parsed the request already, call [`handshake`] on it and, on
//!   [`Outcome::Accept`], [`Accepted::run`] the stream on the connection.
//! - If not, [`serve_connection`] reads HTTP/1.1 requests (bounded head, body and read time;
//!   a bad request gets 4xx, never a panic) and hands each to your handler, which answers with
//!   a response or an accepted stream; [`serve`] runs it for every connection of an async-std
//!   listener (on smol, spawn [`serve_connection`] for each accepted stream yourself).
//!
//! ```no_run
//! use bytes::Bytes;
//! use sse_async_std::{Hub, Outcome, Reply};
//!
//! # async fn run() -> std::io::Result<()> {
//! let hub = sse_async_std::hub_builder().build();
//! let listener = async_std::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let handler_hub = hub.clone();
//! sse_async_std::serve(listener, Default::default(), move |req| {
//!     let hub = handler_hub.clone();
//!     async move {
//!         match sse_async_std::handshake(&hub, &req) {
//!             Outcome::Accept(accepted) => {
//!                 let _ = accepted.session.emit("connect", "");
//!                 Reply::Stream(accepted)
//!             }
//!             Outcome::NoContent(res) | Outcome::GoAway(res) => Reply::Response(res),
//!             Outcome::NotEventStream(_) => Reply::Response(http::Response::new(Bytes::from("hello"))),
//!         }
//!     }
//! })
//! .await
//! # }
//! ```

mod handshake;
mod serve;
mod stream;

pub use handshake::{Accepted, Outcome, handshake, hub_builder};
pub use serve::{Reply, ServeConfig, serve, serve_connection};
pub use sse_proto::http1::ReaderLimits;
pub use sse_proto::{
    Batch, ClosedPolicy, ClosedSet, ConnectionConfig, Continuity, DEFAULT_MAX_ID_LEN, Data,
    EndReason, Ended, Error, Event, Frame, GapReason, Handshake, HeadError, Hub, HubBuilder,
    HubStats, IdGenerator, IdRejection, IdSource, LogBounds, MemoryClosedSet, NotEventStream,
    RejectedId, ResumeConfig, Session, SessionEvent, SessionId, UuidV4,
};
