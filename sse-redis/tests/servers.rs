//! Shards over independent redis-servers (`redis+shards://`, client-side sharding: shard `k`
//! on the `k mod n`th server), and one node cut off from one of them by a TCP relay while
//! the rest of the deployment works: what the other servers carry reaches its tab at once,
//! what the cut-off server was acknowledged reaches it once the link heals, once and in
//! order, and the tab then resumes on the other node exactly.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::proxy::{Link, Proxy};
use common::{Node, Redis, RedisServer, Tab, arrived_per_log, frame, member, start_node, until};
use sse_proto::{Hub, Placement, ResumeConfig};

const SHARDS: usize = 6;

/// A deployment's URL.
struct Url(String);

impl Redis for Url {
    fn url(&self) -> String {
        self.0.clone()
    }
}

async fn node(url: &str, name: &str) -> Node {
    let builder = Hub::builder()
        .keep_alive(None)
        .resume(ResumeConfig::new(Duration::from_secs(30)))
        .topic_rule(|_, _| true);
    start_node(&Url(url.to_owned()), name, |_| {}, builder).await
}

/// The server of a topic's shard.
fn server_of(topic: &str, servers: usize) -> usize {
    usize::from(Placement::new(SHARDS).unwrap().of_name(topic.as_bytes())) % servers
}

/// A topic on the third of three servers (`on_third`), or one on another.
fn room(on_third: bool) -> String {
    (0..)
        .map(|i| format!("room{i}"))
        .find(|t| (server_of(t, 3) == 2) == on_third)
        .unwrap()
}

#[tokio::test]
async fn a_node_cut_off_from_one_server_keeps_the_others_and_catches_up() {
    common::set_shards(SHARDS);
    let servers = [
        RedisServer::start().unwrap(),
        RedisServer::start().unwrap(),
        RedisServer::start().unwrap(),
    ];
    let proxy = Proxy::start(servers[2].port).await;
    let list = |last: u16| {
        format!(
            "redis+shards://127.0.0.1:{},127.0.0.1:{},127.0.0.1:{last}",
            servers[0].port, servers[1].port
        )
    };
    let a = node(&list(proxy.port), "a").await;
    let b = node(&list(servers[2].port), "b").await;
    // A topic on the server A is about to lose, and one on another.
    let (cut, open) = (room(true), room(false));
    let mut t = Tab {
        target: format!("/events?topic={cut}&topic={open}"),
        ..Tab::new()
    };
    t.connect(&a.hub, &a.engine).await.unwrap();
    assert!(member(&a, &t, &cut).await && member(&a, &t, &open).await);
    assert_eq!(b.engine.publish(&cut, frame("cut before")).await, Ok(1));
    assert!(t.wait_for(1).await);

    proxy.set(Link::Cut);
    let (mut on_cut, mut on_open) = (vec!["cut before".to_owned()], Vec::new());
    for i in 0..10 {
        let text = format!("open {i}");
        assert_eq!(b.engine.publish(&open, frame(&text)).await, Ok(1));
        on_open.push(text);
        // Redis takes these from B: A gets them once it reaches that server again.
        let text = format!("cut {i}");
        assert_eq!(b.engine.publish(&cut, frame(&text)).await, Ok(1));
        on_cut.push(text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The other servers' topic reached the tab while A was cut off; the cut one's did not.
    let last_open = on_open.last().unwrap().clone();
    assert!(
        until(async || {
            t.read();
            t.data().contains(&last_open.as_str())
        })
        .await,
        "{:?}",
        t.data()
    );
    assert!(
        t.data()
            .iter()
            .all(|d| !on_cut[1..].contains(&d.to_string())),
        "{:?}",
        t.data()
    );

    proxy.set(Link::Open);
    arrived_per_log(&mut t, &[&on_cut, &on_open]).await;

    // The tab resumes on B, exactly, on every shard it reads.
    t.drop_connection();
    b.engine.publish(&cut, frame("cut away")).await.unwrap();
    b.engine.publish(&open, frame("open away")).await.unwrap();
    let before = t.events.len();
    t.target = "/events".to_owned();
    t.connect(&b.hub, &b.engine).await.unwrap();
    assert!(t.gaps.is_empty(), "{:?}", t.gaps);
    assert!(t.wait_for(before + 2).await, "{:?}", t.data());
    let mut missed: Vec<&str> = t.data()[before..].to_vec();
    missed.sort_unstable();
    assert_eq!(missed, ["cut away", "open away"]);
}

/// One of three servers restarts empty, and the shards on it start a new run: a tab in a
/// topic there and in one on another server comes back to a gap for the first topic only
/// (what it published before the tab's node recorded the membership again reached no tab
/// live). The other topic replays exactly, and the first goes on: the tab is still its
/// member.
#[tokio::test]
async fn a_server_restarted_empty_is_a_gap_for_the_topics_on_it_only() {
    common::set_shards(SHARDS);
    let mut servers = [
        RedisServer::start().unwrap(),
        RedisServer::start().unwrap(),
        RedisServer::start().unwrap(),
    ];
    let url = format!(
        "redis+shards://127.0.0.1:{},127.0.0.1:{},127.0.0.1:{}",
        servers[0].port, servers[1].port, servers[2].port
    );
    let (a, b) = (node(&url, "a").await, node(&url, "b").await);
    let (lost, kept) = (room(true), room(false));
    // A tab whose own log is on a server that keeps its contents.
    let mut t = loop {
        let mut t = Tab {
            target: format!("/events?topic={lost}&topic={kept}"),
            ..Tab::new()
        };
        t.connect(&a.hub, &a.engine).await.unwrap();
        if server_of(&t.id, 3) != 2 {
            break t;
        }
    };
    assert!(member(&a, &t, &lost).await && member(&a, &t, &kept).await);
    // (The tabs passed over are members too.)
    b.engine.publish(&lost, frame("lost before")).await.unwrap();
    b.engine.publish(&kept, frame("kept before")).await.unwrap();
    assert!(t.wait_for(2).await);

    let port = servers[2].port;
    servers[2].stop();
    servers[2] = RedisServer::start_on(port).unwrap();
    // Logged on the restarted server before A recorded the tab's membership there again,
    // so it reaches no tab live; and once A has (A ended the stream first), another.
    assert!(until(async || b.engine.publish(&lost, frame("lost during")).await.is_ok()).await);
    assert!(
        until(async || {
            let members = b.engine.members(&lost).await;
            members.is_ok_and(|m| m.sessions.contains(&t.id))
        })
        .await
    );
    b.engine.publish(&lost, frame("lost live")).await.unwrap();
    // Had the stream gone on, "lost live" would have moved the tab's position past
    // "lost during", and its reconnect would have skipped that without a word.
    tokio::time::sleep(Duration::from_millis(300)).await;
    t.read();
    assert_eq!(t.data(), ["lost before", "kept before"]);
    t.drop_connection();
    b.engine.publish(&kept, frame("kept away")).await.unwrap();
    let before = t.events.len();
    t.target = "/events".to_owned();
    t.connect(&b.hub, &b.engine).await.unwrap();
    assert!(
        matches!(t.continuity, Some(sse_proto::Continuity::Resumed { .. })),
        "{:?}",
        t.continuity
    );
    assert_eq!(t.gaps, std::slice::from_ref(&lost));
    assert!(t.wait_for(before + 1).await, "{:?}", t.data());
    assert_eq!(t.data()[before..], ["kept away"]);
    // Still a member of both.
    b.engine.publish(&lost, frame("lost after")).await.unwrap();
    b.engine.publish(&kept, frame("kept after")).await.unwrap();
    assert!(t.wait_for(before + 3).await, "{:?}", t.data());
    assert_eq!(t.data()[before + 1..], ["lost after", "kept after"]);
}
