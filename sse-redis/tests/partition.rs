//! One node cut off from Redis while the other still reaches it (a TCP relay between the
//! node and Redis that the test cuts or silences): the node goes on serving its own tabs,
//! the other node's sends to them wait in Redis, and once the link heals every one arrives,
//! once and in order; the tab then resumes on the other node exactly.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::proxy::{Link, Proxy};
use common::{Node, Redis, RedisServer, Tab, frame, start_node, until};
use sse_proto::{Continuity, Event, Hub, ResumeConfig};

async fn node(redis: &impl Redis, name: &str) -> Node {
    let builder = Hub::builder()
        .keep_alive(None)
        .resume(ResumeConfig::new(Duration::from_secs(30)));
    start_node(redis, name, |_| {}, builder).await
}

/// Cuts A off in the way `partition` does, then heals the link with `heal`.
async fn a_node_cut_off_catches_up(partition: impl Fn(&Proxy), heal: impl Fn(&Proxy)) {
    let redis = RedisServer::start().unwrap();
    let proxy = Proxy::start(redis.port).await;
    let (a, b) = (node(&proxy, "a").await, node(&redis, "b").await);
    let mut tab = Tab::new();
    let mut other = Tab::new();
    tab.connect(&a.hub, &a.engine).await.unwrap();
    other.connect(&b.hub, &b.engine).await.unwrap();
    assert!(until(async || b.engine.sessions().await.unwrap().len() == 2).await);
    b.engine.send_to(&tab.id, frame("before")).await.unwrap();
    assert!(tab.wait_for(1).await);

    partition(&proxy);
    assert!(until(async || !a.engine.is_up()).await);
    // B and Redis work: what B sends to A's tab is acknowledged and waits in Redis; B's own
    // tab gets the broadcast.
    for i in 0..5 {
        b.engine
            .send_to(&tab.id, frame(&format!("during {i}")))
            .await
            .unwrap();
    }
    assert_eq!(b.engine.broadcast(frame("to all")).await, Ok(2));
    assert!(other.wait_for(1).await);
    // A serves its own tab on its own.
    a.hub.session(&tab.id).unwrap().send("from a").unwrap();
    assert!(tab.wait_for(2).await);
    assert_eq!(tab.data(), ["before", "from a"]);

    heal(&proxy);
    let want = [
        "during 0", "during 1", "during 2", "during 3", "during 4", "to all",
    ];
    assert!(
        until(async || {
            tab.read();
            tab.events.len() >= 2 + want.len()
        })
        .await,
        "after the heal: {:?}",
        tab.data()
    );
    assert!(until(async || a.engine.is_up()).await);
    // A's own send reached Redis too, without being delivered again.
    a.hub.broadcast(&Event::new().data("after"));
    assert!(tab.wait_for(2 + want.len() + 1).await);
    assert_eq!(tab.data()[2..2 + want.len()], want);
    assert_eq!(tab.data().last(), Some(&"after"));
    assert_eq!(tab.events.len(), 2 + want.len() + 1, "{:?}", tab.data());

    // The tab resumes on B from its last position, missing nothing.
    tab.drop_connection();
    b.engine
        .send_to(&tab.id, frame("while away"))
        .await
        .unwrap();
    tab.connect(&b.hub, &b.engine).await.unwrap();
    assert!(
        matches!(tab.continuity, Some(Continuity::Resumed { replayed: 1 })),
        "{:?}",
        tab.continuity
    );
}

#[tokio::test]
async fn a_node_whose_link_to_redis_is_reset_catches_up_when_it_heals() {
    a_node_cut_off_catches_up(|p| p.set(Link::Cut), |p| p.set(Link::Open)).await;
}

#[tokio::test]
async fn a_node_whose_link_to_redis_goes_silent_catches_up_when_it_heals() {
    a_node_cut_off_catches_up(|p| p.set(Link::Silent), |p| p.set(Link::Open)).await;
}

/// The worst case: the node's connections stay open but silent for good (the far end forgot
/// them, its close lost), and only new connections get through. Every command, and the
/// blocking reader, must give up on its connection by its timeout and connect again.
#[tokio::test]
async fn a_node_whose_connections_to_redis_die_silently_reconnects_and_catches_up() {
    a_node_cut_off_catches_up(
        |p| p.set(Link::Silent),
        |p| {
            p.abandon();
            p.set(Link::Open);
        },
    )
    .await;
}
