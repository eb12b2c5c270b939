//! sse-hyper served by hyper's HTTP/2 server on a real loopback socket, read by an h2
//! prior-knowledge client: headers legal in HTTP/2, the preamble, events, several streams on
//! one connection, and sessions leaving the hub when the client goes away.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, Version, header};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use sse_hyper::{EndReason, Event, EventStream, Hub, Outcome, Server};
use sse_proto::{Decoder, Item, MessageEvent};
use tokio::net::{TcpListener, TcpStream};

/// How long any single wait on the network may take before the test fails.
const WAIT: Duration = Duration::from_secs(2);

/// The response heads the handshake produced, as the service saw them (before hyper's h2
/// encoder, which silently strips connection-specific headers, could hide a mistake).
type Heads = Arc<Mutex<Vec<HeaderMap>>>;

async fn handle(server: &Server, heads: &Heads, req: &Request<Incoming>) -> Response<EventStream> {
    match server.handshake(req).await {
        Outcome::Accept(accepted) => {
            heads
                .lock()
                .unwrap()
                .push(accepted.response.headers().clone());
            accepted.response
        }
        Outcome::NoContent(response)
        | Outcome::GoAway(response)
        | Outcome::BadRequest(response) => response,
        Outcome::NotEventStream(_) => {
            let mut res = Response::new(EventStream::empty());
            *res.status_mut() = StatusCode::NOT_ACCEPTABLE;
            res
        }
    }
}

/// Serves the adapter over HTTP/2 (prior knowledge) on 127.0.0.1:0.
async fn serve(server: Server) -> (SocketAddr, Heads) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let heads = Heads::default();
    let seen = heads.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (server, heads) = (server.clone(), seen.clone());
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let (server, heads) = (server.clone(), heads.clone());
                    async move { Ok::<_, Infallible>(handle(&server, &heads, &req).await) }
                });
                // A client going away ends the connection with an error: nothing to do.
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    (addr, heads)
}

/// An h2 prior-knowledge client connection, and a handle on its socket that can cut it.
async fn connect(addr: SocketAddr) -> (SendRequest<Empty<Bytes>>, std::net::TcpStream) {
    let tcp = TcpStream::connect(addr).await.unwrap().into_std().unwrap();
    let socket = tcp.try_clone().unwrap();
    let tcp = TcpStream::from_std(tcp).unwrap();
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    (sender, socket)
}

async fn get_events(
    sender: &mut SendRequest<Empty<Bytes>>,
    addr: SocketAddr,
) -> Response<Incoming> {
    let req = Request::get(format!("http://{addr}/events"))
        .header(header::ACCEPT, "text/event-stream")
        .body(Empty::new())
        .unwrap();
    tokio::time::timeout(WAIT, sender.send_request(req))
        .await
        .expect("response head in time")
        .unwrap()
}

/// One event stream as a client reads it: the DATA frames fed to a decoder.
struct Stream {
    body: Incoming,
    decoder: Decoder,
    items: Vec<Item>,
}

impl Stream {
    fn new(res: Response<Incoming>) -> Stream {
        Stream {
            body: res.into_body(),
            decoder: Decoder::new(),
            items: Vec::new(),
        }
    }

    /// Reads until `done` holds; fails after [`WAIT`] or if the stream ends first.
    async fn read_until(&mut self, mut done: impl FnMut(&Decoder, &[Item]) -> bool) {
        let read = async {
            while !done(&self.decoder, &self.items) {
                let frame = self
                    .body
                    .frame()
                    .await
                    .expect("the stream ended early")
                    .unwrap();
                if let Ok(data) = frame.into_data() {
                    self.decoder.feed(&data).unwrap();
                    while let Some(item) = self.decoder.poll_item() {
                        self.items.push(item);
                    }
                }
            }
        };
        tokio::time::timeout(WAIT, read)
            .await
            .expect("the expected items in time");
    }

    /// Reads the preamble and returns the id it set.
    async fn preamble(&mut self) -> String {
        self.read_until(|d, _| !d.last_event_id().is_empty()).await;
        assert!(
            matches!(self.items.as_slice(), [Item::Retry(_)]),
            "the preamble dispatches nothing: {:?}",
            self.items
        );
        self.decoder.last_event_id().to_owned()
    }

    /// Reads until an event named `name` and returns the events before it and it.
    async fn events_through(&mut self, name: &str) -> Vec<MessageEvent> {
        let seen = |items: &[Item]| {
            items
                .iter()
                .any(|i| matches!(i, Item::Event(e) if e.event == name))
        };
        self.read_until(|_, items| seen(items)).await;
        self.items
            .iter()
            .filter_map(|item| match item {
                Item::Event(e) => Some(e.clone()),
                Item::Retry(_) => None,
            })
            .collect()
    }
}

fn event(name: &'static str, data: &'static str, id: &str) -> MessageEvent {
    MessageEvent {
        event: name.into(),
        data: data.into(),
        last_event_id: id.into(),
    }
}

/// Waits (at most [`WAIT`]) for the session `id` to end, and checks that it left the hub.
async fn gone(hub: &Hub, id: &str) {
    if let Some(session) = hub.session(id) {
        tokio::time::timeout(WAIT, session.ended())
            .await
            .unwrap_or_else(|_| panic!("session {id} did not end within {WAIT:?}"));
    }
    assert!(
        hub.session(id).is_none(),
        "session {id} ended but is still in the hub"
    );
}

#[tokio::test]
async fn h2_headers_preamble_and_events() {
    let server = Server::new(Hub::builder());
    let hub = server.hub().clone();
    let (addr, heads) = serve(server).await;
    let (mut sender, _socket) = connect(addr).await;

    let res = get_events(&mut sender, addr).await;
    assert_eq!(res.version(), Version::HTTP_2);
    assert_eq!(res.status(), StatusCode::OK);
    let headers = res.headers();
    assert_eq!(headers[header::CONTENT_TYPE], "text/event-stream");
    assert_eq!(headers[header::CACHE_CONTROL], "no-cache, no-transform");
    assert!(!headers.contains_key(header::CONNECTION), "{headers:?}");
    // hyper would strip it on the wire anyway: the adapter must not produce it for h2.
    let produced = heads.lock().unwrap().clone();
    assert_eq!(produced.len(), 1);
    assert!(
        !produced[0].contains_key(header::CONNECTION),
        "the handshake put a Connection header on an HTTP/2 response: {:?}",
        produced[0]
    );
    assert_eq!(produced[0][header::CONTENT_TYPE], "text/event-stream");

    let mut stream = Stream::new(res);
    let id = stream.preamble().await;
    assert_eq!(hub.ids().len(), 1);
    assert_eq!(
        id,
        hub.ids()[0].as_str(),
        "the preamble sets the session id"
    );

    hub.send_to(&id, &Event::new().event("x").unwrap().data("a\r\nb"))
        .unwrap();
    hub.send_to(&id, &Event::new().event("y").unwrap().data(" lead\rtrail"))
        .unwrap();
    assert_eq!(
        stream.events_through("y").await,
        vec![event("x", "a\nb", &id), event("y", " lead\ntrail", &id)]
    );
}

#[tokio::test]
async fn h2_concurrent_streams_have_their_own_sessions() {
    let server = Server::new(Hub::builder());
    let hub = server.hub().clone();
    let (addr, _) = serve(server).await;
    let (sender, _socket) = connect(addr).await;

    // Two requests in flight at once on the one connection.
    let (mut s1, mut s2) = (sender.clone(), sender);
    let (r1, r2) = tokio::join!(get_events(&mut s1, addr), get_events(&mut s2, addr));
    assert_eq!((r1.status(), r2.status()), (StatusCode::OK, StatusCode::OK));
    let (mut a, mut b) = (Stream::new(r1), Stream::new(r2));
    let (id_a, id_b) = (a.preamble().await, b.preamble().await);
    assert_ne!(id_a, id_b, "each stream is its own session");
    let mut ids: Vec<String> = hub.ids().iter().map(|id| id.to_string()).collect();
    ids.sort();
    let mut expected = vec![id_a.clone(), id_b.clone()];
    expected.sort();
    assert_eq!(ids, expected);

    hub.send_to(&id_a, &Event::new().event("for").unwrap().data("a"))
        .unwrap();
    hub.send_to(&id_b, &Event::new().event("for").unwrap().data("b"))
        .unwrap();
    // A broadcast marks the end: anything misrouted would arrive before it.
    assert_eq!(hub.broadcast(&Event::new().event("end").unwrap()), 2);
    assert_eq!(
        a.events_through("end").await,
        vec![event("for", "a", &id_a), event("end", "", &id_a)]
    );
    assert_eq!(
        b.events_through("end").await,
        vec![event("for", "b", &id_b), event("end", "", &id_b)]
    );

    // Ending one stream leaves the other streaming on the same connection.
    drop(a);
    gone(&hub, &id_a).await;
    hub.send_to(&id_b, &Event::new().event("still").unwrap().data("here"))
        .unwrap();
    assert_eq!(
        b.events_through("still").await.last(),
        Some(&event("still", "here", &id_b))
    );
}

#[tokio::test]
async fn h2_dropping_the_body_ends_the_session() {
    let server = Server::new(Hub::builder());
    let hub = server.hub().clone();
    let (addr, _) = serve(server).await;
    let (mut sender, _socket) = connect(addr).await;

    let mut stream = Stream::new(get_events(&mut sender, addr).await);
    let id = stream.preamble().await;
    let session = hub.session(&id).expect("live session");

    drop(stream); // the client resets the stream; the connection stays up
    gone(&hub, &id).await;
    assert_eq!(session.end_reason(), Some(EndReason::PeerGone));
    assert!(hub.send_to(&id, &Event::new().data("late")).is_err());

    // The connection still serves new streams.
    let mut again = Stream::new(get_events(&mut sender, addr).await);
    let new_id = again.preamble().await;
    assert_ne!(new_id, id);
    assert_eq!(hub.len(), 1);
}

#[tokio::test]
async fn h2_dropping_the_connection_ends_every_session_on_it() {
    let server = Server::new(Hub::builder());
    let hub = server.hub().clone();
    let (addr, _) = serve(server).await;
    let (sender, socket) = connect(addr).await;

    let (mut s1, mut s2) = (sender.clone(), sender);
    let mut a = Stream::new(get_events(&mut s1, addr).await);
    let mut b = Stream::new(get_events(&mut s2, addr).await);
    let (id_a, id_b) = (a.preamble().await, b.preamble().await);
    assert_eq!(hub.len(), 2);
    let ended = hub.session(&id_a).expect("live session").ended();

    // The network goes (the client still holds both streams): the server reads EOF.
    socket.shutdown(std::net::Shutdown::Both).unwrap();
    gone(&hub, &id_a).await;
    gone(&hub, &id_b).await;
    assert!(hub.is_empty());
    let reason = tokio::time::timeout(WAIT, ended).await.unwrap();
    assert_eq!(reason, EndReason::PeerGone);
    drop((a, b, s1, s2));
}

/// Serves the adapter over HTTP/2 with each connection guarded by a [`sse_hyper::Watch`], as
/// an application facing slow readers does.
async fn serve_guarded(server: Server) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let server = server.clone();
            tokio::spawn(async move {
                let watch = sse_hyper::Watch::new();
                let io = TokioIo::new(watch.guard(tcp));
                let heads = Heads::default();
                let service = service_fn(move |mut req: Request<Incoming>| {
                    req.extensions_mut().insert(watch.clone());
                    let (server, heads) = (server.clone(), heads.clone());
                    async move { Ok::<_, Infallible>(handle(&server, &heads, &req).await) }
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn h2_a_stream_stalled_by_its_own_window_is_cut_alone() {
    let server = Server::new(Hub::builder().keep_alive(None).budget(16 * 1024));
    let hub = server.hub().clone();
    let addr = serve_guarded(server).await;
    // A client that grants each stream the protocol's initial 64 KiB window, and more only
    // as the application reads: a tab frozen in the background reads nothing.
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .initial_stream_window_size(65_535)
        .handshake::<_, Empty<Bytes>>(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let (mut s1, mut s2) = (sender.clone(), sender);
    let mut frozen = Stream::new(get_events(&mut s1, addr).await);
    let mut live = Stream::new(get_events(&mut s2, addr).await);
    let (frozen_id, live_id) = (frozen.preamble().await, live.preamble().await);

    // The frozen stream's window fills, then its queue passes the budget.
    let session = hub.session(&frozen_id).expect("live session");
    let chunk = "x".repeat(4096);
    for _ in 0..200 {
        if session.send(chunk.clone()).is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let reason = tokio::time::timeout(WAIT, session.ended()).await.unwrap();
    assert_eq!(reason, EndReason::TooSlow);
    gone(&hub, &frozen_id).await;

    // The other stream on the connection goes on.
    hub.send_to(
        &live_id,
        &Event::new().event("after").unwrap().data("still here"),
    )
    .unwrap();
    let events = live.events_through("after").await;
    assert_eq!(events.last().unwrap().data, "still here");
    assert!(hub.session(&live_id).is_some());

    // The frozen tab, once it reads again, gets what was in flight and then the end.
    let drained = async {
        while let Some(frame) = frozen.body.frame().await {
            if frame.is_err() {
                break;
            }
        }
    };
    tokio::time::timeout(WAIT, drained)
        .await
        .expect("the cut stream ends once read");
}
