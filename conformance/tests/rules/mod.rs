//! Every rule of the demo contract and of the session semantics, written once.
//!
//! Each rule is a function of the demo binary's path. [`suite!`] turns them into `#[test]`s
//! for one demo, so `tests/hyper.rs`, `tests/tokio.rs` and `tests/async_std.rs` run the same
//! rules against their own server. No rule knows which adapter it talks to.

#![allow(clippy::panic, clippy::unwrap_used, dead_code)] // a test reports failure by panicking

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use sse_conformance::{Demo, EventStream, percent_encode};

/// The rules of resume mode (`--resume-ms`) and of one id per tab.
mod resume;
pub(crate) use resume::*;

/// The rules of topics and users (contract v3).
mod topics;
pub(crate) use topics::*;

/// Generates one `#[test]` per rule for the demo binary `$bin`.
macro_rules! suite {
    ($bin:expr) => {
        rules::suite!(@tests $bin;
            headers_and_preamble,
            connect_event_carries_the_id,
            query_id_is_reused,
            last_event_id_wins_over_query,
            hostile_ids_are_never_echoed,
            hostile_last_event_id_headers,
            emit_reaches_one_session_only,
            unnamed_emit_is_a_message,
            broadcast_answers_the_count,
            line_breaks_in_data,
            large_payload_arrives_intact,
            close_ends_the_stream_and_reconnect_gets_204,
            drop_ends_without_a_mark,
            client_disconnect_removes_the_session,
            keep_alive_comments_on_an_idle_stream,
            sync_time_ticks,
            slow_reader_is_cut_off_fast_reader_gets_everything,
            admin_routes_refuse_bad_input,
            not_an_event_stream_request,
            page_is_served,
            // Resume mode (`resume.rs`).
            replay_after_a_drop,
            resume_via_query_after_a_reload,
            expiry_gives_404_and_resumed_false,
            log_overflow_is_a_gap_and_memory_stays_bounded,
            order_under_concurrent_sends_during_replay,
            a_log_holds_4096_events_and_one_more_is_a_gap,
            a_reconnect_after_a_half_open_connection_gets_what_it_swallowed,
            volatile_events_are_never_replayed,
            close_while_detached_gives_204,
            an_up_to_date_reconnect_replays_nothing,
            unusable_positions_are_a_gap,
            duplicated_tabs_settle_on_distinct_ids,
            without_resume_mode_a_dropped_tab_starts_over,
            // Topics and users (`topics.rs`).
            topics_route_publishes_to_members_only,
            join_and_leave_by_route,
            the_topic_rule_decides_at_accept_at_join_and_on_resume,
            resume_is_exact_across_topics_and_own_sends,
            membership_changed_while_away_is_honoured,
            a_user_send_reaches_a_detached_tab_not_a_later_one,
            a_user_close_gives_204_on_every_tab,
            members_count_distinct_users,
            a_topic_gap_still_replays_the_rest_with_memory_bounded,
            concurrent_publishers_give_every_member_one_order,
            bad_topic_names_are_400_on_every_route,
        );
    };
    (@on_redis_cluster $bin:expr) => {
        rules::suite!(@on_redis_cluster_with $bin; &[]);
    };
    (@on_redis_cluster_with $bin:expr; $flags:expr) => {
        rules::suite!(@cluster_tests_with $bin; $flags;
            broadcast_answers_the_count,
            close_ends_the_stream_and_reconnect_gets_204,
            drop_ends_without_a_mark,
            // Resume mode (`resume.rs`).
            replay_after_a_drop,
            resume_via_query_after_a_reload,
            // Not `expiry_gives_404_and_resumed_false`: on Redis, closing an id that no node
            // knows still marks it (a tab that comes back gets 204), where one node has
            // nothing to mark. Not `unusable_positions_are_a_gap`: its last step offers the
            // position to a restarted server, which on Redis is another node that knows it.
            log_overflow_is_a_gap_and_memory_stays_bounded,
            order_under_concurrent_sends_during_replay,
            a_log_holds_4096_events_and_one_more_is_a_gap,
            a_reconnect_after_a_half_open_connection_gets_what_it_swallowed,
            volatile_events_are_never_replayed,
            close_while_detached_gives_204,
            an_up_to_date_reconnect_replays_nothing,
            duplicated_tabs_settle_on_distinct_ids,
            without_resume_mode_a_dropped_tab_starts_over,
            // Topics and users (`topics.rs`).
            topics_route_publishes_to_members_only,
            join_and_leave_by_route,
            the_topic_rule_decides_at_accept_at_join_and_on_resume,
            resume_is_exact_across_topics_and_own_sends,
            membership_changed_while_away_is_honoured,
            a_user_send_reaches_a_detached_tab_not_a_later_one,
            a_user_close_gives_204_on_every_tab,
            members_count_distinct_users,
            a_topic_gap_still_replays_the_rest_with_memory_bounded,
            concurrent_publishers_give_every_member_one_order,
            bad_topic_names_are_400_on_every_route,
        );
    };
    (@cluster_tests $bin:expr; $($rule:ident),* $(,)?) => {
        rules::suite!(@cluster_tests_with $bin; &[]; $($rule),*);
    };
    // The same rules, with the deployment's keys on six shards spread over the masters.
    (@on_redis_cluster_sharded $bin:expr) => {
        rules::suite!(@on_redis_cluster_with $bin; &["--redis-shards", "6"]);
    };
    (@cluster_tests_with $bin:expr; $flags:expr; $($rule:ident),* $(,)?) => {
        $(
            #[test]
            fn $rule() {
                let cluster = sse_conformance::RedisCluster::start(3, 1).unwrap();
                let url = cluster.url();
                let mut flags = vec!["--redis", url.as_str()];
                flags.extend_from_slice($flags);
                rules::set_sharded(flags.contains(&"--redis-shards"));
                sse_conformance::Demo::with_flags(&flags, || rules::$rule($bin));
            }
        )*
    };
    (@tests $bin:expr; $($rule:ident),* $(,)?) => {
        $(
            #[test]
            fn $rule() {
                rules::$rule($bin);
            }
        )*
    };
}
pub(crate) use suite;

fn start(bin: &str, flags: &[&str]) -> Demo {
    Demo::start(bin, flags).unwrap()
}

/// A quiet demo: no ticks, no keep-alive, so streams carry only what a test sends.
fn quiet(bin: &str) -> Demo {
    start(bin, &["--tick-ms", "0", "--keep-alive-ms", "0"])
}

fn open(demo: &Demo, target: &str, headers: &[(&str, &[u8])]) -> (EventStream, String) {
    let mut stream = demo.events(target, headers).unwrap();
    assert_eq!(stream.head.status, 200, "GET {target}");
    let id = stream.session_id().unwrap();
    (stream, id)
}

fn post(demo: &Demo, target: &str, body: &[u8]) -> (u16, String) {
    let r = demo.request("POST", target, &[], body).unwrap();
    (r.head.status, r.text())
}

fn emit(demo: &Demo, id: &str, event: Option<&str>, body: &[u8]) -> u16 {
    let mut target = format!("/sessions/{}/events", percent_encode(id.as_bytes()));
    if let Some(name) = event {
        target += &format!("?event={}", percent_encode(name.as_bytes()));
    }
    post(demo, &target, body).0
}

thread_local! {
    /// Whether this thread's demos keep their keys on several shards (see
    /// [`in_log_order`]).
    static SHARDED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Says whether this thread's demos keep their keys on several shards.
pub(crate) fn set_sharded(sharded: bool) {
    SHARDED.with(|s| s.set(sharded));
}

/// Checks that `got` is `want` in order, or on several shards each of `logs` in its order
/// (see [`sse_conformance::in_log_order`]).
pub(crate) fn in_log_order<T>(got: &[T], want: &[T], logs: &[&[T]])
where
    T: PartialEq + Ord + Clone + std::fmt::Debug,
{
    sse_conformance::in_log_order(SHARDED.with(std::cell::Cell::get), got, want, logs);
}

/// Waits until `done` holds, for at most [`PATIENCE`]. What a demo lists and counts of its
/// sessions (`GET /sessions`, a topic's members, a user's tabs, and so the counts a
/// broadcast, a publish or a user close answers) may trail a connect, a join or an end by a
/// moment when the demo runs on Redis, where a node writes them after the fact; on one node
/// they are current at once, and this returns at once.
fn settled(mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + sse_conformance::PATIENCE;
    while !done() {
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

fn is_uuid_v4(id: &str) -> bool {
    let b = id.as_bytes();
    id.len() == 36
        && [8, 13, 18, 23].iter().all(|&i| b[i] == b'-')
        && b[14] == b'4'
        && id
            .bytes()
            .filter(|&c| c != b'-')
            .all(|c| c.is_ascii_hexdigit())
}

pub(crate) fn headers_and_preamble(bin: &str) {
    let demo = start(bin, &["--retry-ms", "2500", "--tick-ms", "0"]);
    let (mut stream, id) = open(&demo, "/events", &[]);
    let head = &stream.head;
    assert!(
        head.header_str("content-type")
            .starts_with("text/event-stream")
    );
    let cache = head.header_str("cache-control");
    assert!(cache.contains("no-cache"), "cache-control: {cache}");
    assert_eq!(head.header_str("x-accel-buffering"), "no");
    assert_eq!(
        head.header_str("connection").to_ascii_lowercase(),
        "keep-alive"
    );
    assert!(is_uuid_v4(&id), "a fresh id is a UUID v4: {id}");
    // The preamble comes first: retry, the id, a blank line (no event dispatched).
    stream.wait_for(|s| s.raw.len() >= 40).unwrap();
    let preamble = format!("retry: {}\nid: {id}\n\n", stream.retries()[0]);
    assert!(
        stream.raw.starts_with(preamble.as_bytes()),
        "{:?}",
        String::from_utf8_lossy(&stream.raw)
    );
    let retry = stream.retries()[0];
    assert!((2500..=2500 + 2500).contains(&retry), "retry {retry}");
    assert!(demo.sessions().unwrap().contains(&id));
}

pub(crate) fn connect_event_carries_the_id(bin: &str) {
    let demo = quiet(bin);
    let (mut stream, id) = open(&demo, "/events", &[]);
    let connect = stream.next_named("connect").unwrap();
    assert_eq!(
        connect_data(&connect.data),
        (id.clone(), false),
        "{{\"id\": …, \"resumed\": false}}"
    );
    assert_eq!(connect.last_event_id, id, "lastEventId is the session id");
}

/// The `connect` event's data, `{"id": "<session id>", "resumed": <bool>}`, read.
pub(crate) fn connect_data(data: &str) -> (String, bool) {
    let value: serde_json::Value = serde_json::from_str(data)
        .unwrap_or_else(|e| panic!("connect data is not JSON ({e}): {data:?}"));
    let id = value["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id: {data}"));
    let resumed = value["resumed"]
        .as_bool()
        .unwrap_or_else(|| panic!("no resumed flag: {data}"));
    (id.to_owned(), resumed)
}

pub(crate) fn query_id_is_reused(bin: &str) {
    let demo = quiet(bin);
    let (mut stream, id) = open(&demo, "/events?id=tab-123", &[]);
    assert_eq!(id, "tab-123");
    assert_eq!(
        connect_data(&stream.next_named("connect").unwrap().data).0,
        "tab-123"
    );
    // Percent-decoded.
    let (_s, id) = open(&demo, "/events?id=tab%20%C3%A9", &[]);
    assert_eq!(id, "tab é");
}

pub(crate) fn last_event_id_wins_over_query(bin: &str) {
    let demo = quiet(bin);
    let (mut stream, id) = open(
        &demo,
        "/events?id=from-query",
        &[("Last-Event-ID", b"from-header")],
    );
    assert_eq!(id, "from-header");
    assert_eq!(
        stream.next_named("connect").unwrap().last_event_id,
        "from-header"
    );
}

/// Each hostile `?id=` is treated as absent: a fresh UUID, and nothing of it in the stream.
pub(crate) fn hostile_ids_are_never_echoed(bin: &str) {
    let demo = quiet(bin);
    let long = "a".repeat(10 * 1024);
    let hostile: &[&[u8]] = &[
        b"x\nevent: pwned",
        b"x\rdata: pwned",
        b"x\r\nid: pwned",
        b"x\0pwned",
        b"",
        long.as_bytes(),
        b"\xff\xfepwned",
        b"%0Aevent:%20pwned", // double encoded: decodes once to a harmless literal
    ];
    for raw in hostile {
        let target = format!("/events?id={}", percent_encode(raw));
        let (mut stream, id) = open(&demo, &target, &[]);
        let connect = stream.next_named("connect").unwrap();
        if raw.starts_with(b"%0A") {
            assert_eq!(id, "%0Aevent:%20pwned", "decoded exactly once");
        } else {
            assert!(is_uuid_v4(&id), "{raw:?} gave {id:?}");
        }
        assert_eq!(connect_data(&connect.data).0, id);
        let wire = String::from_utf8_lossy(&stream.raw).into_owned();
        assert!(
            !wire.contains("event: pwned") && !wire.contains("data: pwned"),
            "{wire}"
        );
        assert!(
            !wire.contains("id: pwned") && !wire.contains(&long),
            "{wire}"
        );
        assert_eq!(stream.events().len(), 1, "only `connect`: {wire}");
    }
}

/// A hostile `Last-Event-ID` is refused the same way, or the whole request is (400/431):
/// never echoed either way.
pub(crate) fn hostile_last_event_id_headers(bin: &str) {
    let demo = quiet(bin);
    let long = vec![b'b'; 10 * 1024];
    let hostile: &[&[u8]] = &[b"\xff\xfe", &long, b"", b"a\x01b"];
    for raw in hostile {
        let mut stream = demo.events("/events", &[("Last-Event-ID", raw)]).unwrap();
        match stream.head.status {
            200 => {
                let id = stream.session_id().unwrap();
                assert!(is_uuid_v4(&id), "{raw:?} gave {id:?}");
            }
            400 | 431 => {}
            other => panic!("Last-Event-ID {raw:?}: status {other}"),
        }
    }
    // A raw CR inside a header value ends the header for any HTTP parser; the rest is a
    // malformed line. The demo must refuse it or ignore it, not put it in the stream.
    let mut stream = demo
        .events("/events", &[("Last-Event-ID", b"a\revent: pwned")])
        .unwrap();
    if stream.head.status == 200 {
        stream.session_id().unwrap();
        assert!(!String::from_utf8_lossy(&stream.raw).contains("pwned"));
    }
    assert_eq!(
        demo.request("GET", "/sessions", &[], b"")
            .unwrap()
            .head
            .status,
        200
    );
}

pub(crate) fn emit_reaches_one_session_only(bin: &str) {
    let demo = quiet(bin);
    let (mut a, id_a) = open(&demo, "/events", &[]);
    let (mut b, id_b) = open(&demo, "/events", &[]);
    assert_ne!(id_a, id_b);
    assert_eq!(emit(&demo, &id_a, Some("note"), b"for a"), 202);
    assert_eq!(
        post(&demo, "/broadcast?event=marker", b"m"),
        (200, "2".to_owned())
    );
    let note = a.next_named("note").unwrap();
    assert_eq!(
        (note.data.as_str(), note.last_event_id.as_str()),
        ("for a", id_a.as_str())
    );
    a.next_named("marker").unwrap();
    // b got the broadcast that was sent after the note, and no note.
    b.next_named("marker").unwrap();
    assert!(b.events().iter().all(|e| e.event != "note"));
}

pub(crate) fn unnamed_emit_is_a_message(bin: &str) {
    let demo = quiet(bin);
    let (mut s, id) = open(&demo, "/events", &[]);
    assert_eq!(emit(&demo, &id, None, b"plain"), 202);
    let m = s.next_named("message").unwrap();
    assert_eq!(m.data, "plain");
}

pub(crate) fn broadcast_answers_the_count(bin: &str) {
    let demo = quiet(bin);
    assert_eq!(post(&demo, "/broadcast", b"nobody"), (200, "0".to_owned()));
    let mut streams: Vec<EventStream> = (0..3).map(|_| open(&demo, "/events", &[]).0).collect();
    assert!(settled(|| demo.sessions().unwrap().len() == 3));
    assert_eq!(
        post(&demo, "/broadcast?event=news", b"hello all"),
        (200, "3".to_owned())
    );
    for s in &mut streams {
        assert_eq!(s.next_named("news").unwrap().data, "hello all");
    }
}

pub(crate) fn line_breaks_in_data(bin: &str) {
    let demo = quiet(bin);
    let (mut s, id) = open(&demo, "/events", &[]);
    for (i, (body, expected)) in [
        ("a\r\nb\rc\nd", "a\nb\nc\nd"),
        ("  two spaces", "  two spaces"),
        ("", ""),
        ("\r\n", "\n"),
        ("end\n", "end\n"),
        ("data: fake\n\nevent: x", "data: fake\n\nevent: x"),
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!("case{i}");
        assert_eq!(emit(&demo, &id, Some(&name), body.as_bytes()), 202);
        assert_eq!(s.next_named(&name).unwrap().data, expected, "{body:?}");
    }
    let wire = String::from_utf8_lossy(&s.raw).into_owned();
    assert!(!wire.contains("\r"), "LF line endings only");
    assert!(
        !wire.contains("\nevent: x"),
        "data cannot start a field: {wire}"
    );
}

pub(crate) fn large_payload_arrives_intact(bin: &str) {
    let demo = quiet(bin);
    let (mut s, id) = open(&demo, "/events", &[]);
    let payload: Vec<u8> = (0..1 << 20).map(|i: u32| b'a' + (i % 26) as u8).collect();
    assert_eq!(emit(&demo, &id, Some("big"), &payload), 202);
    let big = s.next_named("big").unwrap();
    assert_eq!(big.data.len(), payload.len());
    assert!(big.data.as_bytes() == payload.as_slice(), "1 MiB intact");
}

pub(crate) fn close_ends_the_stream_and_reconnect_gets_204(bin: &str) {
    let demo = quiet(bin);
    let (mut s, id) = open(&demo, "/events", &[]);
    s.next_named("connect").unwrap();
    assert_eq!(emit(&demo, &id, Some("last"), b"bye"), 202);
    let target = format!("/sessions/{}/close", percent_encode(id.as_bytes()));
    assert_eq!(post(&demo, &target, b"").0, 204);
    // What was queued before the close is delivered, then the stream ends.
    assert!(
        s.wait_end(Duration::from_secs(5)).unwrap(),
        "the stream ends"
    );
    assert_eq!(s.events().last().unwrap().data, "bye");
    assert!(settled(|| !demo.sessions().unwrap().contains(&id)));
    // The browser reconnects with Last-Event-ID: 204, and it stops.
    let again = demo
        .events("/events", &[("Last-Event-ID", id.as_bytes())])
        .unwrap();
    assert_eq!(again.head.status, 204);
    // The first 204 consumed the mark: the same tab id starts afresh on a later page load.
    let (_s, reused) = open(
        &demo,
        &format!("/events?id={}", percent_encode(id.as_bytes())),
        &[],
    );
    assert_eq!(reused, id);
    // Closing an unknown session is a 404.
    assert_eq!(post(&demo, "/sessions/nobody/close", b"").0, 404);
}

pub(crate) fn drop_ends_without_a_mark(bin: &str) {
    let demo = quiet(bin);
    let (mut s, id) = open(&demo, "/events", &[]);
    let target = format!("/sessions/{}/drop", percent_encode(id.as_bytes()));
    assert_eq!(post(&demo, &target, b"").0, 204);
    assert!(
        s.wait_end(Duration::from_secs(5)).unwrap(),
        "the stream ends"
    );
    // No mark: the reconnect is accepted and keeps the id.
    let (mut again, same) = open(&demo, "/events", &[("Last-Event-ID", id.as_bytes())]);
    assert_eq!(same, id);
    assert_eq!(
        connect_data(&again.next_named("connect").unwrap().data).0,
        id
    );
}

pub(crate) fn client_disconnect_removes_the_session(bin: &str) {
    let demo = start(bin, &["--tick-ms", "0"]); // default keep-alive: 15 s, far away
    let (s, id) = open(&demo, "/events", &[]);
    assert!(demo.sessions().unwrap().contains(&id));
    s.hang_up();
    let left = Instant::now();
    let ids = demo
        .wait_sessions(Duration::from_secs(1), |ids| !ids.contains(&id))
        .unwrap();
    assert!(
        !ids.contains(&id),
        "still listed {:?} after hang-up",
        left.elapsed()
    );
}

pub(crate) fn keep_alive_comments_on_an_idle_stream(bin: &str) {
    let demo = start(bin, &["--tick-ms", "0", "--keep-alive-ms", "100"]);
    let (mut s, _) = open(&demo, "/events", &[]);
    s.next_named("connect").unwrap();
    let after_connect = s.raw.len();
    let got = s
        .wait_for_within(Duration::from_secs(3), |s| {
            s.raw[after_connect..]
                .windows(6)
                .any(|w| w == b":\n\n:\n\n")
        })
        .unwrap();
    assert!(
        got,
        "two keep-alive comments: {:?}",
        String::from_utf8_lossy(&s.raw)
    );
    assert_eq!(s.events().len(), 1, "comments dispatch nothing");
}

pub(crate) fn sync_time_ticks(bin: &str) {
    let demo = start(bin, &["--tick-ms", "50", "--keep-alive-ms", "0"]);
    let (mut s, id) = open(&demo, "/events", &[]);
    s.wait_for(|s| s.events().iter().filter(|e| e.event == "sync-time").count() >= 2)
        .unwrap();
    let ticks: Vec<_> = s
        .events()
        .into_iter()
        .filter(|e| e.event == "sync-time")
        .collect();
    assert!(ticks.len() >= 2);
    assert!(
        ticks
            .iter()
            .all(|t| !t.data.is_empty() && t.last_event_id == id)
    );
}

/// A reader that never reads is cut off once its queue passes the budget (1 MiB) while a
/// reader that keeps up (the sender stays at most two events ahead of it) receives every event, and the server's memory stays bounded.
pub(crate) fn slow_reader_is_cut_off_fast_reader_gets_everything(bin: &str) {
    const EVENTS: usize = 160;
    const SIZE: usize = 256 * 1024; // 40 MiB in all
    let demo = quiet(bin);
    let (slow, slow_id) = open(&demo, "/events", &[]);
    let (mut fast, fast_id) = open(&demo, "/events", &[]);
    fast.next_named("connect").unwrap();
    let rss_before = demo.rss_kib();

    // The fast reader reports its progress; the sender keeps at most two events (512 KiB,
    // half the budget) ahead of it, as a reader that keeps up would be.
    let progress = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&progress);
    let reader = thread::spawn(move || {
        fast.wait_for(|s| {
            let n = s.events().len() - 1;
            seen.store(n, Ordering::Release);
            n >= EVENTS
        })
        .unwrap();
        let got: Vec<usize> = fast.events()[1..]
            .iter()
            .map(|e| {
                assert_eq!(e.data.len(), SIZE);
                e.data[..8]
                    .trim_start_matches('0')
                    .parse::<usize>()
                    .unwrap_or(0)
            })
            .collect();
        (got, fast) // still connected: the hub must keep it
    });
    let mut peak_kib = 0;
    for i in 0..EVENTS {
        let deadline = Instant::now() + Duration::from_secs(10);
        while progress.load(Ordering::Acquire) + 2 < i && Instant::now() < deadline {
            thread::sleep(Duration::from_micros(200));
        }
        let mut body = format!("{i:08}").into_bytes();
        body.resize(SIZE, b'x');
        let (status, count) = post(&demo, "/broadcast?event=bulk", &body);
        assert_eq!(status, 200);
        assert!(count == "2" || count == "1", "broadcast {i}: count {count}");
        peak_kib = peak_kib.max(demo.rss_kib().unwrap_or(0));
    }
    let (got, _fast) = reader.join().unwrap();
    assert_eq!(
        got,
        (0..EVENTS).collect::<Vec<_>>(),
        "the fast reader got every event in order"
    );

    let ids = demo
        .wait_sessions(Duration::from_secs(5), |ids| !ids.contains(&slow_id))
        .unwrap();
    assert!(!ids.contains(&slow_id), "the slow reader was cut off");
    assert!(ids.contains(&fast_id));
    // The server dropped the slow connection while it still read nothing: a socket full to
    // the brim must not keep its file (and its buffers) in the server.
    let client = slow.socket().local_addr().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while demo.holds_connection_from(client).unwrap() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !demo.holds_connection_from(client).unwrap(),
        "the server still holds the slow connection"
    );
    // Reading what the kernel buffered ends in
    // EOF (or a reset), well before everything was received.
    slow.socket()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut received = 0;
    let mut buf = vec![0; 1 << 16];
    let mut sock = slow.socket();
    loop {
        match sock.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => received += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the slow connection is still open after {received} bytes: {e}"),
        }
    }
    assert!(received < EVENTS * SIZE / 2, "slow got {received} bytes");
    if let (Some(before), true) = (rss_before, peak_kib > 0) {
        let growth = peak_kib.saturating_sub(before);
        assert!(
            growth < 24 * 1024,
            "server RSS grew by {growth} KiB for 40 MiB sent"
        );
    }
}

pub(crate) fn admin_routes_refuse_bad_input(bin: &str) {
    let demo = quiet(bin);
    let (mut s, id) = open(&demo, "/events", &[]);
    assert_eq!(emit(&demo, "nobody", Some("x"), b"hi"), 404);
    assert_eq!(emit(&demo, &id, Some("a\nb"), b"hi"), 400);
    assert_eq!(emit(&demo, &id, Some(""), b"hi"), 400);
    assert_eq!(emit(&demo, &id, Some("x"), b"\xff\xfe"), 400);
    assert_eq!(post(&demo, "/broadcast?event=a%00b", b"hi").0, 400);
    assert_eq!(post(&demo, "/sessions/nobody/close", b"").0, 404);
    assert_eq!(post(&demo, "/sessions/nobody/drop", b"").0, 404);
    let get = |target: &str| demo.request("GET", target, &[], b"").unwrap().head.status;
    assert_eq!(get("/nowhere"), 404);
    assert_eq!(get("/broadcast"), 405);
    assert_eq!(get(&format!("/sessions/{id}/close")), 405);
    // The server is unharmed and the stream got none of it.
    assert_eq!(emit(&demo, &id, Some("fine"), b"ok"), 202);
    s.next_named("fine").unwrap();
    assert_eq!(s.events().len(), 2, "connect and fine");
}

pub(crate) fn not_an_event_stream_request(bin: &str) {
    let demo = quiet(bin);
    let r = demo.request("GET", "/events", &[], b"").unwrap();
    assert_eq!(r.head.status, 406, "no Accept");
    let r = demo
        .request(
            "GET",
            "/events",
            &[("Accept", b"text/event-stream;q=0")],
            b"",
        )
        .unwrap();
    assert_eq!(r.head.status, 406, "q=0");
    let r = demo
        .request("POST", "/events", &[("Accept", b"text/event-stream")], b"")
        .unwrap();
    assert_eq!(r.head.status, 406, "not GET");
    assert!(demo.sessions().unwrap().is_empty(), "no session was made");
    let (_s, _) = open(
        &demo,
        "/events",
        &[("Accept", b"text/html, TEXT/Event-Stream;q=0.5")],
    );
}

pub(crate) fn page_is_served(bin: &str) {
    let demo = quiet(bin);
    let r = demo.request("GET", "/", &[], b"").unwrap();
    assert_eq!(r.head.status, 200);
    assert!(r.head.header_str("content-type").starts_with("text/html"));
    let page = r.text();
    assert!(page.contains("EventSource") && page.contains("sessionStorage"));
}
