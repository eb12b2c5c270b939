//! Each send and broadcast delivered once, through a Redis that may answer late.
//!
//! A command that timed out is not known to have failed: a Redis that was frozen (a
//! stopped process, a stalled disk) applies it when it wakes. Two things would then be
//! delivered twice:
//!
//! - a send or broadcast this node delivered to its own connections while Redis was away
//!   (without a position), which its reader later reads back numbered;
//! - a send or broadcast tried again, once for each attempt that reaches Redis.
//!
//! So each carries a message id (field `m` of its entries). A retry first looks for an
//! earlier attempt among the newest entries of the stream it goes to (and leaves a mark,
//! `<p>done:<mid>`, that an earlier attempt applied after it finds). The reader, for a
//! message this node delivered itself, only moves its connections' positions on
//! ([`RelayPort::deliver_known`](sse_proto::RelayPort::deliver_known)).
//!
//! Both are bounded: a retry looks through the newest 1 000 entries, and this node
//! remembers the last [`MAX_DELIVERED_HERE`] messages it delivered without Redis.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Most message ids remembered as delivered here without Redis; older ones are forgotten
/// (and would be delivered again if Redis applied them later still).
pub(crate) const MAX_DELIVERED_HERE: usize = 4096;

/// How long the mark of a message numbered by a retry is kept.
pub(crate) const DONE_TTL: Duration = Duration::from_secs(600);

/// Message ids, unique across nodes and restarts: a random prefix per engine and a counter.
pub(crate) struct MessageIds {
    prefix: u64,
    next: AtomicU64,
}

impl MessageIds {
    pub(crate) fn new(prefix: u64) -> MessageIds {
        MessageIds {
            prefix,
            next: AtomicU64::new(0),
        }
    }

    /// A first attempt at a new message.
    pub(crate) fn attempt(&self) -> Attempt {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        Attempt {
            mid: format!("{:x}.{n:x}", self.prefix),
            retry: false,
        }
    }
}

/// One attempt at sending a message to Redis.
#[derive(Debug, Clone)]
pub(crate) struct Attempt {
    pub(crate) mid: String,
    /// An earlier attempt timed out, so Redis may have applied it (or may still).
    pub(crate) retry: bool,
}

impl Attempt {
    /// The next attempt at the same message.
    pub(crate) fn again(mut self) -> Attempt {
        self.retry = true;
        self
    }
}

/// The messages this node delivered to its own connections while Redis was away, newest
/// last, at most [`MAX_DELIVERED_HERE`].
#[derive(Default)]
pub(crate) struct DeliveredHere {
    order: VecDeque<String>,
    ids: HashSet<String>,
}

impl DeliveredHere {
    pub(crate) fn insert(&mut self, mid: &str) {
        if !self.ids.insert(mid.to_owned()) {
            return;
        }
        self.order.push_back(mid.to_owned());
        while self.order.len() > MAX_DELIVERED_HERE {
            if let Some(old) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
    }

    /// Whether `mid` was delivered here; forgets it (Redis numbers a message once).
    pub(crate) fn take(&mut self, mid: &[u8]) -> bool {
        let Ok(mid) = std::str::from_utf8(mid) else {
            return false;
        };
        if !self.ids.remove(mid) {
            return false;
        }
        self.order.retain(|m| m != mid);
        true
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_differ_and_retries_keep_theirs() {
        let ids = MessageIds::new(0xab);
        let (a, b) = (ids.attempt(), ids.attempt());
        assert_ne!(a.mid, b.mid);
        assert!(!a.retry);
        let again = a.clone().again();
        assert_eq!((again.mid.as_str(), again.retry), (a.mid.as_str(), true));
    }

    #[test]
    fn delivered_here_is_taken_once_and_bounded() {
        let mut here = DeliveredHere::default();
        here.insert("a");
        here.insert("a");
        assert!(here.take(b"a"));
        assert!(!here.take(b"a"), "numbered once");
        assert!(here.is_empty());
        for n in 0..MAX_DELIVERED_HERE + 10 {
            here.insert(&n.to_string());
        }
        assert_eq!(here.order.len(), MAX_DELIVERED_HERE);
        assert!(!here.take(b"0"), "the oldest are forgotten");
        assert!(here.take((MAX_DELIVERED_HERE + 9).to_string().as_bytes()));
        assert!(!here.take(&[0xff]), "not UTF-8: never ours");
    }
}
