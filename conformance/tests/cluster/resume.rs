//! A tab resumes on another node with exactly what it missed: after a hang-up, after a drop
//! from the other node, and after its node was killed.

use std::time::Duration;

use super::{Cluster, Tab, post, send, session_route, wait_listed};

/// How the tab loses its stream on A.
#[derive(Debug, Clone, Copy)]
enum End {
    /// The client hangs up.
    HangUp,
    /// `POST /sessions/{id}/drop` on B.
    DropFromB,
}

/// A tab on A hangs up; what both nodes send it and a broadcast meanwhile come back when it
/// reconnects to B: exactly, in order, before `connect`, which says `resumed: true`.
pub(crate) fn a_tab_hung_up_on_a_resumes_on_b_with_what_it_missed(bin: &str) {
    resume_on_b(bin, End::HangUp);
}

/// The same after B dropped A's stream.
pub(crate) fn a_tab_dropped_from_b_resumes_on_b_with_what_it_missed(bin: &str) {
    resume_on_b(bin, End::DropFromB);
}

fn resume_on_b(bin: &str, end: End) {
    let c = Cluster::start(bin);
    let mut tab = Tab::open(&c.a);
    let id = tab.id.clone();
    assert_eq!(send(&c.a, &id, "seen"), 202);
    let seen = tab.wait_data("seen");
    let seen_at = super::position(&id, &seen.last_event_id);
    let last = tab.last_event_id();
    assert_eq!(last, seen.last_event_id);
    wait_listed(&c.b, &id, true);
    match end {
        End::HangUp => tab.stream.hang_up(),
        End::DropFromB => {
            assert_eq!(post(&c.b, &session_route(&id, "drop"), b"").0, 204);
            assert!(
                tab.stream.wait_end(Duration::from_secs(5)).unwrap(),
                "A ends the stream dropped on B"
            );
        }
    }
    wait_listed(&c.b, &id, false);

    assert_eq!(
        send(&c.b, &id, "missed 1"),
        202,
        "{end:?}: detached, resumable"
    );
    assert_eq!(send(&c.a, &id, "missed 2"), 202);
    assert_eq!(
        post(&c.b, "/broadcast", b"missed 3"),
        (200, "1".to_owned()),
        "the count includes the detached session"
    );
    assert_eq!(send(&c.a, &id, "missed 4"), 202);

    let mut back = Tab::reconnect(&c.b, &last);
    assert_eq!(
        (back.id.as_str(), back.resumed),
        (id.as_str(), true),
        "{end:?}"
    );
    // Exactly what it missed, in order, before `connect` (on several shards, the broadcast
    // may come anywhere among the session's own sends).
    super::in_log_order(
        &back.replayed(),
        &["missed 1", "missed 2", "missed 3", "missed 4"],
        &[&["missed 1", "missed 2", "missed 4"], &["missed 3"]],
    );
    let events = back.stream.events();
    let connect = events.iter().position(|e| e.event == "connect").unwrap();
    let mut before = seen_at;
    for event in &events[..connect] {
        let at = super::position(&id, &event.last_event_id);
        assert!(at > before, "{:?} at {at:?} after {before:?}", event.data);
        before = at;
    }
    // Live on B now, reached from A.
    assert_eq!(send(&c.a, &id, "live"), 202);
    back.wait_data("live");
    wait_listed(&c.a, &id, true);
}

/// A is killed (SIGKILL) under a tab: the stream ends, B still takes sends for the session
/// (its mark outlives the node by the grace period), B stops listing it within three
/// heartbeats, and the tab reconnecting to B resumes from the logs with what it missed.
pub(crate) fn a_tab_of_a_killed_node_resumes_on_b_from_the_logs(bin: &str) {
    let mut c = Cluster::start(bin);
    let mut tab = Tab::open(&c.a);
    let id = tab.id.clone();
    // B reaches the tab once A's presence has recorded it.
    wait_listed(&c.b, &id, true);
    assert_eq!(send(&c.b, &id, "seen"), 202);
    tab.wait_data("seen");
    let last = tab.last_event_id();

    c.a.signal("KILL").unwrap();
    assert!(c.a.wait_exit(Duration::from_secs(5)).unwrap().is_some());
    assert!(
        tab.stream.wait_end(Duration::from_secs(5)).unwrap(),
        "the killed node's stream ends"
    );
    assert_eq!(send(&c.b, &id, "while a is dead"), 202);
    assert_eq!(post(&c.b, "/broadcast", b"to all"), (200, "1".to_owned()));
    wait_listed(&c.b, &id, false);

    let mut back = Tab::reconnect(&c.b, &last);
    assert_eq!((back.id.as_str(), back.resumed), (id.as_str(), true));
    super::in_log_order(
        &back.replayed(),
        &["while a is dead", "to all"],
        &[&["while a is dead"], &["to all"]],
    );
    assert_eq!(send(&c.b, &id, "live"), 202);
    back.wait_data("live");
    wait_listed(&c.b, &id, true);
}

/// A tab's last event id with a shard the store does not have (it has one) added to its
/// cursor, offered to the other node: the same session, `resumed: false`, nothing replayed.
/// Its real last event id then resumes it exactly, so the rule is not vacuous.
pub(crate) fn a_cursor_naming_a_shard_the_store_lacks_is_a_gap(bin: &str) {
    let c = Cluster::start(bin);
    let mut tab = Tab::open(&c.a);
    let id = tab.id.clone();
    assert_eq!(send(&c.a, &id, "seen"), 202);
    let last = tab.wait_data("seen").last_event_id;
    wait_listed(&c.b, &id, true);
    tab.stream.hang_up();
    wait_listed(&c.b, &id, false);
    assert_eq!(send(&c.b, &id, "missed"), 202);

    let forged = Tab::reconnect(&c.b, &format!("{last}.31"));
    assert_eq!((forged.id.as_str(), forged.resumed), (id.as_str(), false));
    assert!(forged.replayed().is_empty(), "{:?}", forged.replayed());
    drop(forged);
    wait_listed(&c.b, &id, false);

    let back = Tab::reconnect(&c.b, &last);
    assert_eq!((back.id.as_str(), back.resumed), (id.as_str(), true));
    assert_eq!(back.replayed(), ["missed"]);
}
