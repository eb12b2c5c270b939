//! The engine's work beside the hub ([`Store::run`](sse_proto::Store::run)): the node's
//! three tasks, joined in one future.
//!
//! - **reader**: one blocking `XREAD` over the broadcast stream and this node's delivery
//!   stream, from the last entries it saw, on a connection of its own; what one read returns
//!   is merged by sequence number and delivered to the hub in that order. After Redis comes
//!   back it goes on from where it was, so nothing acknowledged is lost; when Redis lost its
//!   contents (a new epoch) the hub's logs restart in the new epoch, so old positions are gaps,
//!   and it reads the new epoch from its start. When Redis lost only its last entries, see
//!   `lineage.rs`: it checks once per read interval.
//! - **relay**: takes what the hub queues for Redis (sends, broadcasts, closes) and runs the
//!   scripts; with Redis away it delivers to this node's own connections without a position
//!   (their logs record a gap) and keeps the rest, bounded, until Redis is back.
//! - **presence**: writes which sessions this node serves (attached, detached, gone), and
//!   that the node is alive; see `presence.rs`.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::task::Poll;
use std::time::{Duration, Instant};

use async_io::Timer;
use bytes::Bytes;
use futures_lite::future;
use redis::Value;
use sse_proto::{Frame, Recipient, RelayPort, Relayed, SessionId, TopicName};

use crate::engine::{RedisEngine, lock, millis};
use crate::groups::Group;
use crate::late::Late;
use crate::lineage::{Line, Mark};
use crate::once::Attempt;
use crate::reply::{self, Entry};

/// Most entries one read takes from each stream.
const READ_COUNT: usize = 1000;

/// How long one read waits for an entry.
pub(crate) const BLOCK: Duration = Duration::from_secs(1);

/// Most items kept for Redis while it is away; past this the oldest are dropped.
const MAX_PENDING: usize = 65_536;

/// Backoff between attempts while Redis is away.
pub(crate) const BACKOFF: (Duration, Duration) =
    (Duration::from_millis(50), Duration::from_secs(2));

impl RedisEngine {
    /// This node's side of the engine, until the hub behind `port` is dropped.
    pub(crate) async fn tasks(self, port: RelayPort) {
        // One reader per shard, each on a connection of its own.
        let readers = self
            .shared
            .keys
            .every()
            .map(|shard| self.clone().reader(port.clone(), shard));
        let readers = futures_util::future::join_all(readers);
        let (b, c) = (self.clone(), self);
        let (pb, pc) = (port.clone(), port);
        future::zip(readers, future::zip(b.relay(pb), c.presence(pc))).await;
    }

    /// Reads what comes to this node on `shard`: its inbox there, the broadcasts (shard 0)
    /// and, for an observer, presence there; each shard's entries in that shard's order.
    async fn reader(self, port: RelayPort, shard: u8) {
        let shared = &self.shared;
        let keys = &shared.keys;
        let mut backoff = BACKOFF.0;
        // Where reading starts: when the engine connected (what came before is in the logs,
        // for resumes).
        let mut last = lock(&shared.read_from)
            .get_mut(usize::from(shard))
            .and_then(Option::take);
        // The entry numbered `last`, when this reader delivered it.
        let mut mark: Option<Mark> = None;
        // A shard in a run after the first: positions on it from before are gaps.
        let through = lock(&shared.shard_epochs)
            .get(usize::from(shard))
            .copied()
            .unwrap_or(0);
        if shard != 0 && through > 0 {
            port.restart_shard(shard, through);
        }
        loop {
            if port.hub().is_none() {
                return;
            }
            let mut conn = match shared.endpoint.reader(shard, shared.config.timeout).await {
                Ok(conn) => conn,
                Err(_) => {
                    shared.set_up(false);
                    Timer::after(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF.1);
                    continue;
                }
            };
            // (Re)connected: is it the same store, holding what this node read?
            let Ok(line) = self.line(shard, last, mark.as_ref()).await else {
                Timer::after(backoff).await;
                continue;
            };
            last = self.follow(&port, shard, line, last);
            if line != Line::Same {
                mark = None;
            }
            let mut checked = Instant::now();
            if last.is_none() {
                let seq: Result<Option<u64>, _> = redis::cmd("GET")
                    .arg(keys.seq(shard))
                    .query_async(&mut conn)
                    .await;
                match seq {
                    Ok(seq) => last = Some(seq.unwrap_or(0)),
                    Err(_) => continue,
                }
            }
            shared.set_up(true);
            backoff = BACKOFF.0;
            let me = keys.node(shard, &shared.config.node);
            let bcast = (shard == 0).then(|| keys.bcast());
            let presence_key = keys.presence(shard);
            loop {
                if port.hub().is_none() {
                    return;
                }
                // Once per read interval, whether Redis still holds what this node read
                // (another node may have found it restarted or short of entries).
                if checked.elapsed() >= BLOCK {
                    checked = Instant::now();
                    match self.line(shard, last, mark.as_ref()).await {
                        Ok(line) => {
                            last = self.follow(&port, shard, line, last);
                            if line != Line::Same {
                                mark = None;
                            }
                        }
                        Err(_) => {
                            shared.set_up(false);
                            break;
                        }
                    }
                }
                let from = format!("{}-0", last.unwrap_or(0));
                let presence = shared.presence_observer.get().is_some();
                let mut read = redis::cmd("XREAD");
                read.arg("COUNT")
                    .arg(READ_COUNT)
                    .arg("BLOCK")
                    .arg(millis(BLOCK))
                    .arg("STREAMS");
                if let Some(bcast) = &bcast {
                    read.arg(bcast);
                }
                read.arg(&me);
                if presence {
                    read.arg(&presence_key);
                }
                if bcast.is_some() {
                    read.arg(&from);
                }
                read.arg(&from);
                if presence {
                    read.arg(&from);
                }
                let reply: redis::RedisResult<Value> = read.query_async(&mut conn).await;
                let Ok(reply) = reply else {
                    shared.set_up(false);
                    break;
                };
                let Some(hub) = port.hub() else { return };
                let mut batch: Vec<(Stream, Entry)> = Vec::new();
                // A stream that gave as many entries as asked for may hold more, numbered
                // below what the other stream gave: only what comes before its last one is
                // in order now; the rest is read again next time.
                let mut limit = u64::MAX;
                for (stream, entries) in reply::xread(&reply) {
                    let kind = if bcast.as_ref().is_some_and(|b| stream == b.as_bytes()) {
                        Stream::Broadcasts
                    } else if stream == presence_key.as_bytes() {
                        Stream::Presence
                    } else {
                        Stream::Node
                    };
                    if entries.len() >= READ_COUNT {
                        limit = limit.min(entries.last().map_or(u64::MAX, |e| e.seq));
                    }
                    batch.extend(entries.into_iter().map(|e| (kind, e)));
                }
                batch.retain(|(_, e)| e.seq <= limit);
                batch.sort_by_key(|(_, e)| e.seq);
                // The newest entry read, to check later that Redis still has it.
                if let Some((kind, entry)) = batch.last() {
                    if last.is_none_or(|l| entry.seq > l) {
                        let stream = match kind {
                            Stream::Broadcasts => keys.bcast(),
                            Stream::Presence => presence_key.clone(),
                            Stream::Node => me.clone(),
                        };
                        mark = Mark::of(stream, entry);
                    }
                }
                for (kind, entry) in batch {
                    last = Some(last.unwrap_or(0).max(entry.seq));
                    match kind {
                        Stream::Presence => {
                            let observer = shared.presence_observer.get();
                            if let Some((observer, event)) =
                                observer.zip(crate::PresenceEvent::from_entry(&entry))
                            {
                                observer(&event);
                            }
                        }
                        _ => self.apply(&port, &hub, kind == Stream::Broadcasts, &entry),
                    }
                }
            }
        }
    }

    /// Delivers one entry read from Redis to the hub.
    fn apply(&self, port: &RelayPort, hub: &sse_proto::Hub, broadcast: bool, entry: &Entry) {
        let frame = || {
            entry
                .field(b"f")
                .and_then(|f| Frame::from_encoded(Bytes::copy_from_slice(f)).ok())
        };
        // A send or broadcast this node delivered itself while Redis was away (an attempt
        // that Redis applied late, or the broadcast's retry marked as done here): its
        // number only moves the positions on.
        let here = entry.field(b"m").is_some_and(|mid| {
            let mut here = lock(&self.shared.delivered_here);
            !here.is_empty() && here.take(mid)
        });
        if broadcast {
            let ours = entry.field(b"o") == Some(self.shared.config.node.as_bytes());
            let done_here = here || (ours && entry.field(b"d") == Some(b"1"));
            if let Some(frame) = frame() {
                if done_here {
                    port.deliver_known(entry.seq, &Recipient::All, frame);
                } else {
                    port.deliver(entry.seq, &Recipient::All, frame);
                }
            }
            return;
        }
        let group = match (entry.field(b"t"), entry.field(b"g")) {
            (Some(b"p"), Some(g)) => TopicName::parse(g).ok().map(Recipient::Topic),
            (Some(b"u"), Some(g)) => crate::groups::user_of(g).map(Recipient::User),
            _ => None,
        };
        if let Some(to) = group {
            let ours = entry.field(b"o") == Some(self.shared.config.node.as_bytes());
            let done_here = here || (ours && entry.field(b"d") == Some(b"1"));
            if let Some(frame) = frame() {
                if done_here {
                    port.deliver_known(entry.seq, &to, frame);
                } else {
                    port.deliver(entry.seq, &to, frame);
                }
            }
            return;
        }
        let Some(id) = entry
            .field(b"s")
            .and_then(|s| SessionId::parse(s, sse_proto::DEFAULT_MAX_ID_LEN).ok())
        else {
            return;
        };
        let topic = || entry.field(b"g").and_then(|g| TopicName::parse(g).ok());
        match entry.field(b"t") {
            Some(b"j") => {
                if let Some(topic) = topic() {
                    let late = Late::Joined {
                        seq: entry.seq,
                        topic,
                    };
                    self.membership_change(port, &id, late);
                }
            }
            Some(b"l") => {
                if let Some(topic) = topic() {
                    let last = entry
                        .field(b"a")
                        .and_then(|a| std::str::from_utf8(a).ok()?.parse().ok())
                        .unwrap_or(0);
                    let keep = entry.field(b"k") == Some(b"1");
                    let late = Late::Left { topic, last, keep };
                    self.membership_change(port, &id, late);
                }
            }
            Some(b"e") => {
                if let Some(frame) = frame() {
                    let to = Recipient::Session(id);
                    if here {
                        port.deliver_known(entry.seq, &to, frame);
                    } else {
                        port.deliver(entry.seq, &to, frame);
                    }
                }
            }
            Some(b"c") => {
                port.close(&id);
            }
            Some(b"d") => {
                if let Some(session) = hub.session(id.as_str()) {
                    session.drop_stream();
                }
            }
            _ => {}
        }
    }

    /// Applies a join or leave the relay numbered; one for a session this node is claiming
    /// is kept until its hub has attached it (see `late.rs`).
    fn membership_change(&self, port: &RelayPort, id: &SessionId, late: Late) {
        if lock(&self.shared.presence).claims.keep(id, &late) {
            return;
        }
        apply_late(port, id, &late);
    }

    /// Applies what came early for sessions the hub has now, and ends their streams, so that
    /// their tabs come back for what the topics published in between.
    pub(crate) fn apply_ready(&self, port: &RelayPort) {
        let ready = std::mem::take(&mut lock(&self.shared.presence).claims.ready);
        let Some(hub) = port.hub() else { return };
        for (id, lates) in ready {
            // Each applied, in the order numbered.
            let mut applied = false;
            for late in &lates {
                applied |= apply_late(port, &id, late);
            }
            if applied {
                if let Some(session) = hub.session(id.as_str()) {
                    session.drop_stream();
                }
            }
        }
    }

    async fn relay(self, port: RelayPort) {
        let mut pending: VecDeque<Pending> = VecDeque::new();
        let mut taken = Vec::new();
        let mut backoff = BACKOFF.0;
        loop {
            if pending.is_empty() {
                // Wake up for new items, and now and then to notice the hub is gone.
                let next = poll_fn(|cx| port.poll_outbound(cx, &mut taken));
                if future::or(next, async {
                    Timer::after(Duration::from_secs(1)).await;
                    Some(0)
                })
                .await
                .is_none()
                {
                    return;
                }
            } else {
                let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
                if let Poll::Ready(None) = port.poll_outbound(&mut cx, &mut taken) {
                    return;
                }
            }
            pending.extend(taken.drain(..).map(|item| Pending {
                item: Item::Relayed(item),
                attempt: self.shared.messages.attempt(),
            }));
            while pending.len() > MAX_PENDING {
                pending.pop_front();
            }
            let mut failed = false;
            while let Some(item) = pending.pop_front() {
                match self.forward(&port, item).await {
                    Ok(()) => {}
                    Err(again) => {
                        pending.push_front(again);
                        failed = true;
                        break;
                    }
                }
            }
            if failed {
                Timer::after(backoff).await;
                backoff = (backoff * 2).min(BACKOFF.1);
            } else {
                backoff = BACKOFF.0;
            }
        }
    }

    /// Sends one item to Redis; gives it back, as a retry, when Redis is away (after
    /// delivering to this node's own connections what cannot wait).
    async fn forward(&self, port: &RelayPort, pending: Pending) -> Result<(), Pending> {
        let Pending { item, attempt } = pending;
        let pending_kind = match &item {
            Item::GroupDeliveredHere(..) | Item::DeliveredHere(_) => Kind::DeliveredHere,
            Item::Relayed(_) => Kind::Relayed,
        };
        let again = |item| Pending {
            item,
            attempt: attempt.clone().again(),
        };
        match item {
            Item::Relayed(Relayed::Event {
                to: Recipient::Session(id),
                frame,
            }) => {
                let local = port
                    .hub()
                    .is_some_and(|hub| hub.session(id.as_str()).is_some());
                match self
                    .send_attempt(id.as_str(), frame.clone(), &attempt)
                    .await
                {
                    // Delivered here without Redis (local), or known nowhere: done.
                    Ok(()) | Err(sse_proto::Error::NotConnected) => Ok(()),
                    Err(_) if local => Ok(()),
                    Err(_) => Err(again(Item::Relayed(Relayed::Event {
                        to: Recipient::Session(id),
                        frame,
                    }))),
                }
            }
            Item::Relayed(Relayed::Event {
                to: Recipient::All,
                frame,
            }) => match self.publish_broadcast(&frame, false, &attempt).await {
                Ok(_) => Ok(()),
                Err(()) => {
                    // This node's tabs get it now; the others once Redis is back.
                    self.deliver_here(&attempt, &Recipient::All, frame.clone());
                    Err(again(Item::DeliveredHere(frame)))
                }
            },
            Item::DeliveredHere(frame) => {
                match self.publish_broadcast(&frame, true, &attempt).await {
                    Ok(_) => Ok(()),
                    Err(()) => Err(again(Item::DeliveredHere(frame))),
                }
            }
            Item::Relayed(Relayed::Closed { id }) => match self.close(id.as_str()).await {
                Ok(_) => Ok(()),
                Err(_) => Err(again(Item::Relayed(Relayed::Closed { id }))),
            },
            Item::Relayed(Relayed::Event { to, frame }) | Item::GroupDeliveredHere(to, frame) => {
                let done_here = matches!(pending_kind, Kind::DeliveredHere);
                let group = match &to {
                    Recipient::Topic(t) => Some(Group::Topic(t)),
                    Recipient::User(u) => Some(Group::User(u)),
                    _ => None,
                };
                let Some(group) = group else { return Ok(()) };
                match self.publish_group(group, &frame, done_here, &attempt).await {
                    Ok(_) => Ok(()),
                    Err(()) => {
                        // This node's members get it now; the others once Redis is back.
                        if !done_here {
                            self.deliver_here(&attempt, &to, frame.clone());
                        }
                        Err(again(Item::GroupDeliveredHere(to, frame)))
                    }
                }
            }
            Item::Relayed(Relayed::Join { id, topic }) => {
                match self.membership(id.as_str(), &topic, None, &attempt).await {
                    Err(sse_proto::Error::Unavailable) => {
                        Err(again(Item::Relayed(Relayed::Join { id, topic })))
                    }
                    _ => Ok(()),
                }
            }
            Item::Relayed(Relayed::Leave { id, topic, keep }) => {
                match self
                    .membership(id.as_str(), &topic, Some(keep), &attempt)
                    .await
                {
                    Err(sse_proto::Error::Unavailable) => {
                        Err(again(Item::Relayed(Relayed::Leave { id, topic, keep })))
                    }
                    _ => Ok(()),
                }
            }
            Item::Relayed(Relayed::CloseUser { user }) => match self.close_user(&user).await {
                Ok(_) => Ok(()),
                Err(_) => Err(again(Item::Relayed(Relayed::CloseUser { user }))),
            },
        }
    }
}

/// Applies one join or leave to the hub; whether it changed the session's memberships.
fn apply_late(port: &RelayPort, id: &SessionId, late: &Late) -> bool {
    match late {
        Late::Joined { seq, topic } => port.joined(*seq, id, topic),
        Late::Left { topic, last, keep } => port.left(id, topic, *last, *keep),
    }
}

/// An item waiting for Redis, and the attempt that sends it.
struct Pending {
    item: Item,
    attempt: Attempt,
}

enum Item {
    Relayed(Relayed),
    /// A broadcast this node already delivered to its own connections.
    DeliveredHere(Frame),
    /// A publish or user send this node already delivered to its own members.
    GroupDeliveredHere(Recipient, Frame),
}

/// Which stream a read entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Broadcasts,
    Node,
    Presence,
}

/// Whether an item was delivered here already.
enum Kind {
    Relayed,
    DeliveredHere,
}
