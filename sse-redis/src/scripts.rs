//! The key layout in Redis and the scripts that change it, each atomic.
//!
//! `<p>` is the configured prefix in braces (`{sse:}` by default): a Redis Cluster hash tag,
//! so every key of a deployment hashes to one slot and a script may touch any of them
//! together. With several shards, `<p>` is the tag of the key's shard (see `keys.rs`): the
//! keys below that belong to a session, a topic or a user are on its shard, and every shard
//! has its own `epoch`, `from`, `seq`, `done:`, `node:`, `nodes`, `live:` and `all` (for the
//! sessions homed there), `alive:` and `presence`; `bcast` and `shards` are on shard 0.
//! Every key a script touches is passed to it in `KEYS`, all of one shard; where which key
//! depends on what Redis holds (the owner's node stream), the caller reads it first and the
//! script checks it, answering -2 (read again) when it changed.
//!
//! | key | type | what |
//! |---|---|---|
//! | `<p>epoch` | string | the store's epoch; a Redis restarted empty gets another |
//! | `<p>from` | string | the sequence number the epoch started from, when it started because Redis lost entries a node had read (see `lineage.rs`); absent for an epoch started on an empty Redis |
//! | `<p>seq` | string (counter) | the one sequence every logged event, delivery and close is numbered in |
//! | `<p>bcast` | stream, ids `<seq>-0` | broadcasts (field `f`: the frame; `o`: origin node; `d`: `1` when the origin delivered it itself; `m`: message id) |
//! | `<p>log:<id>` | stream, ids `<seq>-0` | what was sent to one session (`f`, and `m`), for replay; trimmed by count (`MAXLEN ~`), never by time, and expiring a grace after its last entry |
//! | `<p>node:<node>` | stream, ids `<seq>-0` | deliveries to the sessions a node serves: `t` = `e` (event, `s` id, `f` frame, `m` message id), `c` (close) or `d` (drop) |
//! | `<p>done:<mid>` | string with a TTL | a send or broadcast tried again was numbered this (see [`crate::once`]) |
//! | `<p>owner:<id>` | string | the node serving (or last serving) the session: without a TTL while attached there (the node's `nodes` entry stands for it), a grace once detached or once its node is found dead |
//! | `<p>closed:<id>` | string with a TTL | the id was closed: its reconnect gets 204 |
//! | `<p>nodes` | sorted set | the nodes, each scored by when it is dead unless it renews its entry (ms since the Unix epoch; every heartbeat renews it, three heartbeats of slack) |
//! | `<p>live:<node>` | set | ids with a live connection on the node |
//! | `<p>shards` | string | how many shards the deployment has (shard 0) |
//! | `<p>all` | sorted set | ids of every session, detached ones included, scored by when their marks expire (`+inf` while attached); an entry a heartbeat past its score is a session nobody ended (its node died), which a live node cleans up after |
//!
//! Presence costs a node one write per heartbeat whatever its number of sessions, and one
//! per session that attaches, detaches or ends. A node that finds another's `nodes` entry
//! out of date sweeps that node's `live:` set: each of its sessions gets the grace of a
//! detached one. A node sweeps its own set when it starts (what a previous run with its
//! name left), and registers every session again when it finds itself swept. Once such a
//! session's grace is over with nobody having resumed it, any live node's heartbeat cleans
//! up what it left in topics and users (their counts at the dead node's name included),
//! as its own node would have when it ended. A node that was only cut off from Redis that
//! long records its sessions' users and topics again, as its hub has them, when it finds
//! itself swept.
//!
//! Topics and users add the keys listed in `groups/scripts.rs`.
//!
//! A node reads `bcast` and its own `node:` stream in one `XREAD`, which sees both as of one
//! instant; since every entry is numbered by the same `INCR` in the script that writes it,
//! merging what one read returns by sequence number gives the one order. With several
//! shards, it reads each shard so, on a connection of its own: one order per shard.

use redis::Script;

/// Sends to one session: `nil`-safe when it does not exist (returns -1), else logs the frame
/// and hands it to the owner node's stream; returns the sequence number. A message already
/// numbered (an earlier attempt of it, applied late) is not numbered again: its number is
/// returned (see [`crate::once`]).
///
/// The owner node's stream is a declared key, so the caller reads the owner first: when it
/// changed in between, the script changes nothing and returns -2 (read it again).
///
/// A session the caller's node serves but has not marked as its own yet (just accepted) is
/// marked now, so that a send to it is not lost to the race with the node's presence task.
///
/// A closed session takes nothing more (-1), though its node may not have ended it yet.
///
/// KEYS: owner, seq, log, done mark, the owner's node stream, closed. ARGV: the owner the
/// caller read (or, having read none, its own node when it serves the session), id, frame,
/// log max entries, node stream max entries, log TTL (ms), message id, `1` for a retry, done
/// mark TTL (ms), and the owner mark's TTL (ms) when the caller serves the session (else
/// empty).
pub(crate) fn send() -> Script {
    Script::new(&format!(
        r"
if redis.call('EXISTS', KEYS[6]) == 1 then return -1 end
local owner = redis.call('GET', KEYS[1])
if not owner and ARGV[10] ~= '' then
  owner = ARGV[1]
  redis.call('SET', KEYS[1], owner, 'PX', ARGV[10])
end
if not owner then return -1 end
if owner ~= ARGV[1] then return -2 end
{ONCE}
local found = numbered_before(KEYS[4], KEYS[3], ARGV[7], ARGV[8], ARGV[9])
if found then return found end
local seq = next_seq(KEYS[2])
local id = seq .. '-0'
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], id, 'f', ARGV[3], 'm', ARGV[7])
redis.call('PEXPIRE', KEYS[3], ARGV[6])
redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[5], id,
  't', 'e', 's', ARGV[2], 'f', ARGV[3], 'm', ARGV[7])
if ARGV[8] == '1' then redis.call('SET', KEYS[4], seq, 'PX', ARGV[9]) end
return seq
"
    ))
}

/// Broadcasts: logs the frame in the broadcast stream; returns the sequence number and how
/// many sessions there are (attached or detached). A message already numbered is not
/// numbered again (see [`send`]).
///
/// KEYS: seq, bcast, all, done mark. ARGV: frame, max entries, origin node, `1` when the
/// origin delivered it itself, now (ms), message id, `1` for a retry, done mark TTL (ms).
pub(crate) fn broadcast() -> Script {
    Script::new(&format!(
        r"
{ONCE}
local seq = numbered_before(KEYS[4], KEYS[2], ARGV[6], ARGV[7], ARGV[8])
if not seq then
  seq = next_seq(KEYS[1])
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], seq .. '-0',
    'f', ARGV[1], 'o', ARGV[3], 'd', ARGV[4], 'm', ARGV[6])
  if ARGV[7] == '1' then redis.call('SET', KEYS[4], seq, 'PX', ARGV[8]) end
end
return {{seq, redis.call('ZCOUNT', KEYS[3], ARGV[5], '+inf')}}
"
    ))
}

/// The Lua helpers that number a shard's events, as a literal for `concat!` (every script
/// that numbers includes them, some through [`ONCE`] or the groups' `STRETCHES`).
///
/// A shard numbers its events with `next_seq`, which takes up where the shard's sequence
/// is. A shard found without its sequence lost its contents (a deployment's start creates
/// each shard's at 0, and nothing deletes it): it numbers on from `shard_base`, the next
/// whole second since 2025 by the shard's clock in microseconds, which no number it gave
/// before reaches (a Redis master runs one script at a time, none in under a microsecond,
/// and a shard counts from 0 or from an earlier base, a restart ago). `start_again`
/// records where the shard's new run started in its epoch key (shards other than 0, whose
/// epoch is the deployment's: see `lineage`), the whole second below its sequence (a run
/// gives fewer than a million numbers before a node notices it): positions on the shard
/// below it are gaps for the logs there, and what the run numbered before it was noticed
/// is read as new.
macro_rules! numbers_lua {
    () => {
        r"
local function shard_base()
  local t = redis.call('TIME')
  return string.format('%d', (tonumber(t[1]) - 1735689600 + 1) * 1000000)
end
local function next_seq(seq)
  if redis.call('EXISTS', seq) == 0 then redis.call('SET', seq, shard_base()) end
  return redis.call('INCR', seq)
end
local function start_again(seq, epoch)
  local through = redis.call('GET', seq)
  if through then
    through = string.format('%d', math.floor(tonumber(through) / 1000000) * 1000000)
  else
    through = shard_base()
    redis.call('SET', seq, through)
  end
  redis.call('SET', epoch, through)
  return through
end
"
    };
}
pub(crate) use numbers_lua;

/// The number an earlier attempt of a message got, if it was applied: the done mark a retry
/// left, or (for a retry) the message id among the newest entries of the stream it goes to,
/// whose mark the retry then leaves, for an earlier attempt applied after it. Includes the
/// numbering helpers.
pub(crate) const ONCE: &str = concat!(
    numbers_lua!(),
    r"
local function numbered_before(mark, stream, mid, retry, ttl)
  local done = redis.call('GET', mark)
  if done then return tonumber(done) end
  if retry ~= '1' then return nil end
  for _, e in ipairs(redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1000)) do
    local f = e[2]
    for i = 1, #f - 1, 2 do
      if f[i] == 'm' and f[i + 1] == mid then
        local seq = tonumber(string.match(e[1], '^%d+'))
        redis.call('SET', mark, seq, 'PX', ttl)
        return seq
      end
    end
  end
  return nil
end
"
);

/// Closes (`c`, marking the id) or drops (`d`) a session: tells its owner node. Returns 1 when
/// the session exists, -2 (changing nothing) when its owner is not the one the caller read.
///
/// KEYS: owner, closed, seq, the owner's node stream (without an owner: the caller's, when it
/// serves the session, else any key). ARGV: the owner the caller read (empty: none), id,
/// closed TTL (ms), `c` or `d`, node stream max entries, the caller's node when it serves
/// the session (a session it has just accepted has no owner mark yet; else empty).
pub(crate) fn end() -> Script {
    Script::new(concat!(
        numbers_lua!(),
        r"
local owner = redis.call('GET', KEYS[1])
if (owner or '') ~= ARGV[1] then return -2 end
if ARGV[4] == 'c' then redis.call('SET', KEYS[2], '1', 'PX', ARGV[3]) end
if not owner and ARGV[6] ~= '' then owner = ARGV[6] end
if not owner then return 0 end
local seq = next_seq(KEYS[3])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[5], seq .. '-0',
  't', ARGV[4], 's', ARGV[2])
return 1
"
    ))
}

/// The heartbeat on one shard: renews the node's alive mark and its entry in `nodes`,
/// trims `all` of sessions whose marks expired long ago, and reads the nodes whose entry is
/// out of date. On a shard other than 0 it also reads where the shard's current run started
/// (starting one when the shard lost its contents: see [`numbers_lua`]). Returns whether
/// the node's entry was missing (1: it was swept as dead, or the shard lost it), those
/// nodes, and the run's start (0 on shard 0).
///
/// One script, not a pipeline of the commands: on a Redis Cluster whose slot is migrating,
/// a client re-sends a whole pipeline to the slot's new master when one of its commands is
/// redirected (`ASK`), and a single-key write at its head would run there too, creating a
/// key the old master still holds (`MIGRATE` then fails with `BUSYKEY`). A script declares
/// its keys, so the cluster runs it where all of them are or answers `TRYAGAIN`.
///
/// KEYS: the alive mark, nodes, all, seq, epoch. ARGV: the node, the alive mark's TTL (ms),
/// the node's entry's due time (ms), the trim bound (ms), now (ms), `1` for a shard other
/// than 0.
pub(crate) fn beat() -> Script {
    Script::new(concat!(
        numbers_lua!(),
        r"
redis.call('SET', KEYS[1], 1, 'PX', ARGV[2])
local added = redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[4])
local run = 0
if ARGV[6] == '1' then
  run = tonumber(redis.call('GET', KEYS[5]) or start_again(KEYS[4], KEYS[5]))
end
return {added, redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[5]), run}
"
    ))
}

/// Sweeps a node found dead (its `nodes` entry out of date): each session of its live set
/// that it still owns gets the marks of a detached one (the grace), as if it had detached
/// when its node died. Does nothing once the node renewed its entry.
///
/// KEYS: nodes, the dead node's live set, all, then each session's owner and mem. ARGV: the
/// node, now (ms), the detached TTL (ms), the mem TTL (ms; longer, so that whoever cleans up
/// after a session nobody resumes can read it), then the ids.
///
/// Returns how many ids the live set still holds, -1 when the node is alive again.
pub(crate) fn sweep() -> Script {
    Script::new(
        r"
local due = redis.call('ZSCORE', KEYS[1], ARGV[1])
if due and tonumber(due) >= tonumber(ARGV[2]) then return -1 end
local expires = tonumber(ARGV[2]) + tonumber(ARGV[3])
for i = 5, #ARGV do
  local id = ARGV[i]
  local owner, mem = KEYS[2 * i - 6], KEYS[2 * i - 5]
  redis.call('SREM', KEYS[2], id)
  if redis.call('GET', owner) == ARGV[1] then
    redis.call('PEXPIRE', owner, ARGV[3])
    redis.call('PEXPIRE', mem, ARGV[4])
    redis.call('ZADD', KEYS[3], 'XX', expires, id)
  end
end
local left = redis.call('SCARD', KEYS[2])
if left == 0 then redis.call('ZREM', KEYS[1], ARGV[1]) end
return left
",
    )
}
