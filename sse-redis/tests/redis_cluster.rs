//! Two nodes on a real Redis Cluster (3 masters, 3 replicas, started by the test): every
//! script runs (a key outside the script's slot would be a `CROSSSLOT` error, and the test
//! would fail), what the nodes do is what they do on one Redis, and every key written hashes
//! to the deployment's one slot, as `CLUSTER KEYSLOT` computes it.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{RedisCluster, Tab, cluster_node, frame, member, start_node, until, user_tab};
use sse_proto::{Decision, Event, Hub, Principal, ResumeConfig};
use sse_redis::{RedisConfig, RedisEngine};

/// Waits until the tab has the last of `acked`, checks that every acknowledged send arrived
/// once and in order (an unacknowledged one may be among them), and returns what it got.
async fn arrived(tab: &mut Tab, acked: &[String]) -> Vec<String> {
    let last = acked.last().unwrap().clone();
    assert!(
        until(async || {
            tab.read();
            tab.data().contains(&last.as_str())
        })
        .await,
        "acknowledged {acked:?}, got {:?}",
        tab.data()
    );
    let got: Vec<String> = tab.data().iter().map(|s| (*s).to_owned()).collect();
    let want: Vec<&String> = got.iter().filter(|d| acked.contains(d)).collect();
    assert_eq!(want, acked.iter().collect::<Vec<_>>(), "got {got:?}");
    got
}

#[tokio::test]
async fn every_script_runs_on_a_redis_cluster_and_its_keys_share_one_slot() {
    let cluster = RedisCluster::start(3, 1).unwrap();
    let (a, b) = (
        cluster_node(&cluster, "a").await,
        cluster_node(&cluster, "b").await,
    );
    let mut ann = user_tab("/events?topic=red", "ann");
    let mut bob = user_tab("/events?topic=red", "bob");
    ann.connect(&a.hub, &a.engine).await.unwrap();
    bob.connect(&b.hub, &b.engine).await.unwrap();
    assert!(member(&a, &ann, "red").await && member(&b, &bob, "red").await);
    assert!(until(async || a.engine.sessions().await.unwrap().len() == 2).await);

    // Each kind of send, from the node that does not serve the tab, and through a hub.
    b.engine.send_to(&ann.id, frame("to ann")).await.unwrap();
    assert_eq!(a.engine.broadcast(frame("to all")).await, Ok(2));
    assert_eq!(b.engine.publish("red", frame("to red")).await, Ok(2));
    assert_eq!(
        b.engine
            .send_user(&Principal::new("ann"), frame("to ann's tabs"))
            .await,
        Ok(1)
    );
    a.hub.topic("red").unwrap().send("red via a hub").unwrap();
    assert!(ann.wait_for(5).await);
    assert_eq!(
        ann.data(),
        [
            "to ann",
            "to all",
            "to red",
            "to ann's tabs",
            "red via a hub"
        ]
    );
    assert!(bob.wait_for(3).await);
    assert_eq!(bob.data(), ["to all", "to red", "red via a hub"]);

    // Memberships changed from the other node, and read back.
    assert!(a.engine.join(&bob.id, "blue").await.unwrap());
    assert!(member(&b, &bob, "blue").await);
    assert_eq!(
        a.engine.members("blue").await.unwrap().sessions,
        [bob.id.clone()]
    );
    assert!(a.engine.leave(&bob.id, "blue").await.unwrap());
    assert!(until(async || b.hub.session(&bob.id).unwrap().topics().len() == 1).await);

    // Ann's tab drops, misses a send, a publish and a broadcast, and resumes on the other
    // node with exactly those (the claim reads her log, red's, her user's and the
    // broadcasts together).
    ann.drop_connection();
    assert!(until(async || a.engine.sessions().await.unwrap().len() == 1).await);
    a.engine.send_to(&ann.id, frame("m1")).await.unwrap();
    a.engine.publish("red", frame("m2")).await.unwrap();
    b.hub.broadcast(&Event::new().data("m3"));
    assert!(bob.wait_for(5).await);
    ann.connect(&b.hub, &b.engine).await.unwrap();
    assert_eq!(ann.topics, ["red"]);
    assert!(ann.wait_for(8).await);
    assert_eq!(ann.data()[5..], ["m1", "m2", "m3"]);

    // Every kind of key is there now; at the end, all are checked for their slot.
    let keys = cluster.keys("*").unwrap();
    for kind in [
        "seq", "epoch", "bcast", "log:", "owner:", "mem:", "tlog:", "ulog:", "node:", "presence",
    ] {
        assert!(
            keys.iter()
                .any(|k| k.starts_with(&format!("{{sse:}}{kind}"))),
            "no {kind} key in {keys:?}"
        );
    }

    // A drop, then a close from the node that does not serve the tab: 204 on either node.
    assert!(a.engine.drop_stream(&bob.id).await.unwrap());
    assert!(
        until(async || {
            bob.read();
            b.hub.session(&bob.id).is_none_or(|s| !s.is_attached())
        })
        .await
    );
    assert!(a.engine.close(&bob.id).await.unwrap());
    bob.read();
    bob.drop_connection();
    assert!(matches!(
        bob.connect(&a.hub, &a.engine).await,
        Err(Decision::NoContent { .. })
    ));
    // A session that ends leaves its topic: the presence scripts ran.
    b.hub.session(&ann.id).unwrap().close();
    assert!(
        until(async || {
            ann.read();
            a.engine.members("red").await.unwrap().sessions.is_empty()
        })
        .await
    );

    // Every key written is in the slot of the deployment's hash tag.
    let slot = cluster.keyslot("{sse:}").unwrap();
    let keys = cluster.keys("*").unwrap();
    assert!(
        keys.iter().any(|k| k.starts_with("{sse:}closed:")),
        "{keys:?}"
    );
    for key in &keys {
        assert!(key.starts_with("{sse:}"), "{key}");
        assert_eq!(cluster.keyslot(key).unwrap(), slot, "{key}");
    }
}

#[tokio::test]
async fn a_prefix_that_is_not_a_hash_tag_is_refused() {
    for prefix in ["", "a{b", "a}"] {
        let mut config = RedisConfig::new("redis://127.0.0.1:1");
        config.prefix = prefix.to_owned();
        let error = RedisEngine::connect(config).await.unwrap_err();
        assert!(error.to_string().contains("hash tag"), "{prefix}: {error}");
    }
    let config = RedisConfig::new("redis+cluster://");
    let error = RedisEngine::connect(config).await.unwrap_err();
    assert!(
        error.to_string().contains("redis+cluster://host:port"),
        "{error}"
    );
}

/// The master that serves the deployment's slot is killed mid-run; the cluster promotes its
/// replica. The nodes carry on: sends acknowledged before the kill (replicated: the test
/// waits for that, as Redis replicates asynchronously) and after the failover all reach the
/// tab, each once and in order, and the tab resumes on the other node exactly.
#[tokio::test]
async fn a_master_killed_fails_over_to_its_replica_and_nothing_acknowledged_is_lost() {
    let mut cluster = RedisCluster::start(3, 1).unwrap();
    let (a, b) = (
        cluster_node(&cluster, "a").await,
        cluster_node(&cluster, "b").await,
    );
    let mut tab = user_tab("/events", "ann");
    tab.connect(&a.hub, &a.engine).await.unwrap();
    assert!(until(async || b.engine.sessions().await.unwrap().contains(&tab.id)).await);
    let mut acked = Vec::new();
    for i in 0..10 {
        let text = format!("before {i}");
        b.engine.send_to(&tab.id, frame(&text)).await.unwrap();
        acked.push(text);
    }
    assert!(tab.wait_for(10).await);

    let master = cluster.master_of("{sse:}").unwrap();
    cluster.wait_replicated(master).unwrap();
    cluster.nodes[master].stop();
    // Until the replica is promoted, sends fail (Unavailable) or may have been applied;
    // every one acknowledged counts.
    let mut tried = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut after = 0;
    while after < 10 {
        assert!(
            std::time::Instant::now() < deadline,
            "no failover: {tried:?}"
        );
        let text = format!("send {}", tried.len());
        tried.push(text.clone());
        match b.engine.send_to(&tab.id, frame(&text)).await {
            Ok(()) => {
                acked.push(text);
                after += 1;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert_ne!(cluster.master_of("{sse:}").unwrap(), master);
    // Each acknowledged send once, in order; an unacknowledged one at most once, in order.
    let got = arrived(&mut tab, &acked).await;
    let mut seen = got.clone();
    seen.dedup();
    assert_eq!(seen.len(), got.len(), "twice: {got:?}");

    // And the tab resumes on the other node from its last position, missing nothing.
    tab.drop_connection();
    b.engine
        .send_to(&tab.id, frame("while away"))
        .await
        .unwrap();
    tab.connect(&b.hub, &b.engine).await.unwrap();
    assert!(
        matches!(
            tab.continuity,
            Some(sse_proto::Continuity::Resumed { replayed: 1 })
        ),
        "{:?}",
        tab.continuity
    );
    assert!(
        until(async || {
            tab.read();
            tab.data().last() == Some(&"while away")
        })
        .await
    );
}

/// The deployment's slot migrates to another master while both nodes send: every send
/// acknowledged reaches the tab once, in order, through the `ASK` and `TRYAGAIN` answers of
/// the migration and the `MOVED` after it.
#[tokio::test]
async fn the_slot_migrating_to_another_master_under_load_loses_nothing_acknowledged() {
    let cluster = RedisCluster::start(3, 1).unwrap();
    let (a, b) = (
        cluster_node(&cluster, "a").await,
        cluster_node(&cluster, "b").await,
    );
    let mut tab = user_tab("/events?topic=red", "ann");
    tab.connect(&a.hub, &a.engine).await.unwrap();
    assert!(member(&a, &tab, "red").await);
    assert!(until(async || b.engine.sessions().await.unwrap().contains(&tab.id)).await);
    let from = cluster.master_of("{sse:}").unwrap();
    let to = (0..3).find(|&i| i != from).unwrap();

    let load = async {
        let mut acked = Vec::new();
        for i in 0..300 {
            let text = format!("m{i}");
            let sent = if i % 2 == 0 {
                b.engine.send_to(&tab.id, frame(&text)).await
            } else {
                a.engine.publish("red", frame(&text)).await.map(|_| ())
            };
            if sent.is_ok() {
                acked.push(text);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        acked
    };
    let migrate = tokio::task::spawn_blocking(move || {
        std::thread::sleep(Duration::from_millis(300));
        let started = std::time::Instant::now();
        cluster.migrate_slot("{sse:}", to).unwrap();
        (cluster, started, std::time::Instant::now())
    });
    let acked = load.await;
    let load_ended = std::time::Instant::now();
    let (cluster, started, ended) = migrate.await.unwrap();
    // The migration ran while the load did.
    assert!(
        ended < load_ended,
        "the load ended before the migration did"
    );
    eprintln!(
        "migration took {:?}; {} of 300 acknowledged",
        ended - started,
        acked.len()
    );
    assert_eq!(cluster.master_of("{sse:}").unwrap(), to);
    assert!(
        acked.len() > 250,
        "only {} of 300 acknowledged",
        acked.len()
    );
    let got = arrived(&mut tab, &acked).await;
    let mut seen = got.clone();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), got.len(), "twice: {got:?}");
}

/// Heartbeats while the deployment's slot is half moved (`all` moved, the node's alive mark
/// and entry in `nodes` not yet) write nothing on the new master: the beat's keys are on two
/// masters, so it waits (`TRYAGAIN`) until the slot is whole again. Written as a pipeline of
/// four commands, the beat was re-sent whole to the new master on the `ASK` for `all`, its
/// first command created the alive mark there too, and moving that key failed (`BUSYKEY`).
#[tokio::test]
async fn heartbeats_during_a_migration_write_no_key_the_old_master_holds() {
    let cluster = RedisCluster::start(3, 0).unwrap();
    let a = cluster_node(&cluster, "a").await;
    let mut tab = Tab::new();
    tab.connect(&a.hub, &a.engine).await.unwrap();
    // The tab's registration has written `all`.
    assert!(until(async || a.engine.sessions().await.unwrap().contains(&tab.id)).await);
    let from = cluster.master_of("{sse:}").unwrap();
    let to = (0..3).find(|&i| i != from).unwrap();

    cluster.open_slot("{sse:}", to).unwrap();
    cluster
        .move_keys("{sse:}", to, Some(&["{sse:}all"]))
        .unwrap();
    // Five heartbeats of 200 ms.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(cluster.keys_in_slot(to, "{sse:}").unwrap(), ["{sse:}all"]);
    let held = cluster.keys_in_slot(from, "{sse:}").unwrap();
    assert!(held.contains(&"{sse:}alive:a".to_owned()), "{held:?}");

    cluster.move_keys("{sse:}", to, None).unwrap();
    cluster.close_slot("{sse:}", to).unwrap();
    assert!(cluster.keys_in_slot(from, "{sse:}").unwrap().is_empty());
    // The node goes on, on the new master.
    a.engine.send_to(&tab.id, frame("after")).await.unwrap();
    assert!(tab.wait_for(1).await);
    assert_eq!(tab.data(), ["after"]);
}

/// With `replicas: 1` a write counts as done once a replica has it: while the replicas are
/// frozen nothing is acknowledged, and what was acknowledged survives its master killed at
/// once (no time given to replicate), a replica promoted: each arrives, once, in order, and
/// so do the sends made after the failover (the other replica now follows the new master).
#[tokio::test]
async fn acknowledged_with_a_replica_survives_the_master_killed_at_once() {
    let mut cluster = RedisCluster::start(3, 2).unwrap();
    let builder = || {
        Hub::builder()
            .keep_alive(None)
            .resume(ResumeConfig::new(Duration::from_secs(30)))
    };
    let configure = |c: &mut RedisConfig| {
        c.timeout = Duration::from_millis(500);
        c.replicas = 1;
    };
    let a = start_node(&cluster, "a", configure, builder()).await;
    let b = start_node(&cluster, "b", configure, builder()).await;
    let mut tab = user_tab("/events", "ann");
    tab.connect(&a.hub, &a.engine).await.unwrap();
    assert!(until(async || b.engine.sessions().await.unwrap().contains(&tab.id)).await);
    let master = cluster.master_of("{sse:}").unwrap();
    let replicas = cluster.replicas_of(master).unwrap();
    assert_eq!(replicas.len(), 2);

    // The replicas frozen: a send is applied by the master but not acknowledged.
    for &r in &replicas {
        cluster.nodes[r].pause().unwrap();
    }
    assert_eq!(
        b.engine.send_to(&tab.id, frame("unreplicated")).await,
        Err(sse_proto::Error::Unavailable)
    );
    for &r in &replicas {
        cluster.nodes[r].resume().unwrap();
    }

    // Each attempt its own text: one not acknowledged may arrive all the same, once.
    let mut acked = Vec::new();
    let mut tries = 0;
    let mut send = async |acked: &mut Vec<String>, want: usize| {
        while acked.len() < want {
            tries += 1;
            assert!(tries < 200, "acknowledged {acked:?}");
            let text = format!("try {tries}");
            if b.engine.send_to(&tab.id, frame(&text)).await.is_ok() {
                acked.push(text);
            } else {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    send(&mut acked, 20).await;
    // Killed the moment the last send was acknowledged.
    cluster.nodes[master].stop();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while cluster.master_of("{sse:}").ok() == Some(master) || cluster.wait_ready().is_err() {
        assert!(std::time::Instant::now() < deadline, "no failover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The new master has the other replica: writes are acknowledged again.
    send(&mut acked, 25).await;
    arrived(&mut tab, &acked).await;
}

/// A join the relay retries because its replica did not take it in time (the master
/// applied it all the same), with a leave made meanwhile on another node, is not applied
/// again: the retry finds the first attempt and the session stays out of the topic.
#[tokio::test]
async fn a_join_retried_after_a_leave_made_meanwhile_does_not_join_again() {
    let cluster = RedisCluster::start(3, 1).unwrap();
    let builder = || {
        Hub::builder()
            .keep_alive(None)
            .resume(ResumeConfig::new(Duration::from_secs(30)))
            .topic_rule(|_, _| true)
    };
    let a = start_node(
        &cluster,
        "a",
        |c| {
            c.timeout = Duration::from_millis(500);
            c.replicas = 1;
        },
        builder(),
    )
    .await;
    let b = start_node(&cluster, "b", |_| {}, builder()).await;
    let mut tab = Tab::new();
    tab.connect(&a.hub, &a.engine).await.unwrap();
    assert!(until(async || b.engine.sessions().await.unwrap().contains(&tab.id)).await);
    let master = cluster.master_of("{sse:}").unwrap();
    let replicas = cluster.replicas_of(master).unwrap();
    // A first join and leave while the replica answers. (Without them, B's first leave,
    // made while the replica was frozen and A's join waited on it, timed out 1 run in 4;
    // the cause is not pinned down, and it is not what this test is about.)
    let session = a.hub.session(&tab.id).unwrap();
    let in_topic = async |topic: &str| {
        let members = b.engine.members(topic).await.unwrap();
        members.sessions.contains(&tab.id)
    };
    session.join("green").unwrap();
    assert!(until(async || in_topic("green").await).await);
    assert_eq!(b.engine.leave(&tab.id, "green").await, Ok(true));

    // The replica frozen: A's join is applied, not acknowledged, and retried.
    for &r in &replicas {
        cluster.nodes[r].pause().unwrap();
    }
    session.join("red").unwrap();
    assert!(until(async || in_topic("red").await).await);
    assert_eq!(b.engine.leave(&tab.id, "red").await, Ok(true));
    // Past the first attempt's wait for the replica (500 ms): A tries again meanwhile.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    for &r in &replicas {
        cluster.nodes[r].resume().unwrap();
    }
    // A's relay sends in order: once a later join is in, the retry of the first is done.
    session.join("blue").unwrap();
    assert!(until(async || in_topic("blue").await).await);
    assert!(!in_topic("red").await, "the retry joined again");
}
