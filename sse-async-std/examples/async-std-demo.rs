//! The sse-rs demo server on sse-async-std's own HTTP/1.1 loop: the demo contract of
//! DESIGN.md, on async-std tasks and `async-io` timers.
//!
//! ```text
//! cargo run --release -p sse-async-std --example async-std-demo -- --addr 127.0.0.1:8080
//! ```
//!
//! The routes other than `GET /events` live in `demo/contract.rs`, shared by every adapter's
//! demo, the server limits in `demo/limits.rs` and what the raw-socket demos share in
//! `demo/http1.rs`; this file is the server loop, the shutdown and the handshake.

use std::sync::Arc;
use std::time::Instant;

use async_io::Timer;
use async_std::net::TcpListener;
use bytes::Bytes;
use futures_lite::StreamExt;
use http::Method;
use sse_async_std::{Outcome, Reply, Server};

#[path = "../demo/contract.rs"]
mod contract;
#[path = "../demo/http1.rs"]
mod http1;
#[path = "../demo/limits.rs"]
mod limits;

use sse_async_std as adapter;

use contract::{Options, Route, Stats};
use sse_redis::RedisEngine;

pub(crate) fn main() {
    async_std::task::block_on(run());
}

async fn run() {
    let opts = Options::from_args();
    http1::refuse_tls(&opts);
    let limits = limits::Limits::from_env();
    let engine = match opts.redis.clone() {
        // async-io's timer: the reactor async-std runs on (and redis-rs's smol side).
        Some(config) => Some(
            contract::connect(config, |d| async move {
                Timer::after(d).await;
            })
            .await,
        ),
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
        let tick = opts.tick;
        async_std::task::spawn(async move {
            let mut next = Instant::now();
            loop {
                Timer::at(next).await;
                contract::tick(&hub);
                // Ticks missed while the process was busy are skipped, not made up in a burst.
                let now = Instant::now();
                next += tick;
                while next <= now {
                    next += tick;
                }
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
    async_std::task::spawn(async move {
        shutdown_signal().await;
        let n = stop.shutdown();
        eprintln!("demo: shutting down, ending {n} streams");
    });
    let config = http1::serve_config(&limits);
    if let Err(e) = server.serve(listener, config, handler).await {
        eprintln!("demo: {e}");
    }
}

/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM; never, if signals cannot be watched.
async fn shutdown_signal() {
    use async_signal::{Signal, Signals};
    match Signals::new([Signal::Int, Signal::Term]) {
        Ok(mut signals) => {
            signals.next().await;
        }
        Err(_) => std::future::pending().await,
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
