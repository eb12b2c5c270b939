//! Topics and users across two nodes on one real redis-server: a publish, a user send and a
//! user close reach every node with a member and only those; a tab resumes on the other node
//! with its topics; joins and leaves made elsewhere while it was away; a killed node's tab.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{Node, RedisServer, Tab, frame, member, raw, start_node, until};
use sse_proto::{Continuity, Decision, Hub, Principal, RelayPort, ResumeConfig, Store};
use sse_redis::{RedisConfig, RedisEngine};

const GRACE: Duration = Duration::from_secs(30);

fn builder(grace: Duration) -> sse_proto::HubBuilder {
    Hub::builder()
        .keep_alive(None)
        .resume(ResumeConfig::new(grace))
        .topic_rule(|_, _| true)
}

async fn node(redis: &RedisServer, name: &str) -> Node {
    start_node(redis, name, |_| {}, builder(GRACE)).await
}

fn tab(target: &str, user: Option<&str>) -> Tab {
    Tab {
        target: target.to_owned(),
        user: user.map(str::to_owned),
        ..Tab::new()
    }
}

/// The entries of kind `kind` (`p` publish, `u` user send) in a node's delivery stream.
async fn deliveries(redis: &RedisServer, node: &str, kind: &str) -> usize {
    let mut r = raw(redis).await;
    let mut count = 0;
    for tag in common::tags() {
        let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
            .arg(format!("{tag}node:{node}"))
            .arg("-")
            .arg("+")
            .query_async(&mut r)
            .await
            .unwrap();
        count += entries
            .iter()
            .filter(|(_, fields)| fields.iter().any(|(k, v)| k == "t" && v == kind))
            .count();
    }
    count
}

async fn a_publish_reaches_the_members_on_every_node_and_no_other_node() {
    let redis = RedisServer::start().unwrap();
    let (a, b, c) = (
        node(&redis, "a").await,
        node(&redis, "b").await,
        node(&redis, "c").await,
    );
    let mut on_a = tab("/events?topic=red", Some("ann"));
    let mut on_b = tab("/events?topic=red&topic=blue", Some("bob"));
    let mut outside = tab("/events?topic=blue", None);
    on_a.connect(&a.hub, &a.engine).await.unwrap();
    on_b.connect(&b.hub, &b.engine).await.unwrap();
    outside.connect(&c.hub, &c.engine).await.unwrap();
    assert_eq!(on_b.topics, ["blue", "red"]);
    assert!(member(&a, &on_a, "red").await && member(&b, &on_b, "red").await);
    assert!(member(&c, &outside, "blue").await);

    // From the node without a member: both members get it; the count is across nodes.
    assert_eq!(c.engine.publish("red", frame("r1")).await, Ok(2));
    // Queued through a hub: the same way.
    c.hub.topic("red").unwrap().send("r2").unwrap();
    assert!(on_a.wait_for(2).await && on_b.wait_for(2).await);
    assert_eq!(on_a.data(), ["r1", "r2"]);
    assert_eq!(on_b.data(), ["r1", "r2"]);
    let members = a.engine.members("red").await.unwrap();
    assert_eq!(members.users, 2);
    let mut both = vec![on_a.id.clone(), on_b.id.clone()];
    both.sort();
    assert_eq!(members.sessions, both);
    // Node c has no member of red: none of red's traffic reached it (counted at Redis).
    assert_eq!(deliveries(&redis, "c", "p").await, 0);
    assert_eq!(deliveries(&redis, "a", "p").await, 2);
    // And blue reaches b and c, not a.
    assert_eq!(a.engine.publish("blue", frame("b1")).await, Ok(2));
    assert!(outside.wait_for(1).await && on_b.wait_for(3).await);
    assert_eq!(deliveries(&redis, "a", "p").await, 2);
    outside.read();
    on_a.read();
    assert_eq!(outside.data(), ["b1"]);
    assert_eq!(on_a.data(), ["r1", "r2"]);
    assert_eq!(a.engine.publish("nobody-here", frame("x")).await, Ok(0));
}

async fn a_user_send_and_close_reach_every_tab_of_the_user_on_every_node() {
    let redis = RedisServer::start().unwrap();
    let (a, b) = (node(&redis, "a").await, node(&redis, "b").await);
    let mut ann_a = tab("/events", Some("ann"));
    let mut ann_b = tab("/events", Some("ann"));
    let mut bob = tab("/events", Some("bob"));
    ann_a.connect(&a.hub, &a.engine).await.unwrap();
    ann_b.connect(&b.hub, &b.engine).await.unwrap();
    bob.connect(&b.hub, &b.engine).await.unwrap();
    let ann = Principal::new("ann");
    assert!(until(async || a.engine.user_sessions(&ann).await.unwrap().len() == 2).await);
    assert_eq!(a.engine.send_user(&ann, frame("hi ann")).await, Ok(2));
    a.hub.user("ann").send("again").unwrap();
    assert!(ann_a.wait_for(2).await && ann_b.wait_for(2).await);
    assert_eq!(ann_b.data(), ["hi ann", "again"]);
    bob.read();
    assert!(bob.data().is_empty());
    assert_eq!(deliveries(&redis, "a", "u").await, 2);
    assert_eq!(deliveries(&redis, "b", "u").await, 2);

    // Logged out everywhere: both tabs' reconnects get 204, on either node.
    assert_eq!(b.engine.close_user(&ann).await, Ok(2));
    for (tab, node) in [(&mut ann_a, &b), (&mut ann_b, &a)] {
        assert!(until(async || a.hub.session(&tab.id).is_none_or(|s| s.is_closed())).await);
        tab.read();
        tab.drop_connection();
        assert!(matches!(
            tab.connect(&node.hub, &node.engine).await,
            Err(Decision::NoContent { .. })
        ));
    }
    assert!(!b.hub.session(&bob.id).unwrap().is_closed());
}

async fn a_tab_resumes_on_the_other_node_across_its_topics_and_changes_made_while_away() {
    let redis = RedisServer::start().unwrap();
    let (a, b) = (node(&redis, "a").await, node(&redis, "b").await);
    let mut t = tab("/events?topic=red&topic=blue", Some("ann"));
    t.connect(&a.hub, &a.engine).await.unwrap();
    assert!(member(&a, &t, "red").await && member(&a, &t, "blue").await);
    let mut keeps = tab("/events?topic=red&topic=green", None);
    keeps.connect(&b.hub, &b.engine).await.unwrap();
    assert!(member(&b, &keeps, "green").await);
    b.engine.publish("red", frame("seen")).await.unwrap();
    assert!(t.wait_for(1).await);
    t.drop_connection();

    // While it is away: publishes, its own send, its user's, a leave and a join made on the
    // other node.
    b.engine.publish("red", frame("r1")).await.unwrap();
    b.engine.send_to(&t.id, frame("own")).await.unwrap();
    b.engine
        .publish("green", frame("green before the join"))
        .await
        .unwrap();
    assert_eq!(b.engine.join(&t.id, "green").await, Ok(true));
    b.engine.publish("green", frame("g1")).await.unwrap();
    b.engine.publish("blue", frame("b1")).await.unwrap();
    assert_eq!(b.engine.leave(&t.id, "blue").await, Ok(true));
    b.engine
        .publish("blue", frame("blue after the leave"))
        .await
        .unwrap();
    b.engine
        .send_user(&Principal::new("ann"), frame("to ann"))
        .await
        .unwrap();

    // Back, on b, from where it was.
    t.target = "/events".to_owned();
    t.connect(&b.hub, &b.engine).await.unwrap();
    assert_eq!(t.continuity, Some(Continuity::Resumed { replayed: 5 }));
    assert_eq!(t.topics, ["green", "red"]);
    assert!(t.gaps.is_empty());
    let want = ["seen", "r1", "own", "g1", "b1", "to ann"];
    if common::shards() == 1 {
        assert_eq!(t.data(), want);
    } else {
        // Across shards the replay is in order per log, not across logs.
        let mut got = t.data();
        let red = |e: &str| got.iter().position(|d| *d == e);
        assert!(red("seen") < red("r1"), "{got:?}");
        got.sort();
        let mut want = want.to_vec();
        want.sort();
        assert_eq!(got, want);
    }
    // Live on b now, in its topics.
    assert_eq!(a.engine.publish("green", frame("live")).await, Ok(2));
    assert!(t.wait_for(7).await);
    assert_eq!(t.data()[6], "live");
}

async fn a_killed_nodes_tab_resumes_elsewhere_with_its_topics() {
    let redis = RedisServer::start().unwrap();
    let b = node(&redis, "b").await;
    let mut t = tab("/events?topic=room", Some("ann"));
    {
        let a = node(&redis, "a").await;
        t.connect(&a.hub, &a.engine).await.unwrap();
        assert!(member(&a, &t, "room").await);
        b.engine.publish("room", frame("seen")).await.unwrap();
        assert!(t.wait_for(1).await);
        // Killed: its task stops, nothing is told to Redis.
        a.task.abort();
        t.drop_connection();
    }
    assert_eq!(
        b.engine.publish("room", frame("while a is dead")).await,
        Ok(1)
    );
    t.target = "/events?topic=room".to_owned();
    t.connect(&b.hub, &b.engine).await.unwrap();
    assert_eq!(t.continuity, Some(Continuity::Resumed { replayed: 1 }));
    assert_eq!(t.topics, ["room"]);
    assert_eq!(t.data(), ["seen", "while a is dead"]);
    // Served by b from now on: the next publish goes to b's stream.
    assert_eq!(b.engine.publish("room", frame("on b")).await, Ok(1));
    assert!(t.wait_for(3).await);
    let members = b.engine.members("room").await.unwrap();
    assert_eq!(members.sessions, [t.id.clone()]);
}

async fn joins_and_leaves_on_one_node_are_observed_on_the_other() {
    let redis = RedisServer::start().unwrap();
    let a = node(&redis, "a").await;
    // B observes presence from the start.
    let mut config = RedisConfig::new(redis.url());
    config.node = "b".to_owned();
    config.heartbeat = Duration::from_millis(200);
    config.shards = common::shards();
    let engine = RedisEngine::connect(config).await.unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    engine.observe_presence(move |e| {
        let user = e
            .user
            .as_ref()
            .map(|u| String::from_utf8_lossy(u.as_bytes()).into_owned());
        let what = if e.joined { "joined" } else { "left" };
        log.lock()
            .unwrap()
            .push(format!("{} {what} {} ({user:?})", e.session, e.topic));
    });
    let hub = engine
        .prepare(
            Hub::builder()
                .write_window(sse_proto::WriteWindow::Off)
                .keep_alive(None)
                .resume(ResumeConfig::new(GRACE)),
        )
        .build(Instant::now);
    let task = tokio::spawn(engine.run(RelayPort::claim(&hub).unwrap()));

    let mut t = tab("/events?topic=red&id=t1", Some("ann"));
    t.connect(&a.hub, &a.engine).await.unwrap();
    assert!(member(&a, &t, "red").await);
    a.engine.leave(&t.id, "red").await.unwrap();
    a.hub.session(&t.id).unwrap().join("blue").unwrap();
    assert!(member(&a, &t, "blue").await);
    // The session ends: it leaves its topics.
    a.hub.session(&t.id).unwrap().close();
    t.read();
    t.drop_connection();
    let want = [
        "t1 joined red (Some(\"ann\"))",
        "t1 left red (Some(\"ann\"))",
        "t1 joined blue (Some(\"ann\"))",
        "t1 left blue (Some(\"ann\"))",
    ];
    assert!(
        until(async || seen.lock().unwrap().len() >= want.len()).await,
        "{:?}",
        seen.lock().unwrap()
    );
    assert_eq!(*seen.lock().unwrap(), want);
    task.abort();
}

async fn a_session_that_moved_is_not_cleaned_up_by_the_node_it_left() {
    let redis = RedisServer::start().unwrap();
    let grace = Duration::from_millis(300);
    let short = async |name: &str| {
        start_node(
            &redis,
            name,
            |c| c.heartbeat = Duration::from_millis(100),
            builder(grace),
        )
        .await
    };
    let (a, b) = (short("a").await, short("b").await);
    let mut t = tab("/events?topic=room", Some("ann"));
    t.connect(&a.hub, &a.engine).await.unwrap();
    assert!(member(&a, &t, "room").await);
    t.drop_connection();
    t.connect(&b.hub, &b.engine).await.unwrap();
    assert_eq!(t.continuity, Some(Continuity::Resumed { replayed: 0 }));
    // A's copy of the session, detached, expires after the grace: A must not take the
    // session's marks, log or memberships away from B.
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(
        until(async || {
            let _ = a.hub.poll_timers(&mut cx, Instant::now());
            a.hub.session(&t.id).is_none()
        })
        .await
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(a.engine.send_to(&t.id, frame("still there")).await, Ok(()));
    assert_eq!(a.engine.publish("room", frame("to the room")).await, Ok(1));
    assert!(t.wait_for(2).await, "{:?}", t.events);
    assert_eq!(t.data(), ["still there", "to the room"]);
    // Its memberships are still recorded: a reconnect that asks for no topic is in room.
    t.drop_connection();
    t.target = "/events".to_owned();
    t.connect(&b.hub, &b.engine).await.unwrap();
    assert_eq!(t.topics, ["room"]);
}

/// A tab that comes back as another user (a login as someone else on the same page): the
/// session leaves the first user's sessions and joins the second's, each record on its own
/// shard when there are several, and user sends follow.
async fn a_session_that_comes_back_as_another_user_moves_between_the_users() {
    let redis = RedisServer::start().unwrap();
    let (a, b) = (node(&redis, "a").await, node(&redis, "b").await);
    let (ann, bob) = (Principal::new("ann"), Principal::new("bob"));
    let mut t = tab("/events", Some("ann"));
    t.connect(&a.hub, &a.engine).await.unwrap();
    let id = t.id.clone();
    assert!(until(async || a.engine.user_sessions(&ann).await.unwrap() == [id.clone()]).await);
    t.drop_connection();
    t.user = Some("bob".to_owned());
    t.connect(&b.hub, &b.engine).await.unwrap();
    assert_eq!(t.id, id);
    let moved = until(async || {
        a.engine.user_sessions(&bob).await.unwrap() == [id.clone()]
            && a.engine.user_sessions(&ann).await.unwrap().is_empty()
    })
    .await;
    assert!(
        moved,
        "ann {:?}, bob {:?}",
        a.engine.user_sessions(&ann).await,
        a.engine.user_sessions(&bob).await
    );
    let info = a.engine.session_info(&id).await.unwrap().unwrap();
    assert_eq!(info.user, Some(bob.clone()));
    assert_eq!(a.engine.send_user(&ann, frame("to ann")).await, Ok(0));
    assert_eq!(a.engine.send_user(&bob, frame("to bob")).await, Ok(1));
    let before = t.events.len();
    assert!(t.wait_for(before + 1).await);
    assert_eq!(t.data()[before..], ["to bob"]);
}

on_shards!(
    a_session_that_comes_back_as_another_user_moves_between_the_users,
    joins_racing_the_tab_moving_between_nodes_settle_where_publishes_go,
    a_publish_reaches_the_members_on_every_node_and_no_other_node,
    a_user_send_and_close_reach_every_tab_of_the_user_on_every_node,
    a_tab_resumes_on_the_other_node_across_its_topics_and_changes_made_while_away,
    a_killed_nodes_tab_resumes_elsewhere_with_its_topics,
    joins_and_leaves_on_one_node_are_observed_on_the_other,
    a_session_that_moved_is_not_cleaned_up_by_the_node_it_left,
    recording_a_session_again_does_not_undo_a_leave_its_hub_has_not_heard_of,
);

/// Joins and leaves made from a third node while the tab moves between two, over and over
/// (on four shards each join off the session's home shard is two steps, which a claim on
/// the other node may land between): once each round settles, the tab is in a topic on the
/// node that serves it exactly when Redis routes the topic's publishes to it, and a publish
/// to each topic reaches it once if it is a member, not at all if not.
async fn joins_racing_the_tab_moving_between_nodes_settle_where_publishes_go() {
    let redis = RedisServer::start().unwrap();
    let nodes = [
        node(&redis, "a").await,
        node(&redis, "b").await,
        node(&redis, "c").await,
    ];
    let topics: Vec<String> = (0..6).map(|i| format!("race{i}")).collect();
    let mut t = tab("/events?topic=race0", None);
    t.connect(&nodes[0].hub, &nodes[0].engine).await.unwrap();
    assert!(member(&nodes[0], &t, "race0").await);
    let id = t.id.clone();
    let mut here = 0;
    for round in 0..48 {
        let topic = &topics[round % topics.len()];
        let other = &topics[(round + 3) % topics.len()];
        let next = 1 - here;
        t.drop_connection();
        t.target = "/events".to_owned();
        let third = &nodes[2].engine;
        let (_, joined, left) = tokio::join!(
            t.connect(&nodes[next].hub, &nodes[next].engine),
            third.join(&id, topic),
            third.leave(&id, other),
        );
        here = next;
        // A join or leave that lost every race is Unavailable, and changed nothing.
        let serving = &nodes[here];
        for topic in &topics {
            let settled = until(async || {
                let in_hub = serving
                    .hub
                    .session(&id)
                    .is_some_and(|s| s.topics().iter().any(|m| m.as_str() == topic));
                let routed = serving
                    .engine
                    .members(topic)
                    .await
                    .unwrap()
                    .sessions
                    .contains(&id);
                in_hub == routed
            })
            .await;
            if !settled {
                let in_hub = serving.hub.session(&id).map(|s| s.topics());
                let routed = serving.engine.members(topic).await.unwrap();
                let mut r = raw(&redis).await;
                for tag in common::tags() {
                    let mem: Vec<(String, String)> = redis::cmd("HGETALL")
                        .arg(format!("{tag}mem:{id}"))
                        .query_async(&mut r)
                        .await
                        .unwrap();
                    eprintln!("{tag}mem: {mem:?}");
                }
                let tm: Vec<(String, String)> = redis::cmd("HGETALL")
                    .arg(format!("{}tm:{topic}", common::tag_of(topic.as_bytes())))
                    .query_async(&mut r)
                    .await
                    .unwrap();
                let owner: Option<String> = redis::cmd("GET")
                    .arg(format!("{}owner:{id}", common::tag_of(id.as_bytes())))
                    .query_async(&mut r)
                    .await
                    .unwrap();
                eprintln!("tm {tm:?} owner {owner:?} serving {here}");
                panic!(
                    "round {round} ({joined:?} {left:?}): {topic}: hub {in_hub:?}, Redis {routed:?}, \
                     home {}",
                    common::tag_of(id.as_bytes())
                );
            }
        }
    }
    // A publish to each topic: once to the tab if it is a member there, else not at all.
    let serving = &nodes[here];
    let mut want = Vec::new();
    for topic in &topics {
        let member_now = serving
            .hub
            .session(&id)
            .is_some_and(|s| s.topics().iter().any(|m| m.as_str() == topic));
        let text = format!("to {topic}");
        let count = nodes[2].engine.publish(topic, frame(&text)).await.unwrap();
        if member_now {
            assert!(count >= 1, "{topic}");
            want.push(text);
        }
    }
    let before = t.events.len();
    assert!(t.wait_for(before + want.len()).await, "{:?}", t.data());
    tokio::time::sleep(Duration::from_millis(300)).await;
    t.read();
    let mut got: Vec<String> = t.data()[before..].iter().map(|s| (*s).to_owned()).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
}

/// A node found swept as dead records its sessions again from its hub's view; a leave made
/// on another node that its hub has not heard of yet is not undone by it.
async fn recording_a_session_again_does_not_undo_a_leave_its_hub_has_not_heard_of() {
    let redis = RedisServer::start().unwrap();
    let (a, b) = (node(&redis, "a").await, node(&redis, "b").await);
    let mut t = tab("/events?topic=red", None);
    t.connect(&a.hub, &a.engine).await.unwrap();
    assert!(member(&a, &t, "red").await);
    let in_red = async || {
        b.engine
            .members("red")
            .await
            .unwrap()
            .sessions
            .contains(&t.id)
    };
    assert!(until(in_red).await);
    let mut conn = raw(&redis).await;
    // Without its owner mark, a leave made on B is not told to A: A's hub still has it.
    let owner = format!("{}owner:{}", common::tag_of(t.id.as_bytes()), t.id);
    let _: i64 = redis::cmd("DEL")
        .arg(&owner)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(b.engine.leave(&t.id, "red").await, Ok(true));
    assert!(member(&a, &t, "red").await);
    // A found swept: its next heartbeat marks its sessions again and records them again.
    let nodes = format!("{}nodes", common::tag(0));
    let _: i64 = redis::cmd("ZREM")
        .arg(&nodes)
        .arg("a")
        .query_async(&mut conn)
        .await
        .unwrap();
    let marked = async || {
        let n: i64 = redis::cmd("EXISTS")
            .arg(&owner)
            .query_async(&mut conn.clone())
            .await
            .unwrap();
        n == 1
    };
    assert!(until(marked).await);
    // Two heartbeats more.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!in_red().await, "recorded again in red");
}
