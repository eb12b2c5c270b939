//! Incremental WHATWG event-stream decoder (stub: being written).

use crate::error::DecodeError;

/// Size limits of a [`Decoder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest line accepted, in bytes, not counting its line break.
    pub max_line_len: usize,
    /// Largest data buffer of one event, in bytes.
    pub max_event_size: usize,
}

/// One dispatched event, as `EventSource` would deliver it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MessageEvent {
    /// The event type (`"message"` when the stream gave none).
    pub event: String,
    /// The data, lines joined with `\n`.
    pub data: String,
    /// The last event id in force when the event was dispatched.
    pub last_event_id: String,
}

/// What the decoder hands out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// An event was dispatched.
    Event(MessageEvent),
    /// A valid `retry:` field set the reconnection time, in milliseconds.
    Retry(u64),
}

/// Incremental event-stream decoder.
#[derive(Debug, Default)]
pub struct Decoder {}

impl Decoder {
    /// A decoder with default limits.
    pub fn new() -> Self {
        Decoder {}
    }
    /// Feeds bytes.
    pub fn feed(&mut self, _chunk: &[u8]) -> Result<(), DecodeError> {
        Ok(())
    }
    /// Next item.
    pub fn poll_item(&mut self) -> Option<Item> {
        None
    }
}
