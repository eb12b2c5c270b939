//! Any node reaches the tabs of every node: a send by id, a broadcast, a close, and
//! `GET /sessions`.

use std::time::Duration;

use super::{Cluster, Tab, post, send, session_route, wait_listed};

/// A tab on A gets what `POST /sessions/{id}/events` on B sends it, with its position, in
/// the order sent, whichever node sent it; an id no node knows is 404 on B.
pub(crate) fn a_tab_on_a_is_reached_from_b(bin: &str) {
    let c = Cluster::start(bin);
    let mut tab = Tab::open(&c.a);
    assert!(!tab.resumed);
    // B knows of it once A has told Redis.
    wait_listed(&c.b, &tab.id, true);
    let target = format!("{}?event=note", session_route(&tab.id, "events"));
    assert_eq!(post(&c.b, &target, b"from b"), (202, "queued".to_owned()));
    let event = tab.wait_data("from b");
    assert_eq!(event.event, "note");
    let at = super::position(&tab.id, &event.last_event_id);
    assert_eq!(send(&c.a, &tab.id, "from a"), 202);
    assert_eq!(send(&c.b, &tab.id, "from b again"), 202);
    tab.wait_data("from b again");
    assert_eq!(tab.data(), ["from b", "from a", "from b again"]);
    let last = super::position(&tab.id, &tab.last_event_id());
    assert!(last > at, "{last:?} after {at:?}");
    assert_eq!(send(&c.b, "nobody-knows-this-id", "x"), 404);
}

/// A broadcast on B reaches the tabs of A and of B, and its count includes A's.
pub(crate) fn a_broadcast_on_b_reaches_the_tabs_of_both_and_counts_them(bin: &str) {
    let c = Cluster::start(bin);
    let mut tabs = [Tab::open(&c.a), Tab::open(&c.a), Tab::open(&c.b)];
    for tab in &tabs {
        wait_listed(&c.b, &tab.id, true);
    }
    assert_eq!(
        post(&c.b, "/broadcast?event=news", b"to all"),
        (200, "3".to_owned()),
        "the count is every node's sessions"
    );
    for tab in &mut tabs {
        let event = tab.wait_data("to all");
        assert_eq!(event.event, "news");
        super::position(&tab.id, &event.last_event_id);
    }
}

/// A close on B ends A's stream; B answers the tab's reconnect with 204; a close of an id no
/// node knows is 404.
pub(crate) fn a_close_on_b_ends_the_stream_on_a_and_b_answers_the_reconnect_with_204(bin: &str) {
    let c = Cluster::start(bin);
    let mut tab = Tab::open(&c.a);
    wait_listed(&c.b, &tab.id, true);
    assert_eq!(post(&c.b, &session_route(&tab.id, "close"), b"").0, 204);
    assert!(
        tab.stream.wait_end(Duration::from_secs(5)).unwrap(),
        "A ends the stream closed on B"
    );
    let last = tab.last_event_id();
    let again =
        c.b.events("/events", &[("Last-Event-ID", last.as_bytes())])
            .unwrap();
    assert_eq!(
        again.head.status, 204,
        "B answers the closed tab's reconnect"
    );
    assert_eq!(
        post(&c.b, &session_route("nobody-knows-this-id", "close"), b"").0,
        404
    );
    assert_eq!(
        post(&c.b, &session_route("nobody-knows-this-id", "drop"), b"").0,
        404
    );
}

/// `GET /sessions` on either node lists the live tabs of both, and drops a tab once it leaves
/// (hung up, or closed from the other node).
pub(crate) fn sessions_on_either_node_list_the_tabs_of_both_until_they_leave(bin: &str) {
    let c = Cluster::start(bin);
    let on_a = Tab::open(&c.a);
    let mut on_b = Tab::open(&c.b);
    for node in [&c.a, &c.b] {
        wait_listed(node, &on_a.id, true);
        wait_listed(node, &on_b.id, true);
    }
    let id_a = on_a.id.clone();
    on_a.stream.hang_up();
    wait_listed(&c.b, &id_a, false);
    wait_listed(&c.a, &id_a, false);
    assert_eq!(post(&c.a, &session_route(&on_b.id, "close"), b"").0, 204);
    assert!(on_b.stream.wait_end(Duration::from_secs(5)).unwrap());
    wait_listed(&c.a, &on_b.id, false);
    wait_listed(&c.b, &on_b.id, false);
    assert_eq!(c.a.sessions().unwrap(), Vec::<String>::new());
}
