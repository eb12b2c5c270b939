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
use crate::history::Target;
use crate::id::SessionId;
use crate::request::Principal;
use crate::topic::TopicName;

/// Who a relayed event is for.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Recipient {
    /// One session, on whichever node serves it.
    Session(SessionId),
    /// Every session on every node.
    All,
    /// The members of a topic, on every node that has one.
    Topic(TopicName),
    /// Every session of a user, on every node that has one.
    User(Principal),
}

impl Recipient {
    /// Whose log holds an event for this recipient.
    pub(crate) fn target(&self) -> Target<'_> {
        match self {
            Recipient::Session(id) => Target::Session(id),
            Recipient::All => Target::All,
            Recipient::Topic(t) => Target::Topic(t),
            Recipient::User(u) => Target::User(u),
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
    /// The session joins the topic: the relay numbers the join, records it for every node,
    /// and hands it back to the node that serves the session
    /// ([`RelayPort::joined`](crate::RelayPort::joined)), which applies it in order.
    Join {
        /// The session.
        id: SessionId,
        /// The topic.
        topic: TopicName,
    },
    /// The session leaves the topic (handed back with
    /// [`RelayPort::left`](crate::RelayPort::left)). With `keep`, what the topic published
    /// while the session was a member stays replayable; without (the topic rule revoked it),
    /// it is withheld.
    Leave {
        /// The session.
        id: SessionId,
        /// The topic.
        topic: TopicName,
        /// Whether the stretch of membership stays replayable.
        keep: bool,
    },
    /// The application closed every session of this user: close them on every node.
    CloseUser {
        /// The user.
        user: Principal,
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
    /// (a close is queued whatever the bounds: it carries no payload and must not be lost;
    /// the application closes at most each session once).
    pub(crate) fn push(&mut self, item: Relayed) -> Result<Option<Waker>, ()> {
        let (len, must) = match &item {
            Relayed::Event { frame, .. } => (frame.remaining(), false),
            Relayed::Join { .. } | Relayed::Leave { .. } => (0, false),
            Relayed::Closed { .. } | Relayed::CloseUser { .. } => (0, true),
        };
        let full = self.queue.len() >= self.config.max_items
            || self.bytes.saturating_add(len) > self.config.max_bytes;
        if full && !must {
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
