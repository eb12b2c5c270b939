//! Joins and leaves that reach this node for a session it is taking over before its hub has
//! it.
//!
//! A claim makes this node the session's owner on its home shard first, so a join or leave
//! made on another node from then on is numbered and sent to this node's delivery stream,
//! and may be read before the hub has accepted the session (on several shards the claim's
//! other steps widen that moment). The hub cannot apply it to a session it does not have.
//! The engine keeps it for the session it is claiming and, once the hub has attached the
//! session, applies it and ends the stream: what the topic published in between was read
//! while the session was not a member, and the tab's reconnect replays it exactly.

use std::collections::HashMap;

use sse_proto::{SessionId, TopicName};

/// Most sessions being claimed that are remembered at once; past it, those attached go
/// first, then all.
const MAX_CLAIMING: usize = 4096;

/// Most memberships kept for one session being claimed.
const MAX_LATE: usize = 64;

/// A membership change the hub could not apply yet.
#[derive(Debug, Clone)]
pub(crate) enum Late {
    Joined {
        seq: u64,
        topic: TopicName,
    },
    Left {
        topic: TopicName,
        last: u64,
        keep: bool,
    },
}

/// The sessions this node is claiming, and what reached it for them too early.
#[derive(Debug, Default)]
pub(crate) struct Claims {
    claiming: HashMap<SessionId, Claiming>,
    /// Changes of sessions the hub has now, to apply.
    pub(crate) ready: Vec<(SessionId, Vec<Late>)>,
}

#[derive(Debug, Default)]
struct Claiming {
    attached: bool,
    late: Vec<Late>,
}

impl Claims {
    /// This node starts to claim session `id`.
    pub(crate) fn started(&mut self, id: &SessionId) {
        if self.claiming.len() >= MAX_CLAIMING {
            self.claiming.retain(|_, c| !c.attached);
            if self.claiming.len() >= MAX_CLAIMING {
                self.claiming.clear();
            }
        }
        self.claiming.insert(id.clone(), Claiming::default());
    }

    /// Whether this node claimed session `id` (a claim ran for it, whatever it found), and
    /// the session has not ended since.
    pub(crate) fn claiming(&self, id: &SessionId) -> bool {
        self.claiming.contains_key(id)
    }

    /// `late` reached this node for session `id`: kept, and `true`, while the node is
    /// claiming the session and its hub has not attached it (the hub may still hold an
    /// older copy of the session, which the accept replaces); else `false`, to apply now.
    pub(crate) fn keep(&mut self, id: &SessionId, late: &Late) -> bool {
        let Some(claiming) = self.claiming.get_mut(id) else {
            return false;
        };
        if claiming.attached {
            return false;
        }
        if claiming.late.len() < MAX_LATE {
            claiming.late.push(late.clone());
        }
        true
    }

    /// The hub attached session `id`; returns whether changes are ready for it.
    pub(crate) fn attached(&mut self, id: &SessionId) -> bool {
        let Some(claiming) = self.claiming.get_mut(id) else {
            return false;
        };
        claiming.attached = true;
        if claiming.late.is_empty() {
            return false;
        }
        let late = std::mem::take(&mut claiming.late);
        self.ready.push((id.clone(), late));
        true
    }

    /// Session `id` ended here.
    pub(crate) fn ended(&mut self, id: &SessionId) {
        self.claiming.remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_until_attached_and_bounded() {
        let id = SessionId::parse(b"s1", 128).unwrap();
        let red = TopicName::new("red").unwrap();
        let joined = || Late::Joined {
            seq: 3,
            topic: red.clone(),
        };
        let mut claims = Claims::default();
        // Not claiming: nothing kept.
        assert!(!claims.keep(&id, &joined()));
        claims.started(&id);
        for _ in 0..100 {
            assert!(claims.keep(&id, &joined()));
        }
        assert!(claims.attached(&id));
        assert_eq!(claims.ready.len(), 1);
        assert_eq!(claims.ready[0].1.len(), MAX_LATE);
        // Once attached, one is applied at once.
        assert!(!claims.keep(&id, &joined()));
        claims.ended(&id);
        assert!(!claims.keep(&id, &joined()));
        for n in 0..MAX_CLAIMING + 10 {
            let other = SessionId::parse(format!("x{n}").as_bytes(), 128).unwrap();
            claims.started(&other);
        }
        assert!(claims.claiming.len() <= MAX_CLAIMING);
    }
}
