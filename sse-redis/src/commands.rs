//! What a node asks of Redis for the sessions of every node: a send to one, a broadcast to
//! all, a close or a drop, the list of live ones. Each is one script or command; with Redis
//! away, what this node can do for its own connections it does (see the crate docs).

use redis::Value;
use sse_proto::{Error, Frame, Recipient, SessionId};

use crate::engine::{RedisEngine, lock, millis, now_ms};
use crate::groups::TRIES;
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
        let frame_bytes = frame.to_bytes();
        let home = keys.of_session(id);
        let mut reply = Ok(-2);
        for try_no in 0..TRIES {
            let mut conn = shared.conn.clone();
            // The owner's stream is one of the script's keys: read who it is first, unless
            // this node serves the session, which then is most likely its owner (the script
            // checks, and a wrong guess is read the next time round).
            let serves = self.serves(id);
            let guess = (try_no == 0 && serves).then(|| Ok(Some(shared.config.node.clone())));
            let read = match guess {
                Some(guess) => guess,
                None => self.owner(id).await,
            };
            let owner = match read {
                Ok(Some(owner)) => owner,
                // Just accepted here: this node's, though its presence task may not have
                // said so yet.
                Ok(None) if serves => shared.config.node.clone(),
                Ok(None) => return Err(Error::NotConnected),
                Err(e) => {
                    reply = Err(e);
                    break;
                }
            };
            let mut invocation = shared.scripts.send.prepare_invoke();
            invocation
                .key(keys.owner(id))
                .key(keys.seq(home))
                .key(keys.log(id))
                .key(keys.done(home, &attempt.mid))
                .key(keys.node(home, &owner))
                .key(keys.closed(id))
                .arg(&owner)
                .arg(id)
                .arg(frame_bytes.as_ref())
                .arg(lock(&shared.bounds).max_events)
                .arg(shared.config.stream_max)
                .arg(millis(shared.owner_ttl(false)))
                .arg(&attempt.mid)
                .arg(if attempt.retry { "1" } else { "0" })
                .arg(millis(DONE_TTL))
                .arg(if serves {
                    millis(shared.owner_ttl(true)).to_string()
                } else {
                    String::new()
                });
            reply = invocation.invoke_async::<i64>(&mut conn).await;
            if !matches!(reply, Ok(-2)) {
                break;
            }
        }
        match reply {
            Ok(-1) => Err(Error::NotConnected),
            // The owner changed on every try: a session moving between nodes that fast is
            // not reachable now.
            Ok(-2) => Err(Error::Unavailable),
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
            Ok(count) => Ok(count + self.sessions_off_shard_0().await),
            Err(()) => {
                self.deliver_here(&attempt, &Recipient::All, frame);
                Err(Error::Unavailable)
            }
        }
    }

    /// How many sessions (attached or detached) are homed on shards other than 0, which a
    /// broadcast's script, on shard 0, does not count: asked only when a caller wants the
    /// count, not for the broadcasts the relay sends. A shard that does not answer counts
    /// none.
    async fn sessions_off_shard_0(&self) -> usize {
        let keys = &self.shared.keys;
        let now = now_ms();
        let mut count = 0;
        for shard in keys.every().skip(1) {
            let mut conn = self.shared.conn.clone();
            let more: Result<usize, _> = redis::cmd("ZCOUNT")
                .arg(keys.all(shard))
                .arg(now)
                .arg("+inf")
                .query_async(&mut conn)
                .await;
            count += more.unwrap_or(0);
        }
        count
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
    /// Returns how many sessions are homed on shard 0 (on one shard: every session).
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
            .key(keys.seq(0))
            .key(keys.bcast())
            .key(keys.all(0))
            .key(keys.done(0, &attempt.mid))
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
        let home = keys.of_session(id);
        for _ in 0..TRIES {
            let owner = match self.owner(id).await {
                Ok(owner) => owner.unwrap_or_default(),
                Err(_) => {
                    shared.set_up(false);
                    return Err(Error::Unavailable);
                }
            };
            // A session this node has just accepted may have no owner mark yet (presence
            // writes it after the fact): it is this node's.
            let serving = if owner.is_empty() && self.serves(id) {
                shared.config.node.as_str()
            } else {
                ""
            };
            let stream = if serving.is_empty() { &owner } else { serving };
            let mut invocation = shared.scripts.end.prepare_invoke();
            invocation
                .key(keys.owner(id))
                .key(keys.closed(id))
                .key(keys.seq(home))
                .key(keys.node(home, stream))
                .arg(&owner)
                .arg(id)
                .arg(millis(shared.config.closed_ttl))
                .arg(kind)
                .arg(shared.config.stream_max)
                .arg(serving);
            let mut conn = shared.conn.clone();
            match invocation.invoke_async::<i64>(&mut conn).await {
                Ok(-2) => continue,
                Ok(n) => {
                    shared.set_up(true);
                    return Ok(n == 1);
                }
                Err(_) => {
                    shared.set_up(false);
                    return Err(Error::Unavailable);
                }
            }
        }
        Err(Error::Unavailable)
    }

    /// The node that serves (or last served) session `id`, as Redis has it now.
    pub(crate) async fn owner(&self, id: &str) -> redis::RedisResult<Option<String>> {
        let mut conn = self.shared.conn.clone();
        redis::cmd("GET")
            .arg(self.shared.keys.owner(id))
            .query_async(&mut conn)
            .await
    }

    /// The ids with a live connection, on every node.
    pub async fn sessions(&self) -> Result<Vec<String>, Error> {
        self.live_sessions().await.map_err(|_| {
            self.shared.set_up(false);
            Error::Unavailable
        })
    }
}
