//! The hyper demo closes idle HTTP/2 connections: hyper has no idle timeout for them (its
//! header timer is HTTP/1.1's), so without one a client could hold any number of
//! connections that carry nothing. A connection with no request under way and no open event
//! stream for the idle limit gets a GOAWAY and is closed; one that carries an event stream is
//! kept however long the stream lasts. Spoken as h2 with prior knowledge over plain TCP (the
//! demo's auto builder takes it, as it takes h2 through ALPN over TLS).

#![allow(clippy::unwrap_used, clippy::panic)] // a test reports failure by panicking

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use sse_conformance::{Demo, PATIENCE};
use sse_proto::{Decoder, Item};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

const BIN: &str = env!("CARGO_BIN_EXE_demo-hyper");
/// The demo's idle limit in these tests.
const IDLE: Duration = Duration::from_millis(300);

fn demo() -> Demo {
    let idle = IDLE.as_millis().to_string();
    Demo::start_with_env(
        BIN,
        &["--tick-ms", "0"],
        &[("SSE_DEMO_IDLE_TIMEOUT_MS", idle.as_str())],
    )
    .unwrap()
}

/// An h2 connection to the demo: its request sender, the task driving it (it ends when the
/// demo closes the connection) and the client's address.
async fn connect(
    addr: SocketAddr,
) -> (
    SendRequest<Full<Bytes>>,
    JoinHandle<hyper::Result<()>>,
    SocketAddr,
) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let local = tcp.local_addr().unwrap();
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    (sender, tokio::spawn(conn), local)
}

async fn get(
    sender: &mut SendRequest<Full<Bytes>>,
    addr: SocketAddr,
    path: &str,
    accept: &str,
) -> Response<Incoming> {
    let req = Request::get(format!("http://{addr}{path}"))
        .header(header::ACCEPT, accept)
        .body(Full::new(Bytes::new()))
        .unwrap();
    tokio::time::timeout(PATIENCE, sender.send_request(req))
        .await
        .expect("a response in time")
        .unwrap()
}

#[tokio::test]
async fn an_idle_h2_connection_gets_a_goaway_and_is_closed() {
    let demo = demo();
    let addr = demo.addr();
    let (mut sender, conn, client) = connect(addr).await;
    let res = get(&mut sender, addr, "/stats", "*/*").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.version(), http::Version::HTTP_2);
    res.into_body().collect().await.unwrap();

    // Nothing more: the demo ends the connection with a GOAWAY (the client's connection
    // then ends without an error) and lets go of its socket.
    let ended = tokio::time::timeout(PATIENCE, conn)
        .await
        .expect("the idle connection was closed")
        .unwrap();
    assert!(ended.is_ok(), "closed without a GOAWAY: {ended:?}");
    assert!(!demo.holds_connection_from(client).unwrap());
    drop(sender);
}

#[tokio::test]
async fn an_h2_connection_with_an_open_event_stream_is_kept() {
    let demo = demo();
    let addr = demo.addr();
    let (mut sender, conn, client) = connect(addr).await;
    let res = get(&mut sender, addr, "/events", "text/event-stream").await;
    assert_eq!(res.status(), StatusCode::OK);
    let mut body = res.into_body();
    let mut decoder = Decoder::new();
    let mut events = Vec::new();

    // Several idle limits with nothing but the open stream, then an event still arrives on
    // it: the connection was kept.
    tokio::time::sleep(4 * IDLE).await;
    assert!(
        !conn.is_finished(),
        "the connection of an open stream was closed"
    );
    assert!(demo.holds_connection_from(client).unwrap());
    let status = tokio::task::spawn_blocking({
        let demo_addr = addr;
        move || {
            let mut sock = std::net::TcpStream::connect(demo_addr).unwrap();
            use std::io::{Read, Write};
            sock.write_all(
                b"POST /broadcast?event=note HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nConnection: close\r\n\r\nafter",
            )
            .unwrap();
            let mut out = String::new();
            sock.read_to_string(&mut out).unwrap();
            out
        }
    })
    .await
    .unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let read = async {
        loop {
            let frame = body.frame().await.expect("the stream ended").unwrap();
            if let Ok(data) = frame.into_data() {
                decoder.feed(&data).unwrap();
                while let Some(item) = decoder.poll_item() {
                    if let Item::Event(e) = item {
                        events.push(e);
                    }
                }
            }
            if events.iter().any(|e| e.event == "note") {
                return;
            }
        }
    };
    tokio::time::timeout(PATIENCE, read)
        .await
        .expect("the broadcast on the kept connection");
    assert_eq!(events.last().unwrap().data, "after");

    // The stream ends (the client resets it): the connection is idle, and closed.
    drop(body);
    let ended = tokio::time::timeout(PATIENCE, conn)
        .await
        .expect("the connection was closed once idle")
        .unwrap();
    assert!(ended.is_ok(), "closed without a GOAWAY: {ended:?}");
    drop(sender);
}
