//! The scripts of topics and users. Every key a script touches is declared: where a key
//! depends on what Redis holds (the node that serves a session, the nodes with a member of a
//! topic), the caller reads it first and passes what it read, and the script refuses (`-2`)
//! when Redis holds something else by then, so that the caller reads again.
//!
//! | key | type | what |
//! |---|---|---|
//! | `<p>mem:<id>` | hash | the session's memberships: topic → its stretches, `j` (a member since `j`) or `j-l` (from `j` to the topic's event `l`), comma-separated, oldest first; `~u` → `<since>:<user hex>`; `~s` → where its replay is exact from once old stretches were dropped. Outlives the session's owner mark by two alive marks (a minute at least), so that a live node can clean up after a session whose node died (see `orphan`) |
//! | `<p>mem:<id>`, several shards | hash | on the session's home shard as above, for the topics there, and `~k` → the other shards it has memberships on; on each of those, its memberships in the topics there, `~s` in that shard's numbers, and `~o` → the node serving it as that shard's steps know it (a claim moves it, a join or leave checks it); on its user's shard, `~u` as well. Off the home shard without a TTL: the session's end, or the clean-up after it, takes it |
//! | `<p>tlog:<topic>` | stream, ids `<seq>-0` | a topic's publishes (`f`, `m`), trimmed by count, expiring a grace after its last entry |
//! | `<p>ulog:<user hex>` | stream | a user's sends, likewise |
//! | `<p>tm:<topic>` | hash | the topic's member sessions → the node that serves each |
//! | `<p>tn:<topic>` | hash | node → how many of the topic's members it serves: where a publish goes |
//! | `<p>us:<user hex>` | hash | the user's sessions → the node that serves each |
//! | `<p>un:<user hex>` | hash | node → how many of the user's sessions it serves |
//! | `<p>alive:<node>` | string with a TTL | the node renewed it within three heartbeats or 30 s, whichever is longer: a publish goes only to live nodes |
//! | `<p>presence` | stream, ids `<seq>-0` | every join (`t` = `J`) and leave (`L`) on any node: `s` session, `g` topic, `u` user hex; read by the nodes that observe presence |

use redis::Script;

/// Lua helpers over a membership's stretches, after the numbering helpers
/// ([`numbers_lua`](crate::scripts::numbers_lua)).
pub(crate) const STRETCHES: &str = concat!(
    crate::scripts::numbers_lua!(),
    r"
local function last_open(v)
  if not v then return false end
  local last = string.match(v, '[^,]+$')
  return last ~= nil and string.find(last, '-', 1, true) == nil
end
-- Keeps the newest `max` stretches of `v`; returns them and the highest end dropped.
local function trim(v, max)
  local parts = {}
  for p in string.gmatch(v, '[^,]+') do parts[#parts + 1] = p end
  local dropped = 0
  while #parts > max do
    local l = tonumber(string.match(parts[1], '%-(%d+)$') or '0')
    if l > dropped then dropped = l end
    table.remove(parts, 1)
  end
  return table.concat(parts, ','), dropped
end
local function raise_since(mem, to)
  if to > tonumber(redis.call('HGET', mem, '~s') or '0') then
    redis.call('HSET', mem, '~s', to)
  end
end
local function count_down(hash, field)
  if tonumber(redis.call('HINCRBY', hash, field, -1)) <= 0 then
    redis.call('HDEL', hash, field)
  end
end
-- Drops the session `id` from a group's `members` (tm or us), and counts it down at the node
-- that was serving it in `nodes` (tn or un). Returns whether it was there.
local function forget(members, nodes, id)
  local node = redis.call('HGET', members, id)
  if not node then return false end
  redis.call('HDEL', members, id)
  count_down(nodes, node)
  return true
end
-- Adds shard `k` to the list (`~k`) of the other shards a session's home mem says it has
-- memberships on.
local function add_shard(mem, k)
  local list = redis.call('HGET', mem, '~k') or ''
  for s in string.gmatch(list, '[^,]+') do
    if s == k then return end
  end
  redis.call('HSET', mem, '~k', list == '' and k or (list .. ',' .. k))
end
-- Whether the session's `mem` still holds what the caller read (`check`): its fields, and
-- the values of `~k` and `~u`, which decide the keys and shards a script touches.
local function holds(mem, check)
  local fields = redis.call('HKEYS', mem)
  table.sort(fields)
  local now = table.concat(fields, ',') .. '|' .. (redis.call('HGET', mem, '~k') or '')
    .. '|' .. (redis.call('HGET', mem, '~u') or '')
  return now == check
end
-- Forgets the session `id` in the topics whose tn and tm are KEYS[first], KEYS[first + 1],
-- and so on in pairs to the last key (their names ARGV[names], ARGV[names + 1], …), and
-- announces each leave on the presence stream (numbered by `seq`, at most `max` entries;
-- `user` the session's user's hex).
local function forget_all(first, names, id, seq, presence, max, user)
  for i = first, #KEYS, 2 do
    if forget(KEYS[i + 1], KEYS[i], id) then
      local n = next_seq(seq)
      redis.call('XADD', presence, 'MAXLEN', '~', max, n .. '-0',
        't', 'L', 's', id, 'g', ARGV[names + (i - first) / 2], 'u', user)
    end
  end
end
-- Records the session `id` in a group's `members` as served by `node`, counted at `node` in
-- `nodes` (and no more at the node that served it before). Returns whether it changed.
local function assign(members, nodes, id, node)
  local prev = redis.call('HGET', members, id)
  if prev == node then return false end
  redis.call('HSET', members, id, node)
  redis.call('HINCRBY', nodes, node, 1)
  if prev then count_down(nodes, prev) end
  return true
end
"
);

/// A session joins a topic, on the topic's shard: numbered, recorded, and handed to the node
/// that serves it. On the session's home shard it checks the owner mark; on another, the
/// owner that shard's mem of the session records (`~o`, which every claim there moves to
/// the claiming node), recorded now when there is none: [`join_home`] ran first, so a claim
/// from now on visits this shard.
///
/// A retry of a join Redis may have applied finds it by its message id (the presence
/// entry's `m`, or the done mark a retry left) and is not applied again: after a leave
/// made meanwhile, it would make the session a member again.
///
/// KEYS: owner (off the home shard: the mem), seq, mem, tn, tm, the owner's node stream,
/// presence, done mark. ARGV: id, topic, the owner the caller read (or this node when
/// none), this node, node stream max entries, mem TTL (ms), most stretches kept per topic,
/// the user's hex as the caller knows it (for the presence entry, until presence records
/// it), `1` on the home shard, message id, `1` for a retry, done mark TTL (ms).
///
/// Returns the join's sequence number, 0 when it was a member already, -2 when the owner
/// changed since the caller read it.
pub(crate) fn join() -> Script {
    Script::new(&format!(
        r"
{STRETCHES}
{ONCE}
local home = ARGV[9] == '1'
local owner
if home then
  owner = redis.call('GET', KEYS[1])
  if not owner then
    if ARGV[3] ~= ARGV[4] then return -2 end
    owner = ARGV[4]
    redis.call('SET', KEYS[1], owner, 'PX', ARGV[6])
  elseif owner ~= ARGV[3] then
    return -2
  end
else
  owner = redis.call('HGET', KEYS[3], '~o')
  if not owner then
    owner = ARGV[3]
    redis.call('HSET', KEYS[3], '~o', owner)
  elseif owner ~= ARGV[3] then
    return -2
  end
end
local found = numbered_before(KEYS[8], KEYS[7], ARGV[10], ARGV[11], ARGV[12])
if found then return found end
local cur = redis.call('HGET', KEYS[3], ARGV[2])
if last_open(cur) then return 0 end
-- Attached on its node (an owner mark without a TTL), the session keeps its mem for good;
-- off the home shard a mem has no TTL (the session's end or its orphan clean-up takes it).
local kept_for_good = not home or redis.call('PTTL', KEYS[3]) == -1
  or redis.call('PTTL', KEYS[1]) == -1
local seq = next_seq(KEYS[2])
local v = cur and (cur .. ',' .. seq) or tostring(seq)
local kept, dropped = trim(v, tonumber(ARGV[7]))
redis.call('HSET', KEYS[3], ARGV[2], kept)
raise_since(KEYS[3], dropped)
if not kept_for_good then redis.call('PEXPIRE', KEYS[3], ARGV[6]) end
redis.call('HINCRBY', KEYS[4], owner, 1)
redis.call('HSET', KEYS[5], ARGV[1], owner)
redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[5], seq .. '-0',
  't', 'j', 's', ARGV[1], 'g', ARGV[2])
local u = redis.call('HGET', KEYS[3], '~u')
u = u and string.match(u, ':(.*)$') or ARGV[8]
redis.call('XADD', KEYS[7], 'MAXLEN', '~', ARGV[5], seq .. '-0',
  't', 'J', 's', ARGV[1], 'g', ARGV[2], 'u', u, 'm', ARGV[10])
if ARGV[11] == '1' then redis.call('SET', KEYS[8], seq, 'PX', ARGV[12]) end
return seq
",
        ONCE = crate::scripts::ONCE
    ))
}

/// Before a join on another shard than the session's home: on the home shard, checks the
/// owner mark (as [`join`] does there) and adds the topic's shard to the list of shards the
/// session has memberships on, so that every claim from now on visits it.
///
/// KEYS: owner, the home mem. ARGV: the owner the caller read (or this node when none), this
/// node, mem TTL (ms), the topic's shard.
///
/// Returns 1, or -2 when the owner changed since the caller read it.
pub(crate) fn join_home() -> Script {
    Script::new(&format!(
        r"
{STRETCHES}
local owner = redis.call('GET', KEYS[1])
if not owner then
  if ARGV[1] ~= ARGV[2] then return -2 end
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
elseif owner ~= ARGV[1] then
  return -2
end
add_shard(KEYS[2], ARGV[4])
if redis.call('PTTL', KEYS[1]) ~= -1 then redis.call('PEXPIRE', KEYS[2], ARGV[3]) end
return 1
"
    ))
}

/// A session leaves a topic, on the topic's shard: with `keep`, its stretch ends at the
/// topic's last event and stays replayable; without, it is dropped (withheld). The owner is
/// checked as [`join`] checks it.
///
/// A retry is applied once, as a join's is.
///
/// KEYS: owner (off the home shard: the mem), seq, mem, tn, tm, tlog, the owner's node
/// stream, presence, done mark. ARGV: id, topic, the owner the caller read (empty: none),
/// node stream max entries, `1` to keep, `1` on the home shard, message id, `1` for a
/// retry, done mark TTL (ms).
///
/// Returns the leave's sequence number, 0 when it was not a member, -2 when the owner
/// changed since the caller read it.
pub(crate) fn leave() -> Script {
    Script::new(&format!(
        r"
{STRETCHES}
{ONCE}
local owner
if ARGV[6] == '1' then
  owner = redis.call('GET', KEYS[1]) or ''
  if owner ~= ARGV[3] then return -2 end
else
  owner = redis.call('HGET', KEYS[3], '~o') or ''
  if owner ~= '' and ARGV[3] ~= '' and owner ~= ARGV[3] then return -2 end
  -- A session without an owner mark is not served anywhere: nobody to tell.
  owner = ARGV[3]
end
local found = numbered_before(KEYS[9], KEYS[8], ARGV[7], ARGV[8], ARGV[9])
if found then return found end
local cur = redis.call('HGET', KEYS[3], ARGV[2])
if not last_open(cur) then return 0 end
local last = 0
local top = redis.call('XREVRANGE', KEYS[6], '+', '-', 'COUNT', 1)
if top[1] then last = tonumber(string.match(top[1][1], '^%d+')) end
local joined = tonumber(string.match(cur, '([^,]+)$'))
local before = string.match(cur, '^(.*),[^,]+$')
-- Kept, the stretch ends at the topic's last event; else (or with none since the join) it
-- ends where it began, replaying nothing: a stretch closed here either way, so that a
-- node recording its sessions again from its hub's view, not yet told of this leave,
-- does not undo it (see `rejoin`).
local ended = joined
if ARGV[5] == '1' and last > joined then ended = last end
local v = string.format('%d-%d', joined, ended)
if before then v = before .. ',' .. v end
redis.call('HSET', KEYS[3], ARGV[2], v)
local node = redis.call('HGET', KEYS[5], ARGV[1])
if node then count_down(KEYS[4], node) end
redis.call('HDEL', KEYS[5], ARGV[1])
local seq = next_seq(KEYS[2])
if owner ~= '' then
  redis.call('XADD', KEYS[7], 'MAXLEN', '~', ARGV[4], seq .. '-0',
    't', 'l', 's', ARGV[1], 'g', ARGV[2], 'a', last, 'k', ARGV[5])
end
local u = redis.call('HGET', KEYS[3], '~u') or ''
redis.call('XADD', KEYS[8], 'MAXLEN', '~', ARGV[4], seq .. '-0',
  't', 'L', 's', ARGV[1], 'g', ARGV[2], 'u', string.match(u, ':(.*)$') or '', 'm', ARGV[7])
if ARGV[8] == '1' then redis.call('SET', KEYS[9], seq, 'PX', ARGV[9]) end
return seq
",
        ONCE = crate::scripts::ONCE
    ))
}

/// Publishes to a topic's members (kind `p`) or sends to a user's sessions (kind `u`): logs
/// the frame once and hands it to every live node that serves one of them, and only those.
/// A group without members logs nothing. A message numbered before (a retry) is not numbered
/// again.
///
/// KEYS: seq, log, nodes hash (tn/un), members hash (tm/us), done mark, then for each node
/// the caller read (sorted): its stream and its alive mark. ARGV: frame, log max entries,
/// node stream max entries, log TTL (ms), message id, `1` for a retry, done mark TTL (ms),
/// kind, group name, origin node, `1` when the origin delivered it itself, the nodes read
/// (sorted, comma-separated).
///
/// Returns `{seq, members}` (`{0, 0}` without members), or `{-2}` when the nodes changed.
pub(crate) fn publish() -> Script {
    Script::new(&format!(
        r"
{ONCE}
local nodes = redis.call('HKEYS', KEYS[3])
table.sort(nodes)
if table.concat(nodes, ',') ~= ARGV[12] then return {{-2}} end
local count = redis.call('HLEN', KEYS[4])
if count == 0 then return {{0, 0}} end
local seq = numbered_before(KEYS[5], KEYS[2], ARGV[5], ARGV[6], ARGV[7])
if not seq then
  seq = next_seq(KEYS[1])
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], seq .. '-0', 'f', ARGV[1], 'm', ARGV[5])
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
  for i = 1, #nodes do
    if redis.call('EXISTS', KEYS[5 + 2 * i]) == 1 then
      redis.call('XADD', KEYS[4 + 2 * i], 'MAXLEN', '~', ARGV[3], seq .. '-0',
        't', ARGV[8], 'g', ARGV[9], 'f', ARGV[1], 'm', ARGV[5], 'o', ARGV[10], 'd', ARGV[11])
    end
  end
  if ARGV[6] == '1' then redis.call('SET', KEYS[5], seq, 'PX', ARGV[7]) end
end
return {{seq, count}}
",
        ONCE = crate::scripts::ONCE
    ))
}

/// The session is served here: it belongs to the user this node says (none: no user), from
/// the current sequence number of the new user's shard on if that is a change. On one shard
/// this is one step; on several, each role runs on its shard: `n` (the new user's record
/// and start, first), `h` (the home mem's `~u`, checked against what the caller read), `o`
/// (the old user's record, last).
///
/// KEYS: the home mem, the new user's shard's seq, the new user's us and un, the old user's
/// us and un, then the new and the old user's shard's mem of the session (a key of a role
/// not on this shard is any key of the shard). ARGV: id, this node, the new user's hex
/// (empty: none), the old user's hex the caller read (empty: none), mem TTL (ms; `0` while
/// attached here: none), the roles on this shard, the new user's start (when `n` is not).
///
/// Returns `{1, start}` on a change, `{0}` without, `{-2}` when the user changed since the
/// caller read it.
pub(crate) fn here() -> Script {
    Script::new(&format!(
        r"
{STRETCHES}
local home = string.find(ARGV[6], 'h', 1, true) ~= nil
local new_here = string.find(ARGV[6], 'n', 1, true) ~= nil
local old_here = string.find(ARGV[6], 'o', 1, true) ~= nil
if home then
  local cur = redis.call('HGET', KEYS[1], '~u')
  local old = cur and string.match(cur, ':(.*)$') or ''
  if old ~= ARGV[4] then return {{-2}} end
end
if ARGV[3] == ARGV[4] then
  if ARGV[3] ~= '' and new_here then assign(KEYS[3], KEYS[4], ARGV[1], ARGV[2]) end
  return {{0}}
end
if ARGV[4] ~= '' and old_here then
  forget(KEYS[5], KEYS[6], ARGV[1])
  if not home then redis.call('HDEL', KEYS[8], '~u') end
end
local since = ARGV[7]
if ARGV[3] ~= '' and new_here then
  assign(KEYS[3], KEYS[4], ARGV[1], ARGV[2])
  since = redis.call('GET', KEYS[2]) or '0'
  -- Off the home shard, the user's shard keeps what the session's record there is, so that
  -- a clean-up of an ended session can tell it from a later one's.
  if not home then redis.call('HSET', KEYS[7], '~u', since .. ':' .. ARGV[3]) end
end
if home then
  if ARGV[3] ~= '' then
    redis.call('HSET', KEYS[1], '~u', since .. ':' .. ARGV[3])
  else
    redis.call('HDEL', KEYS[1], '~u')
  end
  if ARGV[5] == '0' then
    redis.call('PERSIST', KEYS[1])
  else
    redis.call('PEXPIRE', KEYS[1], ARGV[5])
  end
end
return {{1, since}}
"
    ))
}

/// The session ended on this node: unless another node serves it now, every trace of it
/// goes (marks, log, memberships, its user's record).
///
/// KEYS: owner, mem, this node's live set, all, log, the user's us and un (any keys when none), seq,
/// presence, then for each topic the caller read as open: its tn and tm. ARGV: id, this node,
/// what the caller read of mem (its sorted fields, comma-separated, then `|~k|~u`), the user's hex (empty: none),
/// presence stream max entries, then the open topics.
///
/// Returns 1 when cleaned, 0 when the session lives on elsewhere, -2 when mem changed since
/// the caller read it.
pub(crate) fn gone() -> Script {
    Script::new(&format!(
        r"
{STRETCHES}
if not holds(KEYS[2], ARGV[3]) then return -2 end
local owner = redis.call('GET', KEYS[1])
if owner and owner ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('DEL', KEYS[5])
for i = 10, #KEYS, 2 do
  if redis.call('HGET', KEYS[i + 1], ARGV[1]) == ARGV[2] then
    redis.call('HDEL', KEYS[i + 1], ARGV[1])
    count_down(KEYS[i], ARGV[2])
    local seq = next_seq(KEYS[8])
    redis.call('XADD', KEYS[9], 'MAXLEN', '~', ARGV[5], seq .. '-0',
      't', 'L', 's', ARGV[1], 'g', ARGV[6 + (i - 10) / 2], 'u', ARGV[4])
  end
end
if ARGV[4] ~= '' and redis.call('HGET', KEYS[6], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[6], ARGV[1])
  count_down(KEYS[7], ARGV[2])
end
redis.call('DEL', KEYS[2])
return 1
"
    ))
}

/// Cleans up after a session whose marks expired with nobody to end it (its node died, or
/// stopped, while it was detached or before it was swept): its memberships and its user's
/// record, each counted down at the node recorded as serving it, its log and its mem. Its
/// `all` entry must be due (scored at or before the cut-off) and its owner mark gone: a
/// session claimed again in the meantime is its new node's.
///
/// KEYS: all, owner, mem, log, seq, presence, the user's us and un (any keys when none), then
/// for each topic the caller read as open: its tn and tm. ARGV: id, the cut-off (ms), what
/// the caller read of mem (its sorted fields, comma-separated, then `|~k|~u`), the user's
/// hex (empty: none),
/// presence stream max entries, then the open topics.
///
/// Returns 1 when cleaned, 0 when there was nothing to clean, -2 when mem changed since the
/// caller read it.
pub(crate) fn orphan() -> Script {
    Script::new(&format!(
        r"
{STRETCHES}
local due = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not due or tonumber(due) > tonumber(ARGV[2]) then return 0 end
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
if not holds(KEYS[3], ARGV[3]) then return -2 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[4])
forget_all(9, 6, ARGV[1], KEYS[5], KEYS[6], ARGV[5], ARGV[4])
if ARGV[4] ~= '' then forget(KEYS[7], KEYS[8], ARGV[1]) end
redis.call('DEL', KEYS[3])
return 1
"
    ))
}

/// Records again the memberships of a session attached here, as the hub has them, where
/// Redis lost them: its node was cut off from Redis past the session's grace, found dead,
/// and what the session left cleaned up (see [`orphan`]). A topic Redis has no stretch of
/// gets one from the sequence number now (and the session's replay is exact only from
/// then: what was published meanwhile did not reach this node), and with an open one its
/// member entry and count at this node. A closed stretch is a leave the hub has not heard
/// of yet (it is on its way): left alone. Nothing is numbered or announced: the hub had
/// these memberships all along. Runs on each shard with a topic of the session; on the home shard it also lists
/// the other shards again, and off it records this node as the one serving the session.
///
/// On a shard that lost its contents (its epoch names where its new run started) and the
/// session's mem with them, each membership runs from just before the run's start instead:
/// a position from before it is a gap for the topics there only, and one within the run
/// replays what the topics published since.
///
/// KEYS: mem, seq, the shard's epoch, then for each topic its tn and tm. ARGV: id, this
/// node, `1` on the home shard, the other shards (comma-separated; home shard only), `1`
/// for a shard other than 0 (shard 0's epoch is the deployment's), then the topics.
///
/// Returns how many of the topics were recorded again.
pub(crate) fn rejoin() -> Script {
    Script::new(&format!(
        r"
{STRETCHES}
local again = 0
local seq = redis.call('GET', KEYS[2]) or '0'
-- A shard that lost its contents, the session's mem with them: its memberships here run
-- from before the start of the shard's new run, where every position from before is a gap.
local through = '0'
if ARGV[5] == '1' then through = redis.call('GET', KEYS[3]) or start_again(KEYS[2], KEYS[3]) end
local rerun = through ~= '0' and redis.call('EXISTS', KEYS[1]) == 0
if ARGV[3] == '1' then
  for k in string.gmatch(ARGV[4], '[^,]+') do add_shard(KEYS[1], k) end
else
  redis.call('HSET', KEYS[1], '~o', ARGV[2])
end
for j = 1, #ARGV - 5 do
  local topic = ARGV[5 + j]
  local tn, tm = KEYS[2 + 2 * j], KEYS[3 + 2 * j]
  local cur = redis.call('HGET', KEYS[1], topic)
  -- A stretch closed here is a leave this node's hub has yet to hear of: not undone.
  if rerun or not cur or last_open(cur) then
    if rerun then
      redis.call('HSET', KEYS[1], topic, string.format('%d', tonumber(through) - 1))
    elseif not cur then
      redis.call('HSET', KEYS[1], topic, seq)
      -- What was published meanwhile did not reach this node: a resume from before now
      -- cannot be exact.
      raise_since(KEYS[1], tonumber(seq))
    end
    if assign(tm, tn, ARGV[1], ARGV[2]) then again = again + 1 end
  end
end
if ARGV[3] == '1' then redis.call('PERSIST', KEYS[1]) end
return again
"
    ))
}

/// On a shard other than its home, cleans up after a session that ended (its own node, or
/// an orphan clean-up, or a claim of its id that found it ended): its memberships in the
/// topics there and its user's record there, each counted down at the node recorded as
/// serving it, with a leave announced for each membership, and its mem there. Only while
/// the mem holds what the caller read: a session of the same id claimed since has its own.
///
/// KEYS: mem, seq, presence, the user's us and un (any keys when the user's are not on this
/// shard), then for each open topic: its tn and tm. ARGV: id, the mem the caller read (its
/// fields and values, sorted, each `field=value`, joined by newlines), the user's hex
/// (empty: none), presence stream max entries, `1` when the user's record is on this shard,
/// then the open topics.
///
/// Returns 1 when cleaned, 0 when the mem changed.
pub(crate) fn clean() -> Script {
    Script::new(&format!(
        r"
{STRETCHES}
local flat = redis.call('HGETALL', KEYS[1])
local kv = {{}}
for i = 1, #flat - 1, 2 do kv[#kv + 1] = flat[i] .. '=' .. flat[i + 1] end
table.sort(kv)
if table.concat(kv, '\n') ~= ARGV[2] then return 0 end
forget_all(6, 6, ARGV[1], KEYS[2], KEYS[3], ARGV[4], ARGV[3])
if ARGV[5] == '1' then forget(KEYS[4], KEYS[5], ARGV[1]) end
redis.call('DEL', KEYS[1])
return 1
"
    ))
}

/// A session ended on this node, on a deployment with several shards: unless another node
/// serves it now, its marks and log go, and its `all` entry is made due, so that the
/// clean-up of what it left on every shard ([`orphan`]'s) may follow, here at once or by
/// any node later.
///
/// KEYS: owner, this node's live set, all, log. ARGV: id, this node, now (ms).
///
/// Returns 1 when ended, 0 when the session lives on elsewhere.
pub(crate) fn ending() -> Script {
    Script::new(
        r"
local owner = redis.call('GET', KEYS[1])
if owner and owner ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('DEL', KEYS[4])
return 1
",
    )
}
