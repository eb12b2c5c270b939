//! The rules of topics and users (demo contract v3): routing to members only, join and leave
//! by route, exact resume across topics, users and a tab's own events, the demo's topic rule
//! at accept, at join and on resume, presence, user close, per-topic gaps, one order for every
//! member, and bad topic names.
//!
//! The demo's stand-in login is the `user` cookie; its rule grants every topic but `staff-*`,
//! which only the user `staff` gets.

use std::thread;

use sse_conformance::{Demo, percent_encode};
use sse_proto::MessageEvent;

use super::resume::tab::{End, Offer, Tab, assert_positions_increase, detach, position_of};
use super::resume::{GRACE_MS, resumable};
use super::{post, quiet, settled};

/// The `Cookie` header of the demo's stand-in login.
fn cookie(user: &str) -> String {
    format!("user={user}")
}

/// Opens `target` as `user` (none: without the cookie), coming back from `last` when given.
fn open_as(demo: &Demo, target: &str, user: Option<&str>, last: Option<&str>) -> Tab {
    let cookie = user.map(cookie);
    let mut headers: Vec<(&str, &[u8])> = Vec::new();
    if let Some(c) = &cookie {
        headers.push(("Cookie", c.as_bytes()));
    }
    if let Some(last) = last {
        headers.push(("Last-Event-ID", last.as_bytes()));
    }
    Tab::open(demo, target, &headers)
}

/// The `topics` and `gaps` of the tab's `connect` event.
fn topics_and_gaps(tab: &Tab) -> (Vec<String>, Vec<String>) {
    let events = tab.stream.events();
    let connect = events.iter().find(|e| e.event == "connect").unwrap();
    let value: serde_json::Value = serde_json::from_str(&connect.data).unwrap();
    let names = |key: &str| -> Vec<String> {
        value[key]
            .as_array()
            .unwrap_or_else(|| panic!("no {key:?} in {}", connect.data))
            .iter()
            .map(|t| t.as_str().unwrap().to_owned())
            .collect()
    };
    (names("topics"), names("gaps"))
}

fn publish(demo: &Demo, topic: &str, body: &str) -> (u16, String) {
    post(demo, &format!("/topics/{topic}/events"), body.as_bytes())
}

fn membership(demo: &Demo, method: &str, id: &str, topic: &str) -> u16 {
    let target = format!("/sessions/{}/topics/{topic}", percent_encode(id.as_bytes()));
    demo.request(method, &target, &[], b"").unwrap().head.status
}

fn get_json(demo: &Demo, target: &str) -> serde_json::Value {
    let r = demo.request("GET", target, &[], b"").unwrap();
    assert_eq!(r.head.status, 200, "GET {target}: {}", r.text());
    serde_json::from_str(&r.text()).unwrap()
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

fn strings(value: &serde_json::Value) -> Vec<String> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

/// The data of the tab's live events (after `connect`), once there are `n`.
/// The sessions in `topic`, sorted.
fn members_of(demo: &Demo, topic: &str) -> Vec<String> {
    strings(&get_json(demo, &format!("/topics/{topic}/members"))["sessions"])
}

fn live_data(tab: &mut Tab, n: usize) -> Vec<String> {
    tab.stream
        .wait_for(|s| {
            let events = s.events();
            let connect = events.iter().position(|e| e.event == "connect");
            connect.is_some_and(|c| events.len() - c > n)
        })
        .unwrap();
    tab.live().iter().map(|e| e.data.clone()).collect()
}

fn data(events: &[MessageEvent]) -> Vec<&str> {
    events.iter().map(|e| e.data.as_str()).collect()
}

/// A publish reaches the topic's members and no one else, and answers how many.
pub(crate) fn topics_route_publishes_to_members_only(bin: &str) {
    let demo = quiet(bin);
    let mut a = open_as(&demo, "/events?topic=red&topic=blue", Some("ann"), None);
    let mut b = open_as(&demo, "/events?topic=red", Some("bob"), None);
    let mut c = open_as(&demo, "/events", None, None);
    assert_eq!(
        topics_and_gaps(&a),
        (vec!["blue".into(), "red".into()], vec![])
    );
    assert_eq!(topics_and_gaps(&b).0, ["red"]);
    assert!(topics_and_gaps(&c).0.is_empty());
    assert!(settled(|| members_of(&demo, "red").len() == 2));
    assert!(settled(|| members_of(&demo, "blue").len() == 1));
    assert!(settled(|| demo.sessions().unwrap().len() == 3));
    assert_eq!(publish(&demo, "red", "r1"), (200, "2".into()));
    assert_eq!(publish(&demo, "blue", "b1"), (200, "1".into()));
    assert_eq!(publish(&demo, "green", "g1"), (200, "0".into()));
    assert_eq!(post(&demo, "/broadcast", b"all"), (200, "3".into()));
    assert_eq!(live_data(&mut a, 3), ["r1", "b1", "all"]);
    assert_eq!(live_data(&mut b, 2), ["r1", "all"]);
    assert_eq!(live_data(&mut c, 1), ["all"], "c is in no topic");
    // A named publish is dispatched under its name.
    assert_eq!(
        post(&demo, "/topics/red/events?event=news", b"named").0,
        200
    );
    let named = b.wait_data("named");
    assert_eq!(named.event, "news");
}

/// Join and leave by route, while attached and while detached; unknown sessions are 404.
pub(crate) fn join_and_leave_by_route(bin: &str) {
    let demo = quiet(bin);
    let mut a = open_as(&demo, "/events?topic=red", Some("ann"), None);
    let mut c = open_as(&demo, "/events", None, None);
    assert_eq!(membership(&demo, "POST", &c.id, "red"), 204);
    assert_eq!(
        membership(&demo, "POST", &c.id, "red"),
        204,
        "joining twice is fine"
    );
    assert!(settled(|| members_of(&demo, "red").contains(&a.id)));
    assert_eq!(membership(&demo, "DELETE", &a.id, "red"), 204);
    assert_eq!(publish(&demo, "red", "after").1, "1");
    assert_eq!(live_data(&mut c, 1), ["after"]);
    assert_eq!(post(&demo, "/broadcast", b"all").1, "2");
    assert_eq!(live_data(&mut a, 1), ["all"], "a left red");
    assert_eq!(membership(&demo, "POST", "no-such-session", "red"), 404);
    assert_eq!(membership(&demo, "DELETE", "no-such-session", "red"), 404);
    let members = get_json(&demo, "/topics/red/members");
    assert_eq!(strings(&members["sessions"]), [c.id.clone()]);
    assert_eq!(members["users"], 0);
}

/// The demo's rule: `staff-*` only for `staff`, at accept (left out, the stream still
/// accepted), at join (403) and on resume (left, and what it published meanwhile withheld).
pub(crate) fn the_topic_rule_decides_at_accept_at_join_and_on_resume(bin: &str) {
    let demo = resumable(bin, GRACE_MS);
    let anon = open_as(&demo, "/events?topic=staff-room&topic=lobby", None, None);
    assert_eq!(topics_and_gaps(&anon).0, ["lobby"]);
    assert_eq!(membership(&demo, "POST", &anon.id, "staff-room"), 403);
    let staff = open_as(
        &demo,
        "/events?topic=staff-room&topic=lobby",
        Some("staff"),
        None,
    );
    assert_eq!(topics_and_gaps(&staff).0, ["lobby", "staff-room"]);
    let id = staff.id.clone();
    let last = staff.last_event_id();
    detach(&demo, staff, End::HangUp);
    assert!(settled(|| members_of(&demo, "lobby").len() == 2));
    assert_eq!(publish(&demo, "staff-room", "secret").1, "1");
    assert_eq!(publish(&demo, "lobby", "hello").1, "2");
    // The tab comes back under another user: staff-room is not granted any more.
    let back = open_as(
        &demo,
        "/events?topic=staff-room&topic=lobby",
        Some("ann"),
        Some(&last),
    );
    assert_eq!((back.id.as_str(), back.resumed), (id.as_str(), true));
    assert_eq!(topics_and_gaps(&back), (vec!["lobby".into()], vec![]));
    assert_eq!(data(&back.replayed()), ["hello"], "the secret is withheld");
    assert!(settled(|| members_of(&demo, "staff-room").is_empty()));
}

/// A dropped tab in two topics gets, on its reconnect, exactly what both topics published,
/// what was sent to it and what was broadcast, in the order sent, with increasing positions.
pub(crate) fn resume_is_exact_across_topics_and_own_sends(bin: &str) {
    let demo = resumable(bin, GRACE_MS);
    let mut a = open_as(&demo, "/events?topic=red&topic=blue", None, None);
    let _keeps_red = open_as(&demo, "/events?topic=red", None, None);
    assert!(settled(|| members_of(&demo, "red").len() == 2));
    assert_eq!(publish(&demo, "red", "seen").1, "2");
    let seen = a.wait_data("seen");
    let id = a.id.clone();
    let last = a.last_event_id();
    detach(&demo, a, End::Drop);
    assert_eq!(
        publish(&demo, "red", "r1").1,
        "2",
        "the detached tab counts"
    );
    assert_eq!(super::emit(&demo, &id, None, b"own"), 202);
    assert_eq!(publish(&demo, "blue", "b1").1, "1");
    assert_eq!(publish(&demo, "red", "r2").1, "2");
    assert_eq!(post(&demo, "/broadcast", b"all").1, "2");
    let back = super::resume::tab::reconnect(&demo, &last, Offer::Header);
    assert_eq!((back.id.as_str(), back.resumed), (id.as_str(), true));
    assert_eq!(
        topics_and_gaps(&back),
        (vec!["blue".into(), "red".into()], vec![])
    );
    let replayed = back.replayed();
    super::in_log_order(
        &data(&replayed),
        &["r1", "own", "b1", "r2", "all"],
        &[&["r1", "r2"], &["own"], &["b1"], &["all"]],
    );
    assert_positions_increase(&id, position_of(&id, &seen.last_event_id), &replayed);
}

/// Joins and leaves made while the tab was away decide what it gets back: a topic's events
/// while it was a member, none from before it joined or after it left.
pub(crate) fn membership_changed_while_away_is_honoured(bin: &str) {
    let demo = resumable(bin, GRACE_MS);
    let a = open_as(&demo, "/events?topic=red", None, None);
    let _keeps = open_as(&demo, "/events?topic=red&topic=blue", None, None);
    let (id, last) = (a.id.clone(), a.last_event_id());
    detach(&demo, a, End::HangUp);
    assert!(settled(|| members_of(&demo, "red").len() == 2));
    assert!(settled(|| members_of(&demo, "blue").len() == 1));
    assert_eq!(publish(&demo, "blue", "blue before the join").1, "1");
    assert_eq!(publish(&demo, "red", "red while a member").1, "2");
    assert_eq!(
        membership(&demo, "POST", &id, "blue"),
        204,
        "joined while detached"
    );
    assert_eq!(publish(&demo, "blue", "blue after the join").1, "2");
    assert_eq!(
        membership(&demo, "DELETE", &id, "red"),
        204,
        "left while detached"
    );
    assert_eq!(publish(&demo, "red", "red after the leave").1, "1");
    let back = open_as(&demo, "/events", None, Some(&last));
    assert!(back.resumed);
    assert_eq!(topics_and_gaps(&back).0, ["blue"]);
    assert_eq!(
        data(&back.replayed()),
        ["red while a member", "blue after the join"]
    );
}

/// A send to a user reaches its detached tab when it comes back, but not a tab of the user
/// opened afterwards; the user's sessions are listed.
pub(crate) fn a_user_send_reaches_a_detached_tab_not_a_later_one(bin: &str) {
    let demo = resumable(bin, GRACE_MS);
    let a = open_as(&demo, "/events", Some("ann"), None);
    let (id, last) = (a.id.clone(), a.last_event_id());
    detach(&demo, a, End::HangUp);
    let ann = || strings(&get_json(&demo, "/users/ann/sessions"));
    assert!(settled(|| ann() == [id.clone()]));
    assert_eq!(
        post(&demo, "/users/ann/events?event=notice", b"while away"),
        (200, "1".into())
    );
    let mut later = open_as(&demo, "/events", Some("ann"), None);
    let back = open_as(&demo, "/events", Some("ann"), Some(&last));
    assert_eq!((back.id.as_str(), back.resumed), (id.as_str(), true));
    let replayed = back.replayed();
    assert_eq!(data(&replayed), ["while away"]);
    assert_eq!(replayed[0].event, "notice");
    assert!(settled(
        || ann() == sorted(vec![id.clone(), later.id.clone()])
    ));
    assert_eq!(
        post(&demo, "/users/ann/events", b"to both"),
        (200, "2".into())
    );
    assert_eq!(
        live_data(&mut later, 1),
        ["to both"],
        "nothing from before it opened"
    );
    assert_eq!(post(&demo, "/users/nobody/events", b"x"), (200, "0".into()));
}

/// Closing a user closes every one of its sessions for good: each tab's reconnect gets 204;
/// other users' tabs go on.
pub(crate) fn a_user_close_gives_204_on_every_tab(bin: &str) {
    let demo = quiet(bin);
    let mut a1 = open_as(&demo, "/events", Some("ann"), None);
    let mut a2 = open_as(&demo, "/events", Some("ann"), None);
    let b = open_as(&demo, "/events", Some("bob"), None);
    assert!(settled(|| strings(&get_json(&demo, "/users/ann/sessions"))
        .len()
        == 2));
    assert_eq!(post(&demo, "/users/ann/close", b""), (200, "2".into()));
    for tab in [&mut a1, &mut a2] {
        assert!(
            tab.stream
                .wait_end(std::time::Duration::from_secs(5))
                .unwrap()
        );
        let last = tab.last_event_id();
        let again = demo
            .events(
                "/events",
                &[("Last-Event-ID", last.as_bytes()), ("Cookie", b"user=ann")],
            )
            .unwrap();
        assert_eq!(again.head.status, 204, "{last}");
    }
    assert!(settled(
        || demo.sessions().unwrap() == std::slice::from_ref(&b.id)
    ));
    assert!(settled(
        || strings(&get_json(&demo, "/users/ann/sessions")).is_empty()
    ));
}

/// Members are listed with the number of distinct users among them (sessions without a user
/// count in none); a detached member within its grace is still one.
pub(crate) fn members_count_distinct_users(bin: &str) {
    let demo = resumable(bin, GRACE_MS);
    let a1 = open_as(&demo, "/events?topic=room", Some("ann"), None);
    let a2 = open_as(&demo, "/events?topic=room", Some("ann"), None);
    let b = open_as(&demo, "/events?topic=room", Some("bob"), None);
    let c = open_as(&demo, "/events?topic=room", None, None);
    let _elsewhere = open_as(&demo, "/events?topic=hall", Some("eve"), None);
    let all = sorted(vec![
        a1.id.clone(),
        a2.id.clone(),
        b.id.clone(),
        c.id.clone(),
    ]);
    assert!(settled(|| members_of(&demo, "room") == all));
    let members = get_json(&demo, "/topics/room/members");
    assert_eq!(strings(&members["sessions"]), all);
    assert_eq!(members["users"], 2);
    detach(&demo, c, End::HangUp);
    let members = get_json(&demo, "/topics/room/members");
    assert_eq!(
        strings(&members["sessions"]),
        all,
        "detached members are listed"
    );
    let empty = get_json(&demo, "/topics/nobody-here/members");
    assert!(strings(&empty["sessions"]).is_empty());
    assert_eq!(empty["users"], 0);
}

/// A topic whose log overflowed while the tab was away is reported in `gaps`, and the rest
/// (another topic, the tab's own events) is still replayed; memory stays bounded.
pub(crate) fn a_topic_gap_still_replays_the_rest_with_memory_bounded(bin: &str) {
    const EVENTS: usize = 128;
    const SIZE: usize = 128 * 1024; // 16 MiB in all, 16 times a log's 1 MiB
    let demo = resumable(bin, GRACE_MS);
    let a = open_as(&demo, "/events?topic=busy&topic=calm", None, None);
    let (id, last) = (a.id.clone(), a.last_event_id());
    detach(&demo, a, End::HangUp);
    assert!(settled(|| members_of(&demo, "calm").len() == 1));
    assert_eq!(publish(&demo, "calm", "calm 1").1, "1");
    let before = demo.rss_kib();
    let mut peak = 0;
    for i in 0..EVENTS {
        let mut body = format!("{i:08}").into_bytes();
        body.resize(SIZE, b'x');
        let (status, count) = post(&demo, "/topics/busy/events", &body);
        assert_eq!((status, count.as_str()), (200, "1"), "publish {i}");
        peak = peak.max(demo.rss_kib().unwrap_or(0));
    }
    assert_eq!(super::emit(&demo, &id, None, b"own"), 202);
    assert_eq!(publish(&demo, "calm", "calm 2").1, "1");
    let back = open_as(&demo, "/events", None, Some(&last));
    assert_eq!((back.id.as_str(), back.resumed), (id.as_str(), true));
    assert_eq!(
        topics_and_gaps(&back),
        (vec!["busy".into(), "calm".into()], vec!["busy".into()])
    );
    super::in_log_order(
        &data(&back.replayed()),
        &["calm 1", "own", "calm 2"],
        &[&["calm 1", "calm 2"], &["own"]],
    );
    if let (Some(before), true) = (before, peak > 0) {
        let growth = peak.saturating_sub(before);
        assert!(
            growth < 8 * 1024,
            "RSS grew by {growth} KiB while 16 MiB were published to a topic with a 1 MiB log"
        );
    }
}

/// Two publishers at once: every member gets the topic's events in one and the same order.
pub(crate) fn concurrent_publishers_give_every_member_one_order(bin: &str) {
    const EACH: usize = 150;
    let demo = quiet(bin);
    let mut tabs: Vec<Tab> = (0..3)
        .map(|_| open_as(&demo, "/events?topic=room", None, None))
        .collect();
    assert!(settled(|| members_of(&demo, "room").len() == 3));
    thread::scope(|scope| {
        for p in 0..2 {
            let demo = &demo;
            scope.spawn(move || {
                let mut client = demo.client().unwrap();
                for i in 0..EACH {
                    let body = format!("{p}-{i}");
                    let r = client.request("POST", "/topics/room/events", &[], body.as_bytes());
                    assert_eq!(r.unwrap().text(), "3");
                }
            });
        }
    });
    let orders: Vec<Vec<String>> = tabs.iter_mut().map(|t| live_data(t, 2 * EACH)).collect();
    assert_eq!(orders[0].len(), 2 * EACH);
    assert_eq!(orders[0], orders[1]);
    assert_eq!(orders[0], orders[2]);
    for p in 0..2 {
        let mine: Vec<&String> = orders[0]
            .iter()
            .filter(|d| d.starts_with(&format!("{p}-")))
            .collect();
        let sent: Vec<String> = (0..EACH).map(|i| format!("{p}-{i}")).collect();
        assert_eq!(
            mine,
            sent.iter().collect::<Vec<_>>(),
            "publisher {p}'s own order"
        );
    }
}

/// A bad topic name is 400 on every route, and the server goes on.
pub(crate) fn bad_topic_names_are_400_on_every_route(bin: &str) {
    let demo = quiet(bin);
    let tab = open_as(&demo, "/events", None, None);
    let long = "x".repeat(65);
    let many: String = (0..65).map(|i| format!("topic=t{i}&")).collect();
    for target in [
        "/events?topic=a%20b".to_owned(),
        "/events?topic=%7Bslot%7D".to_owned(),
        "/events?topic=%FF".to_owned(),
        "/events?topic=".to_owned(),
        "/events?topic=a:b".to_owned(),
        format!("/events?topic={long}"),
        format!("/events?{many}"),
    ] {
        let r = demo
            .request("GET", &target, &[("Accept", b"text/event-stream")], b"")
            .unwrap();
        assert_eq!(r.head.status, 400, "GET {target}: {}", r.text());
        assert!(!r.text().is_empty(), "a 400 says why");
    }
    let id = percent_encode(tab.id.as_bytes());
    for bad in ["a%20b", "%7Bx%7D", "%FF", "a:b", long.as_str(), "a%0Ab"] {
        let routes = [
            ("POST", format!("/topics/{bad}/events")),
            ("GET", format!("/topics/{bad}/members")),
            ("POST", format!("/sessions/{id}/topics/{bad}")),
            ("DELETE", format!("/sessions/{id}/topics/{bad}")),
        ];
        for (method, target) in routes {
            let r = demo.request(method, &target, &[], b"x").unwrap();
            assert_eq!(r.head.status, 400, "{method} {target}: {}", r.text());
        }
    }
    assert_eq!(post(&demo, "/broadcast", b"still here"), (200, "1".into()));
}
