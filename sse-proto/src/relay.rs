//! Relay mode: hubs on several nodes share their sessions through a store (Redis, say).
//!
//! In relay mode a hub does not number logged events itself. What the application sends to a
//! session or to everyone, and the sessions it closes, are queued for the relay
//! ([`Hub::drain_relay`](crate::Hub::drain_relay)); the relay gives each event its position in
//! the store's one sequence, logs it, and hands it back to the hub of every node that serves
//! a recipient ([`Hub::deliver`](crate::Hub::deliver)), in sequence order. So a tab reached
//! from any node, reconnecting to any node, sees one order and can resume anywhere. Sends
//! that are worth nothing later (volatile) stay local.
//!
//! The queue is bounded: when the relay falls behind (its store is away), sends fail with
//! [`Error::Unavailable`](crate::Error::Unavailable) rather than grow memory, and the relay
//! may deliver to local connections without a position
//! ([`Hub::deliver_unsequenced`](crate::Hub::deliver_unsequenced)), which the logs record
//! as a gap.

use std::collections::VecDeque;
use std::task::Waker;

use bytes::Buf;

use crate::frame::Frame;
use crate::id::SessionId;

/// Who a relayed event is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Recipient {
    /// One session, on whichever node serves it.
    Session(SessionId),
    /// Every session on every node.
    All,
}

impl Recipient {
    /// Whose log holds an event for this recipient.
    pub(crate) fn target(&self) -> crate::history::Target<'_> {
        match self {
            Recipient::Session(id) => crate::history::Target::Session(id),
            Recipient::All => crate::history::Target::All,
        }
    }
}

/// What a hub in relay mode hands to its relay.
#[derive(Debug, Clone)]
pub enum Relayed {
    /// An event to number, log and deliver.
    Event {
        /// Who it is for.
        to: Recipient,
        /// The encoded event, without an `id:` line.
        frame: Frame,
    },
    /// The application closed this session here: mark its id closed for every node, and end
    /// its connection wherever it is.
    Closed {
        /// The session.
        id: SessionId,
    },
}

/// Settings of relay mode: how much may wait for the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayConfig {
    /// Most items queued for the relay.
    pub max_items: usize,
    /// Most bytes of event frames queued for the relay.
    pub max_bytes: usize,
}

impl Default for RelayConfig {
    /// 65 536 items and 64 MiB.
    fn default() -> Self {
        RelayConfig {
            max_items: 65_536,
            max_bytes: 64 << 20,
        }
    }
}

/// The queue of what waits for the relay.
#[derive(Debug)]
pub(crate) struct Outbound {
    config: RelayConfig,
    queue: VecDeque<Relayed>,
    bytes: usize,
    waker: Option<Waker>,
    /// Whether the hub's [`RelayPort`](crate::RelayPort) was handed out.
    pub(crate) claimed: bool,
}

impl Outbound {
    pub(crate) fn new(config: RelayConfig) -> Outbound {
        Outbound {
            config,
            queue: VecDeque::new(),
            bytes: 0,
            waker: None,
            claimed: false,
        }
    }

    /// Queues `item`; returns the relay's task to wake, or `Err` when the queue is full
    /// (a close is queued whatever the bounds: it carries no payload and must not be lost).
    pub(crate) fn push(&mut self, item: Relayed) -> Result<Option<Waker>, ()> {
        let len = match &item {
            Relayed::Event { frame, .. } => frame.remaining(),
            Relayed::Closed { .. } => 0,
        };
        let full = self.queue.len() >= self.config.max_items
            || self.bytes.saturating_add(len) > self.config.max_bytes;
        if full && len > 0 {
            return Err(());
        }
        self.bytes += len;
        self.queue.push_back(item);
        Ok(self.waker.take())
    }

    /// Moves everything queued to `out`; registers `waker` when there was nothing.
    pub(crate) fn drain(&mut self, out: &mut Vec<Relayed>, waker: &Waker) -> usize {
        let n = self.queue.len();
        if n == 0 {
            match &self.waker {
                Some(w) if w.will_wake(waker) => {}
                _ => self.waker = Some(waker.clone()),
            }
            return 0;
        }
        out.extend(self.queue.drain(..));
        self.bytes = 0;
        n
    }

    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }
}
