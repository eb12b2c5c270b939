//! The sse-rs demo server on hyper: the demo contract of DESIGN.md on [`Server::serve`],
//! which brings the protections a server facing the internet needs (deadlines for heads,
//! bodies and idle connections, a body budget, `Host` rules, the slow-reader guard, HTTP/2's
//! idle GOAWAY, a graceful shutdown on SIGINT or SIGTERM).
//!
//! With `--tls` it serves HTTPS and offers HTTP/2 through ALPN (`demo/tls.rs`), so that
//! every tab of a browser shares one connection: over HTTP/1.1 a browser opens at most six
//! per origin, and each tab's event stream holds one.
//!
//! ```text
//! cargo run --release -p sse-hyper --example hyper-demo -- --addr 127.0.0.1:8080
//! cargo run --release -p sse-hyper --example hyper-demo -- --addr 127.0.0.1:8443 --tls
//! ```
//!
//! The contract's routes, options, limits and certificate are the workspace's `sse-demo`
//! crate; this file is the handshake and the server's set-up.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, header};
use http_body_util::{Either, Full};
use sse_demo::{App, Options, Reply, Route, Stats, limits, routes, signal, tls};
use sse_hyper::{Batch, BodyBudget, BodyLimits, EventStream, Outcome, ServeConfig, Server};
use tokio::net::TcpListener;

type Body = Either<EventStream, Full<Batch>>;

#[tokio::main]
pub(crate) async fn main() {
    let opts = Options::from_args();
    let limits = limits::Limits::from_env();
    let mut config = ServeConfig {
        head_timeout: limits.head,
        idle_timeout: limits.idle,
        body: BodyLimits {
            max_body: routes::MAX_BODY,
            body: limits.body,
            min_body_rate: limits::MIN_BODY_RATE,
            body_ceiling: limits.body_ceiling,
            budget: BodyBudget::new(limits.body_budget),
        },
        shutdown_timeout: limits.shutdown,
        ..ServeConfig::default()
    };
    // `--tls`: made (or read) before anything else, so a bad certificate ends the demo at once.
    if let Some(tls) = &opts.tls {
        match tls::server_config(tls) {
            Ok(tls) => config = config.tls(tls),
            Err(e) => {
                eprintln!("demo: {e}");
                std::process::exit(1);
            }
        }
    }
    let engine = match opts.redis.clone() {
        Some(config) => Some(sse_demo::connect(config, tokio::time::sleep).await),
        None => None,
    };
    let server = match engine.clone() {
        Some(engine) => Server::with_store(opts.settings(), engine),
        None => Server::new(opts.settings()),
    };
    let listener = match TcpListener::bind(opts.addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("demo: cannot listen on {}: {e}", opts.addr);
            std::process::exit(1);
        }
    };
    let local = listener.local_addr().unwrap_or(opts.addr);
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    println!("listening on {scheme}://{local}");

    if !opts.tick.is_zero() {
        let hub = server.hub().clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(opts.tick);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                every.tick().await;
                routes::tick(&hub);
            }
        });
    }
    // On SIGINT or SIGTERM: stop accepting, end every stream without marking ids (tabs
    // reconnect to the next server; new event-stream requests get a go-away answer), and
    // return once every connection is closed (or the shutdown bound has passed).
    let stop = server.clone();
    tokio::spawn(async move {
        signal::shutdown().await;
        let n = stop.shutdown();
        eprintln!("demo: shutting down, ending {n} streams");
    });
    let app = Arc::new(App {
        hub: server.hub().clone(),
        engine,
        stats: Stats::default(),
    });
    let service = {
        let server = server.clone();
        move |req: Request<Bytes>| {
            let (app, server) = (app.clone(), server.clone());
            async move { handle(&app, &server, req).await }
        }
    };
    if let Err(e) = server.serve(listener, config, service).await {
        eprintln!("demo: {e}");
    }
}

async fn handle(app: &App, server: &Server, mut req: Request<Bytes>) -> Response<Body> {
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    if method == Method::GET && path == "/events" {
        routes::log_in(&mut req);
        return events(app, server, &req).await;
    }
    let route = routes::route(
        &app.hub,
        app.engine.as_ref(),
        &app.stats,
        &method,
        &path,
        req.uri().query(),
        req.body(),
    );
    match route.await {
        Route::Reply(reply) => respond(reply),
        // Not a GET: the handshake refuses it.
        Route::Events => respond(Reply::not_acceptable()),
    }
}

async fn events<B>(app: &App, server: &Server, req: &Request<B>) -> Response<Body> {
    app.stats.event_request();
    match server.handshake(req).await {
        Outcome::Accept(accepted) => {
            routes::greet(
                &accepted.session,
                accepted.continuity,
                &accepted.topics,
                &accepted.topic_gaps,
            );
            accepted.response.map(Either::Left)
        }
        Outcome::NoContent(res) => {
            app.stats.no_content();
            res.map(Either::Left)
        }
        Outcome::GoAway(res) | Outcome::BadRequest(res) => res.map(Either::Left),
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
