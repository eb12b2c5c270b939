//! Model-based property test of topics and users in resume mode.
//!
//! Four simulated tabs (two of user `ann`, one of `bob`, one anonymous), each asking for some
//! topics in its URL, live through random interleavings of: publishes to a topic, sends to a
//! user, to one session and to everyone, joins and leaves (also while detached), drops (the
//! tab keeps only a prefix of what was on the wire, so a drop can cut a replay), reconnects
//! from the latest or any older position the tab held, and time passing sessions' grace.
//! Logs are small, so they overflow.
//!
//! The ground truth is kept here, not read from the hub: which session (each incarnation of
//! an id is one) was entitled to each event when it was sent, and which events each log has
//! evicted (the last `max_events` of each log are kept, counted from when the log last had
//! someone entitled to it). The invariants:
//!
//! 1. Every connection receives exactly the events its session was entitled to after the
//!    position it resumed from, in send order, then what it is entitled to live: no
//!    duplicate, no loss, no reorder (a prefix, when the connection drops).
//! 2. A topic is reported as a gap exactly when an event of it that the session was entitled
//!    to after its position was evicted; its events are then left out and the rest replayed.
//! 3. A loss in the session's own log, the broadcasts or its user's is a gap for the whole
//!    session (`Gap(Overflow)`), as is a replay past the bound; an expired session's tab, or
//!    a position from before the session, is `Gap(Expired)`.
//! 4. Publishes, user sends and broadcasts count the live members (attached or detached).
//!
//! Each case runs on a log of one sequence or of four shards (each numbering its own
//! events, placed by [`Placement`]): positions are then cursors, and a replay keeps each
//! shard's order (invariant 1 holds per shard for the replayed part, whole for what
//! follows live). And each runs with the hub numbering its events itself, or in relay mode
//! with a relay in the test that numbers what the hub hands it as a shared store would
//! (joins too, in their topic's shard) and hands it back.

#![allow(clippy::panic, clippy::unwrap_used)] // a test reports failure by panicking

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::OnceLock;
use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use bytes::Buf;
use proptest::prelude::*;
use sse_proto::{
    Batch, Continuity, Cursor, Decision, Decoder, Event, GapReason, HttpVersion, Hub, Item,
    LogBounds, MAX_SHARDS, ManualClock, MemoryHistory, Outlet, Placement, Principal, RelayConfig,
    RelayPort, Relayed, Request, ResumeConfig, SessionId, Target, TopicName, WriteWindow,
};

const GRACE_MS: u64 = 10_000;
const TOPICS: [&str; 3] = ["red", "blue", "green"];
const USERS: [&str; 2] = ["ann", "bob"];
/// Each tab: its user, and the topics its URL asks for.
const TABS: [(Option<usize>, &[usize]); 4] = [
    (Some(0), &[0, 1]),
    (Some(0), &[0]),
    (Some(1), &[1, 2]),
    (None, &[2]),
];

static BASE: OnceLock<Instant> = OnceLock::new();

fn instant(ms: u64) -> Instant {
    *BASE.get_or_init(Instant::now) + Duration::from_millis(ms)
}

#[derive(Debug, Clone)]
enum Op {
    Publish {
        topic: usize,
    },
    UserSend {
        user: usize,
    },
    Send {
        tab: usize,
    },
    Broadcast,
    Join {
        tab: usize,
        topic: usize,
    },
    Leave {
        tab: usize,
        topic: usize,
    },
    Read {
        tab: usize,
    },
    /// The tab's connection drops; of what was on the wire it kept `keep` events.
    Drop {
        tab: usize,
        keep: usize,
    },
    /// The tab reconnects from its `back`-th newest position.
    Reconnect {
        tab: usize,
        back: usize,
    },
    /// Time passes: 3 001, 7 001 or 10 001 ms (sums never equal the grace exactly).
    Advance {
        step: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let tab = 0..TABS.len();
    prop_oneof![
        4 => (0..TOPICS.len()).prop_map(|topic| Op::Publish { topic }),
        2 => (0..USERS.len()).prop_map(|user| Op::UserSend { user }),
        2 => tab.clone().prop_map(|tab| Op::Send { tab }),
        1 => Just(Op::Broadcast),
        2 => (tab.clone(), 0..TOPICS.len()).prop_map(|(tab, topic)| Op::Join { tab, topic }),
        2 => (tab.clone(), 0..TOPICS.len()).prop_map(|(tab, topic)| Op::Leave { tab, topic }),
        2 => tab.clone().prop_map(|tab| Op::Read { tab }),
        2 => (tab.clone(), 0..4usize).prop_map(|(tab, keep)| Op::Drop { tab, keep }),
        3 => (tab, 0..3usize).prop_map(|(tab, back)| Op::Reconnect { tab, back }),
        1 => (0..3usize).prop_map(|step| Op::Advance { step }),
    ]
}

/// Whose log holds an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum LogKey {
    All,
    Own(usize),
    Topic(usize),
    User(usize),
}

/// A logged event: its shard and number there, its log, and the incarnations entitled to
/// it when it was sent.
struct Logged {
    shard: u8,
    seq: u64,
    log: LogKey,
    payload: String,
    entitled: HashSet<usize>,
}

/// One incarnation of a session id.
struct Inc {
    tab: usize,
    live: bool,
    /// The heads of shard 0 and of its own log's shard when it was created: no position
    /// before them is its.
    since: Vec<(u8, u64)>,
    topics: BTreeSet<usize>,
    /// When it lost its connection; `None` while attached.
    detached_at: Option<u64>,
}

struct Conn {
    outlet: Outlet,
    decoder: Decoder,
    /// What the hub must still deliver on this connection, in order.
    expected: VecDeque<String>,
    /// How many of `expected`, at its front, are the replay: in order per shard.
    replay: usize,
    /// Whether nothing was read yet: the preamble comes first.
    first: bool,
}

struct Tab {
    id: String,
    inc: usize,
    /// Every position the tab held, oldest first, with the incarnation it was given to.
    positions: Vec<(String, usize)>,
    conn: Option<Conn>,
}

struct Sim {
    hub: Hub,
    clock: ManualClock,
    now: u64,
    max_events: usize,
    placement: Placement,
    /// Relay mode: the port the test's relay drives.
    port: Option<RelayPort>,
    /// The number the test's relay gives the event the hub hands it next (relay mode).
    pending: Option<u64>,
    /// The last number given on each shard (relay mode: joins count).
    heads: Vec<u64>,
    /// The last number of a logged event on each shard.
    logged: Vec<u64>,
    events: Vec<Logged>,
    /// Each log's events held (indexes into `events`).
    logs: HashMap<LogKey, VecDeque<usize>>,
    evicted: HashSet<usize>,
    /// The shard of each payload.
    shard_of: HashMap<String, u8>,
    /// The continuity of the last connection made.
    last_continuity: Continuity,
    incs: Vec<Inc>,
    tabs: Vec<Tab>,
    next: usize,
}

fn cursor_of(position: &str) -> Cursor {
    let (_, pos) = position.rsplit_once('~').unwrap();
    Cursor::parse(pos.as_bytes()).unwrap()
}

impl Sim {
    fn new(max_events: usize, shards: usize, relay: bool) -> Sim {
        let clock = ManualClock::starting_at(instant(0));
        let bounds = LogBounds {
            max_events,
            max_bytes: 1 << 30,
        };
        let placement = Placement::new(shards).unwrap();
        // What each tab gets, not when: writers are woken at once (no write window).
        let mut builder = Hub::builder()
            .keep_alive(None)
            .write_window(WriteWindow::Off)
            .resume(ResumeConfig::new(Duration::from_millis(GRACE_MS)).bounds(bounds))
            .history(MemoryHistory::new(7, bounds, usize::MAX).placed(placement))
            .topic_rule(|_, _| true);
        if relay {
            builder = builder.relay(RelayConfig::default());
        }
        let hub = builder.build(clock.clone());
        let port = RelayPort::claim(&hub);
        let mut sim = Sim {
            hub,
            clock,
            now: 0,
            max_events,
            placement,
            port,
            pending: None,
            heads: vec![0; shards],
            logged: vec![0; shards],
            events: Vec::new(),
            logs: HashMap::new(),
            evicted: HashSet::new(),
            shard_of: HashMap::new(),
            last_continuity: Continuity::New,
            incs: Vec::new(),
            tabs: Vec::new(),
            next: 0,
        };
        for tab in 0..TABS.len() {
            sim.tabs.push(Tab {
                id: format!("tab{tab}"),
                inc: usize::MAX,
                positions: Vec::new(),
                conn: None,
            });
            sim.connect(tab, None);
        }
        sim
    }

    fn live(&self, inc: usize) -> bool {
        self.incs.get(inc).is_some_and(|i| i.live)
    }

    fn target(&self, tab: usize) -> String {
        let mut target = format!("/e?id={}", self.tabs[tab].id);
        for &t in TABS[tab].1 {
            target.push_str("&topic=");
            target.push_str(TOPICS[t]);
        }
        target
    }

    /// The shard that holds `log`.
    fn shard(&self, log: LogKey) -> u8 {
        match log {
            LogKey::All => self.placement.of(Target::All),
            LogKey::Own(inc) => {
                let id = SessionId::parse(self.tabs[self.incs[inc].tab].id.as_bytes(), 128);
                self.placement.of(Target::Session(&id.unwrap()))
            }
            LogKey::Topic(t) => {
                let topic = TopicName::new(TOPICS[t]).unwrap();
                self.placement.of(Target::Topic(&topic))
            }
            LogKey::User(u) => self.placement.of(Target::User(&Principal::new(USERS[u]))),
        }
    }

    /// Logs a new event for `entitled` in `log` (the model's side of a send).
    fn log(&mut self, log: LogKey, payload: &str, entitled: HashSet<usize>) {
        let shard = self.shard(log);
        self.heads[usize::from(shard)] += 1;
        let seq = self.heads[usize::from(shard)];
        self.logged[usize::from(shard)] = seq;
        self.pending = Some(seq);
        self.shard_of.insert(payload.to_owned(), shard);
        let held = self.logs.entry(log).or_default();
        held.push_back(self.events.len());
        if held.len() > self.max_events {
            let gone = held.pop_front().unwrap();
            self.evicted.insert(gone);
        }
        for &inc in &entitled {
            if self.incs[inc].detached_at.is_none() {
                let tab = self.incs[inc].tab;
                let conn = self.tabs[tab].conn.as_mut().unwrap();
                conn.expected.push_back(payload.to_owned());
            }
        }
        self.events.push(Logged {
            shard,
            seq,
            log,
            payload: payload.to_owned(),
            entitled,
        });
    }

    /// Relay mode: the test's relay takes what the hub queued, numbers it in its shard and
    /// hands it back. An event the model logged gets the number the model gave it; one it
    /// did not (a send to a session that is gone, a publish without members) is refused, as
    /// a store refuses it. A join takes the next number of its topic's shard; a leave's
    /// stretch ends at the topic's last event.
    fn pump(&mut self) {
        let Some(port) = self.port.clone() else {
            return;
        };
        let mut items = Vec::new();
        let mut cx = Context::from_waker(Waker::noop());
        while let std::task::Poll::Ready(Some(_)) = port.poll_outbound(&mut cx, &mut items) {}
        for item in items {
            match item {
                Relayed::Event { to, frame } => {
                    if let Some(seq) = self.pending.take() {
                        port.deliver(seq, &to, frame);
                    }
                }
                Relayed::Join { id, topic } => {
                    let shard = usize::from(self.placement.of(Target::Topic(&topic)));
                    self.heads[shard] += 1;
                    assert!(port.joined(self.heads[shard], &id, &topic), "{id:?} joins");
                }
                Relayed::Leave { id, topic, keep } => {
                    let t = TOPICS.iter().position(|&t| t == topic.as_str()).unwrap();
                    let last = self
                        .events
                        .iter()
                        .rev()
                        .find(|e| e.log == LogKey::Topic(t))
                        .map_or(0, |e| e.seq);
                    port.left(&id, &topic, last, keep);
                }
                other => panic!("nothing else is relayed here: {other:?}"),
            }
        }
        self.pending = None;
    }

    /// A group with no member and nobody entitled to any of its events is dropped, log and
    /// all: the model's count of its log starts afresh.
    fn settle(&mut self) {
        for key in (0..TOPICS.len())
            .map(LogKey::Topic)
            .chain((0..USERS.len()).map(LogKey::User))
        {
            let member = self.incs.iter().any(|i| {
                i.live
                    && match key {
                        LogKey::Topic(t) => i.topics.contains(&t),
                        LogKey::User(u) => TABS[i.tab].0 == Some(u),
                        _ => unreachable!(),
                    }
            });
            let entitled = self
                .events
                .iter()
                .filter(|e| e.log == key)
                .any(|e| e.entitled.iter().any(|&i| self.incs[i].live));
            if !member && !entitled {
                self.logs.remove(&key);
            }
        }
    }

    fn payload(&mut self) -> String {
        self.next += 1;
        format!("e{}", self.next)
    }

    fn run(&mut self, op: &Op) {
        match *op {
            Op::Publish { topic } => {
                let payload = self.payload();
                let members: HashSet<usize> = (0..self.incs.len())
                    .filter(|&i| self.live(i) && self.incs[i].topics.contains(&topic))
                    .collect();
                let count = self.hub.topic(TOPICS[topic]).unwrap().send(payload.clone());
                assert_eq!(
                    count,
                    Ok(members.len()),
                    "invariant 4: publish to {}",
                    TOPICS[topic]
                );
                if !members.is_empty() {
                    self.log(LogKey::Topic(topic), &payload, members);
                }
            }
            Op::UserSend { user } => {
                let payload = self.payload();
                let sessions: HashSet<usize> = (0..self.incs.len())
                    .filter(|&i| self.live(i) && TABS[self.incs[i].tab].0 == Some(user))
                    .collect();
                let count = self.hub.user(USERS[user]).send(payload.clone());
                assert_eq!(
                    count,
                    Ok(sessions.len()),
                    "invariant 4: send to {}",
                    USERS[user]
                );
                if !sessions.is_empty() {
                    self.log(LogKey::User(user), &payload, sessions);
                }
            }
            Op::Send { tab } => {
                let payload = self.payload();
                let inc = self.tabs[tab].inc;
                let sent = self
                    .hub
                    .send_to(&self.tabs[tab].id, &Event::new().data(payload.clone()));
                // In relay mode the store says whether the session exists.
                let relayed = self.port.is_some();
                assert_eq!(
                    sent.is_ok(),
                    relayed || self.live(inc),
                    "send to tab {tab}: {sent:?}"
                );
                if self.live(inc) {
                    self.log(LogKey::Own(inc), &payload, HashSet::from([inc]));
                }
            }
            Op::Broadcast => {
                let payload = self.payload();
                let live: HashSet<usize> = (0..self.incs.len()).filter(|&i| self.live(i)).collect();
                let count = self.hub.broadcast(&Event::new().data(payload.clone()));
                assert_eq!(count, live.len(), "invariant 4: broadcast");
                self.log(LogKey::All, &payload, live);
            }
            Op::Join { tab, topic } => {
                let inc = self.tabs[tab].inc;
                let Some(session) = self.hub.session(&self.tabs[tab].id) else {
                    assert!(!self.live(inc));
                    return;
                };
                let joined = session.join(TOPICS[topic]).unwrap();
                assert_eq!(joined, self.incs[inc].topics.insert(topic));
            }
            Op::Leave { tab, topic } => {
                let inc = self.tabs[tab].inc;
                let Some(session) = self.hub.session(&self.tabs[tab].id) else {
                    assert!(!self.live(inc));
                    return;
                };
                let left = session.leave(TOPICS[topic]).unwrap();
                assert_eq!(left, self.incs[inc].topics.remove(&topic));
            }
            Op::Read { tab } => self.read(tab, usize::MAX),
            Op::Drop { tab, keep } => {
                if self.tabs[tab].conn.is_none() {
                    return;
                }
                self.read(tab, keep);
                let conn = self.tabs[tab].conn.take().unwrap();
                drop(conn.outlet);
                let inc = self.tabs[tab].inc;
                self.incs[inc].detached_at = Some(self.now);
            }
            Op::Reconnect { tab, back } => {
                if self.tabs[tab].conn.is_some() {
                    return;
                }
                let positions = &self.tabs[tab].positions;
                let (from, of) = positions[positions.len().saturating_sub(1 + back)].clone();
                self.connect(tab, Some(from));
                if of == self.tabs[tab].inc {
                    // A position of the session it resumes is never from before it.
                    let expired = Continuity::Gap(GapReason::Expired);
                    assert_ne!(
                        self.last_continuity, expired,
                        "tab {tab} from its own position"
                    );
                }
            }
            Op::Advance { step } => {
                self.now += [3_001, 7_001, 10_001][step];
                self.clock.set(instant(self.now));
                self.hub
                    .poll_timers(&mut Context::from_waker(Waker::noop()), instant(self.now));
                for inc in &mut self.incs {
                    if inc.live && inc.detached_at.is_some_and(|at| at + GRACE_MS <= self.now) {
                        inc.live = false;
                    }
                }
            }
        }
        self.pump();
        self.settle();
        let stats = self.hub.stats();
        let live = self.incs.iter().filter(|i| i.live);
        let attached = live.clone().filter(|i| i.detached_at.is_none()).count();
        assert_eq!(
            (stats.attached, stats.detached),
            (attached, live.count() - attached)
        );
    }

    /// Reads what is on the tab's wire: all of it must be what the hub owes, in order; the
    /// tab keeps the first `keep` events (and the preamble's position).
    fn read(&mut self, tab: usize, keep: usize) {
        let Tab {
            conn: Some(conn),
            positions,
            inc,
            ..
        } = &mut self.tabs[tab]
        else {
            return;
        };
        let mut batch = Batch::new();
        let mut cx = Context::from_waker(Waker::noop());
        let _ = conn
            .outlet
            .poll_drain(&mut cx, instant(self.now), &mut batch);
        let bytes = batch.copy_to_bytes(batch.remaining());
        conn.decoder.feed(&bytes).unwrap();
        if std::mem::take(&mut conn.first) {
            // `retry: N`, then `id: <the position the stream starts from>`.
            let text = String::from_utf8_lossy(&bytes);
            let token = text
                .lines()
                .nth(1)
                .and_then(|l| l.strip_prefix("id: "))
                .unwrap();
            positions.push((token.to_owned(), *inc));
        }
        let mut got = Vec::new();
        while let Some(item) = conn.decoder.poll_item() {
            if let Item::Event(e) = item {
                got.push((e.data, e.last_event_id));
            }
        }
        let owed: Vec<String> = conn.expected.drain(..).collect();
        let data: Vec<&str> = got.iter().map(|(d, _)| d.as_str()).collect();
        // The replay in order per shard, then the rest in order.
        let replay = std::mem::take(&mut conn.replay).min(owed.len());
        let per_shard = |items: &[&str]| {
            let mut shards: Vec<Vec<String>> = vec![Vec::new(); MAX_SHARDS];
            for &item in items {
                shards[usize::from(self.shard_of[item])].push(item.to_owned());
            }
            shards
        };
        let owed: Vec<&str> = owed.iter().map(String::as_str).collect();
        assert_eq!(
            data.len(),
            owed.len(),
            "invariant 1: tab {tab}'s stream: {data:?} {owed:?}"
        );
        assert_eq!(
            per_shard(&data[..replay]),
            per_shard(&owed[..replay]),
            "invariant 1: tab {tab}'s replay"
        );
        assert_eq!(
            data[replay..],
            owed[replay..],
            "invariant 1: tab {tab}'s stream"
        );
        for (_, position) in got.into_iter().take(keep) {
            positions.push((position, *inc));
        }
    }

    /// Connects the tab, from `from` when given; checks the continuity and the topic gaps
    /// against the model and sets what the connection owes.
    fn connect(&mut self, tab: usize, from: Option<String>) {
        let target = self.target(tab);
        let mut req = Request::new(b"GET", target.as_bytes(), HttpVersion::Http11);
        req.header(b"accept", b"text/event-stream");
        if let Some(user) = TABS[tab].0 {
            req.principal(USERS[user].as_bytes());
        }
        if let Some(from) = &from {
            req.header(b"last-event-id", from.as_bytes());
        }
        let Decision::Accept(accepted) = self.hub.decide(&req, instant(self.now)) else {
            panic!("tab {tab} accepted")
        };
        let inc = self.tabs[tab].inc;
        let (continuity, gaps, replay) = match from {
            None => (Continuity::New, Vec::new(), Vec::new()),
            Some(_) if !self.live(inc) => {
                (Continuity::Gap(GapReason::Expired), Vec::new(), Vec::new())
            }
            Some(from) => self.owed(inc, &cursor_of(&from)),
        };
        assert_eq!(accepted.continuity, continuity, "invariants 2-3: tab {tab}");
        self.last_continuity = continuity;
        let got_gaps: Vec<&str> = accepted.topic_gaps.iter().map(|t| t.as_str()).collect();
        assert_eq!(got_gaps, gaps, "invariant 2: tab {tab}'s topic gaps");
        if !self.live(inc) {
            let id = SessionId::parse(self.tabs[tab].id.as_bytes(), 128).unwrap();
            let home = self.placement.of(Target::Session(&id));
            let since = [0, home]
                .into_iter()
                .map(|s| (s, self.logged[usize::from(s)]))
                .collect();
            self.incs.push(Inc {
                tab,
                live: true,
                since,
                topics: BTreeSet::new(),
                detached_at: None,
            });
            self.tabs[tab].inc = self.incs.len() - 1;
        }
        let inc = self.tabs[tab].inc;
        self.incs[inc].detached_at = None;
        self.incs[inc].topics.extend(TABS[tab].1.iter().copied());
        self.tabs[tab].conn = Some(Conn {
            outlet: accepted.outlet,
            decoder: Decoder::new(),
            replay: replay.len(),
            expected: replay.into(),
            first: true,
        });
        // Relay mode: the topics granted now are joined once the relay numbers the joins.
        self.pump();
    }

    /// What a live incarnation is owed after `after`: its continuity, its topic gaps and the
    /// payloads replayed.
    fn owed(&self, inc: usize, after: &Cursor) -> (Continuity, Vec<&'static str>, Vec<String>) {
        let at = |shard: u8| after.seq(shard).unwrap_or(0);
        if self.incs[inc].since.iter().any(|&(s, since)| at(s) < since) {
            return (Continuity::Gap(GapReason::Expired), Vec::new(), Vec::new());
        }
        let owed: Vec<(usize, &Logged)> = self
            .events
            .iter()
            .enumerate()
            .filter(|(_, e)| e.seq > at(e.shard) && e.entitled.contains(&inc))
            .collect();
        let lost = |e: &&(usize, &Logged)| self.evicted.contains(&e.0);
        if owed
            .iter()
            .filter(lost)
            .any(|(_, e)| !matches!(e.log, LogKey::Topic(_)))
        {
            return (Continuity::Gap(GapReason::Overflow), Vec::new(), Vec::new());
        }
        let gap_topics: BTreeSet<usize> = owed
            .iter()
            .filter(lost)
            .filter_map(|(_, e)| match e.log {
                LogKey::Topic(t) => Some(t),
                _ => None,
            })
            .collect();
        let replay: Vec<String> = owed
            .iter()
            .filter(|(_, e)| !matches!(e.log, LogKey::Topic(t) if gap_topics.contains(&t)))
            .map(|(_, e)| e.payload.clone())
            .collect();
        if replay.len() > self.max_events {
            return (Continuity::Gap(GapReason::Overflow), Vec::new(), Vec::new());
        }
        let mut gaps: Vec<&'static str> = gap_topics.iter().map(|&t| TOPICS[t]).collect();
        gaps.sort_unstable();
        (
            Continuity::Resumed {
                replayed: replay.len(),
            },
            gaps,
            replay,
        )
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(800))]

    #[test]
    fn every_tab_gets_what_its_memberships_entitle_it_to(
        max_events in 2usize..8,
        shards in prop_oneof![Just(1usize), Just(4)],
        relay in any::<bool>(),
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        let mut sim = Sim::new(max_events, shards, relay);
        for op in &ops {
            sim.run(op);
        }
        for tab in 0..TABS.len() {
            sim.read(tab, usize::MAX);
        }
    }
}
