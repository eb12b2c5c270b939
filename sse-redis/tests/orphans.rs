//! What the sessions of a node that died leave in Redis: their memberships and their users'
//! records, counted at the dead node's name. Another node cleans them up once their grace is
//! over (on one Redis and on a Redis Cluster, where every key the clean-up touches must be
//! declared), and a tab that offers such a session's id later starts afresh, without them. A
//! node that was only cut off from Redis for that long registers its tabs' topics and users
//! again when the link heals.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::proxy::{Link, Proxy};
use common::{
    Node, Redis, RedisCluster, RedisServer, Tab, frame, member, raw, start_node, tag_of, until,
};
use redis::AsyncCommands;
use sse_proto::{Continuity, Hub, Principal, ResumeConfig};

/// The grace of a detached session here.
const GRACE: Duration = Duration::from_millis(500);

/// "ann" in the keys of users.
const ANN: &str = "616e6e";

/// A node with heartbeats every `heartbeat`, topics open to every session.
async fn node(redis: &impl Redis, name: &str, heartbeat: Duration) -> Node {
    let builder = Hub::builder()
        .keep_alive(None)
        .resume(ResumeConfig::new(GRACE))
        .topic_rule(|_, _| true);
    start_node(redis, name, |c| c.heartbeat = heartbeat, builder).await
}

/// A tab of user ann in topic `room`.
fn ann() -> Tab {
    Tab {
        target: "/events?topic=room".to_owned(),
        user: Some("ann".to_owned()),
        ..Tab::new()
    }
}

/// What Redis holds of topic `room`, user ann and the sessions `ids`: the members of room,
/// room's count at node `a`, ann's sessions and count at `a`, and which of `ids` still have
/// a mem or an `all` entry.
async fn left_behind(redis: &RedisServer, ids: &[&str]) -> String {
    let mut r = raw(redis).await;
    let (room, ann) = (tag_of(b"room"), tag_of(b"ann"));
    let members: Vec<String> = r.hkeys(format!("{room}tm:room")).await.unwrap();
    let room_at_a: Option<i64> = r.hget(format!("{room}tn:room"), "a").await.unwrap();
    let sessions: Vec<String> = r.hkeys(format!("{ann}us:{ANN}")).await.unwrap();
    let ann_at_a: Option<i64> = r.hget(format!("{ann}un:{ANN}"), "a").await.unwrap();
    let mut kept = Vec::new();
    for id in ids {
        // Its mem on any shard.
        let mut mem = false;
        for tag in common::tags() {
            mem |= r.exists::<_, bool>(format!("{tag}mem:{id}")).await.unwrap();
        }
        let all: Option<f64> = r
            .zscore(format!("{}all", tag_of(id.as_bytes())), id)
            .await
            .unwrap();
        if mem || all.is_some() {
            kept.push(format!("{id} (mem {mem}, all {all:?})"));
        }
    }
    let nothing = members.is_empty()
        && room_at_a.is_none()
        && sessions.is_empty()
        && ann_at_a.is_none()
        && kept.is_empty();
    if nothing {
        String::new()
    } else {
        format!(
            "room's members {members:?}, room at a {room_at_a:?}, ann's sessions {sessions:?}, \
             ann at a {ann_at_a:?}, sessions kept {kept:?}"
        )
    }
}

/// Waits until `node`'s detached session `id` has its owner mark's TTL in Redis (presence
/// recorded the detach).
async fn detach_recorded(redis: &RedisServer, id: &str) -> bool {
    let mut r = raw(redis).await;
    common::until(async || {
        let ttl: i64 = r
            .pttl(format!("{}owner:{id}", tag_of(id.as_bytes())))
            .await
            .unwrap();
        ttl > 0
    })
    .await
}

/// Waits up to 10 s until nothing of the sessions `ids` is left; what is left then.
async fn cleaned_up(redis: &RedisServer, ids: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = left_behind(redis, ids).await;
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn a_dead_nodes_sessions_are_cleaned_up_from_their_topics_and_users_by_another_node() {
    let redis = RedisServer::start().unwrap();
    dead_node_cleaned_up(&redis, &redis).await;
}

#[tokio::test]
async fn a_dead_nodes_sessions_are_cleaned_up_on_a_redis_cluster() {
    let cluster = RedisCluster::start(3, 0).unwrap();
    let master = cluster.master_of("{sse:}").unwrap();
    dead_node_cleaned_up(&cluster, &cluster.nodes[master]).await;
}

/// Node `a` on `redis` serves two tabs of ann in topic room, one attached and one detached,
/// and is killed; node `b` cleans up after both once their grace is over. `data` is the
/// server that holds the deployment's keys.
async fn dead_node_cleaned_up(redis: &impl Redis, data: &RedisServer) {
    let b = node(redis, "b", Duration::from_millis(200)).await;
    let (mut attached, mut detached) = (ann(), ann());
    {
        let a = node(redis, "a", Duration::from_millis(200)).await;
        attached.connect(&a.hub, &a.engine).await.unwrap();
        detached.connect(&a.hub, &a.engine).await.unwrap();
        assert!(member(&a, &attached, "room").await && member(&a, &detached, "room").await);
        detached.drop_connection();
        assert!(detach_recorded(data, &detached.id).await);
        let ids = [attached.id.as_str(), detached.id.as_str()];
        let recorded = common::until(async || {
            let mut r = raw(data).await;
            let (room, ann) = (tag_of(b"room"), tag_of(b"ann"));
            let room_at_a: Option<i64> = r.hget(format!("{room}tn:room"), "a").await.unwrap();
            let ann_at_a: Option<i64> = r.hget(format!("{ann}un:{ANN}"), "a").await.unwrap();
            room_at_a == Some(2) && ann_at_a == Some(2)
        })
        .await;
        assert!(recorded, "{}", left_behind(data, &ids).await);
        // Killed: its task stops, nothing is told to Redis.
        a.task.abort();
    }
    // b finds a dead and sweeps it (the attached tab gets a detached one's grace); once the
    // grace is over for both, b cleans up after them.
    let ids = [attached.id.as_str(), detached.id.as_str()];
    let left = cleaned_up(data, &ids).await;
    assert!(left.is_empty(), "left behind: {left}");
    assert!(b.engine.members("room").await.unwrap().sessions.is_empty());
}

async fn a_tab_offering_the_id_of_a_session_its_dead_node_left_starts_without_its_memberships() {
    let redis = RedisServer::start().unwrap();
    let mut t = ann();
    {
        let a = node(&redis, "a", Duration::from_millis(200)).await;
        t.connect(&a.hub, &a.engine).await.unwrap();
        assert!(member(&a, &t, "room").await);
        t.drop_connection();
        assert!(detach_recorded(&redis, &t.id).await);
        a.task.abort();
    }
    // Its marks expire; no live node has cleaned up after it yet (c's heartbeat is a
    // minute: it looks only at sessions whose marks expired a minute ago).
    let mut r = raw(&redis).await;
    let owner = format!("{}owner:{}", tag_of(t.id.as_bytes()), t.id);
    let expired = common::until(async || !r.exists::<_, bool>(&owner).await.unwrap()).await;
    assert!(expired);
    let c = node(&redis, "c", Duration::from_secs(60)).await;
    let id = t.id.clone();
    t.target = "/events".to_owned();
    t.user = None;
    t.connect(&c.hub, &c.engine).await.unwrap();
    assert_eq!(t.id, id, "the offered id is taken again");
    assert!(
        matches!(t.continuity, Some(Continuity::Gap(_))),
        "{:?}",
        t.continuity
    );
    assert!(t.topics.is_empty(), "{:?}", t.topics);
    // What the ended session left is gone, and nothing of it moved to c.
    let left = left_behind(&redis, &[]).await;
    assert!(left.is_empty(), "left behind: {left}");
    let room_at_c: Option<i64> = r
        .hget(format!("{}tn:room", tag_of(b"room")), "c")
        .await
        .unwrap();
    assert_eq!(room_at_c, None);
    for tag in common::tags() {
        let mem: bool = r.exists(format!("{tag}mem:{id}")).await.unwrap();
        assert!(!mem, "{tag}mem:{id}");
    }
}

async fn a_node_cut_off_past_its_tabs_grace_registers_their_topics_and_users_again() {
    let redis = RedisServer::start().unwrap();
    let proxy = Proxy::start(redis.port).await;
    let a = node(&proxy, "a", Duration::from_millis(200)).await;
    let b = node(&redis, "b", Duration::from_millis(200)).await;
    let mut t = ann();
    t.connect(&a.hub, &a.engine).await.unwrap();
    assert!(member(&a, &t, "room").await);
    assert!(until(async || b.engine.members("room").await.unwrap().sessions.len() == 1).await);

    // Cut off: B finds A dead and sweeps it, the tab's marks expire with the grace, and B
    // cleans up after it. A still serves the tab.
    proxy.set(Link::Cut);
    let left = cleaned_up(&redis, &[t.id.as_str()]).await;
    assert!(left.is_empty(), "left behind: {left}");
    assert!(a.hub.session(&t.id).is_some_and(|s| s.is_attached()));

    // Healed: A registers the tab again, topic and user included, and B's publish and user
    // send reach it.
    proxy.set(Link::Open);
    assert!(until(async || a.engine.is_up()).await);
    assert!(
        until(async || b.engine.members("room").await.unwrap().sessions.len() == 1).await,
        "the tab is not in room again: {}",
        left_behind(&redis, &[]).await
    );
    // What was published while the tab was out of room did not reach A: a resume from
    // before now cannot be exact.
    let mut r = raw(&redis).await;
    let since: Option<u64> = r
        .hget(format!("{}mem:{}", tag_of(b"room"), t.id), "~s")
        .await
        .unwrap();
    assert!(since.is_some_and(|s| s > 0), "{since:?}");
    assert_eq!(b.engine.publish("room", frame("to room")).await, Ok(1));
    let ann = Principal::new("ann");
    assert_eq!(b.engine.send_user(&ann, frame("to ann")).await, Ok(1));
    assert!(t.wait_for(2).await, "{:?}", t.data());
    let (mut got, mut want) = (t.data(), vec!["to room", "to ann"]);
    if common::shards() > 1 {
        // Two logs on two shards: each in its order, not one after the other.
        got.sort();
        want.sort();
    }
    assert_eq!(got, want);
}

on_shards!(
    a_dead_nodes_sessions_are_cleaned_up_from_their_topics_and_users_by_another_node,
    a_tab_offering_the_id_of_a_session_its_dead_node_left_starts_without_its_memberships,
    a_node_cut_off_past_its_tabs_grace_registers_their_topics_and_users_again,
);
