//! The sse-http1 driver on tokio, over real sockets: a go-away answer closes its connection,
//! the graceful serve closes idle connections, lets responses and streams finish and returns
//! within its bound, and the cap on unfinished heads evicts the oldest.

#![allow(clippy::unwrap_used, clippy::panic)] // a test reports failure by panicking

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Response, StatusCode};
use sse_tokio::{BoxFuture, HeadSlots, Hub, Outcome, Reply, ServeConfig, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const EVENTS: &[u8] = b"GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n";
const PLAIN: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

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
                Outcome::NoContent(res) | Outcome::GoAway(res) => Reply::Response(res),
                Outcome::NotEventStream(_) => Reply::Response(Response::new(Bytes::from("plain"))),
            }
        })
    }
}

/// `server` serving on a fresh port: its address, and the serve task (which returns after
/// [`Server::shutdown`]).
async fn serving(
    server: &Server,
    config: ServeConfig,
) -> (SocketAddr, JoinHandle<std::io::Result<()>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serve = {
        let server = server.clone();
        async move {
            server
                .serve(listener, config, handler(server.clone()))
                .await
        }
    };
    (addr, tokio::spawn(serve))
}

/// Reads until `done` holds for what arrived (at most 2 s), or until EOF.
async fn read_until(sock: &mut TcpStream, got: &mut Vec<u8>, done: impl Fn(&[u8]) -> bool) {
    let mut buf = [0u8; 4096];
    let read = async {
        while !done(got) {
            match sock.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(2), read)
        .await
        .expect("in time");
}

/// Whether the server closed `sock` within `limit` (after whatever it sent).
async fn closes_within(sock: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let read_to_end = async {
        loop {
            match sock.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(limit, read_to_end).await.is_ok()
}

fn has(got: &[u8], needle: &[u8]) -> bool {
    got.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn a_go_away_answer_closes_its_keep_alive_connection() {
    let server = Server::new(Hub::builder());
    let (addr, _serve) = serving(&server, ServeConfig::default()).await;
    // The hub alone shuts down: the server still accepts, and answers with a go-away.
    server.hub().shutdown();
    let mut sock = TcpStream::connect(addr).await.unwrap();
    // No `Connection: close` from the client: the answer itself closes the connection.
    sock.write_all(EVENTS).await.unwrap();
    let mut got = Vec::new();
    read_until(&mut sock, &mut got, |_| false).await;
    let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 200"), "{text}");
    assert_eq!(text.matches("connection:").count(), 1, "{text}");
    assert!(text.contains("connection: close"), "{text}");
    assert!(text.contains("retry:") && !text.contains("\nid:"), "{text}");
}

#[tokio::test]
async fn graceful_shutdown_closes_idle_connections_ends_streams_and_returns() {
    let server = Server::new(Hub::builder());
    let (addr, serve) = serving(&server, ServeConfig::default()).await;
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(PLAIN).await.unwrap();
    let mut got = Vec::new();
    read_until(&mut idle, &mut got, |g| g.ends_with(b"plain")).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(EVENTS).await.unwrap();
    let mut events = Vec::new();
    read_until(&mut stream, &mut events, |g| has(g, b"\nid: ")).await;
    // A request under way when the signal comes is answered, with `Connection: close`.
    let mut busy = TcpStream::connect(addr).await.unwrap();
    busy.write_all(b"GET / HTTP/1.1\r\nHost").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;

    let started = Instant::now();
    assert_eq!(server.shutdown(), 1, "one stream told");
    busy.write_all(b": x\r\n\r\n").await.unwrap();
    tokio::time::timeout(Duration::from_secs(1), serve)
        .await
        .expect("serve returns within a second")
        .unwrap()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(closes_within(&mut idle, Duration::from_millis(100)).await);
    read_until(&mut stream, &mut events, |_| false).await;
    assert!(events.ends_with(b"0\r\n\r\n"), "the stream ended cleanly");
    let mut answer = Vec::new();
    read_until(&mut busy, &mut answer, |_| false).await;
    let answer = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
}

#[tokio::test]
async fn graceful_shutdown_drops_what_is_left_after_its_bound() {
    let server = Server::new(Hub::builder().keep_alive(None));
    let config = ServeConfig {
        shutdown_timeout: Duration::from_millis(300),
        ..ServeConfig::default()
    };
    let (addr, serve) = serving(&server, config).await;
    // A request whose handler never answers: the connection would stay busy for ever.
    let mut hung = TcpStream::connect(addr).await.unwrap();
    hung.write_all(b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    server.shutdown();
    serve.await.unwrap().unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_millis(800),
        "{took:?}"
    );
    assert!(closes_within(&mut hung, Duration::from_millis(200)).await);
}

#[tokio::test]
async fn the_oldest_unfinished_head_is_evicted_with_503() {
    let server = Server::new(Hub::builder());
    let config = ServeConfig {
        head_slots: HeadSlots::new(2),
        ..ServeConfig::default()
    };
    let (addr, _serve) = serving(&server, config).await;
    let mut slow = Vec::new();
    for _ in 0..3 {
        let mut sock = TcpStream::connect(addr).await.unwrap();
        sock.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
        slow.push(sock);
    }
    let mut got = Vec::new();
    read_until(&mut slow[0], &mut got, |_| false).await;
    let status = StatusCode::SERVICE_UNAVAILABLE.as_str().to_owned();
    assert!(
        String::from_utf8_lossy(&got).starts_with(&format!("HTTP/1.1 {status}")),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    // The two newer heads still hold their slots, and whole heads need none.
    assert!(!closes_within(&mut slow[1], Duration::from_millis(100)).await);
    let mut legit = TcpStream::connect(addr).await.unwrap();
    legit.write_all(PLAIN).await.unwrap();
    let mut answer = Vec::new();
    read_until(&mut legit, &mut answer, |g| g.ends_with(b"plain")).await;
    slow[2].write_all(b"1\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    read_until(&mut slow[2], &mut answer, |g| g.ends_with(b"plain")).await;
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
        std::mem::size_of_val(&sse_tokio::serve_connection(
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
