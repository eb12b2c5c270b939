//! What presence does for a session's groups as it comes and goes: its user recorded, what
//! it leaves cleaned up when it ends (here, or after its node died), and its memberships
//! recorded again when Redis lost them. On several shards each runs as steps, one per
//! shard, each atomic and each safe to run again.

use std::collections::BTreeMap;

use redis::Value;
use sse_proto::{Principal, TopicName};

use super::{Mem, TRIES, user_hex};
use crate::engine::{RedisEngine, millis, now_ms};
use crate::reply;

impl RedisEngine {
    /// Presence: the session `id` is served here, by `user` (none: no user); `attached`
    /// when it is attached now (its memberships then keep no TTL), else detached.
    pub(crate) async fn here(
        &self,
        id: &str,
        user: Option<&Principal>,
        attached: bool,
    ) -> redis::RedisResult<()> {
        let shared = &self.shared;
        let keys = &shared.keys;
        let new = user.map(user_hex).unwrap_or_default();
        let home = keys.of_session(id);
        for _ in 0..TRIES {
            let mem = self.read_mem(home, id).await?;
            let old = mem.user_hex;
            // The roles in order (the new user's record first, the old one's last), those on
            // one shard together. Without a change, only the user's record moves here.
            let roles = match (new == old, new.is_empty()) {
                (true, true) => return Ok(()),
                (true, false) => vec![(keys.of_user(&new), 'n')],
                (false, _) => vec![
                    (keys.of_user(&new), 'n'),
                    (home, 'h'),
                    (keys.of_user(&old), 'o'),
                ],
            };
            let mut steps: Vec<(u8, String)> = Vec::new();
            for (shard, role) in roles {
                match steps.last_mut() {
                    Some((last, r)) if *last == shard => r.push(role),
                    _ => steps.push((shard, role.to_string())),
                }
            }
            let mut since = 0;
            let mut again = false;
            for (shard, roles) in &steps {
                let reply = self
                    .here_step(id, *shard, roles, &new, &old, attached, since)
                    .await?;
                let items = reply::array(&reply);
                match items.first().and_then(reply::int) {
                    Some(-2) => {
                        again = true;
                        break;
                    }
                    Some(1) => {
                        if let Some(s) = items.get(1).and_then(reply_u64) {
                            since = s;
                        }
                    }
                    _ => {}
                }
            }
            if !again {
                return Ok(());
            }
            // The home mem changed: undo the new user's record made before it, then read
            // again.
            if keys.of_user(&new) != home && !new.is_empty() && new != old {
                self.here_step(id, keys.of_user(&new), "o", "", &new, attached, 0)
                    .await?;
            }
        }
        Ok(())
    }

    /// One shard's step of [`here`](Self::here) (see the script).
    #[allow(clippy::too_many_arguments)]
    async fn here_step(
        &self,
        id: &str,
        shard: u8,
        roles: &str,
        new: &str,
        old: &str,
        attached: bool,
        since: u64,
    ) -> redis::RedisResult<Value> {
        let shared = &self.shared;
        let keys = &shared.keys;
        let any = keys.mem(shard, id);
        let on = |role: char, key: String| {
            if roles.contains(role) {
                key
            } else {
                any.clone()
            }
        };
        let mut invocation = shared.scripts.here.prepare_invoke();
        invocation
            .key(on('h', keys.home_mem(id)))
            .key(on('n', keys.seq(keys.of_user(new))))
            .key(on('n', keys.us(new)))
            .key(on('n', keys.un(new)))
            .key(on('o', keys.us(old)))
            .key(on('o', keys.un(old)))
            .key(on('n', keys.mem(keys.of_user(new), id)))
            .key(on('o', keys.mem(keys.of_user(old), id)))
            .arg(id)
            .arg(&shared.config.node)
            .arg(new)
            .arg(old)
            .arg(if attached {
                0
            } else {
                millis(shared.mem_ttl(false))
            })
            .arg(roles)
            .arg(since);
        let mut conn = shared.conn.clone();
        invocation.invoke_async(&mut conn).await
    }

    /// Presence: the session `id` ended here; unless another node serves it now, every trace
    /// of it goes.
    pub(crate) async fn gone(&self, id: &str) -> redis::RedisResult<()> {
        let shared = &self.shared;
        let keys = &shared.keys;
        let node = &shared.config.node;
        if !keys.single() {
            // Its marks go here, and what it left on every shard goes as an orphan's.
            let home = keys.of_session(id);
            let mut conn = shared.conn.clone();
            let now = now_ms();
            let ended: i64 = shared
                .scripts
                .ending
                .key(keys.owner(id))
                .key(keys.live(home, node))
                .key(keys.all(home))
                .key(keys.log(id))
                .arg(id)
                .arg(node)
                .arg(now)
                .invoke_async(&mut conn)
                .await?;
            if ended == 1 {
                self.orphan(id, now).await?;
            }
            return Ok(());
        }
        for _ in 0..TRIES {
            let mem = self.read_mem(0, id).await?;
            let mut invocation = shared.scripts.gone.prepare_invoke();
            invocation
                .key(keys.owner(id))
                .key(keys.mem(0, id))
                .key(keys.live(0, node))
                .key(keys.all(0))
                .key(keys.log(id))
                .key(keys.us(&mem.user_hex))
                .key(keys.un(&mem.user_hex))
                .key(keys.seq(0))
                .key(keys.presence(0));
            cleanup_tail(&mut invocation, shared, &mem, id, node);
            let mut conn = shared.conn.clone();
            if invocation.invoke_async::<i64>(&mut conn).await? != -2 {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Cleans up after session `id` if its marks expired at or before `due` with nobody to
    /// end it (see [`orphan`](super::orphan)); whether it did. Nothing to clean (claimed
    /// again, or cleaned by another node) is `false`. On several shards, what it left off its
    /// home shard goes first, each shard's only while it holds what was read before the
    /// session was found ended, and the home shard's last.
    pub(crate) async fn orphan(&self, id: &str, due: u64) -> redis::RedisResult<bool> {
        let shared = &self.shared;
        let keys = &shared.keys;
        let home = keys.of_session(id);
        for _ in 0..TRIES {
            let mem = self.read_mem(home, id).await?;
            if !keys.single() {
                let others = self.read_others(id, &mem).await?;
                // Ended: due in `all`, and no owner mark. (Each shard's mem was read before:
                // a session of this id claimed since has its own, which the clean-up keeps.)
                let mut conn = shared.conn.clone();
                let (score, owned): (Option<f64>, bool) = redis::pipe()
                    .cmd("ZSCORE")
                    .arg(keys.all(home))
                    .arg(id)
                    .cmd("EXISTS")
                    .arg(keys.owner(id))
                    .query_async(&mut conn)
                    .await?;
                let ended = score.is_some_and(|s| s <= due as f64) && !owned;
                if !ended {
                    return Ok(false);
                }
                self.clean_shards(id, &others).await?;
            }
            let mut invocation = shared.scripts.orphan.prepare_invoke();
            let user = if keys.of_user(&mem.user_hex) == home {
                mem.user_hex.as_str()
            } else {
                ""
            };
            invocation
                .key(keys.all(home))
                .key(keys.owner(id))
                .key(keys.mem(home, id))
                .key(keys.log(id))
                .key(keys.seq(home))
                .key(keys.presence(home))
                .key(if user.is_empty() {
                    keys.mem(home, id)
                } else {
                    keys.us(user)
                })
                .key(if user.is_empty() {
                    keys.mem(home, id)
                } else {
                    keys.un(user)
                });
            let mem = Mem {
                user_hex: user.to_owned(),
                ..mem
            };
            cleanup_tail(&mut invocation, shared, &mem, id, due);
            let mut conn = shared.conn.clone();
            match invocation.invoke_async::<i64>(&mut conn).await? {
                -2 => continue,
                done => return Ok(done == 1),
            }
        }
        Ok(false)
    }

    /// What a session whose home mem is `mem` has on other shards: each such shard's mem of
    /// it, and whether the user's record is on that shard.
    async fn read_others(&self, id: &str, mem: &Mem) -> redis::RedisResult<Others> {
        let keys = &self.shared.keys;
        let home = keys.of_session(id);
        let mut shards: BTreeMap<u8, bool> = BTreeMap::new();
        for &k in &mem.shards {
            shards.entry(k).or_default();
        }
        if !mem.user_hex.is_empty() {
            shards.insert(keys.of_user(&mem.user_hex), true);
        }
        shards.remove(&home);
        let mut shard_mems = Vec::new();
        for (k, user_here) in shards {
            shard_mems.push((k, self.read_mem(k, id).await?, user_here));
        }
        Ok(Others {
            user: mem.user_hex.clone(),
            shards: shard_mems,
        })
    }

    /// Cleans up, on each shard of `others`, what an ended session left there (see
    /// [`clean`](super::clean)).
    async fn clean_shards(&self, id: &str, others: &Others) -> redis::RedisResult<()> {
        let shared = &self.shared;
        let keys = &shared.keys;
        let user = &others.user;
        for (shard, mem, user_here) in &others.shards {
            let open = mem.open_topics();
            let here = keys.mem(*shard, id);
            let mut invocation = shared.scripts.clean.prepare_invoke();
            invocation
                .key(&here)
                .key(keys.seq(*shard))
                .key(keys.presence(*shard))
                .key(if *user_here {
                    keys.us(user)
                } else {
                    here.clone()
                })
                .key(if *user_here {
                    keys.un(user)
                } else {
                    here.clone()
                });
            counts_keys(&mut invocation, keys, &open);
            invocation
                .arg(id)
                .arg(&mem.content)
                .arg(user)
                .arg(shared.config.stream_max)
                .arg(if *user_here { "1" } else { "0" });
            for topic in &open {
                invocation.arg(topic.as_str());
            }
            let mut conn = shared.conn.clone();
            invocation.invoke_async::<i64>(&mut conn).await?;
        }
        Ok(())
    }

    /// A claim found session `id` ended, with what it left in its home mem `mem`: cleans up
    /// what it left on the other shards before the session starts again there.
    pub(crate) async fn clean_elsewhere(&self, id: &str, mem: &Mem) -> redis::RedisResult<()> {
        let others = self.read_others(id, mem).await?;
        self.clean_shards(id, &others).await
    }

    /// Records again in Redis that session `id`, attached here, is `user`'s and in `topics`
    /// (see [`rejoin`](super::rejoin)): what this node does for each of its sessions when it
    /// finds that it was swept as dead.
    pub(crate) async fn register_again(
        &self,
        id: &str,
        user: Option<&Principal>,
        topics: &[TopicName],
    ) -> redis::RedisResult<()> {
        if user.is_some() {
            self.here(id, user, true).await?;
        }
        if topics.is_empty() {
            return Ok(());
        }
        let shared = &self.shared;
        let keys = &shared.keys;
        let home = keys.of_session(id);
        let mut by_shard: BTreeMap<u8, Vec<&TopicName>> = BTreeMap::new();
        by_shard.entry(home).or_default();
        for topic in topics {
            by_shard
                .entry(keys.of_topic(topic.as_str()))
                .or_default()
                .push(topic);
        }
        let others: Vec<String> = by_shard
            .keys()
            .filter(|&&k| k != home)
            .map(u8::to_string)
            .collect();
        // The home shard first, so that a claim from now on visits the others.
        let mut order: Vec<(u8, Vec<&TopicName>)> = by_shard.into_iter().collect();
        order.sort_by_key(|(k, _)| *k != home);
        for (shard, topics) in order {
            let mut invocation = shared.scripts.rejoin.prepare_invoke();
            invocation
                .key(keys.mem(shard, id))
                .key(keys.seq(shard))
                .key(keys.epoch(shard));
            counts_keys(&mut invocation, keys, &topics);
            invocation
                .arg(id)
                .arg(&shared.config.node)
                .arg(if shard == home { "1" } else { "0" })
                .arg(others.join(","))
                .arg(if shard == 0 { "0" } else { "1" });
            for topic in &topics {
                invocation.arg(topic.as_str());
            }
            let mut conn = shared.conn.clone();
            invocation.invoke_async::<i64>(&mut conn).await?;
        }
        Ok(())
    }
}

/// What an ended session left off its home shard: its user's hex, and each shard's mem of
/// it with whether the user's record is there.
struct Others {
    user: String,
    shards: Vec<(u8, Mem, bool)>,
}

/// Declares the keys that count a group's members at each node (`tn`, `tm`) of each of
/// `topics`.
fn counts_keys(
    invocation: &mut redis::ScriptInvocation<'_>,
    keys: &crate::keys::Keys,
    topics: &[&TopicName],
) {
    for topic in topics {
        invocation
            .key(keys.tn(topic.as_str()))
            .key(keys.tm(topic.as_str()));
    }
}

/// A number in a script's reply, as an integer or as text.
fn reply_u64(v: &Value) -> Option<u64> {
    reply::int(v)
        .and_then(|n| u64::try_from(n).ok())
        .or_else(|| std::str::from_utf8(reply::text(v)?).ok()?.parse().ok())
}

/// What `gone` and `orphan` take after their first keys: the tn and tm of every topic
/// `mem` is a member of now, then `id`, `arg` (this node, or the cut-off), what was read of
/// mem ([`Mem::check`]), its user, the presence stream's bound, and those topics.
fn cleanup_tail(
    invocation: &mut redis::ScriptInvocation<'_>,
    shared: &crate::engine::Shared,
    mem: &Mem,
    id: &str,
    arg: impl redis::ToRedisArgs,
) {
    let open = mem.open_topics();
    counts_keys(invocation, &shared.keys, &open);
    invocation
        .arg(id)
        .arg(arg)
        .arg(mem.check())
        .arg(&mem.user_hex)
        .arg(shared.config.stream_max);
    for topic in &open {
        invocation.arg(topic.as_str());
    }
}
