//! Session-aware Server-Sent Events for hyper 1.x and axum, on tokio.
//!
//! One object and one call:
//!
//! 1. [`Server::new`] once, with the hub's settings (`Hub::builder()`): it holds every
//!    session, on tokio's clock, with its timer task running. [`Server::with_store`] does
//!    the same with a [`Store`] shared by several nodes (`sse-redis`).
//! 2. [`Server::handshake`] for each request: it returns what to do with it, as an
//!    [`Outcome`]: serve an event stream (a [`Response`](http::Response) whose body is an
//!    [`EventStream`], with the [`Session`] handle to send to this tab), answer 204 to a
//!    session the server closed (the tab stops), answer a go-away while shutting down, or
//!    leave the request to the application's routing.
//! 3. [`Hub::send_to`], [`Hub::broadcast`] and [`Hub::close`] on [`Server::hub`] from
//!    anywhere: reach one tab by its session id, every tab, or end a tab's session for good.
//!
//! [`Server::serve`] runs hyper's HTTP/1.1 and HTTP/2 server with the protections a server
//! facing the internet needs as defaults (feature `serve`, on by default). With axum, the
//! feature `axum` gives the handshake as an extractor and `sse_hyper::axum::serve` for a
//! router. Resumable sessions and signed ids are set on the [`HubBuilder`]; several nodes on
//! Redis are a store ([`Server::with_store`]).
//!
//! The [`guide`] explains the concepts one at a time: sessions and their close, resume,
//! one id per tab, signed ids, several nodes, HTTP/2 and TLS, coalescing, shutdown, tuning.
//!
//! # Feature flags
//!
#![doc = document_features::document_features!()]
#![deny(missing_docs)]

#[cfg(feature = "axum")]
pub mod axum;
mod body;
mod guard;
pub mod guide;
mod handshake;
mod request_body;
#[cfg(feature = "serve")]
mod serve;
mod server;

pub use body::{BytesStream, EventStream};
pub use guard::{Guarded, MAX_STRAY_BYTES, Watch};
pub use handshake::{Accepted, Outcome};
pub use request_body::{BodyError, BodyLimits, read_body};
#[cfg(feature = "serve")]
pub use serve::{BoxError, PeerAddr, ServeConfig};
pub use server::Server;
/// The server-wide budget for request bodies under way, for [`BodyLimits::budget`].
pub use sse_http1::proto::BodyBudget;
pub use sse_proto::prelude::*;
