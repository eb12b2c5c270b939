//! Session-aware Server-Sent Events for hyper 1.x and axum, on tokio.
//!
//! Three calls make a server:
//!
//! 1. [`hub_builder`]`().build()` once: the [`Hub`] holds every session.
//! 2. [`handshake`]`(&hub, &req)` for each request: it returns what to do with it, as an
//!    [`Outcome`]: serve an event stream (a [`Response`](http::Response) whose body is an
//!    [`EventStream`], with the [`Session`] handle to send to this tab), answer 204 to a
//!    session the server closed (the tab stops), answer a go-away while shutting down, or
//!    leave the request to the application's routing.
//! 3. [`Hub::send_to`], [`Hub::broadcast`] and [`Hub::close`] from anywhere: reach one tab by
//!    its session id, every tab, or end a tab's session for good.
//!
//! ```no_run
//! use std::convert::Infallible;
//! use http::{Request, Response};
//! use sse_hyper::{Event, EventStream, Hub, Outcome};
//!
//! async fn handle(hub: Hub, req: Request<hyper::body::Incoming>) -> Result<Response<EventStream>, Infallible> {
//!     match sse_hyper::handshake(&hub, &req) {
//!         Outcome::Accept(accepted) => {
//!             accepted.session.emit("connect", "").ok();
//!             Ok(accepted.response)
//!         }
//!         Outcome::NoContent(response) | Outcome::GoAway(response) => Ok(response),
//!         Outcome::NotEventStream(_) => {
//!             let mut res = Response::new(EventStream::empty());
//!             *res.status_mut() = http::StatusCode::NOT_ACCEPTABLE;
//!             Ok(res)
//!         }
//!     }
//! }
//!
//! fn elsewhere(hub: &Hub, tab: &str) -> Result<(), sse_hyper::Error> {
//!     hub.send_to(tab, &Event::named(sse_hyper::event_name!("note")).data("for one tab"))?;
//!     hub.broadcast(&Event::new().data("for every tab"));
//!     hub.close(tab)?;
//!     Ok(())
//! }
//! ```
//!
//! With axum, the feature `axum` gives the handshake as an extractor and a `serve` that
//! guards against readers that stop reading (the module `sse_hyper::axum`). Serve
//! with [`Watch`] in hyper itself, for the same guard. Resumable sessions, signed ids and
//! several nodes on Redis (`sse-redis`) are set on the [`HubBuilder`].
//!
//! # Feature flags
//!
#![doc = document_features::document_features!()]

#[cfg(feature = "axum")]
pub mod axum;
mod body;
mod guard;
mod handshake;
mod request_body;

pub use body::{BytesStream, EventStream};
pub use guard::{Guarded, MAX_STRAY_BYTES, Watch};
pub use handshake::{Accepted, Outcome, handshake, handshake_answered, hub_builder, offer};
pub use request_body::{BodyError, BodyLimits, read_body};
pub use sse_proto::Principal;
/// The server-wide budget for request bodies under way, for [`BodyLimits::budget`].
pub use sse_proto::http1::BodyBudget;
pub use sse_proto::{
    Answers, Batch, ConnectionConfig, Continuity, Cutoff, DEFAULT_MAX_ID_LEN, Data, EndReason,
    Ended, Error, Event, Frame, GapReason, Handshake, Hub, HubBuilder, HubStats, IdGenerator,
    IdRejection, IdSource, LogBounds, NotEventStream, Offer, RejectedId, ResumeConfig, Session,
    SessionEvent, SessionId, UuidV4,
};
/// The closed-id store and its policy, for [`HubBuilder::closed_set`].
pub use sse_proto::{ClosedPolicy, ClosedSet, MemoryClosedSet};
/// An event name checked at compile time, and the type of checked names.
pub use sse_proto::{EventName, event_name};
/// Signed session ids (feature `signing`): the key ring for [`HubBuilder::signing`], and the
/// logged-in user an id is bound to (put a [`Principal`] in the request's extensions before
/// the handshake).
#[cfg(feature = "signing")]
pub use sse_proto::{Key, KeyRing};
/// Reading an event stream (a Rust client): [`MessageStream`] decodes any stream of byte
/// chunks into [`MessageEvent`]s and keeps the last event id and `retry:` for reconnecting.
#[cfg(feature = "stream")]
pub use sse_proto::{MessageEvent, MessageStream, ReadError};
