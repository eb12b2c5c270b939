//! Topics and users across nodes: publishes and user sends handed only to the nodes that
//! serve a member, joins and leaves numbered in the one sequence, the records a session
//! moving to another node takes with it, and presence (who is in a topic, a user's sessions).

mod lifecycle;
mod scripts;

use redis::Value;
use sse_proto::{Error, Frame, Membership, Principal, SessionId, TopicName};

use crate::engine::{RedisEngine, lock, millis};
use crate::once::{Attempt, DONE_TTL};
use crate::reply;

pub(crate) use scripts::{
    STRETCHES, clean, ending, gone, here, join, join_home, leave, orphan, publish, rejoin,
};

/// How often a command whose keys depend on what Redis holds is read and tried again when
/// Redis changed in between.
pub(crate) const TRIES: usize = 5;

/// Most stretches of membership kept per topic and session; older ones move the session's
/// exact start past them.
const MAX_STRETCHES: usize = 8;

/// A user's principal as it is spelled in keys: lowercase hex of its bytes.
pub(crate) fn user_hex(user: &Principal) -> String {
    user.as_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// The principal spelled `hex` in keys.
pub(crate) fn user_of(hex: &[u8]) -> Option<Principal> {
    if hex.len() % 2 != 0 {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16);
    let bytes: Option<Vec<u8>> = hex
        .chunks(2)
        .map(|p| Some((digit(p[0])? * 16 + digit(p[1])?) as u8))
        .collect();
    bytes.map(Principal::new)
}

/// Which group a publish is for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Group<'a> {
    Topic(&'a TopicName),
    User(&'a Principal),
}

/// What `mem:<id>` on one shard says of a session: its memberships in the topics there,
/// its user (home shard, or the user's), where its replay on the shard is exact from, and
/// (home shard) the other shards it has memberships on.
#[derive(Debug, Default)]
pub(crate) struct Mem {
    /// The hash's fields, sorted: what a script checks it still holds.
    pub(crate) fields: Vec<String>,
    /// Its fields and values, sorted, `field=value` joined by newlines: what a clean-up
    /// checks it still holds.
    pub(crate) content: String,
    /// The other shards with memberships (`~k`, on the home shard).
    pub(crate) shards: Vec<u8>,
    /// `~k` and `~u` as recorded: with the fields, what a script checks it still holds (the
    /// shards and the user's keys it touches depend on them).
    pub(crate) listed: (String, String),
    pub(crate) topics: Vec<Membership>,
    pub(crate) user: Option<(Principal, u64)>,
    /// The user's hex, as recorded.
    pub(crate) user_hex: String,
    pub(crate) since: u64,
}

impl Mem {
    /// Reads `HGETALL`'s flat reply.
    pub(crate) fn parse(v: &Value) -> Mem {
        let items = reply::array(v);
        let mut mem = Mem::default();
        let mut content = Vec::new();
        for pair in items.chunks(2) {
            let [k, v] = pair else { continue };
            let (Some(k), Some(v)) = (reply::text(k), reply::text(v)) else {
                continue;
            };
            let key = String::from_utf8_lossy(k).into_owned();
            content.push(format!("{key}={}", String::from_utf8_lossy(v)));
            match key.as_str() {
                "~k" => {
                    mem.listed.0 = String::from_utf8_lossy(v).into_owned();
                    mem.shards = String::from_utf8_lossy(v)
                        .split(',')
                        .filter_map(|k| k.parse().ok())
                        .collect();
                }
                "~u" => {
                    let text = String::from_utf8_lossy(v);
                    mem.listed.1 = text.clone().into_owned();
                    if let Some((since, hex)) = text.split_once(':') {
                        mem.user_hex = hex.to_owned();
                        mem.user = user_of(hex.as_bytes()).zip(since.parse().ok());
                    }
                }
                "~s" => mem.since = String::from_utf8_lossy(v).parse().unwrap_or(0),
                "~o" => {}
                _ => {
                    if let Ok(topic) = TopicName::new(&key) {
                        mem.topics.extend(stretches(&topic, v));
                    }
                }
            }
            mem.fields.push(key);
        }
        mem.fields.sort();
        content.sort();
        mem.content = content.join("\n");
        mem
    }

    /// What a script that touches keys this mem decides checks the mem still holds: its
    /// fields, and the shards and the user it lists (see `holds` in `groups/scripts.rs`).
    pub(crate) fn check(&self) -> String {
        format!(
            "{}|{}|{}",
            self.fields.join(","),
            self.listed.0,
            self.listed.1
        )
    }

    /// The topics it is a member of now.
    pub(crate) fn open_topics(&self) -> Vec<&TopicName> {
        self.topics
            .iter()
            .filter(|m| m.is_open())
            .map(|m| &m.topic)
            .collect()
    }

    /// The topics with a stretch, sorted.
    pub(crate) fn topic_names(&self) -> Vec<TopicName> {
        let mut names: Vec<TopicName> = self.topics.iter().map(|m| m.topic.clone()).collect();
        names.sort();
        names.dedup();
        names
    }
}

/// The stretches `j` and `j-l` of one topic's field.
fn stretches(topic: &TopicName, v: &[u8]) -> Vec<Membership> {
    String::from_utf8_lossy(v)
        .split(',')
        .filter_map(|part| {
            let (joined, left) = match part.split_once('-') {
                Some((j, l)) => (j.parse().ok()?, Some(l.parse().ok()?)),
                None => (part.parse().ok()?, None),
            };
            Some(Membership {
                topic: topic.clone(),
                joined,
                left,
            })
        })
        .collect()
}

/// What Redis knows of a session (see [`RedisEngine::session_info`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionInfo {
    /// Its user: the principal of the request that attached it last.
    pub user: Option<Principal>,
}

/// A session joined or left a topic, on any node (see [`RedisEngine::observe_presence`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PresenceEvent {
    /// The topic.
    pub topic: TopicName,
    /// The session.
    pub session: SessionId,
    /// The session's user, if it has one.
    pub user: Option<Principal>,
    /// Whether it joined (else it left: by a leave, a revoked grant, or its end).
    pub joined: bool,
}

impl PresenceEvent {
    /// Reads a presence stream entry.
    pub(crate) fn from_entry(entry: &crate::reply::Entry) -> Option<PresenceEvent> {
        let joined = match entry.field(b"t")? {
            b"J" => true,
            b"L" => false,
            _ => return None,
        };
        let session = SessionId::parse(entry.field(b"s")?, sse_proto::DEFAULT_MAX_ID_LEN).ok()?;
        let topic = TopicName::parse(entry.field(b"g")?).ok()?;
        let user = entry
            .field(b"u")
            .filter(|u| !u.is_empty())
            .and_then(user_of);
        Some(PresenceEvent {
            topic,
            session,
            user,
            joined,
        })
    }
}

/// Who is in a topic, across nodes (see [`RedisEngine::members`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Members {
    /// The member sessions' ids, sorted.
    pub sessions: Vec<String>,
    /// How many distinct users they belong to (sessions without a user count in none).
    pub users: usize,
}

impl RedisEngine {
    /// `HGETALL mem:<id>` on `shard`.
    pub(crate) async fn read_mem(&self, shard: u8, id: &str) -> redis::RedisResult<Mem> {
        let mut conn = self.shared.conn.clone();
        let v: Value = redis::cmd("HGETALL")
            .arg(self.shared.keys.mem(shard, id))
            .query_async(&mut conn)
            .await?;
        Ok(Mem::parse(&v))
    }

    /// Publishes `frame` to the members of a topic on every node, or sends it to every session
    /// of a user: logged once, and handed only to the nodes that serve one. Returns how many
    /// sessions it was for (0 for a topic without members: nothing is logged). With Redis
    /// away it fails with [`Error::Unavailable`]; this node's members get it when the hub
    /// queued it ([`Topic::send`](sse_proto::Topic::send)), which delivers it here at once.
    pub async fn publish(&self, topic: &str, frame: Frame) -> Result<usize, Error> {
        let topic = TopicName::new(topic)?;
        let attempt = self.shared.messages.attempt();
        self.publish_group(Group::Topic(&topic), &frame, false, &attempt)
            .await
            .map_err(|()| Error::Unavailable)
    }

    /// Sends `frame` to every session of `user` on every node; returns how many (see
    /// [`publish`](Self::publish)).
    pub async fn send_user(&self, user: &Principal, frame: Frame) -> Result<usize, Error> {
        let attempt = self.shared.messages.attempt();
        self.publish_group(Group::User(user), &frame, false, &attempt)
            .await
            .map_err(|()| Error::Unavailable)
    }

    /// One attempt at a publish or a user send; `local_done` when this node delivered it to
    /// its own members already.
    pub(crate) async fn publish_group(
        &self,
        group: Group<'_>,
        frame: &Frame,
        local_done: bool,
        attempt: &Attempt,
    ) -> Result<usize, ()> {
        let shared = &self.shared;
        let keys = &shared.keys;
        let (kind, name, log, nodes_key, members) = match group {
            Group::Topic(t) => (
                "p",
                t.as_str().to_owned(),
                keys.tlog(t.as_str()),
                keys.tn(t.as_str()),
                keys.tm(t.as_str()),
            ),
            Group::User(u) => {
                let hex = user_hex(u);
                (
                    "u",
                    hex.clone(),
                    keys.ulog(&hex),
                    keys.un(&hex),
                    keys.us(&hex),
                )
            }
        };
        let shard = match group {
            Group::Topic(t) => keys.of_topic(t.as_str()),
            Group::User(_) => keys.of_user(&name),
        };
        let bounds = *lock(&shared.bounds);
        let log_ttl = millis(shared.owner_ttl(false));
        for _ in 0..TRIES {
            let mut conn = shared.conn.clone();
            let nodes: Result<Vec<String>, _> = redis::cmd("HKEYS")
                .arg(&nodes_key)
                .query_async(&mut conn)
                .await;
            let Ok(mut nodes) = nodes else {
                shared.set_up(false);
                return Err(());
            };
            nodes.sort();
            let mut invocation = shared.scripts.publish.prepare_invoke();
            invocation
                .key(keys.seq(shard))
                .key(&log)
                .key(&nodes_key)
                .key(&members)
                .key(keys.done(shard, &attempt.mid));
            for node in &nodes {
                invocation
                    .key(keys.node(shard, node))
                    .key(keys.alive(shard, node));
            }
            invocation
                .arg(frame.to_bytes().as_ref())
                .arg(bounds.max_events)
                .arg(shared.config.stream_max)
                .arg(log_ttl)
                .arg(&attempt.mid)
                .arg(if attempt.retry { "1" } else { "0" })
                .arg(millis(DONE_TTL))
                .arg(kind)
                .arg(&name)
                .arg(&shared.config.node)
                .arg(if local_done { "1" } else { "0" })
                .arg(nodes.join(","));
            match invocation.invoke_async::<Value>(&mut conn).await {
                Ok(v) => {
                    shared.set_up(true);
                    let items = reply::array(&v);
                    match items.first().and_then(reply::int) {
                        Some(-2) => continue,
                        _ => {
                            let count = items.get(1).and_then(reply::int).unwrap_or(0);
                            return Ok(usize::try_from(count).unwrap_or(0));
                        }
                    }
                }
                Err(_) => {
                    shared.set_up(false);
                    return Err(());
                }
            }
        }
        Err(())
    }

    /// Makes session `id` (on whichever node serves it) a member of `topic`, numbered in the
    /// one sequence. Returns `false` when it was a member already. It does not ask the topic
    /// rule: check it first ([`Session::join`](sse_proto::Session::join) does).
    pub async fn join(&self, id: &str, topic: &str) -> Result<bool, Error> {
        let topic = TopicName::new(topic)?;
        let attempt = self.shared.messages.attempt();
        self.membership(id, &topic, None, &attempt).await
    }

    /// Ends the membership of session `id` in `topic`; what the topic published while it was
    /// a member stays replayable to its tab. Returns `false` when it was not a member.
    pub async fn leave(&self, id: &str, topic: &str) -> Result<bool, Error> {
        let topic = TopicName::new(topic)?;
        let attempt = self.shared.messages.attempt();
        self.membership(id, &topic, Some(true), &attempt).await
    }

    /// A join (`leave` `None`) or a leave (keeping the stretch or not), on the topic's shard;
    /// a join on another shard than the session's home is first listed there
    /// ([`join_home`]). A retry of an `attempt` that Redis may have applied is not applied
    /// again: a join retried after a leave made meanwhile would undo the leave.
    pub(crate) async fn membership(
        &self,
        id: &str,
        topic: &TopicName,
        leave: Option<bool>,
        attempt: &Attempt,
    ) -> Result<bool, Error> {
        let shared = &self.shared;
        let keys = &shared.keys;
        let me = &shared.config.node;
        let home = keys.of_session(id);
        let shard = keys.of_topic(topic.as_str());
        let on_home = home == shard;
        let owner_key = if on_home {
            keys.owner(id)
        } else {
            keys.mem(shard, id)
        };
        for _ in 0..TRIES {
            let mut conn = shared.conn.clone();
            let Ok(owner) = self.owner(id).await else {
                shared.set_up(false);
                return Err(Error::Unavailable);
            };
            let result = match leave {
                None => {
                    // A session without an owner mark yet is this node's when its hub
                    // serves it (the hub queued the join for a stream it just accepted).
                    let owner = match owner {
                        Some(owner) => owner,
                        None if self.serves(id) => me.clone(),
                        None => return Err(Error::NotConnected),
                    };
                    if !on_home {
                        let listed = shared
                            .scripts
                            .join_home
                            .key(keys.owner(id))
                            .key(keys.mem(home, id))
                            .arg(&owner)
                            .arg(me)
                            .arg(millis(shared.mem_ttl(true)))
                            .arg(shard)
                            .invoke_async::<i64>(&mut conn)
                            .await;
                        match listed {
                            Ok(-2) => continue,
                            Ok(_) => {}
                            Err(_) => return Err(self.away()),
                        }
                    }
                    let mut invocation = shared.scripts.join.prepare_invoke();
                    invocation
                        .key(&owner_key)
                        .key(keys.seq(shard))
                        .key(keys.mem(shard, id))
                        .key(keys.tn(topic.as_str()))
                        .key(keys.tm(topic.as_str()))
                        .key(keys.node(shard, &owner))
                        .key(keys.presence(shard))
                        .arg(id)
                        .arg(topic.as_str())
                        .arg(&owner)
                        .arg(me)
                        .arg(shared.config.stream_max)
                        .arg(millis(shared.mem_ttl(true)))
                        .arg(MAX_STRETCHES)
                        .arg(self.user_here(id))
                        .arg(if on_home { "1" } else { "0" });
                    once(&mut invocation, keys.done(shard, &attempt.mid), attempt);
                    invocation.invoke_async::<i64>(&mut conn).await
                }
                Some(keep) => {
                    let owner = owner.unwrap_or_default();
                    let mut invocation = shared.scripts.leave.prepare_invoke();
                    invocation
                        .key(&owner_key)
                        .key(keys.seq(shard))
                        .key(keys.mem(shard, id))
                        .key(keys.tn(topic.as_str()))
                        .key(keys.tm(topic.as_str()))
                        .key(keys.tlog(topic.as_str()))
                        .key(keys.node(shard, &owner))
                        .key(keys.presence(shard))
                        .arg(id)
                        .arg(topic.as_str())
                        .arg(&owner)
                        .arg(shared.config.stream_max)
                        .arg(if keep { "1" } else { "0" })
                        .arg(if on_home { "1" } else { "0" });
                    once(&mut invocation, keys.done(shard, &attempt.mid), attempt);
                    invocation.invoke_async::<i64>(&mut conn).await
                }
            };
            match result {
                Ok(-2) => continue,
                Ok(n) => {
                    shared.set_up(true);
                    return Ok(n > 0);
                }
                Err(_) => {
                    shared.set_up(false);
                    return Err(Error::Unavailable);
                }
            }
        }
        Err(Error::Unavailable)
    }

    /// Calls `observer` with every join and leave of a topic, on every node, in the order
    /// Redis numbered them: presence across the nodes, without polling. A session that ends
    /// leaves its topics (one event each); one whose node was killed leaves no event (it
    /// drops out of [`members`](Self::members) once its marks expire). Set it before the
    /// engine runs; it runs on the engine's reader, so keep it short.
    pub fn observe_presence(&self, observer: impl Fn(&PresenceEvent) + Send + Sync + 'static) {
        let _ = self.shared.presence_observer.set(Box::new(observer));
    }

    /// The user of session `id` as this node's hub knows it, in hex (empty: none, or not
    /// served here).
    fn user_here(&self, id: &str) -> String {
        self.port()
            .and_then(|port| port.hub())
            .and_then(|hub| hub.session(id))
            .and_then(|s| s.user())
            .map(|u| user_hex(&u))
            .unwrap_or_default()
    }

    /// Whether this node's hub serves session `id`.
    pub(crate) fn serves(&self, id: &str) -> bool {
        self.port()
            .and_then(|port| port.hub())
            .is_some_and(|hub| hub.session(id).is_some())
    }

    /// What Redis knows of session `id` on any node (or, for a session this node has just
    /// accepted, what its hub knows): `None` when no node serves it (nor keeps it for its
    /// tab), else its user.
    pub async fn session_info(&self, id: &str) -> Result<Option<SessionInfo>, Error> {
        let keys = &self.shared.keys;
        let mut pipe = redis::pipe();
        pipe.cmd("EXISTS").arg(keys.owner(id));
        pipe.cmd("HGET").arg(keys.home_mem(id)).arg("~u");
        let mut conn = self.shared.conn.clone();
        let answers: Vec<Value> = pipe.query_async(&mut conn).await.map_err(|_| self.away())?;
        if answers.first().and_then(reply::int) != Some(1) {
            // Just accepted here, before this node's presence task has written it: this
            // node's hub knows it.
            let here = self.port().and_then(|port| port.hub());
            let session = here.as_ref().and_then(|hub| hub.session(id));
            return Ok(session.map(|s| SessionInfo { user: s.user() }));
        }
        let user = answers.get(1).and_then(reply::text).and_then(|u| {
            let u = String::from_utf8_lossy(u);
            let (_, hex) = u.split_once(':')?;
            user_of(hex.as_bytes())
        });
        Ok(Some(SessionInfo { user }))
    }

    /// The sessions in `topic` on every node, and how many distinct users they belong to.
    /// A session whose node stopped without ending it is left out once its marks expire.
    pub async fn members(&self, topic: &str) -> Result<Members, Error> {
        let topic = TopicName::new(topic)?;
        let keys = &self.shared.keys;
        let ids = self.hash_keys(&keys.tm(topic.as_str())).await?;
        if ids.is_empty() {
            return Ok(Members::default());
        }
        // One pipeline per shard: a pipeline's keys share a slot.
        let mut answers: std::collections::HashMap<&str, (Value, Value)> = Default::default();
        for (_, ids) in keys.by_home(ids.iter().map(String::as_str)) {
            let mut pipe = redis::pipe();
            for id in &ids {
                pipe.cmd("EXISTS").arg(keys.owner(id));
                pipe.cmd("HGET").arg(keys.home_mem(id)).arg("~u");
            }
            let mut conn = self.shared.conn.clone();
            let got: Vec<Value> = pipe.query_async(&mut conn).await.map_err(|_| self.away())?;
            let mut got = got.into_iter();
            for id in ids {
                let exists = got.next().unwrap_or(Value::Nil);
                let user = got.next().unwrap_or(Value::Nil);
                answers.insert(id, (exists, user));
            }
        }
        let mut members = Members::default();
        let mut users = std::collections::HashSet::new();
        for id in &ids {
            let Some((exists, user)) = answers.get(id.as_str()) else {
                continue;
            };
            if reply::int(exists) != Some(1) {
                continue;
            }
            if let Some(user) = reply::text(user) {
                let user = String::from_utf8_lossy(user);
                if let Some((_, hex)) = user.split_once(':') {
                    users.insert(hex.to_owned());
                }
            }
            members.sessions.push(id.clone());
        }
        members.sessions.sort();
        members.users = users.len();
        Ok(members)
    }

    /// The sessions of `user` on every node, sorted.
    pub async fn user_sessions(&self, user: &Principal) -> Result<Vec<String>, Error> {
        let key = self.shared.keys.us(&user_hex(user));
        let mut ids = self.hash_keys(&key).await?;
        ids.sort();
        Ok(ids)
    }

    /// Closes every session of `user` on every node, for good (each tab's reconnect gets
    /// 204); returns how many.
    pub async fn close_user(&self, user: &Principal) -> Result<usize, Error> {
        let mut closed = 0;
        for id in self.user_sessions(user).await? {
            if self.close(&id).await? {
                closed += 1;
            }
        }
        Ok(closed)
    }

    async fn hash_keys(&self, key: &str) -> Result<Vec<String>, Error> {
        let mut conn = self.shared.conn.clone();
        redis::cmd("HKEYS")
            .arg(key)
            .query_async(&mut conn)
            .await
            .map_err(|_| self.away())
    }

    fn away(&self) -> Error {
        self.shared.set_up(false);
        Error::Unavailable
    }
}

/// Declares the done mark of `attempt` (`mark`, the last key) and passes its message id,
/// whether it is a retry and the mark's TTL (the last arguments), for the `ONCE` helper.
fn once(invocation: &mut redis::ScriptInvocation<'_>, mark: String, attempt: &Attempt) {
    invocation
        .key(mark)
        .arg(&attempt.mid)
        .arg(if attempt.retry { "1" } else { "0" })
        .arg(millis(crate::once::DONE_TTL));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_in_keys_and_stretches() {
        let user = Principal::new("ann:{x}\n");
        let hex = user_hex(&user);
        assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(user_of(hex.as_bytes()), Some(user));
        assert_eq!(user_of(b"abc"), None);
        assert_eq!(user_of(b"zz"), None);
        let red = TopicName::new("red").unwrap();
        let got = stretches(&red, b"3-9,12");
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].joined, got[0].left), (3, Some(9)));
        assert_eq!((got[1].joined, got[1].left), (12, None));
        assert!(stretches(&red, b"x,-,1-").is_empty());
    }
}
