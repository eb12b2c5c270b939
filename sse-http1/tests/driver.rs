//! The driver on a simulated runtime and network (`sim/`): tokio's paused clock and
//! in-memory pipes, so every deadline is checked to the instant without wall time. A go-away
//! answer closes its connection; the graceful serve closes idle connections, lets responses
//! and streams finish and returns within its bound; the cap on unfinished heads evicts the
//! oldest; heads, bodies and idle connections end at their deadlines, keep-alive comments
//! come at theirs.

#![allow(clippy::unwrap_used, clippy::panic)] // a test reports failure by panicking

mod sim;

use std::time::Duration;

use bytes::Bytes;
use http::Response;
use sse_http1::{HeadSlots, Outcome, Reply, ServeConfig, Server};
use sse_proto::{BoxFuture, Hub, HubBuilder};
use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio::task::JoinHandle;

use sim::{Net, Sim, has, listen, now, read_until, read_until_closed, status};

const EVENTS: &[u8] = b"GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n";
const PLAIN: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
/// Longer than any deadline of these tests: what "never" means in simulated time.
const AGES: Duration = Duration::from_secs(3600);

/// The handler of these tests: event streams, `GET /hang` that is never answered, and
/// `plain` for anything else.
fn handler(
    server: Server,
) -> impl FnMut(http::Request<Bytes>) -> BoxFuture<'static, Reply> + Clone + Send + 'static {
    move |req| {
        let server = server.clone();
        Box::pin(async move {
            if req.uri().path() == "/hang" {
                std::future::pending::<()>().await;
            }
            match server.handshake(&req).await {
                Outcome::Accept(accepted) => Reply::Stream(accepted),
                Outcome::NoContent(res) | Outcome::GoAway(res) | Outcome::BadRequest(res) => {
                    Reply::Response(res)
                }
                Outcome::NotEventStream(_) => Reply::Response(Response::new(Bytes::from("plain"))),
            }
        })
    }
}

/// A server with `builder`'s hub serving on a simulated network until it shuts down: the
/// network, the server, and the serve task.
fn serving(
    builder: HubBuilder,
    config: ServeConfig,
) -> (Net, Server, JoinHandle<std::io::Result<()>>) {
    let server = Server::new::<Sim>(builder, None);
    let (net, listener) = listen();
    let task = {
        let server = server.clone();
        tokio::spawn(async move {
            let stop = server.clone();
            sse_http1::serve::<Sim, _, _, _, _>(listener, config, handler(server), async move {
                stop.stopping().await;
            })
            .await
        })
    };
    (net, server, task)
}

/// Sends `bytes` on a new connection.
async fn send(net: &Net, bytes: &[u8]) -> DuplexStream {
    let mut client = net.connect();
    client.write_all(bytes).await.unwrap();
    client
}

#[tokio::test(start_paused = true)]
async fn a_go_away_answer_closes_its_keep_alive_connection() {
    let (net, server, _task) = serving(Hub::builder(), ServeConfig::default());
    // The hub alone shuts down: the server still accepts, and answers with a go-away.
    server.hub().shutdown();
    // No `Connection: close` from the client: the answer itself closes the connection.
    let mut client = send(&net, EVENTS).await;
    let (got, closed) = read_until_closed(&mut client, Duration::from_secs(1)).await;
    assert!(closed);
    let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 200"), "{text}");
    assert_eq!(text.matches("connection:").count(), 1, "{text}");
    assert!(text.contains("connection: close"), "{text}");
    assert!(text.contains("retry:") && !text.contains("\nid:"), "{text}");
}

#[tokio::test(start_paused = true)]
async fn graceful_shutdown_closes_idle_connections_ends_streams_and_returns() {
    let (net, server, task) = serving(Hub::builder(), ServeConfig::default());
    let mut idle = send(&net, PLAIN).await;
    let mut got = Vec::new();
    read_until(&mut idle, &mut got, |g| g.ends_with(b"plain")).await;
    let mut stream = send(&net, EVENTS).await;
    let mut events = Vec::new();
    read_until(&mut stream, &mut events, |g| has(g, b"\nid: ")).await;
    // A request under way when the shutdown comes is answered, with `Connection: close`.
    let mut busy = send(&net, b"GET / HTTP/1.1\r\nHost").await;
    tokio::task::yield_now().await;

    let started = now();
    assert_eq!(server.shutdown(), 1, "one stream told");
    busy.write_all(b": x\r\n\r\n").await.unwrap();
    task.await.unwrap().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(read_until_closed(&mut idle, Duration::ZERO).await.1);
    let (rest, closed) = read_until_closed(&mut stream, Duration::ZERO).await;
    assert!(
        closed && rest.ends_with(b"0\r\n\r\n"),
        "the stream ended cleanly"
    );
    let (answer, _) = read_until_closed(&mut busy, Duration::ZERO).await;
    let answer = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    server.drained().await;
}

#[tokio::test(start_paused = true)]
async fn graceful_shutdown_drops_what_is_left_after_its_bound() {
    let config = ServeConfig {
        shutdown_timeout: Duration::from_millis(300),
        ..ServeConfig::default()
    };
    let (net, server, task) = serving(Hub::builder().keep_alive(None), config);
    // A request whose handler never answers: the connection would stay busy for ever.
    let mut hung = send(&net, b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n").await;
    tokio::task::yield_now().await;
    let started = now();
    server.shutdown();
    task.await.unwrap().unwrap();
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(300),
        "the bound, to the instant"
    );
    assert!(read_until_closed(&mut hung, Duration::ZERO).await.1);
}

#[tokio::test(start_paused = true)]
async fn the_oldest_unfinished_head_is_evicted_with_503() {
    let config = ServeConfig {
        head_slots: HeadSlots::new(2),
        ..ServeConfig::default()
    };
    let (net, _server, _task) = serving(Hub::builder(), config);
    let mut slow = Vec::new();
    for _ in 0..3 {
        slow.push(send(&net, b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ").await);
        // The heads start a millisecond apart: the first is the oldest.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let (got, closed) = read_until_closed(&mut slow[0], AGES).await;
    assert!(closed);
    assert_eq!(
        status(&got),
        Some(503),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    assert!(has(&got.to_ascii_lowercase(), b"retry-after: "));
    // The two newer heads still hold their slots, and whole heads need none.
    assert!(
        !read_until_closed(&mut slow[1], Duration::from_secs(1))
            .await
            .1
    );
    let mut legit = send(&net, PLAIN).await;
    let mut answer = Vec::new();
    read_until(&mut legit, &mut answer, |g| g.ends_with(b"plain")).await;
    slow[2].write_all(b"1\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    read_until(&mut slow[2], &mut answer, |g| g.ends_with(b"plain")).await;
}

/// The defaults' deadlines, each met to the instant: a head within 10 s of its first byte,
/// a body within 10 s plus a second per 4 KiB and 30 s at most, a connection with no
/// request closed after 10 s, new or kept alive.
#[tokio::test(start_paused = true)]
async fn every_deadline_to_the_instant() {
    let (net, _server, _task) = serving(Hub::builder(), ServeConfig::default());

    // A head trickled one byte a second: cut (408) ten seconds after its first byte.
    let mut client = net.connect();
    let started = now();
    let trickle = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaa";
    let (mut rd, mut wr) = tokio::io::split(&mut client);
    let writer = async {
        for byte in trickle {
            if wr.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    };
    let reader = async {
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while let Ok(n) = tokio::io::AsyncReadExt::read(&mut rd, &mut buf).await {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        (got, started.elapsed())
    };
    let ((got, took), ()) = tokio::join!(reader, async {
        tokio::select! {
            () = writer => {}
            () = tokio::time::sleep(Duration::from_secs(12)) => {}
        }
    });
    assert_eq!(
        status(&got),
        Some(408),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    assert_eq!(took, Duration::from_secs(10), "cut at the head deadline");

    // Silence on a new connection: closed, without an answer, after 10 s.
    let mut silent = net.connect();
    let started = now();
    let (got, closed) = read_until_closed(&mut silent, AGES).await;
    assert!(closed && got.is_empty());
    assert_eq!(started.elapsed(), Duration::from_secs(10));

    // Silence after a response on a kept-alive connection: the same.
    let mut kept = send(&net, PLAIN).await;
    let mut got = Vec::new();
    read_until(&mut kept, &mut got, |g| g.ends_with(b"plain")).await;
    let started = now();
    let (rest, closed) = read_until_closed(&mut kept, AGES).await;
    assert!(closed && rest.is_empty());
    assert_eq!(started.elapsed(), Duration::from_secs(10));

    // Most of a 1 MiB body at once, then nothing: its credit (255 s) stops at the 30 s
    // ceiling.
    let mut body = send(
        &net,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n",
    )
    .await;
    let started = now();
    let bulk = vec![b'x'; (1 << 20) - 64];
    let (mut rd, mut wr) = tokio::io::split(&mut body);
    let (read, ()) = tokio::join!(
        async {
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            while let Ok(n) = tokio::io::AsyncReadExt::read(&mut rd, &mut buf).await {
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            (got, started.elapsed())
        },
        async {
            let _ = wr.write_all(&bulk).await;
        }
    );
    let (got, took) = read;
    assert_eq!(
        status(&got),
        Some(408),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    assert_eq!(took, Duration::from_secs(30), "cut at the body ceiling");
}

/// An idle stream gets its keep-alive comment at the interval, not a moment before.
#[tokio::test(start_paused = true)]
async fn keep_alive_comments_at_the_interval() {
    let builder = Hub::builder().keep_alive(Some(Duration::from_secs(15)));
    let (net, _server, _task) = serving(builder, ServeConfig::default());
    let mut stream = send(&net, EVENTS).await;
    let mut got = Vec::new();
    read_until(&mut stream, &mut got, |g| has(g, b"\nid: ")).await;
    let opened = now();
    let (early, _) = read_until_closed(&mut stream, Duration::from_millis(14_999)).await;
    assert!(early.is_empty(), "{:?}", String::from_utf8_lossy(&early));
    let mut comment = Vec::new();
    read_until(&mut stream, &mut comment, |g| has(g, b":\n\n")).await;
    assert_eq!(opened.elapsed(), Duration::from_secs(15));
}

/// What each connection's task holds does not grow with the handler's future: a handler that
/// keeps 16 KiB across an await (a store's round trip, say) costs its connection nothing once
/// the request is answered, so an idle stream stays small whatever the application's handler.
#[test]
fn a_connections_task_does_not_keep_room_for_the_handlers_future() {
    fn size_with<F>(handler: impl FnMut(http::Request<Bytes>) -> F) -> usize
    where
        F: std::future::Future<Output = Reply>,
    {
        let (io, _peer) = tokio::io::duplex(64);
        std::mem::size_of_val(&sse_http1::serve_connection::<Sim, _, _, _>(
            io,
            ServeConfig::default(),
            handler,
        ))
    }
    let small = size_with(|_req| std::future::ready(Reply::Response(Response::new(Bytes::new()))));
    let large = size_with(|_req| async move {
        let held = [0u8; 16 * 1024];
        tokio::task::yield_now().await;
        Reply::Response(Response::new(Bytes::copy_from_slice(&held[..1])))
    });
    assert!(
        large < small + 1024,
        "a 16 KiB handler future grew the connection's from {small} to {large} bytes"
    );
}
