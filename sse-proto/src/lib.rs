//! The sans-IO core of sse-rs: Server-Sent Events with session semantics.
//!
//! Nothing here does I/O, spawns tasks or draws randomness of its own: every input (a request
//! head, bytes, the current [`Instant`](std::time::Instant)) is passed in and every output (a
//! decision, a frame to write, the next deadline) is returned. The adapters `sse-hyper`,
//! `sse-tokio` and `sse-async-std` (through `sse-http1`) bind it to a runtime, and
//! `sse-redis` shares a hub's sessions between nodes.
//!
//! # Where time and randomness enter
//!
//! The core reads no clock of its own. Every method of the sans-IO types that depends on
//! time takes `now`; the [`Hub`], whose methods the application calls where it has no time
//! at hand, reads the [`Clock`] given to [`HubBuilder::build`] (the adapters give their
//! runtime's; a test gives a [`ManualClock`]). It does so in exactly these places:
//!
//! - stamping a closed id in [`Session::close`] and [`Hub::close`];
//! - dating a shutdown's deadline in [`Hub::shutdown`];
//! - dating a session's detachment in resume mode, when its writer drops the [`Outlet`] or
//!   the connection is cut off for being slow;
//! - dating a write window when a send opens one, and a writer's last write
//!   ([`HubBuilder::write_window`]);
//! - driving the timers in [`WeakHub::drive_timers`].
//!
//! Randomness enters through the [`IdGenerator`] the hub was given (by default [`UuidV4`],
//! the `uuid` crate's generator): fresh session ids, and the in-memory log's epoch.
//!
//! # Feature flags
//!
#![doc = document_features::document_features!()]
#![deny(missing_docs)]

/// Emits a `tracing` event when the feature is on; nothing otherwise.
macro_rules! trace {
    ($level:ident, $($arg:tt)+) => {
        #[cfg(feature = "tracing")]
        tracing::$level!(target: "sse", $($arg)+);
    };
}

mod clock;
mod closed;
mod connection;
mod cursor;
mod decode;
mod error;
mod event;
mod frame;
mod handshake;
mod history;
mod hub;
mod id;
mod lifecycle;
mod placement;
mod position;
mod relay;
mod request;
#[cfg(feature = "signing")]
pub mod signing;
mod store;
#[cfg(feature = "stream")]
mod stream;
mod topic;

pub use clock::{Clock, ManualClock};
pub use closed::{ClosedPolicy, ClosedSet, MemoryClosedSet};
pub use connection::{ConnectionConfig, EndReason};
pub use cursor::{
    CURSOR_COMPONENT_LEN, Cursor, CursorFull, MAX_CURSOR_SHARDS, MAX_SHARD_SEQ,
    MAX_SHARD_SEQ_DIGITS, MAX_SHARDS,
};
pub use decode::{Decoder, Item, Limits, MessageEvent};
pub use error::{DecodeError, Error, Field, FieldError, FieldReason, KeyError, SignatureError};
pub use event::{Data, Event, EventName, REFERENCE_THRESHOLD};
pub use frame::{Batch, Frame};
pub use handshake::{
    Answers, BadRequest, Claim, Fetched, HandshakeConfig, Lookup, NotEventStream, Offer,
};
pub use history::{History, LogBounds, LogUsage, Logged, MemoryHistory, Scope, Target};
pub use hub::{
    Accepted, Cutoff, Decision, Ended, Hub, HubBuilder, HubSettings, HubStats, Outlet, RelayPort,
    ResumeConfig, Session, Topic, User, WeakHub, WriteWindow,
};
pub use id::{
    DEFAULT_MAX_ID_LEN, IdGenerator, IdRejection, IdSource, IdVerdict, RejectedId, SessionId,
    UuidV4,
};
pub use lifecycle::{Continuity, GapReason, SessionEvent};
pub use placement::Placement;
pub use position::{Claimed, MAX_POSITION_LEN, POSITION_SEPARATOR, Position};
pub use relay::{Recipient, RelayConfig, Relayed};
pub use request::{HttpVersion, Principal, Request, ResponseHead};
#[cfg(feature = "signing")]
pub use signing::{Key, KeyRing, MAX_SIGNED_ID_LEN, Verified};
pub use store::{BoxFuture, Store};
#[cfg(feature = "stream")]
pub use stream::{MessageStream, ReadError};
pub use topic::{MAX_TOPIC_LEN, Membership, TopicError, TopicName};

/// What an application names, in one list: the adapters (`sse-hyper`, `sse-tokio`,
/// `sse-async-std`) re-export it at their root, so one `use sse_hyper::…` is enough.
///
/// The machinery an adapter drives (the outlet, the handshake's decision, relay mode's
/// port) is not here: an application never names it.
pub mod prelude {
    /// The decoder's limits, for `MessageStream::with_limits`.
    pub use crate::Limits;
    #[cfg(feature = "signing")]
    pub use crate::signing::{Key, KeyRing};
    #[cfg(feature = "stream")]
    pub use crate::stream::{MessageStream, ReadError};
    pub use crate::{
        Batch, BoxFuture, Clock, ClosedPolicy, ClosedSet, ConnectionConfig, Continuity,
        DEFAULT_MAX_ID_LEN, Data, EndReason, Ended, Error, Event, EventName, Frame, GapReason,
        HandshakeConfig, Hub, HubBuilder, HubSettings, HubStats, IdGenerator, IdRejection,
        IdSource, IdVerdict, LogBounds, ManualClock, MemoryClosedSet, MessageEvent, NotEventStream,
        Principal, RejectedId, ResumeConfig, Session, SessionEvent, SessionId, Store, Topic,
        TopicError, TopicName, User, UuidV4, WriteWindow, event_name,
    };
}
