//! The sse-rs demo server on hyper: the demo contract of DESIGN.md.
//!
//! ```text
//! cargo run --release -p sse-hyper --example hyper-demo -- --addr 127.0.0.1:8080
//! ```
//!
//! The routes other than `GET /events` live in `demo/contract.rs`, shared by every adapter's
//! demo; this file is the hyper server loop and the handshake.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use sse_hyper::{Batch, EventStream, Hub, Outcome};
use tokio::net::TcpListener;

#[path = "../../demo/contract.rs"]
mod contract;

use contract::{Options, Reply, Route, Stats};

type Body = Either<EventStream, Full<Batch>>;

struct App {
    hub: Hub,
    stats: Stats,
}

#[tokio::main]
pub(crate) async fn main() {
    let opts = Options::from_args();
    let hub = contract::hub(&opts, sse_hyper::hub_builder());
    let app = Arc::new(App {
        hub: hub.clone(),
        stats: Stats::default(),
    });
    let listener = match TcpListener::bind(opts.addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("demo: cannot listen on {}: {e}", opts.addr);
            std::process::exit(1);
        }
    };
    let local = listener.local_addr().unwrap_or(opts.addr);
    println!("listening on http://{local}");

    if !opts.tick.is_zero() {
        let hub = hub.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(opts.tick);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                every.tick().await;
                contract::tick(&hub);
            }
        });
    }

    let server = auto::Builder::new(TokioExecutor::new());
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    eprintln!("demo: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = tokio::signal::ctrl_c() => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let server = server.clone();
        tokio::spawn(async move {
            // The watch cuts the connection off when its stream is cut off (too slow).
            let watch = sse_hyper::Watch::new();
            let io = TokioIo::new(watch.guard(stream));
            let service = service_fn(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(watch.clone());
                handle(app.clone(), req)
            });
            // An error here is a client going away or sending garbage: nothing to do.
            let _ = server.serve_connection(io, service).await;
        });
    }
    // Streams end promptly without marking ids, so tabs reconnect to the next server.
    let n = hub.shutdown();
    eprintln!("demo: shutting down, ended {n} streams");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

async fn handle(app: Arc<App>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let query = req.uri().query().map(str::to_owned);
    let body = if contract::wants_body(&method, &path) {
        match Limited::new(req.into_body(), contract::MAX_BODY)
            .collect()
            .await
        {
            Ok(body) => body.to_bytes(),
            Err(_) => {
                let reply =
                    Reply::text(StatusCode::PAYLOAD_TOO_LARGE, "body too large or cut short");
                return Ok(respond(reply));
            }
        }
    } else if method == Method::GET && path == "/events" {
        return Ok(events(&app, &req));
    } else {
        Bytes::new()
    };
    Ok(
        match contract::route(
            &app.hub,
            &app.stats,
            &method,
            &path,
            query.as_deref(),
            &body,
        ) {
            Route::Reply(reply) => respond(reply),
            // Not a GET: the handshake refuses it.
            Route::Events => respond(Reply::not_acceptable()),
        },
    )
}

fn events<B>(app: &App, req: &Request<B>) -> Response<Body> {
    app.stats.event_request();
    match sse_hyper::handshake(&app.hub, req) {
        Outcome::Accept(accepted) => {
            contract::greet(&accepted.session, accepted.continuity);
            accepted.response.map(Either::Left)
        }
        Outcome::NoContent(res) => {
            app.stats.no_content();
            res.map(Either::Left)
        }
        Outcome::GoAway(res) => res.map(Either::Left),
        Outcome::NotEventStream(_) => respond(Reply::not_acceptable()),
    }
}

fn respond(reply: Reply) -> Response<Body> {
    let mut res = Response::new(Either::Right(Full::new(Batch::from(reply.body))));
    *res.status_mut() = reply.status;
    if let Some(ct) = reply.content_type {
        res.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    res
}
