//! Session-aware Server-Sent Events for hyper 1.x and axum, on tokio.
//!
//! [`handshake`] looks at a request and returns what to do with it: serve an event stream
//! (a [`Response`](http::Response) whose body is an [`EventStream`], plus the [`Session`]
//! handle to send with), answer 204 to a session the server closed, or leave it to the
//! application's routing. Sessions are reached by id or all at once through the [`Hub`].
//!
//! ```no_run
//! use std::convert::Infallible;
//! use http::{Request, Response};
//! use sse_hyper::{Hub, Outcome, EventStream};
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
//! ```

#[cfg(feature = "axum")]
pub mod axum;
mod body;
mod guard;
mod handshake;

pub use body::{BytesStream, EventStream};
pub use guard::{Guarded, MAX_STRAY_BYTES, Watch};
pub use handshake::{Accepted, Outcome, handshake, handshake_answered, hub_builder, offer};
pub use sse_proto::{
    Answers, Batch, ConnectionConfig, Continuity, Cutoff, DEFAULT_MAX_ID_LEN, Data, EndReason,
    Ended, Error, Event, Frame, GapReason, Handshake, Hub, HubBuilder, HubStats, IdGenerator,
    IdRejection, IdSource, LogBounds, NotEventStream, Offer, RejectedId, ResumeConfig, Session,
    SessionEvent, SessionId, UuidV4,
};
/// The closed-id store and its policy, for [`HubBuilder::closed_set`].
pub use sse_proto::{ClosedPolicy, ClosedSet, MemoryClosedSet};
/// Reading an event stream (a Rust client): [`MessageStream`] decodes any stream of byte
/// chunks into [`MessageEvent`]s and keeps the last event id and `retry:` for reconnecting.
#[cfg(feature = "stream")]
pub use sse_proto::{MessageEvent, MessageStream, ReadError};
