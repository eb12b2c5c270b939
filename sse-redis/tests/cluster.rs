//! Two nodes (hubs with engines) on one real redis-server: reach, broadcast, close, resume and
//! list across nodes; Redis restarted empty; a node killed.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{Node, RedisServer, Tab, frame, start_node, until};
use sse_proto::{Continuity, Decision, Event, GapReason, Hub, RelayPort, ResumeConfig, Store};
use sse_redis::{RedisConfig, RedisEngine};

const GRACE: Duration = Duration::from_secs(30);

async fn node(redis: &RedisServer, name: &str, resume: bool) -> Node {
    let mut builder = Hub::builder().keep_alive(None);
    if resume {
        builder = builder.resume(ResumeConfig::new(GRACE));
    }
    start_node(redis, name, |_| {}, builder).await
}

/// How many events the store has numbered (its sequence).
async fn numbered(redis: &RedisServer) -> u64 {
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let mut numbered = 0;
    for tag in common::tags() {
        let seq: Option<u64> = redis::cmd("GET")
            .arg(format!("{tag}seq"))
            .query_async(&mut conn)
            .await
            .unwrap();
        numbered += seq.unwrap_or(0);
    }
    numbered
}

async fn a_tab_on_one_node_is_reached_broadcast_to_and_closed_from_the_other() {
    let redis = RedisServer::start().unwrap();
    let (a, b) = (node(&redis, "a", true).await, node(&redis, "b", true).await);
    let mut tab = Tab::new();
    tab.connect(&a.hub, &a.engine).await.unwrap();
    assert_eq!(tab.continuity, Some(Continuity::New));

    // B lists it once A has told Redis.
    assert!(until(async || b.engine.sessions().await.unwrap() == [tab.id.clone()]).await);
    b.engine.send_to(&tab.id, frame("from b")).await.unwrap();
    assert_eq!(b.engine.broadcast(frame("to all")).await.unwrap(), 1);
    assert!(tab.wait_for(2).await, "{:?}", tab.events);
    assert_eq!(tab.data(), ["from b", "to all"]);
    assert!(
        tab.events
            .iter()
            .all(|(_, _, id)| id.starts_with(&format!("{}~", tab.id)))
    );
    assert_eq!(
        b.engine.send_to("nobody", frame("x")).await,
        Err(sse_proto::Error::NotConnected)
    );

    // Closed on B: A's stream ends, and B answers the reconnect with 204.
    assert!(b.engine.close(&tab.id).await.unwrap());
    let session = a.hub.session(&tab.id).unwrap();
    assert!(until(async || session.is_closed()).await);
    tab.read();
    tab.drop_connection();
    assert!(matches!(
        tab.connect(&b.hub, &b.engine).await,
        Err(Decision::NoContent { .. })
    ));
    assert!(until(async || b.engine.sessions().await.unwrap().is_empty()).await);
}

async fn a_tab_dropped_from_one_node_resumes_on_the_other_with_what_it_missed() {
    let redis = RedisServer::start().unwrap();
    let (a, b) = (node(&redis, "a", true).await, node(&redis, "b", true).await);
    let mut tab = Tab::new();
    tab.connect(&a.hub, &a.engine).await.unwrap();
    a.hub.session(&tab.id).unwrap().send("seen").unwrap();
    assert!(tab.wait_for(1).await);
    tab.drop_connection();
    // While it is away: sends from both nodes, a broadcast, and the app's sync sends.
    assert!(until(async || b.engine.sessions().await.unwrap().is_empty()).await);
    b.engine.send_to(&tab.id, frame("1")).await.unwrap();
    a.engine.broadcast(frame("2")).await.unwrap();
    a.hub.send_to(&tab.id, &Event::new().data("3")).unwrap();
    // The app's send went to A's relay: once Redis has numbered it (the store's fourth event,
    // after "seen", "1" and "2"), every node can replay it.
    assert!(until(async || numbered(&redis).await == 4).await);

    tab.connect(&b.hub, &b.engine).await.unwrap();
    assert_eq!(tab.continuity, Some(Continuity::Resumed { replayed: 3 }));
    if common::shards() == 1 {
        assert_eq!(tab.data(), ["seen", "1", "2", "3"]);
    } else {
        // The session's log in its order, the broadcast (on shard 0) anywhere.
        let own: Vec<&str> = tab.data().into_iter().filter(|d| *d != "2").collect();
        assert_eq!(own, ["seen", "1", "3"]);
        assert!(tab.data().contains(&"2"));
    }
    // And it is live on B now: a send from A reaches it there.
    a.engine.send_to(&tab.id, frame("4")).await.unwrap();
    assert!(tab.wait_for(5).await);
    assert_eq!(tab.data()[4], "4");
    assert!(until(async || a.engine.sessions().await.unwrap() == [tab.id.clone()]).await);
}

/// A node tells Redis of a new session in its next presence round, a moment after the
/// accept; a tab that comes back before then finds no owner mark, and the node must not take
/// its own session for one that ended. Here the presence task never runs, so the mark never
/// lands: the tab resumes with nothing to replay, not with a gap.
async fn a_tab_back_before_its_new_session_reached_redis_resumes() {
    let redis = RedisServer::start().unwrap();
    let mut config = RedisConfig::new(redis.url());
    config.node = "a".to_owned();
    config.shards = common::shards();
    let engine = RedisEngine::connect(config).await.unwrap();
    let builder = Hub::builder()
        .keep_alive(None)
        .resume(ResumeConfig::new(GRACE))
        .write_window(sse_proto::WriteWindow::Off);
    let hub = engine.prepare(builder).build(Instant::now);
    let mut tab = Tab::new();
    tab.connect(&hub, &engine).await.unwrap();
    assert_eq!(tab.continuity, Some(Continuity::New));
    tab.drop_connection();
    tab.connect(&hub, &engine).await.unwrap();
    assert_eq!(tab.continuity, Some(Continuity::Resumed { replayed: 0 }));
    // A session whose owner mark went (ended, or expired with its node) is still a gap: see
    // `orphans.rs`.
}

async fn redis_restarted_empty_is_a_gap_and_nothing_panics() {
    let mut redis = RedisServer::start().unwrap();
    let port = redis.port;
    let a = node(&redis, "a", true).await;
    let mut tab = Tab::new();
    tab.connect(&a.hub, &a.engine).await.unwrap();
    a.engine.broadcast(frame("before")).await.unwrap();
    assert!(tab.wait_for(1).await);
    let old_epoch = a.engine.epoch();

    redis.stop();
    // Redis away: the node still serves its own tab, without a position.
    assert_eq!(a.engine.send_to(&tab.id, frame("during")).await, Ok(()));
    assert!(tab.wait_for(2).await);
    let _redis = RedisServer::start_on(port).unwrap();
    assert!(
        until(async || a.engine.epoch() != old_epoch).await,
        "a new epoch"
    );
    tab.drop_connection();
    tab.connect(&a.hub, &a.engine).await.unwrap();
    assert!(
        matches!(
            tab.continuity,
            Some(Continuity::Gap(
                GapReason::UnknownEpoch | GapReason::Expired
            ))
        ),
        "{:?}",
        tab.continuity
    );
    // Going on in the new epoch.
    a.engine.broadcast(frame("after")).await.unwrap();
    assert!(tab.wait_for(3).await);
    assert_eq!(tab.data(), ["before", "during", "after"]);
}

async fn after_an_empty_restart_a_send_before_the_reader_is_back_arrives() {
    let mut redis = RedisServer::start().unwrap();
    let port = redis.port;
    let (a, b) = (node(&redis, "a", true).await, node(&redis, "b", true).await);
    let mut tab = Tab::new();
    tab.connect(&a.hub, &a.engine).await.unwrap();
    // Once A has said it serves the tab, B can reach it.
    assert!(until(async || b.engine.sessions().await.unwrap().contains(&tab.id)).await);
    // The tab has events numbered up to 3 in the old store.
    for text in ["1", "2", "3"] {
        b.engine.send_to(&tab.id, frame(text)).await.unwrap();
    }
    assert!(tab.wait_for(3).await);
    redis.stop();
    // Away long enough for A's reader to back off past a second.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let redis = RedisServer::start_on(port).unwrap();
    // As A's heartbeat will, mark A as the tab's node again; and at once, before A's reader
    // is back, send to the tab from B: acknowledged, so it must arrive (numbered 1 in the
    // new store, below what the tab has of the old one).
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let owner = format!("{}owner:{}", common::tag_of(tab.id.as_bytes()), tab.id);
    let () = redis::cmd("SET")
        .arg(&owner)
        .arg("a")
        .arg("PX")
        .arg(60_000)
        .query_async(&mut conn)
        .await
        .unwrap();
    let sent = until(async || {
        let frame = frame("sent at once");
        b.engine.send_to(&tab.id, frame).await.is_ok()
    });
    assert!(sent.await);
    assert!(tab.wait_for(4).await, "{:?}", tab.events);
    assert_eq!(tab.data(), ["1", "2", "3", "sent at once"]);
}

async fn a_killed_node_leaves_no_live_session_and_its_tab_resumes_elsewhere() {
    let redis = RedisServer::start().unwrap();
    let b = node(&redis, "b", true).await;
    let mut tab = Tab::new();
    {
        let a = node(&redis, "a", true).await;
        tab.connect(&a.hub, &a.engine).await.unwrap();
        a.hub.session(&tab.id).unwrap().send("seen").unwrap();
        assert!(tab.wait_for(1).await);
        assert!(until(async || b.engine.sessions().await.unwrap().len() == 1).await);
        // Killed: its task stops, nothing is told to Redis.
        a.task.abort();
        tab.drop_connection();
    }
    b.engine
        .send_to(&tab.id, frame("while a is dead"))
        .await
        .unwrap();
    // Its mark runs out after three heartbeats.
    assert!(until(async || b.engine.sessions().await.unwrap().is_empty()).await);
    tab.connect(&b.hub, &b.engine).await.unwrap();
    assert_eq!(tab.continuity, Some(Continuity::Resumed { replayed: 1 }));
    assert_eq!(tab.data(), ["seen", "while a is dead"]);
}

async fn redis_away_then_back_loses_nothing_acknowledged() {
    let redis = RedisServer::start().unwrap();
    let (a, b) = (node(&redis, "a", true).await, node(&redis, "b", true).await);
    let mut tab = Tab::new();
    tab.connect(&a.hub, &a.engine).await.unwrap();
    assert!(until(async || b.engine.sessions().await.unwrap().len() == 1).await);

    redis.pause().unwrap();
    // A's own tab still gets what A sends, at once, without a position of its own.
    let before = tab.decoder.last_event_id().to_owned();
    let session = a.hub.session(&tab.id).unwrap();
    session.send("local, while redis is away").unwrap();
    assert!(tab.wait_for(1).await);
    assert_eq!(tab.events[0].2, before, "the position did not move");
    // What B sends to it waits for Redis (the sync send), or fails clearly (the async one).
    b.hub
        .send_to(&tab.id, &Event::new().data("from b, queued"))
        .unwrap();
    assert_eq!(
        b.engine.send_to(&tab.id, frame("from b, refused")).await,
        Err(sse_proto::Error::Unavailable)
    );
    redis.resume().unwrap();

    // Back: what was queued arrives, in order, with its position, within seconds.
    assert!(tab.wait_for(2).await, "{:?}", tab.events);
    assert_eq!(tab.data(), ["local, while redis is away", "from b, queued"]);
    assert!(tab.events[1].2.starts_with(&format!("{}~", tab.id)));
    b.engine
        .send_to(&tab.id, frame("and live again"))
        .await
        .unwrap();
    assert!(tab.wait_for(3).await);
    // Up to date after all that, it resumes on the other node with nothing to replay.
    tab.drop_connection();
    let mut stale = Tab::new();
    stale.decoder = std::mem::take(&mut tab.decoder);
    stale.connect(&b.hub, &b.engine).await.unwrap();
    assert_eq!(stale.continuity, Some(Continuity::Resumed { replayed: 0 }));
}

async fn what_a_redis_frozen_briefly_applies_late_is_delivered_once() {
    // Each first attempt times out, and Redis applies it when it wakes.
    delivered_once_through_a_freeze(Duration::from_millis(100)).await;
}

async fn what_a_redis_frozen_long_applies_is_delivered_once() {
    // The relays try again and again; whichever attempt Redis applies, it is numbered once.
    delivered_once_through_a_freeze(Duration::from_millis(1500)).await;
}

async fn delivered_once_through_a_freeze(freeze: Duration) {
    let redis = RedisServer::start().unwrap();
    let (a, b) = (node(&redis, "a", true).await, node(&redis, "b", true).await);
    let (mut on_a, mut on_b) = (Tab::new(), Tab::new());
    on_a.connect(&a.hub, &a.engine).await.unwrap();
    on_b.connect(&b.hub, &b.engine).await.unwrap();
    assert!(until(async || b.engine.sessions().await.unwrap().len() == 2).await);
    // Redis knows both scripts (a late EVALSHA of an unknown one would be refused).
    b.engine.send_to(&on_a.id, frame("warm")).await.unwrap();
    a.engine.broadcast(frame("warm all")).await.unwrap();
    assert!(on_a.wait_for(2).await && on_b.wait_for(1).await);
    on_a.events.clear();
    on_b.events.clear();

    // Frozen, not gone: every command times out, and is applied once Redis wakes.
    redis.pause().unwrap();
    // A's own tab gets A's send and A's broadcast at once, without a position.
    a.hub.session(&on_a.id).unwrap().send("local").unwrap();
    a.hub.broadcast(&Event::new().data("to all"));
    assert!(on_a.wait_for(2).await, "{:?}", on_a.events);
    // B's send to A's tab is tried again and again while Redis sleeps, as is A's
    // broadcast (for B's tab).
    b.hub
        .send_to(&on_a.id, &Event::new().data("from b"))
        .unwrap();
    tokio::time::sleep(freeze).await;
    redis.resume().unwrap();

    // Behind each of them in its node's relay, one more: by the time they arrive, whatever
    // was numbered before them (every late attempt, every retry) has been delivered.
    b.hub.send_to(&on_a.id, &Event::new().data("end")).unwrap();
    a.hub.broadcast(&Event::new().data("end all"));
    assert!(on_a.wait_for(5).await, "{:?}", on_a.events);
    assert!(on_b.wait_for(2).await, "{:?}", on_b.events);
    // The two relays are not in step: what each sends comes in its own order.
    let mut later = on_a.data()[2..].to_vec();
    later.sort_unstable();
    assert_eq!(on_a.data()[..2], ["local", "to all"]);
    assert_eq!(later, ["end", "end all", "from b"]);
    assert_eq!(on_b.data(), ["to all", "end all"]);
    // Nothing else comes (a duplicate would have been numbered before the last of these).
    let _ = b.engine.send_to(&on_a.id, frame("last")).await;
    assert!(on_a.wait_for(6).await);
    assert_eq!(on_a.events.len(), 6, "{:?}", on_a.events);

    // A's tab is up to date: its position moved past what it had got without one.
    on_a.drop_connection();
    let mut back = Tab::new();
    back.decoder = std::mem::take(&mut on_a.decoder);
    back.connect(&b.hub, &b.engine).await.unwrap();
    assert_eq!(back.continuity, Some(Continuity::Resumed { replayed: 0 }));
}

async fn a_backlog_longer_than_one_read_is_delivered_in_order() {
    // B's reader starts behind: 1 500 broadcasts, then 1 500 sends to B's tab, all numbered
    // before it reads. One read takes at most 1 000 entries of each stream: the first read
    // holds broadcasts 1–1 000 and sends numbered after every broadcast; the sends must wait
    // for the last 500 broadcasts.
    let redis = RedisServer::start().unwrap();
    let a = node(&redis, "a", true).await;
    let mut config = RedisConfig::new(redis.url());
    config.node = "b".to_owned();
    let engine = RedisEngine::connect(config).await.unwrap();
    // No write window: the tab drains without the hub's timers.
    let builder = Hub::builder()
        .write_window(sse_proto::WriteWindow::Off)
        .keep_alive(None)
        .budget(16 << 20)
        .resume(ResumeConfig::new(GRACE));
    let hub = engine.prepare(builder).build(Instant::now);
    let mut tab = Tab::new();
    tab.target = "/events?id=tab-on-b".to_owned();
    tab.connect(&hub, &engine).await.unwrap();
    for i in 0..1500 {
        a.engine
            .broadcast(frame(&format!("b{i:04}")))
            .await
            .unwrap();
    }
    for i in 0..1500 {
        a.engine
            .send_to("tab-on-b", frame(&format!("s{i:04}")))
            .await
            .unwrap();
    }
    let task = tokio::spawn(engine.run(RelayPort::claim(&hub).unwrap()));
    assert!(tab.wait_for(3000).await, "{}", tab.events.len());
    let data = tab.data();
    let mut sorted = data.clone();
    sorted.sort_unstable();
    assert_eq!(data, sorted, "in the order they were numbered");
    task.abort();
}

/// A position past anything the store has issued (forged, or from a store that lost what it
/// had issued) is a gap, on either node: nothing after it can be told from what the tab saw,
/// so an event sent since is not silently skipped.
async fn a_position_the_store_never_issued_is_a_gap() {
    let redis = RedisServer::start().unwrap();
    let (a, b) = (node(&redis, "a", true).await, node(&redis, "b", true).await);
    let mut tab = Tab::new();
    tab.connect(&a.hub, &a.engine).await.unwrap();
    a.engine.send_to(&tab.id, frame("seen")).await.unwrap();
    assert!(tab.wait_for(1).await);
    let last = tab.events[0].2.clone();
    let (id, position) = last.rsplit_once('~').unwrap();
    let (epoch, seq) = position.split_once('.').unwrap();
    let seq = u64::from_str_radix(seq, 36).unwrap();
    tab.drop_connection();
    a.engine.send_to(&tab.id, frame("missed")).await.unwrap();
    for node in [&a, &b] {
        let mut forged = Tab::new();
        let ahead = sse_proto::Position::new(u64::from_str_radix(epoch, 36).unwrap(), seq + 1000);
        let line = format!("id: {id}~{ahead}\ndata: x\n\n");
        forged.decoder.feed(line.as_bytes()).unwrap();
        while forged.decoder.poll_item().is_some() {}
        forged.connect(&node.hub, &node.engine).await.unwrap();
        assert_eq!(forged.id, id);
        assert_eq!(
            forged.continuity,
            Some(Continuity::Gap(GapReason::InvalidPosition))
        );
        forged.drop_connection();
    }
    // Its real position resumes, with what it missed.
    tab.connect(&b.hub, &b.engine).await.unwrap();
    assert!(matches!(
        tab.continuity,
        Some(Continuity::Resumed { replayed: 1 })
    ));
}

on_shards!(
    a_tab_on_one_node_is_reached_broadcast_to_and_closed_from_the_other,
    a_tab_dropped_from_one_node_resumes_on_the_other_with_what_it_missed,
    a_tab_back_before_its_new_session_reached_redis_resumes,
    redis_restarted_empty_is_a_gap_and_nothing_panics,
    after_an_empty_restart_a_send_before_the_reader_is_back_arrives,
    a_killed_node_leaves_no_live_session_and_its_tab_resumes_elsewhere,
    redis_away_then_back_loses_nothing_acknowledged,
    what_a_redis_frozen_briefly_applies_late_is_delivered_once,
    what_a_redis_frozen_long_applies_is_delivered_once,
);

// One read merging a node's inbox with the broadcasts, and a position spelled for one shard.
#[tokio::test]
async fn a_backlog_longer_than_one_read_is_delivered_in_order_on_one_shard() {
    a_backlog_longer_than_one_read_is_delivered_in_order().await
}

#[tokio::test]
async fn a_position_the_store_never_issued_is_a_gap_on_one_shard() {
    a_position_the_store_never_issued_is_a_gap().await
}

/// Every node of a deployment places logs on as many shards: a node that says another
/// number does not connect while a node is alive, and with none alive it starts a new
/// epoch (the old positions name other shards' events).
#[tokio::test]
async fn a_node_with_another_number_of_shards_is_refused_while_one_is_alive() {
    let redis = RedisServer::start().unwrap();
    let epoch = {
        let a = node(&redis, "a", true).await;
        // Alive once its first heartbeat is in.
        assert!(until(async || a.engine.sessions().await.is_ok_and(|s| s.is_empty())).await);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut config = RedisConfig::new(redis.url());
        config.shards = 4;
        let refused = RedisEngine::connect(config).await.unwrap_err();
        assert!(
            refused.to_string().contains("another number of shards"),
            "{refused}"
        );
        a.engine.epoch()
    };
    // Its entry in `nodes` lapses three heartbeats after it stopped.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut config = RedisConfig::new(redis.url());
    config.shards = 4;
    let engine = RedisEngine::connect(config).await.unwrap();
    assert_ne!(engine.epoch(), epoch);
    // And the old number is now the one refused.
    let _b = start_node(&redis, "b", |c| c.shards = 4, Hub::builder()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused = RedisEngine::connect(RedisConfig::new(redis.url())).await;
    assert!(refused.is_err());
}
