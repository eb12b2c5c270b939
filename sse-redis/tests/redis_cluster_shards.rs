//! Two nodes on a real Redis Cluster with the deployment's keys on six shards, whose slots
//! spread over the masters: every script runs (a key outside its script's slot would be a
//! `CROSSSLOT` error), a resume is exact across shards, and the faults of one master (killed,
//! its replica promoted; its slot migrated under load) lose nothing acknowledged, deliver
//! nothing twice, and leave the shards on the other masters working meanwhile.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{RedisCluster, arrived_per_log, cluster_node, frame, member, until, user_tab};
use sse_proto::{Placement, Principal};

const SHARDS: usize = 6;

/// The shard of a topic's keys.
fn shard_of(name: &str) -> u8 {
    Placement::new(SHARDS).unwrap().of_name(name.as_bytes())
}

#[tokio::test]
async fn every_script_runs_with_the_shards_spread_over_the_masters() {
    common::set_shards(6);
    let cluster = RedisCluster::start(3, 1).unwrap();
    let masters: std::collections::BTreeSet<usize> = common::tags()
        .iter()
        .map(|tag| cluster.master_of(tag).unwrap())
        .collect();
    assert!(masters.len() > 1, "six shards on one master: {masters:?}");
    let (a, b) = (
        cluster_node(&cluster, "a").await,
        cluster_node(&cluster, "b").await,
    );
    let mut ann = user_tab("/events?topic=red&topic=blue&topic=green", "ann");
    let mut bob = user_tab("/events?topic=red", "bob");
    ann.connect(&a.hub, &a.engine).await.unwrap();
    bob.connect(&b.hub, &b.engine).await.unwrap();
    assert!(member(&a, &ann, "green").await && member(&b, &bob, "red").await);

    // Every kind of send from the node that does not serve the tab.
    b.engine.send_to(&ann.id, frame("own")).await.unwrap();
    assert_eq!(a.engine.broadcast(frame("all")).await, Ok(2));
    assert_eq!(b.engine.publish("red", frame("red")).await, Ok(2));
    assert_eq!(b.engine.publish("blue", frame("blue")).await, Ok(1));
    let ann_user = Principal::new("ann");
    assert_eq!(b.engine.send_user(&ann_user, frame("user")).await, Ok(1));
    assert!(ann.wait_for(5).await);
    let mut got = ann.data();
    got.sort();
    assert_eq!(got, ["all", "blue", "own", "red", "user"]);

    // Away: what it misses on every shard it reads, and memberships changed elsewhere.
    ann.drop_connection();
    assert!(until(async || a.engine.sessions().await.unwrap().len() == 1).await);
    a.engine.send_to(&ann.id, frame("m-own")).await.unwrap();
    a.engine.publish("green", frame("m-green")).await.unwrap();
    a.engine.broadcast(frame("m-all")).await.unwrap();
    assert!(b.engine.leave(&ann.id, "blue").await.unwrap());
    a.engine
        .publish("blue", frame("blue after the leave"))
        .await
        .unwrap();
    assert!(b.engine.join(&ann.id, "pink").await.unwrap());
    a.engine.publish("pink", frame("m-pink")).await.unwrap();
    ann.target = "/events".to_owned();
    ann.connect(&b.hub, &b.engine).await.unwrap();
    assert_eq!(ann.topics, ["green", "pink", "red"]);
    assert!(ann.gaps.is_empty());
    assert!(ann.wait_for(9).await, "{:?}", ann.data());
    let mut missed: Vec<&str> = ann.data()[5..].to_vec();
    missed.sort();
    assert_eq!(missed, ["m-all", "m-green", "m-own", "m-pink"]);

    // Bob's session ends: nothing of it is left on any shard but the mark of its close.
    b.hub.session(&bob.id).unwrap().close();
    bob.read();
    bob.drop_connection();
    let gone = until(async || {
        let keys = cluster.keys("*").unwrap();
        !keys
            .iter()
            .any(|k| k.contains(&bob.id) && !k.contains("closed:"))
    })
    .await;
    assert!(gone, "{:?}", cluster.keys("*").unwrap());
    assert_eq!(
        a.engine.members("red").await.unwrap().sessions,
        [ann.id.clone()]
    );

    // Every key is in its shard's slot.
    for key in cluster.keys("*").unwrap() {
        let tag = &key[..=key.find('}').unwrap()];
        assert_eq!(
            cluster.keyslot(&key).unwrap(),
            cluster.keyslot(tag).unwrap()
        );
    }
}

/// The master of a topic's shard is killed under load; its replica is promoted. Meanwhile the
/// tab's topics on the other masters go on being published to, and are acknowledged; once
/// the cluster has failed over, the killed shard's topic too. Every acknowledged event
/// arrives once, each topic in its order, and the tab resumes on the other node exactly.
#[tokio::test]
async fn a_master_killed_loses_nothing_acknowledged_and_the_other_shards_work_meanwhile() {
    common::set_shards(SHARDS);
    let mut cluster = RedisCluster::start(3, 1).unwrap();
    // A topic on the shard of each master.
    let mut topics: Vec<(String, usize)> = Vec::new();
    for i in 0.. {
        let name = format!("t{i}");
        let master = cluster.master_of(&common::tag(shard_of(&name))).unwrap();
        if topics.iter().all(|(_, m)| *m != master) {
            topics.push((name, master));
        }
        if topics.len() == 3 {
            break;
        }
    }
    let (a, b) = (
        cluster_node(&cluster, "a").await,
        cluster_node(&cluster, "b").await,
    );
    let query: Vec<String> = topics.iter().map(|(t, _)| format!("topic={t}")).collect();
    let mut t = user_tab(&format!("/events?{}", query.join("&")), "ann");
    t.connect(&a.hub, &a.engine).await.unwrap();
    for (topic, _) in &topics {
        assert!(member(&a, &t, topic).await);
    }
    let (victim, victim_master) = topics[0].clone();
    cluster.wait_replicated(victim_master).unwrap();
    cluster.nodes[victim_master].stop();

    // While it fails over: the killed shard's topic is tried until five publishes are
    // acknowledged, and meanwhile, from a task of their own, the topics on the other masters
    // take one publish each every 50 ms.
    let started = Instant::now();
    let victim_side = async {
        let mut acked = Vec::new();
        let mut first = None;
        while acked.len() < 5 {
            assert!(started.elapsed() < Duration::from_secs(30), "no failover");
            let text = format!("{victim} {}", acked.len());
            if b.engine.publish(&victim, frame(&text)).await.is_ok() {
                first.get_or_insert(started.elapsed());
                acked.push(text);
            } else {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        (acked, first.unwrap())
    };
    let others_side = async {
        let mut acked: Vec<Vec<(String, Duration)>> = vec![Vec::new(); topics.len() - 1];
        while started.elapsed() < Duration::from_secs(4) {
            for (n, (topic, _)) in topics[1..].iter().enumerate() {
                let text = format!("{topic} {}", acked[n].len());
                if b.engine.publish(topic, frame(&text)).await.is_ok() {
                    acked[n].push((text, started.elapsed()));
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        acked
    };
    let ((victim_acked, victim_back), others_acked) = tokio::join!(victim_side, others_side);
    let before_back: Vec<usize> = others_acked
        .iter()
        .map(|log| log.iter().filter(|(_, at)| *at < victim_back).count())
        .collect();
    eprintln!(
        "{victim}'s shard took publishes again after {victim_back:?}; the other topics' acknowledged before that: {before_back:?}"
    );
    // The other shards' topics were acknowledged while the killed one's was not.
    assert!(
        before_back.iter().all(|&n| n >= 3),
        "{victim} back after {victim_back:?}: {before_back:?}"
    );
    assert_ne!(
        cluster.master_of(&common::tag(shard_of(&victim))).unwrap(),
        victim_master
    );
    let mut acked = vec![victim_acked];
    acked.extend(
        others_acked
            .into_iter()
            .map(|log| log.into_iter().map(|(text, _)| text).collect()),
    );
    let logs: Vec<&[String]> = acked.iter().map(Vec::as_slice).collect();
    arrived_per_log(&mut t, &logs).await;

    // And the tab resumes on the other node, exactly, on every shard it reads.
    t.drop_connection();
    for (topic, _) in &topics {
        b.engine
            .publish(topic, frame(&format!("{topic} away")))
            .await
            .unwrap();
    }
    let ann = Principal::new("ann");
    b.engine.send_user(&ann, frame("to ann")).await.unwrap();
    let before = t.events.len();
    t.connect(&b.hub, &b.engine).await.unwrap();
    assert!(t.gaps.is_empty());
    assert!(
        t.wait_for(before + topics.len() + 1).await,
        "{:?}",
        t.data()
    );
    let mut missed: Vec<&str> = t.data()[before..].to_vec();
    missed.sort_unstable();
    let mut want: Vec<String> = topics.iter().map(|(t, _)| format!("{t} away")).collect();
    want.push("to ann".to_owned());
    want.sort();
    assert_eq!(missed, want);
}

/// The slot of one shard migrates to another master while both nodes send to the tab,
/// publish to its topics and broadcast: every acknowledged event arrives once, each log in
/// its order.
#[tokio::test]
async fn a_shards_slot_migrating_under_load_loses_nothing_acknowledged() {
    common::set_shards(SHARDS);
    let cluster = RedisCluster::start(3, 1).unwrap();
    let (a, b) = (
        cluster_node(&cluster, "a").await,
        cluster_node(&cluster, "b").await,
    );
    let mut t = user_tab("/events?topic=red&topic=blue", "ann");
    t.connect(&a.hub, &a.engine).await.unwrap();
    assert!(member(&a, &t, "red").await && member(&a, &t, "blue").await);
    assert!(until(async || b.engine.sessions().await.unwrap().contains(&t.id)).await);
    // The shard of the tab's own log moves.
    let home = common::tag_of(t.id.as_bytes());
    let from = cluster.master_of(&home).unwrap();
    let to = (0..3).find(|&i| i != from).unwrap();

    let id = t.id.clone();
    let load = async {
        let mut acked: [Vec<String>; 3] = Default::default();
        for i in 0..300 {
            let text = format!("m{i:03}");
            let (log, sent) = match i % 3 {
                0 => (0, b.engine.send_to(&id, frame(&text)).await),
                1 => (1, a.engine.publish("red", frame(&text)).await.map(|_| ())),
                _ => (2, b.engine.broadcast(frame(&text)).await.map(|_| ())),
            };
            if sent.is_ok() {
                acked[log].push(text);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        acked
    };
    let migrate = tokio::task::spawn_blocking(move || {
        std::thread::sleep(Duration::from_millis(300));
        cluster.migrate_slot(&home, to).unwrap();
        let now = cluster.master_of(&home).unwrap();
        (cluster, now, Instant::now())
    });
    let acked = load.await;
    let load_ended = Instant::now();
    let (_cluster, now, migrated) = migrate.await.unwrap();
    assert!(migrated < load_ended, "the load ended before the migration");
    assert_eq!(now, to);
    let total: usize = acked.iter().map(Vec::len).sum();
    assert!(total > 250, "only {total} of 300 acknowledged");
    let logs: Vec<&[String]> = acked.iter().map(Vec::as_slice).collect();
    arrived_per_log(&mut t, &logs).await;
}
