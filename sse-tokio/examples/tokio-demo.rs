//! The sse-rs demo server on sse-tokio's own HTTP/1.1 loop: the demo contract of DESIGN.md.
//!
//! ```text
//! cargo run --release -p sse-tokio --example tokio-demo -- --addr 127.0.0.1:8080
//! ```
//!
//! The routes other than `GET /events` live in `demo/contract.rs`, shared by every adapter's
//! demo, the server limits in `demo/limits.rs` and what the raw-socket demos share in
//! `demo/http1.rs`; this file is the server loop, the shutdown and the handshake.

use std::sync::Arc;

use bytes::Bytes;
use http::Method;
use sse_tokio::{Outcome, Reply, Server};
use tokio::net::TcpListener;

#[path = "../demo/contract.rs"]
mod contract;
#[path = "../demo/http1.rs"]
mod http1;
#[path = "../demo/limits.rs"]
mod limits;
#[path = "../demo/signal.rs"]
mod signal;

use sse_tokio as adapter;

use contract::{Options, Route, Stats};
use sse_redis::RedisEngine;

#[tokio::main]
pub(crate) async fn main() {
    let opts = Options::from_args();
    http1::refuse_tls(&opts);
    let limits = limits::Limits::from_env();
    let engine = match opts.redis.clone() {
        Some(config) => Some(contract::connect(config, tokio::time::sleep).await),
        None => None,
    };
    let settings = contract::settings(&opts);
    let server = match engine.clone() {
        Some(engine) => Server::with_store(settings, engine),
        None => Server::new(settings),
    };
    let stats = Arc::new(Stats::default());
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
        let hub = server.hub().clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(opts.tick);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                every.tick().await;
                contract::tick(&hub);
            }
        });
    }

    let handler_server = server.clone();
    let handler = move |req: http::Request<Bytes>| {
        let server = handler_server.clone();
        let engine = engine.clone();
        let stats = stats.clone();
        async move { handle(&server, engine.as_ref(), &stats, req).await }
    };
    // On SIGINT or SIGTERM: stop accepting, close idle connections, end every stream
    // without marking ids (tabs reconnect to the next server), and return once every
    // connection is closed (or the shutdown bound has passed).
    let stop = server.clone();
    tokio::spawn(async move {
        signal::shutdown_signal().await;
        let n = stop.shutdown();
        eprintln!("demo: shutting down, ending {n} streams");
    });
    let config = http1::serve_config(&limits);
    if let Err(e) = server.serve(listener, config, handler).await {
        eprintln!("demo: {e}");
    }
}

async fn handle(
    server: &Server,
    engine: Option<&RedisEngine>,
    stats: &Stats,
    mut req: http::Request<Bytes>,
) -> Reply {
    let path = req.uri().path();
    let route = contract::route(
        server.hub(),
        engine,
        stats,
        req.method(),
        path,
        req.uri().query(),
        req.body(),
    );
    match route.await {
        Route::Reply(reply) => respond(reply),
        Route::Events if req.method() == Method::GET => {
            stats.event_request();
            contract::log_in(&mut req);
            match server.handshake(&req).await {
                Outcome::Accept(accepted) => {
                    contract::greet(&accepted.session, accepted.continuity);
                    Reply::Stream(accepted)
                }
                Outcome::NoContent(res) => {
                    stats.no_content();
                    Reply::Response(res)
                }
                Outcome::GoAway(res) => Reply::Response(res),
                Outcome::NotEventStream(_) => respond(contract::Reply::not_acceptable()),
            }
        }
        Route::Events => respond(contract::Reply::not_acceptable()),
    }
}

fn respond(reply: contract::Reply) -> Reply {
    Reply::Response(http1::response(reply))
}
