//! The `axum` feature in a real `Router` on a loopback socket: the `Handshake` extractor and
//! `Outcome` as the response (accept, 204, not ours), and `sse_hyper::axum::serve`'s guard
//! cutting a reader that stopped reading.

// In the workspace the crate's dev-dependency on itself turns `axum` on; a packaged copy
// (which loses that path dependency) builds this test empty unless asked for the feature.
#![cfg(feature = "axum")]
#![allow(clippy::unwrap_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use sse_hyper::axum::Handshake;
use sse_hyper::{Event, Hub, Outcome, ServeConfig, Server};

async fn events(Handshake(outcome): Handshake) -> Outcome {
    if let Outcome::Accept(accepted) = &outcome {
        accepted
            .session
            .emit("hello", accepted.id().to_string())
            .unwrap();
    }
    outcome
}

async fn start(server: Server) -> SocketAddr {
    let app = Router::new()
        .route("/events", get(events))
        .with_state(server.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        sse_hyper::axum::serve(&server, listener, ServeConfig::default(), app)
            .await
            .unwrap()
    });
    addr
}

/// `GET /events` on a blocking socket; returns the socket and what came within `wait`.
fn request(addr: SocketAddr, headers: &str, wait: Duration) -> (std::net::TcpStream, String) {
    let mut sock = std::net::TcpStream::connect(addr).unwrap();
    write!(sock, "GET /events HTTP/1.1\r\nHost: x\r\n{headers}\r\n").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match sock.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    (sock, String::from_utf8_lossy(&got).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_204_and_not_ours_in_a_router() {
    let server = Server::new(Hub::builder().keep_alive(None));
    let hub = server.hub().clone();
    let addr = start(server).await;
    let accept = "Accept: text/event-stream\r\n";
    let (sock, text) =
        tokio::task::spawn_blocking(move || request(addr, accept, Duration::from_millis(500)))
            .await
            .unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(text.contains("content-type: text/event-stream"), "{text}");
    let id = hub.ids()[0].to_string();
    assert!(text.contains("event: hello\n"), "{text}");
    assert!(text.contains(&id));
    drop(sock);

    // Closed by the server: the reconnect gets 204.
    let deadline = Instant::now() + Duration::from_secs(2);
    while hub.session(&id).is_some() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (sock, _) =
        tokio::task::spawn_blocking(move || request(addr, accept, Duration::from_millis(300)))
            .await
            .unwrap();
    let second = hub.ids()[0].to_string();
    assert!(hub.close(&second).is_ok());
    drop(sock);
    let headers = format!("{accept}Last-Event-ID: {second}\r\n");
    let (_sock, text) =
        tokio::task::spawn_blocking(move || request(addr, &headers, Duration::from_millis(300)))
            .await
            .unwrap();
    assert!(text.starts_with("HTTP/1.1 204"), "{text}");

    // Not an event-stream request: 406 with a hint.
    let (_sock, text) =
        tokio::task::spawn_blocking(move || request(addr, "", Duration::from_millis(300)))
            .await
            .unwrap();
    assert!(text.starts_with("HTTP/1.1 406"), "{text}");
    assert!(text.contains("Accept: text/event-stream"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guard_cuts_a_reader_that_stopped_reading() {
    let server = Server::new(Hub::builder().keep_alive(None).budget(256 * 1024));
    let hub = server.hub().clone();
    let addr = start(server).await;
    // A reader that never reads: tiny receive buffer, nothing read after the request.
    let slow = tokio::task::spawn_blocking(move || {
        let sock =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        sock.set_recv_buffer_size(4096).unwrap();
        sock.connect(&addr.into()).unwrap();
        let mut sock: std::net::TcpStream = sock.into();
        sock.write_all(b"GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
            .unwrap();
        sock
    })
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    while hub.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(hub.len(), 1);
    // Far more than the budget: the session is cut off, and the guard drops the socket.
    let chunk = Event::new().data("x".repeat(64 * 1024));
    for _ in 0..64 {
        hub.broadcast(&chunk);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(hub.is_empty(), "the slow session left the hub");
    let closed = tokio::task::spawn_blocking(move || {
        let mut sock = slow;
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = vec![0u8; 1 << 20];
        let started = Instant::now();
        loop {
            match sock.read(&mut buf) {
                Ok(0) => return Some(started.elapsed()),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                    return Some(started.elapsed());
                }
                Err(_) => return None,
            }
        }
    })
    .await
    .unwrap();
    assert!(
        closed.is_some(),
        "the stalled reader's socket was not closed"
    );
}
