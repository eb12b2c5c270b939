//! HTTP/1.1 for the raw-socket adapters (feature `http1`): read requests with their bodies
//! and deadlines, write response heads and chunked framing. Bytes and times in, values out;
//! no I/O, no clock.
//!
//! - [`RequestReader`] turns a connection's bytes into requests (the header rules of
//!   [`check_head`] decide the framing), with size limits ([`ReaderLimits`]) and deadlines
//!   ([`ReaderTimeouts`]).
//! - [`HeadSlots`] caps the connections that hold an unfinished head, server-wide, and
//!   [`BodyBudget`] the bytes of bodies still arriving.
//! - [`write_response_to`], [`stream_head`], [`chunk`] and [`Pump`] write the answers.

mod body_budget;
mod chunked;
mod head;
mod head_slots;
mod pump;
mod reader;
mod response;
#[cfg(test)]
mod tests;

pub use body_budget::{BodyBudget, BodyGrant, DEFAULT_BODY_BUDGET};
pub use chunked::{MAX_CHUNK_EXTENSIONS, MAX_CHUNK_LINE};
pub use head::{
    BodyFraming, DEFAULT_MAX_HEAD, MAX_HEADERS, body_framing, body_length, check_head, check_host,
    content_length, expects_continue, parse_request, wants_close,
};
pub use head_slots::{HeadSlot, HeadSlots};
pub use pump::{Next, Pump};
pub use reader::{Interim, ReaderLimits, ReaderTimeouts, RequestReader};
pub use response::{
    LAST_CHUNK, body_allowed, chunk, last_chunk, no_content, stream_head, stream_is_chunked,
    write_response, write_response_to, write_status_and_headers,
};
