//! Presence: which node serves which session, as Redis has it.
//!
//! A node writes to Redis when one of its sessions attaches, detaches or ends (batched: one
//! round takes every change queued since the last), and once per heartbeat that it is
//! alive: its `nodes` entry and its `alive` mark, one write whatever its number of sessions.
//! An attached session's marks carry no TTL; the node's entry stands for them. Each beat,
//! the node also looks for nodes whose entry is out of date (dead, or cut off from Redis for
//! three heartbeats) and sweeps them: their sessions are detached, each with the grace to
//! resume elsewhere. A node that finds itself swept, and a node that starts, registers each
//! of its sessions again.

use std::future::{Future, poll_fn};
use std::task::Poll;
use std::time::Instant;

use async_io::Timer;
use futures_lite::future;
use futures_util::future::{join_all, try_join_all};
use futures_util::stream::{self, StreamExt};
use redis::Value;
use sse_proto::{Principal, RelayPort, SessionId};

use crate::driver::BACKOFF;
use crate::engine::{Change, RedisEngine, lock, millis, now_ms};
use crate::reply;

/// Most registrations (`here`) and clean-ups (`gone`) in flight at once, each a few round
/// trips: they are pipelined on the one connection.
const IN_FLIGHT: usize = 32;

/// Runs `task` on each of `items`, [`IN_FLIGHT`] at a time, and collects what each gave, or
/// the first error. Give each task an owned handle on the engine: over borrowed items the
/// presence task would not be `Send` (the compiler cannot prove it for them).
async fn in_flight<I, T, F, Fut>(items: I, task: F) -> redis::RedisResult<Vec<T>>
where
    I: IntoIterator,
    F: FnMut(I::Item) -> Fut,
    Fut: Future<Output = redis::RedisResult<T>>,
{
    let results: Vec<_> = stream::iter(items)
        .map(task)
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    results.into_iter().collect()
}

/// What a heartbeat found.
#[derive(Default)]
struct Beat {
    /// This node's entry was gone on a shard: it was swept as dead, or the shard lost it.
    swept: bool,
    /// The nodes found dead, on each shard.
    dead: Vec<(u8, String)>,
    /// Where each shard other than 0 started its current run.
    runs: Vec<(u8, u64)>,
    /// The error of a shard it could not reach.
    failed: Option<redis::RedisError>,
}

/// What a presence round found: whether this node was swept, and where each shard other
/// than 0 it beat on started its current run.
#[derive(Default)]
struct Round {
    swept: bool,
    runs: Vec<(u8, u64)>,
}

/// Most sessions one sweep script takes.
const SWEEP_BATCH: usize = 256;

/// Sessions a heartbeat looks at at once to clean up after them (see
/// [`RedisEngine::orphans`]).
const ORPHAN_BATCH: usize = 256;

/// Most batches of [`ORPHAN_BATCH`] a heartbeat cleans up after.
const ORPHAN_ROUNDS: usize = 16;

/// Marks one session attached here (`ARGV[3]` = `0`) or detached here (`ARGV[3]` = the
/// detached TTL), unless another node owns it now (a tab that moved on).
///
/// KEYS: owner, mem, all, this node's live set. ARGV: this node, the id, the TTL (ms), now
/// (ms), mem's TTL (ms; longer: see [`RedisEngine::orphans`]). Returns 1, or 0 when another
/// node owns the session.
const MARK: &str = r"
local owner = redis.call('GET', KEYS[1])
if owner and owner ~= ARGV[1] then return 0 end
if ARGV[3] == '0' then
  redis.call('SET', KEYS[1], ARGV[1])
  redis.call('PERSIST', KEYS[2])
  redis.call('ZADD', KEYS[3], '+inf', ARGV[2])
  redis.call('SADD', KEYS[4], ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
  redis.call('ZADD', KEYS[3], tonumber(ARGV[4]) + tonumber(ARGV[3]), ARGV[2])
  redis.call('SREM', KEYS[4], ARGV[2])
end
return 1
";

impl RedisEngine {
    /// The presence task: a round whenever sessions changed, and every heartbeat.
    pub(crate) async fn presence(self, port: RelayPort) {
        let shared = &self.shared;
        let mut next_beat = Instant::now();
        let mut backoff = BACKOFF.0;
        // Whether what a previous run with this node's name left has been swept.
        let mut started = false;
        // Whether this node was found swept as dead and has yet to record its sessions'
        // users and topics again.
        let mut restore = false;
        // Where each shard other than 0 started the run this task knows, and the shards
        // found in a new run since this node last recorded its sessions again. Its own
        // record, not the readers' (`shard_epochs`): a reader may follow a shard into its
        // new run first, and this task must still end the streams and record again.
        let mut runs: std::collections::BTreeMap<u8, u64> = lock(&shared.shard_epochs)
            .iter()
            .enumerate()
            .skip(1)
            .filter_map(|(k, &run)| Some((u8::try_from(k).ok()?, run)))
            .collect();
        let mut lost = std::collections::BTreeSet::new();
        loop {
            self.apply_ready(&port);
            let Some(hub) = port.hub() else { return };
            let beat = Instant::now() >= next_beat;
            let changes = std::mem::take(&mut lock(&shared.presence).changes);
            if changes.is_empty() && !beat {
                drop(hub);
                let wait = poll_fn(|cx| {
                    let mut presence = lock(&shared.presence);
                    if presence.changes.is_empty() && presence.claims.ready.is_empty() {
                        presence.waker = Some(cx.waker().clone());
                        Poll::Pending
                    } else {
                        Poll::Ready(())
                    }
                });
                future::or(wait, async {
                    Timer::at(next_beat).await;
                })
                .await;
                continue;
            }
            // What the round needs of the hub, taken now: it is not held across Redis.
            let grace = lock(&shared.grace).is_some();
            let mut attached = Vec::new();
            let mut detached = Vec::new();
            let mut gone = Vec::new();
            for (id, change) in &changes {
                let user = || hub.session(id.as_str()).and_then(|s| s.user());
                match (change, grace) {
                    (Change::Attached, _) => attached.push((id.clone(), user())),
                    // Attached and detached again since the last round: its user is recorded
                    // all the same, or a send to the user would miss the tab that comes back.
                    (Change::Detached, true) => detached.push((id.clone(), user())),
                    // Over here: every trace goes, unless another node serves it now.
                    (Change::Detached, false) | (Change::Gone, _) => gone.push(id.clone()),
                }
            }
            let all_here = beat.then(|| hub.ids());
            drop(hub);
            let mut done = self
                .round(attached, detached, gone, all_here, &mut started)
                .await
                .map(|round| {
                    restore |= round.swept;
                    for (shard, run) in round.runs {
                        let seen = runs.entry(shard).or_insert(run);
                        if *seen != run {
                            // The shard lost its contents: its new run started at `run`.
                            *seen = run;
                            port.restart_shard(shard, run);
                            restore = true;
                            lost.insert(shard);
                        }
                    }
                });
            if done.is_ok() && restore {
                done = self.restore(&port, &lost).await;
                restore = done.is_err();
                if !restore {
                    lost.clear();
                }
            }
            match done {
                Ok(_) => {
                    // Their marks are in Redis now.
                    let mut presence = lock(&shared.presence);
                    for id in changes.keys() {
                        presence.fresh.remove(id);
                    }
                    drop(presence);
                    shared.set_up(true);
                    backoff = BACKOFF.0;
                    if beat {
                        next_beat = Instant::now() + shared.config.heartbeat;
                    }
                }
                Err(_) => {
                    shared.set_up(false);
                    // Put the changes back, unless newer ones came meanwhile.
                    {
                        let mut presence = lock(&shared.presence);
                        for (id, change) in changes {
                            presence.changes.entry(id).or_insert(change);
                        }
                    }
                    Timer::after(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF.1);
                }
            }
        }
    }

    /// Records again the users and topics of every session this node serves (see
    /// [`register_again`](RedisEngine::register_again)), 32 at a time. The streams of those
    /// that read a shard in `lost` (one that lost its contents) end first: what that shard
    /// numbered before this record reached no tab live, and a tab that goes on from where
    /// it stopped gets a gap for it, where one that had stayed would have skipped it.
    async fn restore(
        &self,
        port: &RelayPort,
        lost: &std::collections::BTreeSet<u8>,
    ) -> redis::RedisResult<()> {
        let Some(hub) = port.hub() else {
            return Ok(());
        };
        if !lost.is_empty() {
            let placement = self.shared.keys.placement();
            crate::lineage::end_streams_reading(&hub, placement, |k| lost.contains(&k));
        }
        let sessions: Vec<_> = hub
            .ids()
            .into_iter()
            .filter_map(|id| {
                let session = hub.session(id.as_str())?;
                Some((id, session.user(), session.topics()))
            })
            .collect();
        drop(hub);
        in_flight(sessions, |(id, user, topics)| {
            let engine = self.clone();
            async move {
                engine
                    .register_again(id.as_str(), user.as_ref(), &topics)
                    .await
            }
        })
        .await?;
        Ok(())
    }

    /// One round: the changes, then (with `all_here`, the sessions attached here, on a
    /// heartbeat) this node's entry, and the sweep of dead nodes. Says whether this node
    /// found itself swept as dead (or new), when its sessions' users and topics are recorded
    /// again, and where each shard's run started, a new one when the shard lost its
    /// contents.
    async fn round(
        &self,
        attached: Vec<(SessionId, Option<Principal>)>,
        detached: Vec<(SessionId, Option<Principal>)>,
        gone: Vec<SessionId>,
        all_here: Option<Vec<SessionId>>,
        started: &mut bool,
    ) -> redis::RedisResult<Round> {
        let shared = &self.shared;
        let keys = &shared.keys;
        let node = &shared.config.node;
        if !*started {
            // A previous run with this name may have left sessions: none is attached here.
            // Every shard at once.
            try_join_all(keys.every().map(|shard| async move {
                let mut conn = shared.conn.clone();
                redis::cmd("ZREM")
                    .arg(keys.nodes(shard))
                    .arg(node)
                    .query_async::<()>(&mut conn)
                    .await?;
                self.sweep(shard, node).await
            }))
            .await?;
            *started = true;
        }
        // The heartbeat first, on every shard it can reach: a node cut off from one shard
        // keeps its sessions on the others.
        let now = now_ms();
        let beat = match &all_here {
            Some(_) => Some(self.beat(now).await),
            None => None,
        };
        let attached_ids: Vec<&SessionId> = attached.iter().map(|(id, _)| id).collect();
        let detached_ids: Vec<&SessionId> = detached.iter().map(|(id, _)| id).collect();
        self.mark(&attached_ids, true).await?;
        self.mark(&detached_ids, false).await?;
        let users = (attached.into_iter().map(|(id, user)| (id, user, true))).chain(
            detached
                .into_iter()
                .filter(|(_, user)| user.is_some())
                .map(|(id, user)| (id, user, false)),
        );
        in_flight(users, |(id, user, attached)| {
            let engine = self.clone();
            async move { engine.here(id.as_str(), user.as_ref(), attached).await }
        })
        .await?;
        in_flight(gone, |id| {
            let engine = self.clone();
            async move { engine.gone(id.as_str()).await }
        })
        .await?;
        let (Some(all_here), Some(beat)) = (all_here, beat) else {
            return Ok(Round::default());
        };
        if beat.swept {
            let ids: Vec<&SessionId> = all_here.iter().collect();
            self.mark(&ids, true).await?;
        }
        let others = beat.dead.iter().filter(|(_, n)| n != node);
        try_join_all(others.map(|(shard, other)| self.sweep(*shard, other))).await?;
        self.orphans(now).await?;
        match beat.failed {
            Some(error) => Err(error),
            None => Ok(Round {
                swept: beat.swept,
                runs: beat.runs,
            }),
        }
    }

    /// The heartbeat, on every shard at once: renews this node's alive mark and entry in
    /// `nodes`, trims `all`, and reads the nodes found dead and where each shard's run
    /// started. A shard it cannot reach holds up none of the others: its error is in the
    /// answer.
    async fn beat(&self, now: u64) -> Beat {
        let shared = &self.shared;
        let keys = &shared.keys;
        let node = &shared.config.node;
        let beats = join_all(keys.every().map(|shard| async move {
            // The beat was never a write that waits for replicas: it says this node is
            // alive, which it is even while too few replicas answer.
            let mut conn = shared.conn.unwaited();
            let (added, late, run): (i64, Vec<String>, u64) = shared
                .scripts
                .beat
                .key(keys.alive(shard, node))
                .key(keys.nodes(shard))
                .key(keys.all(shard))
                .key(keys.seq(shard))
                .key(keys.epoch(shard))
                .arg(node)
                .arg(millis(shared.alive_ttl()))
                .arg(now + millis(shared.live_ttl()))
                .arg(now.saturating_sub(millis(shared.mem_slack())))
                .arg(now)
                .arg(if shard == 0 { "0" } else { "1" })
                .invoke_async(&mut conn)
                .await?;
            redis::RedisResult::Ok((shard, added, late, run))
        }))
        .await;
        let mut out = Beat::default();
        for beat in beats {
            match beat {
                Ok((shard, added, late, run)) => {
                    out.swept |= added == 1;
                    out.dead.extend(late.into_iter().map(|n| (shard, n)));
                    if shard != 0 {
                        out.runs.push((shard, run));
                    }
                }
                Err(e) => out.failed = Some(e),
            }
        }
        out
    }

    /// Cleans up after sessions whose marks expired a heartbeat ago or more with nobody to
    /// end them (see [`orphan`](crate::groups::orphan)), [`ORPHAN_BATCH`] at a time, at most
    /// [`ORPHAN_ROUNDS`] batches a heartbeat.
    ///
    /// A node ends its own sessions when their grace is over and cleans up after each (the
    /// `gone` script). One that dies or stops first leaves their memberships and users'
    /// records behind, counted at its name; the sessions' `all` entries say when their
    /// marks expired, and their mem outlives the marks by [`mem_slack`], so any live node
    /// can do it for them. A session its node ends itself has no `all` entry left by then.
    ///
    /// [`mem_slack`]: crate::engine::Shared::mem_slack
    async fn orphans(&self, now: u64) -> redis::RedisResult<()> {
        let shared = &self.shared;
        let due = now.saturating_sub(millis(shared.config.heartbeat));
        try_join_all(shared.keys.every().map(|shard| self.orphans_on(shard, due))).await?;
        Ok(())
    }

    /// Cleans up after the sessions homed on `shard` that nobody ended, due by `due`.
    async fn orphans_on(&self, shard: u8, due: u64) -> redis::RedisResult<()> {
        let shared = &self.shared;
        // Entries looked at and left (claimed again since): the next batch starts past them.
        let mut left = 0;
        for _ in 0..ORPHAN_ROUNDS {
            let mut conn = shared.conn.clone();
            let ids: Vec<String> = redis::cmd("ZRANGEBYSCORE")
                .arg(shared.keys.all(shard))
                .arg("-inf")
                .arg(due)
                .arg("LIMIT")
                .arg(left)
                .arg(ORPHAN_BATCH)
                .query_async(&mut conn)
                .await?;
            let cleaned = in_flight(ids.iter().cloned(), |id| {
                let engine = self.clone();
                async move { engine.orphan(&id, due).await }
            })
            .await?;
            left += cleaned.iter().filter(|&&cleaned| !cleaned).count();
            if ids.len() < ORPHAN_BATCH {
                break;
            }
        }
        Ok(())
    }

    /// Marks `ids` attached here (or detached here), in one pipeline.
    async fn mark(&self, ids: &[&SessionId], attached: bool) -> redis::RedisResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let shared = &self.shared;
        let keys = &shared.keys;
        let node = &shared.config.node;
        let (ttl, mem_ttl) = if attached {
            (0, 0)
        } else {
            (
                millis(shared.owner_ttl(false)),
                millis(shared.mem_ttl(false)),
            )
        };
        let now = now_ms();
        // One pipeline per shard: a pipeline's keys share a slot. Each entry is a script
        // that declares its keys, so a pipeline re-sent whole to a migrating slot's new
        // master runs each where all its keys are, or not at all (see `scripts::beat`);
        // and marking twice marks the same.
        let by_shard = keys.by_home(ids.iter().map(|id| id.as_str()));
        // Every shard at once; one that cannot be reached holds up none of the others.
        let marked = join_all(by_shard.into_iter().map(|(shard, ids)| async move {
            for chunk in ids.chunks(1024) {
                let mut pipe = redis::pipe();
                for id in chunk {
                    pipe.cmd("EVAL")
                        .arg(MARK)
                        .arg(4)
                        .arg(keys.owner(id))
                        .arg(keys.mem(shard, id))
                        .arg(keys.all(shard))
                        .arg(keys.live(shard, node))
                        .arg(node)
                        .arg(id)
                        .arg(ttl)
                        .arg(now)
                        .arg(mem_ttl)
                        .ignore();
                }
                let mut conn = shared.conn.clone();
                pipe.query_async::<()>(&mut conn).await?;
            }
            redis::RedisResult::Ok(())
        }))
        .await;
        marked.into_iter().collect()
    }

    /// Sweeps `node`'s live set (see [`sweep`](crate::scripts::sweep)), a batch at a time.
    async fn sweep(&self, shard: u8, node: &str) -> redis::RedisResult<()> {
        let shared = &self.shared;
        let keys = &shared.keys;
        let live = keys.live(shard, node);
        let ttl = millis(shared.owner_ttl(false));
        let mem_ttl = millis(shared.mem_ttl(false));
        loop {
            let mut conn = shared.conn.clone();
            let ids: Vec<String> = redis::cmd("SRANDMEMBER")
                .arg(&live)
                .arg(SWEEP_BATCH)
                .query_async(&mut conn)
                .await?;
            let mut invocation = shared.scripts.sweep.prepare_invoke();
            invocation
                .key(keys.nodes(shard))
                .key(&live)
                .key(keys.all(shard));
            for id in &ids {
                invocation.key(keys.owner(id)).key(keys.mem(shard, id));
            }
            invocation.arg(node).arg(now_ms()).arg(ttl).arg(mem_ttl);
            for id in &ids {
                invocation.arg(id);
            }
            let left: i64 = invocation.invoke_async(&mut conn).await?;
            if left <= 0 {
                return Ok(());
            }
        }
    }

    /// The ids with a live connection, on every node whose entry is up to date.
    pub(crate) async fn live_sessions(&self) -> redis::RedisResult<Vec<String>> {
        let shared = &self.shared;
        let keys = &shared.keys;
        let mut conn = shared.conn.clone();
        let nodes: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(keys.nodes(0))
            .arg(now_ms())
            .arg("+inf")
            .query_async(&mut conn)
            .await?;
        if nodes.is_empty() {
            return Ok(Vec::new());
        }
        let mut ids = Vec::new();
        for shard in keys.every() {
            let mut union = redis::cmd("SUNION");
            for node in &nodes {
                union.arg(keys.live(shard, node));
            }
            let reply: Value = union.query_async(&mut conn).await?;
            ids.extend(
                reply::array(&reply)
                    .iter()
                    .filter_map(reply::text)
                    .filter_map(|t| String::from_utf8(t.to_vec()).ok()),
            );
        }
        Ok(ids)
    }
}
