//! The cluster rules (DESIGN.md "Several nodes", issue "Several nodes on Redis"), written
//! once: two demo nodes of one adapter, A and B, on one redis-server that the rule started
//! itself, over real sockets. Any node reaches, broadcasts to, closes, lists and resumes the
//! tabs of the other; Redis frozen, or killed and restarted empty, mid-run; a node killed
//! mid-stream.
//!
//! [`suite!`] turns every rule into a `#[test]` for one demo binary
//! (`tests/cluster_hyper.rs`, `tests/cluster_tokio.rs`, `tests/cluster_async_std.rs`).

#![allow(clippy::panic, clippy::unwrap_used, dead_code, unused_imports)] // a test reports failure by panicking

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use sse_conformance::{Demo, EventStream, Position, RedisCluster, RedisServer, percent_encode};
use sse_proto::MessageEvent;

/// Redis frozen, Redis killed and restarted empty, a node started before Redis.
mod faults;
/// Topics and users across the nodes.
mod groups;
/// Reaching, broadcasting to, closing and listing the tabs of another node.
mod reach;
/// Resuming on another node: a tab dropped or hung up, a node killed.
mod resume;

pub(crate) use faults::*;
pub(crate) use groups::*;
pub(crate) use reach::*;
pub(crate) use resume::*;

/// Generates one `#[test]` per cluster rule for the demo binary `$bin`.
macro_rules! suite {
    ($bin:expr) => {
        cluster::suite!(@tests $bin;
            a_tab_on_a_is_reached_from_b,
            a_broadcast_on_b_reaches_the_tabs_of_both_and_counts_them,
            a_close_on_b_ends_the_stream_on_a_and_b_answers_the_reconnect_with_204,
            sessions_on_either_node_list_the_tabs_of_both_until_they_leave,
            a_tab_hung_up_on_a_resumes_on_b_with_what_it_missed,
            a_tab_dropped_from_b_resumes_on_b_with_what_it_missed,
            a_tab_of_a_killed_node_resumes_on_b_from_the_logs,
            a_cursor_naming_a_shard_the_store_lacks_is_a_gap,
            redis_frozen_then_thawed_loses_nothing_acknowledged,
            redis_killed_and_restarted_empty_loses_nothing_acknowledged_or_reports_a_gap,
            a_node_started_before_redis_waits_for_it,
            publish_user_send_and_user_close_reach_both_nodes,
            a_tab_resumes_on_the_other_node_across_its_topics,
            a_node_without_members_gets_none_of_a_topics_traffic,
            a_killed_nodes_tab_resumes_on_b_with_its_topics,
        );
    };
    (@on_redis_cluster $bin:expr) => {
        cluster::suite!(@redis_cluster_rules $bin; cluster_tests);
    };
    // The rules that run on a Redis Cluster, through the arm `$arm` (one shard or six).
    (@redis_cluster_rules $bin:expr; $arm:ident) => {
        cluster::suite!(@$arm $bin;
            a_tab_on_a_is_reached_from_b,
            a_broadcast_on_b_reaches_the_tabs_of_both_and_counts_them,
            a_close_on_b_ends_the_stream_on_a_and_b_answers_the_reconnect_with_204,
            sessions_on_either_node_list_the_tabs_of_both_until_they_leave,
            a_tab_hung_up_on_a_resumes_on_b_with_what_it_missed,
            a_tab_dropped_from_b_resumes_on_b_with_what_it_missed,
            a_tab_of_a_killed_node_resumes_on_b_from_the_logs,
            publish_user_send_and_user_close_reach_both_nodes,
            a_tab_resumes_on_the_other_node_across_its_topics,
            a_node_without_members_gets_none_of_a_topics_traffic,
            a_killed_nodes_tab_resumes_on_b_with_its_topics,
        );
    };
    (@cluster_tests $bin:expr; $($rule:ident),* $(,)?) => {
        $(
            #[test]
            fn $rule() {
                cluster::ON_REDIS_CLUSTER.store(true, std::sync::atomic::Ordering::Relaxed);
                cluster::$rule($bin);
            }
        )*
    };
    // The same rules with the deployment's keys on six shards spread over the masters.
    (@on_redis_cluster_sharded $bin:expr) => {
        cluster::suite!(@redis_cluster_rules $bin; sharded_tests);
    };
    (@sharded_tests $bin:expr; $($rule:ident),* $(,)?) => {
        $(
            #[test]
            fn $rule() {
                cluster::ON_REDIS_CLUSTER.store(true, std::sync::atomic::Ordering::Relaxed);
                cluster::SHARDED.store(true, std::sync::atomic::Ordering::Relaxed);
                cluster::$rule($bin);
            }
        )*
    };
    (@tests $bin:expr; $($rule:ident),* $(,)?) => {
        $(
            #[test]
            fn $rule() {
                cluster::$rule($bin);
            }
        )*
    };
}
pub(crate) use suite;

/// The grace period of the nodes: longer than any rule runs, so no session expires.
const GRACE_MS: &str = "10000";
/// How often a node renews its sessions' marks in Redis: a killed node's tabs are gone from
/// `GET /sessions` after three of these.
const HEARTBEAT_MS: &str = "200";
/// How long a node waits for a frozen Redis before it counts it as away.
const REDIS_TIMEOUT_MS: &str = "300";
/// How long cross-node delivery may take to come back once Redis is.
const BACK_WITHIN: Duration = Duration::from_secs(5);

/// A quiet demo node on `redis`: resume mode, no ticks, no keep-alive, short heartbeats.
fn node(bin: &str, redis_url: &str) -> Demo {
    Demo::start(bin, &node_flags(redis_url)).unwrap()
}

fn node_flags(redis_url: &str) -> Vec<&str> {
    let mut flags = vec![
        "--redis",
        redis_url,
        "--resume-ms",
        GRACE_MS,
        "--tick-ms",
        "0",
        "--keep-alive-ms",
        "0",
        "--heartbeat-ms",
        HEARTBEAT_MS,
        "--redis-timeout-ms",
        REDIS_TIMEOUT_MS,
    ];
    if SHARDED.load(Ordering::Relaxed) {
        flags.extend(["--redis-shards", SHARDS]);
    }
    flags
}

/// Two nodes of one adapter on a Redis of the rule's own (dropped in this order: the nodes,
/// then Redis).
struct Cluster {
    a: Demo,
    b: Demo,
    redis: Redis,
}

impl Cluster {
    /// Two nodes on a redis-server, or on a Redis Cluster of 3 masters and 3 replicas when
    /// the test binary asked for one ([`ON_REDIS_CLUSTER`]).
    fn start(bin: &str) -> Cluster {
        let redis = if ON_REDIS_CLUSTER.load(Ordering::Relaxed) {
            Redis::Cluster(RedisCluster::start(3, 1).unwrap())
        } else {
            Redis::One(RedisServer::start().unwrap())
        };
        let url = redis.url();
        let (a, b) = (node(bin, &url), node(bin, &url));
        Cluster { a, b, redis }
    }
}

/// Whether the rules of this test binary run on a Redis Cluster.
pub(crate) static ON_REDIS_CLUSTER: AtomicBool = AtomicBool::new(false);

/// Whether the test binary asked for the deployment's keys on [`SHARDS`] shards.
pub(crate) static SHARDED: AtomicBool = AtomicBool::new(false);

/// How many shards a sharded test binary's nodes use.
pub(crate) const SHARDS: &str = "6";

/// The Redis a rule's nodes share.
enum Redis {
    One(RedisServer),
    Cluster(RedisCluster),
}

impl Redis {
    fn url(&self) -> String {
        match self {
            Redis::One(r) => r.url(),
            Redis::Cluster(c) => c.url(),
        }
    }

    /// The one redis-server, for the rules that freeze, kill or restart it (they are not run
    /// on a cluster, whose faults are failovers).
    fn one(&mut self) -> &mut RedisServer {
        match self {
            Redis::One(r) => r,
            Redis::Cluster(_) => panic!("a rule for one redis-server ran on a Redis Cluster"),
        }
    }

    /// Every key matching `pattern`, on every master.
    fn keys(&self, pattern: &str) -> Vec<String> {
        match self {
            Redis::One(r) => {
                let out = r.cli(&["KEYS", pattern]).unwrap();
                out.lines()
                    .filter(|k| !k.is_empty())
                    .map(str::to_owned)
                    .collect()
            }
            Redis::Cluster(c) => c.keys(pattern).unwrap(),
        }
    }

    /// One command through `redis-cli` (following redirects on a cluster).
    fn cli(&self, args: &[&str]) -> String {
        match self {
            Redis::One(r) => r.cli(args).unwrap(),
            Redis::Cluster(c) => c.cli(args).unwrap(),
        }
    }
}

/// An accepted stream, read up to its `connect` event.
struct Tab {
    stream: EventStream,
    /// The session id, as `connect` gave it.
    id: String,
    /// Whether `connect` said the session was resumed.
    resumed: bool,
    /// The session's topics, and those whose missed events could not be replayed, as
    /// `connect` gave them.
    topics: Vec<String>,
    gaps: Vec<String>,
}

impl Tab {
    /// A new tab on `demo`.
    fn open(demo: &Demo) -> Tab {
        Tab::connect(demo, "/events", &[])
    }

    /// The tab coming back to `demo` with the last event id it kept.
    fn reconnect(demo: &Demo, last_event_id: &str) -> Tab {
        Tab::connect(
            demo,
            "/events",
            &[("Last-Event-ID", last_event_id.as_bytes())],
        )
    }

    fn connect(demo: &Demo, target: &str, headers: &[(&str, &[u8])]) -> Tab {
        let mut stream = demo.events(target, headers).unwrap();
        assert_eq!(stream.head.status, 200, "GET {target} {headers:?}");
        let connect = stream.next_named("connect").unwrap();
        let json: serde_json::Value = serde_json::from_str(&connect.data).unwrap();
        let names = |key: &str| -> Vec<String> {
            let names = json[key].as_array().into_iter().flatten();
            names.map(|v| v.as_str().unwrap().to_owned()).collect()
        };
        Tab {
            id: json["id"].as_str().unwrap().to_owned(),
            resumed: json["resumed"].as_bool().unwrap(),
            topics: names("topics"),
            gaps: names("gaps"),
            stream,
        }
    }

    /// What its `EventSource` would offer if it reconnected now.
    fn last_event_id(&self) -> String {
        self.stream.last_event_id().to_owned()
    }

    /// Waits (at most [`sse_conformance::PATIENCE`]) for the event whose data is `data`.
    fn wait_data(&mut self, data: &str) -> MessageEvent {
        self.stream
            .wait_for(|s| s.events().iter().any(|e| e.data == data))
            .unwrap();
        let event = self.stream.events().into_iter().find(|e| e.data == data);
        event
            .cloned()
            .unwrap_or_else(|| panic!("no event with data {data:?} on {}", self.id))
    }

    /// Whether an event with `data` arrives within `limit`.
    fn gets_within(&mut self, data: &str, limit: Duration) -> bool {
        self.stream
            .wait_for_within(limit, |s| s.events().iter().any(|e| e.data == data))
            .unwrap()
    }

    /// The data of the events before `connect` (a replay).
    fn replayed(&self) -> Vec<String> {
        let events = self.stream.events();
        let connect = events.iter().position(|e| e.event == "connect").unwrap();
        events[..connect].iter().map(|e| e.data.clone()).collect()
    }

    /// The data of every event but `connect`.
    fn data(&self) -> Vec<String> {
        let events = self.stream.events().into_iter();
        events
            .filter(|e| e.event != "connect")
            .map(|e| e.data.clone())
            .collect()
    }
}

fn session_route(id: &str, action: &str) -> String {
    format!("/sessions/{}/{action}", percent_encode(id.as_bytes()))
}

/// `POST` with `body`: the status and the body.
fn post(demo: &Demo, target: &str, body: &[u8]) -> (u16, String) {
    let r = demo.request("POST", target, &[], body).unwrap();
    (r.head.status, r.text())
}

/// `POST /sessions/{id}/events` with `data`: the status.
fn send(demo: &Demo, id: &str, data: &str) -> u16 {
    post(demo, &session_route(id, "events"), data.as_bytes()).0
}

/// The status of `GET /sessions`.
fn sessions_status(demo: &Demo) -> u16 {
    demo.request("GET", "/sessions", &[], b"")
        .unwrap()
        .head
        .status
}

/// Waits until `GET /sessions` on `demo` lists `id` (or, with `listed` false, no longer does).
fn wait_listed(demo: &Demo, id: &str, listed: bool) {
    let ids = demo
        .wait_sessions(Duration::from_secs(5), |ids| {
            ids.iter().any(|i| i == id) == listed
        })
        .unwrap();
    assert_eq!(
        ids.iter().any(|i| i == id),
        listed,
        "GET /sessions {ids:?}: {id} listed {listed}"
    );
}

/// Polls `ready` every 20 ms for at most `limit`; whether it held.
fn wait_until(limit: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !ready() {
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
    true
}

/// The position in an event id `<id>~<cursor>`: `<epoch>.<seq>` on one shard, with
/// `.<shard><seq>` for each other shard read on several (base 36).
fn position(id: &str, event_id: &str) -> Position {
    let at = Position::parse(id, event_id)
        .unwrap_or_else(|| panic!("event id {event_id:?} is not `{id}~<cursor>`"));
    assert!(
        at.shards() == 1 || SHARDED.load(Ordering::Relaxed),
        "{event_id:?} names shards on a deployment with one"
    );
    at
}

/// Checks that `got` is `want` in order, or on several shards each of `logs` in its order
/// (see [`sse_conformance::in_log_order`]).
fn in_log_order(got: &[String], want: &[&str], logs: &[&[&str]]) {
    sse_conformance::in_log_order(SHARDED.load(Ordering::Relaxed), got, want, logs);
}
