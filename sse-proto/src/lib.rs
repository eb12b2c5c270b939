//! The sans-IO core of sse-rs: Server-Sent Events with session semantics.
//!
//! Nothing here does I/O, spawns tasks or draws randomness of its own: every input (a request
//! head, bytes, the current [`Instant`](std::time::Instant)) is passed in and every output (a
//! decision, a frame to write, the next deadline) is returned. The adapters `sse-hyper`,
//! `sse-tokio` and `sse-async-std` (through `sse-http1`) bind it to a runtime, and
//! `sse-redis` shares a hub's sessions between nodes.
//!
//! # Where time enters
//!
//! Every method that depends on time takes `now`, except three that the application calls
//! where it has no clock at hand. For those the [`Hub`] reads the clock it was given
//! ([`HubBuilder::clock`]; the adapters give their runtime's, and the default is the system's
//! monotonic clock):
//!
//! - stamping a closed id in [`Session::close`] and [`Hub::close`] (or pass it:
//!   [`Session::close_at`], [`Hub::close_at`]);
//! - dating a shutdown's deadline in [`Hub::shutdown`] (or [`Hub::shutdown_at`]);
//! - dating a session's detachment in resume mode, when its writer drops the [`Outlet`] or
//!   the connection is cut off for being slow.
//!
//! The same goes for randomness: fresh ids and the log's epoch come from the
//! [`IdGenerator`] the hub was given.
//!
//! # Feature flags
//!
#![doc = document_features::document_features!()]

/// Emits a `tracing` event when the feature is on; nothing otherwise.
macro_rules! trace {
    ($level:ident, $($arg:tt)+) => {
        #[cfg(feature = "tracing")]
        tracing::$level!(target: "sse", $($arg)+);
    };
}

mod closed;
mod connection;
mod decode;
mod error;
mod event;
mod frame;
mod handshake;
mod history;
#[cfg(feature = "http1")]
pub mod http1;
mod hub;
mod id;
mod lifecycle;
mod position;
mod relay;
mod request;
#[cfg(feature = "signing")]
pub mod signing;
#[cfg(feature = "stream")]
mod stream;

pub use closed::{ClosedPolicy, ClosedSet, MemoryClosedSet};
pub use connection::{Connection, ConnectionConfig, EndReason};
pub use decode::{Decoder, Item, Limits, MessageEvent};
pub use error::{
    DecodeError, Error, Field, FieldError, FieldReason, HeadError, KeyError, SignatureError,
};
pub use event::{Data, Event, EventName, REFERENCE_THRESHOLD};
pub use frame::{Batch, Frame};
pub use handshake::{Answers, Claim, Handshake, Lookup, NotEventStream, Offer};
pub use history::{History, LogBounds, LogUsage, Logged, MemoryHistory, Target};
pub use hub::{
    Accepted, Cutoff, Decision, Ended, Hub, HubBuilder, HubStats, Outlet, ResumeConfig, Session,
    WeakHub,
};
pub use id::{
    DEFAULT_MAX_ID_LEN, IdGenerator, IdRejection, IdSource, IdVerdict, RejectedId, SessionId,
    UuidV4,
};
pub use lifecycle::{Continuity, GapReason, SessionEvent};
pub use position::{Claimed, MAX_POSITION_LEN, POSITION_SEPARATOR, Position};
pub use relay::{Recipient, RelayConfig, Relayed};
pub use request::{HttpVersion, Principal, Request, ResponseHead};
#[cfg(feature = "signing")]
pub use signing::{Key, KeyRing, MAX_SIGNED_ID_LEN, Verified};
#[cfg(feature = "stream")]
pub use stream::{MessageStream, ReadError};
