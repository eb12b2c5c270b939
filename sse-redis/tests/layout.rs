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
    let ttl: i64 = r.pttl(&key).await.unwrap();
    assert!(ttl > 0 && ttl <= 60_300, "owner TTL while attached: {ttl}");
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
