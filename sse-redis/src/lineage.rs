//! Whether Redis still holds what this node read from it.
//!
//! Two things break the line between what a node read and what Redis holds now:
//!
//! - **Redis restarted empty.** It has another epoch; every entry in it is new, and numbered
//!   from 1 again. The reader reads it all; the hub's logs restart in the new epoch, so that
//!   positions of the old one are gaps.
//! - **Redis lost its last writes**: a replica promoted before it had them (Redis replicates
//!   asynchronously), or a restart from an old snapshot. The sequence is then below what
//!   this node read, and the numbers it had read will be given again to other events. A
//!   node that sees this (the sequence below what it read, or the entry it read last gone or
//!   another) starts a new epoch, noting the sequence it starts from (`<p>from`). No node can
//!   tell which entries numbered up to there its tabs had, or missed: every node restarts
//!   its logs in the new epoch, ends its streams and reads on from there, and every tab
//!   comes back with a position of the old epoch, a gap that it reports. Never a wrong
//!   replay, never a silent loss; and Redis lost what it lost.
//!
//! Each node checks when its reader connects and once per read interval after that.
//!
//! With several shards, each shard has an epoch and a sequence of its own, and each reader
//! checks its shard. Shard 0's epoch is the deployment's, which positions carry. Another
//! shard's epoch is where its current run started: a shard found restarted empty, or short
//! of entries, numbers on past every number it gave
//! ([`numbers_lua`](crate::scripts::numbers_lua)) and starts a new run there. The hub then
//! takes positions on it from before as gaps for the logs there only
//! ([`RelayPort::restart_shard`]); short of entries, the streams of the sessions that read
//! it end too, and their tabs come back to that gap. The other shards go on.

use redis::{Script, Value};

use std::sync::atomic::Ordering;

use sse_proto::{Hub, Placement, RelayPort, Target};

use crate::conn::Conn;
use crate::engine::RedisEngine;
use crate::keys::Keys;
use crate::reply;

/// Checks the epoch, the sequence and the last entry the caller read against what Redis
/// holds; starts a new epoch when Redis lost entries the caller read (the sequence is below
/// it, or the entry is gone or another), and one when Redis is empty.
///
/// On a shard other than 0 the epoch is where the shard's current run started: a shard
/// found empty starts a run from where its sequence is ([`numbers_lua`]), and one that lost
/// entries numbers on past every number it gave (its sequence raised to the shard's base)
/// and starts a run from there.
///
/// KEYS: epoch, from, seq, the stream of the caller's last entry. ARGV: the caller's epoch, a
/// fresh epoch, the highest sequence number the caller read (or -1), the name of a field that
/// tells the entry apart and its value (empty: no entry to check), `1` for a shard other
/// than 0.
///
/// Returns `{epoch, from}`: `from` is the sequence number the epoch started from after a
/// loss, -1 for an epoch that started on an empty Redis.
///
/// [`numbers_lua`]: crate::scripts::numbers_lua
pub(crate) fn check() -> Script {
    Script::new(concat!(
        crate::scripts::numbers_lua!(),
        r"
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  if ARGV[6] == '1' then return {start_again(KEYS[3], KEYS[1]), -1} end
  redis.call('SET', KEYS[1], ARGV[2])
  redis.call('DEL', KEYS[2])
  return {ARGV[2], -1}
end
if epoch == ARGV[1] then
  local read = tonumber(ARGV[3])
  local seq = tonumber(redis.call('GET', KEYS[3]) or '0')
  local lost = seq < read
  if not lost and ARGV[5] ~= '' then
    local e = redis.call('XRANGE', KEYS[4], read .. '-0', read .. '-0')
    if #e == 0 then
      -- Gone: lost, unless trimmed (the stream's first entry is past it).
      local first = redis.call('XRANGE', KEYS[4], '-', '+', 'COUNT', 1)
      lost = #first == 0 or tonumber(string.match(first[1][1], '^%d+')) < read
    else
      local value = nil
      local f = e[1][2]
      for i = 1, #f - 1, 2 do
        if f[i] == ARGV[4] then value = f[i + 1] end
      end
      lost = value ~= ARGV[5]
    end
  end
  if lost then
    local fresh = ARGV[2]
    if ARGV[6] == '1' then
      local base = shard_base()
      if tonumber(base) > seq then redis.call('SET', KEYS[3], base) end
      fresh = redis.call('GET', KEYS[3])
    end
    redis.call('SET', KEYS[1], fresh)
    redis.call('SET', KEYS[2], seq)
    return {fresh, seq}
  end
end
return {epoch, tonumber(redis.call('GET', KEYS[2]) or '-1')}
"
    ))
}

/// The last entry a reader delivered: where it is, and what tells it apart from another
/// entry given its number after a loss.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mark {
    /// The stream's key.
    pub(crate) stream: String,
    /// The field that tells it apart (`m`, the message id, where it has one) and its value.
    pub(crate) field: &'static str,
    pub(crate) value: Vec<u8>,
}

impl Mark {
    /// The mark of `entry`, read from `stream`: its message id, else its session and kind.
    pub(crate) fn of(stream: String, entry: &crate::reply::Entry) -> Option<Mark> {
        ["m", "s", "g"].into_iter().find_map(|field| {
            let value = entry.field(field.as_bytes())?.to_vec();
            Some(Mark {
                stream: stream.clone(),
                field,
                value,
            })
        })
    }
}

/// What the store says of the caller's line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Line {
    /// The same epoch, nothing lost.
    Same,
    /// Another epoch, started on an empty Redis: read it from its start.
    Emptied { epoch: u64 },
    /// Another epoch, started after Redis lost entries, from sequence number `from`.
    Lost { epoch: u64, from: u64 },
}

/// Asks Redis whether the line from `epoch`, read up to `read` (the highest number read,
/// and the mark of the entry that had it, if the reader delivered one), still holds.
pub(crate) async fn line(
    conn: &mut Conn,
    keys: &Keys,
    shard: u8,
    epoch: u64,
    read: Option<(u64, Option<&Mark>)>,
    fresh: u64,
) -> redis::RedisResult<Line> {
    let mark = read.and_then(|(_, mark)| mark);
    let reply: Value = check()
        .key(keys.epoch(shard))
        .key(keys.from(shard))
        .key(keys.seq(shard))
        .key(mark.map_or_else(|| keys.node(shard, ""), |m| m.stream.clone()))
        .arg(epoch)
        .arg(fresh)
        .arg(read.map_or(-1, |(n, _)| i64::try_from(n).unwrap_or(i64::MAX)))
        .arg(mark.map_or("", |m| m.field))
        .arg(mark.map_or(&[][..], |m| m.value.as_slice()))
        .arg(if shard == 0 { "0" } else { "1" })
        .invoke_async(conn)
        .await?;
    let items = reply::array(&reply);
    let now = items
        .first()
        .and_then(reply::text)
        .and_then(|t| std::str::from_utf8(t).ok()?.parse::<u64>().ok())
        .or_else(|| {
            items
                .first()
                .and_then(reply::int)
                .and_then(|n| u64::try_from(n).ok())
        });
    let from = items.get(1).and_then(reply::int).unwrap_or(-1);
    let Some(now) = now else {
        return Err(redis::RedisError::from((
            redis::ErrorKind::UnexpectedReturnType,
            "the epoch check answered no epoch",
        )));
    };
    Ok(match (now == epoch, u64::try_from(from)) {
        (true, _) => Line::Same,
        (false, Ok(from)) => Line::Lost { epoch: now, from },
        (false, Err(_)) => Line::Emptied { epoch: now },
    })
}

impl RedisEngine {
    /// Asks Redis whether `shard` still holds what this node read there, up to `last` (the
    /// entry `mark` had that number, if it is known).
    pub(crate) async fn line(
        &self,
        shard: u8,
        last: Option<u64>,
        mark: Option<&Mark>,
    ) -> redis::RedisResult<Line> {
        let shared = &self.shared;
        let fresh = crate::engine::fresh_epoch();
        let read = last.map(|n| (n, mark));
        let known = if shard == 0 {
            self.epoch()
        } else {
            crate::engine::lock(&shared.shard_epochs)
                .get(usize::from(shard))
                .copied()
                .unwrap_or(0)
        };
        // A check that writes nothing waits for no replica: while too few answer, writes
        // fail, but this node goes on reading what its master holds. One that started an
        // epoch waits, as every write does.
        let mut conn = shared.conn.unwaited();
        let line = line(&mut conn, &shared.keys, shard, known, read, fresh).await?;
        if line != Line::Same {
            shared.conn.clone().confirm().await?;
        }
        Ok(line)
    }

    /// Follows `shard` into a new epoch, if it started one; returns where reading it goes
    /// on. A shard other than 0 started a new run: the hub learns that positions on it
    /// below the run's start are gaps for the logs there, and the other shards go on.
    pub(crate) fn follow(
        &self,
        port: &RelayPort,
        shard: u8,
        line: Line,
        last: Option<u64>,
    ) -> Option<u64> {
        let (through, from) = match line {
            _ if shard == 0 => return self.follow_epoch(port, line, last),
            Line::Same => return last,
            Line::Emptied { epoch } => (epoch, None),
            Line::Lost { epoch, from } => (epoch, Some(from)),
        };
        if let Some(known) =
            crate::engine::lock(&self.shared.shard_epochs).get_mut(usize::from(shard))
        {
            *known = through;
        }
        port.restart_shard(shard, through);
        let Some(from) = from else {
            // Every entry of the new run is new to this node: read them all.
            return Some(0);
        };
        // The shard lost entries some node had read, and a tab may have had some of the
        // numbers given again meanwhile: the streams of the sessions that read the shard
        // end, and their tabs come back to a gap for the logs there.
        if let Some(hub) = port.hub() {
            end_streams_reading(&hub, self.shared.keys.placement(), |k| k == shard);
        }
        Some(from)
    }

    /// Follows the store into a new epoch, if it started one; returns where reading goes on.
    fn follow_epoch(&self, port: &RelayPort, line: Line, last: Option<u64>) -> Option<u64> {
        let (epoch, from) = match line {
            Line::Same => return last,
            Line::Emptied { epoch } => (epoch, None),
            Line::Lost { epoch, from } => (epoch, Some(from)),
        };
        self.shared.epoch.store(epoch, Ordering::Release);
        port.restart_log(epoch);
        let Some(from) = from else {
            // Every entry of an epoch started on an empty Redis is new, and this node has
            // read none of them: read them all. (The sequence now would skip what other
            // nodes sent here before this reader was back, once this node's heartbeat had
            // marked its sessions again.)
            return Some(0);
        };
        // Redis lost entries some node had read, and gave their numbers again: no node can
        // tell which entries numbered up to `from` its tabs had, or missed. Every node ends
        // its streams and reads on from `from`; the tabs come back with positions of the
        // old epoch, a gap that they report, never a wrong replay or a silent loss.
        #[cfg(feature = "tracing")]
        tracing::warn!(
            target: "sse",
            node = %self.shared.config.node,
            from,
            "Redis lost entries a node had read: a new epoch, and this node's streams end \
             (their tabs get a gap)"
        );
        if let Some(hub) = port.hub() {
            for id in hub.ids() {
                if let Some(session) = hub.session(id.as_str()) {
                    session.drop_stream();
                }
            }
        }
        Some(from)
    }
}

/// Ends the streams of the sessions of `hub` that read a log (their own, their user's or a
/// topic's) on a shard that `lost` names: their tabs come back to a gap for the logs there.
pub(crate) fn end_streams_reading(hub: &Hub, placement: Placement, lost: impl Fn(u8) -> bool) {
    for id in hub.ids() {
        let Some(session) = hub.session(id.as_str()) else {
            continue;
        };
        let user = session.user();
        let reads = lost(placement.of(Target::Session(&id)))
            || user.is_some_and(|u| lost(placement.of(Target::User(&u))))
            || (session.topics().iter()).any(|t| lost(placement.of(Target::Topic(t))));
        if reads {
            session.drop_stream();
        }
    }
}
