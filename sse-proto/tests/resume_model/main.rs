//! Model-based property test of resume mode.
//!
//! Several simulated browser tabs connect, read (all of their stream, or a prefix of it before
//! the connection drops), drop and reconnect with their current, an older or a forged last
//! event id, while the application sends, broadcasts, disconnects and closes, and a fake clock
//! moves sessions past their grace period. Everything the hub answers is checked against a
//! ground-truth model kept here (never against the hub's internals): which sessions live, the
//! sequence number of every logged event, and which logged events each session is owed.
//!
//! The invariants, numbered as the assertion messages cite them:
//!
//! 1. Every connection receives exactly the logged events owed to its session after the
//!    position its preamble starts from, in order (a prefix of them if it ends early); a
//!    `Resumed` connection starts at the claimed position, and a claim older than the start is
//!    reported as a gap.
//! 2. Completeness: a claim of a well-formed position of this epoch, for a live session, at or
//!    after the session's creation, is `Resumed` unless the replay would exceed the log bounds.
//! 3. Past the bounds it is `Gap(Overflow)`, never a `Resumed` that misses something.
//! 4. A valid offered session id is kept (gap or not), unless it was closed: then 204.
//! 5. Sends by id reach live sessions (attached or detached) and fail with `NotConnected` for
//!    gone ones; broadcasts count the live sessions.
//! 6. A duplicated tab takes the session; the original's stream ends with a fresh bare id
//!    that reconnects as a new session of its own.
//! 7. `Hub::stats`, `Hub::len` and `Hub::ids` agree with the model.

#![allow(clippy::panic, clippy::unwrap_used)] // a test reports failure by panicking

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Buf;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use sse_proto::{
    Accepted, Batch, Continuity, Cursor, Decision, Decoder, EndReason, Error, Event, GapReason,
    HttpVersion, Hub, IdSource, Item, LogBounds, ManualClock, Outlet, Request, ResumeConfig,
    Session, SessionId,
};

const GRACE_MS: u64 = 10_000;
const RETRY_MS: u64 = 3_000;
/// Tabs open at the start of a run; duplicates add more, up to `MAX_TABS`.
const TABS: usize = 3;
const MAX_TABS: usize = 5;
/// The longest session id the handshake takes in resume mode (128 minus the position).
const MAX_SESSION_ID_LEN: usize = 128 - sse_proto::MAX_POSITION_LEN;

// ---------------------------------------------------------------------------------------------
// The fake clock: each simulation's hub reads its own `ManualClock` (given to
// `HubBuilder::build`) to date a detachment when an outlet is dropped and to stamp closed ids;
// every `now` passed in comes from it too, as milliseconds past `BASE`.

static BASE: OnceLock<Instant> = OnceLock::new();

fn instant(ms: u64) -> Instant {
    *BASE.get_or_init(Instant::now) + Duration::from_millis(ms)
}

// ---------------------------------------------------------------------------------------------
// Positions as the test reads and writes them (`<epoch>.<seq>`, lowercase base 36).

fn b36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap()
}

fn parse_b36(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 13 || (s.len() > 1 && s.starts_with('0')) {
        return None;
    }
    s.bytes().try_fold(0u64, |n, b| {
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'z' => b - b'a' + 10,
            _ => return None,
        };
        n.checked_mul(36)?.checked_add(u64::from(digit))
    })
}

fn token(sid: &str, epoch: u64, seq: u64) -> String {
    format!("{sid}~{}.{}", b36(epoch), b36(seq))
}

/// What an offered event id claims after its session id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claimed {
    /// A bare session id.
    Bare,
    /// Something after `~` that is not a position.
    Invalid,
    At {
        epoch: u64,
        seq: u64,
    },
}

/// The session id and claim of an offered event id; `None` when the session part is not a
/// usable id (the hub then generates one).
fn read_offer(value: &str) -> Option<(String, Claimed)> {
    let (sid, claimed) = match value.rsplit_once('~') {
        None => (value, Claimed::Bare),
        Some((sid, pos)) => {
            let at = pos
                .split_once('.')
                .and_then(|(e, s)| Some((parse_b36(e)?, parse_b36(s)?)));
            let claimed = match at {
                Some((epoch, seq)) => Claimed::At { epoch, seq },
                None => Claimed::Invalid,
            };
            (sid, claimed)
        }
    };
    // An id that reads as another id and a position is refused: a call taking it would
    // reach that other session once its own is gone.
    let holds_position = sid
        .rsplit_once('~')
        .is_some_and(|(_, pos)| Cursor::parse(pos.as_bytes()).is_some());
    let valid = !sid.is_empty()
        && sid.len() <= MAX_SESSION_ID_LEN
        && !sid.bytes().any(|b| b < 0x20 || b == 0x7f)
        && !holds_position;
    valid.then(|| (sid.to_owned(), claimed))
}

fn percent_encode(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

// ---------------------------------------------------------------------------------------------
// Operations.

/// A forged last event id: the tab's session id with something made up after `~`.
#[derive(Debug, Clone)]
enum Forge {
    /// Any epoch and sequence number (in practice another epoch).
    Pos(u64, u64),
    /// This epoch, and a sequence number at this fraction (per mille) of the log's head: a
    /// well-formed position the tab never saw.
    OurEpoch(u16),
    /// This epoch, past the head.
    Future(u64),
    /// Not a position at all.
    Garbage(String),
}

/// What a connecting tab offers.
#[derive(Debug, Clone)]
enum How {
    Fresh,
    /// Its current last event id (the last one it stored, for a page that has read nothing).
    Current,
    /// An older last event id it saw (a stale reload).
    Older(usize),
    /// Its session id alone.
    Bare,
    Forged(Forge),
}

/// How a send addresses its session.
#[derive(Debug, Clone, Copy)]
enum Via {
    /// The `Session` handle of the tab's last accepted connection.
    Handle,
    /// `Hub::send_to` with the tab's session id.
    Hub,
    /// `Hub::send_to` with the session id of an older last event id of the tab.
    HubSeen(usize),
}

#[derive(Debug, Clone)]
enum Op {
    /// `query`: a page (re)load offering the id in `?id=` (the old page's connection is noticed
    /// gone only after the new request); otherwise `EventSource`'s reconnect with
    /// `Last-Event-ID` after its connection ended.
    Connect {
        tab: usize,
        how: How,
        query: bool,
    },
    /// Drain the outlet; feed all of it to the tab, or only `cut` per mille of it and drop
    /// the connection.
    Deliver {
        tab: usize,
        cut: Option<u16>,
    },
    /// The connection drops with whatever is queued undelivered.
    Drop {
        tab: usize,
    },
    Send {
        tab: usize,
        via: Via,
    },
    Broadcast,
    Volatile {
        tab: usize,
    },
    BroadcastVolatile,
    DropStream {
        tab: usize,
    },
    Close {
        tab: usize,
        via_handle: bool,
    },
    Advance {
        ms: u64,
        poll: bool,
    },
    /// A new tab starts with a copy of this tab's current last event id and connects with it
    /// while this one is still connected.
    Duplicate {
        tab: usize,
        query: bool,
    },
}

fn forge() -> impl Strategy<Value = Forge> {
    let garbage = prop_oneof![
        Just(String::new()),
        Just("x".to_owned()),
        Just("1.2.3".to_owned()),
        Just("01.1".to_owned()),
        Just("1.A".to_owned()),
        Just(".1".to_owned()),
        Just("1.".to_owned()),
        "[a-z0-9.~]{0,12}",
    ];
    prop_oneof![
        1 => (any::<u64>(), any::<u64>()).prop_map(|(e, s)| Forge::Pos(e, s)),
        2 => (0u16..=1000).prop_map(Forge::OurEpoch),
        1 => (1u64..4).prop_map(Forge::Future),
        1 => garbage.prop_map(Forge::Garbage),
    ]
}

fn how() -> impl Strategy<Value = How> {
    prop_oneof![
        2 => Just(How::Fresh),
        8 => Just(How::Current),
        3 => any::<usize>().prop_map(How::Older),
        1 => Just(How::Bare),
        2 => forge().prop_map(How::Forged),
    ]
}

fn via() -> impl Strategy<Value = Via> {
    prop_oneof![
        3 => Just(Via::Handle),
        3 => Just(Via::Hub),
        1 => any::<usize>().prop_map(Via::HubSeen),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let tab = || 0usize..MAX_TABS;
    let cut = prop_oneof![3 => Just(None), 1 => (0u16..1000).prop_map(Some)];
    let ms = prop_oneof![3 => 1u64..3_000, 1 => GRACE_MS..GRACE_MS + 5_000];
    prop_oneof![
        16 => (tab(), how(), any::<bool>())
            .prop_map(|(tab, how, query)| Op::Connect { tab, how, query }),
        16 => (tab(), cut).prop_map(|(tab, cut)| Op::Deliver { tab, cut }),
        3 => tab().prop_map(|tab| Op::Drop { tab }),
        14 => (tab(), via()).prop_map(|(tab, via)| Op::Send { tab, via }),
        7 => Just(Op::Broadcast),
        3 => tab().prop_map(|tab| Op::Volatile { tab }),
        2 => Just(Op::BroadcastVolatile),
        2 => tab().prop_map(|tab| Op::DropStream { tab }),
        2 => (tab(), any::<bool>()).prop_map(|(tab, via_handle)| Op::Close { tab, via_handle }),
        5 => (ms, prop::bool::weighted(0.75)).prop_map(|(ms, poll)| Op::Advance { ms, poll }),
        2 => (tab(), any::<bool>()).prop_map(|(tab, query)| Op::Duplicate { tab, query }),
    ]
}

/// Log bounds that a few events overflow: by count, or by bytes (an event is 10 to 12 bytes).
fn small_bounds() -> impl Strategy<Value = LogBounds> {
    let max_bytes = prop_oneof![Just(1 << 20), 30usize..120];
    (3usize..=5, max_bytes).prop_map(|(max_events, max_bytes)| LogBounds {
        max_events,
        max_bytes,
    })
}

/// Each connection's budget: the default, or a few events' worth so that slow tabs are cut
/// off.
fn budget() -> impl Strategy<Value = usize> {
    prop_oneof![Just(1 << 20), 100usize..400]
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(op(), 1..80)
}

// ---------------------------------------------------------------------------------------------
// The model.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Life {
    /// Takes events: attached, or detached and waiting for its tab.
    Live,
    /// Closed while attached: its connection writes what is queued, then the session ends.
    Closing,
}

/// A session the hub holds, in the model.
#[derive(Debug)]
struct ModelSession {
    /// Which incarnation of the id this is (an id that expired or was closed can come back).
    inc: u64,
    life: Life,
    /// The head of the log when this incarnation was created.
    since: u64,
    /// The connection serving it.
    link: Option<usize>,
    detached_at: Option<u64>,
}

/// A data event a tab received: a logged one by its sequence number, a volatile one by its
/// number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Got {
    Logged(u64),
    Volatile(u64),
}

/// One connection, in the model, and what its tab made of it.
#[derive(Debug)]
struct Conn {
    sid: String,
    inc: u64,
    claimed: Option<Claimed>,
    continuity: Continuity,
    /// The position the preamble must start from.
    start: u64,
    /// The data events queued for this connection, in order.
    expected: Vec<Got>,
    /// How many of `expected` the writer took.
    taken: usize,
    /// Why the stream ends, once it is ending.
    ending: Option<EndReason>,
    /// Whether something was queued since the writer last drained.
    undrained: bool,
    /// Bytes queued since the writer last drained, as the budget counts them.
    queued: usize,
    /// The preamble's `id:` line, repeated before the first event when no logged event came
    /// first: its length while pending.
    id_line: Option<usize>,
    /// Whether the stream was replaced (its last block gives the tab a fresh id).
    replaced: bool,
    /// Whether the writer took the preamble (a stream replaced before that never writes it).
    preamble_taken: bool,
    /// The outlet was dropped or finished.
    gone: bool,
    received: Vec<Got>,
    /// Every byte fed to the tab from this connection.
    fed: Vec<u8>,
    /// Whether the tab read the preamble (or the preamble was dropped unwritten: a stream
    /// replaced or cut off before its writer took anything).
    preamble_seen: bool,
    /// The event id in force on this connection.
    last_id: String,
}

impl Conn {
    fn is_open(&self) -> bool {
        self.ending.is_none() && !self.gone
    }

    fn push(&mut self, got: Got) {
        self.expected.push(got);
        self.undrained = true;
    }
}

struct Tab {
    decoder: Decoder,
    outlet: Option<Outlet>,
    conn: Option<usize>,
    /// The session handle of the last accepted connection, with its incarnation.
    handle: Option<(Session, u64)>,
    /// The session id of the last accepted connection.
    sid: Option<String>,
    /// Every last event id the tab has had, oldest first.
    seen: Vec<String>,
}

impl Tab {
    fn new() -> Tab {
        Tab {
            decoder: Decoder::new(),
            outlet: None,
            conn: None,
            handle: None,
            sid: None,
            seen: Vec::new(),
        }
    }

    fn remember(&mut self, id: &str) {
        if !id.is_empty() && self.seen.last().is_none_or(|last| last != id) {
            self.seen.push(id.to_owned());
        }
    }
}

/// What the model says a request must get.
#[derive(Debug)]
enum Expect {
    NoContent(String),
    Accept(Admission),
}

/// An accepted connection, as the model expects it.
#[derive(Debug)]
struct Admission {
    /// `None`: a generated id.
    sid: Option<String>,
    continuity: Continuity,
    /// The position its preamble starts from.
    start: u64,
    /// The logged events it replays.
    replay: Vec<u64>,
}

/// How often each outcome came up, to show that the runs reach them.
#[derive(Debug, Default)]
struct Coverage {
    continuity: BTreeMap<String, usize>,
    replayed: usize,
    no_content: usize,
    replaced: usize,
    renamed_reconnects: usize,
    expired: usize,
    cut_off: usize,
    not_connected: usize,
    cut_deliveries: usize,
}

/// The hub under test, the tabs that use it, and the model it is checked against.
struct Sim {
    hub: Hub,
    /// The clock `hub` reads, at `now_ms`.
    clock: ManualClock,
    bounds: LogBounds,
    /// Each connection's outbox budget, in bytes.
    budget: usize,
    now_ms: u64,
    /// The sequence number of the last logged event.
    head: u64,
    /// The log's epoch, as the first preamble of the run tells it.
    epoch: Option<u64>,
    /// Incarnations made so far.
    incs: u64,
    /// The sessions the hub holds, by id.
    sessions: BTreeMap<String, ModelSession>,
    /// Every logged event owed to each session id, over all its incarnations, in order.
    owed: HashMap<String, Vec<u64>>,
    /// Ids marked closed and not yet answered with 204.
    marks: BTreeSet<String>,
    /// Every connection of the run, by the order it was accepted in.
    conns: Vec<Conn>,
    tabs: Vec<Tab>,
    /// Volatile events sent so far.
    volatiles: u64,
    cov: Coverage,
}

mod connect;
mod deliver;
mod send;

fn drain(outlet: &mut Outlet, now: Instant) -> (Vec<u8>, bool) {
    let mut cx = Context::from_waker(Waker::noop());
    let mut out = Vec::new();
    loop {
        let mut batch = Batch::new();
        match outlet.poll_drain(&mut cx, now, &mut batch) {
            Poll::Ready(Some(_)) => out.extend_from_slice(&batch.copy_to_bytes(batch.remaining())),
            Poll::Ready(None) => return (out, true),
            Poll::Pending => return (out, false),
        }
    }
}

fn continuity_name(c: Continuity) -> String {
    match c {
        Continuity::Resumed { .. } => "Resumed".to_owned(),
        other => format!("{other:?}"),
    }
}

/// The bytes of an event with only `data`.
fn data_len(data: &str) -> usize {
    "data: \n\n".len() + data.len()
}

/// The bytes of logged event `seq` of `sid`: its `id:` line and its data.
fn logged_len(sid: &str, epoch: u64, seq: u64) -> usize {
    "id: \n".len() + token(sid, epoch, seq).len() + data_len(&format!("e{seq}"))
}

fn logged(received: &[Got]) -> Vec<u64> {
    received
        .iter()
        .filter_map(|g| match g {
            Got::Logged(s) => Some(*s),
            Got::Volatile(_) => None,
        })
        .collect()
}

fn run(bounds: LogBounds, budget: usize, ops: &[Op]) -> Coverage {
    let mut sim = Sim::new(bounds, budget);
    for op in ops {
        sim.run(op);
    }
    sim.cov
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Small logs: overflow happens, and is always reported as a gap.
    #[test]
    fn resume_is_exact_or_reports_a_gap(bounds in small_bounds(), budget in budget(), ops in ops()) {
        run(bounds, budget, &ops);
    }

    /// Logs large enough that nothing overflows: every claim that can be resumed is.
    #[test]
    fn resume_is_complete_when_nothing_overflows(budget in budget(), ops in ops()) {
        run(LogBounds::default(), budget, &ops);
    }
}

/// The generated runs reach every outcome the invariants are about (else the properties
/// above could pass vacuously).
#[test]
fn the_runs_reach_every_outcome() {
    let mut runner = TestRunner::deterministic();
    let strategy = (small_bounds(), budget(), ops());
    let mut total = Coverage::default();
    for _ in 0..200 {
        let (bounds, budget, ops) = strategy.new_tree(&mut runner).unwrap().current();
        let cov = run(bounds, budget, &ops);
        for (k, n) in cov.continuity {
            *total.continuity.entry(k).or_default() += n;
        }
        total.replayed += cov.replayed;
        total.no_content += cov.no_content;
        total.replaced += cov.replaced;
        total.renamed_reconnects += cov.renamed_reconnects;
        total.expired += cov.expired;
        total.cut_off += cov.cut_off;
        total.not_connected += cov.not_connected;
        total.cut_deliveries += cov.cut_deliveries;
    }
    eprintln!("{total:#?}"); // shown with --nocapture
    let kinds = [
        "New",
        "Resumed",
        "Gap(NoPosition)",
        "Gap(InvalidPosition)",
        "Gap(UnknownEpoch)",
        "Gap(Expired)",
        "Gap(Overflow)",
    ];
    for kind in kinds {
        assert!(
            total.continuity.get(kind).is_some_and(|&n| n > 0),
            "no {kind} in {total:?}"
        );
    }
    assert!(
        total.replayed > 0
            && total.no_content > 0
            && total.replaced > 0
            && total.renamed_reconnects > 0
            && total.expired > 0
            && total.cut_off > 0
            && total.not_connected > 0
            && total.cut_deliveries > 0,
        "{total:?}"
    );
}
