//! Redis away mid-run, frozen (SIGSTOP, then SIGCONT) or killed and restarted empty on its
//! port: each node keeps serving its own tabs, what needs Redis is refused (503, never
//! acknowledged), cross-node delivery comes back within seconds, and nothing acknowledged
//! (202) is lost, or the reconnect reports a gap (`resumed: false`); a frozen Redis that
//! applies commands late delivers nothing twice. And a node started before Redis waits for
//! it.

use std::thread;
use std::time::{Duration, Instant};

use sse_conformance::{Demo, RedisServer};
use sse_testkit::free_port;

use super::{
    BACK_WITHIN, Cluster, Redis, Tab, node, node_flags, post, send, sessions_status, wait_listed,
    wait_until,
};

/// How long a send on a node to its own tab may take while Redis is away: the node's Redis
/// timeout (300 ms) and a retry, with room for a slow machine.
const LOCAL_WITHIN: Duration = Duration::from_secs(3);

/// While Redis is away, A delivers a send to its own tab at once (202), and B refuses one to
/// that tab (503: not acknowledged), as it refuses `GET /sessions`.
fn away(c: &Cluster, tab: &mut Tab, what: &str) {
    let started = Instant::now();
    let local = format!("local, redis {what}");
    assert_eq!(send(&c.a, &tab.id, &local), 202, "A serves its own tab");
    assert!(
        tab.gets_within(&local, LOCAL_WITHIN),
        "the tab on A gets A's send while Redis is {what}"
    );
    assert!(started.elapsed() < LOCAL_WITHIN, "{:?}", started.elapsed());
    assert_eq!(
        send(&c.b, &tab.id, "not acknowledged"),
        503,
        "B cannot reach A's tab while Redis is {what}"
    );
    assert_eq!(sessions_status(&c.b), 503);
}

/// Once Redis is back, a send on B to A's tab is acknowledged again within seconds, and what
/// was acknowledged arrives. Returns the data of the sends acknowledged.
fn back(c: &Cluster, tab: &mut Tab) -> Vec<String> {
    let mut acked = Vec::new();
    let mut n = 0;
    let came_back = wait_until(BACK_WITHIN, || {
        n += 1;
        let data = format!("after {n}");
        match send(&c.b, &tab.id, &data) {
            202 => {
                acked.push(data);
                true
            }
            status => {
                assert!([404, 503].contains(&status), "{status}");
                false
            }
        }
    });
    assert!(
        came_back,
        "cross-node delivery is back within {BACK_WITHIN:?}"
    );
    for data in ["from a, back", "from b, back"] {
        let node = if data.contains("from a") { &c.a } else { &c.b };
        assert_eq!(send(node, &tab.id, data), 202);
        acked.push(data.to_owned());
    }
    for data in &acked {
        assert!(
            tab.gets_within(data, BACK_WITHIN),
            "{data:?} was acknowledged (202): {:?}",
            tab.data()
        );
    }
    acked
}

/// The tab hangs up and comes back to B, after a send it missed: either it resumes with
/// exactly that (`resumed: true`), or the reconnect reports a gap; always the same id.
fn resume_or_gap(c: &Cluster, tab: Tab) -> Tab {
    let (id, last) = (tab.id.clone(), tab.last_event_id());
    tab.stream.hang_up();
    wait_listed(&c.b, &id, false);
    assert_eq!(send(&c.a, &id, "missed"), 202);
    let back = Tab::reconnect(&c.b, &last);
    assert_eq!(back.id, id);
    let expected: &[&str] = if back.resumed { &["missed"] } else { &[] };
    assert_eq!(back.replayed(), expected, "resumed: {}", back.resumed);
    back
}

/// Redis frozen (SIGSTOP) mid-run, then thawed (SIGCONT).
pub(crate) fn redis_frozen_then_thawed_loses_nothing_acknowledged(bin: &str) {
    let mut c = Cluster::start(bin);
    let mut tab = Tab::open(&c.a);
    wait_listed(&c.b, &tab.id, true);
    assert_eq!(send(&c.b, &tab.id, "before"), 202);
    tab.wait_data("before");

    c.redis.one().pause().unwrap();
    away(&c, &mut tab, "frozen");
    c.redis.one().resume().unwrap();

    let acked = back(&c, &mut tab);
    // A command Redis applied when it woke (A's send, delivered here at once; B's refused
    // one) is not delivered again: every event once. The last acknowledged send is numbered
    // after anything applied late, so all of it has arrived.
    assert!(tab.gets_within(acked.last().unwrap(), BACK_WITHIN));
    let data = tab.data();
    let mut seen = std::collections::HashSet::new();
    assert!(
        data.iter().all(|d| seen.insert(d)),
        "a freeze delivers nothing twice: {data:?}"
    );
    // Redis kept everything: the tab, up to date, resumes on B with exactly what it missed.
    let back = resume_or_gap(&c, tab);
    assert!(back.resumed, "a freeze loses nothing: no gap");
}

/// Redis killed mid-run (everything it held is gone) and restarted empty on its port.
pub(crate) fn redis_killed_and_restarted_empty_loses_nothing_acknowledged_or_reports_a_gap(
    bin: &str,
) {
    let mut c = Cluster::start(bin);
    // A tab that leaves before the restart, with a position in the old store.
    let mut left = Tab::open(&c.a);
    wait_listed(&c.b, &left.id, true);
    assert_eq!(send(&c.b, &left.id, "seen"), 202);
    left.wait_data("seen");
    let (left_id, left_last) = (left.id.clone(), left.last_event_id());
    left.stream.hang_up();
    wait_listed(&c.b, &left_id, false);
    // A tab that stays through it.
    let mut tab = Tab::open(&c.a);
    wait_listed(&c.b, &tab.id, true);
    assert_eq!(send(&c.b, &tab.id, "before"), 202);
    tab.wait_data("before");

    let port = c.redis.one().port;
    c.redis.one().stop();
    away(&c, &mut tab, "down");
    c.redis = Redis::One(RedisServer::start_on(port).unwrap());

    back(&c, &mut tab);
    // The tab that left comes back: its position belongs to a store that is gone, a gap.
    let returned = Tab::reconnect(&c.b, &left_last);
    assert_eq!(
        (returned.id.as_str(), returned.resumed),
        (left_id.as_str(), false)
    );
    assert_eq!(returned.replayed(), Vec::<String>::new());
    resume_or_gap(&c, tab);
}

/// A node started while Redis is not there yet waits for it (it does not listen), and serves
/// once Redis comes: reached from another node like any other.
pub(crate) fn a_node_started_before_redis_waits_for_it(bin: &str) {
    let port = free_port().unwrap();
    let url = format!("redis://127.0.0.1:{port}");
    let starting = {
        let (bin, url) = (bin.to_owned(), url.clone());
        thread::spawn(move || Demo::start(&bin, &node_flags(&url)))
    };
    thread::sleep(Duration::from_millis(500));
    assert!(
        !starting.is_finished(),
        "the node listens only once it reached Redis"
    );
    let redis = RedisServer::start_on(port).unwrap();
    let a = starting.join().unwrap().unwrap();
    let b = node(bin, &redis.url());
    let mut tab = Tab::open(&a);
    wait_listed(&b, &tab.id, true);
    assert_eq!(send(&b, &tab.id, "from b"), 202);
    tab.wait_data("from b");
    assert_eq!(post(&a, "/broadcast", b"to all").0, 200);
    tab.wait_data("to all");
}
