//! The key layout and every script, read back from a real redis-server: what each writes, the
//! TTLs, the trimming, and what a claim answers.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{Node, RedisServer, Tab, frame, raw, start_node, until};
use redis::AsyncCommands;
use sse_proto::{ClosedPolicy, Continuity, Decision, GapReason, Hub, LogBounds, ResumeConfig};
use sse_redis::RedisConfig;

async fn node(
    redis: &RedisServer,
    configure: impl FnOnce(&mut RedisConfig),
    resume: Option<ResumeConfig>,
) -> Node {
    let mut builder = Hub::builder().keep_alive(None);
    if let Some(resume) = resume {
        builder = builder.resume(resume);
    }
    let configure = |c: &mut RedisConfig| {
        c.heartbeat = Duration::from_millis(100);
        c.timeout = Duration::from_secs(2);
        configure(c);
    };
    start_node(redis, "n1", configure, builder).await
}

/// Stream entries as `XRANGE` gives them: id and fields.
type Entries<V> = Vec<(String, Vec<(String, V)>)>;

#[tokio::test]
async fn sends_are_numbered_logged_and_routed_to_the_owner() {
    let redis = RedisServer::start().unwrap();
    let n = node(
        &redis,
        |_| {},
        Some(ResumeConfig::new(Duration::from_secs(60))),
    )
    .await;
    let mut r = raw(&redis).await;
    let epoch: u64 = r.get("{sse:}epoch").await.unwrap();
    assert_eq!(epoch, n.engine.epoch());
    assert!(epoch < 1 << 40);

    let mut tab = Tab::new();
    tab.connect(&n.hub, &n.engine).await.unwrap();
    // A new session is announced by the presence task, right after it is attached.
    let key = format!("{{sse:}}owner:{}", tab.id);
    assert!(until(async || r.exists::<_, bool>(&key).await.unwrap()).await);
    let owner: String = r.get(&key).await.unwrap();
    assert_eq!(owner, "n1");
    // Attached: its mark keeps no TTL once the node registered it, and the node's entry in
    // `nodes` (renewed every beat, three beats ahead) stands for it.
    assert!(
        until(async || r.pttl::<_, i64>(&key).await.unwrap() == -1).await,
        "owner TTL while attached"
    );
    let live: Vec<String> = r.smembers("{sse:}live:n1").await.unwrap();
    assert_eq!(live, std::slice::from_ref(&tab.id));
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as f64;
    let entry: f64 = r.zscore("{sse:}nodes", "n1").await.unwrap();
    assert!(
        entry > now_ms && entry <= now_ms + 300.0,
        "nodes entry: {entry} at {now_ms}"
    );
    // The node's alive mark outlasts a slow heartbeat: 30 s at least, with beats of 100 ms
    // (a publish skips a node without it).
    let alive: i64 = r.pttl("{sse:}alive:n1").await.unwrap();
    assert!(alive > 25_000 && alive <= 30_000, "alive TTL: {alive}");

    n.engine.send_to(&tab.id, frame("one")).await.unwrap();
    let seq: u64 = r.get("{sse:}seq").await.unwrap();
    let log: Entries<Vec<u8>> = redis::cmd("XRANGE")
        .arg(format!("{{sse:}}log:{}", tab.id))
        .arg("-")
        .arg("+")
        .query_async(&mut r)
        .await
        .unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(
        log[0].0,
        format!("{seq}-0"),
        "entries are numbered by the one sequence"
    );
    assert_eq!(log[0].1[0], ("f".to_owned(), b"data: one\n\n".to_vec()));
    assert_eq!(log[0].1[1].0, "m", "the message id, for retries");
    let log_ttl: i64 = r.pttl(format!("{{sse:}}log:{}", tab.id)).await.unwrap();
    assert!(log_ttl > 0, "a log expires a grace after its last entry");
    let routed: Entries<Vec<u8>> = redis::cmd("XRANGE")
        .arg("{sse:}node:n1")
        .arg("-")
        .arg("+")
        .query_async(&mut r)
        .await
        .unwrap();
    assert_eq!(routed.len(), 1);
    assert_eq!(routed[0].0, format!("{seq}-0"));
    let fields: Vec<&str> = routed[0].1.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(fields, ["t", "s", "f", "m"]);
    assert_eq!(routed[0].1[3], log[0].1[1], "the same message id");
    assert!(tab.wait_for(1).await);

    // A broadcast: one entry, with its origin; the count is every session.
    assert_eq!(n.engine.broadcast(frame("all")).await.unwrap(), 1);
    let b: Entries<String> = redis::cmd("XRANGE")
        .arg("{sse:}bcast")
        .arg("-")
        .arg("+")
        .query_async(&mut r)
        .await
        .unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].1[1], ("o".to_owned(), "n1".to_owned()));
    assert_eq!(b[0].1[2], ("d".to_owned(), "0".to_owned()));
    assert_eq!(b[0].1[3].0, "m");
    assert!(tab.wait_for(2).await);
    // A first attempt leaves no mark behind (only retries do, for a while).
    let marks: Vec<String> = r.keys("{sse:}done:*").await.unwrap();
    assert!(marks.is_empty(), "{marks:?}");
}

#[tokio::test]
async fn presence_follows_attach_detach_and_end_and_expires_without_heartbeats() {
    let redis = RedisServer::start().unwrap();
    let grace = Duration::from_millis(400);
    let n = node(&redis, |_| {}, Some(ResumeConfig::new(grace))).await;
    let mut r = raw(&redis).await;
    let mut tab = Tab::new();
    tab.connect(&n.hub, &n.engine).await.unwrap();
    let id = tab.id.clone();
    assert!(until(async || n.engine.sessions().await.unwrap() == [id.clone()]).await);
    let all: Vec<String> = r.zrange("{sse:}all", 0, -1).await.unwrap();
    assert_eq!(all, std::slice::from_ref(&id));

    // Detached: out of the live set, still counted, the owner mark lasts the grace.
    tab.drop_connection();
    assert!(until(async || n.engine.sessions().await.unwrap().is_empty()).await);
    let live: Vec<String> = r.smembers("{sse:}live:n1").await.unwrap();
    assert!(live.is_empty(), "{live:?}");
    let all: Vec<String> = r.zrange("{sse:}all", 0, -1).await.unwrap();
    assert_eq!(all, std::slice::from_ref(&id));
    let ttl: i64 = r.pttl(format!("{{sse:}}owner:{id}")).await.unwrap();
    assert!(ttl > 0 && ttl <= 500, "owner TTL once detached: {ttl}");

    // Expired after the grace (the hub's timer), then gone from Redis.
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(
        until(async || {
            let _ = n.hub.poll_timers(&mut cx, Instant::now());
            let all: Vec<String> = r.zrange("{sse:}all", 0, -1).await.unwrap();
            let owner: bool = r.exists(format!("{{sse:}}owner:{id}")).await.unwrap();
            all.is_empty() && !owner
        })
        .await
    );
    assert_eq!(
        n.engine.send_to(&id, frame("x")).await,
        Err(sse_proto::Error::NotConnected)
    );
}

#[tokio::test]
async fn closed_marks_have_a_ttl_and_a_policy() {
    let redis = RedisServer::start().unwrap();
    let n = node(
        &redis,
        |c| {
            c.closed_ttl = Duration::from_millis(500);
            c.closed_policy = ClosedPolicy::KeepUntilExpired;
        },
        None,
    )
    .await;
    let mut r = raw(&redis).await;
    let mut tab = Tab::new();
    tab.connect(&n.hub, &n.engine).await.unwrap();
    assert!(n.engine.close(&tab.id).await.unwrap());
    let ttl: i64 = r.pttl(format!("{{sse:}}closed:{}", tab.id)).await.unwrap();
    assert!(ttl > 0 && ttl <= 500);
    // Kept: every return gets 204 until it expires.
    for _ in 0..2 {
        tab.drop_connection();
        assert!(matches!(
            tab.connect(&n.hub, &n.engine).await,
            Err(Decision::NoContent { .. })
        ));
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        tab.connect(&n.hub, &n.engine).await.is_ok(),
        "expired: the id starts afresh"
    );
    // Closing an id nobody knows still marks it.
    assert!(!n.engine.close("ghost").await.unwrap());
    assert!(r.exists::<_, bool>("{sse:}closed:ghost").await.unwrap());
}

#[tokio::test]
async fn a_trimmed_log_is_an_overflow_gap() {
    let redis = RedisServer::start().unwrap();
    let bounds = LogBounds {
        max_events: 5,
        max_bytes: 1 << 20,
    };
    let resume = ResumeConfig::new(Duration::from_secs(60)).bounds(bounds);
    let n = node(&redis, |c| c.stream_max = 5, Some(resume)).await;
    let mut tab = Tab::new();
    tab.connect(&n.hub, &n.engine).await.unwrap();
    n.engine.send_to(&tab.id, frame("seen")).await.unwrap();
    assert!(tab.wait_for(1).await);
    tab.drop_connection();
    // Far more than the log keeps (trimming is approximate: `MAXLEN ~`).
    for i in 0..300 {
        n.engine
            .send_to(&tab.id, frame(&i.to_string()))
            .await
            .unwrap();
    }
    let mut again = Tab::new();
    again.decoder = std::mem::take(&mut tab.decoder);
    again.connect(&n.hub, &n.engine).await.unwrap();
    assert_eq!(again.continuity, Some(Continuity::Gap(GapReason::Overflow)));
    assert_eq!(again.id, tab.id, "the id survives the gap");
}

/// A node's heartbeat is one write whatever its number of sessions: with 40 idle sessions
/// and a beat every 100 ms, Redis runs a handful of commands a beat (the beat, the reader's
/// read and its check), where marking each session would be 40 or more.
#[tokio::test]
async fn an_idle_nodes_heartbeat_costs_the_same_whatever_its_sessions() {
    let redis = RedisServer::start().unwrap();
    let n = node(
        &redis,
        |_| {},
        Some(ResumeConfig::new(Duration::from_secs(60))),
    )
    .await;
    let mut r = raw(&redis).await;
    let mut tabs: Vec<Tab> = (0..40).map(|_| Tab::new()).collect();
    for tab in &mut tabs {
        tab.connect(&n.hub, &n.engine).await.unwrap();
    }
    assert!(until(async || n.engine.sessions().await.unwrap().len() == 40).await);
    let processed = async |r: &mut redis::aio::MultiplexedConnection| -> u64 {
        let info: String = redis::cmd("INFO")
            .arg("stats")
            .query_async(r)
            .await
            .unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("total_commands_processed:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let before = processed(&mut r).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = processed(&mut r).await;
    // About ten beats of four commands, a read or two and their checks, and the INFO.
    assert!(after - before < 100, "{} commands in 1 s", after - before);
    // The sessions are still marked live all along.
    assert_eq!(n.engine.sessions().await.unwrap().len(), 40);
}

/// The memberships of a session attached on its node keep no TTL, as its owner mark keeps
/// none, its first topic joined after the node marked it attached included (its mem used to
/// expire a mem TTL after that join, the tab still attached, and a resume then lost its
/// topics).
#[tokio::test]
async fn an_attached_sessions_memberships_keep_no_ttl() {
    let redis = RedisServer::start().unwrap();
    let builder = Hub::builder()
        .keep_alive(None)
        .resume(ResumeConfig::new(Duration::from_secs(60)))
        .topic_rule(|_, _| true);
    let n = start_node(&redis, "n1", |_| {}, builder).await;
    let mut r = raw(&redis).await;
    let mut tab = Tab::new();
    tab.connect(&n.hub, &n.engine).await.unwrap();
    let owner = format!("{{sse:}}owner:{}", tab.id);
    assert!(until(async || r.pttl::<_, i64>(&owner).await.unwrap() == -1).await);
    // Joined once the node had marked the session attached.
    n.hub.session(&tab.id).unwrap().join("hall").unwrap();
    let mem = format!("{{sse:}}mem:{}", tab.id);
    assert!(
        until(async || r.hexists::<_, _, bool>(&mem, "hall").await.unwrap()).await,
        "hall joined"
    );
    let ttl: i64 = r.pttl(&mem).await.unwrap();
    assert_eq!(ttl, -1, "mem TTL while attached");
}
