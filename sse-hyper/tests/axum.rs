//! sse-hyper mounted in an axum 0.8 `Router`, served by `axum::serve` on a real loopback
//! socket and read with hyper's HTTP/1.1 client (which de-chunks the body); plus the
//! keep-alive of an idle `EventStream` body on paused tokio time.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::{Buf, Bytes};
use http::{HeaderValue, StatusCode, header};
use http_body::Body as _;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use sse_hyper::{Batch, Event, EventStream, Hub, Outcome, Server};
use sse_proto::{Decoder, Item, MessageEvent};
use tokio::net::{TcpListener, TcpStream};

/// How long any single wait on the network may take before the test fails.
const WAIT: Duration = Duration::from_secs(2);

/// axum's `Body` wants `Bytes` data: `into_bytes` hands out the frames' buffers as they are.
fn to_axum(body: EventStream) -> Body {
    Body::new(body.into_bytes())
}

async fn events(State(server): State<Server>, req: Request) -> Response {
    match server.handshake(&req).await {
        Outcome::Accept(accepted) => accepted.response.map(to_axum),
        Outcome::NoContent(response)
        | Outcome::GoAway(response)
        | Outcome::BadRequest(response) => response.map(to_axum),
        Outcome::NotEventStream(_) => StatusCode::NOT_ACCEPTABLE.into_response(),
    }
}

/// Serves the router on 127.0.0.1:0 and returns its address.
async fn serve(server: Server) -> SocketAddr {
    let app = Router::new()
        .route("/events", get(events))
        .with_state(server);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// `GET /events` on a new HTTP/1.1 connection, with the given extra headers.
async fn get_events(addr: SocketAddr, headers: &[(&str, &str)]) -> http::Response<Incoming> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = http::Request::get("/events").header(header::HOST, addr.to_string());
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let req = req.body(Empty::<Bytes>::new()).unwrap();
    tokio::time::timeout(WAIT, sender.send_request(req))
        .await
        .expect("response head in time")
        .unwrap()
}

/// Reads the body into `decoder` until `done` holds, failing after [`WAIT`] or at its end.
async fn read_until(
    body: &mut Incoming,
    decoder: &mut Decoder,
    items: &mut Vec<Item>,
    mut done: impl FnMut(&Decoder, &[Item]) -> bool,
) {
    let read = async {
        while !done(decoder, items) {
            let frame = body.frame().await.expect("the stream ended early").unwrap();
            if let Ok(data) = frame.into_data() {
                decoder.feed(&data).unwrap();
                while let Some(item) = decoder.poll_item() {
                    items.push(item);
                }
            }
        }
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("the expected items in time");
}

fn events_of(items: &[Item]) -> Vec<&MessageEvent> {
    items
        .iter()
        .filter_map(|item| match item {
            Item::Event(event) => Some(event),
            Item::Retry(_) => None,
        })
        .collect()
}

#[tokio::test]
async fn axum_stream_preamble_event_close_and_204() {
    let server = Server::new(Hub::builder().retry(Duration::from_millis(1500)));
    let hub = server.hub().clone();
    let addr = serve(server).await;

    let res = get_events(addr, &[("accept", "text/event-stream")]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers().get(header::CONTENT_TYPE),
        Some(&HeaderValue::from_static("text/event-stream"))
    );
    assert_eq!(
        res.headers().get(header::CACHE_CONTROL),
        Some(&HeaderValue::from_static("no-cache, no-transform"))
    );
    // HTTP/1.1: the adapter asks for a persistent connection.
    assert_eq!(
        res.headers().get(header::CONNECTION),
        Some(&HeaderValue::from_static("keep-alive"))
    );
    let mut body = res.into_body();

    // The preamble: `retry:` then `id:` and a blank line, which sets the id without an event.
    let (mut decoder, mut items) = (Decoder::new(), Vec::new());
    read_until(&mut body, &mut decoder, &mut items, |d, _| {
        !d.last_event_id().is_empty()
    })
    .await;
    assert_eq!(items, vec![Item::Retry(1500)]);
    let ids = hub.ids();
    assert_eq!(ids.len(), 1, "one session in the hub");
    let id = ids[0].to_string();
    assert_eq!(decoder.last_event_id(), id);

    // CRLF in the data becomes one LF for the client; the event carries the session id.
    let event = Event::new().event("x").unwrap().data("a\r\nb");
    hub.send_to(&id, &event).unwrap();
    read_until(&mut body, &mut decoder, &mut items, |_, items| {
        !events_of(items).is_empty()
    })
    .await;
    assert_eq!(
        events_of(&items),
        vec![&MessageEvent {
            event: "x".into(),
            data: "a\nb".into(),
            last_event_id: id.clone(),
        }]
    );

    // close(): the response ends...
    hub.close(&id).unwrap();
    let end = tokio::time::timeout(WAIT, async {
        match body.frame().await {
            None => {}
            Some(Ok(frame)) => {
                let data = frame.into_data().unwrap_or_default();
                panic!("nothing more after close, got {data:?}");
            }
            Some(Err(e)) => panic!("the stream should end cleanly: {e}"),
        }
    });
    end.await.expect("the stream ends after close()");
    assert!(hub.session(&id).is_none(), "closed session left the hub");

    // ...and the reconnect with the id gets 204, which stops the browser.
    let res = get_events(
        addr,
        &[("accept", "text/event-stream"), ("last-event-id", &id)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert!(hub.is_empty(), "a 204 registers no session");

    // The first 204 consumed the mark: the same id comes back as a live session.
    let res = get_events(
        addr,
        &[("accept", "text/event-stream"), ("last-event-id", &id)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let (mut decoder, mut items) = (Decoder::new(), Vec::new());
    let mut body = res.into_body();
    read_until(&mut body, &mut decoder, &mut items, |d, _| {
        !d.last_event_id().is_empty()
    })
    .await;
    assert_eq!(decoder.last_event_id(), id);
}

/// `axum::serve(..).with_graceful_shutdown(signal)` waits for every response to end, and an
/// event stream never ends by itself: the signal must also call `hub.shutdown()`, which ends
/// every stream (after what is queued) within the hub's grace. Then one open tab no longer
/// keeps the server up.
#[tokio::test]
async fn axum_graceful_shutdown_with_an_open_stream_exits_promptly() {
    let server = Server::new(Hub::builder());
    let hub = server.hub().clone();
    let app = Router::new()
        .route("/events", get(events))
        .with_state(server.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, fired) = tokio::sync::oneshot::channel::<()>();
    let stopping = server.clone();
    let serving = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = fired.await;
                stopping.shutdown();
            })
            .await
    });

    let res = get_events(addr, &[("accept", "text/event-stream")]).await;
    assert_eq!(res.status(), StatusCode::OK);
    let mut body = res.into_body();
    let (mut decoder, mut items) = (Decoder::new(), Vec::new());
    read_until(&mut body, &mut decoder, &mut items, |d, _| {
        !d.last_event_id().is_empty()
    })
    .await;
    assert_eq!(hub.len(), 1);
    let drained = tokio::time::timeout(Duration::from_millis(100), server.drained()).await;
    assert!(drained.is_err(), "a stream is open: not drained");

    let started = std::time::Instant::now();
    trigger.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(1), serving)
        .await
        .expect("axum exits within a second of the signal")
        .unwrap()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(1));
    tokio::time::timeout(WAIT, server.drained())
        .await
        .expect("drained once axum is done with the stream");
    // The stream ended cleanly, and its session left the hub without being marked closed.
    let end = tokio::time::timeout(WAIT, body.frame())
        .await
        .expect("the end");
    assert!(end.is_none(), "nothing after the end of the stream");
    assert!(hub.is_empty());
}

#[tokio::test]
async fn axum_without_accept_header_gets_406() {
    let server = Server::new(Hub::builder());
    let hub = server.hub().clone();
    let addr = serve(server).await;

    let res = get_events(addr, &[]).await;
    assert_eq!(res.status(), StatusCode::NOT_ACCEPTABLE);
    let res = get_events(addr, &[("accept", "text/html")]).await;
    assert_eq!(res.status(), StatusCode::NOT_ACCEPTABLE);
    assert!(hub.is_empty(), "no session for a request that is not ours");

    // The same route does serve a stream when asked properly.
    let res = get_events(addr, &[("accept", "text/event-stream")]).await;
    assert_eq!(res.status(), StatusCode::OK);
}

type Polled = Poll<Option<Result<http_body::Frame<Batch>, Infallible>>>;

/// Polls the body once, as hyper would, without waiting.
fn poll_now(body: &mut EventStream) -> Polled {
    Pin::new(body).poll_frame(&mut Context::from_waker(Waker::noop()))
}

fn data_of(polled: Polled) -> Bytes {
    match polled {
        Poll::Ready(Some(Ok(frame))) => {
            let mut batch = frame.into_data().unwrap();
            batch.copy_to_bytes(batch.remaining())
        }
        other => panic!("expected a data frame, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn idle_body_sends_keep_alive_after_interval() {
    let server = Server::new(Hub::builder().keep_alive(Some(Duration::from_secs(15))));
    let req = http::Request::get("/events")
        .header(header::ACCEPT, "text/event-stream")
        .body(())
        .unwrap();
    let hub = server.hub();
    let Outcome::Accept(accepted) = server.handshake(&req).await else {
        panic!("an event-stream request is accepted");
    };
    let id = accepted.id().to_string();
    let mut body = accepted.response.into_body();

    let preamble = data_of(poll_now(&mut body));
    assert_eq!(
        preamble,
        Bytes::from(format!("retry: 3000\nid: {id}\n\n")),
        "the first frame is the preamble"
    );
    assert!(poll_now(&mut body).is_pending(), "nothing queued yet");

    tokio::time::advance(Duration::from_secs(14)).await;
    assert!(
        poll_now(&mut body).is_pending(),
        "no keep-alive before 15 s"
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(data_of(poll_now(&mut body)), Bytes::from_static(b":\n\n"));
    assert!(poll_now(&mut body).is_pending(), "one comment per interval");

    // An event restarts the idle interval: the next comment is 15 s after it.
    tokio::time::advance(Duration::from_secs(5)).await;
    hub.send_to(&id, &Event::new().data("hi")).unwrap();
    let mut decoder = Decoder::new();
    decoder.feed(&preamble).unwrap();
    decoder.feed(&data_of(poll_now(&mut body))).unwrap();
    assert_eq!(decoder.poll_item(), Some(Item::Retry(3000)));
    assert_eq!(
        decoder.poll_item(),
        Some(Item::Event(MessageEvent {
            event: "message".into(),
            data: "hi".into(),
            last_event_id: id.clone(),
        }))
    );
    tokio::time::advance(Duration::from_secs(14)).await;
    assert!(poll_now(&mut body).is_pending(), "idle for 14 s only");
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(data_of(poll_now(&mut body)), Bytes::from_static(b":\n\n"));

    // The body is the session: dropping it (hyper does when the client leaves) ends it.
    drop(body);
    assert!(hub.session(&id).is_none());
}
