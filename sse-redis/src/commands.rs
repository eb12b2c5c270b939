//! What a node asks of Redis for the sessions of every node: a send to one, a broadcast to
//! all, a close or a drop, the list of live ones. Each is one script or command; with Redis
//! away, what this node can do for its own connections it does (see the crate docs).

use redis::Value;
use sse_proto::{Error, Frame, Recipient, SessionId};

use crate::engine::{RedisEngine, lock, millis, now_ms};
use crate::once::{Attempt, DONE_TTL};
use crate::reply;

impl RedisEngine {
    /// Sends `frame` to one session on whichever node serves it (attached, or detached and
    /// still resumable). Fails with [`Error::NotConnected`] when no node knows it. With Redis
    /// away, a session this hub serves still gets it (without a position: its log records a
    /// gap); any other fails with [`Error::Unavailable`].
    ///
    /// [`Error::Unavailable`] after a timeout says that Redis did not answer in time, not
    /// that nothing happened: a frozen Redis applies the command when it wakes. It is applied
    /// once all the same, and a session that got it here only has its position moved on (see
    /// the crate docs).
    pub async fn send_to(&self, id: &str, frame: Frame) -> Result<(), Error> {
        let attempt = self.shared.messages.attempt();
        self.send_attempt(id, frame, &attempt).await
    }

    /// One attempt at [`send_to`](Self::send_to).
    pub(crate) async fn send_attempt(
        &self,
        id: &str,
        frame: Frame,
        attempt: &Attempt,
    ) -> Result<(), Error> {
        let shared = &self.shared;
        let keys = &shared.keys;
        let mut invocation = shared.scripts.send.prepare_invoke();
        invocation
            .key(keys.owner(id))
            .key(keys.seq())
            .key(keys.log(id))
            .key(keys.done(&attempt.mid))
            .arg(&keys.prefix)
            .arg(id)
            .arg(frame.to_bytes().as_ref())
            .arg(lock(&shared.bounds).max_events)
            .arg(shared.config.stream_max)
            .arg(millis(shared.owner_ttl(false)))
            .arg(&attempt.mid)
            .arg(if attempt.retry { "1" } else { "0" })
            .arg(millis(DONE_TTL));
        let mut conn = shared.conn.clone();
        match invocation.invoke_async::<i64>(&mut conn).await {
            Ok(-1) => Err(Error::NotConnected),
            Ok(_) => {
                shared.set_up(true);
                Ok(())
            }
            Err(_) => {
                shared.set_up(false);
                let id = SessionId::parse(id.as_bytes(), sse_proto::DEFAULT_MAX_ID_LEN)
                    .map_err(|_| Error::NotConnected)?;
                let here = self.port().and_then(|port| port.hub());
                if here.is_some_and(|hub| hub.session(id.as_str()).is_some()) {
                    self.deliver_here(attempt, &Recipient::Session(id), frame);
                    Ok(())
                } else {
                    Err(Error::Unavailable)
                }
            }
        }
    }

    /// Broadcasts `frame` to every session on every node; returns how many sessions there
    /// are (attached or detached). With Redis away it reaches this hub's attached sessions
    /// without a position (their logs record a gap) and fails with [`Error::Unavailable`]:
    /// the other nodes get it only if Redis, frozen rather than gone, applies the command
    /// when it wakes (this hub's sessions then only have their positions moved on), and
    /// calling this again sends a new broadcast. To have it sent on once Redis is back, use
    /// [`Hub::broadcast`](sse_proto::Hub::broadcast) instead, which queues it for the relay.
    pub async fn broadcast(&self, frame: Frame) -> Result<usize, Error> {
        let attempt = self.shared.messages.attempt();
        match self.publish_broadcast(&frame, false, &attempt).await {
            Ok(count) => Ok(count),
            Err(()) => {
                self.deliver_here(&attempt, &Recipient::All, frame);
                Err(Error::Unavailable)
            }
        }
    }

    /// With Redis away: delivers to this node's connections among `to` without a position,
    /// remembering the message in case Redis applies the attempt later (its reader then only
    /// moves their positions on).
    pub(crate) fn deliver_here(&self, attempt: &Attempt, to: &Recipient, frame: Frame) {
        if let Some(port) = self.port() {
            lock(&self.shared.delivered_here).insert(&attempt.mid);
            port.deliver_unsequenced(to, frame);
        }
    }

    /// Logs a broadcast in Redis; `local_done` when this node delivered it itself already.
    pub(crate) async fn publish_broadcast(
        &self,
        frame: &Frame,
        local_done: bool,
        attempt: &Attempt,
    ) -> Result<usize, ()> {
        let shared = &self.shared;
        let keys = &shared.keys;
        let mut invocation = shared.scripts.broadcast.prepare_invoke();
        invocation
            .key(keys.seq())
            .key(keys.bcast())
            .key(keys.all())
            .key(keys.done(&attempt.mid))
            .arg(frame.to_bytes().as_ref())
            .arg(shared.config.stream_max)
            .arg(&shared.config.node)
            .arg(if local_done { "1" } else { "0" })
            .arg(now_ms())
            .arg(&attempt.mid)
            .arg(if attempt.retry { "1" } else { "0" })
            .arg(millis(DONE_TTL));
        let mut conn = shared.conn.clone();
        match invocation.invoke_async::<Value>(&mut conn).await {
            Ok(v) => {
                shared.set_up(true);
                let count = reply::array(&v).get(1).and_then(reply::int).unwrap_or(0);
                Ok(usize::try_from(count).unwrap_or(0))
            }
            Err(_) => {
                shared.set_up(false);
                Err(())
            }
        }
    }

    /// Closes a session on whichever node serves it: its id is marked (a reconnect to any
    /// node gets 204) and its stream ends. Returns whether a node knew it.
    pub async fn close(&self, id: &str) -> Result<bool, Error> {
        self.end(id, "c").await
    }

    /// Ends a session's stream without closing it, on whichever node serves it (its tab
    /// reconnects). Returns whether a node knew it.
    pub async fn drop_stream(&self, id: &str) -> Result<bool, Error> {
        self.end(id, "d").await
    }

    async fn end(&self, id: &str, kind: &str) -> Result<bool, Error> {
        let shared = &self.shared;
        let keys = &shared.keys;
        let mut invocation = shared.scripts.end.prepare_invoke();
        invocation
            .key(keys.owner(id))
            .key(keys.closed(id))
            .key(keys.seq())
            .arg(&keys.prefix)
            .arg(id)
            .arg(millis(shared.config.closed_ttl))
            .arg(kind)
            .arg(shared.config.stream_max);
        let mut conn = shared.conn.clone();
        match invocation.invoke_async::<i64>(&mut conn).await {
            Ok(n) => {
                shared.set_up(true);
                Ok(n == 1)
            }
            Err(_) => {
                shared.set_up(false);
                Err(Error::Unavailable)
            }
        }
    }

    /// The ids with a live connection, on every node.
    pub async fn sessions(&self) -> Result<Vec<String>, Error> {
        let mut conn = self.shared.conn.clone();
        let reply: Result<Vec<String>, _> = redis::cmd("ZRANGEBYSCORE")
            .arg(self.shared.keys.live())
            .arg(now_ms())
            .arg("+inf")
            .query_async(&mut conn)
            .await;
        reply.map_err(|_| {
            self.shared.set_up(false);
            Error::Unavailable
        })
    }
}
