//! Topics and users across two nodes: publish, user send and user close from either node; a
//! tab resuming on the other node with its topics and what they published; a node without a
//! member of a topic receiving none of its traffic (counted in Redis); a killed node's tab
//! resuming elsewhere with its topics.

use std::time::{Duration, Instant};

use sse_conformance::{Demo, percent_encode};

use super::{Cluster, Tab, post, send};

/// A tab of the demo's stand-in login (`user` cookie) opening `target`, coming back from
/// `last` when given.
fn open_as(demo: &Demo, target: &str, user: Option<&str>, last: Option<&str>) -> Tab {
    let cookie = user.map(|u| format!("user={u}"));
    let mut headers: Vec<(&str, &[u8])> = Vec::new();
    if let Some(c) = &cookie {
        headers.push(("Cookie", c.as_bytes()));
    }
    if let Some(last) = last {
        headers.push(("Last-Event-ID", last.as_bytes()));
    }
    Tab::connect(demo, target, &headers)
}

fn json(demo: &Demo, target: &str) -> serde_json::Value {
    let r = demo.request("GET", target, &[], b"").unwrap();
    assert_eq!(r.head.status, 200, "GET {target}: {}", r.text());
    serde_json::from_str(&r.text()).unwrap()
}

/// Waits until `GET /topics/{topic}/members` on `demo` lists `n` sessions (the relay numbers
/// joins: a member is one once its join came back).
fn wait_members(demo: &Demo, topic: &str, n: usize) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let members = json(demo, &format!("/topics/{topic}/members"));
        if members["sessions"].as_array().unwrap().len() == n || Instant::now() > deadline {
            return members;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The publishes (`t` = `p`) in each node's delivery stream, counted at Redis.
fn publishes_per_node(c: &Cluster) -> Vec<usize> {
    // Each node's inbox on every shard (`{sse:}node:<node>`, `{sse:#1}node:<node>`, …).
    let keys = c.redis.keys("{sse:*}node:*");
    let mut per_node: std::collections::BTreeMap<String, usize> = Default::default();
    for key in &keys {
        let node = key.rsplit_once("node:").map_or("", |(_, n)| n).to_owned();
        let raw = c.redis.cli(&["XRANGE", key, "-", "+"]);
        let lines: Vec<&str> = raw.lines().collect();
        *per_node.entry(node).or_default() += lines.windows(2).filter(|w| w == &["t", "p"]).count();
    }
    let mut counts: Vec<usize> = per_node.into_values().collect();
    counts.sort_unstable();
    counts
}

/// A publish, a user send and a user close made on either node reach the tabs of both.
pub(crate) fn publish_user_send_and_user_close_reach_both_nodes(bin: &str) {
    let c = Cluster::start(bin);
    let mut ann_a = open_as(&c.a, "/events?topic=red", Some("ann"), None);
    let mut bob_b = open_as(&c.b, "/events?topic=red", Some("bob"), None);
    let mut ann_b = open_as(&c.b, "/events", Some("ann"), None);
    assert_eq!(ann_a.topics, ["red"]);
    wait_members(&c.a, "red", 2);
    // Each session's user reaches Redis with its node's presence, after the join.
    let deadline = Instant::now() + Duration::from_secs(5);
    let members = loop {
        let members = json(&c.a, "/topics/red/members");
        if members["users"] == 2 || Instant::now() > deadline {
            break members;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut both = vec![ann_a.id.clone(), bob_b.id.clone()];
    both.sort();
    assert_eq!(members["sessions"], serde_json::json!(both));
    assert_eq!(members["users"], 2);

    assert_eq!(
        post(&c.b, "/topics/red/events", b"to red"),
        (200, "2".into())
    );
    ann_a.wait_data("to red");
    bob_b.wait_data("to red");
    assert_eq!(
        post(&c.a, "/users/ann/events", b"to ann"),
        (200, "2".into())
    );
    ann_a.wait_data("to ann");
    ann_b.wait_data("to ann");
    assert_eq!(ann_b.data(), ["to ann"], "ann_b is not in red");
    let sessions = json(&c.b, "/users/ann/sessions");
    let mut anns = vec![ann_a.id.clone(), ann_b.id.clone()];
    anns.sort();
    assert_eq!(sessions, serde_json::json!(anns));

    // Logged out everywhere, from B: both of ann's streams end, both reconnects get 204.
    assert_eq!(post(&c.b, "/users/ann/close", b""), (200, "2".into()));
    for (tab, other) in [(&mut ann_a, &c.b), (&mut ann_b, &c.a)] {
        assert!(tab.stream.wait_end(Duration::from_secs(5)).unwrap());
        let last = tab.last_event_id();
        let again = other
            .events(
                "/events",
                &[("Last-Event-ID", last.as_bytes()), ("Cookie", b"user=ann")],
            )
            .unwrap();
        assert_eq!(again.head.status, 204, "{last}");
    }
    assert_eq!(send(&c.a, &bob_b.id, "bob is still here"), 202);
    bob_b.wait_data("bob is still here");
}

/// A tab in two topics on A hangs up; the topics publish, a leave is made on B; the tab comes
/// back on B and gets exactly what its memberships entitle it to, with its topics.
pub(crate) fn a_tab_resumes_on_the_other_node_across_its_topics(bin: &str) {
    let c = Cluster::start(bin);
    let target = "/events?topic=red&topic=blue";
    let mut tab = open_as(&c.a, target, None, None);
    let _keeper = open_as(&c.b, "/events?topic=red&topic=blue", None, None);
    wait_members(&c.b, "blue", 2);
    assert_eq!(post(&c.b, "/topics/red/events", b"seen"), (200, "2".into()));
    tab.wait_data("seen");
    let (id, last) = (tab.id.clone(), tab.last_event_id());
    tab.stream.hang_up();
    assert_eq!(post(&c.b, "/topics/red/events", b"r1"), (200, "2".into()));
    assert_eq!(send(&c.b, &id, "own"), 202);
    assert_eq!(post(&c.a, "/topics/blue/events", b"b1"), (200, "2".into()));
    let leave = format!("/sessions/{}/topics/blue", percent_encode(id.as_bytes()));
    assert_eq!(
        c.b.request("DELETE", &leave, &[], b"").unwrap().head.status,
        204
    );
    assert_eq!(
        post(&c.a, "/topics/blue/events", b"blue after the leave").1,
        "1"
    );

    // Its EventSource reconnects with the same URL: blue is asked for (and granted) again,
    // from now on.
    let back = open_as(&c.b, target, None, Some(&last));
    assert_eq!((back.id.as_str(), back.resumed), (id.as_str(), true));
    assert_eq!(back.topics, ["blue", "red"]);
    assert!(back.gaps.is_empty());
    super::in_log_order(
        &back.replayed(),
        &["r1", "own", "b1"],
        &[&["r1"], &["own"], &["b1"]],
    );
}

/// A node that serves no member of a topic gets none of its publishes: counted in the nodes'
/// delivery streams in Redis.
pub(crate) fn a_node_without_members_gets_none_of_a_topics_traffic(bin: &str) {
    let c = Cluster::start(bin);
    let mut member = open_as(&c.a, "/events?topic=room", None, None);
    let _elsewhere = open_as(&c.b, "/events?topic=hall", None, None);
    wait_members(&c.a, "room", 1);
    wait_members(&c.a, "hall", 1);
    for i in 0..20 {
        assert_eq!(
            post(&c.b, "/topics/room/events", format!("m{i}").as_bytes()).1,
            "1"
        );
    }
    member.wait_data("m19");
    assert_eq!(
        publishes_per_node(&c),
        [0, 20],
        "B's stream holds none of room's publishes"
    );
}

/// A is killed under a tab in a topic: the tab comes back on B, still in the topic, with
/// what the topic published meanwhile.
pub(crate) fn a_killed_nodes_tab_resumes_on_b_with_its_topics(bin: &str) {
    let mut c = Cluster::start(bin);
    let target = "/events?topic=room";
    let mut tab = open_as(&c.a, target, Some("ann"), None);
    wait_members(&c.b, "room", 1);
    assert_eq!(
        post(&c.b, "/topics/room/events", b"seen"),
        (200, "1".into())
    );
    tab.wait_data("seen");
    let (id, last) = (tab.id.clone(), tab.last_event_id());
    // The session's user reaches Redis with A's presence, after the connect.
    let deadline = Instant::now() + Duration::from_secs(5);
    while json(&c.b, "/users/ann/sessions")
        .as_array()
        .is_none_or(Vec::is_empty)
    {
        assert!(Instant::now() < deadline, "ann's tab is not listed");
        std::thread::sleep(Duration::from_millis(20));
    }
    c.a.signal("KILL").unwrap();
    assert!(c.a.wait_exit(Duration::from_secs(5)).unwrap().is_some());
    assert_eq!(
        post(&c.b, "/topics/room/events", b"while a is dead"),
        (200, "1".into())
    );
    assert_eq!(
        post(&c.b, "/users/ann/events", b"to ann"),
        (200, "1".into())
    );

    let mut back = open_as(&c.b, target, Some("ann"), Some(&last));
    assert_eq!((back.id.as_str(), back.resumed), (id.as_str(), true));
    assert_eq!(back.topics, ["room"]);
    super::in_log_order(
        &back.replayed(),
        &["while a is dead", "to ann"],
        &[&["while a is dead"], &["to ann"]],
    );
    assert_eq!(
        post(&c.b, "/topics/room/events", b"live on b"),
        (200, "1".into())
    );
    back.wait_data("live on b");
}
