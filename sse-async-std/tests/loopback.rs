//! sse-async-std on a real loopback socket, the same test body run twice: on async-std
//! (`serve` spawning with `async_std::task`) and on smol (`serve_connection` spawned on a
//! `smol::Executor`). The client is raw: it writes the request, de-chunks the body itself and
//! decodes it with `sse_proto::Decoder`.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::future::Future;
use std::time::{Duration, Instant};

use async_io::Timer;
use bytes::Bytes;
use futures_io::{AsyncRead, AsyncWrite};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use http::{Response, StatusCode};
use sse_async_std::{BoxFuture, EndReason, Event, Hub, Outcome, Reply, ServeConfig, Server};
use sse_proto::{Decoder, Item, MessageEvent};

/// How long any single wait on the network may take before the test fails.
const WAIT: Duration = Duration::from_secs(2);
/// The keep-alive interval of the test hub.
const KEEP_ALIVE: Duration = Duration::from_millis(150);

fn server() -> Server {
    Server::new(
        Hub::builder()
            .retry(Duration::from_millis(1500))
            .keep_alive(Some(KEEP_ALIVE)),
    )
}

/// The handler of both servers: `GET /events` with a `connect` event carrying the id.
fn handler(
    server: Server,
) -> impl FnMut(http::Request<Bytes>) -> BoxFuture<'static, Reply> + Clone + Send + 'static {
    move |req| {
        let server = server.clone();
        Box::pin(async move {
            match server.handshake(&req).await {
                Outcome::Accept(accepted) => {
                    let id = accepted.id().to_string();
                    accepted.session.emit("connect", id).unwrap();
                    Reply::Stream(accepted)
                }
                Outcome::NoContent(res) | Outcome::GoAway(res) | Outcome::BadRequest(res) => {
                    Reply::Response(res)
                }
                Outcome::NotEventStream(_) => {
                    let mut res = Response::new(Bytes::new());
                    *res.status_mut() = StatusCode::NOT_ACCEPTABLE;
                    Reply::Response(res)
                }
            }
        })
    }
}

/// `fut`, or a failure naming `what` after `limit`.
async fn within<T>(limit: Duration, what: &str, fut: impl Future<Output = T>) -> T {
    let timeout = async {
        Timer::after(limit).await;
        panic!("timed out: {what}");
    };
    futures_lite::future::or(fut, timeout).await
}

/// A raw HTTP/1.1 client of one event stream.
struct Client<C> {
    io: C,
    /// Bytes read and not yet de-chunked.
    raw: Vec<u8>,
    /// The de-chunked body so far, as text.
    body: String,
    decoder: Decoder,
}

impl<C: AsyncRead + AsyncWrite + Unpin> Client<C> {
    /// Sends `GET /events` and returns the client with the response head read.
    async fn get_events(mut io: C) -> (Client<C>, String) {
        io.write_all(
            b"GET /events HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n",
        )
        .await
        .unwrap();
        let mut client = Client {
            io,
            raw: Vec::new(),
            body: String::new(),
            decoder: Decoder::new(),
        };
        let end = loop {
            if let Some(at) = client.raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            client.read().await;
        };
        let head = String::from_utf8(client.raw.drain(..end).collect()).unwrap();
        client.dechunk();
        (client, head)
    }

    /// One read from the socket; fails at EOF or after [`WAIT`].
    async fn read(&mut self) {
        let mut buf = [0u8; 4096];
        let n = within(WAIT, "a read", self.io.read(&mut buf))
            .await
            .unwrap();
        assert!(n > 0, "the server ended the stream");
        self.raw.extend_from_slice(&buf[..n]);
    }

    /// Moves every complete chunk from `raw` into `body` and the decoder.
    fn dechunk(&mut self) {
        loop {
            let Some(eol) = self.raw.windows(2).position(|w| w == b"\r\n") else {
                return;
            };
            let size = std::str::from_utf8(&self.raw[..eol]).unwrap();
            let size = usize::from_str_radix(size.trim(), 16).unwrap();
            assert!(size > 0, "the server ended the stream");
            if self.raw.len() < eol + 2 + size + 2 {
                return;
            }
            let data: Vec<u8> = self.raw.drain(..eol + 2 + size + 2).collect();
            assert_eq!(&data[eol + 2 + size..], b"\r\n", "chunk trailer");
            let data = &data[eol + 2..eol + 2 + size];
            self.body.push_str(std::str::from_utf8(data).unwrap());
            self.decoder.feed(data).unwrap();
        }
    }

    /// Reads until `done` holds for the body so far.
    async fn read_until(&mut self, mut done: impl FnMut(&str) -> bool) {
        while !done(&self.body) {
            self.read().await;
            self.dechunk();
        }
    }

    /// The next item of the stream.
    async fn next_item(&mut self) -> Item {
        loop {
            if let Some(item) = self.decoder.poll_item() {
                return item;
            }
            self.read().await;
            self.dechunk();
        }
    }

    /// The next dispatched event.
    async fn next_event(&mut self) -> MessageEvent {
        match self.next_item().await {
            Item::Event(event) => event,
            other => panic!("expected an event, got {other:?}"),
        }
    }
}

/// The body shared by both executors: `io` is a fresh connection to a server that answers
/// with [`handler`] on `hub`.
async fn session_over_loopback<C: AsyncRead + AsyncWrite + Unpin>(hub: &Hub, io: C) {
    let (mut client, head) = Client::get_events(io).await;
    let head = head.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200 "), "{head}");
    assert!(
        head.contains("content-type: text/event-stream\r\n"),
        "{head}"
    );
    assert!(head.contains("transfer-encoding: chunked\r\n"), "{head}");

    // The preamble: `retry:`, then `id: <id>`, then a blank line (no event dispatched).
    client.read_until(|body| body.contains("\n\n")).await;
    let mut lines = client.body.split('\n');
    let retry = lines.next().unwrap();
    assert!(retry.starts_with("retry: "), "{:?}", client.body);
    let id = lines
        .next()
        .unwrap()
        .strip_prefix("id: ")
        .unwrap()
        .to_owned();
    assert_eq!(lines.next(), Some(""), "{:?}", client.body);
    assert!(!id.is_empty());
    assert!(matches!(client.next_item().await, Item::Retry(_)));
    assert_eq!(client.decoder.last_event_id(), id);
    let ids: Vec<String> = hub.ids().iter().map(|i| i.to_string()).collect();
    assert_eq!(ids, [id.as_str()]);

    let connect = client.next_event().await;
    assert_eq!(connect.event, "connect");
    assert_eq!(connect.data, id);
    assert_eq!(connect.last_event_id, id);

    // An event sent by id reaches this connection, with the session id as its last id.
    let event = Event::new().event("greet").unwrap().data(" hello\nworld");
    hub.send_to(&id, &event).unwrap();
    let greet = client.next_event().await;
    assert_eq!(greet.event, "greet");
    assert_eq!(greet.data, " hello\nworld");
    assert_eq!(greet.last_event_id, id);

    // Idle: a keep-alive comment comes on the async-io timer.
    let before = Instant::now();
    let sent = client.body.len();
    client
        .read_until(|body| body[sent..].split('\n').any(|l| l.starts_with(':')))
        .await;
    assert!(before.elapsed() < KEEP_ALIVE * 4, "{:?}", before.elapsed());

    // A hang-up removes the session from the hub within a second.
    let session = hub.session(&id).unwrap();
    drop(client);
    let reason = within(
        Duration::from_secs(1),
        "the session to end",
        session.ended(),
    )
    .await;
    assert_eq!(reason, EndReason::PeerGone);
    // An ended session has left the hub.
    assert!(hub.session(&id).is_none());
    assert!(hub.is_empty());
}

#[test]
fn under_async_std() {
    async_std::task::block_on(async {
        let server = server();
        let listener = async_std::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let serving = server.clone();
        async_std::task::spawn(async move {
            let handler = handler(serving.clone());
            serving
                .serve(listener, ServeConfig::default(), handler)
                .await
        });
        let io = async_std::net::TcpStream::connect(addr).await.unwrap();
        session_over_loopback(server.hub(), io).await;
    });
}

#[test]
fn under_smol() {
    let ex = smol::Executor::new();
    smol::block_on(ex.run(async {
        let server = server();
        let listener = smol::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let handler = handler(server.clone());
        let connection = ex.spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            sse_async_std::serve_connection(stream, ServeConfig::default(), handler).await
        });
        let io = smol::net::TcpStream::connect(addr).await.unwrap();
        session_over_loopback(server.hub(), io).await;
        // The connection's task ends once the peer is gone.
        let _ = within(
            Duration::from_secs(1),
            "the connection task to end",
            connection,
        )
        .await;
    }));
}
