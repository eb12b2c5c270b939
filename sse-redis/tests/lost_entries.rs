//! Redis losing entries a node had read: what a replica promoted before it had the last
//! writes holds (Redis replicates asynchronously), made by hand on one redis-server. The
//! numbers of the lost entries are given again to other events; a node must not pass over
//! them in silence, nor replay the wrong ones: a new epoch starts, the nodes end their
//! streams, and the tab comes back to a gap it can report.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Node, RedisServer, Tab, frame, raw, start_node, until};
use sse_proto::{Continuity, GapReason, Hub, ResumeConfig};

async fn node(redis: &RedisServer, name: &str) -> Node {
    let builder = Hub::builder()
        .keep_alive(None)
        .resume(ResumeConfig::new(Duration::from_secs(30)));
    start_node(redis, name, |_| {}, builder).await
}

/// Removes the newest `n` entries of node `a`'s stream and of the tab's log, and sets the
/// sequence back by `n`: Redis as a replica that had not received the last `n` sends.
async fn lose_last(redis: &RedisServer, tab: &Tab, n: u64) {
    let mut r = raw(redis).await;
    let seq: u64 = redis::cmd("GET")
        .arg("{sse:}seq")
        .query_async(&mut r)
        .await
        .unwrap();
    for stream in ["{sse:}node:a".to_owned(), format!("{{sse:}}log:{}", tab.id)] {
        for k in 0..n {
            let () = redis::cmd("XDEL")
                .arg(&stream)
                .arg(format!("{}-0", seq - k))
                .query_async(&mut r)
                .await
                .unwrap();
        }
        // The stream as the replica has it: its last id before them, nothing deleted.
        let () = redis::cmd("XSETID")
            .arg(&stream)
            .arg(format!("{}-0", seq - n))
            .arg("MAXDELETEDID")
            .arg("0-0")
            .query_async(&mut r)
            .await
            .unwrap();
    }
    let () = redis::cmd("SET")
        .arg("{sse:}seq")
        .arg(seq - n)
        .query_async(&mut r)
        .await
        .unwrap();
}

/// Node a's tab has read five sends from b; Redis then loses the last two.
async fn setup(redis: &RedisServer) -> (Node, Node, Tab, u64) {
    let (a, b) = (node(redis, "a").await, node(redis, "b").await);
    let mut tab = Tab::new();
    tab.connect(&a.hub, &a.engine).await.unwrap();
    assert!(until(async || b.engine.sessions().await.unwrap().contains(&tab.id)).await);
    for i in 1..=5 {
        b.engine
            .send_to(&tab.id, frame(&i.to_string()))
            .await
            .unwrap();
    }
    assert!(tab.wait_for(5).await);
    let epoch = a.engine.epoch();
    lose_last(redis, &tab, 2).await;
    (a, b, tab, epoch)
}

/// After the new epoch: a's stream ended, and the tab's reconnect is a gap with its id.
async fn comes_back_to_a_gap(a: &Node, b: &Node, tab: &mut Tab, epoch: u64) {
    assert!(
        until(async || a.engine.epoch() != epoch).await,
        "no new epoch"
    );
    assert!(until(async || b.engine.epoch() == a.engine.epoch()).await);
    assert!(
        until(async || {
            tab.read();
            a.hub.session(&tab.id).is_none_or(|s| !s.is_attached())
        })
        .await,
        "the streams end"
    );
    let id = tab.id.clone();
    tab.drop_connection();
    tab.connect(&a.hub, &a.engine).await.unwrap();
    assert_eq!(tab.id, id);
    assert_eq!(
        tab.continuity,
        Some(Continuity::Gap(GapReason::UnknownEpoch))
    );
    // And it goes on in the new epoch.
    b.engine.send_to(&tab.id, frame("after")).await.unwrap();
    assert!(
        until(async || {
            tab.read();
            tab.data().last() == Some(&"after")
        })
        .await
    );
}

/// The sequence is below what node a read when it checks.
#[tokio::test]
async fn a_sequence_below_what_a_node_read_starts_a_new_epoch() {
    let redis = RedisServer::start().unwrap();
    let (a, b, mut tab, epoch) = setup(&redis).await;
    comes_back_to_a_gap(&a, &b, &mut tab, epoch).await;
}

/// Sends given the lost numbers bring the sequence back to what node a read before it
/// checks: the entry it read last is another now.
#[tokio::test]
async fn an_entry_a_node_read_given_to_another_event_starts_a_new_epoch() {
    let redis = RedisServer::start().unwrap();
    let (a, b, mut tab, epoch) = setup(&redis).await;
    for text in ["6", "7"] {
        b.engine.send_to(&tab.id, frame(text)).await.unwrap();
    }
    comes_back_to_a_gap(&a, &b, &mut tab, epoch).await;
}
