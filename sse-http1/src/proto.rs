//! HTTP/1.1 without I/O: read requests with their bodies and deadlines, write response
//! heads and chunked framing. Bytes and times in, values out; no I/O, no clock. The driver
//! of this crate performs it on sockets; sse-hyper shares its limits on bodies.
//!
//! - [`RequestReader`] turns a connection's bytes into requests (the header rules of RFC
//!   9112 and 9110 decide the framing), with size limits ([`ReaderLimits`]) and deadlines
//!   ([`ReaderTimeouts`]); a refusal is a [`HeadError`] with its status.
//! - [`HeadSlots`] caps the connections that hold an unfinished head, server-wide, and
//!   [`BodyBudget`] the bytes of bodies still arriving.
//!
//! Writing the answers (status lines, chunked framing, a stream's pump) is the driver's own
//! business and stays inside this crate.

mod body_budget;
mod chunked;
mod error;
mod head;
mod head_slots;
mod pump;
mod reader;
mod response;
#[cfg(test)]
mod tests;

pub use body_budget::{BodyBudget, BodyGrant, DEFAULT_BODY_BUDGET};
pub use chunked::{MAX_CHUNK_EXTENSIONS, MAX_CHUNK_LINE};
pub use error::HeadError;
pub use head::{MAX_HEADERS, wants_close};
pub use head_slots::{HeadSlot, HeadSlots};
pub(crate) use pump::{Next, Pump};
pub use reader::{ReaderLimits, ReaderTimeouts, RequestReader};
pub(crate) use response::{
    chunk, last_chunk, no_content, stream_head, stream_is_chunked, write_response_to,
};
