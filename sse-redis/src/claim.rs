//! A connection offers a session: the `claim` that answers it, on every shard the session
//! has keys on.
//!
//! On one shard the claim is one script. On several it runs once per shard, the session's
//! home shard first (its closed mark, owner, own log and user are decided there, and its
//! mem lists the other shards it has memberships on), then the others together: shard 0
//! for the broadcasts, each shard with a topic of the session, and its user's. Each step is
//! atomic on its shard and may be run again; each moves what routes to the session there
//! (topic and user member entries) to this node before it reads that shard's logs, so that
//! whatever it does not read comes to this node's inbox on that shard.

use std::collections::BTreeMap;

use futures_util::future::join_all;
use redis::{Script, Value};
use sse_proto::{Answers, Claimed, ClosedPolicy, Cursor, GapReason, Offer};

use crate::engine::{RedisEngine, lock, millis};
use crate::groups::{Mem, TRIES};
use crate::reply;

/// One shard's step of a claim. On the session's home shard (role `h`): is it closed
/// (consuming the mark when asked)? Does it exist? This node takes it over. On every shard
/// it touches: the session's memberships in the topics there and its user's record (if the
/// user is there) move to this node. With a position: what the session missed in every log
/// on the shard it may be entitled to, and what each log dropped (`max-deleted-entry-id`,
/// Redis 7). A session that does not exist any more (no owner mark) but left its mem,
/// because its node died before ending it, is not taken over: what it left on the home
/// shard is cleaned up first (as [`orphan`](crate::groups::orphan) would), and it starts
/// empty; the caller cleans up what it left on other shards.
///
/// KEYS: closed, owner, log, bcast, the shard's mem of the session, the user's ulog, us and
/// un, then for each topic: its tlog, tn and tm, and last the shard's sequence and epoch (a
/// key the step has no role for is the mem's, for the slot). ARGV: `1` to consume the mark,
/// this node, owner TTL (ms), the position's number on this shard (`-1`: no position), most
/// entries to read from each log, the fields of the mem the caller read (sorted,
/// comma-separated) and its `~k` and `~u` (`<fields>|<~k>|<~u>`), the user's hex when the
/// user's keys are on this shard (else empty), the session id, the mem TTL (ms), the roles
/// (`h` home, `b` broadcasts, `m` a shard the home mem lists, `n` a session this node
/// started whose first mark is on its way: it exists without an owner mark), the user's
/// start when its keys are here but the session's home is not, then the topics.
///
/// Returns `{1}` when closed, `{2}` when the mem changed since the caller read it, else `{0,
/// existed, mem}` or `{0, existed, log dropped, bcast dropped, log entries, bcast entries,
/// mem, user log dropped, user log entries, {{topic, dropped, entries}...}, the shard's
/// sequence number now (a position past it was never issued), where the shard's current
/// run started (0 on shard 0; a shard found empty starts one now), 1 when the home mem
/// lists the shard and it holds no mem of the session (it lost it)}`.
pub(crate) fn claim() -> Script {
    Script::new(&format!(
        r"
{STRETCHES}
local home = string.find(ARGV[10], 'h', 1, true) ~= nil
local bcast = string.find(ARGV[10], 'b', 1, true) ~= nil
if home then
  local closed
  if ARGV[1] == '1' then closed = redis.call('GETDEL', KEYS[1]) else closed = redis.call('GET', KEYS[1]) end
  if closed then return {{1}} end
end
if not holds(KEYS[5], ARGV[6]) then return {{2}} end
local fields = redis.call('HKEYS', KEYS[5])
local me = ARGV[2]
local id = ARGV[8]
local ntopics = #ARGV - 11
local user = ARGV[7]
local existed = 1
local lost_mem = false
if home then
  existed = redis.call('EXISTS', KEYS[2])
  -- Started on this node a moment ago: its owner mark is on its way.
  if existed == 0 and string.find(ARGV[10], 'n', 1, true) then existed = 1 end
  redis.call('SET', KEYS[2], me, 'PX', ARGV[3])
  if existed == 0 and #fields > 0 then
    -- What an ended session left (its node died before ending it): not this session's.
    for j = 1, ntopics do forget(KEYS[8 + 3 * j], KEYS[7 + 3 * j], id) end
    if user ~= '' then forget(KEYS[7], KEYS[8], id) end
    redis.call('DEL', KEYS[5])
    user = ''
    ntopics = 0
  end
elseif string.find(ARGV[10], 'm', 1, true) then
  -- A shard the home mem lists holds a mem of the session, unless it lost it.
  lost_mem = redis.call('EXISTS', KEYS[5]) == 0
  -- Joins and leaves here check that they reach the node serving the session, a join
  -- between its two steps included (it finds this node here).
  redis.call('HSET', KEYS[5], '~o', me)
end
for j = 1, ntopics do
  if last_open(redis.call('HGET', KEYS[5], ARGV[11 + j])) then
    assign(KEYS[8 + 3 * j], KEYS[7 + 3 * j], id, me)
  end
end
if user ~= '' then assign(KEYS[7], KEYS[8], id, me) end
if home then redis.call('PEXPIRE', KEYS[5], ARGV[9]) end
local mem = redis.call('HGETALL', KEYS[5])
if ARGV[4] == '-1' then return {{0, existed, mem}} end
local function dropped(key)
  if redis.call('EXISTS', key) == 0 then return '0-0' end
  local info = redis.call('XINFO', 'STREAM', key)
  for i = 1, #info, 2 do
    if info[i] == 'max-deleted-entry-id' then return info[i + 1] end
  end
  return '0-0'
end
local pos = tonumber(ARGV[4])
local function after(key, from)
  return redis.call('XRANGE', key, '(' .. from .. '-0', '+', 'COUNT', ARGV[5])
end
local out = {{0, existed, '0-0', '0-0', {{}}, {{}}, mem, '0-0', {{}}}}
if home then
  out[3] = dropped(KEYS[3])
  out[5] = after(KEYS[3], pos)
end
if bcast then
  out[4] = dropped(KEYS[4])
  out[6] = after(KEYS[4], pos)
end
if user ~= '' then
  local since = tonumber(ARGV[11]) or 0
  if home then
    local u = redis.call('HGET', KEYS[5], '~u') or ''
    since = tonumber(string.match(u, '^(%d+):') or '0')
  end
  out[8] = dropped(KEYS[6])
  out[9] = after(KEYS[6], math.max(pos, since))
end
local topics = {{}}
for j = 1, ntopics do
  local v = redis.call('HGET', KEYS[5], ARGV[11 + j]) or ''
  local from = nil
  for p in string.gmatch(v, '[^,]+') do
    local joined = tonumber(string.match(p, '^(%d+)'))
    local left = tonumber(string.match(p, '%-(%d+)$') or '-1')
    if left < 0 or left > pos then
      local f = math.max(joined, pos)
      if not from or f < from then from = f end
    end
  end
  if from then
    topics[#topics + 1] = {{ARGV[11 + j], dropped(KEYS[6 + 3 * j]), after(KEYS[6 + 3 * j], from)}}
  end
end
out[10] = topics
out[11] = tonumber(redis.call('GET', KEYS[#KEYS - 1]) or '0')
-- Where the shard's current run started (shard 0's runs are the deployment's epochs).
local through = '0'
if not bcast then
  through = redis.call('GET', KEYS[#KEYS]) or start_again(KEYS[#KEYS - 1], KEYS[#KEYS])
end
out[12] = tonumber(through)
out[13] = lost_mem and 1 or 0
return out
",
        STRETCHES = crate::groups::STRETCHES
    ))
}

/// What one shard's step is asked to do.
struct Step<'a> {
    shard: u8,
    home: bool,
    bcast: bool,
    /// Whether the home mem lists the shard (the session has or had memberships there).
    listed: bool,
    /// On the home shard: the session is one this node started, whose first mark has yet
    /// to reach Redis (see `Presence::fresh`); it exists without an owner mark.
    fresh: bool,
    /// The user's hex when its keys are on this shard, and its start (for a step off the
    /// session's home shard).
    user: Option<(&'a str, u64)>,
}

/// One shard's answer: the reply's items and the mem the step read.
pub(crate) struct Answer {
    pub(crate) shard: u8,
    pub(crate) items: Vec<Value>,
    pub(crate) mem: Mem,
}

impl RedisEngine {
    /// Answers what an event-stream request needs looked up, from Redis: is the id closed
    /// (on any node)? What did the session miss (resume mode)? It also makes this node the
    /// session's owner, so that what is sent to it from now on comes here. `None` with
    /// Redis away.
    pub(crate) async fn answer_offer(&self, offer: &Offer) -> Option<Answers> {
        let lookup = offer.lookup();
        let Some(id) = lookup.closed else {
            return Some(Answers::default());
        };
        let position = lookup.history.map(|(_, p)| p);
        let cursor = match &position {
            Some(Claimed::At(c)) if c.epoch() == self.epoch() => Some(c),
            _ => None,
        };
        let keys = &self.shared.keys;
        let home = keys.of_session(id.as_str());
        // Joins and leaves numbered from the claim on may reach this node before its hub
        // has the session (see `late.rs`).
        let fresh = {
            let mut presence = lock(&self.shared.presence);
            presence.claims.started(id);
            presence.fresh.contains(id)
        };
        let mut tries = 0;
        let (first, mem) = loop {
            tries += 1;
            // What the session is in decides the keys the claim touches: read it first.
            let Ok(mem) = self.read_mem(home, id.as_str()).await else {
                return self.away_none();
            };
            let user = mem.user_hex.clone();
            let on_home = keys.of_user(&user) == home;
            let step = Step {
                shard: home,
                home: true,
                bcast: home == 0,
                listed: false,
                fresh,
                user: on_home.then_some((user.as_str(), 0)),
            };
            match self.claim_step(&step, id.as_str(), &mem, cursor).await {
                Err(()) => return self.away_none(),
                // Its memberships changed in between: read them again.
                Ok(items) if items.first().and_then(reply::int) == Some(2) => {
                    if tries < TRIES {
                        continue;
                    }
                    return None;
                }
                Ok(items) => break (items, mem),
            }
        };
        if first.first().and_then(reply::int) == Some(1) {
            return Some(Answers {
                closed: true,
                history: None,
            });
        }
        let existed = first.get(1).and_then(reply::int) == Some(1);
        let mut answers = vec![Answer {
            shard: home,
            items: first,
            mem,
        }];
        let home_mem = &answers[0].mem;
        if !existed {
            // What an ended session left on other shards is not this one's.
            if !keys.single() && self.clean_elsewhere(id.as_str(), home_mem).await.is_err() {
                return self.away_none();
            }
        } else if !keys.single() {
            let others = self.other_steps(home, home_mem, cursor.is_some());
            let user = home_mem.user_hex.clone();
            let since = home_mem.user.as_ref().map_or(0, |(_, s)| *s);
            let steps = others.iter().map(|&(shard, bcast, has_user)| Step {
                shard,
                home: false,
                bcast,
                listed: home_mem.shards.contains(&shard),
                fresh: false,
                user: has_user.then_some((user.as_str(), since)),
            });
            let done = join_all(steps.map(|step| self.claim_on(step, id.as_str(), cursor))).await;
            for answer in done {
                match answer {
                    Some(answer) => answers.push(answer),
                    None => return self.away_none(),
                }
            }
        }
        let history = match &position {
            // Without resume mode nothing is logged.
            None => None,
            Some(Claimed::None) if existed => Some(Err(GapReason::NoPosition)),
            Some(Claimed::None) => None,
            Some(Claimed::Invalid) => Some(Err(GapReason::InvalidPosition)),
            Some(Claimed::At(_)) if cursor.is_none() => Some(Err(GapReason::UnknownEpoch)),
            Some(Claimed::At(_)) if !existed => Some(Err(GapReason::Expired)),
            Some(Claimed::At(c)) => Some(crate::fetch::fetched(
                answers,
                id,
                c,
                self.epoch(),
                keys.placement(),
                *lock(&self.shared.bounds),
            )),
        };
        Some(Answers {
            closed: false,
            history,
        })
    }

    fn away_none(&self) -> Option<Answers> {
        self.shared.set_up(false);
        None
    }

    /// The shards other than its home that a claim of a session whose home mem is `mem`
    /// visits: each with whether it reads the broadcasts there and whether the user's keys
    /// are there.
    fn other_steps(&self, home: u8, mem: &Mem, position: bool) -> Vec<(u8, bool, bool)> {
        let keys = &self.shared.keys;
        let mut shards: BTreeMap<u8, (bool, bool)> = BTreeMap::new();
        if position && home != 0 {
            shards.entry(0).or_default().0 = true;
        }
        for &k in &mem.shards {
            if k != home {
                shards.entry(k).or_default();
            }
        }
        if !mem.user_hex.is_empty() {
            let u = keys.of_user(&mem.user_hex);
            if u != home {
                shards.entry(u).or_default().1 = true;
            }
        }
        shards.into_iter().map(|(k, (b, u))| (k, b, u)).collect()
    }

    /// One step off the home shard, read again while its mem changes under it.
    async fn claim_on(&self, step: Step<'_>, id: &str, cursor: Option<&Cursor>) -> Option<Answer> {
        for _ in 0..TRIES {
            let mem = self.read_mem(step.shard, id).await.ok()?;
            let items = self.claim_step(&step, id, &mem, cursor).await.ok()?;
            if items.first().and_then(reply::int) != Some(2) {
                return Some(Answer {
                    shard: step.shard,
                    items,
                    mem,
                });
            }
        }
        None
    }

    /// Runs one shard's step of a claim.
    async fn claim_step(
        &self,
        step: &Step<'_>,
        id: &str,
        mem: &Mem,
        cursor: Option<&Cursor>,
    ) -> Result<Vec<Value>, ()> {
        let shared = &self.shared;
        let keys = &shared.keys;
        let bounds = *lock(&shared.bounds);
        let consume = shared.config.closed_policy == ClosedPolicy::ConsumeOnFirst;
        let here = keys.mem(step.shard, id);
        let or_here = |role: bool, key: String| if role { key } else { here.clone() };
        let topics = mem.topic_names();
        let user = step.user.map_or("", |(hex, _)| hex);
        let mut invocation = shared.scripts.claim.prepare_invoke();
        invocation
            .key(or_here(step.home, keys.closed(id)))
            .key(or_here(step.home, keys.owner(id)))
            .key(or_here(step.home, keys.log(id)))
            .key(or_here(step.bcast, keys.bcast()))
            .key(&here)
            .key(or_here(!user.is_empty(), keys.ulog(user)))
            .key(or_here(!user.is_empty(), keys.us(user)))
            .key(or_here(!user.is_empty(), keys.un(user)));
        for t in &topics {
            invocation
                .key(keys.tlog(t.as_str()))
                .key(keys.tn(t.as_str()))
                .key(keys.tm(t.as_str()));
        }
        let position = cursor.map_or(-1, |c| {
            i64::try_from(c.seq(step.shard).unwrap_or(0)).unwrap_or(i64::MAX)
        });
        let roles: String = [
            (step.home, 'h'),
            (step.bcast, 'b'),
            (step.listed, 'm'),
            (step.fresh, 'n'),
        ]
        .into_iter()
        .filter_map(|(on, role)| on.then_some(role))
        .collect();
        invocation
            .key(keys.seq(step.shard))
            .key(keys.epoch(step.shard))
            .arg(if consume { "1" } else { "0" })
            .arg(&shared.config.node)
            .arg(millis(shared.owner_ttl(true)))
            .arg(position)
            .arg(bounds.max_events + 1)
            .arg(mem.check())
            .arg(user)
            .arg(id)
            .arg(millis(shared.mem_ttl(true)))
            .arg(&roles)
            .arg(step.user.map_or(0, |(_, since)| since));
        for t in &topics {
            invocation.arg(t.as_str());
        }
        let mut conn = shared.conn.clone();
        match invocation.invoke_async::<Value>(&mut conn).await {
            Ok(v) => {
                shared.set_up(true);
                Ok(reply::array(&v).to_vec())
            }
            Err(_) => Err(()),
        }
    }
}
