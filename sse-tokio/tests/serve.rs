//! sse-tokio on its own: the HTTP/1.1 head reader refuses bad requests with the right status
//! over a real socket, and a stream runs over any `AsyncRead + AsyncWrite` (here an in-memory
//! duplex pipe), with keep-alive on tokio's paused clock.

#![allow(clippy::unwrap_used, clippy::panic)] // a test reports failure by panicking

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::Response;
use sse_proto::{Decoder, EndReason, Event, Item};
use sse_tokio::{Hub, Outcome, ReaderLimits, ReaderTimeouts, Reply, ServeConfig, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn server(config: ServeConfig) -> (SocketAddr, Hub) {
    let server = Server::new(Hub::builder());
    let hub = server.hub().clone();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handler_server = server.clone();
    let handler = move |req: http::Request<Bytes>| {
        let server = handler_server.clone();
        async move {
            match server.handshake(&req).await {
                Outcome::Accept(accepted) => Reply::Stream(accepted),
                Outcome::NoContent(res) | Outcome::GoAway(res) | Outcome::BadRequest(res) => {
                    Reply::Response(res)
                }
                Outcome::NotEventStream(_) => {
                    let body = Bytes::from(format!("{} bytes", req.body().len()));
                    Reply::Response(Response::new(body))
                }
            }
        }
    };
    tokio::spawn(async move { server.serve(listener, config, handler).await });
    (addr, hub)
}

/// Sends `request` and reads until the server closes; returns the status code.
async fn status_of(addr: SocketAddr, request: &[u8]) -> u16 {
    let mut sock = TcpStream::connect(addr).await.unwrap();
    sock.write_all(request).await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), sock.read_to_end(&mut reply))
        .await
        .expect("the server answers and closes")
        .unwrap();
    let text = String::from_utf8_lossy(&reply);
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn bad_requests_get_4xx_and_the_server_lives_on() {
    let config = ServeConfig {
        limits: ReaderLimits {
            max_head: 1024,
            max_body: 64,
        },
        timeouts: ReaderTimeouts::uniform(Duration::from_millis(300)),
        ..ServeConfig::default()
    };
    let (addr, _hub) = server(config).await;
    assert_eq!(status_of(addr, b"NOT A REQUEST\r\n\r\n").await, 400);
    assert_eq!(
        status_of(addr, b"GET / HTTP/1.1\r\nBad Header\r\n\r\n").await,
        400
    );
    let big = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(2048));
    assert_eq!(status_of(addr, big.as_bytes()).await, 431);
    let body = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 65\r\n\r\n{}",
        "b".repeat(65)
    );
    assert_eq!(status_of(addr, body.as_bytes()).await, 413);
    // Half a head, then silence: 408 after the read timeout.
    assert_eq!(status_of(addr, b"GET / HTTP/1.1\r\nHost: x").await, 408);
    // Still serving, and a body within the limit reaches the handler whole.
    let ok = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
    let mut sock = TcpStream::connect(addr).await.unwrap();
    sock.write_all(ok).await.unwrap();
    let mut reply = String::new();
    sock.read_to_string(&mut reply).await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.ends_with("5 bytes"), "{reply}");
}

#[tokio::test]
async fn keep_alive_connection_serves_several_requests() {
    let (addr, _hub) = server(ServeConfig::default()).await;
    let mut sock = TcpStream::connect(addr).await.unwrap();
    let one = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab";
    sock.write_all(&[&one[..], &one[..]].concat())
        .await
        .unwrap();
    sock.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut reply = String::new();
    sock.read_to_string(&mut reply).await.unwrap();
    assert_eq!(reply.matches("HTTP/1.1 200").count(), 3, "{reply}");
}

/// A custom server that parsed the request itself hands the stream any transport.
#[tokio::test(start_paused = true)]
async fn stream_over_any_transport_with_keep_alive() {
    let server = Server::new(Hub::builder().keep_alive(Some(Duration::from_secs(15))));
    let hub = server.hub();
    let req = http::Request::get("/events?id=tab-7")
        .header("accept", "text/event-stream")
        .body(())
        .unwrap();
    let Outcome::Accept(mut accepted) = server.handshake(&req).await else {
        panic!("an event-stream request");
    };
    accepted
        .headers_mut()
        .insert("x-app", http::HeaderValue::from_static("demo"));
    let session = accepted.session.clone();
    let (mut client, mut transport) = tokio::io::duplex(64 * 1024);
    let task = tokio::spawn(async move { sse_tokio::run(accepted, &mut transport).await });

    let mut got = Vec::new();
    let read_until =
        async |client: &mut tokio::io::DuplexStream, needle: &[u8], got: &mut Vec<u8>| {
            let mut buf = [0u8; 4096];
            while !got.windows(needle.len()).any(|w| w == needle) {
                let n = client.read(&mut buf).await.unwrap();
                assert!(
                    n > 0,
                    "stream ended early: {:?}",
                    String::from_utf8_lossy(got)
                );
                got.extend_from_slice(&buf[..n]);
            }
        };
    read_until(&mut client, b"\r\n\r\n", &mut got).await;
    let head = String::from_utf8_lossy(&got).into_owned();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("x-app: demo"), "{head}");

    session.emit("hello", "world").unwrap();
    read_until(&mut client, b"world", &mut got).await;
    // Idle for the interval: one keep-alive comment, and only then. A second before it,
    // nothing comes (the read gives up after a millisecond of paused time).
    tokio::time::advance(Duration::from_secs(14)).await;
    let mut buf = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(1), client.read(&mut buf)).await;
    assert!(
        early.is_err(),
        "something came before the interval: {early:?}"
    );
    let before = got.len();
    tokio::time::advance(Duration::from_secs(1)).await;
    read_until(&mut client, b":\n\n", &mut got).await;
    assert!(got.len() > before);

    // De-chunk and decode what arrived.
    let body = &got[got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4..];
    let mut decoder = Decoder::new();
    let mut rest = body;
    while let Ok(httparse::Status::Complete((at, size))) = httparse::parse_chunk_size(rest) {
        let size = usize::try_from(size).unwrap();
        decoder.feed(&rest[at..at + size]).unwrap();
        rest = &rest[(at + size + 2).min(rest.len())..];
    }
    let items: Vec<Item> = std::iter::from_fn(|| decoder.poll_item()).collect();
    assert!(matches!(items[0], Item::Retry(_)));
    let Item::Event(hello) = &items[1] else {
        panic!("{items:?}")
    };
    assert_eq!(
        (hello.event.as_str(), hello.data.as_str()),
        ("hello", "world")
    );
    assert_eq!(hello.last_event_id, "tab-7");

    // The client goes away: the stream ends as PeerGone and the session leaves the hub.
    drop(client);
    let reason = task.await.unwrap().unwrap();
    assert_eq!(reason, EndReason::PeerGone);
    assert!(hub.session("tab-7").is_none());
    assert!(session.send_event(&Event::new().data("late")).is_err());
}

#[tokio::test]
async fn close_ends_the_stream_with_a_terminating_chunk() {
    let (addr, hub) = server(ServeConfig::default()).await;
    let mut sock = TcpStream::connect(addr).await.unwrap();
    sock.write_all(b"GET /e?id=c1 HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.windows(6).any(|w| w == b"id: c1") {
        let n = sock.read(&mut buf).await.unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    hub.close("c1").unwrap();
    tokio::time::timeout(Duration::from_secs(5), sock.read_to_end(&mut got))
        .await
        .expect("the stream ends")
        .unwrap();
    assert!(
        got.ends_with(b"0\r\n\r\n"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    assert_eq!(
        status_of(
            addr,
            b"GET /e HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nLast-Event-ID: c1\r\nConnection: close\r\n\r\n"
        )
        .await,
        204
    );
}

#[tokio::test]
async fn a_trickled_head_gets_408_at_its_deadline_not_per_read() {
    let config = ServeConfig {
        timeouts: ReaderTimeouts::uniform(Duration::from_millis(400)),
        ..ServeConfig::default()
    };
    let (addr, _hub) = server(config).await;
    let mut sock = TcpStream::connect(addr).await.unwrap();
    let started = tokio::time::Instant::now();
    let head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    // One byte every 100 ms: each read is well within the timeout, the head is not.
    for byte in head {
        if sock.write_all(&[*byte]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if started.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), sock.read_to_end(&mut reply)).await;
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
}

#[tokio::test]
async fn head_responses_have_no_body_and_keep_alive_stays_in_step() {
    let (addr, _hub) = server(ServeConfig::default()).await;
    let mut sock = TcpStream::connect(addr).await.unwrap();
    sock.write_all(
        b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nPOST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nzGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut reply = String::new();
    sock.read_to_string(&mut reply).await.unwrap();
    // The HEAD answer says how long the GET body is and sends none of it.
    assert!(
        reply.starts_with("HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\nHTTP/1.1 200 OK\r\n"),
        "{reply}"
    );
    assert_eq!(reply.matches("HTTP/1.1 200").count(), 3, "{reply}");
    assert!(
        reply.contains("1 bytes") && reply.ends_with("0 bytes"),
        "{reply}"
    );
}
